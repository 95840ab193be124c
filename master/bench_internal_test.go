package master

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/master/auth"
	"github.com/universe-orchestrator/universe/master/users"
)

// benchMaster is a master for benchmarks: quiet, no access log, and a
// PUBLIC rate high enough that the measured path is the allowed one.
func benchMaster(b *testing.B) (m *Master, admin, public string) {
	b.Helper()
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = b.TempDir()
	cfg.TemplatesDir = b.TempDir()
	cfg.AccessLog = false
	cfg.PublicRate = auth.Rate{Limit: 1000, Window: 100 * time.Microsecond}
	m, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = m.Close() })
	_, admin, _ = m.keys.Create("bench-admin", universe.ScopeAll, 0)
	_, public, _ = m.keys.Create("bench-public", universe.ScopePublic, 0)
	return m, admin, public
}

// nopWriter is a ResponseWriter that keeps nothing, so that only the code
// under test allocates.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nopWriter) WriteHeader(int)             {}

// BenchmarkAuthMiddleware measures authenticate (which includes the rate
// limit) alone: an engine with only it in front of a no-op handler, against the
// same engine without them ("bare"). Subtract bare from the others.
func BenchmarkAuthMiddleware(b *testing.B) {
	m, admin, public := benchMaster(b)
	nop := func(c *gin.Context) { c.Status(http.StatusNoContent) }
	bare := gin.New()
	bare.GET("/api/node", nop)
	withAuth := gin.New()
	withAuth.GET("/api/node", m.authenticate, nop)

	for _, bc := range []struct {
		name   string
		engine *gin.Engine
		token  string
	}{
		{"bare", bare, ""},
		{"ALL", withAuth, admin},
		{"PUBLIC", withAuth, public},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", "/api/node", nil)
			req.RemoteAddr = "127.0.0.1:5555"
			if bc.token != "" {
				req.Header.Set("Authorization", "Bearer "+bc.token)
			}
			w := &nopWriter{h: http.Header{}}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				clear(w.h)
				bc.engine.ServeHTTP(w, req)
			}
		})
	}
}

// BenchmarkNodeThroughput measures GET /api/node on a real server over
// loopback: the full master chain with an ALL key and with a PUBLIC key,
// against the same handler and chain without the authenticate and
// rate-limit middleware ("noauth"). The clients are raw HTTP/1.1 keep-alive
// connections sending pre-built requests, so that the client's own work
// (which shares the machine's cores) is as small as it can be and about the
// same in every case. ns/op is the inverse of throughput (req/s = 1e9/ns).
func BenchmarkNodeThroughput(b *testing.B) {
	m, admin, public := benchMaster(b)
	noauth := gin.New()
	noauth.Use(m.requestID, m.observe, m.renderErrors, m.recoverPanics, m.allowList, m.guardBody)
	noauth.GET("/api/node", m.handleNode)

	for _, bc := range []struct {
		name    string
		handler http.Handler
		token   string
	}{
		{"noauth", noauth, ""},
		{"ALL", m.engine, admin},
		{"PUBLIC", m.engine, public},
	} {
		b.Run(bc.name, func(b *testing.B) { serveLoopback(b, bc.handler, bc.token, 4) })
	}
}

// rawClient sends one fixed request over a keep-alive connection and reads
// the status and body of the response with as little work as possible.
type rawClient struct {
	conn net.Conn
	req  []byte
	br   *bufio.Reader
}

func newRawClient(conn net.Conn, req string) *rawClient {
	return &rawClient{conn: conn, req: []byte(req), br: bufio.NewReaderSize(conn, 16<<10)}
}

func (c *rawClient) roundTrip() (int, error) {
	if _, err := c.conn.Write(c.req); err != nil {
		return 0, err
	}
	status, length := 0, -1
	for first := true; ; first = false {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(line) <= 2 { // end of headers
			break
		}
		if first && len(line) > 12 {
			status, _ = strconv.Atoi(string(line[9:12]))
		} else if len(line) > 16 && (line[0] == 'C' || line[0] == 'c') && bytes.EqualFold(line[:15], []byte("Content-Length:")) {
			length, _ = strconv.Atoi(string(bytes.TrimSpace(line[15:])))
		}
	}
	if length < 0 {
		return status, errors.New("no Content-Length")
	}
	_, err := c.br.Discard(length)
	return status, err
}

// masterAndBareGin is a master in its default configuration (the access
// log on, written to nowhere as the master's command writes it:
// AccessLogOut, the logger's own sink) with an ALL key, and bare gin
// serving the same GET /api/node handler.
func masterAndBareGin(b *testing.B) (*Master, string, *gin.Engine) {
	m, admin, _ := benchMaster(b)
	m.cfg.AccessLog = true
	m.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	m.accessLog = newAccessLog(io.Discard)
	bare := gin.New()
	bare.GET("/api/node", m.handleNode)
	return m, admin, bare
}

