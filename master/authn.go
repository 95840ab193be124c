package master

import (
	"fmt"
	"net/netip"

	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/instance"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/master/auth"
)

// errUnauthorized is the one public answer to every failed authentication.
var errUnauthorized = &universe.Error{Code: universe.EUNAUTHORIZED, Message: "Unauthorized"}

// bearer extracts the token of an "Authorization: Bearer <token>" header.
// The scheme is case-insensitive (RFC 9110); anything else is malformed.
func bearer(h string) (token string, present bool) {
	if h == "" {
		return "", false
	}
	const scheme = "bearer "
	if len(h) < len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return "", true
	}
	return strings.TrimSpace(h[len(scheme):]), true
}

// authenticate admits requests with a valid bearer token, puts the key in
// the context and counts the call against the key's rate window (PUBLIC
// keys). Clients with too many recent failures are answered 429 before
// their token is even looked at. The clock is read once per request.
func (m *Master) authenticate(c *gin.Context) {
	now := m.cfg.Now()
	addr := m.clientAddr(c)
	if blocked, wait := m.throttle.Blocked(addr, now); blocked {
		m.metrics.rateLimited.WithLabelValues("auth_failures").Inc()
		m.rejectRate(c, wait, "Too many failed authentications. Retry after %dms.")
		return
	}
	if len(c.Request.Header["Authorization"]) > 1 {
		m.throttle.Fail(addr, now)
		fail(c, universe.Errorf(universe.EINVALID, "send one Authorization header, not several"))
		return
	}
	token, present := bearer(c.GetHeader("Authorization"))
	if !present {
		// No header: a dashboard session's cookie may stand in for it. A
		// header always takes precedence, and requests without the cookie
		// are never judged by their Origin.
		if ck, err := c.Request.Cookie(m.sessionCookie()); err == nil {
			m.authenticateSession(c, ck.Value, addr, now)
			return
		}
	}
	k, err := m.keys.AuthenticateAt(token, now)
	if err != nil {
		if present && token == "" {
			err = auth.ErrMalformed
		}
		m.throttle.Fail(addr, now)
		m.metrics.authFailures.WithLabelValues(auth.FailureReason(err)).Inc()
		fail(c, errUnauthorized)
		return
	}
	if k.User() != "" {
		// A user's key works while its user does (not deleted, not
		// disabled).
		if _, err := m.rightsOf(k); err != nil {
			m.metrics.authFailures.WithLabelValues("user_disabled").Inc()
			fail(c, errUnauthorized)
			return
		}
	}
	c.Set(ctxKey, k)
	switch k.Scope() {
	case universe.ScopePublic:
		if m.ha != nil && !m.ha.IsLeader() {
			// In a cluster the leader counts every PUBLIC call, whichever
			// master it reached: one window of 100 calls, not one a master.
			m.toLeader(c)
			c.Abort()
			return
		}
		if !m.rateLimit(c, k, now) {
			return
		}
	case universe.ScopeInstance:
		if d := m.instLimiter.Allow(k.ID(), now); !d.Allowed {
			m.metrics.rateLimited.WithLabelValues("instance_key").Inc()
			m.rejectRate(c, d.Reset, "Rate limit exceeded. Retry after %dms.")
			return
		}
	}
	c.Next()
}

// authenticateSession admits a request carrying a dashboard session's
// cookie. Unsafe methods must come from the master's own pages: a
// cross-site request (Sec-Fetch-Site, or an Origin that is not this host)
// is refused with 403, since the browser adds the cookie to it by itself.
func (m *Master) authenticateSession(c *gin.Context, cookie string, addr netip.Addr, now time.Time) {
	k, why := m.sessions.Authenticate(cookie)
	if k == nil {
		if why == auth.EndedUnknown {
			m.throttle.Fail(addr, now) // guessing counts as a failure; a stale cookie does not
		}
		m.metrics.authFailures.WithLabelValues("session_" + why).Inc()
		fail(c, errUnauthorized)
		return
	}
	m.admitSession(c, k)
}

// admitSession lets a request signed in with a session cookie of key k go
// on: unsafe methods only from this host's own pages (403 otherwise).
func (m *Master) admitSession(c *gin.Context, k *auth.Key) {
	if k.User() != "" {
		if _, err := m.rightsOf(k); err != nil {
			fail(c, errUnauthorized)
			return
		}
	}
	if err := m.crossOrigin.Check(c.Request); err != nil {
		fail(c, universe.Errorf(universe.EFORBIDDEN, "cross-origin request refused"))
		return
	}
	c.Set(ctxKey, k)
	c.Set(ctxSession, true)
	c.Next()
}

