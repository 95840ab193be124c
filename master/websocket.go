package master

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/gin-gonic/gin"
	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/master/auth"
)

// Close reasons sent to WebSocket clients.
const (
	reasonRevoked  = "token revoked"
	reasonExpired  = "token expired"
	reasonShutdown = "master shutting down"
)

// serveWS upgrades an authenticated request (auth and scope were checked by
// the middleware before this runs, so a bad token never gets an upgrade) and
// runs session on it. The session ends, and the connection is closed, when
// session returns, the client goes away, keepalive pings fail, the key is
// revoked or expires (1008 with the reason), or the master shuts down (1000).
func (m *Master) serveWS(c *gin.Context, endpoint string, readLimit int64, session func(ctx context.Context, conn *websocket.Conn) error) {
	k := callerKey(c)
	if !isUpgrade(c.Request) {
		c.Header("Upgrade", "websocket")
		fail(c, universe.Errorf(universe.EUPGRADE, "this endpoint is a WebSocket: connect with Upgrade: websocket"))
		return
	}
	if !m.addSession() {
		fail(c, universe.Errorf(universe.EUNAVAILABLE, "the master is shutting down"))
		return
	}
	// A browser adds the session cookie to any page's WebSocket: with
	// it, the upgrade must come from this host's own pages (Accept checks
	// Origin against Host and answers 403). A bearer header is no ambient
	// credential, so header clients may send any Origin.
	opts := &websocket.AcceptOptions{InsecureSkipVerify: !c.GetBool(ctxSession)}
	rec := &hijackRecorder{ResponseWriter: c.Writer}
	conn, err := websocket.Accept(rec, c.Request, opts)
	if err != nil {
		m.wsWG.Done()
		return // Accept has written the HTTP error
	}
	conn.SetReadLimit(readLimit)
	// The request ends here (the access log says 101 and the time to
	// upgrade); the session goes on in a goroutine of its own. The
	// request's goroutine carries the HTTP server's and the middleware's
	// frames, which had grown its stack to 16-32 KiB for as long as the
	// connection lasted; the session's own stack holds the session alone.
	go m.runSession(conn, rec.conn, k, endpoint, session)
}

// hijackRecorder keeps the connection websocket.Accept takes over, so
// that a session can be cut at once (coder/websocket's CloseNow does
// nothing while its Close waits for the client's answer).
type hijackRecorder struct {
	http.ResponseWriter
	conn net.Conn
}

// WriteHeaderNow writes gin's buffered header (the 101) before the
// connection is taken: coder/websocket asks a gin writer for it.
func (h *hijackRecorder) WriteHeaderNow() {
	if w, ok := h.ResponseWriter.(interface{ WriteHeaderNow() }); ok {
		w.WriteHeaderNow()
	}
}

func (h *hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := h.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("the connection cannot be taken over")
	}
	c, rw, err := hj.Hijack()
	h.conn = c
	return c, rw, err
}

// runSession runs session on conn until it ends, then closes conn.
func (m *Master) runSession(conn *websocket.Conn, raw net.Conn, k *auth.Key, endpoint string, session func(ctx context.Context, conn *websocket.Conn) error) {
	defer m.wsWG.Done()
	gauge := m.metrics.wsSessions.WithLabelValues(endpoint)
	gauge.Inc()
	defer gauge.Dec()
	// Not derived from m.ctx: coder/websocket drops the connection without a
	// close frame when a read's context ends. The session's watch closes it
	// properly.
	ctx, cancel := context.WithCancel(context.Background())
	w := m.watchSession(ctx, conn, raw, k)
	defer func() {
		cancel()
		w.stop()
	}()
	// Outside the request, a panic has no middleware to recover it: logged
	// as recoverPanics logs one (tokens masked), the client told no more
	// than "internal error".
	defer func() {
		if p := recover(); p != nil {
			m.log.Error("panic in a WebSocket session", "endpoint", endpoint,
				"panic", maskTokens(fmt.Sprint(p)), "stack", maskTokens(string(debug.Stack())))
			_ = conn.Close(websocket.StatusInternalError, "internal error")
		}
	}()

	err := session(ctx, conn)
	switch {
	case err == nil:
		_ = conn.Close(websocket.StatusNormalClosure, "")
	case websocket.CloseStatus(err) != -1, errors.Is(err, context.Canceled):
		// closed by the peer or by the watch: nothing more to send
		_ = conn.CloseNow()
	default:
		_ = conn.Close(websocket.StatusInternalError, "internal error")
	}
}

