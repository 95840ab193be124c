package master_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/master"
)

// env is a real master on a loopback port with a temp data dir, and one
// key of each scope.
type env struct {
	t      testing.TB
	m      *master.Master
	url    string
	admin  string // ALL token
	public string // PUBLIC token
	logs   *logBuffer
}

func newEnv(t testing.TB, mutate func(*master.Config)) *env {
	t.Helper()
	cfg := master.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.TemplatesDir = t.TempDir()
	cfg.WSPingInterval = time.Second
	cfg.ClusterAddr = "127.0.0.1:0"
	logs := &logBuffer{}
	cfg.Logger = newLogger(logs)
	if mutate != nil {
		mutate(&cfg)
	}
	m, err := master.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	e := &env{t: t, m: m, url: "http://" + m.Addr(), logs: logs}
	// A data dir reopened by a second env has the keys of the first: they
	// are replaced, since their tokens are not kept.
	for _, label := range []string{"test-admin", "test-public"} {
		_, _ = m.Keyring().Revoke(label)
	}
	_, e.admin, err = m.Keyring().Create("test-admin", universe.ScopeAll, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, e.public, err = m.Keyring().Create("test-public", universe.ScopePublic, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { scrapeStatuses(e.url, e.admin) }) // before Close: cleanups run last first
	return e
}

// do sends a request; token "" sends no Authorization header; headers are
// "Name: value" strings.
func (e *env) do(method, path, token, body string, headers ...string) *http.Response {
	e.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+path, r)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func decode[T any](t testing.TB, resp *http.Response) T {
	t.Helper()
	var v T
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	return v
}

func errorBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	return decode[map[string]any](t, resp)["error"].(string)
}

// dialWS opens a WebSocket with the token in the Authorization header.
func (e *env) dialWS(path, token string) (*websocket.Conn, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	return websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.url, "http")+path, &websocket.DialOptions{HTTPHeader: h})
}
