package backup_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/backup"
)

type memStore struct {
	mu sync.Mutex
	m  map[string]api.Backup
}

func (s *memStore) PutBackup(b api.Backup) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[b.ID] = b
	return nil
}
func (s *memStore) GetBackup(id string) (api.Backup, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[id], nil
}
func (s *memStore) DeleteBackup(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
	return nil
}
func (s *memStore) Backups(string) ([]api.Backup, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []api.Backup
	for _, b := range s.m {
		out = append(out, b)
	}
	return out, nil
}

// remoteTarget records what is deleted from it.
type remoteTarget struct {
	mu      sync.Mutex
	deleted []string
}

func (t *remoteTarget) Put(context.Context, string, io.Reader) error { return nil }
func (t *remoteTarget) Open(context.Context, string) (io.ReadCloser, error) {
	return nil, io.EOF
}
func (t *remoteTarget) Delete(_ context.Context, key string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.deleted = append(t.deleted, key)
	return nil
}

// TestRecoverClearsRemoteLeftovers: a backup a stopped master left
// RUNNING becomes FAILED, and what it may have left under its key on a
// remote target is deleted; a completed one is left alone.
func TestRecoverClearsRemoteLeftovers(t *testing.T) {
	st := &memStore{m: map[string]api.Backup{
		"b1": {ID: "b1", InstanceID: "i1", Target: "offsite", State: api.BackupRunning},
		"b2": {ID: "b2", InstanceID: "i1", Target: "offsite", State: api.BackupCompleted},
		"b3": {ID: "b3", InstanceID: "i2", Target: backup.LocalTarget, State: api.BackupPending},
	}}
	remote := &remoteTarget{}
	s := backup.New(st, map[string]backup.Target{"offsite": remote, backup.LocalTarget: backup.Local{Dir: t.TempDir()}}, slog.New(slog.DiscardHandler), backup.Hooks{})
	n, err := s.Recover()
	if err != nil || n != 2 {
		t.Fatalf("Recover: %d, %v", n, err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		remote.mu.Lock()
		got := append([]string(nil), remote.deleted...)
		remote.mu.Unlock()
		if len(got) == 1 && got[0] == backup.Key("i1", "b1") {
			break
		}
		if len(got) > 1 || time.Now().After(deadline) {
			t.Fatalf("deleted from the remote target: %v", got)
		}
	}
	s.Close()
	if b, _ := st.GetBackup("b1"); b.State != api.BackupFailed {
		t.Fatalf("b1: %+v", b)
	}
	if b, _ := st.GetBackup("b2"); b.State != api.BackupCompleted {
		t.Fatalf("b2: %+v", b)
	}
}
