package ha

import (
	"net"
	"strconv"
	"testing"
	"time"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/storage"
)

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// A master that was down while the log was compacted behind a snapshot
// catches up by installing the snapshot (the FSM's Restore), then the
// log: it ends with every write, and what observes the store is told.
func TestCatchUpFromASnapshot(t *testing.T) {
	secret := []byte("snapshot-test-secret-0123456789ab")
	peers := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	dbs := make([]*storage.DB, 3)
	nodes := make([]*Node, 3)
	restored := make(chan struct{}, 8)
	open := func(i int) {
		db, err := storage.Open(dirs[i], storage.Options{})
		if err != nil {
			t.Fatal(err)
		}
		db.OnApplied(func(c storage.Command) {
			if c.Op == storage.OpRestore && i == 2 {
				restored <- struct{}{}
			}
		})
		n, err := Open(Options{Bind: peers[i], Peers: peers, Secret: secret, Dir: dirs[i] + "/raft", Store: db, TrailingLogs: 5})
		if err != nil {
			t.Fatal(err)
		}
		db.SetReplicator(n)
		dbs[i], nodes[i] = db, n
	}
	for i := range 3 {
		open(i)
	}
	t.Cleanup(func() {
		for i := range 3 {
			if nodes[i] != nil {
				_ = nodes[i].Close()
				_ = dbs[i].Close()
			}
		}
	})
	leader := func() int {
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			for i, n := range nodes {
				if n != nil && n.IsLeader() {
					return i
				}
			}
		}
		t.Fatal("no leader")
		return -1
	}
	put := func(i, k int) {
		t.Helper()
		if err := dbs[i].PutConfiguration(apiConfig("c" + strconv.Itoa(k))); err != nil {
			t.Fatalf("write %d through %d: %v", k, i, err)
		}
	}
	l := leader()
	for k := range 20 {
		put(l, k)
	}
	// Master 2 goes down (not the leader); more writes; a snapshot
	// compacts the log behind them.
	if l == 2 {
		_ = nodes[2].r.LeadershipTransfer().Error()
		l = leader()
	}
	_ = nodes[2].Close()
	_ = dbs[2].Close()
	nodes[2], dbs[2] = nil, nil
	l = leader()
	for k := 20; k < 80; k++ {
		put(l, k)
	}
	if err := nodes[l].Snapshot(); err != nil {
		t.Fatal(err)
	}
	for k := 80; k < 90; k++ {
		put(l, k)
	}
	open(2)
	select {
	case <-restored:
	case <-time.After(20 * time.Second):
		t.Fatal("master 2 did not install the snapshot")
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		list, _ := dbs[2].ListConfigurations()
		if len(list) == 90 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("master 2 holds %d of 90 configurations", len(list))
		}
	}
	// A command it applies again after the restore changes nothing twice.
	if err := dbs[l].CreateKey(universe.KeyRecord{ID: "k1", Label: "after", Scope: universe.ScopeAll}, nil); err != nil {
		t.Fatal(err)
	}
}

func apiConfig(name string) api.Configuration {
	return api.Configuration{Name: name, Command: "true"}
}
