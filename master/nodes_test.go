package master_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/cluster/agent"
	"github.com/universe-orchestrator/universe/master"
)

// Nodes through REST and the console: create (the credential shown once,
// never again, never in the audit), a real agent joins over NATS and is
// ONLINE, drain, revoke (the agent stops); the master's own node first.
func TestClusterNodes(t *testing.T) {
	e := newEnv(t, nil)
	nodes := decode[[]api.ClusterNode](t, e.do("GET", "/api/cluster/nodes", e.admin, ""))
	if len(nodes) != 1 || !nodes[0].Local || nodes[0].Name != "node-1" || nodes[0].State != api.NodeOnline {
		t.Fatalf("nodes of a lone master: %+v", nodes)
	}
	if e.m.Config().ClusterAddr == "" {
		t.Fatal("no cluster address")
	}
	resp := e.do("POST", "/api/cluster/nodes", e.admin, `{"name":"game-1","ramMB":8192,"cpu":400,"labels":{"zone":"eu"}}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %s", resp.StatusCode, readAll(resp))
	}
	created := decode[api.NodeCreated](t, resp)
	if !strings.HasPrefix(created.Key, "unvn_") || !strings.HasPrefix(created.JoinCommand, "UNIVERSE_NODE_KEY="+created.Key+" universe agent --master nats://") ||
		created.State != api.NodeDisconnected || created.Capacity.RAMMB != 8192 {
		t.Fatalf("created: %+v", created)
	}
	for _, tc := range []struct {
		body string
		want int
	}{
		{`{"name":"game-1"}`, http.StatusConflict},
		{`{"name":"node-1"}`, http.StatusConflict},
		{`{"name":"Bad Name"}`, http.StatusBadRequest},
		{`{"name":"x","ramMB":-1}`, http.StatusBadRequest},
		{`{"name":"x","ports":{"min":5,"max":1}}`, http.StatusBadRequest},
		{`{"name":`, http.StatusBadRequest},
	} {
		if resp := e.do("POST", "/api/cluster/nodes", e.admin, tc.body); resp.StatusCode != tc.want {
			t.Errorf("POST %s: %d, want %d", tc.body, resp.StatusCode, tc.want)
		}
	}
	if resp := e.do("GET", "/api/cluster/nodes", e.public, ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a PUBLIC key listed the nodes: %d", resp.StatusCode)
	}
	url := created.JoinCommand[strings.Index(created.JoinCommand, "--master ")+len("--master ") : strings.Index(created.JoinCommand, " --data")]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- agent.Run(ctx, agent.Options{Master: url, Credential: created.Key, DataDir: t.TempDir(), Version: "agent-test", MaxBackoff: 200 * time.Millisecond})
	}()
	var n api.ClusterNode
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		n = decode[api.ClusterNode](t, e.do("GET", "/api/cluster/nodes/game-1", e.admin, ""))
		if n.State == api.NodeOnline {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent did not come online: %+v", n)
		}
	}
	if n.Address != "127.0.0.1" || n.Version != "agent-test" || n.Labels["zone"] != "eu" {
		t.Fatalf("online: %+v", n)
	}
	if resp := e.do("PATCH", "/api/cluster/nodes/game-1", e.admin, `{"draining":true}`); resp.StatusCode != 200 || decode[api.ClusterNode](t, resp).State != api.NodeDraining {
		t.Fatalf("drain: %d", resp.StatusCode)
	}
	if resp := e.do("PATCH", "/api/cluster/nodes/nope", e.admin, `{"draining":true}`); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("drain an unknown node: %d", resp.StatusCode)
	}
	// The console: the same nodes; a node created there prints its join
	// line once, and the audit keeps it masked.
	out := execute(t, e, "node create game-2 --ram 2048 --cpu 200 --ports 30000-30099 --labels zone=us,tier=b")
	if !strings.Contains(out, "UNIVERSE_NODE_KEY=unvn_") {
		t.Fatalf("node create printed %q", out)
	}
	if out := execute(t, e, "cluster nodes"); !strings.Contains(out, "game-1") || !strings.Contains(out, "DRAINING") || !strings.Contains(out, "game-2") {
		t.Fatalf("cluster nodes: %q", out)
	}
	start := time.Now()
	if resp := e.do("DELETE", "/api/cluster/nodes/game-1", e.admin, ""); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	select {
	case err := <-done:
		if !errors.Is(err, agent.ErrRevoked) {
			t.Fatalf("the agent ended with %v", err)
		}
		t.Logf("revoked agent gone after %v", time.Since(start))
	case <-time.After(15 * time.Second):
		t.Fatal("the revoked agent runs on")
	}
	if n := decode[api.ClusterNode](t, e.do("GET", "/api/cluster/nodes/game-1", e.admin, "")); n.State != api.NodeRevoked {
		t.Fatalf("revoked: %+v", n)
	}
	// The credential appears nowhere after its creation.
	for _, path := range []string{"/api/cluster/nodes", "/api/audit", "/api/cluster/nodes/game-2"} {
		if body := readAll(e.do("GET", path, e.admin, "")); strings.Contains(body, created.Key) || strings.Contains(body, "unvn_") && !strings.Contains(body, "unvn_****") {
			t.Errorf("GET %s shows a node credential: %.300s", path, body)
		}
	}
	if strings.Contains(e.logs.String(), "unvn_") {
		t.Error("the master's log holds a node credential")
	}
}

// execute runs a console command through the Commands endpoint and returns
// its output.
func execute(t *testing.T, e *env, command string) string {
	t.Helper()
	resp := e.do("POST", "/api/commands/execute", e.admin, `{"command":"`+command+`"}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %d %s", command, resp.StatusCode, readAll(resp))
	}
	return strings.Join(decode[api.CommandResponse](t, resp).Output, "\n")
}

// The original console's grammar: node info and node resources without a
// name are the master's own node; node delete revokes a node and removes
// it, so its name can be used again.
func TestNodeConsoleInfoResourcesDelete(t *testing.T) {
	e := newEnv(t, func(c *master.Config) { c.LocalCapacity = api.NodeCapacity{RAMMB: 4096} })
	run := func(cmd string) []string {
		t.Helper()
		r := e.do("POST", "/api/commands/execute", e.admin, `{"command":"`+cmd+`"}`)
		if r.StatusCode != 200 {
			t.Fatalf("%s: %d %s", cmd, r.StatusCode, readAll(r))
		}
		return decode[api.CommandResponse](t, r).Output
	}
	if out := strings.Join(run("node info"), "\n"); !strings.Contains(out, `"name": "node-1"`) || !strings.Contains(out, `"local": true`) {
		t.Fatalf("node info: %s", out)
	}
	if out := strings.Join(run("node resources"), "\n"); !strings.Contains(out, "node-1") || !strings.Contains(out, "4096 MB") || !strings.Contains(out, "no limit") {
		t.Fatalf("node resources: %s", out)
	}
	if r := e.do("POST", "/api/cluster/nodes", e.admin, `{"name":"gone"}`); r.StatusCode != 201 {
		t.Fatalf("create: %d", r.StatusCode)
	}
	run("node delete gone")
	if r := e.do("GET", "/api/cluster/nodes/gone", e.admin, ""); r.StatusCode != 404 {
		t.Fatalf("a deleted node: %d", r.StatusCode)
	}
	if r := e.do("POST", "/api/cluster/nodes", e.admin, `{"name":"gone"}`); r.StatusCode != 201 {
		t.Fatalf("its name again: %d %s", r.StatusCode, readAll(r))
	}
	if r := e.do("DELETE", "/api/cluster/nodes/gone", e.admin, ""); r.StatusCode != 204 {
		t.Fatalf("revoke: %d", r.StatusCode)
	}
	if n := decode[api.ClusterNode](t, e.do("GET", "/api/cluster/nodes/gone", e.admin, "")); n.State != api.NodeRevoked {
		t.Fatalf("a revoked node stays listed until deleted: %+v", n)
	}
	if r := e.do("DELETE", "/api/cluster/nodes/gone?forget=true", e.admin, ""); r.StatusCode != 204 {
		t.Fatalf("forget: %d", r.StatusCode)
	}
	if r := e.do("GET", "/api/cluster/nodes/gone", e.admin, ""); r.StatusCode != 404 {
		t.Fatalf("a forgotten node: %d", r.StatusCode)
	}
}
