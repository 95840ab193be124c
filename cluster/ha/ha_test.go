package ha

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/raft"

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

// trio is three masters' Raft nodes and stores in one test.
type trio struct {
	t        *testing.T
	peers    []string
	dirs     []string
	dbs      []*storage.DB
	nodes    []*Node
	restored chan struct{} // master 2 installed a snapshot
	opt      storage.Options
	trailing uint64
}

func newTrio(t *testing.T, opt storage.Options, trailing uint64) *trio {
	c := &trio{t: t, peers: []string{freeAddr(t), freeAddr(t), freeAddr(t)}, dirs: []string{t.TempDir(), t.TempDir(), t.TempDir()},
		dbs: make([]*storage.DB, 3), nodes: make([]*Node, 3), restored: make(chan struct{}, 8), opt: opt, trailing: trailing}
	for i := range 3 {
		c.open(i)
	}
	t.Cleanup(func() {
		for i := range 3 {
			c.close(i)
		}
	})
	return c
}

func (c *trio) open(i int) {
	db, err := storage.Open(c.dirs[i], c.opt)
	if err != nil {
		c.t.Fatal(err)
	}
	db.OnApplied(func(cmd storage.Command) {
		if cmd.Op == storage.OpRestore && i == 2 {
			c.restored <- struct{}{}
		}
	})
	n, err := Open(Options{Bind: c.peers[i], Peers: c.peers, Secret: []byte("snapshot-test-secret-0123456789ab"), Dir: c.dirs[i] + "/raft", Store: db, TrailingLogs: c.trailing})
	if err != nil {
		c.t.Fatal(err)
	}
	db.SetReplicator(n)
	c.dbs[i], c.nodes[i] = db, n
}

func (c *trio) close(i int) {
	if c.nodes[i] != nil {
		_ = c.nodes[i].Close()
		_ = c.dbs[i].Close()
		c.nodes[i], c.dbs[i] = nil, nil
	}
}

func (c *trio) leader() int {
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for i, n := range c.nodes {
			if n != nil && n.IsLeader() {
				return i
			}
		}
	}
	c.t.Fatal("no leader")
	return -1
}

// notLeader makes sure master i does not lead, and returns the leader.
func (c *trio) notLeader(i int) int {
	l := c.leader()
	if l == i {
		_ = c.nodes[i].r.LeadershipTransfer().Error()
		l = c.leader()
	}
	return l
}

func (c *trio) put(i, k int) {
	c.t.Helper()
	if err := c.dbs[i].PutConfiguration(apiConfig("c" + strconv.Itoa(k))); err != nil {
		c.t.Fatalf("write %d through %d: %v", k, i, err)
	}
}

// holds waits until master i holds n configurations.
func (c *trio) holds(i, n int) {
	c.t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		list, _ := c.dbs[i].ListConfigurations()
		if len(list) == n {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("master %d holds %d of %d configurations", i, len(list), n)
		}
	}
}

// A master that was down while the log was compacted behind a snapshot
// catches up by installing the snapshot (the FSM's Restore), then the
// log: it ends with every write, and what observes the store is told.
func TestCatchUpFromASnapshot(t *testing.T) {
	c := newTrio(t, storage.Options{}, 5)
	l := c.leader()
	for k := range 20 {
		c.put(l, k)
	}
	// Master 2 goes down (not the leader); more writes; a snapshot
	// compacts the log behind them.
	c.notLeader(2)
	c.close(2)
	l = c.leader()
	for k := 20; k < 80; k++ {
		c.put(l, k)
	}
	if err := c.nodes[l].Snapshot(); err != nil {
		t.Fatal(err)
	}
	for k := 80; k < 90; k++ {
		c.put(l, k)
	}
	c.open(2)
	select {
	case <-c.restored:
	case <-time.After(20 * time.Second):
		t.Fatal("master 2 did not install the snapshot")
	}
	c.holds(2, 90)
	// A command it applies again after the restore changes nothing twice.
	if err := c.dbs[l].CreateKey(universe.KeyRecord{ID: "k1", Label: "after", Scope: universe.ScopeAll}, nil); err != nil {
		t.Fatal(err)
	}
}

