package main

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/universe-orchestrator/universe/api"
)

// TestClusterSoak runs random faults against a master and three agents
// (two behind fault proxies): agent SIGKILL and restart, silent
// partitions shorter and longer than lostAfterSeconds, cut connections.
// After every cycle, once the nodes are back: no instance id runs on two
// nodes (its supervisors, seen in /proc), and the ONLINE instances go back
// to the configuration's minimum. UNIVERSE_SOAK_CYCLES sets the number of
// cycles (default 8; the 100 take about ten minutes).
func TestClusterSoak(t *testing.T) {
	cycles := 8
	if v, err := strconv.Atoi(os.Getenv("UNIVERSE_SOAK_CYCLES")); err == nil && v > 0 {
		cycles = v
	}
	seed := uint64(time.Now().UnixNano())
	if v, err := strconv.ParseUint(os.Getenv("UNIVERSE_SOAK_SEED"), 10, 64); err == nil {
		seed = v
	}
	t.Logf("%d cycles, seed %d (UNIVERSE_SOAK_SEED replays it)", cycles, seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	c := newCluster(t, "--no-local-instances")
	m, admin, nodePort, base := c.m, c.admin, c.nodePort, c.m.base
	direct := "127.0.0.1:" + strconv.Itoa(nodePort)
	type node struct {
		name, dir, url, key string
		proxy               *faultProxy
		agent               *exec.Cmd
		done                chan struct{}
	}
	var nodes []*node
	for i, name := range []string{"s1", "s2", "s3"} {
		n := &node{name: name, dir: t.TempDir(), url: "nats://" + direct}
		if i < 2 {
			n.proxy = newFaultProxy(t, direct)
			n.url = "nats://" + n.proxy.Addr()
		}
		n.key = jsonReq[api.NodeCreated](t, "POST", base+"/api/cluster/nodes", admin, `{"name":"`+name+`"}`, 201).Key
		n.agent, n.done = startAgent(t, n.dir, []string{"UNIVERSE_NODE_KEY=" + n.key}, "--master", n.url, "--data", n.dir)
		nodes = append(nodes, n)
	}
	state := func(name string) string {
		return jsonReq[api.ClusterNode](t, "GET", base+"/api/cluster/nodes/"+name, admin, "", 200).State
	}
	allOnline := func() bool {
		for _, n := range nodes {
			if state(n.name) != api.NodeOnline {
				return false
			}
		}
		return true
	}
	waitFor(t, "the nodes", 20*time.Second, allOnline)
	const want = 4
	cfg, _ := json.Marshal(api.Configuration{Command: `i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 0.05; done`,
		MinimumServiceCount: want, LostAfterSeconds: 3, AvailablePorts: api.Ports{Min: 21930, Max: 21949}, StopTimeoutSeconds: 2})
	jsonReq[any](t, "PUT", base+"/api/configurations/soak", admin, string(cfg), 204)
	online := func() int {
		n := 0
		for _, in := range jsonReq[[]api.InstanceInfo](t, "GET", base+"/api/instances?configuration=soak", admin, "", 200) {
			if in.State == "ONLINE" {
				n++
			}
		}
		return n
	}
	check := func(cycle int, what string) {
		t.Helper()
		waitFor(t, "the nodes back after "+what, 30*time.Second, allOnline)
		waitFor(t, "the minimum after "+what, 40*time.Second, func() bool { return online() == want })
		// No id under two nodes: a supervisor's state folder names both.
		where := map[string]string{}
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			if err != nil {
				continue
			}
			args := strings.Split(string(b), "\x00")
			if len(args) < 3 || args[1] != "supervise" {
				continue
			}
			for _, n := range nodes {
				if strings.HasPrefix(args[2], n.dir) {
					id := filepath.Base(args[2])
					if other, ok := where[id]; ok && other != n.name {
						t.Fatalf("cycle %d (%s): instance %s runs on %s and %s", cycle, what, id, other, n.name)
					}
					where[id] = n.name
				}
			}
		}
	}
	check(0, "the start")
	for c := 1; c <= cycles; c++ {
		n := nodes[rng.IntN(len(nodes))]
		var what string
		switch k := rng.IntN(4); {
		case k == 0 || n.proxy == nil:
			what = "SIGKILL of the agent of " + n.name
			_ = n.agent.Process.Kill()
			<-n.done
			time.Sleep(time.Duration(rng.IntN(1000)) * time.Millisecond)
			n.agent, n.done = startAgent(t, n.dir, []string{"UNIVERSE_NODE_KEY=" + n.key}, "--master", n.url, "--data", n.dir)
		case k == 1:
			what = "a short partition of " + n.name
			n.proxy.Freeze()
			time.Sleep(time.Duration(1000+rng.IntN(1500)) * time.Millisecond)
			n.proxy.Thaw()
			n.proxy.Cut()
		case k == 2:
			what = "a long partition of " + n.name
			n.proxy.Freeze()
			time.Sleep(time.Duration(7000+rng.IntN(3000)) * time.Millisecond)
			n.proxy.Thaw()
			n.proxy.Cut()
		default:
			what = "cut connections of " + n.name
			n.proxy.Cut()
		}
		check(c, what)
		t.Logf("cycle %d: %s; converged", c, what)
	}
	m.signal(syscall.SIGKILL)
}
