package storage

import (
	"errors"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// groupCommit runs writes that arrive together in one bbolt transaction
// (one fsync), without waiting for company: a write that finds none under
// way commits at once, alone, and the writes that arrive meanwhile go into
// the next transaction together. (bbolt's own Batch waits up to
// MaxBatchDelay for company, which a lone writer would pay every time.)
type groupCommit struct {
	db      *bolt.DB
	mu      sync.Mutex
	pending []*groupOp
	leading bool
}

type groupOp struct {
	fn   func(*bolt.Tx) error
	err  error
	done chan struct{}
	// after, for a queued write, is told its outcome once committed.
	after func(error)
}

// finish answers op with err.
func (op *groupOp) finish(err error) {
	op.err = err
	close(op.done)
	if op.after != nil {
		op.after(err)
	}
}

// failedOp says which write of a group failed; the others are committed
// again without it.
type failedOp struct {
	i   int
	err error
}

func (e *failedOp) Error() string { return e.err.Error() }

// update runs fn in a read-write transaction, with whatever other writes
// arrive while one is being committed. fn may run more than once (when
// another write of its group fails, the group is retried without that
// one), so it must do the same each time.
func (g *groupCommit) update(fn func(*bolt.Tx) error) error {
	op := &groupOp{fn: fn, done: make(chan struct{})}
	g.mu.Lock()
	g.pending = append(g.pending, op)
	if g.leading {
		g.mu.Unlock()
		<-op.done
		return op.err
	}
	g.leading = true
	g.mu.Unlock()
	g.lead()
	<-op.done
	return op.err
}

// queue is update without waiting: fn is committed after every write
// queued or updated before it, and before every one after it (so writes of
// the same record keep their order); after is told the outcome. A write
// that comes next and waits (update) waits for this one's commit too.
func (g *groupCommit) queue(fn func(*bolt.Tx) error, after func(error)) {
	op := &groupOp{fn: fn, done: make(chan struct{}), after: after}
	g.mu.Lock()
	g.pending = append(g.pending, op)
	if g.leading {
		g.mu.Unlock()
		return
	}
	g.leading = true
	g.mu.Unlock()
	go g.lead()
}

// lead commits groups until none is waiting. Caller set g.leading.
func (g *groupCommit) lead() {
	for {
		g.mu.Lock()
		group := g.pending
		g.pending = nil
		if len(group) == 0 {
			g.leading = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		g.commit(group)
	}
}

// commit commits group in one transaction; a write that fails is answered
// with its error and the rest is committed without it.
func (g *groupCommit) commit(group []*groupOp) {
	for len(group) > 0 {
		err := g.db.Update(func(tx *bolt.Tx) error {
			for i, op := range group {
				if err := op.fn(tx); err != nil {
					return &failedOp{i: i, err: err}
				}
			}
			return nil
		})
		var f *failedOp
		if errors.As(err, &f) {
			group[f.i].finish(f.err)
			group = append(group[:f.i:f.i], group[f.i+1:]...)
			continue
		}
		for _, op := range group {
			op.finish(err)
		}
		return
	}
}
