package agent

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/cluster"
	"github.com/universe-orchestrator/universe/instance/template"
)

// The node's copy of the master's templates: <data>/blobs/<sha256> holds
// each file's content once; <data>/templates/<group>/<name>/ is built from
// them in a staging folder and renamed into place only when complete;
// <data>/template-manifests/<group>/<name>.json records what it was built
// from (outside the template: it is not one of its files).

// manifestPath is where the manifest a template was built from is kept.
func manifestPath(dataDir string, ref cluster.TemplateRef) string {
	return filepath.Join(dataDir, "template-manifests", ref.Group, ref.Name+".json")
}

// requestTimeout bounds one request to the master.
const requestTimeout = 10 * time.Second

var hexRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// SyncStats says what a sync did.
type SyncStats struct {
	Templates  int   // templates the master has
	Installed  int   // templates (re)installed
	Removed    int   // templates the master no longer has
	Blobs      int   // files fetched
	BlobBytes  int64 // bytes fetched
	Unchanged  int   // templates already up to date
	FirstError error // the first template that could not be synced (the others were)
}

// templatesMu keeps one sync at a time (a start's and the background
// one's) and no install reading the node's copies while a sync writes
// them.
var templatesMu sync.RWMutex

// SyncTemplates brings the node's templates in line with the master's.
func SyncTemplates(ctx context.Context, nc *nats.Conn, node, dataDir string) (SyncStats, error) {
	templatesMu.Lock()
	defer templatesMu.Unlock()
	var st SyncStats
	var list cluster.TemplateList
	if err := request(ctx, nc, cluster.From(node, "tpl.list"), struct{}{}, &list); err != nil {
		return st, err
	}
	if list.Error != "" {
		return st, errors.New(list.Error)
	}
	st.Templates = len(list.Templates)
	root := filepath.Join(dataDir, "templates")
	blobs := filepath.Join(dataDir, "blobs")
	for _, d := range []string{root, blobs} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return st, err
		}
	}
	keep := map[string]bool{}
	for _, ref := range list.Templates {
		if template.ValidTemplate(ref.Group, ref.Name) != nil {
			continue // not a name the master would hand out
		}
		keep[ref.Group+"/"+ref.Name] = true
		installed, err := syncOne(ctx, nc, node, dataDir, root, blobs, ref, &st)
		switch {
		case err != nil && st.FirstError == nil:
			st.FirstError = fmt.Errorf("template %s/%s: %w", ref.Group, ref.Name, err)
		case err == nil && installed:
			st.Installed++
		case err == nil:
			st.Unchanged++
		}
	}
	// Templates the master no longer has.
	groups, _ := os.ReadDir(root)
	for _, g := range groups {
		if !g.IsDir() || strings.HasPrefix(g.Name(), ".") {
			continue
		}
		names, _ := os.ReadDir(filepath.Join(root, g.Name()))
		for _, n := range names {
			if n.IsDir() && !strings.HasPrefix(n.Name(), ".") && !keep[g.Name()+"/"+n.Name()] {
				if os.RemoveAll(filepath.Join(root, g.Name(), n.Name())) == nil {
					st.Removed++
				}
				_ = os.Remove(manifestPath(dataDir, cluster.TemplateRef{Group: g.Name(), Name: n.Name()}))
			}
		}
	}
	return st, nil
}

// syncPlan brings the node's copies of the templates of plan in line
// with the master's before a start. Each start needs a check of each of
// its templates that began after it asked, so that a file written before
// the start is there; starts that ask while a check runs share the next
// one (a fleet's starts do not each ask the master for the same
// manifest). The first error is returned; the other templates are still
// synced.
func syncPlan(ctx context.Context, nc *nats.Conn, node, dataDir string, plan []api.Template) error {
	var first error
	seen := map[string]bool{}
	for _, t := range plan {
		ref := cluster.TemplateRef{Group: t.Group, Name: t.Name}
		key := dataDir + "\x00" + ref.Group + "/" + ref.Name
		if seen[key] {
			continue
		}
		seen[key] = true
		err := checksOf(key).do(func() error {
			if err := template.ValidTemplate(ref.Group, ref.Name); err != nil {
				return err
			}
			templatesMu.Lock()
			defer templatesMu.Unlock()
			root, blobs := filepath.Join(dataDir, "templates"), filepath.Join(dataDir, "blobs")
			for _, d := range []string{root, blobs} {
				if err := os.MkdirAll(d, 0o700); err != nil {
					return err
				}
			}
			var st SyncStats
			_, err := syncOne(ctx, nc, node, dataDir, root, blobs, ref, &st)
			return err
		})
		if err != nil && first == nil {
			first = fmt.Errorf("template %s/%s: %w", ref.Group, ref.Name, err)
		}
	}
	return first
}

var (
	checksMu sync.Mutex
	checks   = map[string]*coalesced{} // data dir and template
)

func checksOf(key string) *coalesced {
	checksMu.Lock()
	defer checksMu.Unlock()
	c := checks[key]
	if c == nil {
		c = &coalesced{}
		c.cond = sync.NewCond(&c.mu)
		checks[key] = c
	}
	return c
}

// coalesced runs a function for callers that each need a run that began
// after they called: one runs at a time, and those who call meanwhile
// share the next run and its error.
type coalesced struct {
	mu      sync.Mutex
	cond    *sync.Cond
	started uint64 // runs begun
	done    uint64 // the last run ended
	running bool
	waiting int   // callers waiting for a run
	err     error // of run done
}

