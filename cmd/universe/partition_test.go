package main

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/universe-orchestrator/universe/api"
)

// TestPartition: a node cut off silently (a fault proxy drops its bytes)
// is DISCONNECTED; its instance shows OFFLINE naming the node, still
// counts (nothing replaces it), and after a heal shorter than
// lostAfterSeconds is ONLINE again with the same id and pid and no line
// lost. A longer partition loses it: it is replaced under a new id on the
// other node and its record goes, and when the first node comes back it kills the stale
// process: no id runs twice, and the count goes back to the minimum.
func TestPartition(t *testing.T) {
	c := newCluster(t, "--no-local-instances")
	m, admin, nodePort, base := c.m, c.admin, c.nodePort, c.m.base
	proxy := newFaultProxy(t, "127.0.0.1:"+strconv.Itoa(nodePort))
	node := func(name string) api.ClusterNode {
		return jsonReq[api.ClusterNode](t, "GET", base+"/api/cluster/nodes/"+name, admin, "", 200)
	}
	for name, url := range map[string]string{"edge-1": "nats://" + proxy.Addr(), "edge-2": "nats://127.0.0.1:" + strconv.Itoa(nodePort)} {
		n := jsonReq[api.NodeCreated](t, "POST", base+"/api/cluster/nodes", admin, `{"name":"`+name+`"}`, 201)
		agentDir := t.TempDir()
		startAgent(t, agentDir, []string{"UNIVERSE_NODE_KEY=" + n.Key}, "--master", url, "--data", agentDir)
		waitFor(t, name+" online", 15*time.Second, func() bool { return node(name).State == api.NodeOnline })
	}
	cmd := `i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 0.01; done`
	put := func(lostAfter int) {
		cfg, _ := json.Marshal(api.Configuration{Command: cmd, Nodes: []string{"edge-1", "edge-2"}, MinimumServiceCount: 1,
			LostAfterSeconds: lostAfter, AvailablePorts: api.Ports{Min: 21920, Max: 21929}, StopTimeoutSeconds: 2})
		jsonReq[any](t, "PUT", base+"/api/configurations/part", admin, string(cfg), 204)
	}
	put(60)
	list := func() []api.InstanceInfo {
		return jsonReq[[]api.InstanceInfo](t, "GET", base+"/api/instances?configuration=part", admin, "", 200)
	}
	waitFor(t, "the minimum instance", 30*time.Second, func() bool { l := list(); return len(l) == 1 && l[0].State == "ONLINE" })
	first := list()[0]
	if first.WrapperNodeID != "edge-1" || first.ProcessPid == nil {
		t.Fatalf("first instance: %+v", first)
	}
	pid := int(*first.ProcessPid)
	t.Cleanup(func() { _ = syscall.Kill(-pid, syscall.SIGKILL) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f := &logFollower{t: t, id: first.ID, frames: follow(t, ctx, base, admin, first.ID, "lines=10000")}
	f.collect(func() bool { return f.lastSeq > 20 })

	// A short partition.
	proxy.Freeze()
	frozen := time.Now()
	waitFor(t, "edge-1 to be seen disconnected", 30*time.Second, func() bool { return node("edge-1").State == api.NodeDisconnected })
	t.Logf("silent partition detected after %v", time.Since(frozen))
	waitFor(t, "its instance to show the partition", 30*time.Second, func() bool {
		in := jsonReq[api.InstanceInfo](t, "GET", base+"/api/instances/"+first.ID, admin, "", 200)
		return in.State == "OFFLINE" && strings.Contains(in.Reason, "edge-1 is unreachable")
	})
	time.Sleep(time.Second)
	if l := list(); len(l) != 1 {
		t.Fatalf("replaced during a short partition: %+v", l)
	}
	proxy.Thaw()
	proxy.Cut() // what the server closed meanwhile goes; the agent reconnects
	healed := time.Now()
	waitFor(t, "edge-1 back and its instance ONLINE", 30*time.Second, func() bool {
		in := jsonReq[api.InstanceInfo](t, "GET", base+"/api/instances/"+first.ID, admin, "", 200)
		return node("edge-1").State == api.NodeOnline && in.State == "ONLINE"
	})
	t.Logf("rejoined %v after the heal", time.Since(healed))
	in := jsonReq[api.InstanceInfo](t, "GET", base+"/api/instances/"+first.ID, admin, "", 200)
	if in.ProcessPid == nil || int(*in.ProcessPid) != pid {
		t.Fatalf("after the heal: %+v (pid was %d)", in, pid)
	}
	f.frames = follow(t, ctx, base, admin, first.ID, "since="+strconv.FormatUint(f.lastSeq, 10))
	f.collect(func() bool { return f.lastSeq > 600 })
	f.checkContiguous()

	// A long partition: lost and replaced elsewhere; the stale process is
	// killed when its node comes back.
	put(2)
	proxy.Freeze()
	waitFor(t, "a replacement on edge-2", 30*time.Second, func() bool {
		for _, i := range list() {
			if i.ID != first.ID && i.WrapperNodeID == "edge-2" && i.State == "ONLINE" {
				return true
			}
		}
		return false
	})
	// The lost record goes once its replacement runs.
	waitFor(t, "the lost record to go", 10*time.Second, func() bool {
		resp, _ := request(t, "GET", base+"/api/instances/"+first.ID, admin, "")
		return resp.StatusCode == 404
	})
	if syscall.Kill(pid, 0) != nil {
		t.Fatal("the partitioned process died before its node came back")
	}
	proxy.Thaw()
	proxy.Cut()
	waitFor(t, "edge-1 back", 30*time.Second, func() bool { return node("edge-1").State == api.NodeOnline })
	waitFor(t, "the stale process to be killed", 30*time.Second, func() bool { return syscall.Kill(pid, 0) != nil })
	online := 0
	for _, i := range list() {
		if i.State == "ONLINE" {
			online++
		}
	}
	if online != 1 {
		t.Fatalf("%d ONLINE instances of part, want 1: %+v", online, list())
	}
	m.signal(syscall.SIGTERM)
}

// TestLostInstanceIsReplacedWithoutMinimum: an instance of a configuration
// without a minimum count, lost with its node, is replaced all the same.
// While no node can host it the record says lost and why, and placement is
// tried again with backoff (never given up); once its node is back the
// replacement goes there under a new id, the lost record goes, and the
// stale process is killed: one instance, one process.
func TestLostInstanceIsReplacedWithoutMinimum(t *testing.T) {
	c := newCluster(t, "--no-local-instances")
	base, admin := c.m.base, c.admin
	n := jsonReq[api.NodeCreated](t, "POST", base+"/api/cluster/nodes", admin, `{"name":"edge-1"}`, 201)
	agentDir := t.TempDir()
	env := []string{"UNIVERSE_NODE_KEY=" + n.Key}
	url := "nats://127.0.0.1:" + strconv.Itoa(c.nodePort)
	a, done := startAgent(t, agentDir, env, "--master", url, "--data", agentDir)
	node := func() api.ClusterNode {
		return jsonReq[api.ClusterNode](t, "GET", base+"/api/cluster/nodes/edge-1", admin, "", 200)
	}
	waitFor(t, "edge-1 online", 15*time.Second, func() bool { return node().State == api.NodeOnline })
	cfg, _ := json.Marshal(api.Configuration{Command: "exec sleep 600", LostAfterSeconds: 1, RestartPolicy: api.RestartNever,
		AvailablePorts: api.Ports{Min: 21930, Max: 21939}, StopTimeoutSeconds: 2})
	jsonReq[any](t, "PUT", base+"/api/configurations/solo", admin, string(cfg), 204)
	first := jsonReq[api.InstanceInfo](t, "POST", base+"/api/instances", admin, `{"configurationName":"solo"}`, 201)
	if first.State != "ONLINE" || first.ProcessPid == nil {
		t.Fatalf("created: %+v", first)
	}
	pid := int(*first.ProcessPid)
	t.Cleanup(func() { _ = syscall.Kill(-pid, syscall.SIGKILL) })
	// The node goes (its agent dies; supervisors and the process live on).
	_ = a.Process.Signal(syscall.SIGKILL)
	<-done
	var lost api.InstanceInfo
	waitFor(t, "the instance to be lost, waiting for a node", 30*time.Second, func() bool {
		lost = jsonReq[api.InstanceInfo](t, "GET", base+"/api/instances/"+first.ID, admin, "", 200)
		return lost.Lost && strings.Contains(lost.Reason, "not replaced yet") && lost.NextRestartAt > 0
	})
	t.Logf("while no node can host it: %s", lost.Reason)
	if l := jsonReq[[]api.InstanceInfo](t, "GET", base+"/api/instances?configuration=solo", admin, "", 200); len(l) != 1 {
		t.Fatalf("instances while no node fits: %+v", l)
	}
	// The node comes back: the replacement goes there, the lost record
	// goes, and the stale process is killed.
	startAgent(t, agentDir, env, "--master", url, "--data", agentDir)
	var repl api.InstanceInfo
	waitFor(t, "a replacement under a new id", 60*time.Second, func() bool {
		l := jsonReq[[]api.InstanceInfo](t, "GET", base+"/api/instances?configuration=solo", admin, "", 200)
		if len(l) != 1 || l[0].ID == first.ID || l[0].State != "ONLINE" {
			return false
		}
		repl = l[0]
		return true
	})
	if resp, _ := request(t, "GET", base+"/api/instances/"+first.ID, admin, ""); resp.StatusCode != 404 {
		t.Fatalf("the lost record is still there: %d", resp.StatusCode)
	}
	waitFor(t, "the stale process to be killed", 30*time.Second, func() bool { return syscall.Kill(pid, 0) != nil })
	if repl.ProcessPid == nil || int(*repl.ProcessPid) == pid {
		t.Fatalf("replacement: %+v", repl)
	}
	t.Cleanup(func() { _ = syscall.Kill(-int(*repl.ProcessPid), syscall.SIGKILL) })
	// The event log tells the story: the node lost, the instance lost, the
	// node back, the instance replaced by the new one.
	evs := jsonReq[[]api.Event](t, "GET", base+"/api/events?instanceId="+first.ID, admin, "", 200)
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
		if e.Type == api.EventInstanceReplaced && e.Data["replacementId"] != repl.ID {
			t.Fatalf("replaced event: %+v (replacement %s)", e, repl.ID)
		}
	}
	if !slices.Contains(types, api.EventInstanceLost) || !slices.Contains(types, api.EventInstanceReplaced) {
		t.Fatalf("events of the lost instance: %v", types)
	}
	for _, typ := range []string{api.EventNodeLost, api.EventNodeBack} {
		if l := jsonReq[[]api.Event](t, "GET", base+"/api/events?type="+typ, admin, "", 200); len(l) == 0 || l[0].Node != "edge-1" {
			t.Fatalf("%s events: %+v", typ, l)
		}
	}
}

// TestNodeRunsHealthChecks: an instance on an agent node is checked by its
// node (against its port there); the node's failures, reported to the
// master, make it failing and then restart it under its policy.
func TestNodeRunsHealthChecks(t *testing.T) {
	c := newCluster(t, "--no-local-instances")
	base, admin := c.m.base, c.admin
	n := jsonReq[api.NodeCreated](t, "POST", base+"/api/cluster/nodes", admin, `{"name":"edge-1"}`, 201)
	agentDir := t.TempDir()
	startAgent(t, agentDir, []string{"UNIVERSE_NODE_KEY=" + n.Key}, "--master", "nats://127.0.0.1:"+strconv.Itoa(c.nodePort), "--data", agentDir)
	waitFor(t, "edge-1 online", 15*time.Second, func() bool {
		return jsonReq[api.ClusterNode](t, "GET", base+"/api/cluster/nodes/edge-1", admin, "", 200).State == api.NodeOnline
	})
	cfg, _ := json.Marshal(map[string]any{"command": "exec sleep 600", "restartPolicy": "always", "stopTimeoutSeconds": 1,
		"availablePorts": map[string]int{"min": 22150, "max": 22154},
		"healthCheck":    map[string]any{"type": "tcp", "intervalSeconds": 1, "timeoutSeconds": 1, "graceSeconds": 1, "failures": 2}})
	jsonReq[any](t, "PUT", base+"/api/configurations/hc", admin, string(cfg), 204)
	in := jsonReq[api.InstanceInfo](t, "POST", base+"/api/instances", admin, `{"configurationName":"hc"}`, 201)
	if in.WrapperNodeID != "edge-1" || in.Health != api.HealthUnknown {
		t.Fatalf("created: %+v", in)
	}
	t.Cleanup(func() { request(t, "DELETE", base+"/api/instances/"+in.ID, admin, "") })
	waitFor(t, "a restart after the node's failing checks", 30*time.Second, func() bool {
		return jsonReq[api.InstanceInfo](t, "GET", base+"/api/instances/"+in.ID, admin, "", 200).Restarts >= 1
	})
	resp, body := request(t, "GET", base+"/api/instances/"+in.ID+"/logs?lines=100", admin, "")
	if resp.StatusCode != 200 || !strings.Contains(string(body), "failed 2 times in a row on its node") {
		t.Fatalf("the log does not say the node's checks failed: %s", body)
	}
}
