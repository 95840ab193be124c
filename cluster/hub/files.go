package hub

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"time"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/cluster"
)

// filesTimeout bounds one files request (a chunk of cluster.FileChunk).
const filesTimeout = 10 * time.Second

// NodeFiles are the files of an instance on its node (see cluster/files.go).
type NodeFiles struct {
	h        *Hub
	node, id string
}

// Files returns the files of instance id on node.
func (h *Hub) Files(node, id string) NodeFiles { return NodeFiles{h: h, node: node, id: id} }

func (f NodeFiles) do(req cluster.FilesRequest) (cluster.FilesReply, error) {
	return f.doWithin(req, filesTimeout)
}

func (f NodeFiles) doWithin(req cluster.FilesRequest, timeout time.Duration) (cluster.FilesReply, error) {
	req.Instance = f.id
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return ask[cluster.FilesReply](ctx, f.h, f.node, "inst.files", req)
}

// ask sends an order to node's subject and decodes its reply; a reply
// that says it failed is that error (its code, EINTERNAL without one).
func ask[R interface{ Failure() (string, string) }](ctx context.Context, h *Hub, node, subject string, req any) (R, error) {
	var rep R
	nc := h.conn()
	if nc == nil {
		return rep, universe.Errorf(universe.EUNAVAILABLE, "no node is connected")
	}
	b, _ := json.Marshal(req)
	m, err := nc.RequestMsgWithContext(ctx, h.order(cluster.To(node, subject), b))
	if err != nil {
		return rep, universe.Errorf(universe.EUNAVAILABLE, "node %s does not answer (%v)", node, err)
	}
	if json.Unmarshal(m.Data, &rep) != nil {
		return rep, universe.Errorf(universe.EUNAVAILABLE, "node %s answered nonsense", node)
	}
	if msg, code := rep.Failure(); msg != "" {
		if code == "" {
			code = universe.EINTERNAL
		}
		return rep, universe.Errorf(code, "%s", msg)
	}
	return rep, nil
}

// List lists a folder (or the tree) of the instance's files.
func (f NodeFiles) List(dir string, recursive bool) ([]api.TemplateFile, bool, error) {
	rep, err := f.do(cluster.FilesRequest{Op: cluster.FilesList, Path: dir, Recursive: recursive})
	if rep.Entries == nil {
		rep.Entries = []api.TemplateFile{}
	}
	return rep.Entries, rep.Truncated, err
}

// Stream copies file p to w a chunk at a time; start is called with its
// size before the first byte is written.
func (f NodeFiles) Stream(p string, start func(size int64), w io.Writer) error {
	var off, size int64
	for {
		rep, err := f.do(cluster.FilesRequest{Op: cluster.FilesRead, Path: p, Offset: off})
		if err != nil {
			return err
		}
		if off == 0 {
			size = rep.Size
			start(size)
		}
		// What the node sends is bounded by what it said at the start: a
		// node that goes on past the size it gave is cut off.
		if off+int64(len(rep.Data)) > size {
			return universe.Errorf(universe.EUNAVAILABLE, "node %s sent more of %s than its size", f.node, p)
		}
		if _, err := w.Write(rep.Data); err != nil {
			return err
		}
		off += int64(len(rep.Data))
		if rep.EOF || len(rep.Data) == 0 {
			return nil
		}
	}
}

// Write sends r as file p, a chunk at a time; the node puts it in place
// after the last.
func (f NodeFiles) Write(p string, r io.Reader) (int64, error) {
	var idb [12]byte
	_, _ = rand.Read(idb[:])
	upload := hex.EncodeToString(idb[:])
	buf := make([]byte, cluster.FileChunk)
	var off int64
	for {
		n, err := io.ReadFull(r, buf)
		final := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
		if err != nil && !final {
			return off, err
		}
		if _, err := f.do(cluster.FilesRequest{Op: cluster.FilesWrite, Path: p, Upload: upload, Offset: off, Data: buf[:n], Final: final}); err != nil {
			return off, err
		}
		off += int64(n)
		if final {
			return off, nil
		}
	}
}

// Mkdir creates folder p.
func (f NodeFiles) Mkdir(p string) error {
	_, err := f.do(cluster.FilesRequest{Op: cluster.FilesMkdir, Path: p})
	return err
}

// Rename moves file or folder from to to.
func (f NodeFiles) Rename(from, to string) error {
	_, err := f.do(cluster.FilesRequest{Op: cluster.FilesRename, Path: from, To: to})
	return err
}

// Unzip unpacks the archive at p into folder dest, on the node.
func (f NodeFiles) Unzip(p, dest string) (api.TemplateImport, error) {
	rep, err := f.doWithin(cluster.FilesRequest{Op: cluster.FilesUnzip, Path: p, To: dest}, 5*time.Minute)
	return rep.Unzipped, err
}

// Remove deletes file or folder p.
func (f NodeFiles) Remove(p string) error {
	_, err := f.do(cluster.FilesRequest{Op: cluster.FilesRemove, Path: p})
	return err
}

// Stats asks node for the CPU and memory samples of instance id.
func (h *Hub) Stats(node, id string) (api.InstanceStats, error) {
	var rep cluster.StatsReply
	nc := h.conn()
	if nc == nil {
		return rep.Stats, universe.Errorf(universe.EUNAVAILABLE, "no node is connected")
	}
	b, _ := json.Marshal(cluster.InstanceRequest{Instance: id})
	m, err := nc.RequestMsg(h.order(cluster.To(node, "inst.stats"), b), requestTimeout)
	if err != nil {
		return rep.Stats, universe.Errorf(universe.EUNAVAILABLE, "node %s does not answer (%v)", node, err)
	}
	if json.Unmarshal(m.Data, &rep) != nil {
		return rep.Stats, universe.Errorf(universe.EUNAVAILABLE, "node %s answered nonsense", node)
	}
	if rep.Stats.Samples == nil {
		rep.Stats.Samples = []api.StatSample{}
	}
	rep.Stats.InstanceID = id
	return rep.Stats, nil
}
