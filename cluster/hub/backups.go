package hub

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"time"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/backup"
	"github.com/universe-orchestrator/universe/cluster"
)

// backupChunkTimeout bounds the wait for one chunk of an archive (the node
// may be reading a large file before it has one).
const backupChunkTimeout = time.Minute

// restoreRunTimeout bounds a restore on a node once its archive is there.
const restoreRunTimeout = 2 * time.Hour

// NodeBackups archives and restores one instance's folder on its node.
type NodeBackups struct {
	h        *Hub
	node, id string
}

// Backups returns the backups of instance id on node.
func (h *Hub) Backups(node, id string) NodeBackups { return NodeBackups{h: h, node: node, id: id} }

func (b NodeBackups) do(ctx context.Context, req cluster.BackupRequest, timeout time.Duration) (cluster.BackupReply, error) {
	req.Instance = b.id
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return ask[cluster.BackupReply](ctx, b.h, b.node, "inst.backup", req)
}

func session() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Archive has the node archive the instance's folder and copies the
// archive to w a chunk at a time; it returns the node's counts.
func (b NodeBackups) Archive(ctx context.Context, ignore []string, w io.Writer) (files, skipped, changed int, err error) {
	s := session()
	if _, err := b.do(ctx, cluster.BackupRequest{Op: cluster.BackupStart, Session: s, Ignore: ignore}, filesTimeout); err != nil {
		return 0, 0, 0, err
	}
	defer func() {
		if err != nil {
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_, _ = b.do(actx, cluster.BackupRequest{Op: cluster.BackupAbort, Session: s}, 5*time.Second)
			cancel()
		}
	}()
	for {
		rep, err := b.do(ctx, cluster.BackupRequest{Op: cluster.BackupRead, Session: s}, backupChunkTimeout)
		if err != nil {
			return 0, 0, 0, err
		}
		if len(rep.Data) > cluster.FileChunk {
			return 0, 0, 0, universe.Errorf(universe.EUNAVAILABLE, "node %s sent a chunk over the limit", b.node)
		}
		if _, err := w.Write(rep.Data); err != nil {
			return 0, 0, 0, err
		}
		if rep.EOF {
			return rep.Files, rep.Skipped, rep.Changed, nil
		}
	}
}

// uploadPoll is how often the master asks how an upload on a node goes.
const uploadPoll = 250 * time.Millisecond

// Upload has the node archive the instance's folder and upload it to its
// target of that name under key itself; written gets the bytes sent so
// far. It returns the node's counts, and the archive's size and SHA-256
// as the node counted them; backup.ErrNoTarget when the node has no such
// target (the master then pulls the archive).
func (b NodeBackups) Upload(ctx context.Context, ignore []string, target, key string, written func(int64)) (files, skipped, changed int, size int64, sha string, err error) {
	s := session()
	rep, err := b.do(ctx, cluster.BackupRequest{Op: cluster.BackupUpload, Session: s, Ignore: ignore, Target: target, Key: key}, filesTimeout)
	if err != nil {
		return 0, 0, 0, 0, "", err
	}
	if rep.NoTarget {
		return 0, 0, 0, 0, "", backup.ErrNoTarget
	}
	defer func() {
		if err != nil {
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_, _ = b.do(actx, cluster.BackupRequest{Op: cluster.BackupAbort, Session: s}, 5*time.Second)
			cancel()
		}
	}()
	t := time.NewTicker(uploadPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return 0, 0, 0, 0, "", ctx.Err()
		case <-t.C:
		}
		rep, err := b.do(ctx, cluster.BackupRequest{Op: cluster.BackupStatus, Session: s}, filesTimeout)
		if err != nil {
			return 0, 0, 0, 0, "", err
		}
		written(rep.Written)
		if rep.Done {
			return rep.Files, rep.Skipped, rep.Changed, rep.Size, rep.SHA256, nil
		}
	}
}

// RestoreFrom has the node read the archive from its target of that name
// under key itself, check it against sha and restore it (the instance
// stopped); backup.ErrNoTarget when the node has no such target.
func (b NodeBackups) RestoreFrom(ctx context.Context, target, key, sha string, truncate bool) (int, error) {
	rep, err := b.do(ctx, cluster.BackupRequest{Op: cluster.RestoreFrom, Session: session(), Target: target, Key: key, SHA256: sha, Truncate: truncate}, restoreRunTimeout)
	if err != nil {
		return 0, err
	}
	if rep.NoTarget {
		return 0, backup.ErrNoTarget
	}
	return rep.Files, nil
}

// Restore sends the archive r to the node, which checks it against sha and
// restores it into the instance's folder (the instance stopped); it
// returns the entries restored.
func (b NodeBackups) Restore(ctx context.Context, r io.Reader, sha string, truncate bool) (int, error) {
	s := session()
	buf := make([]byte, cluster.FileChunk)
	var off int64
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if _, err := b.do(ctx, cluster.BackupRequest{Op: cluster.RestoreWrite, Session: s, Offset: off, Data: buf[:n]}, filesTimeout); err != nil {
				return 0, err
			}
			off += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return 0, rerr
		}
	}
	rep, err := b.do(ctx, cluster.BackupRequest{Op: cluster.RestoreRun, Session: s, SHA256: sha, Truncate: truncate}, restoreRunTimeout)
	return rep.Files, err
}
