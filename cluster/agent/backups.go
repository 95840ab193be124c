package agent

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/backup"
	"github.com/universe-orchestrator/universe/cluster"
)

// Backups of this node's instances: an archive is written here into a pipe
// the master reads a chunk at a time (never a copy on disk), or uploaded
// from here to an S3 target this node has (its --backup-targets); a restore's
// archive arrives in chunks into <data>/restores, is checked and unpacked
// here (backup.Restore), and removed.

var sessionRE = regexp.MustCompile(`^[a-f0-9]{16,64}$`)

// sessionIdle ends an archive the master stopped reading.
const sessionIdle = 2 * time.Minute

type archiveSession struct {
	pr     *io.PipeReader
	cancel context.CancelFunc
	done   chan struct{}
	stats  backup.Stats
	err    error
	timer  *time.Timer
}

type backupSessions struct {
	mu sync.Mutex
	m  map[string]*archiveSession
	up map[string]*uploadSession
}

// uploadSession is an archive this node uploads to a target itself.
type uploadSession struct {
	cancel  context.CancelFunc
	timer   *time.Timer // ends an upload the master stopped asking after
	written atomic.Int64

	mu     sync.Mutex
	done   bool
	stats  backup.Stats
	size   int64
	sha256 string
	err    error
}

// register adds v to sessions (made when nil) under id, unless id is
// taken (ECONFLICT).
func register[T any](mu *sync.Mutex, sessions *map[string]T, id string, v T) error {
	mu.Lock()
	defer mu.Unlock()
	if *sessions == nil {
		*sessions = map[string]T{}
	}
	if _, dup := (*sessions)[id]; dup {
		return universe.Errorf(universe.ECONFLICT, "session %s exists", id)
	}
	(*sessions)[id] = v
	return nil
}

// unregister takes id's session out of sessions (nil when there is none).
func unregister[T any](mu *sync.Mutex, sessions map[string]*T, id string) *T {
	mu.Lock()
	defer mu.Unlock()
	v := sessions[id]
	delete(sessions, id)
	return v
}

func backupReply(m *nats.Msg, rep cluster.BackupReply, err error) {
	if err != nil {
		rep = cluster.BackupReply{Error: universe.ErrorMessage(err), Code: universe.ErrorCode(err)}
	}
	b, _ := json.Marshal(rep)
	_ = m.Respond(b)
}

// handleBackup serves the master's backup operations (cluster/backups.go).
func (r *runner) handleBackup(m *nats.Msg) {
	var req cluster.BackupRequest
	if json.Unmarshal(m.Data, &req) != nil || !idRE.MatchString(req.Instance) || !sessionRE.MatchString(req.Session) {
		backupReply(m, cluster.BackupReply{}, universe.Errorf(universe.EINVALID, "bad backup request"))
		return
	}
	r.mu.Lock()
	_, running := r.runs[req.Instance]
	r.mu.Unlock()
	dir := r.workDir(req.Instance)
	switch req.Op {
	case cluster.BackupStart:
		if _, err := os.Stat(dir); err != nil {
			backupReply(m, cluster.BackupReply{}, universe.Errorf(universe.ENOTFOUND, "no folder of instance %s on this node", req.Instance))
			return
		}
		backupReply(m, cluster.BackupReply{}, r.startArchive(req, dir))
	case cluster.BackupRead:
		// Reading may wait for the archive: apart from the subscription's
		// goroutine, so that other orders are not held up.
		go r.readArchive(m, req.Session)
	case cluster.BackupUpload:
		if _, err := os.Stat(dir); err != nil {
			backupReply(m, cluster.BackupReply{}, universe.Errorf(universe.ENOTFOUND, "no folder of instance %s on this node", req.Instance))
			return
		}
		if _, ok := r.targets[req.Target]; !ok {
			backupReply(m, cluster.BackupReply{NoTarget: true}, nil)
			return
		}
		backupReply(m, cluster.BackupReply{}, r.startUpload(req, dir))
	case cluster.RestoreFrom:
		if running {
			backupReply(m, cluster.BackupReply{}, universe.Errorf(universe.ECONFLICT, "instance %s is running: stop it before a restore", req.Instance))
			return
		}
		t, ok := r.targets[req.Target]
		if !ok {
			backupReply(m, cluster.BackupReply{NoTarget: true}, nil)
			return
		}
		if err := checkKey(req); err != nil {
			backupReply(m, cluster.BackupReply{}, err)
			return
		}
		go func() {
			open := func(ctx context.Context) (io.ReadCloser, error) { return t.Open(ctx, req.Key) }
			n, err := r.restoreWith(req, dir, open)
			backupReply(m, cluster.BackupReply{Files: n}, err)
		}()
	case cluster.BackupStatus:
		backupReply(r.uploadStatus(m, req.Session))
	case cluster.BackupAbort:
		r.endArchive(req.Session)
		r.endUpload(req.Session)
		backupReply(m, cluster.BackupReply{}, nil)
	case cluster.RestoreWrite:
		backupReply(m, cluster.BackupReply{}, r.restoreChunk(req))
	case cluster.RestoreRun:
		if running {
			backupReply(m, cluster.BackupReply{}, universe.Errorf(universe.ECONFLICT, "instance %s is running: stop it before a restore", req.Instance))
			return
		}
		go func() {
			n, err := r.runRestore(req, dir)
			backupReply(m, cluster.BackupReply{Files: n}, err)
		}()
	default:
		backupReply(m, cluster.BackupReply{}, universe.Errorf(universe.EINVALID, "unknown backup operation %q", req.Op))
	}
}

