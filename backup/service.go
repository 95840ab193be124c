package backup

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
)

// Store keeps the backups' records (the storage layer; in a cluster its
// writes are replicated).
type Store interface {
	PutBackup(b api.Backup) error
	GetBackup(id string) (api.Backup, error)
	DeleteBackup(id string) error
	// Backups lists the records of one instance ("" : every one).
	Backups(instanceID string) ([]api.Backup, error)
}

// Subject is the instance a backup or restore acts on, as the master sees
// it.
type Subject struct {
	ID            string
	Configuration string
	Options       api.BackupOptions
	// Archive writes the archive of the instance's folder to w, leaving
	// out what ignore (and the folder's .universeignore) match: here
	// (LocalArchive) or on the instance's node. The service measures
	// the stream's size and digest itself.
	Archive func(ctx context.Context, ignore []string, w io.Writer) (Stats, error)
	// Upload, when set, has the instance's node archive and upload it to
	// the (S3) target of that name itself, under key; it reports the
	// archive's bytes sent so far to written, and returns the node's
	// counts, size and SHA-256; ErrNoTarget when the node has no such
	// target (then Archive is used). Node is the node's name.
	Upload func(ctx context.Context, ignore []string, target, key string, written func(int64)) (Stats, int64, string, error)
	// RestoreFrom, when set, has the instance's node read the archive
	// from the (S3) target of that name itself, under key, and restore
	// it as Restore does; ErrNoTarget when the node has no such target
	// (then Restore is used).
	RestoreFrom func(ctx context.Context, target, key, sha string, truncate bool) (int, error)
	Node        string
	// Restore puts the archive (SHA-256 sha) into the instance's folder,
	// checked before anything is written, the instance stopped: here
	// (LocalRestore) or on the instance's node.
	Restore func(ctx context.Context, open Opener, sha string, truncate bool) (int, error)
	// Running reports whether the instance's process runs (a restore
	// needs it stopped).
	Running func() bool
	// Execute sends one line to the instance's stdin.
	Execute func(line string) error
	// WatchLine reports on seen when a log line holding text appears,
	// from the call on; stop ends the watch.
	WatchLine func(text string) (seen <-chan struct{}, stop func())
	// System writes a system line to the instance's log.
	System func(line string)
}

// sizer is a target that says the size of what it holds (S3).
type sizer interface {
	Size(ctx context.Context, key string) (int64, error)
}

// Hooks tell the master's metrics of finished backups and restores.
type Hooks struct {
	Done     func(b api.Backup, took time.Duration)
	Restored func(b api.Backup, err error, took time.Duration)
}

// Service runs backups and restores, one at a time per instance, each in
// its own goroutine, and keeps their records.
type Service struct {
	store   Store
	targets map[string]Target
	log     *slog.Logger
	hooks   Hooks

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	rotating sync.Mutex // one rotation at a time

	mu   sync.Mutex
	busy map[string]string // instance id: "backup" or "restore"
	// reading: backups whose archives a restore reads (not deleted).
	reading map[string]int
	// written: bytes of the archive written so far, of the backups
	// under way (their progress; not a record: it changes too often).
	written map[string]*atomic.Int64
}

// DefaultWait is how long a backup waits for its configuration's
// waitForLine when it names no waitSeconds.
const DefaultWait = 60 * time.Second

// New makes a Service over store with targets (the local one included,
// under LocalTarget).
func New(store Store, targets map[string]Target, log *slog.Logger, hooks Hooks) *Service {
	ctx, cancel := context.WithCancel(context.Background())
	return &Service{store: store, targets: targets, log: log, hooks: hooks, ctx: ctx, cancel: cancel, busy: map[string]string{}, reading: map[string]int{}, written: map[string]*atomic.Int64{}}
}

// Close cancels the backups and restores under way and waits for them
// (their records say FAILED: "the master stopped").
func (s *Service) Close() {
	s.cancel()
	s.wg.Wait()
}

// HasTarget reports whether name is a target of this master.
func (s *Service) HasTarget(name string) bool {
	_, ok := s.targets[name]
	return ok
}

