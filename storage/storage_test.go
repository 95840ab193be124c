package storage_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/master/users"
	"github.com/universe-orchestrator/universe/storage"
)

func openDB(t *testing.T, dir string) *storage.DB {
	t.Helper()
	db, err := storage.Open(dir, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func rec(id, label string) universe.KeyRecord {
	return universe.KeyRecord{ID: id, Label: label, Scope: universe.ScopeAll, Hash: [32]byte{1, 2, 3}, CreatedAt: time.Unix(1700000000, 0).UTC()}
}

func TestOpenModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	openDB(t, dir)
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, storage.FileName): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), want)
		}
	}
}

func TestOpenLockedFailsFast(t *testing.T) {
	dir := t.TempDir()
	openDB(t, dir)
	start := time.Now()
	_, err := storage.Open(dir, storage.Options{Timeout: 300 * time.Millisecond})
	if !errors.Is(err, storage.ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("second open hung for %v", d)
	}
}

func TestKeysCRUD(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	if err := db.CreateKey(rec("k1", "admin"), nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		rec  universe.KeyRecord
		code string
	}{
		{"label taken", rec("k2", "admin"), universe.ECONFLICT},
		{"id taken", rec("k1", "other"), universe.ECONFLICT},
		{"label equal to an id", rec("k3", "k1"), universe.ECONFLICT},
		{"id equal to a label", rec("admin", "x"), universe.ECONFLICT},
		{"fresh", rec("k4", "ci"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := universe.ErrorCode(db.CreateKey(tt.rec, nil)); got != tt.code {
				t.Fatalf("code %q, want %q", got, tt.code)
			}
		})
	}
	used := time.Unix(1800000000, 0).UTC()
	if err := db.TouchKeys(map[string]time.Time{"k1": used, "gone": used}); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteKey("k4"); err != nil {
		t.Fatal(err)
	}
	if got := universe.ErrorCode(db.DeleteKey("k4")); got != universe.ENOTFOUND {
		t.Fatalf("delete twice: %q", got)
	}
	// Label is free again after delete.
	if err := db.CreateKey(rec("k5", "ci"), nil); err != nil {
		t.Fatal(err)
	}
	// Everything survives a reopen.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, dir)
	keys, err := db.ListKeys()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].ID != "k1" || keys[1].ID != "k5" {
		t.Fatalf("keys after reopen: %+v", keys)
	}
	if !keys[0].LastUsedAt.Equal(used) || keys[0].Hash != [32]byte{1, 2, 3} {
		t.Fatalf("k1 after reopen: %+v", keys[0])
	}
}

