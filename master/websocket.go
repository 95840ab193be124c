package master

import (
	"context"
	"errors"
	"net/http"
	"strings"
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
	defer m.wsWG.Done()
	// A browser adds the session cookie to any page's WebSocket: with
	// it, the upgrade must come from this host's own pages (Accept checks
	// Origin against Host and answers 403). A bearer header is no ambient
	// credential, so header clients may send any Origin.
	opts := &websocket.AcceptOptions{InsecureSkipVerify: !c.GetBool(ctxSession)}
	conn, err := websocket.Accept(c.Writer, c.Request, opts)
	if err != nil {
		return // Accept has written the HTTP error
	}
	conn.SetReadLimit(readLimit)
	gauge := m.metrics.wsSessions.WithLabelValues(endpoint)
	gauge.Inc()
	defer gauge.Dec()

	// Not derived from m.ctx: coder/websocket drops the connection without a
	// close frame when a read's context ends. watchSession closes it properly.
	ctx, cancel := context.WithCancel(context.Background())
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		m.watchSession(ctx, conn, k)
	}()
	defer func() {
		cancel()
		<-watched
	}()

	err = session(ctx, conn)
	switch {
	case err == nil:
		_ = conn.Close(websocket.StatusNormalClosure, "")
	case websocket.CloseStatus(err) != -1, errors.Is(err, context.Canceled):
		// closed by the peer or by watchSession: nothing more to send
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

// watchSession closes conn when the key is revoked or expires, when the
// master shuts down, or when keepalive pings go unanswered; it returns when
// ctx (the session) ends.
func (m *Master) watchSession(ctx context.Context, conn *websocket.Conn, k *auth.Key) {
	var expiry <-chan time.Time
	if exp := k.ExpiresAt(); !exp.IsZero() {
		t := time.NewTimer(exp.Sub(m.cfg.Now()))
		defer t.Stop()
		expiry = t.C
	}
	ping := time.NewTicker(m.cfg.WSPingInterval)
	defer ping.Stop()
	for {
		select {
		case <-k.Revoked():
			_ = conn.Close(websocket.StatusPolicyViolation, reasonRevoked)
			return
		case <-expiry:
			_ = conn.Close(websocket.StatusPolicyViolation, reasonExpired)
			return
		case <-m.ctx.Done():
			_ = conn.Close(websocket.StatusNormalClosure, reasonShutdown)
			return
		case <-ctx.Done():
			return
		case <-ping.C:
			pctx, cancel := context.WithTimeout(ctx, m.cfg.WSPingInterval)
			err := conn.Ping(pctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				_ = conn.Close(websocket.StatusGoingAway, "keepalive timeout")
				return
			}
		}
	}
}
