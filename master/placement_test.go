package master_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/cluster/agent"
	"github.com/universe-orchestrator/universe/master"
)

// Placement over real agents (in this process; their supervisors are this
// test binary): concurrent creates spread over the nodes within one, never
// beyond a node's declared capacity nor twice on one port of a node, and
// the first that fits nowhere gets 503 naming why.
func TestPlacementSpreadsAndNeverOvercommits(t *testing.T) {
	e := newEnv(t, func(c *master.Config) { c.NoLocalInstances = true })
	ctx, cancel := context.WithCancel(context.Background())
	var agents sync.WaitGroup
	var dirs []string
	// The agents leave their instances running (as they do when stopped):
	// their supervisors go after them, and the processes with them.
	t.Cleanup(func() {
		cancel()
		agents.Wait()
		for _, d := range dirs {
			killSupervisorsIn(d)
		}
	})
	for _, name := range []string{"a1", "a2"} {
		resp := e.do("POST", "/api/cluster/nodes", e.admin, `{"name":"`+name+`","ramMB":4096,"cpu":400,"ports":{"min":21950,"max":21999}}`)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("create node: %d %s", resp.StatusCode, readAll(resp))
		}
		n := decode[api.NodeCreated](t, resp)
		url := n.JoinCommand[strings.Index(n.JoinCommand, "--master ")+9 : strings.Index(n.JoinCommand, " --data")]
		dir := t.TempDir()
		dirs = append(dirs, dir)
		agents.Add(1)
		go func() {
			defer agents.Done()
			_ = agent.Run(ctx, agent.Options{Master: url, Credential: n.Key, DataDir: dir, MaxBackoff: 200 * time.Millisecond})
		}()
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		nodes := decode[[]api.ClusterNode](t, e.do("GET", "/api/cluster/nodes", e.admin, ""))
		online := 0
		for _, n := range nodes {
			if n.State == api.NodeOnline && !n.Local {
				online++
			}
		}
		if online == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agents not online: %+v", nodes)
		}
	}
	e.putConfig("spread", map[string]any{"command": "exec sleep 600", "ramMB": 1024, "cpu": 50, "stopTimeoutSeconds": 2,
		"availablePorts": map[string]int{"min": 21950, "max": 21999}})
	var wg sync.WaitGroup
	codes := make([]int, 10)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := e.do("POST", "/api/instances", e.admin, `{"configurationName":"spread"}`)
			codes[i] = resp.StatusCode
			if resp.StatusCode != http.StatusCreated {
				body := readAll(resp)
				if !strings.Contains(body, "a1: full") || !strings.Contains(body, "a2: full") {
					t.Errorf("refused with %d %s", resp.StatusCode, body)
				}
			}
		}()
	}
	wg.Wait()
	created := 0
	for _, c := range codes {
		if c == http.StatusCreated {
			created++
		}
	}
	if created != 8 {
		t.Fatalf("%d instances placed of 10 (codes %v), want 8 (two nodes of 4 GiB, 1 GiB each)", created, codes)
	}
	byNode := map[string]int{}
	ports := map[string]bool{}
	for _, in := range decode[[]api.InstanceInfo](t, e.do("GET", "/api/instances", e.admin, "")) {
		if in.State != "ONLINE" {
			t.Errorf("%s is %s (%s)", in.ID, in.State, in.Reason)
		}
		byNode[in.WrapperNodeID]++
		key := fmt.Sprintf("%s:%d", in.WrapperNodeID, in.AllocatedPort)
		if ports[key] {
			t.Errorf("port %s given twice", key)
		}
		ports[key] = true
	}
	if byNode["a1"] != 4 || byNode["a2"] != 4 || byNode["node-1"] != 0 {
		t.Fatalf("spread: %v", byNode)
	}
	n := decode[api.ClusterNode](t, e.do("GET", "/api/cluster/nodes/a1", e.admin, ""))
	if n.Resources.UsedRAMMB != 4096 || n.InstanceCount != 4 || len(n.Instances) != 4 {
		t.Fatalf("a1: %+v", n)
	}
}

