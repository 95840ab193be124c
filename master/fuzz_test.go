package master_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/universe-orchestrator/universe/master"
	"github.com/universe-orchestrator/universe/master/auth"
)

// serve runs one request through the master's handler in process.
func serve(e *env, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	e.m.Handler().ServeHTTP(rec, req)
	return rec
}

// checkShape asserts the one error shape and that nothing internal leaked.
func checkShape(t *testing.T, rec *httptest.ResponseRecorder, allowed ...int) {
	t.Helper()
	ok := false
	for _, s := range allowed {
		ok = ok || rec.Code == s
	}
	if !ok {
		t.Fatalf("status %d not in %v; body %q", rec.Code, allowed, rec.Body.String())
	}
	if rec.Code >= 400 {
		var body map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("error body is not JSON: %q", rec.Body.String())
		}
		if msg, _ := body["error"].(string); msg == "" {
			t.Fatalf("error body without error: %q", rec.Body.String())
		}
	}
}

// FuzzAuthorizationHeader: any header value gets 200 (only for the real
// token), 401 or 429: never a 500, never another shape.
func FuzzAuthorizationHeader(f *testing.F) {
	e := newEnv(f, nil)
	for _, s := range []string{"", "Bearer", "Bearer ", "bearer x", "Basic abc", "Bearer unv_", "Bearer " + e.admin, "Bearer " + e.admin + " extra",
		"Bearer unv_" + strings.Repeat("A", 43), "Bearer\tunv_x", "Bearer " + strings.Repeat("x", 5000), "Bearer unv_\x00\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		req := httptest.NewRequest("GET", "/api/node", nil)
		req.Header["Authorization"] = []string{h}
		req.RemoteAddr = "192.0.2.1:1234"
		rec := serve(e, req)
		checkShape(t, rec, 200, 401, 429)
		if rec.Code == 200 && strings.TrimSpace(h[min(len(h), 7):]) != e.admin {
			t.Fatalf("header %q authenticated", h)
		}
	})
}

// FuzzJSONBodies: any body to the JSON endpoints gets a clear 2xx/4xx.
func FuzzJSONBodies(f *testing.F) {
	e := newEnv(f, func(c *master.Config) { c.AuthFailureRate = auth.Rate{Limit: 1 << 30, Window: 1} })
	for _, s := range []string{``, `{}`, `{"label":"a","scope":"ALL"}`, `{"label":1}`, `[]`, `null`, `{"command":"help"}`,
		`{"command":"key list"}`, `{"command":"key create \"a"}`, `{"command":"\u0000"}`, `{"label":"x","scope":"PUBLIC","expiresIn":"99999999999d"}`, `{"a":` + strings.Repeat("[", 10000)} {
		f.Add("/api/keys", s)
		f.Add("/api/commands/execute", s)
	}
	f.Fuzz(func(t *testing.T, path, body string) {
		if path != "/api/keys" && path != "/api/commands/execute" {
			return
		}
		if strings.Contains(body, "stop") || strings.Contains(body, "exit") {
			return // would stop the master under test
		}
		req := httptest.NewRequest("POST", path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+e.admin)
		req.Header.Set("Content-Type", "application/json")
		rec := serve(e, req)
		checkShape(t, rec, 200, 201, 400, 404, 409, 413)
	})
}
