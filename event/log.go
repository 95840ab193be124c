// Package event keeps the event log (what happened to instances, nodes,
// backups, schedules and keys) and delivers its events to webhooks. It knows
// nothing of HTTP handlers: the master adds events from its parts and
// serves the log.
package event

import (
	"context"
	"encoding/json"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/universe-orchestrator/universe/api"
)

// Log is a bounded, in-memory log of events: the oldest go when the
// events' bytes pass the bound. Followers read it through a cursor of
// their own, so adding an event costs the same with 0 or 1,000 followers
// and never waits for one; a follower that falls behind what the log
// still holds is told of a gap with the count of events it missed.
//
// Events are numbered (Seq) upwards; Advance makes the numbers jump (a
// master that starts or gains the leadership numbers from the clock).
// Within a log, each event also has an ordinal (1, 2, 3, …) that counts
// gaps exactly across such jumps.
type Log struct {
	mu       sync.Mutex
	ring     []entry // ring[head:] are held
	head     int
	bytes    int
	maxBytes int
	next     uint64 // the next event's number
	count    uint64 // events added (the last one's ordinal)
	firstSeq uint64 // the first event's number (0: none yet)
	// The newest event dropped for the bound: its number and ordinal.
	droppedSeq, droppedIdx uint64
	changed                chan struct{} // closed at each Add
	now                    func() time.Time
	observe                []func(api.Event)
}

type entry struct {
	ev    api.Event
	frame []byte // {"event":…}: what followers are sent
	idx   uint64 // ordinal in this log
	size  int
}

// DefaultMaxBytes bounds the log's events (their JSON, twice: the event
// and its frame).
const DefaultMaxBytes = 16 << 20

// NewLog makes a log of at most maxBytes of events (0: DefaultMaxBytes).
func NewLog(maxBytes int, now func() time.Time) *Log {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if now == nil {
		now = time.Now
	}
	return &Log{maxBytes: maxBytes, next: 1, changed: make(chan struct{}), now: now}
}

// OnEvent registers f to be called with every event added (after the log
// holds it); f must not block. Register before use.
func (l *Log) OnEvent(f func(api.Event)) { l.observe = append(l.observe, f) }

// Advance makes the next event's number at least seq: a master that
// starts, or gains the leadership of its cluster, numbers its events from
// the clock (microseconds since 1970), above what it or another master
// numbered before, so a follower's "since" stays meaningful across
// restarts and leader changes. What another log held is not carried.
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

// Add numbers and stamps e, keeps it, and wakes the followers.
func (l *Log) Add(e api.Event) api.Event {
	l.mu.Lock()
	e.Seq, e.Time = l.next, l.now().UTC()
	l.next++
	l.count++
	if l.firstSeq == 0 {
		l.firstSeq = e.Seq
	}
	b, _ := json.Marshal(api.EventFrame{Event: &e})
	size := 2*len(b) + 96 // the frame, the event's own strings, the entry
	l.ring = append(l.ring, entry{ev: e, frame: b, idx: l.count, size: size})
	l.bytes += size
	for l.bytes > l.maxBytes && len(l.ring)-l.head > 1 {
		old := &l.ring[l.head]
		l.bytes -= old.size
		l.droppedSeq, l.droppedIdx = old.ev.Seq, old.idx
		*old = entry{}
		l.head++
	}
	if l.head > 1024 && l.head > len(l.ring)/2 {
		n := copy(l.ring, l.ring[l.head:])
		clear(l.ring[n:])
		l.ring, l.head = l.ring[:n], 0
	}
	close(l.changed)
	l.changed = make(chan struct{})
	obs := l.observe
	l.mu.Unlock()
	for _, f := range obs {
		f(e)
	}
	return e
}

// Filter narrows List; empty fields match all.
type Filter struct {
	Since      uint64
	Type       string
	InstanceID string
	Limit      int
	// Keep, when set, says which events the caller may see.
	Keep func(api.Event) bool
}

func (f Filter) match(e api.Event) bool {
	return e.Seq > f.Since && (f.Type == "" || f.Type == e.Type) && (f.InstanceID == "" || f.InstanceID == e.InstanceID) && (f.Keep == nil || f.Keep(e))
}

