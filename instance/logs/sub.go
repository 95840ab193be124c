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
	log      *Log
	mu       sync.Mutex
	q        []Event
	spare    []Event
	limit    int // line events pending at most
	lines    int // line events pending
	maxBytes int // bytes of pending lines at most
	bytes    int // bytes of pending lines
	notify   chan struct{}
	ended    bool
	// after: the subscriber resumed after this sequence number, and is
	// never handed a line at or before it, even when the log numbers such
	// lines later (a master that restarted takes lines from a node again
	// that its previous self had already streamed).
	after uint64
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
// that is still in the ring; lines that are not (older than the ring, or
// missing from the file) are gap events in their place.
func (l *Log) Subscribe(p Position) (*Sub, []Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.loadLocked()
	s := &Sub{log: l, limit: l.opt.SubBuffer, maxBytes: l.opt.SubBytes, notify: make(chan struct{}, 1)}
	if p.HasSince {
		s.after = p.Since
	}
	last := l.next - 1
	var backlog []Event
	if p.HasSince {
		if p.Since < last {
			backlog = l.events(p.Since, l.ring.after(p.Since), last, backlog)
		}
	} else if n := min(p.Lines, l.ring.len()); n > 0 {
		start := l.ring.len() - n
		backlog = l.events(l.ring.at(start).Seq-1, start, last, make([]Event, 0, n))
	}
	if l.done {
		s.ended = true
	} else {
		l.subs[s] = struct{}{}
	}
	return s, backlog
}

// events appends the lines after seq from, beginning at ring index start,
// up to seq to, with a gap event for every hole. Caller holds l.mu.
func (l *Log) events(from uint64, start int, to uint64, out []Event) []Event {
	want := from + 1
	for i := start; i < l.ring.len(); i++ {
		ln := l.ring.at(i)
		if ln.Seq > want {
			out = append(out, Event{Kind: KindGap, From: want, To: ln.Seq - 1})
		}
		out = append(out, Event{Kind: KindLine, Line: ln})
		want = ln.Seq + 1
	}
	if want <= to {
		out = append(out, Event{Kind: KindGap, From: want, To: to})
	}
	return out
}

// offer queues the lines after seq from, beginning at ring index start, up
// to seq to (gaps for holes), and returns how many lines were dropped
// because the buffer was full. Caller holds l.mu.
func (s *Sub) offer(l *Log, from uint64, start int, to uint64) int {
	s.mu.Lock()
	dropped := 0
	want := max(from, s.after) + 1
	for i := start; i < l.ring.len(); i++ {
		ln := l.ring.at(i)
		if ln.Seq <= s.after {
			continue
		}
		if ln.Seq > want {
			s.gapLocked(want, ln.Seq-1)
		}
		want = ln.Seq + 1
		if c := lineCost(ln); s.lines < s.limit && s.bytes+c <= s.maxBytes {
			s.q = append(s.q, Event{Kind: KindLine, Line: ln})
			s.lines++
			s.bytes += c
			continue
		}
		dropped++
		s.gapLocked(ln.Seq, ln.Seq)
	}
	if want <= to {
		s.gapLocked(want, to)
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

// maxSpare is the capacity of a subscriber's spare queue kept between
// reads (events); larger ones, left by a burst, are let go.
const maxSpare = 256

// Next waits for events and returns all that are pending, in order. The
// slice is valid until the next call. ok is false once the log was closed
// (or the subscription ended) and everything was handed out, or when ctx
// ends.
func (s *Sub) Next(ctx context.Context) (events []Event, ok bool) {
	for {
		s.mu.Lock()
		if len(s.q) > 0 {
			// The slice handed out last time is free again: emptied, so
			// that it holds on to no line the ring has let go, and kept
			// only when small, so that a burst's queue goes with it.
			spare := s.spare
			clear(spare)
			if cap(spare) > maxSpare {
				spare = nil
			}
			events, s.q = s.q, spare[:0]
			s.spare = events
			s.lines, s.bytes = 0, 0
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