func (r *runner) startArchive(req cluster.BackupRequest, dir string) error {
	ig, err := backup.NewIgnore(dir, req.Ignore)
	if err != nil {
		return universe.Errorf(universe.EINVALID, "%s", err)
	}
	ctx, cancel := context.WithCancel(r.ctx)
	pr, pw := io.Pipe()
	s := &archiveSession{pr: pr, cancel: cancel, done: make(chan struct{})}
	s.timer = time.AfterFunc(sessionIdle, func() { r.endArchive(req.Session) })
	if err := register(&r.backups.mu, &r.backups.m, req.Session, s); err != nil {
		s.timer.Stop()
		cancel()
		return err
	}
	go func() {
		defer close(s.done)
		s.stats, s.err = backup.ArchiveTo(ctx, dir, pw, ig)
		pw.CloseWithError(s.err)
	}()
	return nil
}

// checkKey refuses a key that is not one of the instance's backups.
func checkKey(req cluster.BackupRequest) error {
	if req.Key != backup.Key(req.Instance, strings.TrimSuffix(path.Base(req.Key), ".tar.zst")) {
		return universe.Errorf(universe.EINVALID, "the key of a backup of %s is %s/<backup>.tar.zst", req.Instance, req.Instance)
	}
	return nil
}

// startUpload archives dir to the target under the request's key, in the
// background; the master asks how it goes (status) until it is done.
func (r *runner) startUpload(req cluster.BackupRequest, dir string) error {
	if err := checkKey(req); err != nil {
		return err
	}
	ig, err := backup.NewIgnore(dir, req.Ignore)
	if err != nil {
		return universe.Errorf(universe.EINVALID, "%s", err)
	}
	ctx, cancel := context.WithCancel(r.ctx)
	u := &uploadSession{cancel: cancel}
	u.timer = time.AfterFunc(sessionIdle, func() { r.endUpload(req.Session) })
	if err := register(&r.backups.mu, &r.backups.up, req.Session, u); err != nil {
		u.timer.Stop()
		cancel()
		return err
	}
	t := r.targets[req.Target]
	go func() {
		st, size, sum, err := backup.Upload(ctx, dir, ig, t, req.Key, &u.written)
		u.mu.Lock()
		u.done, u.stats, u.size, u.sha256, u.err = true, st, size, sum, err
		u.mu.Unlock()
	}()
	return nil
}

// uploadStatus answers how upload session id goes; once it is done, the
// answer has its outcome and the session ends.
func (r *runner) uploadStatus(m *nats.Msg, id string) (*nats.Msg, cluster.BackupReply, error) {
	r.backups.mu.Lock()
	u := r.backups.up[id]
	r.backups.mu.Unlock()
	if u == nil {
		return m, cluster.BackupReply{}, universe.Errorf(universe.ENOTFOUND, "no upload session %s (it ended)", id)
	}
	u.timer.Reset(sessionIdle)
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.done {
		return m, cluster.BackupReply{Written: u.written.Load()}, nil
	}
	r.endUpload(id)
	rep := cluster.BackupReply{Done: true, Written: u.written.Load(), Files: u.stats.Files, Skipped: u.stats.Skipped, Changed: u.stats.Changed, Size: u.size, SHA256: u.sha256}
	if u.err != nil {
		rep.Error, rep.Code = backup.Reason(u.err), universe.EUNAVAILABLE
	}
	return m, rep, nil
}