// Recover marks FAILED every backup left PENDING or RUNNING by a master
// that stopped during it, or lost its lead (nothing stays pending
// forever), except those under way here, removes the partial archives of
// the local target, and, in the background, whatever such a backup left
// under its key on another target. It returns how many it failed.
func (s *Service) Recover() (int, error) {
	all, err := s.store.Backups("")
	if err != nil {
		return 0, err
	}
	n := 0
	var orphans []api.Backup // on targets other than the local folder
	for _, b := range all {
		if b.State != api.BackupPending && b.State != api.BackupRunning || s.Busy(b.InstanceID) == "backup" {
			continue // (or under way here)
		}
		b.State, b.Reason = api.BackupFailed, "the master stopped during the backup"
		now := time.Now().UTC()
		b.CompletedAt = &now
		if err := s.store.PutBackup(b); err != nil {
			return n, err
		}
		n++
		if _, local := s.targets[b.Target].(Local); !local {
			orphans = append(orphans, b)
		}
	}
	// What a failed backup may have left on a remote target (an archive a
	// node finished uploading after its master stopped asking) goes, in
	// the background: a store that does not answer does not hold up the
	// start.
	if len(orphans) > 0 {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for _, b := range orphans {
				if t, ok := s.targets[b.Target]; ok {
					ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
					_ = t.Delete(ctx, Key(b.InstanceID, b.ID))
					cancel()
				}
			}
		}()
	}
	if l, ok := s.targets[LocalTarget].(Local); ok {
		s.mu.Lock()
		underWay := make(map[string]bool, len(s.written))
		for id := range s.written {
			underWay[id] = true
		}
		s.mu.Unlock()
		if swept := l.Sweep(underWay); swept > 0 {
			s.log.Info("partial backup archives removed", "count", swept)
		}
	}
	return n, nil
}

// ValidName checks a backup's name: at most 64 bytes of UTF-8, no control
// characters.
func ValidName(name string) error {
	if len(name) > 64 {
		return universe.Errorf(universe.EINVALID, "name: at most 64 bytes (got %d)", len(name))
	}
	if !utf8.ValidString(name) {
		return universe.Errorf(universe.EINVALID, "name: not UTF-8")
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return universe.Errorf(universe.EINVALID, "name: no control characters")
		}
	}
	return nil
}

// claim marks the instance busy with what; ECONFLICT when it is already.
func (s *Service) claim(id, what string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return universe.Errorf(universe.EUNAVAILABLE, "the master is stopping")
	}
	if cur, ok := s.busy[id]; ok {
		return universe.Errorf(universe.ECONFLICT, "a %s of instance %s is under way", cur, id)
	}
	s.busy[id] = what
	s.wg.Add(1)
	return nil
}

// release undoes a claim whose work did not begin.
func (s *Service) release(id string) {
	s.free(id)
	s.wg.Done()
}

// free says the instance is no longer busy: once its backup's record or
// its restore's log line says how it ended, the next one may begin. (The
// goroutine that claimed it calls wg.Done when it ends.)
func (s *Service) free(id string) {
	s.mu.Lock()
	delete(s.busy, id)
	s.mu.Unlock()
}

// Busy reports what is under way for an instance ("" : nothing).
func (s *Service) Busy(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.busy[id]
}

// Create records a PENDING backup of sub and runs it in the background.
// Errors: EINVALID (name, ignore, target), ECONFLICT (one under way).
func (s *Service) Create(sub Subject, req api.BackupRequest, by string) (api.Backup, error) {
	if err := ValidName(req.Name); err != nil {
		return api.Backup{}, err
	}
	if len(req.Ignore) > 256 {
		return api.Backup{}, universe.Errorf(universe.EINVALID, "ignore: at most 256 patterns")
	}
	for _, p := range req.Ignore {
		if len(p) > 1024 || hasControl(p) {
			return api.Backup{}, universe.Errorf(universe.EINVALID, "ignore: each pattern at most 1024 bytes, no control characters")
		}
	}
	target := sub.Options.Target
	if target == "" {
		target = LocalTarget
	}
	if !s.HasTarget(target) {
		return api.Backup{}, universe.Errorf(universe.EINVALID, "the configuration's backup target %q is not one of this master's", target)
	}
	now := time.Now().UTC()
	b := api.Backup{
		ID: newID(), InstanceID: sub.ID, Configuration: sub.Configuration, Name: req.Name,
		Target: target, State: api.BackupPending, CreatedAt: now, By: by,
	}
	if b.Name == "" {
		b.Name = now.Format("2006-01-02 15:04:05")
	}
	if err := s.claim(sub.ID, "backup"); err != nil {
		return api.Backup{}, err
	}
	if err := s.store.PutBackup(b); err != nil {
		s.release(sub.ID)
		return api.Backup{}, err
	}
	go func() {
		defer s.wg.Done()
		s.run(sub, b, req.Ignore)
	}()
	return b, nil
}

