package master

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/universe-orchestrator/universe/api"
)

// BenchmarkEventFollowers puts 10,000 events a second into a master's
// event log for 10 s while 100 WebSocket clients follow it over TCP (90
// read every frame, 10 never read), and a client calls GET /api/ping over
// HTTP all along. It reports the rate reached, the p99 of adding an event,
// the p99 of a ping under that load and the ratio to the same before it,
// the heap's growth, and each reading follower's events + gaps against
// what was added (every event accounted for: "lost" must be 0).
//
//	go test ./master -run '^$' -bench EventFollowers -benchtime 1x
func BenchmarkEventFollowers(b *testing.B) {
	const (
		rate     = 10000
		seconds  = 10
		readers  = 90
		stalled  = 10
		msgBytes = 160
	)
	for b.Loop() {
		m, admin, _ := benchMaster(b)
		if err := m.Open(); err != nil {
			b.Fatal(err)
		}
		base := "http://" + m.Addr()
		hdr := http.Header{"Authorization": {"Bearer " + admin}}
		ctx, cancel := context.WithCancel(context.Background())
		start := m.ev.log.Last()

		type count struct{ events, gaps, firstSeq, lastSeq uint64 }
		counts := make([]count, readers)
		var wg sync.WaitGroup
		var ready atomic.Int32
		dial := func() *websocket.Conn {
			conn, _, err := websocket.Dial(ctx, strings.Replace(base, "http", "ws", 1)+"/api/events/live?since="+strconv.FormatUint(start, 10), &websocket.DialOptions{HTTPHeader: hdr})
			if err != nil {
				b.Fatal(err)
			}
			conn.SetReadLimit(1 << 20)
			return conn
		}
		for i := range readers {
			conn := dial()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.CloseNow()
				ready.Add(1)
				for {
					_, p, err := conn.Read(ctx)
					if err != nil {
						return
					}
					// A frame a line: events are counted by their
					// number alone (a follower's cost kept small: it
					// shares the master's two cores here); gaps decoded.
					for line := range bytes.SplitSeq(p, []byte("\n")) {
						c := &counts[i]
						if bytes.HasPrefix(line, []byte(`{"gap"`)) {
							var f api.EventFrame
							if json.Unmarshal(line, &f) != nil || f.Gap == nil {
								continue
							}
							c.gaps += f.Gap.Count
							atomic.StoreUint64(&c.lastSeq, f.Gap.To)
							continue
						}
						j := bytes.Index(line, []byte(`"seq":`))
						if j < 0 {
							continue
						}
						rest := line[j+6:]
						k := bytes.IndexByte(rest, ',')
						seq, err := strconv.ParseUint(string(rest[:k]), 10, 64)
						if err != nil {
							continue
						}
						c.events++
						atomic.StoreUint64(&c.lastSeq, seq)
					}
				}
			}()
		}
		for range stalled {
			conn := dial()
			defer conn.CloseNow() // never read
		}
		for ready.Load() < readers {
			time.Sleep(time.Millisecond)
		}

		pings := func(d time.Duration) []time.Duration {
			var out []time.Duration
			end := time.Now().Add(d)
			for time.Now().Before(end) {
				t0 := time.Now()
				resp, err := http.Get(base + "/api/ping")
				if err != nil {
					b.Fatal(err)
				}
				_ = resp.Body.Close()
				out = append(out, time.Since(t0))
				time.Sleep(5 * time.Millisecond)
			}
			return out
		}
		heap := func() uint64 {
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			return ms.HeapInuse
		}
		quiet := pings(3 * time.Second)
		heap0 := heap()

		// The load: rate events a second, paced every millisecond.
		var loaded []time.Duration
		pingDone := make(chan struct{})
		go func() { loaded = pings(seconds * time.Second); close(pingDone) }()
		msg := strings.Repeat("x", msgBytes)
		var adds []time.Duration
		added := 0
		t0 := time.Now()
		tick := time.NewTicker(time.Millisecond)
		for time.Since(t0) < seconds*time.Second {
			<-tick.C
			due := int(time.Since(t0).Seconds()*rate) - added
			for range due {
				a := time.Now()
				m.ev.log.Add(api.Event{Type: api.EventInstanceStarted, InstanceID: "bench-" + strconv.Itoa(added%1000), Node: "node-1", Message: msg})
				adds = append(adds, time.Since(a))
				added++
			}
		}
		tick.Stop()
		elapsed := time.Since(t0)
		<-pingDone
		heapPeak := heap()
		last := m.ev.log.Last()
		// The readers catch up (or are told of gaps) before they stop.
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			behind := 0
			for i := range counts {
				if atomic.LoadUint64(&counts[i].lastSeq) < last {
					behind++
				}
			}
			if behind == 0 {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		cancel()
		wg.Wait()

		var lost, gapped, delivered uint64
		for _, c := range counts {
			if c.events+c.gaps != uint64(added) {
				lost += uint64(added) - min(uint64(added), c.events+c.gaps)
			}
			gapped += c.gaps
			delivered += c.events
		}
		p99 := func(d []time.Duration) time.Duration {
			slices.Sort(d)
			return d[len(d)*99/100]
		}
		b.ReportMetric(float64(added)/elapsed.Seconds(), "events/s")
		b.ReportMetric(float64(p99(adds).Nanoseconds())/1e3, "add-p99-µs")
		b.ReportMetric(float64(p99(quiet).Microseconds())/1e3, "ping-p99-quiet-ms")
		b.ReportMetric(float64(p99(loaded).Microseconds())/1e3, "ping-p99-loaded-ms")
		b.ReportMetric(float64(p99(loaded))/float64(p99(quiet)), "ping-p99-ratio")
		b.ReportMetric(float64(int64(heapPeak)-int64(heap0))/(1<<20), "heap-growth-MiB")
		b.ReportMetric(float64(delivered)/float64(readers), "events/reader")
		b.ReportMetric(float64(gapped)/float64(readers), "gapped/reader")
		b.ReportMetric(float64(lost), "lost")
		_ = m.Close()
	}
}

