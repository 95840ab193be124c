package logs

import (
	"context"
	"sync"

	"github.com/universe-orchestrator/universe/api"
)

// Kind says what an Event carries.
type Kind uint8

// Kinds of events.
const (
	KindLine  Kind = iota // Line
	KindState             // Info; Final on the last event of a deleted instance
	KindGap               // From..To (inclusive) were not delivered to this subscriber
)

// Event is one item of a subscription, in log order.
type Event struct {
	Kind     Kind
	Line     api.LogLine
	Info     *api.InstanceInfo
	Final    bool
	From, To uint64
}

// Sub is a live subscription to a Log. Read it with Next; end it with
// Close.
type Sub struct {
	log    *Log
	mu     sync.Mutex
	q      []Event
	spare  []Event
	limit  int // line and gap events pending at most (+1 for a gap)
	lines  int // line events pending
	notify chan struct{}
	ended  bool
}

// Position says where a subscription starts.
type Position struct {
	Since    uint64 // resume after this sequence number, when HasSince
	HasSince bool
	Lines    int // otherwise: the newest Lines lines first
}

// Subscribe registers a subscriber and returns the backlog it must send
// first; both happen under the log's lock, so no line is missed or sent
// twice between them. With HasSince, the backlog is every line after Since
// that is still in the ring, preceded by a gap event if some are not.
func (l *Log) Subscribe(p Position) (*Sub, []Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := &Sub{log: l, limit: l.opt.SubBuffer, notify: make(chan struct{}, 1)}
	var backlog []Event
	if p.HasSince {
		last := l.next - 1
		if p.Since < last {
			oldest := l.next - uint64(len(l.ring)) // seq of the oldest line in the ring
			from := p.Since + 1
			if from < oldest {
				backlog = append(backlog, Event{Kind: KindGap, From: from, To: oldest - 1})
				from = oldest
			}
			for i := int(from - oldest); i < len(l.ring); i++ {
				backlog = append(backlog, Event{Kind: KindLine, Line: l.at(i)})
			}
		}
	} else {
		n := p.Lines
		if n > len(l.ring) {
			n = len(l.ring)
		}
		backlog = make([]Event, 0, n)
		for i := len(l.ring) - n; i < len(l.ring); i++ {
			backlog = append(backlog, Event{Kind: KindLine, Line: l.at(i)})
		}
	}
	if l.done {
		s.ended = true
	} else {
		l.subs[s] = struct{}{}
	}
	return s, backlog
}

// offer queues ring lines [start, start+n) and returns how many were
// dropped because the buffer was full. Caller holds l.mu.
func (s *Sub) offer(l *Log, start, n int) int {
	s.mu.Lock()
	dropped := 0
	for i := start; i < start+n; i++ {
		ln := l.at(i)
		if s.lines < s.limit {
			s.q = append(s.q, Event{Kind: KindLine, Line: ln})
			s.lines++
			continue
		}
		dropped++
		s.gapLocked(ln.Seq, ln.Seq)
	}
	s.mu.Unlock()
	s.wake()
	return dropped
}

// gapLocked records that lines from..to are not delivered, merged into a
// gap that ends the queue. Caller holds s.mu.
func (s *Sub) gapLocked(from, to uint64) {
	if k := len(s.q) - 1; k >= 0 && s.q[k].Kind == KindGap && s.q[k].To+1 == from {
		s.q[k].To = to
		return
	}
	s.q = append(s.q, Event{Kind: KindGap, From: from, To: to})
}

// gap queues a gap event for lines from..to.
func (s *Sub) gap(from, to uint64) {
	s.mu.Lock()
	s.gapLocked(from, to)
	s.mu.Unlock()
}

func (s *Sub) push(e Event) {
	s.mu.Lock()
	s.q = append(s.q, e)
	s.mu.Unlock()
	s.wake()
}

func (s *Sub) end() {
	s.mu.Lock()
	s.ended = true
	s.mu.Unlock()
	s.wake()
}

func (s *Sub) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Next waits for events and returns all that are pending, in order. The
// slice is valid until the next call. ok is false once the log was closed
// (or the subscription ended) and everything was handed out, or when ctx
// ends.
func (s *Sub) Next(ctx context.Context) (events []Event, ok bool) {
	for {
		s.mu.Lock()
		if len(s.q) > 0 {
			events, s.q = s.q, s.spare[:0]
			s.spare = events
			s.lines = 0
			s.mu.Unlock()
			return events, true
		}
		ended := s.ended
		s.mu.Unlock()
		if ended {
			return nil, false
		}
		select {
		case <-s.notify:
		case <-ctx.Done():
			return nil, false
		}
	}
}

// Close ends the subscription; pending events are discarded.
func (s *Sub) Close() {
	l := s.log
	l.mu.Lock()
	delete(l.subs, s)
	l.mu.Unlock()
	s.end()
}
