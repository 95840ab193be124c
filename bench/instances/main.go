// Command instances measures the instance pipeline of a real master (in
// this process, on loopback, with a temp data dir, real sh processes and
// real WebSocket clients):
//
//	go run ./bench/instances latency    -clients 1   # live-log latency, p50/p99
//	go run ./bench/instances latency    -clients 100
//	go run ./bench/instances throughput -clients 10  # process output rate vs /dev/null
//	go run ./bench/instances create                  # create -> ONLINE, 100-file template
//	go run ./bench/instances memory     -n 200       # master memory per idle instance, then its graceful stop
//	                                                 # (-command: each instance's, default an idle sleep)
//	go run ./bench/instances ingest     -mb 2        # unlimited output: lines/s into the master, and to a batched follower
//	go run ./bench/instances flood      -mb 500      # the default line rate: time against /dev/null
//
// Latency: the instance runs `date +%s%N` in a loop; each line carries the
// wall-clock time it was written, and each client subtracts it from the time
// it received the line (one machine, one clock).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/api/client"
	"github.com/universe-orchestrator/universe/bench/internal/benchmaster"
	"github.com/universe-orchestrator/universe/bench/internal/proc"
	"github.com/universe-orchestrator/universe/instance/supervisor"
	"github.com/universe-orchestrator/universe/master"
	"golang.org/x/sys/unix"
)

// bench is a master in this process (benchmaster).
type bench struct{ *benchmaster.Master }

func start(lineRate int) *bench {
	return &bench{benchmaster.Start("universe-bench-", func(c *master.Config) {
		c.InstanceLog.LineRate = lineRate
	})}
}

func (b *bench) create(config string) api.InstanceInfo {
	var info api.InstanceInfo
	_ = json.Unmarshal(b.Do("POST", "/api/instances", api.InstanceCreateRequest{ConfigurationName: config}), &info)
	return info
}

func (b *bench) dial(id, query string) *websocket.Conn {
	h := http.Header{"Authorization": {"Bearer " + b.Token}}
	conn, _, err := websocket.Dial(context.Background(), "ws"+strings.TrimPrefix(b.URL, "http")+"/api/instances/"+id+"/live-log"+query,
		&websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		log.Fatal(err)
	}
	conn.SetReadLimit(1 << 20)
	return conn
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[int(float64(len(d)-1)*p)]
}

