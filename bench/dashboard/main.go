// Command dashboard measures the dashboard's live console in a real
// headless Chromium (Debian's chromium, driven with chromedp) against an
// in-process master:
//
//   - burst: an instance prints -burst lines at once; the console's
//     rendering rate (lines/s from the first line drawn to the last), and
//     the rows the page keeps (capped);
//   - latency: the instance prints 100 lines/s with its own clock in each
//     line; the time from the write to the line being drawn, p50/p99;
//   - heap: the page's JS heap (after a forced GC) after 100 k lines and
//     after -heap lines: flat means the page does not grow with the log.
//
// Baseline in the same run: the same lines counted by a bare WebSocket
// client in the same page (no rendering), so the rendering's own cost
// shows as the ratio.
//
//	go run ./bench/dashboard -rounds 5
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/heapprofiler"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/universe-orchestrator/universe/bench/internal/benchmaster"
	"github.com/universe-orchestrator/universe/instance/supervisor"
	"github.com/universe-orchestrator/universe/master"
)

// emit is the instance's program: it reads commands on stdin.
//
//	burst N        N lines as fast as it can
//	rate R N       N lines at R lines/s, each "t=<unix µs>"
func emit() {
	w := bufio.NewWriterSize(os.Stdout, 64<<10)
	in := bufio.NewScanner(os.Stdin)
	fmt.Println("emitter ready")
	for in.Scan() {
		f := strings.Fields(in.Text())
		switch {
		case len(f) == 2 && f[0] == "burst":
			n, _ := strconv.Atoi(f[1])
			for i := range n {
				fmt.Fprintf(w, "\x1b[32m[%07d]\x1b[0m burst line with some text to draw, like a game server's chat %d\n", i, i)
			}
			w.Flush()
			fmt.Println("burst done")
		case len(f) == 3 && f[0] == "rate":
			r, _ := strconv.Atoi(f[1])
			n, _ := strconv.Atoi(f[2])
			tick := time.NewTicker(time.Second / time.Duration(r))
			for range n {
				<-tick.C
				fmt.Printf("t=%d\n", time.Now().UnixMicro())
			}
			tick.Stop()
			fmt.Println("rate done")
		}
	}
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "emit" {
		emit()
		return
	}
	supervisor.RunIfChild() // the master under test re-executes this binary as supervisors
	rounds := flag.Int("rounds", 5, "rounds of each measurement")
	burst := flag.Int("burst", 100000, "lines of a burst")
	rateN := flag.Int("rate-lines", 1000, "lines of the 100 lines/s latency run")
	heapLines := flag.Int("heap", 1000000, "lines for the heap measurement")
	flag.Parse()

	bm := benchmaster.Start("universe-bench-dashboard-", func(c *master.Config) { c.InstanceLog.LineRate = -1 })
	defer bm.Close()
	self, err := os.Executable()
	if err != nil {
		log.Fatal(err)
	}
	bm.Do("PUT", "/api/configurations/emit", map[string]any{"command": "exec " + self + " emit", "availablePorts": map[string]int{"min": 24000, "max": 24010}})
	var created struct{ ID string }
	mustJSON(bm.Do("POST", "/api/instances", map[string]any{"configurationName": "emit"}), &created)
	id := created.ID

	path, err := exec.LookPath("chromium")
	if err != nil {
		log.Fatal("no chromium (apt-get install -y chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true), chromedp.Flag("js-flags", "--expose-gc"), chromedp.WindowSize(1280, 800))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	if err := chromedp.Do(ctx); err != nil { // start the browser in ctx itself, not in a shorter child context
		log.Fatal(err)
	}
	run := func(steps ...chromedp.Action[chromedp.Void]) {
		c, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		if err := chromedp.Do(c, steps...); err != nil {
			log.Fatal(err)
		}
	}
	eval := func(js string) float64 {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[float64](js, chromedp.EvalAwaitPromise))
		if err != nil {
			log.Fatalf("%s: %v", js, err)
		}
		return v
	}
	waitFor := func(js string) {
		c, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		if _, err := chromedp.Run(c, chromedp.Poll[bool](js, chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(5*time.Minute))); err != nil {
			log.Fatalf("waiting for %s: %v", js, err)
		}
	}
	exec := func(cmd string) { bm.Do("POST", "/api/instances/"+id+"/execute", map[string]string{"command": cmd}) }

	run(chromedp.Navigate(bm.URL+"/ui/"), chromedp.SendKeys(chromedp.CSS("#key"), bm.Token), chromedp.Click(chromedp.CSS("form button.primary")),
		chromedp.WaitVisible(chromedp.CSS("#instances")))

	// Baseline: a bare WebSocket on a page without the console counts the
	// same frames (no rendering): what the browser receives at best.
	bareJS := `window.__bare = {n: 0, first: 0, last: 0};
		(() => { const ws = new WebSocket('ws://' + location.host + '/api/instances/` + id + `/live-log?format=json&batch=1&lines=1');
		  window.__bareWS = ws;
		  ws.onmessage = ev => { const f = JSON.parse(ev.data); const k = f.type === 'lines' ? f.lines.length : (f.type ? 0 : 1);
		    if (!k) return; const now = performance.now(); if (!__bare.first) __bare.first = now; __bare.n += k; __bare.last = now; }; })()`
	run(chromedp.Navigate(bm.URL+"/ui/audit"), chromedp.Evaluate[chromedp.Void](bareJS))
	waitFor(`__bareWS.readyState === 1`)
	var bareRates []float64
	for range *rounds {
		run(chromedp.Evaluate[chromedp.Void](`__bare.n = 0; __bare.first = 0;`))
		exec(fmt.Sprintf("burst %d", *burst))
		waitFor(fmt.Sprintf(`__bare.n >= %d`, *burst))
		bareRates = append(bareRates, eval(`__bare.n / ((__bare.last - __bare.first) / 1000)`))
	}
	fmt.Printf("baseline: a bare WebSocket (JSON.parse, no drawing) receives a burst at %.0f lines/s (median; %.0f–%.0f)\n", median(bareRates), slices.Min(bareRates), slices.Max(bareRates))
	run(chromedp.Navigate(bm.URL+"/ui/instances/"+id), chromedp.WaitVisible(chromedp.CSS("[role=log]")))
	waitFor(`window.__universeConsole && window.__universeConsole.ws && window.__universeConsole.ws.readyState === 1`)

	var renderRates []float64
	var rows float64
	for r := range *rounds {
		run(chromedp.Evaluate[chromedp.Void](`(() => { const c = window.__universeConsole; c.stats.rendered = 0; c.stats.firstAt = 0; c.stats.lastAt = 0; c.stats.received = 0; c.stats.gaps = 0; c.stats.skipped = 0; c.stats.flushes = 0; c.stats.flushMs = 0;
			c.onRender = null; })()`))
		exec(fmt.Sprintf("burst %d", *burst))
		// A client that falls too far behind gets a gap (counted) instead of lines.
		waitFor(fmt.Sprintf(`window.__universeConsole.stats.rendered + window.__universeConsole.stats.gaps >= %d`, *burst))
		// firstAt is when the first line arrived; lastAt when the last was drawn.
		rt := eval(`(() => { const s = window.__universeConsole.stats; return s.rendered / ((s.lastAt - s.firstAt) / 1000); })()`)
		rows = eval(`document.querySelectorAll('[role=log] .ln').length`)
		renderRates = append(renderRates, rt)
		fmt.Printf("burst round %d: console %.0f lines/s drawn, %v rows kept; %v frames, %.1f ms in the console's code; %v lines as gaps, %v past the cap within one frame (never drawn)\n", r+1, rt, rows,
			eval(`window.__universeConsole.stats.flushes`), eval(`window.__universeConsole.stats.flushMs`), eval(`window.__universeConsole.stats.gaps`), eval(`window.__universeConsole.stats.skipped`))
	}
	fmt.Printf("burst of %d lines: console median %.0f lines/s (%.0f–%.0f), %.2f of the bare WebSocket's; rows in the page: %v (cap %v)\n",
		*burst, median(renderRates), slices.Min(renderRates), slices.Max(renderRates), median(renderRates)/median(bareRates), rows,
		eval(`window.__universeConsole.cap`))

	// Latency at 100 lines/s: write time (in the line) → drawn.
	var p50s, p99s []float64
	for r := range *rounds {
		run(chromedp.Evaluate[chromedp.Void](`window.__lat = []; window.__universeConsole.onRender = q => { const now = (performance.timeOrigin + performance.now()) * 1000;
			for (const l of q) { if (l.line && l.line.startsWith('t=')) __lat.push(now - Number(l.line.slice(2))); } };`))
		exec(fmt.Sprintf("rate 100 %d", *rateN))
		waitFor(fmt.Sprintf(`__lat.length >= %d`, *rateN))
		lat := evalSlice(ctx, `__lat`)
		slices.Sort(lat)
		p50, p99 := lat[len(lat)/2]/1000, lat[len(lat)*99/100]/1000
		p50s, p99s = append(p50s, p50), append(p99s, p99)
		fmt.Printf("latency round %d: p50 %.1f ms, p99 %.1f ms over %d lines\n", r+1, p50, p99, len(lat))
	}
	fmt.Printf("write → drawn at 100 lines/s: p50 median %.1f ms, p99 median %.1f ms (%.1f–%.1f)\n", median(p50s), median(p99s), slices.Min(p99s), slices.Max(p99s))

	// Heap: after 100 k lines and after -heap lines, each after a forced GC.
	heap := func() float64 {
		err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := cdp.Call(ctx, t, heapprofiler.CollectGarbage, cdp.Empty{})
			return err
		}))
		if err != nil {
			log.Fatal(err)
		}
		u, err := chromedp.Run(ctx, func(ctx context.Context, t *chromedp.Target) (cdpruntime.GetHeapUsageResult, error) {
			return cdp.Call(ctx, t, cdpruntime.GetHeapUsage, cdp.Empty{})
		})
		if err != nil {
			log.Fatal(err)
		}
		return u.UsedSize
	}
	run(chromedp.Evaluate[chromedp.Void](`window.__universeConsole.onRender = null; __lat = null;`))
	sent := 0
	var after100k float64
	for sent < *heapLines {
		n := min(100000, *heapLines-sent)
		before := eval(`window.__universeConsole.stats.rendered + window.__universeConsole.stats.gaps`)
		exec(fmt.Sprintf("burst %d", n))
		waitFor(fmt.Sprintf(`window.__universeConsole.stats.rendered + window.__universeConsole.stats.gaps >= %d`, int(before)+n))
		sent += n
		if sent == 100000 {
			after100k = heap()
		}
	}
	end := heap()
	fmt.Printf("JS heap after a GC: %.1f MiB after 100 k lines, %.1f MiB after %d lines (%+.1f MiB); rows kept %v\n",
		after100k/(1<<20), end/(1<<20), sent, (end-after100k)/(1<<20), eval(`document.querySelectorAll('[role=log] .ln').length`))
}

func evalSlice(ctx context.Context, js string) []float64 {
	v, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](js))
	if err != nil {
		log.Fatal(err)
	}
	return v
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func mustJSON(b []byte, v any) {
	if err := json.Unmarshal(b, v); err != nil {
		log.Fatalf("decode %s: %v", b, err)
	}
}
