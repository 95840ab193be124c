package backup

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
)

// ErrNoTarget says an instance's node cannot upload to the target itself
// (it has no target of that name): the archive goes through the master.
var ErrNoTarget = errors.New("the node has no such target")

// Upload archives dir (leaving out what ignore matches) straight to the
// target t under key, as a node does for an instance of its own: the
// archive is streamed, never whole in memory nor on disk. written counts
// the archive's bytes as they go. It returns the counts, the archive's
// size and its SHA-256 (hex), as this process saw them.
func Upload(ctx context.Context, dir string, ignore *Ignore, t Target, key string, written *atomic.Int64) (Stats, int64, string, error) {
	pr, pw := io.Pipe()
	sum := newAsyncHash()
	cw := &countingWriter{w: io.MultiWriter(pw, sum)}
	var (
		st   Stats
		aerr error
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		st, aerr = ArchiveTo(ctx, dir, cw, ignore)
		pw.CloseWithError(aerr)
	}()
	perr := t.Put(ctx, key, &progressReader{pr, written})
	pr.CloseWithError(errPutFailed) // the archive stops if the target did
	<-done
	digest := sum.Sum()
	if aerr != nil && !errors.Is(aerr, errPutFailed) {
		return st, 0, "", aerr
	}
	if perr != nil {
		return st, 0, "", perr
	}
	return st, cw.n, digest, nil
}
