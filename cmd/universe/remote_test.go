package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/storage"
)

// TestRemoteInstance runs an instance on an agent process: placed by its
// configuration's nodes, ONLINE with the node's pid, its lines in the
// master's live-log, stdin echoed; the agent SIGKILLed and started again
// re-adopts it (same pid, no line lost); the master SIGKILLed and started
// again finds it running; a stop stops it; a revoked node's instance is
// killed with its agent.
func TestRemoteInstance(t *testing.T) {
	c := newCluster(t)
	m1, admin, nodePort, base := c.m, c.admin, c.nodePort, c.m.base
	created := jsonReq[api.NodeCreated](t, "POST", base+"/api/cluster/nodes", admin, `{"name":"edge-1"}`, 201)
	agentDir := t.TempDir()
	url := "nats://127.0.0.1:" + strconv.Itoa(nodePort)
	env := []string{"UNIVERSE_NODE_KEY=" + created.Key}
	a1, _ := startAgent(t, agentDir, env, "--master", url, "--data", agentDir)
	waitFor(t, "edge-1 online", 30*time.Second, func() bool {
		return jsonReq[api.ClusterNode](t, "GET", base+"/api/cluster/nodes/edge-1", admin, "", 200).State == api.NodeOnline
	})

	// A template with a placeholder, installed on the node.
	jsonReq[any](t, "POST", base+"/api/templates/lobby/base", admin, "", 201)
	if resp, b := request(t, "PUT", base+"/api/templates/lobby/base/files/server.properties", admin, "server-port=%PORT% node=%NODE_ID%\n"); resp.StatusCode != 204 {
		t.Fatalf("put a template file: %d %s", resp.StatusCode, b)
	}
	cmd := `cat server.properties; exec 3<&0; { while read l <&3; do echo "got $l"; done; } & i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 0.01; done`
	cfg, _ := json.Marshal(api.Configuration{Command: cmd, Nodes: []string{"edge-1"}, AvailablePorts: api.Ports{Min: 21900, Max: 21909}, StopTimeoutSeconds: 2,
		TemplateInstallationConfig: api.TemplateInstallationConfig{AllOf: []api.Template{{Group: "lobby", Name: "base", Storage: "local"}}},
		FileModifications:          []string{"server.properties"}})
	jsonReq[any](t, "PUT", base+"/api/configurations/far", admin, string(cfg), 204)
	info := jsonReq[api.InstanceInfo](t, "POST", base+"/api/instances", admin, `{"configurationName":"far"}`, 201)
	if info.State != "ONLINE" || info.WrapperNodeID != "edge-1" || info.ProcessPid == nil || info.AllocatedPort != 21900 {
		t.Fatalf("created: %+v", info)
	}
	pid := int(*info.ProcessPid)
	t.Cleanup(func() { _ = syscall.Kill(-pid, syscall.SIGKILL) })
	if env, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ"); !strings.Contains(string(env), "UNIVERSE_INSTANCE_ID="+info.ID) {
		t.Fatalf("pid %d is not the instance's process", pid)
	}
	// Its limits are the node's to enforce: it says whether it does.
	if !info.LimitsEnforced && !strings.HasPrefix(info.LimitsReason, "node edge-1: ") {
		t.Fatalf("limits of a remote instance: enforced %v, reason %q", info.LimitsEnforced, info.LimitsReason)
	}
	t.Logf("limits on the node: enforced %v %s", info.LimitsEnforced, info.LimitsReason)
	if info.LimitsEnforced { // cgroup v2 here: the process is in its cgroup, with its memory limit
		cg, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
		path, ok := strings.CutPrefix(strings.TrimSpace(string(cg)), "0::")
		if !ok || !strings.HasSuffix(path, "/universe/"+info.ID) {
			t.Fatalf("the instance's process is in cgroup %q", cg)
		}
		max, _ := os.ReadFile("/sys/fs/cgroup" + path + "/memory.max")
		if strings.TrimSpace(string(max)) != strconv.Itoa(info.AllocatedRAMMB<<20) {
			t.Fatalf("memory.max %q, want %d MB", max, info.AllocatedRAMMB)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f := &logFollower{t: t, id: info.ID, frames: follow(t, ctx, base, admin, info.ID, "lines=10000")}
	f.collect(func() bool { return f.lastSeq > 20 })
	if !hasLine(f, "server-port=21900 node=edge-1") {
		t.Fatalf("the template was not installed with its placeholders on the node: %+v", f.seen[:5])
	}
	jsonReq[any](t, "POST", base+"/api/instances/"+info.ID+"/execute", admin, `{"command":"hello"}`, 204)
	f.collect(func() bool {
		n := len(f.seen)
		return n > 0 && f.seen[n-1].Line == "got hello" || hasLine(f, "got hello")
	})

	// Its files and stats, through the node: the same API as for an
	// instance on the master's machine.
	big := strings.Repeat("0123456789abcdef", 40000) // 640 KB: several chunks
	fbase := base + "/api/instances/" + info.ID + "/files"
	if resp, b := request(t, "PUT", fbase+"/world/big.dat", admin, big); resp.StatusCode != 204 {
		t.Fatalf("PUT a file on the node: %d %s", resp.StatusCode, b)
	}
	if resp, b := request(t, "GET", fbase+"/world/big.dat", admin, ""); resp.StatusCode != 200 || string(b) != big {
		t.Fatalf("GET the file back: %d, %d bytes", resp.StatusCode, len(b))
	}
	if resp, b := request(t, "GET", fbase+"/server.properties", admin, ""); resp.StatusCode != 200 || !strings.Contains(string(b), "server-port=21900") {
		t.Fatalf("GET the installed template file: %d %s", resp.StatusCode, b)
	}
	// File actions run on the node too.
	jsonReq[any](t, "POST", fbase+"/world/region", admin, `{"action":"mkdir"}`, 200)
	jsonReq[any](t, "POST", fbase+"/world/big.dat", admin, `{"action":"rename","to":"world/region/big.dat"}`, 200)
	if resp, b := request(t, "GET", fbase+"/world/region/big.dat", admin, ""); resp.StatusCode != 200 || string(b) != big {
		t.Fatalf("GET the moved file: %d, %d bytes", resp.StatusCode, len(b))
	}
	jsonReq[any](t, "POST", fbase+"/world/region/big.dat", admin, `{"action":"rename","to":"world/big.dat"}`, 200)
	listing := jsonReq[[]api.TemplateFile](t, "GET", fbase, admin, "", 200)
	if !strings.Contains(fmt.Sprint(listing), "world/big.dat") {
		t.Fatalf("listing: %+v", listing)
	}
	for _, c := range []struct {
		method, path string
		want         int
	}{{"GET", fbase + "/../../etc/passwd", 400}, {"GET", fbase + "/nope", 404}, {"DELETE", fbase + "/world", 204}, {"GET", fbase + "/world/big.dat", 404}} {
		if resp, b := request(t, c.method, c.path, admin, ""); resp.StatusCode != c.want {
			t.Fatalf("%s %s: %d, want %d (%s)", c.method, c.path, resp.StatusCode, c.want, b)
		}
	}
	waitFor(t, "stats of the remote instance", 30*time.Second, func() bool {
		st := jsonReq[api.InstanceStats](t, "GET", base+"/api/instances/"+info.ID+"/stats", admin, "", 200)
		return st.Current != nil && st.Current.MemoryBytes > 0
	})
	// Its Prometheus series, as its node reports them.
	waitFor(t, "the remote instance's series in the metrics", 30*time.Second, func() bool {
		_, b := request(t, "GET", base+"/api/metrics", "", "")
		return strings.Contains(string(b), `universe_instance_memory_bytes{configuration="far",instance="`+info.ID+`"}`) &&
			strings.Contains(string(b), `universe_instance_cpu_seconds_total{configuration="far",instance="`+info.ID+`"}`)
	})
	// A profile of its supervisor, through the node: the agent's
	// supervisor, not the master's nor the agent's own goroutines.
	if resp, b := request(t, "GET", base+"/api/instances/"+info.ID+"/debug/pprof/goroutine", admin, ""); resp.StatusCode != 200 {
		t.Fatalf("the remote supervisor's goroutine profile: %d %s", resp.StatusCode, b)
	} else if zr, err := gzip.NewReader(bytes.NewReader(b)); err != nil {
		t.Fatalf("not a gzipped profile: %v", err)
	} else if p, _ := io.ReadAll(zr); !bytes.Contains(p, []byte("instance/supervisor.(*server).serve")) || bytes.Contains(p, []byte("cluster/agent.")) {
		t.Fatalf("the goroutine profile is not the supervisor's alone")
	}

	// The agent dies; its instance runs on; a new agent adopts it.
	_ = a1.Process.Signal(syscall.SIGKILL)
	time.Sleep(300 * time.Millisecond)
	startAgent(t, agentDir, env, "--master", url, "--data", agentDir)
	resumed := f.lastSeq
	f.collect(func() bool { return f.lastSeq > resumed+100 })
	waitFor(t, "edge-1 back online", 30*time.Second, func() bool {
		return jsonReq[api.ClusterNode](t, "GET", base+"/api/cluster/nodes/edge-1", admin, "", 200).State == api.NodeOnline
	})
	got := jsonReq[api.InstanceInfo](t, "GET", base+"/api/instances/"+info.ID, admin, "", 200)
	if got.State != "ONLINE" || got.ProcessPid == nil || int(*got.ProcessPid) != pid {
		t.Fatalf("after the agent restart: %+v", got)
	}

	// The master dies; the next finds it running on its node.
	m1.signal(syscall.SIGKILL)
	m2 := startChildMaster(t, c.dir, c.port, c.args...)
	// Until the agent reconnects the instance shows its node unreachable
	// (nothing is replaced: a grace period); then it is ONLINE, same pid.
	waitFor(t, "the agent to reconnect and the instance to be ONLINE", 30*time.Second, func() bool {
		return jsonReq[api.ClusterNode](t, "GET", base+"/api/cluster/nodes/edge-1", admin, "", 200).State == api.NodeOnline &&
			jsonReq[api.InstanceInfo](t, "GET", base+"/api/instances/"+info.ID, admin, "", 200).State == "ONLINE"
	})
	got = jsonReq[api.InstanceInfo](t, "GET", base+"/api/instances/"+info.ID, admin, "", 200)
	if got.ProcessPid == nil || int(*got.ProcessPid) != pid {
		t.Fatalf("after the master restart: %+v", got)
	}

	// It dies again, where a start leaves it before the node's answer is
	// recorded: the record says CREATING under the start's epoch, with no
	// pid. The next master expects that process (the node does not kill
	// it as stale): same id, same pid, recorded once the node tells it.
	m2.signal(syscall.SIGKILL)
	db, err := storage.Open(c.dir, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := db.ListInstances()
	for _, r := range recs {
		if r.ID == info.ID {
			r.State, r.ProcessPid = "CREATING", nil
			if err := db.PutInstance(r); err != nil {
				t.Fatal(err)
			}
		}
	}
	_ = db.Close()
	startChildMaster(t, c.dir, c.port, c.args...)
	waitFor(t, "the instance adopted from a record without its pid", 30*time.Second, func() bool {
		got = jsonReq[api.InstanceInfo](t, "GET", base+"/api/instances/"+info.ID, admin, "", 200)
		return got.State == "ONLINE" && got.ProcessPid != nil && *got.ProcessPid > 0 &&
			jsonReq[api.ClusterNode](t, "GET", base+"/api/cluster/nodes/edge-1", admin, "", 200).State == api.NodeOnline
	})
	if int(*got.ProcessPid) != pid || syscall.Kill(pid, 0) != nil {
		t.Fatalf("after the master restart in a start: %+v (its process %d was killed or replaced)", got, pid)
	}
	if list := jsonReq[[]api.InstanceInfo](t, "GET", base+"/api/instances?configuration=far", admin, "", 200); len(list) != 1 {
		t.Fatalf("instances of far: %d, want 1 (nothing replaced)", len(list))
	}
	f.frames = follow(t, ctx, base, admin, info.ID, "since="+strconv.FormatUint(f.lastSeq, 10))
	jsonReq[any](t, "POST", base+"/api/instances/"+info.ID+"/execute", admin, `{"command":"again"}`, 204)
	f.collect(func() bool { return hasLine(f, "got again") && f.lastSeq > 250 })
	f.checkContiguous()

	// A stop stops it on its node.
	jsonReq[any](t, "POST", base+"/api/instances/"+info.ID+"/stop", admin, "", 202)
	waitFor(t, "the remote instance to stop", 30*time.Second, func() bool {
		return jsonReq[api.InstanceInfo](t, "GET", base+"/api/instances/"+info.ID, admin, "", 200).State == "STOPPED"
	})
	waitFor(t, "its process to end", 30*time.Second, func() bool { return syscall.Kill(pid, 0) != nil })

	// No node fits: 503 naming why.
	cfg, _ = json.Marshal(api.Configuration{Command: "sleep 60", Nodes: []string{"nope"}, AvailablePorts: api.Ports{Min: 21910, Max: 21911}})
	jsonReq[any](t, "PUT", base+"/api/configurations/nowhere", admin, string(cfg), 204)
	if resp, b := request(t, "POST", base+"/api/instances", admin, `{"configurationName":"nowhere"}`); resp.StatusCode != 503 || !strings.Contains(string(b), "nope: unknown") {
		t.Fatalf("no node: %d %s", resp.StatusCode, b)
	}
	// Revoking the node kills its instances with its agent; the master
	// takes them as lost.
	info2 := jsonReq[api.InstanceInfo](t, "POST", base+"/api/instances", admin, `{"configurationName":"far"}`, 201)
	if info2.State != "ONLINE" || info2.ProcessPid == nil {
		t.Fatalf("second instance: %+v", info2)
	}
	pid2 := int(*info2.ProcessPid)
	t.Cleanup(func() { _ = syscall.Kill(-pid2, syscall.SIGKILL) })
	jsonReq[any](t, "DELETE", base+"/api/cluster/nodes/edge-1", admin, "", 204)
	waitFor(t, "the revoked node's instance to be lost", 30*time.Second, func() bool {
		return jsonReq[api.InstanceInfo](t, "GET", base+"/api/instances/"+info2.ID, admin, "", 200).State == "OFFLINE"
	})
	waitFor(t, "its process to be killed", 30*time.Second, func() bool { return syscall.Kill(pid2, 0) != nil })
	m2.signal(syscall.SIGTERM)
}

func hasLine(f *logFollower, line string) bool {
	for _, l := range f.seen {
		if l.Line == line {
			return true
		}
	}
	return false
}

// An instance on an agent reports its state to the master with its own key,
// at the master URL it was given, as a local one does.
func TestRemoteInstanceReportsItsState(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI needs curl")
		}
		t.Skip("curl is not installed (CI installs it)")
	}
	c := newCluster(t)
	base, admin := c.m.base, c.admin
	n := jsonReq[api.NodeCreated](t, "POST", base+"/api/cluster/nodes", admin, `{"name":"edge-r"}`, 201)
	agentDir := t.TempDir()
	startAgent(t, agentDir, []string{"UNIVERSE_NODE_KEY=" + n.Key}, "--master", "nats://127.0.0.1:"+strconv.Itoa(c.nodePort), "--data", agentDir)
	waitFor(t, "edge-r online", 30*time.Second, func() bool {
		return jsonReq[api.ClusterNode](t, "GET", base+"/api/cluster/nodes/edge-r", admin, "", 200).State == api.NodeOnline
	})
	report := `curl -sf -X PUT -H "Authorization: Bearer $UNIVERSE_API_KEY" -H "Content-Type: application/json" ` +
		`"$UNIVERSE_MASTER_URL/api/instances/$UNIVERSE_INSTANCE_ID/state" -d '{"state":"ONLINE","players":7,"maxPlayers":20}' && echo reported; exec sleep 600`
	cfg, _ := json.Marshal(api.Configuration{Command: report, Nodes: []string{"edge-r"}, AvailablePorts: api.Ports{Min: 21960, Max: 21961}, StopTimeoutSeconds: 2})
	jsonReq[any](t, "PUT", base+"/api/configurations/reporter", admin, string(cfg), 204)
	info := jsonReq[api.InstanceInfo](t, "POST", base+"/api/instances", admin, `{"configurationName":"reporter"}`, 201)
	if info.ProcessPid != nil {
		pid := int(*info.ProcessPid)
		t.Cleanup(func() { _ = syscall.Kill(-pid, syscall.SIGKILL) })
	}
	waitFor(t, "the remote instance's report", 30*time.Second, func() bool {
		in := jsonReq[api.InstanceInfo](t, "GET", base+"/api/instances/"+info.ID, admin, "", 200)
		return in.Players == 7 && in.MaxPlayers == 20 && in.LastHeartbeat > 0
	})
}
