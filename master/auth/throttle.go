package auth

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Throttle limits failed authentications per client address with a token
// bucket (Rate.Limit failures, refilled over Rate.Window). An address whose
// bucket is empty is blocked: its requests are refused before any token is
// checked, so guessing is slow. Only the client address counts, so other
// clients (even behind the same trusted proxy) are not affected.
//
// Memory is bounded: at most maxEntries addresses are tracked; a full table
// first drops addresses whose buckets have refilled (they are equivalent to
// absent ones), then arbitrary ones.
type Throttle struct {
	rate       Rate
	maxEntries int

	mu      sync.Mutex
	buckets map[netip.Addr]*bucket
	size    atomic.Int64 // len(buckets), for a lock-free fast path
}

type bucket struct {
	tokens float64
	last   int64 // unix nanos of the last refill
}

// NewThrottle returns a throttle for rate tracking at most maxEntries addresses.
func NewThrottle(rate Rate, maxEntries int) *Throttle {
	return &Throttle{rate: rate, maxEntries: maxEntries, buckets: map[netip.Addr]*bucket{}}
}

func (t *Throttle) refill(b *bucket, now int64) {
	per := float64(t.rate.Window) / float64(t.rate.Limit)
	b.tokens += float64(now-b.last) / per
	if b.tokens > float64(t.rate.Limit) {
		b.tokens = float64(t.rate.Limit)
	}
	b.last = now
}

// Blocked reports whether addr has no failures left, and how long until it
// has one again.
func (t *Throttle) Blocked(addr netip.Addr, now time.Time) (bool, time.Duration) {
	if t.size.Load() == 0 {
		return false, 0 // no failures anywhere lately: no lock taken
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buckets[addr]
	if b == nil {
		return false, 0
	}
	n := now.UnixNano()
	t.refill(b, n)
	if b.tokens >= float64(t.rate.Limit) {
		t.remove(addr) // refilled: forget it, so the fast path comes back
		return false, 0
	}
	if b.tokens >= 1 {
		return false, 0
	}
	per := float64(t.rate.Window) / float64(t.rate.Limit)
	return true, time.Duration((1 - b.tokens) * per)
}

// Fail records a failed authentication from addr.
func (t *Throttle) Fail(addr netip.Addr, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := now.UnixNano()
	b := t.buckets[addr]
	if b == nil {
		if len(t.buckets) >= t.maxEntries {
			t.evict(n)
		}
		b = &bucket{tokens: float64(t.rate.Limit), last: n}
		t.buckets[addr] = b
		t.size.Store(int64(len(t.buckets)))
	}
	t.refill(b, n)
	b.tokens--
	if b.tokens < 0 {
		b.tokens = 0
	}
}

// evict makes room for one entry, looking at no more than 128 entries so a
// flood from many addresses stays O(1) per failure. Caller holds mu.
func (t *Throttle) evict(now int64) {
	seen := 0
	var victim netip.Addr
	for a, b := range t.buckets { // map order is random
		if seen == 0 {
			victim = a
		}
		seen++
		t.refill(b, now)
		if b.tokens >= float64(t.rate.Limit) {
			t.remove(a) // refilled: the same as not tracked
			return
		}
		if seen >= 128 {
			break
		}
	}
	t.remove(victim)
}

// remove forgets addr. Caller holds mu.
func (t *Throttle) remove(addr netip.Addr) {
	delete(t.buckets, addr)
	t.size.Store(int64(len(t.buckets)))
}

// Len returns the number of addresses tracked.
func (t *Throttle) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.buckets)
}