// killSupervisorsIn kills the supervisors whose state folder is under dir.
func killSupervisorsIn(dir string) {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		args := strings.Split(string(b), "\x00")
		if len(args) >= 3 && args[1] == "supervise" && strings.HasPrefix(args[2], dir) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// Every start checks its node's capacity, not only placement: an instance
// stopped while others took its room cannot start again over the node's
// capacity, and the answer names the resource. Node labels select nodes.
// The audit entry of a lifecycle call names the action.
func TestEveryStartChecksCapacity(t *testing.T) {
	e := newEnv(t, func(c *master.Config) { c.LocalCapacity = api.NodeCapacity{CPU: 200} })
	e.putConfig("cap", map[string]any{"command": "exec sleep 600", "cpu": 100, "stopTimeoutSeconds": 1, "restartPolicy": "never",
		"availablePorts": map[string]int{"min": 21640, "max": 21649}})
	a, b := e.create("cap"), e.create("cap")
	resp := e.do("POST", "/api/instances", e.admin, `{"configurationName":"cap"}`)
	if body := readAll(resp); resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "full: cpu 200 of 200") {
		t.Fatalf("a third instance of cpu 100 on a node of cpu 200: %d %s", resp.StatusCode, body)
	}
	if resp := e.do("PATCH", "/api/instances/"+a.ID+"/lifecycle?target=stop", e.admin, ""); resp.StatusCode/100 != 2 {
		t.Fatalf("stop: %d %s", resp.StatusCode, readAll(resp))
	}
	e.waitState(a.ID, "STOPPED")
	c := e.create("cap") // takes the room a left
	if resp := e.do("PATCH", "/api/instances/"+a.ID+"/lifecycle?target=start", e.admin, ""); resp.StatusCode/100 != 2 {
		t.Fatalf("start: %d %s", resp.StatusCode, readAll(resp))
	}
	got := e.waitState(a.ID, "OFFLINE")
	if !strings.Contains(got.Reason, "node-1 is full: cpu 200 of 200") || got.ProcessPid != nil {
		t.Fatalf("a start over the node's capacity: %+v", got)
	}
	n := decode[api.ClusterNode](t, e.do("GET", "/api/cluster/nodes/node-1", e.admin, ""))
	if n.Capacity.CPU != 200 || n.Resources.UsedCPU != 200 {
		t.Fatalf("the master's node: capacity %+v, reserved %+v (b %s, c %s)", n.Capacity, n.Resources, b.ID, c.ID)
	}
	// Labels: the master's own node has none, so a configuration that
	// asks for one has nowhere to go, and says why.
	e.putConfig("eu", map[string]any{"command": "exec sleep 600", "cpu": 1, "nodeLabels": map[string]string{"zone": "eu"},
		"availablePorts": map[string]int{"min": 21650, "max": 21659}})
	resp = e.do("POST", "/api/instances", e.admin, `{"configurationName":"eu"}`)
	if body := readAll(resp); resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "label zone=eu does not match") {
		t.Fatalf("a configuration whose labels no node has: %d %s", resp.StatusCode, body)
	}
	audit := decode[[]api.AuditEntry](t, e.do("GET", "/api/audit", e.admin, ""))
	seen := map[string]bool{}
	for _, a := range audit {
		if strings.Contains(a.Command, "/lifecycle") {
			seen[a.Command[strings.LastIndex(a.Command, " ")+1:]] = true
		}
	}
	if !seen["action=stop"] || !seen["action=start"] {
		t.Fatalf("lifecycle audit entries do not name the action: %+v", audit)
	}
}

// A start that fails follows the restart policy's backoff instead of
// ending there: refused for capacity, it is tried again, and starts by
// itself once there is room.
func TestFailedStartIsRetried(t *testing.T) {
	e := newEnv(t, func(c *master.Config) {
		c.LocalCapacity = api.NodeCapacity{CPU: 100}
		fastBackoff(c)
	})
	e.putConfig("retry", map[string]any{"command": "exec sleep 60", "cpu": 100, "stopTimeoutSeconds": 1, "restartPolicy": "always",
		"availablePorts": map[string]int{"min": 21760, "max": 21769}})
	a := e.create("retry")
	if r := e.do("PATCH", "/api/instances/"+a.ID+"/lifecycle?target=stop", e.admin, ""); r.StatusCode/100 != 2 {
		t.Fatal(r.StatusCode)
	}
	e.waitState(a.ID, "STOPPED")
	b := e.create("retry") // takes the room
	if r := e.do("PATCH", "/api/instances/"+a.ID+"/lifecycle?target=start", e.admin, ""); r.StatusCode/100 != 2 {
		t.Fatal(r.StatusCode)
	}
	waitUntil(t, "a's failed start to be retried", 10*time.Second, func() bool {
		got := e.info(a.ID)
		return got.State == "OFFLINE" && strings.Contains(got.Reason, "full") && got.NextRestartAt > 0
	})
	if r := e.do("DELETE", "/api/instances/"+b.ID, e.admin, ""); r.StatusCode != 204 {
		t.Fatal(r.StatusCode)
	}
	waitUntil(t, "a to start by itself once there is room", 10*time.Second, func() bool {
		got := e.info(a.ID)
		return got.State == "ONLINE" && got.ProcessPid != nil
	})
}
