package main

import (
	"context"
	"encoding/json"
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
// other node, and when the first node comes back it kills the stale
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
	if in := jsonReq[api.InstanceInfo](t, "GET", base+"/api/instances/"+first.ID, admin, "", 200); in.State != "OFFLINE" || !strings.Contains(in.Reason, "lost") {
		t.Fatalf("the partitioned instance: %+v", in)
	}
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