// held is the part of the ring the log holds. Caller holds l.mu.
func (l *Log) held() []entry { return l.ring[l.head:] }

// List returns the events f matches, oldest first, at most f.Limit (the
// oldest of them; default 1000).
func (l *Log) List(f Filter) []api.Event {
	if f.Limit <= 0 || f.Limit > 10000 {
		f.Limit = 1000
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.held()
	i := sort.Search(len(h), func(i int) bool { return h[i].ev.Seq > f.Since })
	out := []api.Event{}
	for ; i < len(h) && len(out) < f.Limit; i++ {
		if f.match(h[i].ev) {
			out = append(out, h[i].ev)
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
	h := l.held()
	out := []api.Event{}
	for i := len(h) - 1; i >= 0 && len(out) < n; i-- {
		if f.match(h[i].ev) {
			out = append(out, h[i].ev)
		}
	}
	return out
}

// Sub follows a log from a cursor of its own.
type Sub struct {
	l        *Log
	afterSeq uint64 // the last number delivered (or skipped)
	afterIdx uint64 // its ordinal in the log
	// Keep, when set, says which events this follower may see: the others
	// are passed over (not gaps). Set it before the first Next.
	Keep func(api.Event) bool
}

// Subscribe starts following after number since (0: from the oldest event
// held): the events after it still held come first, a gap in place of
// those the log no longer holds.
func (l *Log) Subscribe(since uint64) *Sub {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := &Sub{l: l, afterSeq: since}
	h := l.held()
	switch {
	case l.firstSeq == 0 || since < l.firstSeq:
		// Nothing of this log was seen (numbers below its first are
		// another log's: not counted as missed here).
	case len(h) > 0 && since >= h[0].ev.Seq:
		i := sort.Search(len(h), func(i int) bool { return h[i].ev.Seq > since })
		s.afterIdx = h[i-1].idx
	default: // within what was dropped: its ordinal, from the numbers
		s.afterIdx = l.droppedIdx - min(l.droppedSeq-min(since, l.droppedSeq), l.droppedIdx)
	}
	return s
}

// Unsubscribe stops s (a follower holds nothing in the log: kept for
// symmetry).
func (l *Log) Unsubscribe(*Sub) {}

// NextRaw waits for frames after s's cursor and returns at most max of
// them, JSON-encoded api.EventFrame (shared: do not modify); ok is false
// when ctx ended.
func (s *Sub) NextRaw(ctx context.Context, max int) (frames [][]byte, ok bool) {
	l := s.l
	for {
		l.mu.Lock()
		if s.afterIdx < l.droppedIdx {
			g := api.Gap{From: s.afterSeq + 1, To: l.droppedSeq, Count: l.droppedIdx - s.afterIdx}
			if g.From > g.To {
				g.From = g.To
			}
			b, _ := json.Marshal(api.EventFrame{Gap: &g})
			frames = append(frames, b)
			s.afterSeq, s.afterIdx = l.droppedSeq, l.droppedIdx
		}
		h := l.held()
		if len(h) > 0 && s.afterIdx < l.count {
			i := int(s.afterIdx + 1 - h[0].idx)
			for ; i < len(h) && len(frames) < max; i++ {
				if s.Keep == nil || s.Keep(h[i].ev) {
					frames = append(frames, h[i].frame)
				}
				s.afterSeq, s.afterIdx = h[i].ev.Seq, h[i].idx
			}
		}
		ch := l.changed
		l.mu.Unlock()
		if len(frames) > 0 {
			return frames, true
		}
		select {
		case <-ctx.Done():
			return nil, false
		case <-ch:
		}
	}
}

// Next is NextRaw decoded (at most 4096 frames).
func (s *Sub) Next(ctx context.Context) ([]api.EventFrame, bool) {
	raw, ok := s.NextRaw(ctx, 4096)
	out := make([]api.EventFrame, 0, len(raw))
	for _, b := range raw {
		var f api.EventFrame
		_ = json.Unmarshal(b, &f)
		out = append(out, f)
	}
	return out, ok
}

// String says where s is (for logs).
func (s *Sub) String() string { return "after " + strconv.FormatUint(s.afterSeq, 10) }
