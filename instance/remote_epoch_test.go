package instance_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/instance"
	"github.com/universe-orchestrator/universe/instance/supervisor"
	"github.com/universe-orchestrator/universe/storage"
)

// epochRemote is a node that records, when told to start an instance,
// the epoch it was told and the one the master's stored record held at
// that moment; it then refuses the start.
type epochRemote struct {
	db     *storage.DB
	mu     sync.Mutex
	told   []int64
	stored []int64
}

func (r *epochRemote) Place(api.Configuration, func(string) instance.NodeUsage) (string, int, bool, error) {
	return "edge-1", 30000, false, nil
}

func (r *epochRemote) Start(node string, epoch int64, spec supervisor.Spec, _ instance.Install, _ supervisor.Sink) (instance.Process, error) {
	recs, _ := r.db.ListInstances()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.told = append(r.told, epoch)
	for _, rec := range recs {
		if rec.ID == spec.InstanceID {
			r.stored = append(r.stored, rec.StartedAt)
		}
	}
	return nil, errors.New("the node is away")
}

func (r *epochRemote) Adopt(string, string, int64, int, supervisor.Sink) instance.Process { return nil }

func (r *epochRemote) Fits(string, api.Configuration, instance.NodeUsage) error { return nil }

// A node's process is known by its start's epoch, so the record holds it
// before the node is told to start (a master that takes over in between
// expects that process, instead of having the node kill it as stale): at
// the first start, from the record Create wrote, and at the next.
func TestRemoteStartEpochStoredFirst(t *testing.T) {
	db, err := storage.Open(t.TempDir(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.PutConfiguration(api.Configuration{Name: "far", Command: "sleep 60", AvailablePorts: api.Ports{Min: 30000, Max: 30010}}); err != nil {
		t.Fatal(err)
	}
	rem := &epochRemote{db: db}
	clock := time.UnixMilli(1_700_000_000_000)
	var clockMu sync.Mutex
	m := instance.New(instance.Options{DataDir: t.TempDir(), Store: db, Remote: rem, Now: func() time.Time {
		clockMu.Lock()
		defer clockMu.Unlock()
		clock = clock.Add(time.Millisecond) // every reading a later epoch
		return clock
	}})
	if err := m.Open(); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	info, err := m.Create("far", "test")
	if err != nil {
		t.Fatal(err)
	}
	in, err := m.Get(info.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := in.StartWait("test"); err != nil {
		t.Logf("second start: %v", err)
	}
	rem.mu.Lock()
	defer rem.mu.Unlock()
	if len(rem.told) < 2 {
		t.Fatalf("the node was told %d times, want 2", len(rem.told))
	}
	for i := range rem.told {
		if rem.stored[i] != rem.told[i] {
			t.Fatalf("start %d: the node was told epoch %d while the record held %d", i+1, rem.told[i], rem.stored[i])
		}
	}
	if rem.told[0] == rem.told[1] {
		t.Fatalf("two starts under one epoch %d", rem.told[0])
	}
}