// rateLimit counts a call of a PUBLIC key against its sliding window and
// reports the window in RateLimit-* headers; over the limit it answers 429
// and returns false. ALL keys never come here.
func (m *Master) rateLimit(c *gin.Context, k *auth.Key, now time.Time) bool {
	d := m.limiter.Allow(k.ID(), now)
	h := c.Writer.Header()
	h["Ratelimit-Limit"] = m.limitHeader
	h["Ratelimit-Remaining"] = headerNum(int64(d.Remaining))
	h["Ratelimit-Reset"] = headerNum(ceilDiv(d.Reset, time.Second))
	if !d.Allowed {
		m.metrics.rateLimited.WithLabelValues("public_key").Inc()
		m.rejectRate(c, d.Reset, "Rate limit exceeded. Retry after %dms.")
		return false
	}
	return true
}

// smallNums holds header values for 0..1024, built once: rate-limit headers
// then cost no allocation. The slices have len == cap == 1, so a later
// Header.Add copies instead of writing into them; nothing else mutates them.
var smallNums = func() (t [1025][]string) {
	for i := range t {
		t[i] = []string{strconv.Itoa(i)}[:1:1]
	}
	return t
}()

func headerNum(n int64) []string {
	if n >= 0 && n < int64(len(smallNums)) {
		return smallNums[n]
	}
	return []string{strconv.FormatInt(n, 10)}
}

// rejectRate answers 429 with the delay in the body (ms) and Retry-After (s).
func (m *Master) rejectRate(c *gin.Context, wait time.Duration, format string) {
	ms := ceilDiv(wait, time.Millisecond)
	if ms < 1 {
		ms = 1
	}
	c.Header("Retry-After", strconv.FormatInt(ceilDiv(wait, time.Second), 10))
	c.Set(ctxRetryAfter, ms)
	fail(c, universe.Errorf(universe.ERATELIMITED, format, ms))
}

func ceilDiv(d, unit time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + unit - 1) / unit)
}

// requireAll admits only ALL keys. Others get the documented 401 with an
// insufficient_scope hint in WWW-Authenticate.
func (m *Master) requireAll(c *gin.Context) {
	if callerKey(c).Scope() != universe.ScopeAll {
		m.rejectScope(c)
		return
	}
	c.Next()
}

// requireUserKey admits ALL and PUBLIC keys: an instance's key gets the
// same 401 as a PUBLIC key on an admin route.
func (m *Master) requireUserKey(c *gin.Context) {
	if callerKey(c).Scope() == universe.ScopeInstance {
		m.rejectScope(c)
		return
	}
	c.Next()
}

// requireAllOrInstance admits ALL keys, and the key of the instance named
// by the route's :id.
func (m *Master) requireAllOrInstance(c *gin.Context) {
	k := callerKey(c)
	if k.Scope() == universe.ScopeAll || (k.Scope() == universe.ScopeInstance && k.Instance() == c.Param("id")) {
		c.Next()
		return
	}
	m.rejectScope(c)
}

// requireInstancesRead admits ALL keys, the key of the instance named by
// :id (if the route has one), and the keys of instances whose configuration
// grants "instances:read" (instanceKeyAccess): read-only routes of the
// instance list. PUBLIC keys never pass.
func (m *Master) requireInstancesRead(c *gin.Context) {
	k := callerKey(c)
	switch {
	case k.Scope() == universe.ScopeAll:
	case k.Scope() == universe.ScopeMember:
		// A member: instance.read on the instance (a grant on it or on its
		// configuration); the list shows only those.
		r, err := m.rightsOf(k)
		if err != nil {
			fail(c, errUnauthorized)
			return
		}
		c.Set(ctxRights, r)
		if id := c.Param("id"); id != "" {
			if err := m.mayOnInstance(c, "instance.read", id); err != nil {
				fail(c, err)
				return
			}
		} else if !r.Anywhere("instance.read") {
			fail(c, needs("instance.read", "anything"))
			return
		}
	case k.Scope() != universe.ScopeInstance:
		m.rejectScope(c)
		return
	case k.Instance() == c.Param("id") && c.Param("id") != "":
	default:
		in, err := m.instances.Get(k.Instance())
		if err != nil {
			m.rejectScope(c)
			return
		}
		cfg, err := m.db.GetConfiguration(in.Info().ConfigurationName)
		if err != nil || !instance.Grants(cfg, api.AccessInstancesRead) {
			m.rejectScope(c)
			return
		}
	}
	c.Next()
}

func (m *Master) rejectScope(c *gin.Context) {
	m.metrics.authFailures.WithLabelValues("insufficient_scope").Inc()
	c.Header("WWW-Authenticate", `Bearer realm="universe", error="insufficient_scope"`)
	fail(c, errUnauthorized)
}

// callerKey returns the authenticated key; only valid behind authenticate.
func callerKey(c *gin.Context) *auth.Key {
	v, ok := c.Get(ctxKey)
	if !ok {
		panic(fmt.Sprintf("route %s is not behind authenticate", c.FullPath()))
	}
	return v.(*auth.Key)
}
