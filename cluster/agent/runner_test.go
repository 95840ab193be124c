package agent

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// An agent started over instances whose supervisors are gone (they never
// started, or died with the machine) must not reach a missing supervisor
// client in any order: the stats sampler runs at once, and requests may
// come before the exits are reported. Started many times over such a
// state, nothing panics and nothing is taken for running.
func TestRunnerOverLostSupervisors(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	defer srv.Shutdown()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
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