func latency(args []string) {
	fs := flag.NewFlagSet("latency", flag.ExitOnError)
	clients := fs.Int("clients", 1, "live-log clients")
	lines := fs.Int("lines", 1000, "lines to measure (after warm-up)")
	interval := fs.Duration("interval", 5*time.Millisecond, "time between lines")
	_ = fs.Parse(args)
	b := start(0)
	defer b.Close()
	b.Do("PUT", "/api/configurations/lat", api.Configuration{
		Command:        fmt.Sprintf("while true; do date +%%s%%N; sleep %g; done", interval.Seconds()),
		AvailablePorts: api.Ports{Min: 20000, Max: 20010},
	})
	info := b.create("lat")
	var (
		mu  sync.Mutex
		all []time.Duration
		wg  sync.WaitGroup
	)
	ready := make(chan struct{}, *clients)
	for i := 0; i < *clients; i++ {
		conn := b.dial(info.ID, "?lines=1")
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.CloseNow()
			var mine []time.Duration
			seen := 0
			for len(mine) < *lines {
				_, data, err := conn.Read(context.Background())
				if err != nil {
					log.Fatal(err)
				}
				now := time.Now().UnixNano()
				sent, err := strconv.ParseInt(string(data), 10, 64)
				if err != nil {
					continue // a system line
				}
				seen++
				if seen == 1 {
					ready <- struct{}{}
				}
				if seen <= 20 { // warm-up, and the backlog line
					continue
				}
				mine = append(mine, time.Duration(now-sent))
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	fmt.Printf("live-log latency, %d clients, %d samples: p50 %v  p90 %v  p99 %v  max %v\n",
		*clients, len(all), pct(all, .50), pct(all, .90), pct(all, .99), all[len(all)-1])
}

func throughput(args []string) {
	fs := flag.NewFlagSet("throughput", flag.ExitOnError)
	clients := fs.Int("clients", 10, "live-log clients")
	n := fs.Int("lines", 200000, "lines the process writes")
	rate := fs.Int("line-rate", -1, "per-instance line rate (-1: unlimited, 0: the default)")
	rounds := fs.Int("rounds", 5, "paired rounds")
	_ = fs.Parse(args)
	loop := fmt.Sprintf(`i=0; while [ $i -lt %d ]; do echo "[12:00:00 INFO]: player$i joined the game at world spawn"; i=$((i+1)); done`, *n)
	// The process times its own writing and reports it on stderr.
	script := `s=$(date +%s%N); ` + loop + `; e=$(date +%s%N); echo "elapsed $((e-s))" >&2`
	elapsed := elapsedIn
	var ratios []float64
	for r := 0; r < *rounds; r++ {
		out, err := exec.Command("/bin/sh", "-c", "exec 3>&1; { "+script+"; } 2>&1 >/dev/null").Output()
		if err != nil {
			log.Fatal(err)
		}
		direct := elapsed(string(out))

		b := start(*rate)
		b.Do("PUT", "/api/configurations/tp", api.Configuration{Command: "sleep 0.5; " + script, AvailablePorts: api.Ports{Min: 20000, Max: 20010}})
		info := b.create("tp")
		var wg sync.WaitGroup
		got := make([]int, *clients)
		gaps := make([]int, *clients)
		for c := 0; c < *clients; c++ {
			conn := b.dial(info.ID, "?format=json&lines=1")
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.CloseNow()
				for {
					_, data, err := conn.Read(context.Background())
					if err != nil {
						log.Fatal(err)
					}
					if !bytes.HasPrefix(data, []byte(`{"type"`)) {
						got[c]++ // a line: counted without decoding, as a cheap client would
						continue
					}
					var f api.LiveLogFrame
					_ = json.Unmarshal(data, &f)
					switch {
					case f.Type == api.FrameGap:
						gaps[c] += int(f.To - f.From + 1)
					case f.Type == api.FrameState && f.State == "OFFLINE":
						return
					}
				}
			}()
		}
		wg.Wait()
		for { // with no clients, wait here for the process to end
			var cur api.InstanceInfo
			_ = json.Unmarshal(b.Do("GET", "/api/instances/"+info.ID, nil), &cur)
			if cur.State == "OFFLINE" {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		var logs api.Logs
		_ = json.Unmarshal(b.Do("GET", "/api/instances/"+info.ID+"/logs?lines=10000", nil), &logs) // stderr and stdout are read apart: "elapsed" may precede the last stdout lines
		b.Close()
		var supervised time.Duration
		for _, l := range logs.Lines {
			if strings.HasPrefix(l, "elapsed ") {
				supervised = elapsed(l)
			}
		}
		ratio := direct.Seconds() / supervised.Seconds()
		ratios = append(ratios, ratio)
		minGot, maxGap := 0, 0
		if len(got) > 0 {
			minGot = got[0]
		}
		for c := range got {
			minGot = min(minGot, got[c])
			maxGap = max(maxGap, gaps[c])
		}
		fmt.Printf("round %d: to /dev/null %v (%.0f lines/s); through the master %v (%.0f lines/s); ratio %.2f; each client got >= %d frames, <= %d lines in gap frames; %d lines logged\n",
			r+1, direct.Round(time.Millisecond), float64(*n)/direct.Seconds(), supervised.Round(time.Millisecond), float64(*n)/supervised.Seconds(),
			ratio, minGot, maxGap, logs.TotalLines)
	}
	sort.Float64s(ratios)
	fmt.Printf("throughput ratio (supervised with %d live-log clients / /dev/null), median of %d: %.2f\n", *clients, *rounds, ratios[len(ratios)/2])
}

func create(args []string) {
	fs := flag.NewFlagSet("create", flag.ExitOnError)
	n := fs.Int("n", 200, "instances to create (one at a time)")
	files := fs.Int("files", 100, "files in the template")
	_ = fs.Parse(args)
	b := start(0)
	defer b.Close()
	b.Do("POST", "/api/templates/bench/base", nil)
	for i := 0; i < *files; i++ {
		req, _ := http.NewRequest("PUT", fmt.Sprintf("%s/api/templates/bench/base/files/dir%d/file%d.txt", b.URL, i%10, i), strings.NewReader(strings.Repeat("x", 2048)))
		req.Header.Set("Authorization", "Bearer "+b.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 204 {
			log.Fatalf("upload: %v %v", err, resp)
		}
		resp.Body.Close()
	}
	cfg := api.Configuration{
		Command: "exec sleep 600", StopTimeoutSeconds: 2, AvailablePorts: api.Ports{Min: 20000, Max: 20010},
		TemplateInstallationConfig: api.TemplateInstallationConfig{AllOf: []api.Template{{Group: "bench", Name: "base"}}},
		FileModifications:          []string{"dir0/file0.txt"},
	}
	b.Do("PUT", "/api/configurations/c", cfg)
	var d []time.Duration
	for i := 0; i < *n; i++ {
		t0 := time.Now()
		info := b.create("c") // answers once the process runs: ONLINE with its pid
		d = append(d, time.Since(t0))
		if info.State != "ONLINE" {
			log.Fatalf("instance %s is %s: %s", info.ID, info.State, info.Reason)
		}
		if i == *n-1 { // where the time of the last one went, from the log's system lines
			var l api.LogEntries
			_ = json.Unmarshal(b.Do("GET", "/api/instances/"+info.ID+"/logs?lines=10&format=entries", nil), &l)
			for _, e := range l.Entries {
				fmt.Printf("  %d ms  %s\n", e.TS-l.Entries[0].TS, e.Line)
			}
		}
		b.Do("DELETE", "/api/instances/"+info.ID, nil)
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	fmt.Printf("create -> ONLINE with a %d-file template, %d runs: p50 %v  p90 %v  p99 %v\n", *files, *n, pct(d, .5), pct(d, .9), pct(d, .99))
}

func heap() (live, stacks uint64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, ms.StackInuse
}

func rss() uint64 {
	b, _ := os.ReadFile("/proc/self/statm")
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseUint(f[1], 10, 64)
	return pages * uint64(os.Getpagesize())
}

// elapsedIn reads the "elapsed <ns>" line a benchmarked command prints.
// spliceSink moves its stdin (a pipe) to /dev/null with splice: no byte
// is copied to user space. Its time is the floor of any reader of a pipe.
func spliceSink() {
	_, _ = unix.FcntlInt(0, unix.F_SETPIPE_SZ, 1<<20) // as a busy instance's pipe
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		log.Fatal(err)
	}
	for {
		n, err := unix.Splice(0, nil, int(null.Fd()), nil, 1<<20, unix.SPLICE_F_MOVE)
		if n <= 0 || err != nil {
			return
		}
	}
}

func elapsedIn(out string) time.Duration {
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "elapsed "); ok {
			ns, _ := strconv.ParseInt(v, 10, 64)
			return time.Duration(ns)
		}
	}
	log.Fatalf("no elapsed line in %q", out)
	return 0
}

// floodProcess runs script as an instance of a master process of bin
// (default flags: the default line rate, the access log on) and returns
// the time it took, as the script measured it.
func floodProcess(bin, script string) time.Duration {
	dir, err := os.MkdirTemp("", "flood-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	data := filepath.Join(dir, "data")
	m := proc.StartMaster(bin, data, proc.FreePort(), proc.AdminKey(bin, data), "--access-log=true")
	defer m.Stop()
	m.Call("PUT", "/api/configurations/fl", `{"command":`+strconv.Quote("sleep 0.3; "+script)+`,"availablePorts":{"min":20000,"max":20010}}`, nil)
	var info api.InstanceInfo
	m.Call("POST", "/api/instances", `{"configurationName":"fl"}`, &info)
	for deadline := time.Now().Add(10 * time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var cur api.InstanceInfo
		m.Call("GET", "/api/instances/"+info.ID, "", &cur)
		if cur.State == "OFFLINE" {
			got, _ := os.ReadFile(filepath.Join(data, "running", info.ID, "elapsed.txt"))
			return elapsedIn(string(got))
		}
	}
	log.Fatal("the instance did not end")
	return 0
}

// flood measures an instance writing -mb MB of "y" lines (yes | head -c)
// with the default line-rate limit, against the same command writing to
// /dev/null, in paired rounds (goal: <= 2x).
func flood(args []string) {
	fs := flag.NewFlagSet("flood", flag.ExitOnError)
	mb := fs.Int("mb", 500, "MB the process writes")
	rounds := fs.Int("rounds", 5, "paired rounds")
	process := fs.String("process", "", `run the instance under a real master process, as an operator does: "release" (universe and universe-supervisor built side by side) or "lone" (universe alone: it supervises with itself)`)
	_ = fs.Parse(args)
	var bin string
	if *process != "" {
		dir, err := os.MkdirTemp("", "flood-bin-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(dir)
		bin = proc.Build(dir)
		if *process == "release" {
			if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "universe-supervisor"), "./cmd/universe-supervisor").CombinedOutput(); err != nil {
				log.Fatalf("build: %v %s", err, out)
			}
		}
	}
	// The time goes to a file: a line could be dropped by the throttle.
	script := fmt.Sprintf(`s=$(date +%%s%%N); yes | head -c %d000000; e=$(date +%%s%%N); echo "elapsed $((e-s))" >elapsed.txt`, *mb)
	elapsedOf := elapsedIn
	var ratios, floors, toCat []float64
	for r := 0; r < *rounds; r++ {
		tmp, _ := os.MkdirTemp("", "flood-")
		c := exec.Command("/bin/sh", "-c", "{ "+script+"; } >/dev/null")
		c.Dir = tmp
		c.Stdout = io.Discard
		if err := c.Run(); err != nil {
			log.Fatal(err)
		}
		got, _ := os.ReadFile(filepath.Join(tmp, "elapsed.txt"))
		direct := elapsedOf(string(got))
		// The floor of any reader of a pipe: cat.
		c = exec.Command("/bin/sh", "-c", "{ "+script+"; } | cat >/dev/null")
		c.Dir = tmp
		if err := c.Run(); err != nil {
			log.Fatal(err)
		}
		got, _ = os.ReadFile(filepath.Join(tmp, "elapsed.txt"))
		piped := elapsedOf(string(got))
		// The floor of any pipe at all: a reader that copies nothing
		// (splice to /dev/null): what remains is the writer's.
		c = exec.Command("/bin/sh", "-c", "{ "+script+"; } | "+os.Args[0]+" splice-sink")
		c.Dir = tmp
		if err := c.Run(); err != nil {
			log.Fatal(err)
		}
		got, _ = os.ReadFile(filepath.Join(tmp, "elapsed.txt"))
		spliced := elapsedOf(string(got))
		_ = os.RemoveAll(tmp)
		var inst time.Duration
		if bin != "" {
			inst = floodProcess(bin, script)
		} else {
			b := start(0) // the default line rate
			b.Do("PUT", "/api/configurations/fl", api.Configuration{Command: "sleep 0.3; " + script, AvailablePorts: api.Ports{Min: 20000, Max: 20010}})
			info := b.create("fl")
			for deadline := time.Now().Add(10 * time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				var cur api.InstanceInfo
				_ = json.Unmarshal(b.Do("GET", "/api/instances/"+info.ID, nil), &cur)
				if cur.State != "OFFLINE" {
					continue
				}
				got, _ := os.ReadFile(filepath.Join(b.M.Config().DataDir, "running", info.ID, "elapsed.txt"))
				inst = elapsedIn(string(got))
				break
			}
			b.Close()
		}
		ratios = append(ratios, inst.Seconds()/direct.Seconds())
		floors = append(floors, spliced.Seconds()/direct.Seconds())
		toCat = append(toCat, inst.Seconds()/piped.Seconds())
		fmt.Printf("round %d: %d MB to /dev/null %s, through a pipe to cat %s, to a reader that copies nothing %s (%.2fx), through an instance %s: %.2fx /dev/null, %.2fx cat\n",
			r+1, *mb, direct.Round(time.Millisecond), piped.Round(time.Millisecond), spliced.Round(time.Millisecond), floors[r], inst.Round(time.Millisecond), ratios[r], inst.Seconds()/piped.Seconds())
	}
	sort.Float64s(ratios)
	sort.Float64s(floors)
	sort.Float64s(toCat)
	fmt.Printf("median %.2fx /dev/null (range %.2f-%.2f); any pipe at all (a reader that copies nothing): median %.2fx (%.2f-%.2f)\n",
		ratios[len(ratios)/2], ratios[0], ratios[len(ratios)-1], floors[len(floors)/2], floors[0], floors[len(floors)-1])
	fmt.Printf("through an instance / through a pipe to cat, same round: median %.2fx (range %.2f-%.2f; goal <= 1.3x)\n",
		toCat[len(toCat)/2], toCat[0], toCat[len(toCat)-1])
}

// machineCPU is the CPU time all processes of the machine used so far
// (user, nice, system, irq, softirq of /proc/stat).
func machineCPU() time.Duration {
	b, _ := os.ReadFile("/proc/stat")
	f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7} {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += v
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// selfCPU is the CPU time of this process so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// threads is the number of OS threads of this process.
func threads() int {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "Threads:") {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(l, "Threads:")))
			return n
		}
	}
	return 0
}

