// Command fleet measures fleet operations as an operator runs them: a real
// master and -agents agent processes (the universe binaries, built once,
// universe-supervisor and universe-agent beside them, default flags), one
// configuration with a -files-file template spread over all the nodes:
//
//	go run ./bench/fleet -n 1000 -agents 3 -files 100
//
// Create: -n instances created by 10 clients until every one is ONLINE,
// against this process making -n folders, copying the template's files
// into each and fork/exec-ing the same command there with 10 goroutines,
// in the same run (goal: <= 1.5 x); and against the same with each
// command started by a minimal Go supervisor (bench/supervisors/floor).
// The lists: GET /ui/instances (signed in) and GET /api/instances with the
// -n instances, 100 times each: p50/p95 (goal p95 <= 50 ms), the body.
// The page (headless Chromium, skipped without it): /ui/instances open
// while every instance is stopped through the API; for each instance the
// time from the master's instance.stopped event to the row showing it
// (goal <= 1 s), and the page's JS heap after a GC (goal < 50 MB).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/heapprofiler"
	"github.com/chromedp/cdproto/network"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/bench/internal/proc"
)

const command = "exec sleep 600"

var agents []*exec.Cmd

func main() {
	log.SetFlags(0)
	n := flag.Int("n", 1000, "instances")
	nAgents := flag.Int("agents", 3, "agent processes beside the master")
	files := flag.Int("files", 100, "files in the template")
	profile := flag.String("profile", "", "write a CPU profile of the master while the instances are created")
	perfOut := flag.String("perf", "", "record the whole machine with perf (perf record -a -g) while the instances are created, into this file, and while the floor supervisor starts the same, into this file + .floor")
	flag.Parse()
	dir, err := os.MkdirTemp("", "universe-bench-fleet-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	// This program logs only to die (log.Fatal, here and in proc): then
	// nothing it started may outlive it, its deferred stops not being run.
	// A supervisor told to stop (SIGTERM) stops its instance.
	cleanup := func() {
		_ = exec.Command("pkill", "-TERM", "-f", dir).Run()
		time.Sleep(3 * time.Second)
		_ = exec.Command("pkill", "-9", "-f", dir).Run()
		_ = os.RemoveAll(dir)
	}
	log.SetOutput(io.MultiWriter(os.Stderr, dying(cleanup)))
	// Output into a closed pipe (| head) fails instead of killing this
	// program; an interrupt stops what it started first.
	signal.Ignore(syscall.SIGPIPE)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-stop
		cleanup()
		os.Exit(1)
	}()
	for _, b := range []string{"universe", "universe-supervisor", "universe-agent"} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, b), "./cmd/"+b).CombinedOutput(); err != nil {
			log.Fatalf("build %s: %v %s", b, err, out)
		}
	}
	floorSup := filepath.Join(dir, "floor-supervisor")
	if out, err := exec.Command("go", "build", "-o", floorSup, "./bench/supervisors/floor").CombinedOutput(); err != nil {
		log.Fatalf("build the floor supervisor: %v %s", err, out)
	}
	bin := filepath.Join(dir, "universe")
	data := filepath.Join(dir, "data")
	token := proc.AdminKey(bin, data)
	tpl := filepath.Join(data, "templates", "fleet", "base")
	var tplFiles []string
	for i := 0; i < *files; i++ {
		rel := filepath.Join("dir"+strconv.Itoa(i%10), "file"+strconv.Itoa(i)+".txt")
		p := filepath.Join(tpl, rel)
		_ = os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(strings.Repeat(fmt.Sprintf("line %d of a template file\n", i), 160)), 0o644); err != nil {
			log.Fatal(err)
		}
		tplFiles = append(tplFiles, rel)
	}
	clusterPort := proc.FreePort()
	m := proc.StartMaster(bin, data, proc.FreePort(), token, "--access-log=true", "--cluster-addr", "127.0.0.1:"+strconv.Itoa(clusterPort))
	defer func() {
		m.Stop()
		for _, a := range agents {
			_ = a.Process.Signal(syscall.SIGTERM)
			_ = a.Wait()
		}
	}()
	nodes := []string{"node-1"}
	for i := 1; i <= *nAgents; i++ {
		name := "fleet-" + strconv.Itoa(i)
		startAgent(m, bin, dir, name, clusterPort)
		nodes = append(nodes, name)
	}
	cfg, _ := json.Marshal(api.Configuration{Command: command, Nodes: nodes, StopTimeoutSeconds: 5,
		AvailablePorts:             api.Ports{Min: 30000, Max: 39999},
		TemplateInstallationConfig: api.TemplateInstallationConfig{AllOf: []api.Template{{Group: "fleet", Name: "base"}}}})
	m.Call("PUT", "/api/configurations/fleet", string(cfg), nil)

	// The floor before and after the fleet: the same files, the same
	// command. Each phase starts with the page cache written back (sync,
	// not timed), so none pays for the writes of the one before.
	syscall.Sync()
	floor := copyAndStart(filepath.Join(dir, "floor"), tpl, tplFiles, *n, "")
	syscall.Sync()
	stopPerf := proc.Perf(*perfOut, ".floor")
	floorSv := copyAndStart(filepath.Join(dir, "floor-sv"), tpl, tplFiles, *n, floorSup)
	stopPerf()
	syscall.Sync()
	var prof <-chan []byte
	if *profile != "" {
		prof = m.CPUProfile(10)
	}
	stopPerf = proc.Perf(*perfOut, "")
	s := time.Now()
	var wg sync.WaitGroup
	next := make(chan int, *n)
	for i := 0; i < *n; i++ {
		next <- i
	}
	close(next)
	for c := 0; c < 10; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				var in api.InstanceInfo
				m.Call("POST", "/api/instances", `{"configurationName":"fleet"}`, &in)
				if in.State != "ONLINE" {
					log.Fatalf("created %s in state %s", in.ID, in.State)
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(s)
	stopPerf()
	syscall.Sync()
	floor2 := copyAndStart(filepath.Join(dir, "floor2"), tpl, tplFiles, *n, "")
	if prof != nil {
		if err := os.WriteFile(*profile, <-prof, 0o644); err != nil {
			log.Fatal(err)
		}
	}
	var list []api.InstanceInfo
	m.Call("GET", "/api/instances", "", &list)
	per := map[string]int{}
	online := 0
	for _, in := range list {
		per[in.WrapperNodeID]++
		if in.State == "ONLINE" {
			online++
		}
	}
	fmt.Printf("create %d instances (%d-file template) over %d nodes with 10 clients, all ONLINE (%d): %v; copy + fork/exec of the same, before and after: %v, %v; ratio to the faster %.2f (goal <= 1.5); per node %v\n",
		*n, *files, len(nodes), online, took.Round(time.Millisecond), floor.Round(time.Millisecond), floor2.Round(time.Millisecond), took.Seconds()/min(floor, floor2).Seconds(), per)
	fmt.Printf("  the same copies with each command started by a minimal Go supervisor (bench/supervisors/floor): %v; the fleet %.2f x that\n",
		floorSv.Round(time.Millisecond), took.Seconds()/floorSv.Seconds())

	// The lists.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.PostForm(m.Base+"/ui/login", map[string][]string{"key": {token}})
	if err != nil || len(resp.Cookies()) == 0 {
		log.Fatalf("sign in: %v", err)
	}
	resp.Body.Close()
	cookie := resp.Cookies()[0]
	for _, p := range []string{"/ui/instances", "/api/instances"} {
		var d []float64
		size := 0
		for i := 0; i < 100; i++ {
			req, _ := http.NewRequest("GET", m.Base+p, nil)
			if strings.HasPrefix(p, "/ui/") {
				req.AddCookie(cookie)
			} else {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			s := time.Now()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				log.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			d = append(d, float64(time.Since(s).Microseconds())/1000)
			if resp.StatusCode != 200 {
				log.Fatalf("GET %s: %d", p, resp.StatusCode)
			}
			size = len(b)
		}
		sort.Float64s(d)
		fmt.Printf("GET %-14s with %d instances: p50 %.1f ms, p95 %.1f ms (goal <= 50 ms), %d KiB\n", p, *n, d[len(d)/2], d[len(d)*95/100], size>>10)
	}

	page(m, cookie, list)
}

// dying is a writer that runs f at its first write.
type dying func()

func (d dying) Write(p []byte) (int, error) {
	d()
	return len(p), nil
}

func startAgent(m *proc.Master, bin, dir, name string, clusterPort int) {
	var created api.NodeCreated
	m.Call("POST", "/api/cluster/nodes", `{"name":"`+name+`"}`, &created)
	c := exec.Command(bin, "agent", "--master", "nats://127.0.0.1:"+strconv.Itoa(clusterPort), "--data", filepath.Join(dir, "agent-"+name))
	c.Env = append(os.Environ(), "UNIVERSE_NODE_KEY="+created.Key)
	f, _ := os.Create(filepath.Join(dir, name+".log"))
	c.Stdout, c.Stderr = f, f
	if err := c.Start(); err != nil {
		log.Fatal(err)
	}
	agents = append(agents, c)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var node api.ClusterNode
		m.Call("GET", "/api/cluster/nodes/"+name, "", &node)
		if node.State == api.NodeOnline {
			return
		}
		if time.Now().After(deadline) {
			log.Fatalf("agent %s did not come online", name)
		}
	}
}

