package ha

import (
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// proposer hands the leader's commands to Raft in groups: while a group
// is being committed, the commands that arrive wait, and go to Raft
// together once it is done. Raft appends what reaches it together in one
// write of its log (BatchApplyCh), and each follower stores what one
// AppendEntries carries in one write of its own; a group per round trip
// makes those writes few and large. On two cores shared by three masters,
// a flow of small groups (two to three commands each, measured) costs more
// fsyncs and wakeups than the round trips it saves.
type proposer struct {
	r     *raft.Raft
	mu    sync.Mutex
	queue []*proposal
	wake  chan struct{}
	slots chan struct{} // groups in flight
	done  <-chan struct{}
}

type proposal struct {
	cmd   []byte
	index uint64
	resp  any
	err   error
	ready chan struct{}
}

// maxInFlight is how many groups may be committing at once.
const maxInFlight = 1

func newProposer(r *raft.Raft, done <-chan struct{}) *proposer {
	p := &proposer{r: r, wake: make(chan struct{}, 1), slots: make(chan struct{}, maxInFlight), done: done}
	go p.run()
	return p
}

// apply proposes cmd and waits until it is applied here (or refused):
// its index, the FSM's answer, raft's error.
func (p *proposer) apply(cmd []byte) (uint64, any, error) {
	pr := &proposal{cmd: cmd, ready: make(chan struct{})}
	p.mu.Lock()
	p.queue = append(p.queue, pr)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	select {
	case <-pr.ready:
		return pr.index, pr.resp, pr.err
	case <-p.done:
		return 0, nil, raft.ErrRaftShutdown
	}
}

func (p *proposer) run() {
	for {
		select {
		case <-p.done:
			p.failQueued()
			return
		case <-p.wake:
		}
		for {
			select {
			case p.slots <- struct{}{}:
			case <-p.done:
				p.failQueued()
				return
			}
			p.mu.Lock()
			group := p.queue
			p.queue = nil
			p.mu.Unlock()
			if len(group) == 0 {
				<-p.slots
				break
			}
			futures := make([]raft.ApplyFuture, len(group))
			for i, pr := range group {
				futures[i] = p.r.Apply(pr.cmd, 10*time.Second)
			}
			go func() {
				for i, f := range futures {
					pr := group[i]
					if pr.err = f.Error(); pr.err == nil {
						pr.index, pr.resp = f.Index(), f.Response()
					}
					close(pr.ready)
				}
				<-p.slots
			}()
		}
	}
}

func (p *proposer) failQueued() {
	p.mu.Lock()
	group := p.queue
	p.queue = nil
	p.mu.Unlock()
	for _, pr := range group {
		pr.err = raft.ErrRaftShutdown
		close(pr.ready)
	}
}