// BenchmarkWebhookBadTargets sends 200 events a second for a while (30 s,
// or $UNIVERSE_BENCH_SECONDS) to a good webhook target alone, then again
// with a target that hangs and one that answers 500 beside it. It reports
// the good target's p99 delivery delay (event made → body received) in
// both runs and their ratio, the master's ping p99 in both, and what the
// bad targets' deliveries came to (dropped and retrying are recorded in
// their histories, none silent).
//
//	go test ./master -run '^$' -bench WebhookBadTargets -benchtime 1x
func BenchmarkWebhookBadTargets(b *testing.B) {
	secs := 30
	if s, err := strconv.Atoi(os.Getenv("UNIVERSE_BENCH_SECONDS")); err == nil && s > 0 {
		secs = s
	}
	const rate = 200
	for b.Loop() {
		var mu sync.Mutex
		var delays []time.Duration
		good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var body struct{ Event api.Event }
			if json.NewDecoder(r.Body).Decode(&body) == nil {
				mu.Lock()
				delays = append(delays, time.Since(body.Event.Time))
				mu.Unlock()
			}
		}))
		hangRelease := make(chan struct{})
		hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-hangRelease:
			case <-r.Context().Done():
			}
		}))
		var refused atomic.Int64
		failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			refused.Add(1)
			w.WriteHeader(500)
		}))

		run := func(bad bool) (goodP99, pingP99 time.Duration, got int) {
			cfg := DefaultConfig()
			cfg.Addr, cfg.DataDir, cfg.TemplatesDir, cfg.AccessLog, cfg.WebhooksAllowPrivate = "127.0.0.1:0", b.TempDir(), b.TempDir(), false, true
			m, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			if err := m.Open(); err != nil {
				b.Fatal(err)
			}
			targets := []string{good.URL}
			if bad {
				targets = append(targets, hanging.URL, failing.URL)
			}
			for _, u := range targets {
				if _, err := m.createWebhook(webhookCreate{URL: u, Events: []string{"*"}, Format: "json"}, "bench"); err != nil {
					b.Fatal(err)
				}
			}
			mu.Lock()
			delays = delays[:0]
			mu.Unlock()
			var pings []time.Duration
			stop := make(chan struct{})
			pinged := make(chan struct{})
			go func() {
				defer close(pinged)
				for {
					select {
					case <-stop:
						return
					case <-time.After(10 * time.Millisecond):
					}
					t0 := time.Now()
					resp, err := http.Get("http://" + m.Addr() + "/api/ping")
					if err == nil {
						_ = resp.Body.Close()
						pings = append(pings, time.Since(t0))
					}
				}
			}()
			t0 := time.Now()
			added := 0
			for time.Since(t0) < time.Duration(secs)*time.Second {
				time.Sleep(5 * time.Millisecond)
				for due := int(time.Since(t0).Seconds()*rate) - added; due > 0; due-- {
					m.ev.log.Add(api.Event{Type: api.EventInstanceCrashed, InstanceID: "bench", Message: "crashed: exit 3"})
					added++
				}
			}
			// The good target's deliveries arrive.
			deadline := time.Now().Add(30 * time.Second)
			for time.Now().Before(deadline) {
				mu.Lock()
				n := len(delays)
				mu.Unlock()
				if n >= added {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			close(stop)
			<-pinged
			if bad {
				hooks, _ := m.db.Webhooks()
				for _, h := range hooks {
					by := map[string]int{}
					for _, d := range m.ev.hooks.Deliveries(h.ID) {
						by[d.Outcome]++
					}
					b.Logf("%s: the latest %d deliveries by outcome: %v", h.URL, len(m.ev.hooks.Deliveries(h.ID)), by)
				}
			}
			mu.Lock()
			d := append([]time.Duration(nil), delays...)
			mu.Unlock()
			slices.Sort(d)
			slices.Sort(pings)
			if len(d) == 0 || len(pings) == 0 {
				b.Fatalf("no deliveries (%d) or pings (%d)", len(d), len(pings))
			}
			return d[len(d)*99/100], pings[len(pings)*99/100], len(d)
		}
		alone, pingAlone, gotAlone := run(false)
		beside, pingBeside, gotBeside := run(true)
		close(hangRelease)
		good.Close()
		hanging.Close()
		failing.Close()
		b.ReportMetric(float64(alone.Microseconds())/1e3, "good-p99-alone-ms")
		b.ReportMetric(float64(beside.Microseconds())/1e3, "good-p99-beside-bad-ms")
		b.ReportMetric(float64(beside)/float64(alone), "good-p99-ratio")
		b.ReportMetric(float64(pingAlone.Microseconds())/1e3, "ping-p99-alone-ms")
		b.ReportMetric(float64(pingBeside.Microseconds())/1e3, "ping-p99-beside-bad-ms")
		b.ReportMetric(float64(gotAlone), "good-got-alone")
		b.ReportMetric(float64(gotBeside), "good-got-beside")
		b.ReportMetric(float64(refused.Load()), "500s-answered")
	}
}
