package agent

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/nats-io/nats.go"
	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/cluster"
	"github.com/universe-orchestrator/universe/instance/files"
	"github.com/universe-orchestrator/universe/instance/stats"
	"github.com/universe-orchestrator/universe/instance/template"
)

var uploadRE = regexp.MustCompile(`^[a-z0-9]{8,40}$`)

// uploadTTL is how long an unfinished upload's chunks are kept.
const uploadTTL = time.Hour

func filesReply(m *nats.Msg, rep cluster.FilesReply, err error) {
	if err != nil {
		rep = cluster.FilesReply{Error: universe.ErrorMessage(err), Code: universe.ErrorCode(err)}
	}
	b, _ := json.Marshal(rep)
	_ = m.Respond(b)
}

// handleFiles serves the master's file operations on an instance's
// working folder, with the same rules as on the master (package files).
func (r *runner) handleFiles(m *nats.Msg) {
	var req cluster.FilesRequest
	if json.Unmarshal(m.Data, &req) != nil || !idRE.MatchString(req.Instance) {
		filesReply(m, cluster.FilesReply{}, universe.Errorf(universe.EINVALID, "bad files request"))
		return
	}
	r.mu.Lock()
	_, known := r.runs[req.Instance]
	r.mu.Unlock()
	if !known {
		filesReply(m, cluster.FilesReply{}, universe.Errorf(universe.ENOTFOUND, "no instance %s on this node", req.Instance))
		return
	}
	d := files.Dir{Path: r.workDir(req.Instance)}
	switch req.Op {
	case cluster.FilesList:
		list, truncated, err := d.List(req.Path, req.Recursive)
		filesReply(m, cluster.FilesReply{Entries: list, Truncated: truncated}, err)
	case cluster.FilesRead:
		f, fi, err := d.Open(req.Path)
		if err != nil {
			filesReply(m, cluster.FilesReply{}, err)
			return
		}
		defer f.Close()
		buf := make([]byte, cluster.FileChunk)
		n, err := f.ReadAt(buf, req.Offset)
		if err != nil && !errors.Is(err, io.EOF) {
			filesReply(m, cluster.FilesReply{}, err)
			return
		}
		filesReply(m, cluster.FilesReply{Data: buf[:n], Size: fi.Size(), EOF: req.Offset+int64(n) >= fi.Size()}, nil)
	case cluster.FilesWrite:
		filesReply(m, cluster.FilesReply{}, r.writeChunk(d, req))
	case cluster.FilesRemove:
		filesReply(m, cluster.FilesReply{}, d.Remove(req.Path))
	case cluster.FilesMkdir:
		filesReply(m, cluster.FilesReply{}, d.Mkdir(req.Path))
	case cluster.FilesRename:
		filesReply(m, cluster.FilesReply{}, d.Rename(req.Path, req.To))
	case cluster.FilesUnzip:
		// A large archive takes a while: apart from the subscription's
		// goroutine, so that other file requests are not held up.
		go func() {
			out, err := d.Unzip(req.Path, req.To, template.ImportLimits{})
			filesReply(m, cluster.FilesReply{Unzipped: out}, err)
		}()
	default:
		filesReply(m, cluster.FilesReply{}, universe.Errorf(universe.EINVALID, "unknown files operation %q", req.Op))
	}
}

// writeChunk appends one chunk of an upload to its file under
// <data>/uploads; the final one puts the file in place (atomically, by the
// rules of files.Dir) and removes the upload.
func (r *runner) writeChunk(d files.Dir, req cluster.FilesRequest) error {
	if !uploadRE.MatchString(req.Upload) || len(req.Data) > cluster.FileChunk {
		return universe.Errorf(universe.EINVALID, "bad upload")
	}
	dir := filepath.Join(r.dir, "uploads")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if req.Offset == 0 { // a new upload: forget the abandoned ones
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > uploadTTL {
				_ = os.Remove(filepath.Join(dir, e.Name()))
			}
		}
	}
	tmp := filepath.Join(dir, req.Upload)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if fi, err := f.Stat(); err != nil || fi.Size() != req.Offset {
		f.Close()
		return universe.Errorf(universe.ECONFLICT, "upload chunk out of order")
	}
	_, err = f.WriteAt(req.Data, req.Offset)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil || !req.Final {
		return err
	}
	defer os.Remove(tmp)
	src, err := os.Open(tmp)
	if err != nil {
		return err
	}
	defer src.Close()
	_, err = d.Write(req.Path, src)
	return err
}

// handleStats answers the CPU and memory samples of an instance here.
func (r *runner) handleStats(m *nats.Msg) {
	var req cluster.InstanceRequest
	_ = json.Unmarshal(m.Data, &req)
	st, _ := r.stats.GetNow(req.Instance)
	b, _ := json.Marshal(cluster.StatsReply{Stats: st})
	_ = m.Respond(b)
}

// statTargets lists this node's running instances for the sampler.
func (r *runner) statTargets() []stats.Target {
	var out []stats.Target
	for _, ru := range r.all() {
		if ru.ended() {
			continue
		}
		if pid := ru.cl.Pid(); pid > 0 {
			out = append(out, stats.Target{ID: ru.id, PID: pid})
		}
	}
	return out
}
