package auth_test

import (
	"crypto/sha256"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/master/auth"
	"github.com/universe-orchestrator/universe/storage"
)

// clock is a settable clock for tests.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *clock) Add(d time.Duration) { c.ns.Add(int64(d)) }
func openStore(t *testing.T, dir string) *storage.DB {
	t.Helper()
	db, err := storage.Open(dir, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func TestTokenFormat(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		tok := auth.NewToken()
		if !strings.HasPrefix(tok, "unv_") || len(tok) != 4+43 {
			t.Fatalf("token %q: want unv_ and 43 characters (256 bits)", tok)
		}
		for _, c := range tok[4:] {
			if !strings.ContainsRune("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", c) {
				t.Fatalf("token %q has a non URL-safe character %q", tok, c)
			}
		}
		if seen[tok] {
			t.Fatal("duplicate token")
		}
		seen[tok] = true
	}
}

func TestHashTokenNeverTruncates(t *testing.T) {
	long := strings.Repeat("a", 500)
	if auth.HashToken(long) == auth.HashToken(long[:128]) || auth.HashToken(long) != sha256.Sum256([]byte(long)) {
		t.Fatal("HashToken truncated a long input")
	}
	tok := auth.NewToken()
	if auth.HashToken(tok) != sha256.Sum256([]byte(tok)) {
		t.Fatal("HashToken differs from SHA-256")
	}
}

func TestKeyringLifecycle(t *testing.T) {
	dir := t.TempDir()
	db := openStore(t, dir)
	clk := newClock()
	r, err := auth.OpenKeyring(db, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	k, token, err := r.Create("admin", universe.ScopeAll, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := r.Authenticate(token); err != nil || got != k {
		t.Fatalf("authenticate: %v %v", got, err)
	}
	// The store holds the hash, never the token.
	recs, _ := db.ListKeys()
	if len(recs) != 1 || recs[0].Hash != auth.HashToken(token) {
		t.Fatalf("stored: %+v", recs)
	}
	raw, _ := readFile(db.Path())
	if strings.Contains(raw, token) || strings.Contains(raw, token[4:]) {
		t.Fatal("the token itself is in the db file")
	}

	failures := []struct {
		name  string
		token string
		want  error
	}{
		{"empty", "", auth.ErrMissing},
		{"no prefix", strings.Repeat("a", 47), auth.ErrMalformed},
		{"too short", "unv_abc", auth.ErrMalformed},
		{"bad character", token[:20] + "!" + token[21:], auth.ErrMalformed},
		{"too long", token + strings.Repeat("a", 200), auth.ErrMalformed},
		{"unknown", auth.NewToken(), auth.ErrUnknown},
	}
	for _, tt := range failures {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := r.Authenticate(tt.token); err != tt.want {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}

	// Rules of creation.
	for _, tt := range []struct {
		label, scope string
		code         string
	}{
		{"admin", "ALL", universe.ECONFLICT},
		{k.ID(), "ALL", universe.ECONFLICT},
		{"", "ALL", universe.EINVALID},
		{strings.Repeat("a", 65), "ALL", universe.EINVALID},
		{"has space", "ALL", universe.EINVALID},
		{"ok", "ROOT", universe.EINVALID},
		{"A.b_c-9", "PUBLIC", ""},
	} {
		_, _, err := r.Create(tt.label, universe.Scope(tt.scope), 0)
		if got := universe.ErrorCode(err); got != tt.code {
			t.Errorf("create %q %q: code %q, want %q", tt.label, tt.scope, got, tt.code)
		}
	}

	// Expiry.
	ek, etoken, err := r.Create("temp", universe.ScopePublic, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Authenticate(etoken); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Hour)
	if _, err := r.Authenticate(etoken); err != auth.ErrExpired {
		t.Fatalf("expired key: %v", err)
	}
	_ = ek

	// Last-used is persisted by Flush, in one batch.
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	recs, _ = db.ListKeys()
	for _, rc := range recs {
		if rc.ID == k.ID() && rc.LastUsedAt.IsZero() {
			t.Fatal("last-used not persisted")
		}
	}

	// Revocation: instant, by label or id, channel closed, limiter told.
	var forgotten []string
	r.OnRevoke(func(id string) { forgotten = append(forgotten, id) })
	if _, err := r.Revoke("admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Authenticate(token); err != auth.ErrUnknown {
		t.Fatalf("revoked token: %v", err)
	}
	select {
	case <-k.Revoked():
	default:
		t.Fatal("Revoked channel not closed")
	}
	if len(forgotten) != 1 || forgotten[0] != k.ID() {
		t.Fatalf("OnRevoke: %v", forgotten)
	}
	if _, err := r.Revoke("admin"); universe.ErrorCode(err) != universe.ENOTFOUND {
		t.Fatalf("revoke twice: %v", err)
	}

	// A reopened keyring sees exactly the store.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db2 := openStore(t, dir)
	r2, err := auth.OpenKeyring(db2, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r2.Authenticate(token); err != auth.ErrUnknown {
		t.Fatal("revoked key came back after reopen")
	}
	if got := len(r2.List()); got != 2 {
		t.Fatalf("keys after reopen: %d", got)
	}
	if r2.Count(universe.ScopePublic) != 2 || r2.Count(universe.ScopeAll) != 0 {
		t.Fatal("Count by scope is off")
	}
}

func TestLimiterSlidingWindow(t *testing.T) {
	clk := newClock()
	l := auth.NewLimiter(auth.Rate{Limit: 3, Window: time.Minute})
	steps := []struct {
		advance      time.Duration
		allowed      bool
		remaining    int
		resetAtLeast time.Duration
		resetAtMost  time.Duration
	}{
		{0, true, 2, time.Minute, time.Minute},
		{10 * time.Second, true, 1, 50 * time.Second, 50 * time.Second},
		{10 * time.Second, true, 0, 40 * time.Second, 40 * time.Second},
		{10 * time.Second, false, 0, 30 * time.Second, 30 * time.Second},
		{30 * time.Second, true, 0, 10 * time.Second, 10 * time.Second}, // first call left the window
		{time.Second, false, 0, 9 * time.Second, 9 * time.Second},
	}
	for i, s := range steps {
		clk.Add(s.advance)
		d := l.Allow("k", clk.Now())
		if d.Allowed != s.allowed || d.Remaining != s.remaining || d.Reset < s.resetAtLeast || d.Reset > s.resetAtMost {
			t.Fatalf("step %d: %+v, want allowed=%v remaining=%d reset in [%v,%v]", i, d, s.allowed, s.remaining, s.resetAtLeast, s.resetAtMost)
		}
	}
	if d := l.Allow("other", clk.Now()); !d.Allowed {
		t.Fatal("windows are per id")
	}
}

func TestLimiterExactUnderConcurrency(t *testing.T) {
	l := auth.NewLimiter(auth.Rate{Limit: 100, Window: time.Minute})
	var allowed atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if l.Allow("k", time.Now()).Allowed {
				allowed.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	if allowed.Load() != 100 {
		t.Fatalf("%d of 1000 allowed, want exactly 100", allowed.Load())
	}
}

func TestParseRate(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want auth.Rate
		ok   bool
	}{
		{"100/60s", auth.Rate{Limit: 100, Window: time.Minute}, true},
		{"20/1s", auth.Rate{Limit: 20, Window: time.Second}, true},
		{"5/m", auth.Rate{Limit: 5, Window: time.Minute}, true},
		{"0/60s", auth.Rate{}, false},
		{"100", auth.Rate{}, false},
		{"x/60s", auth.Rate{}, false},
		{"100/-1s", auth.Rate{}, false},
	} {
		got, err := auth.ParseRate(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseRate(%q) = %v, %v", tt.in, got, err)
		}
		if tt.ok {
			if back, _ := auth.ParseRate(got.String()); back != got {
				t.Errorf("String round trip of %v: %v", got, back)
			}
		}
	}
}

func TestThrottle(t *testing.T) {
	clk := newClock()
	th := auth.NewThrottle(auth.Rate{Limit: 20, Window: time.Second}, 1000)
	a := netip.MustParseAddr("192.0.2.1")
	b := netip.MustParseAddr("192.0.2.2")
	for i := 0; i < 20; i++ {
		if blocked, _ := th.Blocked(a, clk.Now()); blocked {
			t.Fatalf("blocked after %d failures", i)
		}
		th.Fail(a, clk.Now())
	}
	blocked, wait := th.Blocked(a, clk.Now())
	if !blocked || wait <= 0 || wait > 50*time.Millisecond {
		t.Fatalf("after 20 failures: blocked=%v wait=%v", blocked, wait)
	}
	if blocked, _ := th.Blocked(b, clk.Now()); blocked {
		t.Fatal("another address is blocked")
	}
	clk.Add(50 * time.Millisecond) // one failure's worth refilled
	if blocked, _ := th.Blocked(a, clk.Now()); blocked {
		t.Fatal("still blocked after refill")
	}

	// IPv6 clients count per /64.
	v6a := netip.MustParseAddr("2001:db8:1:2::1")
	v6b := netip.MustParseAddr("2001:db8:1:2:ffff::9")
	for i := 0; i < 20; i++ {
		th.Fail(v6a, clk.Now())
	}
	if blocked, _ := th.Blocked(v6b, clk.Now()); !blocked {
		t.Fatal("another address of the same /64 is not blocked")
	}
	if blocked, _ := th.Blocked(netip.MustParseAddr("2001:db8:1:3::1"), clk.Now()); blocked {
		t.Fatal("another /64 is blocked")
	}

	// A flood of distinct addresses never grows the table; an address
	// being throttled survives a flood of one-off failures in its set.
	for i := 0; i < 200000; i++ {
		th.Fail(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), clk.Now())
		th.Fail(a, clk.Now())
	}
	if n := th.Len(clk.Now()); n > 1000 {
		t.Fatalf("throttle tracks %d addresses, capacity is 1000", n)
	}
	if blocked, _ := th.Blocked(a, clk.Now()); !blocked {
		t.Fatal("the throttled address was evicted by the flood")
	}
	// After a whole window without failures, nothing is blocked.
	clk.Add(time.Second)
	if blocked, _ := th.Blocked(a, clk.Now()); blocked {
		t.Fatal("blocked a window after the last failure")
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"30d": 30 * 24 * time.Hour, "2w": 14 * 24 * time.Hour, "90m": 90 * time.Minute, "1h30m": 90 * time.Minute} {
		if got, err := universe.ParseDuration(in); err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	for _, in := range []string{"", "0d", "-1h", "d", "abc", "99999999d"} {
		if _, err := universe.ParseDuration(in); universe.ErrorCode(err) != universe.EINVALID {
			t.Errorf("%q: %v, want EINVALID", in, err)
		}
	}
}

// Instances starting together get their keys concurrently: each its own,
// each in the store and in memory when the call returns, and a new key
// for an instance revokes its previous one.
func TestIssueInstanceKeysConcurrently(t *testing.T) {
	db := openStore(t, t.TempDir())
	r, err := auth.OpenKeyring(db, newClock().Now)
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	tokens := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := r.IssueInstanceKey("i" + strconv.Itoa(i))
			if err != nil {
				t.Error(err)
				return
			}
			if k, err := r.Authenticate(tok); err != nil || k.Record().Instance != "i"+strconv.Itoa(i) {
				t.Errorf("instance %d's key right after it was issued: %v", i, err)
			}
			tokens[i] = tok
		}()
	}
	wg.Wait()
	if recs, _ := db.ListKeys(); len(recs) != n {
		t.Fatalf("%d keys stored, want %d", len(recs), n)
	}
	again, err := r.IssueInstanceKey("i0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Authenticate(tokens[0]); err == nil {
		t.Fatal("an instance's previous key still authenticates after a new one was issued")
	}
	if _, err := r.Authenticate(again); err != nil {
		t.Fatal(err)
	}
	if recs, _ := db.ListKeys(); len(recs) != n {
		t.Fatalf("%d keys stored after a reissue, want %d", len(recs), n)
	}
}
