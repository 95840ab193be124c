// Package event keeps the event log (what happened to instances, nodes,
// backups, schedules and keys) and delivers its events to webhooks. It knows
// nothing of HTTP handlers: the master adds events from its parts and
// serves the log.
package event

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/universe-orchestrator/universe/api"
)

// Log is a bounded, in-memory log of events, numbered from 1: the oldest go
// when the events' bytes pass the bound. Followers get every event after
// where they started, or a gap saying which they missed; adding never
// waits for a follower.
type Log struct {
	mu       sync.Mutex
	ring     []api.Event
	sizes    []int
	bytes    int
	maxBytes int
	next     uint64
	subs     map[*Sub]struct{}
	now      func() time.Time
	observe  []func(api.Event)
}

// DefaultMaxBytes bounds the log's events (their JSON).
const DefaultMaxBytes = 8 << 20

// subQueue bounds a follower's pending events.
const subQueue = 4096

// NewLog makes a log of at most maxBytes of events (0: DefaultMaxBytes).
func NewLog(maxBytes int, now func() time.Time) *Log {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if now == nil {
		now = time.Now
	}
	return &Log{maxBytes: maxBytes, next: 1, subs: map[*Sub]struct{}{}, now: now}
}

// OnEvent registers f to be called with every event added (after the log
// holds it); f must not block. Register before use.
func (l *Log) OnEvent(f func(api.Event)) { l.observe = append(l.observe, f) }

// Add numbers and stamps e, keeps it, and offers it to the followers.
func (l *Log) Add(e api.Event) api.Event {
	b, _ := json.Marshal(e)
	size := len(b) + 64
	l.mu.Lock()
	e.Seq, e.Time = l.next, l.now().UTC()
	l.next++
	l.ring = append(l.ring, e)
	l.sizes = append(l.sizes, size)
	l.bytes += size
	drop := 0
	for l.bytes > l.maxBytes && drop < len(l.ring)-1 {
		l.bytes -= l.sizes[drop]
		drop++
	}
	if drop > 0 {
		l.ring = append(l.ring[:0:0], l.ring[drop:]...)
		l.sizes = append(l.sizes[:0:0], l.sizes[drop:]...)
	}
	for s := range l.subs {
		s.offer(e)
	}
	obs := l.observe
	l.mu.Unlock()
	for _, f := range obs {
		f(e)
	}
	return e
}

// Advance makes the next event's number at least seq: a master that
// starts, or gains the leadership of its cluster, numbers its events from
// the clock (microseconds since 1970), above what it or another master
// numbered before, so a follower's "since" stays meaningful across
// restarts and leader changes. What an earlier log held is not carried:
// a follower that resumes sees a gap.
func (l *Log) Advance(seq uint64) {
	l.mu.Lock()
	l.next = max(l.next, seq)
	l.mu.Unlock()
}

// Last is the number of the newest event (0: none yet).
func (l *Log) Last() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.next - 1
}

// Filter narrows List; empty fields match all.
type Filter struct {
	Since      uint64
	Type       string
	InstanceID string
	Limit      int
}

func (f Filter) match(e api.Event) bool {
	return e.Seq > f.Since && (f.Type == "" || f.Type == e.Type) && (f.InstanceID == "" || f.InstanceID == e.InstanceID)
}

// List returns the events f matches, oldest first, at most f.Limit (the
// oldest of them; default 1000).
func (l *Log) List(f Filter) []api.Event {
	if f.Limit <= 0 || f.Limit > 10000 {
		f.Limit = 1000
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	out := []api.Event{}
	for _, e := range l.ring {
		if f.match(e) {
			out = append(out, e)
			if len(out) == f.Limit {
				break
			}
		}
	}
	return out
}

// Recent returns the newest n events f matches (f.Since and f.Limit
// aside), newest first.
func (l *Log) Recent(f Filter, n int) []api.Event {
	f.Since = 0
	l.mu.Lock()
	defer l.mu.Unlock()
	out := []api.Event{}
	for i := len(l.ring) - 1; i >= 0 && len(out) < n; i-- {
		if f.match(l.ring[i]) {
			out = append(out, l.ring[i])
		}
	}
	return out
}

// Sub follows a log.
type Sub struct {
	mu     sync.Mutex
	q      []api.EventFrame
	notify chan struct{}
	after  uint64 // the last sequence number queued or skipped
}

// Subscribe starts following after sequence number since: the events
// after it still held come first, a gap in place of those gone.
func (l *Log) Subscribe(since uint64) *Sub {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := &Sub{notify: make(chan struct{}, 1), after: since}
	if len(l.ring) > 0 && l.ring[0].Seq > since+1 && since < l.next-1 {
		s.q = append(s.q, api.EventFrame{Gap: &api.Gap{From: since + 1, To: l.ring[0].Seq - 1}})
		s.after = l.ring[0].Seq - 1
	}
	for _, e := range l.ring {
		if e.Seq > since {
			s.offerLocked(e)
		}
	}
	l.subs[s] = struct{}{}
	return s
}

// Unsubscribe stops s.
func (l *Log) Unsubscribe(s *Sub) {
	l.mu.Lock()
	delete(l.subs, s)
	l.mu.Unlock()
}

func (s *Sub) offer(e api.Event) {
	s.mu.Lock()
	s.offerLocked(e)
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// offerLocked queues e, or when the queue is full, widens the gap that
// ends it: a slow follower learns what it missed.
func (s *Sub) offerLocked(e api.Event) {
	if n := len(s.q); n >= subQueue {
		if last := s.q[n-1]; last.Gap != nil && last.Gap.To == e.Seq-1 {
			last.Gap.To = e.Seq
		} else {
			s.q = append(s.q, api.EventFrame{Gap: &api.Gap{From: e.Seq, To: e.Seq}})
		}
	} else {
		ev := e
		s.q = append(s.q, api.EventFrame{Event: &ev})
	}
	s.after = e.Seq
}

// Next waits for frames and returns them; ok is false when ctx ended.
func (s *Sub) Next(ctx context.Context) (frames []api.EventFrame, ok bool) {
	for {
		s.mu.Lock()
		if len(s.q) > 0 {
			frames, s.q = s.q, nil
			s.mu.Unlock()
			return frames, true
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, false
		case <-s.notify:
		}
	}
}