func memory(args []string) {
	fs := flag.NewFlagSet("memory", flag.ExitOnError)
	n := fs.Int("n", 200, "idle instances")
	command := fs.String("command", `echo "Done (1.2s)! For help, type \"help\""; exec sleep 3600`, "each instance's command")
	_ = fs.Parse(args)
	b := start(0)
	defer func() { _ = os.RemoveAll(b.Dir) }()
	b.Do("PUT", "/api/configurations/idle", api.Configuration{
		Command: *command, StopTimeoutSeconds: 2,
		AvailablePorts: api.Ports{Min: 20000, Max: 20000 + *n},
	})
	// One first, so that lazily built things (pools, maps) are not counted.
	first := b.create("idle")
	time.Sleep(200 * time.Millisecond)
	h0, s0 := heap()
	r0 := rss()
	for i := 1; i < *n; i++ {
		b.create("idle")
	}
	// Every instance has written its line, and every supervisor has given
	// back what starting touched (5 s after its start): the stop is timed
	// in the steady state.
	time.Sleep(6 * time.Second)
	h1, s1 := heap()
	r1 := rss()
	k := float64(*n - 1)
	fmt.Printf("%d idle instances (first: %s): per instance heap %.1f KiB + goroutine stacks %.1f KiB = %.1f KiB; RSS %.1f KiB\n",
		*n, first.ID, float64(h1-h0)/1024/k, float64(s1-s0)/1024/k, float64(h1-h0+s1-s0)/1024/k, float64(r1-r0)/1024/k)
	fmt.Printf("%d idle instances: the master has %d OS threads (goal: <= 64 at 1000)\n", *n, threads())
	dashboardPages(b, first.ID)
	if f := os.Getenv("STOPTRACE"); f != "" {
		out, _ := os.Create(f)
		_ = trace.Start(out)
		defer trace.Stop()
	}
	if f := os.Getenv("STOPWAIT"); f != "" { // for a profiler of the whole machine: go when f exists
		for _, err := os.Stat(f); err != nil; _, err = os.Stat(f) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	sups := children()
	s := time.Now()
	cpu0, self0 := machineCPU(), selfCPU()
	_ = b.M.Close()
	d := time.Since(s)
	cpu1, self1 := machineCPU(), selfCPU()
	// The supervisors go once the master has stopped (it keeps them until
	// then): when is the last one gone (a zombie: its teardown is over)?
	for !allExited(sups) {
		time.Sleep(time.Millisecond)
	}
	gone := time.Since(s)
	fmt.Printf("graceful stop of the master with %d instances: %v (goal: <= 500 ms at 990); CPU time meanwhile: the machine %v, the master %v\n",
		*n, d.Round(time.Millisecond), (cpu1 - cpu0).Round(time.Millisecond), (self1 - self0).Round(time.Millisecond))
	fmt.Printf("  the last of its %d supervisors gone after %v; CPU time until then: the machine %v\n",
		len(sups), gone.Round(time.Millisecond), (machineCPU() - cpu0).Round(time.Millisecond))
}

// children lists the processes this one started (its supervisors).
func children() []int {
	var pids []int
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, t := range tasks {
		b, _ := os.ReadFile("/proc/self/task/" + t.Name() + "/children")
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// allExited says whether every pid has exited (gone, or a zombie).
func allExited(pids []int) bool {
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) && b[i+2] != 'Z' {
			return false
		}
	}
	return true
}

// dashboardPages times the dashboard's pages (signed in with a session
// cookie, over loopback: the whole request) with the master's instances,
// beside GET /api/instances, the same list as JSON, in the same run.
func dashboardPages(b *bench, first string) {
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.PostForm(b.URL+"/ui/login", map[string][]string{"key": {b.Token}})
	if err != nil || len(resp.Cookies()) == 0 {
		log.Fatalf("sign in: %v", err)
	}
	resp.Body.Close()
	ck := resp.Cookies()[0]
	get := func(path string) time.Duration {
		req, _ := http.NewRequest("GET", b.URL+path, nil)
		req.AddCookie(ck)
		s := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			log.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		return time.Since(s)
	}
	for _, p := range []string{"/api/instances", "/ui/instances", "/ui/instances/" + first, "/ui/configurations", "/ui/templates", "/ui/keys", "/ui/audit", "/ui/nodes"} {
		var d []time.Duration
		for range 31 {
			d = append(d, get(p))
		}
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		fmt.Printf("  GET %-28s median %v, p90 %v (31 requests)\n", p, d[15].Round(time.Microsecond), d[27].Round(time.Microsecond))
	}
}

func main() {
	supervisor.RunIfChild() // the master under test re-executes this binary as supervisors
	log.SetFlags(0)
	if f := os.Getenv("CPUPROFILE"); f != "" {
		out, err := os.Create(f)
		if err != nil {
			log.Fatal(err)
		}
		_ = pprof.StartCPUProfile(out)
		defer pprof.StopCPUProfile()
	}
	if len(os.Args) < 2 {
		log.Fatal("usage: instances latency|throughput|create|memory [flags]")
	}
	switch os.Args[1] {
	case "flood":
		flood(os.Args[2:])
	case "ingest":
		ingest(os.Args[2:])
	case "latency":
		latency(os.Args[2:])
	case "throughput":
		throughput(os.Args[2:])
	case "create":
		create(os.Args[2:])
	case "memory":
		memory(os.Args[2:])
	case "followers":
		followers(os.Args[2:])
	case "splice-sink":
		spliceSink()
	case "follow-clients":
		followClients(os.Args[2:])
	default:
		log.Fatalf("unknown benchmark %q", os.Args[1])
	}
}

// ingest measures how fast the master takes in an instance's output at an
// unlimited line rate: `yes | head -c` of -mb MB (2 bytes a line), from the
// process's start until the master's log holds every line (file and ring),
// with no follower, and with one follower that asks for batched frames
// (?format=json&batch=1), until it has received every line. Baseline in the
// same round: a Go reader counting the lines of the same command on a pipe.
// scanLines reads a batched "lines" frame by hand: every line's seq must
// follow last; it returns the last seq and how many were stdout lines.
func scanLines(data []byte, last uint64) (uint64, uint64) {
	var n uint64
	seqKey, stdout := []byte(`{"seq":`), []byte(`"stream":"stdout"`)
	for {
		i := bytes.Index(data, seqKey)
		if i < 0 {
			return last, n
		}
		data = data[i+len(seqKey):]
		var seq uint64
		j := 0
		for ; j < len(data) && data[j] >= '0' && data[j] <= '9'; j++ {
			seq = seq*10 + uint64(data[j]-'0')
		}
		if last != 0 && seq != last+1 {
			log.Fatalf("line %d after %d", seq, last)
		}
		last = seq
		// The stream comes after ts, before the line: within the element.
		end := bytes.IndexByte(data, '}')
		if end < 0 {
			end = len(data)
		}
		if bytes.Contains(data[j:end], stdout) {
			n++
		}
		data = data[end:]
	}
}

// followLines reads batched live-log frames from conn until lines stdout
// lines (or gaps) have come, checking their order, and returns when.
func followLines(conn *websocket.Conn, lines uint64, client string) time.Time {
	conn.SetReadLimit(8 << 20)
	var got, gap, last uint64
	for got+gap < lines {
		_, data, err := conn.Read(context.Background())
		if err != nil {
			log.Fatal(err)
		}
		if client == "scan" && bytes.HasPrefix(data, []byte(`{"type":"lines"`)) {
			var n uint64
			last, n = scanLines(data, last)
			got += n
			continue
		}
		var f api.LiveLogFrame
		if err := json.Unmarshal(data, &f); err != nil {
			log.Fatal(err)
		}
		switch f.Type {
		case api.FrameLines:
			for _, l := range f.Lines {
				if last != 0 && l.Seq != last+1 {
					log.Fatalf("line %d after %d", l.Seq, last)
				}
				last = l.Seq
				if l.Stream == api.StreamStdout {
					got++
				}
			}
		case api.FrameGap:
			gap += f.To - f.From + 1
			last = f.To
		}
	}
	end := time.Now()
	conn.CloseNow()
	if gap > 0 {
		fmt.Printf("  the follower was told of a gap of %d lines\n", gap)
	}
	return end
}

// followWithClient follows id with the Go client (api/client: what
// `universe logs -f` reads with) until lines stdout lines (or gaps) came.
func followWithClient(m *proc.Master, id string, lines uint64) time.Time {
	c, err := client.New(m.Base, m.Token)
	if err != nil {
		log.Fatal(err)
	}
	s, err := c.LiveLog(context.Background(), id, client.LiveLogOptions{HasSince: true})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	var got, gap, last uint64
	for got+gap < lines {
		f, err := s.Next()
		if err != nil {
			log.Fatal(err)
		}
		switch f.Type {
		case "":
			if last != 0 && f.Seq != last+1 {
				log.Fatalf("line %d after %d", f.Seq, last)
			}
			last = f.Seq
			if f.Stream == api.StreamStdout {
				got++
			}
		case api.FrameGap:
			gap += f.To - f.From + 1
			last = f.To
		}
	}
	if gap > 0 {
		fmt.Printf("  the follower was told of a gap of %d lines\n", gap)
	}
	return time.Now()
}

// ingestProcess runs script as an instance of a master process of bin
// (no line-rate limit) with one batched follower over TCP, and returns
// lines per second from the script's start to the last line received.
func ingestProcess(bin, script string, lines uint64, client string, startOf func(string) time.Time) float64 {
	dir, err := os.MkdirTemp("", "ingest-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	data := filepath.Join(dir, "data")
	m := proc.StartMaster(bin, data, proc.FreePort(), proc.AdminKey(bin, data), "--access-log=true", "--log-line-rate", "-1")
	defer m.Stop()
	m.Call("PUT", "/api/configurations/in", `{"command":`+strconv.Quote("sleep 0.3; "+script)+`,"availablePorts":{"min":20000,"max":20010}}`, nil)
	var info api.InstanceInfo
	m.Call("POST", "/api/instances", `{"configurationName":"in"}`, &info)
	if client == "go" {
		end := followWithClient(m, info.ID, lines)
		return float64(lines) / end.Sub(startOf(filepath.Join(data, "running", info.ID))).Seconds()
	}
	conn, _, err := websocket.Dial(context.Background(), "ws"+strings.TrimPrefix(m.Base, "http")+"/api/instances/"+info.ID+"/live-log?format=json&batch=1&since=0",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + m.Token}}})
	if err != nil {
		log.Fatal(err)
	}
	end := followLines(conn, lines, client)
	return float64(lines) / end.Sub(startOf(filepath.Join(data, "running", info.ID))).Seconds()
}