func (c *coalesced) do(f func() error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	need := c.started + 1 // the one under way, if any, began before this call
	for c.done < need {
		if c.running {
			c.waiting++
			c.cond.Wait()
			c.waiting--
			continue
		}
		c.running = true
		c.started++
		n := c.started
		c.mu.Unlock()
		err := f()
		c.mu.Lock()
		c.running, c.done, c.err = false, n, err
		c.cond.Broadcast()
	}
	return c.err
}

// syncOne installs one template unless the installed copy was built from
// the same manifest.
func syncOne(ctx context.Context, nc *nats.Conn, node, dataDir, root, blobs string, ref cluster.TemplateRef, st *SyncStats) (bool, error) {
	var man cluster.Manifest
	if err := request(ctx, nc, cluster.From(node, "tpl.manifest"), ref, &man); err != nil {
		return false, err
	}
	if man.Error != "" {
		return false, errors.New(man.Error)
	}
	want, _ := json.Marshal(man.Files)
	dst := filepath.Join(root, ref.Group, ref.Name)
	mpath := manifestPath(dataDir, ref)
	if have, err := os.ReadFile(mpath); err == nil && string(have) == string(want) {
		if _, err := os.Stat(dst); err == nil {
			return false, nil
		}
	}
	// Every blob first: nothing is installed from an incomplete set.
	for _, f := range man.Files {
		if f.Dir {
			continue
		}
		if !hexRE.MatchString(f.SHA256) {
			return false, fmt.Errorf("file %s: bad digest", f.Path)
		}
		if _, err := os.Stat(filepath.Join(blobs, f.SHA256)); err == nil {
			continue
		}
		n, err := fetchBlob(ctx, nc, node, blobs, f.SHA256)
		if err != nil {
			return false, fmt.Errorf("file %s: %w", f.Path, err)
		}
		st.Blobs++
		st.BlobBytes += n
	}
	// Build it beside, then swap it in.
	if err := os.MkdirAll(filepath.Join(root, ref.Group), 0o700); err != nil {
		return false, err
	}
	stage, err := os.MkdirTemp(filepath.Join(root, ref.Group), ".staging-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(stage)
	for _, f := range man.Files {
		p, err := template.CleanPath(f.Path)
		if err != nil {
			return false, fmt.Errorf("file %q: %w", f.Path, err)
		}
		target := filepath.Join(stage, filepath.FromSlash(p))
		mode := fs.FileMode(f.Mode) & fs.ModePerm
		if f.Dir {
			if err := os.MkdirAll(target, mode|0o700); err != nil {
				return false, err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
			return false, err
		}
		if err := copyFile(filepath.Join(blobs, f.SHA256), target, mode|0o600); err != nil {
			return false, err
		}
	}
	old := filepath.Join(root, ref.Group, ".old-"+ref.Name+"-"+randomSuffix())
	if err := os.Rename(dst, old); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	if err := os.Rename(stage, dst); err != nil {
		_ = os.Rename(old, dst)
		return false, err
	}
	_ = os.RemoveAll(old)
	if err := os.MkdirAll(filepath.Dir(mpath), 0o700); err != nil {
		return true, err
	}
	return true, os.WriteFile(mpath, want, 0o600)
}

// fetchBlob fetches a blob in chunks, verifies its digest and stores it.
func fetchBlob(ctx context.Context, nc *nats.Conn, node, blobs, sum string) (int64, error) {
	tmp, err := os.CreateTemp(blobs, ".fetch-")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	w := io.MultiWriter(tmp, h)
	var off, size int64 = 0, -1
	for size < 0 || off < size {
		b, _ := json.Marshal(cluster.BlobRequest{SHA256: sum, Offset: off})
		m, err := requestMsg(ctx, nc, cluster.From(node, "tpl.blob"), b)
		if err != nil {
			return 0, err
		}
		if e := m.Header.Get(cluster.HeaderError); e != "" {
			return 0, errors.New(e)
		}
		total, err := strconv.ParseInt(m.Header.Get(cluster.HeaderSize), 10, 64)
		if err != nil || total < 0 || (size >= 0 && total != size) {
			return 0, errors.New("the blob's size changed while it was fetched")
		}
		size = total
		if len(m.Data) == 0 && off < size {
			return 0, errors.New("an empty chunk")
		}
		if _, err := w.Write(m.Data); err != nil {
			return 0, err
		}
		off += int64(len(m.Data))
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return 0, fmt.Errorf("the content does not match its digest (got %s)", got[:12])
	}
	if err := tmp.Close(); err != nil {
		return 0, err
	}
	return size, os.Rename(tmp.Name(), filepath.Join(blobs, sum))
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

func request(ctx context.Context, nc *nats.Conn, subject string, req, out any) error {
	b, _ := json.Marshal(req)
	m, err := requestMsg(ctx, nc, subject, b)
	if err != nil {
		return err
	}
	return json.Unmarshal(m.Data, out)
}

// requestMsg asks the master, for at most requestTimeout and no longer
// than ctx lasts (a revoked agent does not wait on a sync to exit).
func requestMsg(ctx context.Context, nc *nats.Conn, subject string, b []byte) (*nats.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	return nc.RequestWithContext(ctx, subject, b)
}

func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
