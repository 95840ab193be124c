package auth

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Throttle limits failed authentications per client address with a token
// bucket (Rate.Limit failures, refilled over Rate.Window). An address whose
// bucket is empty is blocked: its requests are refused before any token is
// checked, so guessing is slow. Only the client address counts, so other
// clients (even behind the same trusted proxy) are not affected. IPv6
// clients are counted per /64, the block one host usually holds.
//
// The table is fixed-size, allocated once and 2-way set-associative: it
// never grows, whatever the number of addresses that fail, and each call is
// O(1). A new address replaces the entry of its set that is closest to full
// (a refilled entry is the same as no entry at all).
type Throttle struct {
	rate     Rate
	perToken float64 // nanoseconds to refill one failure
	seed     maphash.Seed

	mu    sync.Mutex
	slots []slot // 2 per set

	lastFail atomic.Int64 // unix nanos of the latest failure, for a lock-free fast path
}

type slot struct {
	key    [16]byte
	used   bool
	tokens float64 // failures left
	last   int64   // unix nanos of the last refill
}

// NewThrottle returns a throttle for rate that tracks about capacity
// addresses (rounded up to an even number).
func NewThrottle(rate Rate, capacity int) *Throttle {
	if capacity < 2 {
		capacity = 2
	}
	return &Throttle{
		rate:     rate,
		perToken: float64(rate.Window) / float64(rate.Limit),
		seed:     maphash.MakeSeed(),
		slots:    make([]slot, (capacity+1)/2*2),
	}
}

// key is the counting unit of addr: the IPv4 address, or the IPv6 /64.
func key(addr netip.Addr) [16]byte {
	addr = addr.Unmap()
	if addr.Is6() {
		addr = netip.PrefixFrom(addr, 64).Masked().Addr()
	}
	return addr.As16()
}

// find returns the slot of k, or nil. Caller holds mu.
func (t *Throttle) find(k [16]byte) *slot {
	set := int(maphash.Comparable(t.seed, k) % uint64(len(t.slots)/2))
	for i := 2 * set; i < 2*set+2; i++ {
		if s := &t.slots[i]; s.used && s.key == k {
			return s
		}
	}
	return nil
}

func (t *Throttle) refill(s *slot, now int64) {
	s.tokens += float64(now-s.last) / t.perToken
	if s.tokens > float64(t.rate.Limit) {
		s.tokens = float64(t.rate.Limit)
	}
	s.last = now
}

// Blocked reports whether addr has no failures left, and how long until it
// has one again.
func (t *Throttle) Blocked(addr netip.Addr, now time.Time) (bool, time.Duration) {
	n := now.UnixNano()
	if n-t.lastFail.Load() >= int64(t.rate.Window) {
		return false, 0 // every bucket has refilled since the last failure
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.find(key(addr))
	if s == nil {
		return false, 0
	}
	t.refill(s, n)
	if s.tokens >= 1 {
		return false, 0
	}
	return true, time.Duration((1 - s.tokens) * t.perToken)
}

// Fail records a failed authentication from addr.
func (t *Throttle) Fail(addr netip.Addr, now time.Time) {
	n := now.UnixNano()
	k := key(addr)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lastFail.Store(n)
	s := t.find(k)
	if s == nil {
		s = t.victim(k, n)
		*s = slot{key: k, used: true, tokens: float64(t.rate.Limit), last: n}
	}
	t.refill(s, n)
	if s.tokens -= 1; s.tokens < 0 {
		s.tokens = 0
	}
}

// victim picks the slot of k's set to reuse: a free one, else the one with
// the most failures left. Caller holds mu.
func (t *Throttle) victim(k [16]byte, now int64) *slot {
	set := int(maphash.Comparable(t.seed, k) % uint64(len(t.slots)/2))
	a, b := &t.slots[2*set], &t.slots[2*set+1]
	if !a.used {
		return a
	}
	if !b.used {
		return b
	}
	t.refill(a, now)
	t.refill(b, now)
	if a.tokens >= b.tokens {
		return a
	}
	return b
}

// Len returns the number of addresses that have failed and not yet fully
// refilled (at most the capacity).
func (t *Throttle) Len(now time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for i := range t.slots {
		if s := &t.slots[i]; s.used {
			t.refill(s, now.UnixNano())
			if s.tokens < float64(t.rate.Limit) {
				n++
			}
		}
	}
	return n
}
