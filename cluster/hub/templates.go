package hub

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/cluster"
)

// Templates is the master's template store, as the hub serves it to nodes.
type Templates interface {
	List() ([]api.TemplateInfo, error)
	Names() ([]api.Template, error)
	Files(group, name string) ([]api.TemplateFile, error)
	OpenFile(group, name, path string) (*os.File, fs.FileInfo, error)
}

// maxManifestFiles bounds one manifest (it must fit a NATS message).
const maxManifestFiles = 5000

// digests remembers each file's SHA-256 while its size and time stay the
// same, so a manifest does not read every file again; and which file holds
// a digest, to serve blobs.
type digests struct {
	mu     sync.Mutex
	byFile map[string]fileDigest // group/name/path
	byHash map[string]blobPlace
	filled time.Time // the last fill
}

type fileDigest struct {
	size, mtime int64
	sum         string
}

type blobPlace struct{ group, name, path string }

// fillEvery bounds how often a digest no manifest of this master named
// makes it digest every template.
const fillEvery = time.Second

// fill digests every file of every template (a node's blob request that
// this master saw no manifest for: with masters in a cluster, another
// master may have answered the manifest), at most once per fillEvery.
func (d *digests) fill(t Templates) {
	d.mu.Lock()
	if time.Since(d.filled) < fillEvery {
		d.mu.Unlock()
		return
	}
	d.filled = time.Now()
	d.mu.Unlock()
	infos, err := t.Names()
	if err != nil {
		return
	}
	for _, i := range infos {
		files, err := t.Files(i.Group, i.Name)
		if err != nil {
			continue
		}
		for _, f := range files {
			if !f.Dir {
				_, _ = d.sum(t, i.Group, i.Name, f)
			}
		}
	}
}

func (d *digests) sum(t Templates, group, name string, f api.TemplateFile) (string, error) {
	key := group + "/" + name + "/" + f.Path
	d.mu.Lock()
	if fd, ok := d.byFile[key]; ok && fd.size == f.Size && fd.mtime == f.ModTime {
		d.byHash[fd.sum] = blobPlace{group, name, f.Path}
		d.mu.Unlock()
		return fd.sum, nil
	}
	d.mu.Unlock()
	file, _, err := t.OpenFile(group, name, f.Path)
	if err != nil {
		return "", err
	}
	defer file.Close()
	h := sha256.New()
	if _, err := io.Copy(h, file); err != nil {
		return "", err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	d.mu.Lock()
	d.byFile[key] = fileDigest{size: f.Size, mtime: f.ModTime, sum: sum}
	d.byHash[sum] = blobPlace{group, name, f.Path}
	d.mu.Unlock()
	return sum, nil
}

// serveTemplates answers the nodes' template requests. Any node may read
// every template: templates are what instances are made of, not secrets.
func (h *Hub) serveTemplates(nc *nats.Conn) error {
	t := h.opt.Templates
	if t == nil {
		return nil
	}
	d := &digests{byFile: map[string]fileDigest{}, byHash: map[string]blobPlace{}}
	reply := func(m *nats.Msg, v any) {
		b, _ := json.Marshal(v)
		_ = m.Respond(b)
	}
	if _, err := nc.QueueSubscribe(cluster.FromAll("tpl.list"), "master", func(m *nats.Msg) {
		infos, err := t.Names() // not List: no template's files walked
		out := cluster.TemplateList{Templates: []cluster.TemplateRef{}}
		if err != nil {
			out.Error = "cannot list the templates"
		}
		for _, i := range infos {
			out.Templates = append(out.Templates, cluster.TemplateRef{Group: i.Group, Name: i.Name})
		}
		reply(m, out)
	}); err != nil {
		return err
	}
	if _, err := nc.QueueSubscribe(cluster.FromAll("tpl.manifest"), "master", func(m *nats.Msg) {
		var ref cluster.TemplateRef
		_ = json.Unmarshal(m.Data, &ref)
		out := cluster.Manifest{TemplateRef: ref, Files: []cluster.ManifestFile{}}
		files, err := t.Files(ref.Group, ref.Name)
		if err != nil {
			out.Error = universe.ErrorMessage(err)
			reply(m, out)
			return
		}
		if len(files) > maxManifestFiles {
			out.Error = "template " + ref.Group + "/" + ref.Name + " has more than " + strconv.Itoa(maxManifestFiles) + " files"
			reply(m, out)
			return
		}
		for _, f := range files {
			mode, _ := strconv.ParseUint(f.Mode, 8, 32)
			mf := cluster.ManifestFile{Path: f.Path, Dir: f.Dir, Mode: uint32(mode), Size: f.Size}
			if !f.Dir {
				if mf.SHA256, err = d.sum(t, ref.Group, ref.Name, f); err != nil {
					out.Error = "template " + ref.Group + "/" + ref.Name + " changed while it was read: sync again"
					break
				}
			}
			out.Files = append(out.Files, mf)
		}
		reply(m, out)
	}); err != nil {
		return err
	}
	_, err := nc.QueueSubscribe(cluster.FromAll("tpl.blob"), "master", func(m *nats.Msg) {
		var req cluster.BlobRequest
		_ = json.Unmarshal(m.Data, &req)
		fail := func(why string) {
			r := nats.NewMsg(m.Reply)
			r.Header.Set(cluster.HeaderError, why)
			_ = m.RespondMsg(r)
		}
		d.mu.Lock()
		place, ok := d.byHash[req.SHA256]
		d.mu.Unlock()
		if !ok {
			d.fill(t)
			d.mu.Lock()
			place, ok = d.byHash[req.SHA256]
			d.mu.Unlock()
		}
		if !ok {
			fail("no file has that digest (ask for the manifest first)")
			return
		}
		f, fi, err := t.OpenFile(place.group, place.name, place.path)
		if err != nil {
			fail("the file is gone: sync again")
			return
		}
		defer f.Close()
		if req.Offset < 0 || req.Offset > fi.Size() {
			fail("offset out of range")
			return
		}
		buf := make([]byte, min(int64(cluster.BlobChunk), fi.Size()-req.Offset))
		n, err := f.ReadAt(buf, req.Offset)
		if err != nil && err != io.EOF {
			fail("cannot read the file")
			return
		}
		r := nats.NewMsg(m.Reply)
		r.Header.Set(cluster.HeaderSize, strconv.FormatInt(fi.Size(), 10))
		r.Data = buf[:n]
		_ = m.RespondMsg(r)
	})
	return err
}

// SyncTemplates asks every connected node to sync its templates now, and
// returns how many were asked.
func (h *Hub) SyncTemplates() int {
	nodes, err := h.List()
	if err != nil {
		return 0
	}
	h.mu.Lock()
	nc := h.nc
	h.mu.Unlock()
	if nc == nil {
		return 0
	}
	n := 0
	for _, node := range nodes {
		if node.State == api.NodeOnline || node.State == api.NodeDraining {
			if nc.Publish(cluster.To(node.Name, "tpl.sync"), nil) == nil {
				n++
			}
		}
	}
	_ = nc.Flush()
	return n
}