func ingest(args []string) {
	fs := flag.NewFlagSet("ingest", flag.ExitOnError)
	mb := fs.Float64("mb", 2, "MB the process writes (2 bytes a line)")
	rounds := fs.Int("rounds", 5, "paired rounds")
	client := fs.String("client", "json", `how the follower reads a frame: "json" (encoding/json into api.LiveLogFrame), "scan" (a hand scanner of the lines frames: each line's seq and stream, in order, nothing else) or, with -process, "go" (the Go client, api/client, line by line)`)
	process := fs.String("process", "", `the follower of an instance under a real master process, as an operator runs it: "release" (universe and universe-supervisor side by side); the master alone is then not measured`)
	_ = fs.Parse(args)
	var bin string
	if *process != "" {
		dir, err := os.MkdirTemp("", "ingest-bin-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(dir)
		bin = proc.Build(dir)
		if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "universe-supervisor"), "./cmd/universe-supervisor").CombinedOutput(); err != nil {
			log.Fatalf("build: %v %s", err, out)
		}
	}
	size := int(*mb * 1e6)
	lines := uint64(size / 2)
	script := fmt.Sprintf(`date +%%s%%N >start.txt; yes | head -c %d`, size)
	startOf := func(dir string) time.Time {
		got, err := os.ReadFile(filepath.Join(dir, "start.txt"))
		if err != nil {
			log.Fatal(err)
		}
		ns, _ := strconv.ParseInt(strings.TrimSpace(string(got)), 10, 64)
		return time.Unix(0, ns)
	}
	var base, alone, followed []float64
	for r := 0; r < *rounds; r++ {
		// Baseline: a Go reader on the pipe.
		tmp, _ := os.MkdirTemp("", "ingest-")
		c := exec.Command("/bin/sh", "-c", script)
		c.Dir = tmp
		out, _ := c.StdoutPipe()
		if err := c.Start(); err != nil {
			log.Fatal(err)
		}
		buf := make([]byte, 256<<10)
		var n uint64
		for {
			k, err := out.Read(buf)
			n += uint64(bytes.Count(buf[:k], []byte{'\n'}))
			if err != nil {
				break
			}
		}
		end := time.Now()
		_ = c.Wait()
		baseRate := float64(n) / end.Sub(startOf(tmp)).Seconds()
		_ = os.RemoveAll(tmp)

		rate := func(follow bool) float64 {
			b := start(-1)
			defer b.Close()
			b.Do("PUT", "/api/configurations/in", api.Configuration{Command: "sleep 0.3; " + script, AvailablePorts: api.Ports{Min: 20000, Max: 20010}})
			info := b.create("in")
			in, err := b.M.Instances().Get(info.ID)
			if err != nil {
				log.Fatal(err)
			}
			var end time.Time
			if follow {
				conn := b.dial(info.ID, "?format=json&batch=1&since="+strconv.FormatUint(in.Log().Total(), 10))
				end = followLines(conn, lines, *client)
			} else {
				first := in.Log().Total()
				for in.Log().Total() < first+lines {
					time.Sleep(200 * time.Microsecond)
				}
				end = time.Now()
			}
			return float64(lines) / end.Sub(startOf(filepath.Join(b.M.Config().DataDir, "running", info.ID))).Seconds()
		}
		var a, f float64
		if bin != "" {
			f = ingestProcess(bin, script, lines, *client, startOf)
		} else {
			a, f = rate(false), rate(true)
		}
		base, alone, followed = append(base, baseRate), append(alone, a), append(followed, f)
		fmt.Printf("round %d: Go reader on the pipe %.0f lines/s; master, no follower %.0f lines/s (%.2f of the reader); one batched follower %.0f lines/s (%.2f)\n",
			r+1, baseRate, a, a/baseRate, f, f/baseRate)
	}
	med := func(v []float64) (float64, float64, float64) {
		s := append([]float64(nil), v...)
		sort.Float64s(s)
		return s[len(s)/2], s[0], s[len(s)-1]
	}
	bm, _, _ := med(base)
	am, alo, ahi := med(alone)
	fm, flo, fhi := med(followed)
	if bin != "" {
		fmt.Printf("median of %d rounds, %d lines, a master process: Go reader %.0f lines/s; batched follower (%s client) %.0f lines/s (%.0f-%.0f; goal >= 2.5M)\n",
			*rounds, lines, bm, *client, fm, flo, fhi)
		return
	}
	fmt.Printf("median of %d rounds, %d lines: Go reader %.0f lines/s; master alone %.0f lines/s (%.0f-%.0f; goal >= 1M); batched follower (%s client) %.0f lines/s (%.0f-%.0f; goal >= 2.5M)\n",
		*rounds, lines, bm, am, alo, ahi, *client, fm, flo, fhi)
}