// run takes the backup: before-commands, the archive, after-commands,
// the record, the retention.
func (s *Service) run(sub Subject, b api.Backup, ignore []string) {
	start := time.Now()
	st := start.UTC()
	b.State, b.StartedAt = api.BackupRunning, &st
	if err := s.store.PutBackup(b); err != nil {
		s.log.Error("backup record", "backup", b.ID, "err", err)
	}
	sub.System(fmt.Sprintf("backup %q (%s) started by %s", b.Name, b.ID, b.By))
	err := s.archive(sub, &b, ignore)
	end := time.Now().UTC()
	b.CompletedAt = &end
	if err != nil {
		b.State, b.Reason = api.BackupFailed, reasonOf(err, s.ctx)
		sub.System(fmt.Sprintf("backup %q (%s) FAILED: %s", b.Name, b.ID, b.Reason))
	} else {
		b.State = api.BackupCompleted
		sub.System(fmt.Sprintf("backup %q (%s) completed: %d entries, %d bytes, sha256 %s", b.Name, b.ID, b.Files, b.SizeBytes, b.SHA256))
	}
	// The record may have been locked meanwhile: keep that.
	if cur, gerr := s.store.GetBackup(b.ID); gerr == nil {
		b.Locked = cur.Locked
	}
	if err := s.store.PutBackup(b); err != nil {
		s.log.Error("backup record", "backup", b.ID, "err", err)
	}
	// Its record says how it ended: a client that saw that may begin the
	// next one at once (it was refused while the rotation below ran).
	s.free(sub.ID)
	if s.hooks.Done != nil {
		s.hooks.Done(b, time.Since(start))
	}
	if b.State == api.BackupCompleted && sub.Options.Keep > 0 {
		s.rotate(sub.ID, sub.Options.Keep)
	}
}

func (s *Service) archive(sub Subject, b *api.Backup, extra []string) (err error) {
	opt := sub.Options
	running := sub.Running()
	if running && len(opt.Before) > 0 {
		var seen <-chan struct{}
		if opt.WaitForLine != "" {
			var stop func()
			seen, stop = sub.WatchLine(opt.WaitForLine)
			defer stop()
		}
		defer func() { // the after-commands go whatever happens
			for _, l := range opt.After {
				if xerr := sub.Execute(l); xerr != nil {
					sub.System(fmt.Sprintf("backup %s: after-command not sent: %s", b.ID, universe.ErrorMessage(xerr)))
				}
			}
		}()
		for _, l := range opt.Before {
			if err := sub.Execute(l); err != nil {
				return fmt.Errorf("before-command not sent: %s", universe.ErrorMessage(err))
			}
		}
		if seen != nil {
			wait := time.Duration(opt.WaitSeconds) * time.Second
			if wait == 0 {
				wait = DefaultWait
			}
			t := time.NewTimer(wait)
			select {
			case <-seen:
			case <-t.C:
				b.WaitTimedOut = true
				sub.System(fmt.Sprintf("backup %s: %q not seen in %s; archiving anyway", b.ID, opt.WaitForLine, wait))
			case <-s.ctx.Done():
			}
			t.Stop()
		}
	} else if running && len(opt.After) > 0 {
		defer func() {
			for _, l := range opt.After {
				_ = sub.Execute(l)
			}
		}()
	}
	n := &atomic.Int64{}
	s.mu.Lock()
	s.written[b.ID] = n
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.written, b.ID)
		s.mu.Unlock()
	}()
	ignore := append(append([]string{}, opt.Ignore...), extra...)
	if sized, ok := s.targets[b.Target].(sizer); ok && sub.Upload != nil {
		// The node uploads it itself; the master checks the object's size
		// with the target (the digest only the node could see).
		st, size, digest, err := sub.Upload(s.ctx, ignore, b.Target, Key(b.InstanceID, b.ID), func(w int64) { n.Store(w) })
		switch {
		case errors.Is(err, ErrNoTarget):
			// Through the master, below.
		case err != nil:
			return err
		default:
			got, serr := sized.Size(s.ctx, Key(b.InstanceID, b.ID))
			if serr != nil {
				return fmt.Errorf("the archive node %s uploaded: %w", sub.Node, serr)
			}
			if got != size {
				_ = s.targets[b.Target].Delete(context.WithoutCancel(s.ctx), Key(b.InstanceID, b.ID))
				return fmt.Errorf("node %s reported an archive of %d bytes; the target holds %d", sub.Node, size, got)
			}
			b.Files, b.Skipped, b.Changed, b.SizeBytes, b.SHA256, b.UploadedBy = st.Files, st.Skipped, st.Changed, got, digest, sub.Node
			return nil
		}
	}
	pr, pw := io.Pipe()
	var st Stats
	var aerr error
	done := make(chan struct{})
	// The digest and size are what this master saw go to the target,
	// whoever wrote the archive.
	sum := newAsyncHash()
	cw := &countingWriter{w: io.MultiWriter(pw, sum)}
	go func() {
		defer close(done)
		st, aerr = sub.Archive(s.ctx, ignore, cw)
		pw.CloseWithError(aerr)
	}()
	perr := s.targets[b.Target].Put(s.ctx, Key(b.InstanceID, b.ID), &progressReader{pr, n})
	pr.CloseWithError(errPutFailed) // the archive stops if the target did
	<-done
	digest := sum.Sum()
	if aerr != nil && !errors.Is(aerr, errPutFailed) {
		return aerr
	}
	if perr != nil {
		return perr
	}
	b.Files, b.Skipped, b.Changed, b.SizeBytes, b.SHA256 = st.Files, st.Skipped, st.Changed, cw.n, digest
	return nil
}