func TestAuditTrimsOldest(t *testing.T) {
	db := openDB(t, t.TempDir())
	storage.SetAuditLimit(db, 5)
	for i := 0; i < 12; i++ {
		if err := db.AppendAudit(universe.AuditEntry{Command: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.ListAudit(100)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 || got[0].Command != "11" || got[4].Command != "7" || got[0].Seq != 12 {
		t.Fatalf("audit: %+v", got)
	}
}

func TestAuditBoundedInBytes(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	storage.SetAuditBytes(db, 64<<10)
	big := strings.Repeat("o", 4000)
	for i := 0; i < 200; i++ {
		if err := db.AppendAudit(universe.AuditEntry{Command: fmt.Sprint(i), Output: []string{big}}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.ListAudit(1000)
	if err != nil {
		t.Fatal(err)
	}
	size := 0
	for _, e := range got {
		size += len(e.Output[0]) + 100
	}
	if len(got) < 10 || size > 64<<10+4200 || got[0].Command != "199" {
		t.Fatalf("%d entries, about %d bytes, newest %q", len(got), size, got[0].Command)
	}
	// One entry larger than the bound is still kept, alone.
	if err := db.AppendAudit(universe.AuditEntry{Command: "huge", Output: []string{strings.Repeat("h", 100<<10)}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.ListAudit(1000); len(got) != 1 || got[0].Command != "huge" {
		t.Fatalf("after a huge entry: %d entries", len(got))
	}
}

// Concurrent key creations share commits; one that conflicts fails alone,
// and every one that was acknowledged is on disk with its audit entry.
func TestGroupCommitKeepsEachWriteItsOwn(t *testing.T) {
	dir := t.TempDir()
	db, err := storage.Open(dir, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 64
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			label := fmt.Sprintf("k%d", i/2) // two writers per label: one must lose
			errs[i] = db.CreateKey(rec(fmt.Sprintf("id%02d", i), label), &universe.AuditEntry{Command: "create " + label + " " + fmt.Sprint(i)})
		}()
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch universe.ErrorCode(err) {
		case "":
			won++
		case universe.ECONFLICT:
		default:
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if won != n/2 {
		t.Fatalf("%d writes won, want %d (one per label)", won, n/2)
	}
	_ = db.Close()
	db = openDB(t, dir)
	keys, _ := db.ListKeys()
	audit, _ := db.ListAudit(1000)
	if len(keys) != n/2 || len(audit) != n/2 {
		t.Fatalf("after reopening: %d keys, %d audit entries, want %d of each", len(keys), len(audit), n/2)
	}
}

// An instance record in a cluster is the leader's write, stamped with the
// term it led in: applied under that term it holds; the same command that
// the log holds under a later term (its master was deposed meanwhile, and
// the command reached the log late) is refused, alike on every master; a
// single master's record carried into the cluster (no term) holds.
func TestInstanceRecordsFencedByTerm(t *testing.T) {
	db, err := storage.Open(t.TempDir(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	put := func(index, logTerm, cmdTerm uint64, id, state string) error {
		cmd := storage.InstancePut(api.InstanceInfo{ID: id, State: state})
		cmd.Term = cmdTerm
		b, _ := json.Marshal(cmd)
		return db.ApplyCommands([]storage.Entry{{Index: index, Term: logTerm, Data: b}})[0]
	}
	if err := put(1, 3, 3, "a", "ONLINE"); err != nil {
		t.Fatalf("a leader's write in its term: %v", err)
	}
	if err := put(2, 4, 3, "a", "OFFLINE"); err == nil {
		t.Fatal("a deposed leader's write was applied")
	}
	if err := put(3, 4, 0, "b", "ONLINE"); err != nil {
		t.Fatalf("a carried record: %v", err)
	}
	recs, err := db.ListInstances()
	if err != nil || len(recs) != 2 || recs[0].State != "ONLINE" {
		t.Fatalf("records: %+v %v", recs, err)
	}
}

// A second factor is spent in one write that checks it: a TOTP step at or
// before the last taken, or a recovery code spent already, is refused (two
// sign-ins with one code cannot both pass).
func TestSecondFactorSpentOnce(t *testing.T) {
	db := openDB(t, t.TempDir())
	if err := db.CreateUser(users.User{Name: "ann", RecoveryHashes: []string{"h1", "h2"}}); err != nil {
		t.Fatal(err)
	}
	if err := db.TakeSecondFactor("ann", 100, ""); err != nil {
		t.Fatal(err)
	}
	for _, step := range []uint64{100, 99} {
		if err := db.TakeSecondFactor("ann", step, ""); universe.ErrorCode(err) != universe.EUNAUTHORIZED {
			t.Fatalf("step %d after 100: %v", step, err)
		}
	}
	if err := db.TakeSecondFactor("ann", 0, "h2"); err != nil {
		t.Fatal(err)
	}
	if err := db.TakeSecondFactor("ann", 0, "h2"); universe.ErrorCode(err) != universe.EUNAUTHORIZED {
		t.Fatalf("a recovery code twice: %v", err)
	}
	u, _ := db.GetUser("ann")
	if u.TOTPLastStep != 100 || len(u.RecoveryHashes) != 1 || u.RecoveryHashes[0] != "h1" {
		t.Fatalf("%+v", u)
	}
}

// Queued instance writes keep their order with each other and with the
// writes that wait: each record ends as its last write, whether queued or
// waited for; a write that waits finds every write queued before it
// committed; and Close commits what is still queued.
func TestQueuedInstanceWritesKeepTheirOrder(t *testing.T) {
	dir := t.TempDir()
	db, err := storage.Open(dir, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	failed := func(err error) { t.Errorf("a queued write failed: %v", err) }
	const ids, writes = 8, 200
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("inst%d", i)
			for w := range writes {
				info := api.InstanceInfo{ID: id, ConfigurationName: "c", State: "ONLINE", AllocatedPort: w}
				if w%10 == 9 {
					if err := db.PutInstance(info); err != nil {
						t.Error(err)
						return
					}
					// Waited for: every queued write before it is in.
					got, err := instanceIn(db, id)
					if err != nil || got.AllocatedPort != w {
						t.Errorf("after a waited write %d: %+v %v", w, got, err)
						return
					}
					continue
				}
				db.PutInstanceQueued(info, failed)
			}
		}()
	}
	wg.Wait()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, dir)
	for i := range ids {
		got, err := instanceIn(db, fmt.Sprintf("inst%d", i))
		if err != nil || got.AllocatedPort != writes-1 {
			t.Fatalf("instance %d after reopening: %+v %v, want its last write (port %d)", i, got, err, writes-1)
		}
	}
}

func instanceIn(db *storage.DB, id string) (api.InstanceInfo, error) {
	list, err := db.ListInstances()
	for _, in := range list {
		if in.ID == id {
			return in, nil
		}
	}
	return api.InstanceInfo{}, fmt.Errorf("no record of %s (%v)", id, err)
}
