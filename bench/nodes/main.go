// Command nodes measures the cluster with real processes on this machine:
// a master and agents built from ./cmd/universe (and ./cmd/universe-agent
// beside it, as installed), instances running the
// tests' echo program (-stamp prints the wall clock), a live-log follower.
// Each remote figure has its local baseline in the same run.
//
//	go run ./bench/nodes -agents 4 -spread 200
//
// It prints: idle RSS of the master without and with the node port open,
// and of an agent; live-log latency at 10,000 lines/s (local instance and
// instance on an agent); relay throughput (lines/s of one instance at no
// line-rate limit, to a batched follower); stdin round trip (POST execute);
// a killed agent, a revoked node and a rejoin, timed; a 10 MiB template to
// a node cold, then one changed file; and the spread of -spread instances
// over the agents.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coder/websocket"

	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/instance/runtime/docker/dockertest"
)

var (
	dir, bin, base, token string
	clusterPort           int
)

func freePort() int {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func req(method, path, body string, out any) int {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	q, _ := http.NewRequest(method, base+path, r)
	q.Header.Set("Authorization", "Bearer "+token)
	if body != "" && !strings.Contains(path, "/files/") {
		q.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(q)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		_ = json.Unmarshal(b, out)
	}
	if resp.StatusCode >= 300 && out == nil {
		log.Printf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode
}

func rssKiB(pid int) int {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	return 0
}

func start(name string, args []string, env ...string) *exec.Cmd {
	c := exec.Command(bin, args...)
	c.Env = append(os.Environ(), env...)
	f, _ := os.Create(filepath.Join(dir, name+".log"))
	c.Stdout, c.Stderr = f, f
	if err := c.Start(); err != nil {
		log.Fatal(err)
	}
	return c
}

func waitFor(what string, d time.Duration, cond func() bool) time.Duration {
	s := time.Now()
	for !cond() {
		if time.Since(s) > d {
			log.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Since(s)
}

func nodeState(name string) string {
	var n api.ClusterNode
	req("GET", "/api/cluster/nodes/"+name, "", &n)
	return n.State
}

// agent registers a node and starts its agent.
func agent(name string) *exec.Cmd {
	var n api.NodeCreated
	if code := req("POST", "/api/cluster/nodes", `{"name":"`+name+`"}`, &n); code != 201 {
		log.Fatalf("create node %s: %d", name, code)
	}
	_ = os.WriteFile(filepath.Join(dir, "key-"+name), []byte(n.Key), 0o600) // for a restart of the agent
	ad := filepath.Join(dir, "agent-"+name)
	c := start("agent-"+name, []string{"agent", "--master", "nats://127.0.0.1:" + strconv.Itoa(clusterPort), "--data", ad}, "UNIVERSE_NODE_KEY="+n.Key)
	waitFor(name+" online", 20*time.Second, func() bool { return nodeState(name) == api.NodeOnline })
	return c
}

func pct(d []time.Duration, p float64) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	if len(d) == 0 {
		return 0
	}
	return d[int(float64(len(d)-1)*p)]
}

// follow reads batched live-log frames of id and hands each line to fn
// until fn returns false (or two minutes pass).
func follow(id string, fn func(api.LogLine, time.Time) bool) {
	u := "ws" + strings.TrimPrefix(base, "http") + "/api/instances/" + id + "/live-log?format=json&batch=1&lines=1"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			var logs api.Logs
			req("GET", "/api/instances/"+id+"/logs?lines=1", "", &logs)
			log.Fatalf("live-log of %s: %v (the log has %d lines)", id, err, logs.TotalLines)
		}
		now := time.Now()
		var f api.LiveLogFrame
		_ = json.Unmarshal(b, &f)
		if f.Type == api.FrameGap {
			log.Printf("live-log of %s: a gap of lines %d-%d", id, f.From, f.To)
		}
		for _, l := range f.Lines {
			if !fn(l, now) {
				return
			}
		}
	}
}

func create(cfg string) api.InstanceInfo {
	var in api.InstanceInfo
	if code := req("POST", "/api/instances", `{"configurationName":"`+cfg+`"}`, &in); code != 201 || in.State != "ONLINE" {
		log.Fatalf("create %s: %d %+v", cfg, code, in)
	}
	return in
}

func main() {
	log.SetFlags(0)
	nAgents := flag.Int("agents", 4, "agents for the spread figure")
	spread := flag.Int("spread", 200, "instances spread over the agents")
	samples := flag.Int("samples", 3000, "latency samples per instance")
	flag.Parse()
	var err error
	dir, err = os.MkdirTemp("", "universe-bench-nodes-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin = filepath.Join(dir, "universe")
	for _, b := range [][2]string{{bin, "./cmd/universe"}, {filepath.Join(dir, "universe-agent"), "./cmd/universe-agent"}} {
		if out, err := exec.Command("go", "build", "-o", b[0], b[1]).CombinedOutput(); err != nil {
			log.Fatalf("build: %v %s", err, out)
		}
	}
	prog := filepath.Join(dir, "echo")
	if err := dockertest.Program(prog); err != nil {
		log.Fatal(err)
	}
	out, err := exec.Command(bin, "key", "create", "bench", "ALL", "--data", filepath.Join(dir, "data")).CombinedOutput()
	if err != nil {
		log.Fatalf("key: %v %s", err, out)
	}
	for _, w := range strings.Fields(string(out)) {
		if strings.HasPrefix(w, "unv_") {
			token = w
		}
	}
	port := freePort()
	clusterPort = freePort()
	base = "http://127.0.0.1:" + strconv.Itoa(port)
	m := start("master", []string{"master", "--addr", "127.0.0.1:" + strconv.Itoa(port), "--data", filepath.Join(dir, "data"),
		"--no-console", "--access-log=false", "--cluster-addr", "127.0.0.1:" + strconv.Itoa(clusterPort), "--log-line-rate", "-1"})
	defer func() {
		_ = m.Process.Signal(syscall.SIGTERM)
		_ = m.Wait()
		_ = exec.Command("pkill", "-9", "-f", dir).Run()
	}()
	waitFor("the master", 20*time.Second, func() bool { r, err := http.Get(base + "/api/ping"); return err == nil && r.StatusCode == 200 })

	// Memory.
	time.Sleep(3 * time.Second)
	idle := rssKiB(m.Process.Pid)
	a1 := agent("edge-1")
	time.Sleep(3 * time.Second)
	withPort := rssKiB(m.Process.Pid)
	fmt.Printf("master idle RSS: %d KiB with no node; %d KiB with the node port open and one agent: +%d KiB (goal <= +5 MiB)\n", idle, withPort, withPort-idle)
	fmt.Printf("agent idle RSS: %d KiB (universe agent runs universe-agent; goal <= 15 MiB)\n", rssKiB(a1.Process.Pid))

	// Live-log latency at 10,000 lines/s.
	conf := func(name, node, command string) {
		b, _ := json.Marshal(api.Configuration{Command: command, Nodes: []string{node}, StopTimeoutSeconds: 2,
			AvailablePorts: api.Ports{Min: 23000, Max: 23999}})
		req("PUT", "/api/configurations/"+name, string(b), nil)
	}
	conf("lat-local", "node-1", prog+" -stamp 100us")
	conf("lat-remote", "edge-1", prog+" -stamp 100us")
	lat := func(cfg string) (time.Duration, time.Duration) {
		in := create(cfg)
		var d []time.Duration
		seen := 0
		follow(in.ID, func(l api.LogLine, now time.Time) bool {
			v, ok := strings.CutPrefix(l.Line, "stamp ")
			if !ok {
				return true
			}
			if seen++; seen > 200 { // warm-up
				ns, _ := strconv.ParseInt(v, 10, 64)
				d = append(d, now.Sub(time.Unix(0, ns)))
			}
			return len(d) < *samples
		})
		req("DELETE", "/api/instances/"+in.ID, "", nil)
		return pct(d, 0.5), pct(d, 0.99)
	}
	for r := 1; r <= 3 && os.Getenv("BENCH_SKIP_LATENCY") == ""; r++ {
		l50, l99 := lat("lat-local")
		r50, r99 := lat("lat-remote")
		fmt.Printf("live-log latency at 10k lines/s, round %d: local p50 %v p99 %v; on an agent p50 %v p99 %v; added at p99 %v (goal <= 1 ms)\n",
			r, l50.Round(time.Microsecond), l99.Round(time.Microsecond), r50.Round(time.Microsecond), r99.Round(time.Microsecond), (r99 - l99).Round(time.Microsecond))
	}

	// Relay throughput.
	const lines = 1_000_000
	conf("tp-local", "node-1", "sleep 0.5; yes | head -n "+strconv.Itoa(lines)+"; exec sleep 600")
	conf("tp-remote", "edge-1", "sleep 0.5; yes | head -n "+strconv.Itoa(lines)+"; exec sleep 600")
	tp := func(cfg string) float64 {
		in := create(cfg)
		n := 0
		var first, last time.Time
		follow(in.ID, func(l api.LogLine, now time.Time) bool {
			if l.Stream == api.StreamStdout {
				if n == 0 {
					first = now
				}
				n++
				last = now
			}
			return n < lines
		})
		req("DELETE", "/api/instances/"+in.ID, "", nil)
		return float64(n) / last.Sub(first).Seconds()
	}
	for r := 1; r <= 3; r++ {
		l, rm := tp("tp-local"), tp("tp-remote")
		fmt.Printf("relay throughput to a batched follower, round %d: local %.0f lines/s, from an agent %.0f lines/s (goal >= 100k)\n", r, l, rm)
	}

	// stdin round trip: POST execute, answered once the line is written.
	conf("in-local", "node-1", prog)
	conf("in-remote", "edge-1", prog)
	rtt := func(cfg string) (time.Duration, time.Duration) {
		in := create(cfg)
		var d []time.Duration
		for i := 0; i < 500; i++ {
			s := time.Now()
			req("POST", "/api/instances/"+in.ID+"/execute", `{"command":"x"}`, nil)
			d = append(d, time.Since(s))
		}
		req("DELETE", "/api/instances/"+in.ID, "", nil)
		return pct(d, 0.5), pct(d, 0.99)
	}
	l50, l99 := rtt("in-local")
	r50, r99 := rtt("in-remote")
	fmt.Printf("stdin (POST execute, 500 each): local p50 %v p99 %v; on an agent p50 %v p99 %v; added at p99 %v (goal <= 1 ms)\n",
		l50.Round(time.Microsecond), l99.Round(time.Microsecond), r50.Round(time.Microsecond), r99.Round(time.Microsecond), (r99 - l99).Round(time.Microsecond))

	// Templates: 10 MiB cold, then one changed file.
	req("POST", "/api/templates/big/one", "", nil)
	big := bytes.Repeat([]byte("0123456789abcdef"), 10<<20/16)
	req("PUT", "/api/templates/big/one/files/world.dat", string(big), nil)
	req("PUT", "/api/templates/big/one/files/small.txt", "v1", nil)
	target := filepath.Join(dir, "agent-edge-1", "templates", "big", "one", "small.txt")
	req("POST", "/api/templates/sync", "", nil)
	cold := waitFor("the template on the node", 30*time.Second, func() bool { b, _ := os.ReadFile(target); return string(b) == "v1" })
	req("PUT", "/api/templates/big/one/files/small.txt", "v2", nil)
	req("POST", "/api/templates/sync", "", nil)
	warm := waitFor("the change on the node", 30*time.Second, func() bool { b, _ := os.ReadFile(target); return string(b) == "v2" })
	fmt.Printf("template of 10 MiB to a node, cold: %v (goal <= 1 s); one changed file: %v\n", cold.Round(time.Millisecond), warm.Round(time.Millisecond))

	// Faults, timed.
	_ = a1.Process.Signal(syscall.SIGKILL)
	kill := waitFor("the killed agent to be seen", 20*time.Second, func() bool { return nodeState("edge-1") == api.NodeDisconnected })
	a1 = start("agent-edge-1b", []string{"agent", "--master", "nats://127.0.0.1:" + strconv.Itoa(clusterPort), "--data", filepath.Join(dir, "agent-edge-1")}, agentKeyEnv("edge-1"))
	rejoin := waitFor("the agent back", 20*time.Second, func() bool { return nodeState("edge-1") == api.NodeOnline })
	s := time.Now()
	req("DELETE", "/api/cluster/nodes/edge-1", "", nil)
	done := make(chan struct{})
	go func() { _ = a1.Wait(); close(done) }()
	<-done
	revoke := time.Since(s)
	fmt.Printf("agent SIGKILL to DISCONNECTED: %v (goal <= 1 s); a new agent to ONLINE: %v; revocation to the agent's exit: %v (goal <= 1 s)\n",
		kill.Round(time.Millisecond), rejoin.Round(time.Millisecond), revoke.Round(time.Millisecond))

	// Spread.
	var names []string
	for i := 1; i <= *nAgents; i++ {
		name := "spread-" + strconv.Itoa(i)
		agent(name)
		names = append(names, name)
	}
	b, _ := json.Marshal(api.Configuration{Command: "exec sleep 600", Nodes: names, RAMMB: 64, StopTimeoutSeconds: 2, AvailablePorts: api.Ports{Min: 24000, Max: 24999}})
	req("PUT", "/api/configurations/spread", string(b), nil)
	s = time.Now()
	for i := 0; i < *spread; i++ {
		create("spread")
	}
	took := time.Since(s)
	var nodes []api.ClusterNode
	req("GET", "/api/cluster/nodes", "", &nodes)
	lo, hi := 1<<30, 0
	for _, n := range nodes {
		if strings.HasPrefix(n.Name, "spread-") {
			lo, hi = min(lo, n.InstanceCount), max(hi, n.InstanceCount)
		}
	}
	fmt.Printf("%d instances over %d agents in %v: between %d and %d per agent (goal: within 1)\n", *spread, *nAgents, took.Round(time.Millisecond), lo, hi)
}

// agentKeyEnv is the credential of node name, for a new agent process.
func agentKeyEnv(name string) string {
	b, _ := os.ReadFile(filepath.Join(dir, "key-"+name))
	return "UNIVERSE_NODE_KEY=" + string(b)
}