type progressReader struct {
	r io.Reader
	n *atomic.Int64
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n.Add(int64(n))
	return n, err
}

// Written is how many bytes of backup id's archive are written so far
// (-1: it is not under way here).
func (s *Service) Written(id string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n, ok := s.written[id]; ok {
		return n.Load()
	}
	return -1
}

var errPutFailed = errors.New("the target stopped taking the archive")

// rotate deletes the oldest unlocked finished backups of an instance until
// at most keep unlocked ones are left. Locked ones are never deleted, and
// do not count: a locked backup is one put aside.
func (s *Service) rotate(instanceID string, keep int) {
	// One at a time: the next backup of the instance may end while this
	// one rotates (its instance is free once its record is written).
	s.rotating.Lock()
	defer s.rotating.Unlock()
	all, err := s.store.Backups(instanceID)
	if err != nil {
		return
	}
	var done []api.Backup
	for _, b := range all {
		if !b.Locked && (b.State == api.BackupCompleted || b.State == api.BackupFailed) {
			done = append(done, b)
		}
	}
	sort.Slice(done, func(i, j int) bool { return done[i].CreatedAt.Before(done[j].CreatedAt) })
	for _, b := range done[:max(0, len(done)-keep)] {
		if err := s.remove(b); err != nil {
			s.log.Warn("backup rotation", "backup", b.ID, "err", err)
		}
	}
}

// Delete removes a backup's archive and record. Errors: ENOTFOUND,
// ECONFLICT (locked, or under way).
func (s *Service) Delete(id string) error {
	b, err := s.store.GetBackup(id)
	if err != nil {
		return err
	}
	if b.Locked {
		return universe.Errorf(universe.ECONFLICT, "backup %s is locked: unlock it first", id)
	}
	if b.State == api.BackupPending || b.State == api.BackupRunning {
		return universe.Errorf(universe.ECONFLICT, "backup %s is under way", id)
	}
	s.mu.Lock()
	reading := s.reading[id] > 0
	s.mu.Unlock()
	if reading {
		return universe.Errorf(universe.ECONFLICT, "backup %s is being restored", id)
	}
	return s.remove(b)
}

func (s *Service) remove(b api.Backup) error {
	if t, ok := s.targets[b.Target]; ok {
		ctx, cancel := context.WithTimeout(s.ctx, time.Minute)
		defer cancel()
		if err := t.Delete(ctx, Key(b.InstanceID, b.ID)); err != nil {
			return universe.Errorf(universe.EUNAVAILABLE, "delete the archive of backup %s: %s", b.ID, reasonOf(err, ctx))
		}
	}
	return s.store.DeleteBackup(b.ID)
}

// SetLocked locks or unlocks a backup. Errors: ENOTFOUND.
func (s *Service) SetLocked(id string, locked bool) (api.Backup, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.store.GetBackup(id)
	if err != nil {
		return b, err
	}
	b.Locked = locked
	return b, s.store.PutBackup(b)
}

// Open reads a COMPLETED backup's archive. Errors: ECONFLICT (not
// completed), ENOTFOUND (gone from its target).
func (s *Service) Open(ctx context.Context, b api.Backup) (io.ReadCloser, error) {
	if b.State != api.BackupCompleted {
		return nil, universe.Errorf(universe.ECONFLICT, "backup %s is %s: only a COMPLETED backup has an archive", b.ID, b.State)
	}
	t, ok := s.targets[b.Target]
	if !ok {
		return nil, universe.Errorf(universe.EUNAVAILABLE, "backup %s is on target %q, which this master does not have", b.ID, b.Target)
	}
	rc, err := t.Open(ctx, Key(b.InstanceID, b.ID))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, universe.Errorf(universe.ENOTFOUND, "the archive of backup %s is gone from its target", b.ID)
	}
	if err != nil {
		return nil, universe.Errorf(universe.EUNAVAILABLE, "read the archive of backup %s: %s", b.ID, reasonOf(err, ctx))
	}
	return rc, nil
}

