package instance_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/instance"
)

// A health check passes on a TCP connect, or on an HTTP answer of 2xx or
// 3xx (a redirect not followed); it fails on a refused connection and on
// 4xx/5xx, saying why.
func TestProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
		case "/moved":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	_ = ln.Close()
	ctx := context.Background()
	for _, c := range []struct {
		h    api.HealthCheck
		addr string
		want string // "" passes
	}{
		{api.HealthCheck{Type: "tcp", TimeoutSeconds: 1}, addr, ""},
		{api.HealthCheck{Type: "http", Path: "/ok", TimeoutSeconds: 1}, addr, ""},
		{api.HealthCheck{Type: "http", Path: "/moved", TimeoutSeconds: 1}, addr, ""},
		{api.HealthCheck{Type: "http", Path: "/down", TimeoutSeconds: 1}, addr, "answered 503"},
		{api.HealthCheck{Type: "tcp", TimeoutSeconds: 1}, closed, "connect"},
		{api.HealthCheck{Type: "http", Path: "/", TimeoutSeconds: 1}, closed, "GET /"},
	} {
		err := instance.Probe(ctx, c.h, c.addr)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v at %s: %v (want %q)", c.h, c.addr, err, c.want)
		}
	}
}
