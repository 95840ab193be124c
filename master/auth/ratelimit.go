package auth

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Rate is a number of calls allowed per window.
type Rate struct {
	Limit  int
	Window time.Duration
}

// String formats r as ParseRate reads it, e.g. "100/60s".
func (r Rate) String() string {
	if r.Window%time.Second == 0 {
		return fmt.Sprintf("%d/%ds", r.Limit, r.Window/time.Second)
	}
	return fmt.Sprintf("%d/%s", r.Limit, r.Window)
}

// ParseRate reads "N/DURATION" such as "100/60s" or "20/1s" (a bare unit
// such as "100/m" means one of it).
func ParseRate(s string) (Rate, error) {
	n, d, ok := strings.Cut(s, "/")
	if !ok {
		return Rate{}, fmt.Errorf("rate %q: want N/DURATION such as 100/60s", s)
	}
	limit, err := strconv.Atoi(n)
	if err != nil || limit < 1 {
		return Rate{}, fmt.Errorf("rate %q: the count must be a positive integer", s)
	}
	if d != "" && (d[0] < '0' || d[0] > '9') {
		d = "1" + d
	}
	window, err := time.ParseDuration(d)
	if err != nil || window <= 0 {
		return Rate{}, fmt.Errorf("rate %q: the window must be a positive duration such as 60s", s)
	}
	return Rate{Limit: limit, Window: window}, nil
}

// Decision is the outcome of one call to Limiter.Allow.
type Decision struct {
	Allowed   bool
	Limit     int
	Remaining int           // calls left in the window after this one
	Reset     time.Duration // until the oldest call in the window leaves it (0: window empty)
}

// Limiter is an exact sliding-window limiter: at most Rate.Limit calls in
// any interval of length Rate.Window, per id. It keeps the times of the
// calls in the window, so its memory is Limit words per id that called.
type Limiter struct {
	rate Rate

	mu      sync.RWMutex
	windows map[string]*window
}

type window struct {
	mu    sync.Mutex
	times []int64 // ring of call times (unix nanos), len == limit
	head  int     // index of the oldest
	n     int     // calls in the ring
}

// NewLimiter returns a limiter for rate.
func NewLimiter(rate Rate) *Limiter {
	return &Limiter{rate: rate, windows: map[string]*window{}}
}

// Rate returns the limiter's rate.
func (l *Limiter) Rate() Rate { return l.rate }

// Allow counts one call by id at now, if the window has room, and says so.
// Concurrent calls are exact: with limit N, exactly N of any burst pass.
func (l *Limiter) Allow(id string, now time.Time) Decision {
	return l.take(id, now, true)
}

// Peek reports the state of id's window at now without counting a call.
func (l *Limiter) Peek(id string, now time.Time) Decision {
	return l.take(id, now, false)
}

func (l *Limiter) take(id string, now time.Time, count bool) Decision {
	l.mu.RLock()
	w := l.windows[id]
	l.mu.RUnlock()
	if w == nil {
		l.mu.Lock()
		if w = l.windows[id]; w == nil {
			w = &window{times: make([]int64, l.rate.Limit)}
			l.windows[id] = w
		}
		l.mu.Unlock()
	}
	t := now.UnixNano()
	win := int64(l.rate.Window)
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.n > 0 && w.times[w.head] <= t-win { // drop calls that left the window
		w.head = (w.head + 1) % len(w.times)
		w.n--
	}
	d := Decision{Limit: l.rate.Limit}
	if w.n < len(w.times) {
		if count {
			w.times[(w.head+w.n)%len(w.times)] = t
			w.n++
		}
		d.Allowed = true
	}
	d.Remaining = len(w.times) - w.n
	if w.n > 0 {
		d.Reset = time.Duration(w.times[w.head] + win - t)
	}
	return d
}

// Forget drops id's window (its key was revoked).
func (l *Limiter) Forget(id string) {
	l.mu.Lock()
	delete(l.windows, id)
	l.mu.Unlock()
}
