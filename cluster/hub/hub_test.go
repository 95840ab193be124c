package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/cluster"
	"github.com/universe-orchestrator/universe/cluster/agent"
	"github.com/universe-orchestrator/universe/cluster/hub"
	"github.com/universe-orchestrator/universe/storage"
)

func newHub(t *testing.T) *hub.Hub {
	t.Helper()
	db, err := storage.Open(t.TempDir(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	h := hub.New(hub.Options{Store: db, Addr: "127.0.0.1:0", Version: "test"})
	if err := h.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

func waitState(t *testing.T, h *hub.Hub, name, state string) api.ClusterNode {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := h.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		if n.State == state {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s is %s, want %s", name, n.State, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type runningAgent struct {
	cancel context.CancelFunc
	done   chan error
}

func startAgent(t *testing.T, url, cred string) *runningAgent {
	ctx, cancel := context.WithCancel(context.Background())
	a := &runningAgent{cancel: cancel, done: make(chan error, 1)}
	go func() {
		a.done <- agent.Run(ctx, agent.Options{Master: url, Credential: cred, DataDir: t.TempDir(), Version: "v-test", MaxBackoff: 200 * time.Millisecond})
	}()
	t.Cleanup(func() { cancel(); <-a.done })
	return a
}

func TestNodesJoinAreIsolatedAndRevoked(t *testing.T) {
	h := newHub(t)
	if l := h.Listening(); l != "" {
		t.Fatalf("listening on %s with no node registered", l)
	}
	a, credA, err := h.Create(api.NodeCreateRequest{Name: "node-a", RAMMB: 4096, CPU: 400, Labels: map[string]string{"zone": "eu"}})
	if err != nil {
		t.Fatal(err)
	}
	_, credB, err := h.Create(api.NodeCreateRequest{Name: "node-b"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(credA, cluster.CredentialPrefix) || a.State != api.NodeDisconnected || a.Capacity.RAMMB != 4096 {
		t.Fatalf("created %+v with %.8q...", a, credA)
	}
	if _, _, err := h.Create(api.NodeCreateRequest{Name: "node-a"}); err == nil {
		t.Fatal("a second node-a was created")
	}
	if _, _, err := h.Create(api.NodeCreateRequest{Name: "Bad.Name"}); err == nil {
		t.Fatal("a node named Bad.Name was created")
	}
	url := h.JoinURL("127.0.0.1")
	agentA := startAgent(t, url, credA)
	n := waitState(t, h, "node-a", api.NodeOnline)
	if n.Address != "127.0.0.1" || n.Version != "v-test" || n.LastHeartbeat == 0 {
		t.Fatalf("online node: %+v", n)
	}

	// Isolation: B's credential can neither report as A nor read A's
	// commands; the server refuses, whatever B's client claims.
	nameB, kpB, _ := cluster.ParseCredential(credB)
	pubB, _ := kpB.PublicKey()
	var mu sync.Mutex
	var violations []string
	ncB, err := nats.Connect(url, nats.Nkey(pubB, kpB.Sign), nats.CustomInboxPrefix(cluster.Inbox(nameB)),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			mu.Lock()
			violations = append(violations, err.Error())
			mu.Unlock()
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer ncB.Close()
	_, _ = ncB.Subscribe(cluster.To("node-a", ">"), func(*nats.Msg) { t.Error("node-b read node-a's subject") })
	_ = ncB.Publish(cluster.From("node-a", "hb"), []byte(`{"version":"forged","seq":1}`))
	_ = ncB.Publish(cluster.From("node-b", "hb"), []byte(`{"version":"b","seq":1}`))
	_ = ncB.Flush()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		got := strings.Join(violations, "\n")
		mu.Unlock()
		if strings.Count(got, "Permissions Violation") >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("violations: %q", got)
		}
	}
	time.Sleep(1100 * time.Millisecond) // A's next heartbeat
	if n, _ := h.Get("node-a"); n.Version != "v-test" {
		t.Fatalf("node-b reported as node-a: %+v", n)
	}
	if n := waitState(t, h, "node-b", api.NodeOnline); n.Version != "b" {
		t.Fatalf("node-b: %+v", n)
	}

	// Draining.
	if n, err := h.SetDraining("node-a", true); err != nil || n.State != api.NodeDraining {
		t.Fatalf("drain: %+v %v", n, err)
	}
	if n, err := h.SetDraining("node-a", false); err != nil || n.State != api.NodeOnline {
		t.Fatalf("undrain: %+v %v", n, err)
	}

	// Revocation: the agent learns it within a second and stops retrying.
	start := time.Now()
	if err := h.Revoke("node-a"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-agentA.done:
		agentA.done <- err // for the cleanup
		if !errors.Is(err, agent.ErrRevoked) {
			t.Fatalf("agent ended with %v", err)
		}
		t.Logf("revocation to the agent's exit: %v", time.Since(start))
	case <-time.After(15 * time.Second):
		t.Fatal("the revoked agent runs on")
	}
	if n, _ := h.Get("node-a"); n.State != api.NodeRevoked {
		t.Fatalf("revoked node: %+v", n)
	}
	// Its credential no longer connects.
	startAgentErr := make(chan error, 1)
	go func() {
		startAgentErr <- agent.Run(context.Background(), agent.Options{Master: url, Credential: credA, DataDir: t.TempDir(), MaxBackoff: 100 * time.Millisecond})
	}()
	select {
	case err := <-startAgentErr:
		if !errors.Is(err, agent.ErrRevoked) {
			t.Fatalf("a revoked credential: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a revoked credential is retried forever")
	}
}

// A node that sends a stream of heartbeats, each with a new boot (as
// though its agent restarted every time), costs the master one resync at a
// time and at most one a second: few requests to the node, no goroutine
// per heartbeat.
func TestHeartbeatFloodIsFolded(t *testing.T) {
	h := newHub(t)
	_, cred, err := h.Create(api.NodeCreateRequest{Name: "noisy"})
	if err != nil {
		t.Fatal(err)
	}
	node, kp, err := cluster.ParseCredential(cred)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	nc, err := nats.Connect(h.JoinURL("127.0.0.1"), nats.Nkey(pub, kp.Sign))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var mu sync.Mutex
	asked := 0
	if _, err := nc.Subscribe(cluster.To(node, "inst.expect"), func(m *nats.Msg) {
		mu.Lock()
		asked++
		mu.Unlock()
		_ = m.Respond([]byte(`{}`))
	}); err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	peak := before
	start := time.Now()
	for i := range 20000 {
		b, _ := json.Marshal(cluster.Heartbeat{Version: "x", Seq: uint64(i + 1), Boot: strconv.Itoa(i)})
		if err := nc.Publish(cluster.From(node, "hb"), b); err != nil {
			t.Fatal(err)
		}
		if i%1000 == 0 {
			peak = max(peak, runtime.NumGoroutine())
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // what the master still does with them
	peak = max(peak, runtime.NumGoroutine())
	elapsed := time.Since(start)
	mu.Lock()
	n := asked
	mu.Unlock()
	t.Logf("20000 heartbeats with new boots in %v: %d resyncs asked of the node, goroutines %d -> peak %d", elapsed, n, before, peak)
	if limit := int(elapsed/time.Second) + 3; n > limit {
		t.Fatalf("%d resyncs for one node in %v (want at most %d: one a second)", n, elapsed, limit)
	}
	if peak-before > 100 {
		t.Fatalf("goroutines grew from %d to %d under a heartbeat flood", before, peak)
	}
}