// Restore puts backup b into sub's folder in the background (sub must be
// stopped); the instance's log says when it is done. Errors: ECONFLICT
// (running, not completed, busy).
func (s *Service) Restore(b api.Backup, sub Subject, truncate bool, by string) error {
	if b.State != api.BackupCompleted {
		return universe.Errorf(universe.ECONFLICT, "backup %s is %s: only a COMPLETED backup can be restored", b.ID, b.State)
	}
	if !s.HasTarget(b.Target) {
		return universe.Errorf(universe.EUNAVAILABLE, "backup %s is on target %q, which this master does not have", b.ID, b.Target)
	}
	if sub.Running() {
		return universe.Errorf(universe.ECONFLICT, "instance %s is running: stop it before a restore", sub.ID)
	}
	if err := s.claim(sub.ID, "restore"); err != nil {
		return err
	}
	if sub.Running() { // started between the check and the claim
		s.release(sub.ID)
		return universe.Errorf(universe.ECONFLICT, "instance %s is running: stop it before a restore", sub.ID)
	}
	s.mu.Lock()
	s.reading[b.ID]++
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		start := time.Now()
		mode := "overlay"
		if truncate {
			mode = "truncate"
		}
		sub.System(fmt.Sprintf("restore of backup %q (%s, %s) started by %s", b.Name, b.ID, mode, by))
		open := func(ctx context.Context) (io.ReadCloser, error) { return s.Open(ctx, b) }
		var (
			n   int
			err = ErrNoTarget
			via string
		)
		if _, local := s.targets[b.Target].(Local); !local && sub.RestoreFrom != nil {
			n, err = sub.RestoreFrom(s.ctx, b.Target, Key(b.InstanceID, b.ID), b.SHA256, truncate)
			via = ", read from " + b.Target + " by node " + sub.Node
		}
		if errors.Is(err, ErrNoTarget) {
			n, err = sub.Restore(s.ctx, open, b.SHA256, truncate)
			via = ""
		}
		// Over before the log says so: a client that read the line may
		// back up, restore or delete at once.
		s.mu.Lock()
		if s.reading[b.ID]--; s.reading[b.ID] <= 0 {
			delete(s.reading, b.ID)
		}
		delete(s.busy, sub.ID)
		s.mu.Unlock()
		if err != nil {
			sub.System(fmt.Sprintf("restore of backup %s FAILED, the folder is as it was: %s", b.ID, reasonOf(err, s.ctx)))
		} else {
			sub.System(fmt.Sprintf("restore of backup %s done: %d entries%s", b.ID, n, via))
		}
		if s.hooks.Restored != nil {
			s.hooks.Restored(b, err, time.Since(start))
		}
	}()
	return nil
}

// LocalArchive is Subject.Archive for a folder on this machine.
func LocalArchive(dir string) func(ctx context.Context, ignore []string, w io.Writer) (Stats, error) {
	return func(ctx context.Context, ignore []string, w io.Writer) (Stats, error) {
		ig, err := NewIgnore(dir, ignore)
		if err != nil {
			return Stats{}, err
		}
		return ArchiveTo(ctx, dir, w, ig)
	}
}

// LocalRestore is Subject.Restore for a folder on this machine; running
// says whether its instance runs (checked again before the swap).
func LocalRestore(dir string, running func() bool) func(ctx context.Context, open Opener, sha string, truncate bool) (int, error) {
	return func(ctx context.Context, open Opener, sha string, truncate bool) (int, error) {
		return Restore(ctx, open, sha, dir, RestoreOptions{Truncate: truncate, BeforeSwap: func() error {
			if running() {
				return universe.Errorf(universe.ECONFLICT, "the instance was started during the restore")
			}
			return nil
		}})
	}
}

// Reason is an error of a backup or restore for people: what went wrong,
// without the master's paths.
func Reason(err error) string { return reasonOf(err, context.Background()) }

// reasonOf is an error as a record's reason: what went wrong, without
// the master's paths.
func reasonOf(err error, ctx context.Context) string {
	switch {
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		return "the master stopped during the backup"
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return "no space left on the target's disk"
	case errors.Is(err, ErrChecksum):
		return ErrChecksum.Error()
	}
	var ue *universe.Error
	if errors.As(err, &ue) {
		return ue.Message
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Op + ": " + pe.Err.Error()
	}
	return err.Error()
}

func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return true
		}
	}
	return false
}