// copyAndStart makes n folders under dir, copies the template's files into
// each and starts the command there, 10 at a time (proc.StartFloor).
func copyAndStart(dir, tpl string, files []string, n int, via string) time.Duration {
	return proc.StartFloor(dir, n, command, via, func(d string) {
		for _, rel := range files {
			b, err := os.ReadFile(filepath.Join(tpl, rel))
			if err != nil {
				log.Fatal(err)
			}
			p := filepath.Join(d, rel)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				log.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				log.Fatal(err)
			}
		}
	})
}

// page opens /ui/instances in headless Chromium, stops every instance
// through the API and reports how long each state change took to show.
func page(m *proc.Master, cookie *http.Cookie, list []api.InstanceInfo) {
	path, err := exec.LookPath("chromium")
	if err != nil {
		fmt.Println("the page: skipped (no chromium: apt-get install -y chromium)")
		return
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true), chromedp.WindowSize(1280, 800))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	if err := chromedp.Do(ctx); err != nil { // the browser starts in ctx itself, not in a shorter child context
		log.Fatal(err)
	}
	run := func(steps ...chromedp.Action[chromedp.Void]) {
		c, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		if err := chromedp.Do(c, steps...); err != nil {
			log.Fatal(err)
		}
	}
	run(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, network.SetCookie, network.SetCookieParams{Name: cookie.Name, Value: cookie.Value,
			URL: m.Base + "/"})
		return err
	}))
	s := time.Now()
	run(chromedp.Navigate(m.Base+"/ui/instances"), chromedp.WaitVisible(chromedp.CSS("table#instances")))
	loaded := time.Since(s)
	// Every change of a row's state is stamped (epoch ms, this machine's
	// clock, as the master's events are).
	run(chromedp.Evaluate[chromedp.Void](`window.__shown = {};
new MutationObserver(ms => { const now = performance.timeOrigin + performance.now();
  for (const m of ms) { const tr = m.target.closest('tr[data-id]');
    if (tr && (m.target.dataset.state === 'STOPPED' || m.target.dataset.state === 'OFFLINE') && !(tr.dataset.id in __shown)) __shown[tr.dataset.id] = now; } })
.observe(document.querySelector('#instances tbody'), { subtree: true, attributes: true, attributeFilter: ['data-state'] });`))
	poll := func(js string) {
		c, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		if _, err := chromedp.Run(c, chromedp.Poll[bool](js, chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(5*time.Minute))); err != nil {
			log.Fatalf("waiting for %s: %v", js, err)
		}
	}
	poll(`document.body.dataset.live === 'on'`)
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#instances tbody tr[data-id]').length`))
	if err != nil {
		log.Fatal(err)
	}
	var wg sync.WaitGroup
	next := make(chan string, len(list))
	for _, in := range list {
		next <- in.ID
	}
	close(next)
	for c := 0; c < 20; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range next {
				m.Call("PATCH", "/api/instances/"+id+"/lifecycle?target=stop", "", nil)
			}
		}()
	}
	wg.Wait()
	poll(fmt.Sprintf(`Object.keys(__shown).length >= %d`, rows))
	shown, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]float64](`__shown`))
	if err != nil {
		log.Fatal(err)
	}
	var events []api.Event
	m.Call("GET", "/api/events?type=instance.stopped&limit="+strconv.Itoa(2*len(list)), "", &events)
	var lat []float64
	for _, e := range events {
		if at, ok := shown[e.InstanceID]; ok {
			lat = append(lat, at-float64(e.Time.UnixMicro())/1000)
		}
	}
	sort.Float64s(lat)
	run(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, heapprofiler.CollectGarbage, cdp.Empty{})
		return err
	}))
	heap, err := chromedp.Run(ctx, func(ctx context.Context, t *chromedp.Target) (cdpruntime.GetHeapUsageResult, error) {
		return cdp.Call(ctx, t, cdpruntime.GetHeapUsage, cdp.Empty{})
	})
	if err != nil {
		log.Fatal(err)
	}
	if len(lat) == 0 {
		log.Fatal("no stop was seen on the page")
	}
	fmt.Printf("the page with %d rows: loaded in %v; %d stops, event to row shown: p50 %.0f ms, p99 %.0f ms, max %.0f ms (goal <= 1 s); JS heap after a GC %.1f MB (goal < 50 MB)\n",
		rows, loaded.Round(time.Millisecond), len(lat), lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1], heap.UsedSize/1e6)
}
