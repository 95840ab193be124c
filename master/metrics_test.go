package master_test

import (
	"context"

	"github.com/coder/websocket"
	"io"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

func TestMetrics(t *testing.T) {
	e := newEnv(t, nil)
	e.do("GET", "/api/node", e.admin, "")
	e.do("GET", "/api/node", "", "")
	e.do("GET", "/api/keys", e.public, "")
	e.do("GET", "/api/unknown/"+e.admin, e.admin, "") // a token in a path must not become a label
	conn, _, err := e.dialWS("/api/console", e.admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	// One command's round trip: the session is surely counted after it.
	if err := conn.Write(context.Background(), websocket.MessageText, []byte("help")); err != nil {
		t.Fatal(err)
	}
	readUntilEnd(t, conn)

	resp := e.do("GET", "/api/metrics", "", "")
	b, _ := io.ReadAll(resp.Body)
	text := string(b)

	// What promtool check metrics checks.
	problems, err := promlint.New(strings.NewReader(text)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	for _, want := range []string{
		`universe_http_requests_total{method="GET",route="/api/node",status="200"} 1`,
		`universe_http_requests_total{method="GET",route="/api/node",status="401"} 1`,
		`universe_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`universe_auth_failures_total{reason="missing"} 1`,
		`universe_auth_failures_total{reason="insufficient_scope"} 1`,
		`universe_keys{scope="ALL"} 1`,
		`universe_build_info{goversion="go`,
		`universe_node_capacity_cpu_cores{node="node-1"} 0`,
		`universe_keys{scope="PUBLIC"} 1`,
		`universe_websocket_sessions{endpoint="console"} 1`,
		`universe_instances{state="ONLINE"} 0`,
		`universe_instances{state="STOPPED"} 0`,
		`universe_live_log_subscribers 0`,
		`universe_log_lines_dropped_total{cause="slow_client"} 0`,
		`universe_http_request_duration_seconds_bucket`,
		`go_goroutines`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// No secret, label or key id in any label value.
	for _, k := range e.m.Keyring().List() {
		for _, s := range []string{k.ID, k.Label} {
			if strings.Contains(text, s) {
				t.Errorf("metrics contain key %q", s)
			}
		}
	}
	for _, tok := range []string{e.admin, e.public, "unv_"} {
		if strings.Contains(text, tok) {
			t.Error("metrics contain a token")
		}
	}
}
