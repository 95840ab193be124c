package master

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/cluster/ha"
	"github.com/universe-orchestrator/universe/master/auth"
)

// requestID gives every request an id, echoed in X-Request-Id. A sane id
// sent by the client (or a proxy) is kept so logs can be joined.
func (m *Master) requestID(c *gin.Context) {
	id := c.GetHeader("X-Request-Id")
	if !saneID(id) {
		var b [16]byte
		hexUint64(b[:], rand.Uint64())
		id = string(b[:])
	}
	// Kept in the response's header alone (requestIDOf reads it back): a
	// c.Set would box the string and make the context's map, two more
	// allocations on every request.
	h := c.Writer.Header()
	h["X-Request-Id"] = []string{id}
	h["X-Content-Type-Options"] = nosniff
	// The values of c.Set go into a map of the pool, back in the pool once
	// the request is over: gin.Context itself is reused after that, so
	// nothing may hold on to either.
	if keys, ok := m.ctxKeys.Get().(map[any]any); ok {
		c.Keys = keys
	} else {
		c.Keys = make(map[any]any, 8)
	}
	c.Next()
	keys := c.Keys
	c.Keys = nil
	if len(keys) <= 8 {
		clear(keys)
		m.ctxKeys.Put(keys)
	}
}

// requestIDOf is the id requestID gave the request.
func requestIDOf(c *gin.Context) string {
	if v := c.Writer.Header()["X-Request-Id"]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// nosniff is the header's one value, shared (len == cap: an Add copies).
var nosniff = []string{"nosniff"}[:1:1]

// hexUint64 writes v as 16 lower-case hex digits into b.
func hexUint64(b []byte, v uint64) {
	const digits = "0123456789abcdef"
	for i := 15; i >= 0; i-- {
		b[i] = digits[v&0xf]
		v >>= 4
	}
}

func saneID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// observe records metrics and the access log line of each request. The
// access log names the key by its public id, never its token.
func (m *Master) observe(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	method := methodLabel(c.Request.Method)
	status := c.Writer.Status()
	d := time.Since(start)
	m.metrics.observe(route, method, status, d.Seconds())
	// The dashboard's static files served well are no news (they filled
	// the console above its prompt); their failures are logged.
	quiet := status < 400 && strings.HasPrefix(route, "/ui/assets/")
	if m.cfg.AccessLog && !quiet && m.log.Enabled(c.Request.Context(), slog.LevelInfo) {
		keyID := "-"
		if k, ok := c.Get(ctxKey); ok {
			keyID = k.(*auth.Key).ID()
		}
		path := c.Request.URL.Path
		if strings.Contains(path, auth.TokenPrefix) {
			path = maskTokens(path)
		}
		if m.accessLog != nil {
			m.accessLog.write(start.Add(d), c.Request.Method, path, status, d, keyID, m.clientAddr(c), requestIDOf(c))
			return
		}
		// LogAttrs: no interface conversions of the attributes.
		m.log.LogAttrs(c.Request.Context(), slog.LevelInfo, "request", slog.String("method", c.Request.Method),
			slog.String("path", path), slog.Int("status", status), slog.Duration("duration", d), slog.String("key", keyID),
			slog.String("client", m.clientAddr(c).String()), slog.String("requestId", requestIDOf(c)))
	}
}

// auditWrites records every change made through the REST API (any method
// but GET and HEAD) in the audit log: who, method and path, what the
// handler adds (ctxAuditDetail), and how it ended. The Commands endpoint
// records its own entry, with the output.
func (m *Master) auditWrites(c *gin.Context) {
	if c.Request.Method == http.MethodGet || c.Request.Method == http.MethodHead || c.FullPath() == "/api/commands/execute" {
		c.Next()
		return
	}
	c.Next()
	if c.GetBool(ctxAudited) {
		return
	}
	cmd := c.Request.Method + " " + c.Request.URL.Path
	if d := c.GetString(ctxAuditDetail); d != "" {
		cmd += " " + d
	}
	var err error
	if len(c.Errors) > 0 {
		err = c.Errors.Last().Err
	}
	inst, cfg := m.auditTarget(c)
	m.auditOn(callerKey(c).ID(), "rest", cmd, inst, cfg, err)
}

// auditTarget is the instance or configuration a request acts on (its
// route's :id or :name, a backup's instance), for the audit entry.
func (m *Master) auditTarget(c *gin.Context) (inst, cfg string) {
	p := c.FullPath()
	switch {
	case strings.HasPrefix(p, "/api/instances/:id"), strings.HasPrefix(p, "/ui/instances/:id"):
		inst = c.Param("id")
		if in, err := m.instances.Get(inst); err == nil {
			cfg = in.Info().ConfigurationName
		}
	case strings.HasPrefix(p, "/api/configurations/:name"), strings.HasPrefix(p, "/ui/configurations/:name"):
		cfg = c.Param("name")
	case strings.HasPrefix(p, "/api/backups/:backup"):
		if b, err := m.db.GetBackup(c.Param("backup")); err == nil {
			inst, cfg = b.InstanceID, b.Configuration
		}
	}
	return inst, cfg
}

// recoverPanics turns a panic into an internal error: logged with its stack
// and request id (tokens masked, should one be in the value), shown to the
// client as "internal error".
func (m *Master) recoverPanics(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			if r == http.ErrAbortHandler {
				panic(r)
			}
			m.log.Error("panic", "requestId", requestIDOf(c),
				"panic", maskTokens(fmt.Sprint(r)), "stack", maskTokens(string(debug.Stack())))
			if !c.Writer.Written() {
				fail(c, fmt.Errorf("panic serving %s", c.FullPath()))
			}
		}
	}()
	c.Next()
}

// clientAddr is the client's address: the TCP peer, or, when the peer is a
// trusted proxy, what it says in X-Forwarded-For / X-Real-IP (gin's
// ClientIP walks those). The common case allocates nothing.
func (m *Master) clientAddr(c *gin.Context) netip.Addr {
	// A request another master forwarded over the masters' mutual TLS:
	// the client is who that master saw.
	if a, ok := ha.ForwardedClient(c.Request); ok {
		return a
	}
	ap, err := netip.ParseAddrPort(c.Request.RemoteAddr)
	if err == nil {
		peer := ap.Addr().Unmap()
		if !m.trustedPeer(peer) {
			return peer
		}
	}
	a, err := netip.ParseAddr(c.ClientIP())
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

func (m *Master) trustedPeer(a netip.Addr) bool {
	for _, p := range m.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// allowList refuses clients outside the configured networks with 403.
func (m *Master) allowList(c *gin.Context) {
	if len(m.cfg.AllowCIDRs) == 0 {
		c.Next()
		return
	}
	a := m.clientAddr(c)
	for _, p := range m.cfg.AllowCIDRs {
		if p.Contains(a) {
			c.Next()
			return
		}
	}
	fail(c, universe.Errorf(universe.EFORBIDDEN, "Access denied from this IP address"))
}