func (r *runner) endUpload(id string) {
	if u := unregister(&r.backups.mu, r.backups.up, id); u != nil {
		u.timer.Stop()
		u.cancel()
	}
}

func (r *runner) readArchive(m *nats.Msg, id string) {
	r.backups.mu.Lock()
	s := r.backups.m[id]
	r.backups.mu.Unlock()
	if s == nil {
		backupReply(m, cluster.BackupReply{}, universe.Errorf(universe.ENOTFOUND, "no archive session %s (it ended)", id))
		return
	}
	s.timer.Reset(sessionIdle)
	buf := make([]byte, cluster.FileChunk)
	n, err := io.ReadFull(s.pr, buf)
	switch {
	case err == nil:
		backupReply(m, cluster.BackupReply{Data: buf[:n]}, nil)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		<-s.done
		r.endArchive(id)
		backupReply(m, cluster.BackupReply{Data: buf[:n], EOF: true, Files: s.stats.Files, Skipped: s.stats.Skipped, Changed: s.stats.Changed}, nil)
	default:
		r.endArchive(id)
		backupReply(m, cluster.BackupReply{}, universe.Errorf(universe.EUNAVAILABLE, "archive: %s", err))
	}
}

func (r *runner) endArchive(id string) {
	if s := unregister(&r.backups.mu, r.backups.m, id); s != nil {
		s.timer.Stop()
		s.cancel()
		_ = s.pr.CloseWithError(errors.New("the session ended"))
	}
}

func (r *runner) restoreFile(session string) string {
	return filepath.Join(r.dir, "restores", session+".tar.zst")
}

// restoreChunk appends one chunk at its offset (in order only).
func (r *runner) restoreChunk(req cluster.BackupRequest) error {
	if len(req.Data) > cluster.FileChunk {
		return universe.Errorf(universe.ETOOLARGE, "chunk over %d bytes", cluster.FileChunk)
	}
	p := r.restoreFile(req.Session)
	if req.Offset == 0 {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		sweepRestores(filepath.Dir(p))
	}
	flags := os.O_WRONLY | os.O_APPEND
	if req.Offset == 0 {
		flags |= os.O_CREATE | os.O_EXCL
	}
	f, err := os.OpenFile(p, flags, 0o600)
	if err != nil {
		return universe.Errorf(universe.ENOTFOUND, "restore session %s: %s", req.Session, universe.ErrorMessage(err))
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || st.Size() != req.Offset {
		return universe.Errorf(universe.ECONFLICT, "restore session %s: a chunk out of order", req.Session)
	}
	_, err = f.Write(req.Data)
	return err
}

// sweepRestores removes archives of restores left over an hour ago.
func sweepRestores(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > time.Hour {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

func (r *runner) runRestore(req cluster.BackupRequest, dir string) (int, error) {
	p := r.restoreFile(req.Session)
	defer os.Remove(p)
	open := func(context.Context) (io.ReadCloser, error) {
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, universe.Errorf(universe.ENOTFOUND, "restore session %s: no archive", req.Session)
		}
		return f, err
	}
	return r.restoreWith(req, dir, open)
}

// restoreWith restores the archive open reads (checked against the
// request's SHA256 first) into dir, the instance stopped.
func (r *runner) restoreWith(req cluster.BackupRequest, dir string, open backup.Opener) (int, error) {
	n, err := backup.Restore(r.ctx, open, req.SHA256, dir, backup.RestoreOptions{Truncate: req.Truncate, BeforeSwap: func() error {
		r.mu.Lock()
		_, running := r.runs[req.Instance]
		r.mu.Unlock()
		if running {
			return universe.Errorf(universe.ECONFLICT, "the instance was started during the restore")
		}
		return nil
	}})
	var ue *universe.Error
	switch {
	case err == nil, errors.As(err, &ue):
	case errors.Is(err, backup.ErrChecksum):
		err = universe.Errorf(universe.ECONFLICT, "%s", backup.ErrChecksum.Error())
	default:
		err = universe.Errorf(universe.EUNAVAILABLE, "%s", err)
	}
	return n, err
}
