package master_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/master"
)

const (
	realm        = `Bearer realm="universe"`
	realmScope   = `Bearer realm="universe", error="insufficient_scope"`
	unauthorized = "Unauthorized"
	noAuthHeader = ""
	insufficient = "insufficient"
)

func TestAuthentication(t *testing.T) {
	e := newEnv(t, nil)
	_, expired, err := e.m.Keyring().Create("short-lived", universe.ScopeAll, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	_, revoked, _ := e.m.Keyring().Create("revoked", universe.ScopeAll, 0)
	if _, err := e.m.Keyring().Revoke("revoked"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(60 * time.Millisecond)

	tests := []struct {
		name    string
		method  string
		path    string
		header  string // full Authorization header value, "" for none
		status  int
		wwwAuth string
	}{
		{"ping is open", "GET", "/api/ping", "", 200, ""},
		{"metrics are open", "GET", "/api/metrics", "", 200, ""},
		{"ping ignores a bad token", "GET", "/api/ping", "Bearer nonsense", 200, ""},
		{"missing token", "GET", "/api/node", "", 401, realm},
		{"wrong scheme", "GET", "/api/node", "Basic " + e.admin, 401, realm},
		{"scheme without token", "GET", "/api/node", "Bearer ", 401, realm},
		{"malformed token", "GET", "/api/node", "Bearer not-a-token", 401, realm},
		{"unknown token", "GET", "/api/node", "Bearer unv_" + strings.Repeat("A", 43), 401, realm},
		{"expired token", "GET", "/api/node", "Bearer " + expired, 401, realm},
		{"revoked token", "GET", "/api/node", "Bearer " + revoked, 401, realm},
		{"admin on node", "GET", "/api/node", "Bearer " + e.admin, 200, ""},
		{"scheme is case-insensitive", "GET", "/api/node", "bearer " + e.admin, 200, ""},
		{"public on node", "GET", "/api/node", "Bearer " + e.public, 200, ""},
		{"public on auth", "GET", "/api/auth", "Bearer " + e.public, 200, ""},
		{"public on verify", "POST", "/api/auth/verify", "Bearer " + e.public, 200, ""},
		{"public on keys", "GET", "/api/keys", "Bearer " + e.public, 401, realmScope},
		{"public creating a key", "POST", "/api/keys", "Bearer " + e.public, 401, realmScope},
		{"public revoking a key", "DELETE", "/api/keys/test-admin", "Bearer " + e.public, 401, realmScope},
		{"public on commands", "POST", "/api/commands/execute", "Bearer " + e.public, 401, realmScope},
		{"public on console", "GET", "/api/console", "Bearer " + e.public, 401, realmScope},
		{"public on audit", "GET", "/api/audit", "Bearer " + e.public, 401, realmScope},
		{"public on instances", "GET", "/api/instances", "Bearer " + e.public, 401, realmScope},
		{"public on an instance", "GET", "/api/instances/abc123", "Bearer " + e.public, 401, realmScope},
		{"public on live-log", "GET", "/api/instances/abc123/live-log", "Bearer " + e.public, 401, realmScope},
		{"public on configurations", "GET", "/api/configurations", "Bearer " + e.public, 401, realmScope},
		{"public writing a configuration", "PUT", "/api/configurations/x", "Bearer " + e.public, 401, realmScope},
		{"public on templates", "GET", "/api/templates", "Bearer " + e.public, 401, realmScope},
		{"public on a template file", "GET", "/api/templates/g/n/files/a.txt", "Bearer " + e.public, 401, realmScope},
		{"admin on an unknown instance", "GET", "/api/instances/abc123", "Bearer " + e.admin, 404, ""},
		{"admin on instances", "GET", "/api/instances", "Bearer " + e.admin, 200, ""},
		{"admin on keys", "GET", "/api/keys", "Bearer " + e.admin, 200, ""},
		{"admin on audit", "GET", "/api/audit", "Bearer " + e.admin, 200, ""},
		{"unknown route without token", "GET", "/api/nope", "", 401, realm},
		{"unknown route with admin", "GET", "/api/nope", "Bearer " + e.admin, 404, ""},
		{"wrong method without token", "DELETE", "/api/node", "", 401, realm},
		{"wrong method with admin", "DELETE", "/api/node", "Bearer " + e.admin, 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, e.url+tt.path, nil)
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tt.wwwAuth {
				t.Fatalf("WWW-Authenticate %q, want %q", got, tt.wwwAuth)
			}
			if resp.Header.Get("X-Request-Id") == "" {
				t.Fatal("no X-Request-Id")
			}
			if tt.status == 401 {
				if got := errorBody(t, resp); got != unauthorized {
					t.Fatalf("body error %q", got)
				}
			}
		})
	}
	// No token, key label or id ever reaches the log; the key id does, for
	// the access log, as the only trace of a key.
	logs := e.logs.String()
	for _, secret := range []string{e.admin, e.public, expired, revoked, e.admin[4:]} {
		if strings.Contains(logs, secret) {
			t.Fatal("a token reached the log")
		}
	}
}

