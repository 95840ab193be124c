package agent

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/cluster"
)

// An agent started over instances whose supervisors are gone (they never
// started, or died with the machine) must not reach a missing supervisor
// client in any order: the stats sampler runs at once, and requests may
// come before the exits are reported. Started many times over such a
// state, nothing panics and nothing is taken for running.
func TestRunnerOverLostSupervisors(t *testing.T) {
	_, nc := natsServer(t)
	for round := range 30 {
		dir := t.TempDir()
		for i := range 10 {
			id := "lost" + strconv.Itoa(i)
			if err := os.MkdirAll(filepath.Join(dir, "instances", id), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "instances", id, epochFile), []byte("1700000000000"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		r, err := newRunner(ctx, nc, "n"+strconv.Itoa(round), dir, slog.New(slog.DiscardHandler), []string{"/nonexistent"}, nil, "off")
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		if got := r.statTargets(); len(got) != 0 {
			t.Fatalf("round %d: lost instances sampled as running: %v", round, got)
		}
		for _, ru := range r.all() {
			if !ru.ended() {
				t.Fatalf("round %d: %s without a supervisor is not ended", round, ru.id)
			}
		}
		cancel()
	}
}

// Orders carry the term of the master that leads (cluster.TermHeader): an
// order under a lower term than one seen before comes from a deposed
// leader and does nothing but a refusal, also after the agent restarted
// (the highest term is kept on disk). A master alone sends no term.
func TestOrdersOfADeposedLeaderAreRefused(t *testing.T) {
	srv, nc := natsServer(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := newRunner(ctx, nc, "n1", dir, slog.New(slog.DiscardHandler), []string{"/nonexistent"}, nil, "off"); err != nil {
		t.Fatal(err)
	}
	signal := func(term string) cluster.Reply {
		m := nats.NewMsg(cluster.To("n1", "inst.signal"))
		if term != "" {
			m.Header.Set(cluster.TermHeader, term)
		}
		m.Data, _ = json.Marshal(cluster.InstanceRequest{Instance: "nope", Epoch: 1, Signal: 15})
		rep, err := nc.RequestMsg(m, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var r cluster.Reply
		_ = json.Unmarshal(rep.Data, &r)
		return r
	}
	stale := func(r cluster.Reply) bool { return strings.Contains(r.Error, "stale term") }
	if r := signal(""); stale(r) {
		t.Fatalf("an order without a term (a master alone) was refused: %+v", r)
	}
	if r := signal("5"); stale(r) {
		t.Fatalf("the first term seen was refused: %+v", r)
	}
	if r := signal("4"); !stale(r) || r.Code != universe.ECONFLICT {
		t.Fatalf("an order of term 4 after term 5: %+v", r)
	}
	if r := signal("6"); stale(r) {
		t.Fatalf("a newer leader's order was refused: %+v", r)
	}
	// A new agent on the same folder still refuses the old leader.
	cancel()
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	nc2, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	nc.Close()
	nc = nc2
	if _, err := newRunner(ctx2, nc2, "n1", dir, slog.New(slog.DiscardHandler), []string{"/nonexistent"}, nil, "off"); err != nil {
		t.Fatal(err)
	}
	if r := signal("5"); !stale(r) {
		t.Fatalf("after a restart, an order of term 5 after term 6: %+v", r)
	}
	if r := signal("junk"); !stale(r) {
		t.Fatalf("an unreadable term was taken: %+v", r)
	}
}

// natsServer is a NATS server on loopback and a connection to it, both
// gone with the test.
func natsServer(t *testing.T) (*server.Server, *nats.Conn) {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(srv.Shutdown)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return srv, nc
}
