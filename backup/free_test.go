package backup_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/backup"
)

// TestInstanceFreeOnceTheOutcomeIsTold: once a backup's record says it
// completed, or a restore's log line says it is done, the instance takes
// the next backup at once, whatever the service still does after (its
// hooks, the rotation). Both were refused (409) for a moment: a client
// that read the outcome and went on met "a backup is under way".
func TestInstanceFreeOnceTheOutcomeIsTold(t *testing.T) {
	st := &memStore{m: map[string]api.Backup{}}
	held := make(chan struct{})
	hooks := backup.Hooks{
		Done:     func(api.Backup, time.Duration) { <-held },
		Restored: func(api.Backup, error, time.Duration) { <-held },
	}
	s := backup.New(st, map[string]backup.Target{backup.LocalTarget: backup.Local{Dir: t.TempDir()}}, slog.New(slog.DiscardHandler), hooks)
	defer s.Close()
	defer close(held)
	lines := make(chan string, 16)
	sub := backup.Subject{
		ID: "mc", Configuration: "mc", Options: api.BackupOptions{Keep: 1},
		Archive: func(ctx context.Context, ignore []string, w io.Writer) (backup.Stats, error) {
			_, err := io.WriteString(w, "an archive")
			return backup.Stats{Files: 1}, err
		},
		Restore: func(ctx context.Context, open backup.Opener, sha string, truncate bool) (int, error) {
			return 1, nil
		},
		Running:   func() bool { return false },
		Execute:   func(string) error { return nil },
		WatchLine: func(string) (<-chan struct{}, func()) { return make(chan struct{}), func() {} },
		System:    func(l string) { lines <- l },
	}
	first, err := s.Create(sub, api.BackupRequest{}, "test")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for b, _ := st.GetBackup(first.ID); b.State != api.BackupCompleted; b, _ = st.GetBackup(first.ID) {
		if time.Now().After(deadline) {
			t.Fatalf("the first backup is %s", b.State)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Its Done hook is held: the service is not through with it.
	second, err := s.Create(sub, api.BackupRequest{}, "test")
	if err != nil {
		t.Fatalf("a backup once the first one's record said COMPLETED: %v", err)
	}
	for b, _ := st.GetBackup(second.ID); b.State != api.BackupCompleted; b, _ = st.GetBackup(second.ID) {
		if time.Now().After(deadline) {
			t.Fatalf("the second backup is %s", b.State)
		}
		time.Sleep(5 * time.Millisecond)
	}
	done, _ := st.GetBackup(second.ID)
	if err := s.Restore(done, sub, true, "test"); err != nil {
		t.Fatalf("a restore once the second backup's record said COMPLETED: %v", err)
	}
	for l := ""; !strings.Contains(l, "restore of backup "+second.ID+" done"); {
		select {
		case l = <-lines:
		case <-time.After(10 * time.Second):
			t.Fatal("the restore did not say it was done")
		}
	}
	// Its Restored hook is held.
	if _, err := s.Create(sub, api.BackupRequest{}, "test"); err != nil {
		t.Fatalf("a backup once the restore's line said done: %v", err)
	}
}