// TestTokensNeverLogged sends tokens where careless clients put them (paths,
// command arguments) and checks the log and the audit log mask them.
func TestTokensNeverLogged(t *testing.T) {
	e := newEnv(t, func(c *master.Config) { c.AccessLog = true })
	e.do("DELETE", "/api/keys/"+e.public, e.admin, "")
	e.do("POST", "/api/commands/execute", e.admin, `{"command":"key revoke `+e.public+`"}`)
	e.do("GET", "/api/nothing/"+e.admin, e.admin, "")
	audit := e.do("GET", "/api/audit", e.admin, "")
	body := decode[[]map[string]any](t, audit)
	if len(body) == 0 {
		t.Fatal("no audit entries")
	}
	for _, where := range []string{e.logs.String(), fmt.Sprint(body)} {
		if strings.Contains(where, e.public) || strings.Contains(where, e.admin) {
			t.Fatalf("a token leaked: %s", where)
		}
	}
	if !strings.Contains(e.logs.String(), "/api/keys/unv_****") {
		t.Fatal("the access log lacks the masked path")
	}
}

func TestVerifyAndWhoAmI(t *testing.T) {
	e := newEnv(t, nil)
	v := decode[api.Auth](t, e.do("POST", "/api/auth/verify", e.admin, ""))
	if v.Label != "test-admin" || v.Scope != "ALL" || v.ID == "" || v.RateLimit != nil {
		t.Fatalf("verify: %+v", v)
	}
	a := decode[api.Auth](t, e.do("GET", "/api/auth", e.public, ""))
	if a.Scope != "PUBLIC" || a.RateLimit == nil || a.RateLimit.Limit != 100 || a.RateLimit.Remaining != 99 || a.RateLimit.WindowMs != 60000 {
		t.Fatalf("auth: %+v %+v", a, a.RateLimit)
	}
	n := decode[api.Node](t, e.do("GET", "/api/node", e.public, ""))
	if n.Version == "" || n.StartedAt == 0 || len(n.Instances.ByState) != 4 {
		t.Fatalf("node: %+v", n)
	}
	p := decode[api.Ping](t, e.do("GET", "/api/ping", "", ""))
	if p.Status != "ok" {
		t.Fatalf("ping: %+v", p)
	}
}

func TestAllowListAndTrustedProxies(t *testing.T) {
	e := newEnv(t, func(c *master.Config) {
		c.AllowCIDRs = mustPrefixes("10.1.0.0/16", "127.0.0.1/32")
		c.TrustedProxies = mustPrefixes("127.0.0.1/32")
	})
	tests := []struct {
		name   string
		xff    string
		status int
	}{
		{"direct loopback client", "", 200},
		{"allowed client behind trusted proxy", "10.1.2.3", 200},
		{"denied client behind trusted proxy", "192.0.2.7", 403},
		{"denied even on ping", "192.0.2.7", 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := "/api/node"
			if strings.Contains(tt.name, "ping") {
				path = "/api/ping"
			}
			var h []string
			if tt.xff != "" {
				h = append(h, "X-Forwarded-For: "+tt.xff)
			}
			resp := e.do("GET", path, e.admin, "", h...)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.status == 403 {
				if got := errorBody(t, resp); got != "Access denied from this IP address" {
					t.Fatalf("body: %q", got)
				}
			}
		})
	}

	// Without trusted proxies, X-Forwarded-For is not believed.
	e2 := newEnv(t, func(c *master.Config) { c.AllowCIDRs = mustPrefixes("10.1.0.0/16") })
	if resp := e2.do("GET", "/api/node", e2.admin, "", "X-Forwarded-For: 10.1.2.3"); resp.StatusCode != 403 {
		t.Fatalf("spoofed X-Forwarded-For was believed: %d", resp.StatusCode)
	}
}
