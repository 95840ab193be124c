package master

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/gin-gonic/gin"
	universe "github.com/universe-orchestrator/universe"
)

// syncBuffer is a bytes.Buffer safe for the logger's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A session that panics, outside any request once upgraded, is recovered:
// the client gets 1011 "internal error", the master goes on, and the log
// has the panic with tokens masked.
func TestWebSocketSessionPanic(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Addr, cfg.DataDir, cfg.TemplatesDir = "127.0.0.1:0", t.TempDir(), t.TempDir()
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var logs syncBuffer
	m.log = slog.New(slog.NewTextHandler(&logs, nil))
	_, admin, err := m.keys.Create("panic-admin", universe.ScopeAll, 0)
	if err != nil {
		t.Fatal(err)
	}
	e := gin.New()
	e.GET("/ws", m.authenticate, func(c *gin.Context) {
		m.serveWS(c, "test", 1024, func(context.Context, *websocket.Conn) error {
			panic("session broke with " + admin)
		})
	})
	srv := httptest.NewServer(e)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + admin}}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	_, _, err = conn.Read(ctx)
	if got := websocket.CloseStatus(err); got != websocket.StatusInternalError {
		t.Fatalf("close status %v (%v), want 1011", got, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "panic in a WebSocket session") {
		if time.Now().After(deadline) {
			t.Fatalf("no panic in the log:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if strings.Contains(logs.String(), admin) {
		t.Fatal("the token is in the log")
	}
}
