package master

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
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