// isUpgrade says whether r asks for a WebSocket (RFC 6455 4.1: Connection
// has the token "upgrade", Upgrade has "websocket").
func isUpgrade(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", "websocket")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h[name] {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// sessionWatch closes a session's connection when its key is revoked or
// expires, when the master shuts down, or when keepalive pings go
// unanswered. It holds no goroutine while nothing happens: each of these
// is a callback (context.AfterFunc, time.AfterFunc), so a session costs
// the connection's goroutines alone.
type sessionWatch struct {
	m    *Master
	ctx  context.Context // the session's
	conn *websocket.Conn
	raw  net.Conn // under conn, to cut it at once

	mu      sync.Mutex
	stopped bool
	running sync.WaitGroup // callbacks under way
	undo    []func() bool  // unregister the context callbacks
	expiry  *time.Timer
	ping    *time.Timer
}

// watchSession starts watching the session ctx on conn for key k; the
// session calls stop when it ends.
func (m *Master) watchSession(ctx context.Context, conn *websocket.Conn, raw net.Conn, k *auth.Key) *sessionWatch {
	w := &sessionWatch{m: m, ctx: ctx, conn: conn, raw: raw}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.undo = append(w.undo,
		context.AfterFunc(k.RevokedContext(), w.closer(websocket.StatusPolicyViolation, reasonRevoked, revokeGrace)),
		context.AfterFunc(m.ctx, w.closer(websocket.StatusNormalClosure, reasonShutdown, 0)))
	if exp := k.ExpiresAt(); !exp.IsZero() {
		w.expiry = time.AfterFunc(exp.Sub(m.cfg.Now()), w.closer(websocket.StatusPolicyViolation, reasonExpired, revokeGrace))
	}
	w.ping = time.AfterFunc(m.cfg.WSPingInterval, w.keepalive)
	return w
}

// begin says whether a callback may run (the watch is not stopped), and
// counts it as running.
func (w *sessionWatch) begin() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return false
	}
	w.running.Add(1)
	return true
}

// revokeGrace is how long a revoked or expired key's connection waits for
// the client's answer to its close frame before it is cut: the close
// handshake's own 5 s would leave a client that does not answer connected.
const revokeGrace = 250 * time.Millisecond

// closer closes the connection with code and reason; with grace > 0 it is
// cut once grace has passed without the client's answer.
func (w *sessionWatch) closer(code websocket.StatusCode, reason string, grace time.Duration) func() {
	return func() {
		if !w.begin() {
			return
		}
		defer w.running.Done()
		if grace > 0 && w.raw != nil {
			cut := time.AfterFunc(grace, func() { _ = w.raw.Close() })
			defer cut.Stop()
		}
		_ = w.conn.Close(code, reason)
	}
}

// keepalive pings the client, and closes the connection when no pong
// comes within the interval (with a close frame, 1001 "keepalive
// timeout": a client that was only slow learns why); else it runs again
// after the interval.
func (w *sessionWatch) keepalive() {
	if !w.begin() {
		return
	}
	defer w.running.Done()
	d := w.m.cfg.WSPingInterval
	pctx, cancel := context.WithTimeout(w.ctx, d)
	err := w.conn.Ping(pctx)
	cancel()
	if err != nil {
		if w.ctx.Err() == nil {
			_ = w.conn.Close(websocket.StatusGoingAway, "keepalive timeout")
		}
		return
	}
	w.mu.Lock()
	if !w.stopped {
		w.ping.Reset(d)
	}
	w.mu.Unlock()
}

// stop ends the watch, and waits for a callback under way (a close
// handshake) to finish.
func (w *sessionWatch) stop() {
	w.mu.Lock()
	w.stopped = true
	for _, f := range w.undo {
		f()
	}
	if w.expiry != nil {
		w.expiry.Stop()
	}
	w.ping.Stop()
	w.mu.Unlock()
	w.running.Wait()
}