// A master whose state (committed without fsync) was left open by a boot
// of the machine that is gone starts from an empty file, set aside the
// old one, and its own snapshot and log, then the leader's, give it
// every write back.
func TestRebuiltAfterTheMachineRestarted(t *testing.T) {
	c := newTrio(t, storage.Options{Derived: true}, 1024)
	l := c.notLeader(2)
	for k := range 40 {
		c.put(l, k)
	}
	c.holds(2, 40)
	if err := c.nodes[2].Snapshot(); err != nil {
		t.Fatal(err)
	}
	for k := 40; k < 60; k++ {
		c.put(l, k)
	}
	c.holds(2, 60)
	dir := c.dirs[2]
	c.close(2)
	for k := 60; k < 70; k++ {
		c.put(l, k)
	}
	// As if the machine had stopped with master 2 running.
	if err := os.WriteFile(filepath.Join(dir, storage.FileName+".sync"), []byte("an-earlier-boot open\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.open(2)
	if c.dbs[2].Rebuilt == "" {
		t.Fatal("a state left open by an earlier boot was trusted")
	}
	c.holds(2, 70)
}

func apiConfig(name string) api.Configuration {
	return api.Configuration{Name: name, Command: "true"}
}

// A follower answers a forwarded write as soon as the leader has
// committed it; what it reads afterwards waits until it has applied
// that much itself, and no longer.
func TestReadsWaitForWhatWasAcknowledged(t *testing.T) {
	c := newTrio(t, storage.Options{}, 1024)
	l := c.notLeader(2)
	c.put(l, 0)
	c.holds(2, 1)
	f := c.nodes[2]
	// As if the leader had answered a write forwarded through master 2
	// at the next index, not applied there yet.
	want := f.AppliedIndex() + 1
	f.noteAcked(want)
	f.noteAcked(want - 1) // a lower one changes nothing
	returned := make(chan uint64, 1)
	go func() {
		f.WaitAcked()
		returned <- f.AppliedIndex()
	}()
	select {
	case <-returned:
		t.Fatal("a read went on before the acknowledged write was applied here")
	case <-time.After(200 * time.Millisecond):
	}
	c.put(l, 1)
	if got := <-returned; got < want {
		t.Fatalf("the read went on at applied index %d, before %d", got, want)
	}
	// Nothing pending: at once.
	f.WaitAcked()
}

// A leader handing over first waits until the other masters that answer
// have applied what it had: a master restarted a moment ago, thousands of
// entries behind, is not left to catch up while every write waits. A
// master that is down is not waited for.
func TestHandOverWaitsForAFollowerBehind(t *testing.T) {
	c := newTrio(t, storage.Options{}, 1024)
	l := c.notLeader(2)
	c.close(2)
	for k := range 300 {
		c.put(l, k)
	}
	start := time.Now()
	c.nodes[l].awaitFollowers(20 * time.Second)
	if waited := time.Since(start); waited > 10*time.Second {
		t.Fatalf("waited %v for a master that is down", waited)
	}
	target := c.nodes[l].AppliedIndex()
	c.open(2)
	c.nodes[l].awaitFollowers(20 * time.Second)
	if got := c.nodes[2].AppliedIndex(); got < target {
		t.Fatalf("handed over with master 2 at index %d, before %d", got, target)
	}
}

// A command raft refuses because this master does not lead, no longer
// leads, is handing over or is stopping is a 503 to try again, not a 500.
func TestRaftRefusalsAreUnavailable(t *testing.T) {
	for _, err := range []error{raft.ErrNotLeader, raft.ErrLeadershipLost, raft.ErrLeadershipTransferInProgress, raft.ErrRaftShutdown} {
		if got := universe.ErrorCode(raftError(err)); got != universe.EUNAVAILABLE {
			t.Errorf("%v: code %q, want %q", err, got, universe.EUNAVAILABLE)
		}
	}
	if got := universe.ErrorCode(raftError(raft.ErrEnqueueTimeout)); got != universe.EUNAVAILABLE {
		t.Errorf("raft's queue full: code %q, want %q", got, universe.EUNAVAILABLE)
	}
	if got := universe.ErrorCode(raftError(raft.ErrAbortedByRestore)); got != universe.EINTERNAL {
		t.Errorf("another failure: code %q", got)
	}
}

// A consistent read on a leader just elected holds every write its
// predecessor acknowledged (the last ones were committed, but the new
// leader learns so only once an entry of its own term commits); a
// follower refuses one (503).
func TestConsistentReadOnANewLeader(t *testing.T) {
	c := newTrio(t, storage.Options{}, 1024)
	const n = 200
	l := c.leader()
	for k := 0; k < n; {
		// (A busy machine may hold an election meanwhile: write again.)
		if err := c.dbs[l].PutConfiguration(apiConfig("c" + strconv.Itoa(k))); err != nil {
			if universe.ErrorCode(err) != universe.EUNAVAILABLE {
				t.Fatalf("write %d: %v", k, err)
			}
			time.Sleep(20 * time.Millisecond)
			l = c.leader()
			continue
		}
		k++
	}
	c.close(l) // at once: the others may not know the last commits yet
	nl := c.leader()
	for deadline := time.Now().Add(20 * time.Second); ; nl = c.leader() {
		err := c.nodes[nl].ConsistentRead(5 * time.Second)
		if err == nil {
			break
		}
		if universe.ErrorCode(err) != universe.EUNAVAILABLE || time.Now().After(deadline) {
			t.Fatalf("a consistent read on the new leader: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // it lost the leadership meanwhile
	}
	if list, _ := c.dbs[nl].ListConfigurations(); len(list) != n {
		t.Fatalf("the new leader's consistent read holds %d of the %d acknowledged writes", len(list), n)
	}
	f := 3 - l - nl
	if c.nodes[f].IsLeader() {
		f = nl // (the leadership moved again)
	}
	if got := universe.ErrorCode(c.nodes[f].ConsistentRead(time.Second)); got != universe.EUNAVAILABLE && !c.nodes[f].IsLeader() {
		t.Fatalf("a consistent read on a follower: %q, want %q", got, universe.EUNAVAILABLE)
	}
}
