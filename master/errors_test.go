package master_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/console"
	"github.com/universe-orchestrator/universe/master"
)

func TestErrorShapes(t *testing.T) {
	e := newEnv(t, func(c *master.Config) { c.MaxBodyBytes = 1 << 20 })
	big := `{"command":"` + strings.Repeat("a", 1<<20) + `"}`
	tests := []struct {
		name    string
		method  string
		path    string
		body    string
		headers []string
		status  int
		msg     string // substring of the error message
	}{
		{"malformed JSON", "POST", "/api/keys", `{"label":`, nil, 400, "malformed JSON"},
		{"not an object", "POST", "/api/keys", `[1,2]`, nil, 400, "malformed JSON"},
		{"wrong field type", "POST", "/api/keys", `{"label":5,"scope":"ALL"}`, nil, 400, `field "label" must be a string`},
		{"two values", "POST", "/api/keys", `{"label":"a","scope":"ALL"} {}`, nil, 400, "more than one value"},
		{"empty body", "POST", "/api/commands/execute", "", []string{"Content-Type: application/json"}, 400, "empty"},
		{"missing fields", "POST", "/api/keys", `{}`, nil, 400, "label and scope are required"},
		{"bad scope", "POST", "/api/keys", `{"label":"x","scope":"ROOT"}`, nil, 400, "ALL or PUBLIC"},
		{"bad label", "POST", "/api/keys", `{"label":"a b","scope":"ALL"}`, nil, 400, "label"},
		{"bad expiry", "POST", "/api/keys", `{"label":"x","scope":"ALL","expiresIn":"soon"}`, nil, 400, "duration"},
		{"label taken", "POST", "/api/keys", `{"label":"test-admin","scope":"ALL"}`, nil, 409, "exists"},
		{"wrong content type", "POST", "/api/keys", `{"label":"x","scope":"ALL"}`, []string{"Content-Type: text/plain"}, 415, "application/json"},
		{"body too large", "POST", "/api/commands/execute", big, nil, 413, "larger than"},
		{"unknown key", "DELETE", "/api/keys/nobody", "", nil, 404, "no key"},
		{"unknown key get", "GET", "/api/keys/nobody", "", nil, 404, "no key"},
		{"unknown route", "GET", "/api/nothing/abc123", "", nil, 404, "no such endpoint"},
		{"wrong method", "PUT", "/api/keys", "", nil, 405, "not allowed"},
		{"missing command", "POST", "/api/commands/execute", `{}`, nil, 400, "command is required"},
		{"unknown command", "POST", "/api/commands/execute", `{"command":"launch rockets"}`, nil, 400, "unknown command"},
		{"usage error", "POST", "/api/commands/execute", `{"command":"key create onlylabel"}`, nil, 400, "usage: key create <label> <ALL|PUBLIC>"},
		{"bad audit limit", "GET", "/api/audit?limit=0", "", nil, 400, "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := e.do(tt.method, tt.path, e.admin, tt.body, tt.headers...)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Fatalf("Content-Type %q", ct)
			}
			body := decode[api.Error](t, resp)
			if !strings.Contains(body.Error, tt.msg) {
				t.Fatalf("error %q, want it to contain %q", body.Error, tt.msg)
			}
		})
	}
}

func TestPanicIsAnInternalError(t *testing.T) {
	e := newEnv(t, nil)
	err := e.m.Commands().Register(&console.Command{Name: "boom", Usage: "boom", Run: func(context.Context, []string, console.Writer) error {
		panic("secret detail " + e.admin)
	}})
	if err != nil {
		t.Fatal(err)
	}
	resp := e.do("POST", "/api/commands/execute", e.admin, `{"command":"boom"}`)
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("status %d", resp.StatusCode)
	}
	body := decode[api.Error](t, resp)
	if body.Error != "internal error" || body.RequestID == "" || body.RequestID != resp.Header.Get("X-Request-Id") {
		t.Fatalf("body %+v", body)
	}
	if logs := e.logs.String(); strings.Contains(logs, e.admin) || !strings.Contains(logs, "secret detail unv_****") {
		t.Fatal("the panic's token was logged unmasked, or the panic was not logged")
	}
	// The master still serves.
	if resp := e.do("GET", "/api/node", e.admin, ""); resp.StatusCode != 200 {
		t.Fatalf("after panic: %d", resp.StatusCode)
	}
}

func TestRequestIDEchoed(t *testing.T) {
	e := newEnv(t, nil)
	if got := e.do("GET", "/api/ping", "", "", "X-Request-Id: abc-123").Header.Get("X-Request-Id"); got != "abc-123" {
		t.Fatalf("sane id not kept: %q", got)
	}
	if got := e.do("GET", "/api/ping", "", "", "X-Request-Id: evil\tid").Header.Get("X-Request-Id"); got == "" || strings.Contains(got, "evil") {
		t.Fatalf("unsafe id kept: %q", got)
	}
}