// BenchmarkNodeVsBareGin measures GET /api/node with an ALL key on a real
// server over loopback at 32 connections: the master's whole chain with
// the default configuration (access log on, written to nowhere as the
// master's command writes it: AccessLogOut, the logger's own sink),
// against bare gin serving the same handler ("bare"). The ratio of their
// ns/op is what bench/request-overhead.sh reports.
func BenchmarkNodeVsBareGin(b *testing.B) {
	m, admin, bare := masterAndBareGin(b)
	// bare gin that also sends the two headers every answer of the master
	// carries: what they cost, apart from the middleware.
	headers := gin.New()
	headers.GET("/api/node", func(c *gin.Context) {
		h := c.Writer.Header()
		h["X-Request-Id"] = []string{"0123456789abcdef"}
		h["X-Content-Type-Options"] = nosniff
		m.handleNode(c)
	})
	for _, bc := range []struct {
		name    string
		handler http.Handler
		token   string
	}{
		{"bare", bare, ""},
		{"headers", headers, ""},
		{"default", m.engine, admin},
	} {
		b.Run(bc.name, func(b *testing.B) { serveLoopback(b, bc.handler, bc.token, 32/max(1, runtime.GOMAXPROCS(0))) })
	}
}

// serveLoopback serves handler on a loopback port and measures GET
// /api/node (with token, when set) from parallelism×GOMAXPROCS keep-alive
// connections.
func serveLoopback(b *testing.B, handler http.Handler, token string, parallelism int) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: handler}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	req := "GET /api/node HTTP/1.1\r\nHost: bench\r\n"
	if token != "" {
		req += "Authorization: Bearer " + token + "\r\n"
	}
	req += "\r\n"
	b.SetParallelism(parallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Error(err)
			return
		}
		defer conn.Close()
		rc := newRawClient(conn, req)
		for pb.Next() {
			if status, err := rc.roundTrip(); err != nil || status != 200 {
				b.Errorf("status %d, %v", status, err)
				return
			}
		}
	})
}

// BenchmarkChain is GET /api/node through the master's whole chain, in
// process (no network), against bare gin serving the same handler: what
// the middleware costs per request, in time and allocations.
func BenchmarkChain(b *testing.B) {
	m, admin, bare := masterAndBareGin(b)
	for _, bc := range []struct {
		name    string
		handler http.Handler
	}{{"bare", bare}, {"default", m.engine}} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", "/api/node", nil)
			req.RemoteAddr = "127.0.0.1:5555"
			req.Header.Set("Authorization", "Bearer "+admin)
			w := &nopWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				bc.handler.ServeHTTP(w, req)
			}
		})
	}
}

// BenchmarkAuthorizeMember measures authenticate + authorize in front of a
// no-op handler on GET /api/instances/:id: an ALL key, and a member's key
// whose user holds 1,000 grants (one on the instance asked for). Subtract
// ALL from member: what a member's rights add to a request (the issue's
// bound: ≤ 1 µs).
func BenchmarkAuthorizeMember(b *testing.B) {
	m, admin, _ := benchMaster(b)
	if _, err := m.createUser(userCreate{Name: "ann", Password: "a long password of ann"}); err != nil {
		b.Fatal(err)
	}
	if err := m.db.PutConfiguration(api.Configuration{Name: "game", Command: "true"}); err != nil {
		b.Fatal(err)
	}
	for i := range 1000 {
		g := users.Grant{ID: users.NewGrantID(), User: "ann", InstanceID: "i" + strconv.Itoa(i), Permissions: []string{"instance.read", "console.read"}}
		if err := m.db.PutGrant(g); err != nil {
			b.Fatal(err)
		}
	}
	m.usersChanged()
	_, member, err := m.keys.CreateForUser("ann-key", universe.ScopeMember, 0, auth.UserKey{User: "ann"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	nop := func(c *gin.Context) { c.Status(http.StatusNoContent) }
	e := gin.New()
	e.GET("/api/instances/:id", m.authenticate, m.authorize, nop)
	for _, bc := range []struct{ name, token string }{{"ALL", admin}, {"member-1000-grants", member}} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", "/api/instances/i500", nil)
			req.RemoteAddr = "127.0.0.1:5555"
			req.Header.Set("Authorization", "Bearer "+bc.token)
			w := &nopWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				e.ServeHTTP(w, req)
			}
		})
	}
}
