package master

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/master/auth"
	"github.com/universe-orchestrator/universe/master/users"
)

// Routes that are not the admin group's (open, or for instance and PUBLIC
// keys with their own checks): they need no row.
var notAdminGroup = map[string]bool{
	"GET /api/ping": true, "HEAD /api/ping": true, "GET /api/metrics": true, "POST /api/login": true,
	"GET /api/instances": true, "GET /api/instances/:id": true, "GET /api/instances/:id/properties": true,
	"PUT /api/instances/:id/state": true, "GET /api/openapi.json": true, "GET /api/node": true,
	"GET /api/auth": true, "POST /api/auth/verify": true,
}

// TestEveryRouteHasARule: every route of the API's admin group has its row
// in routeRules, and every row names a route (a route added without one
// fails here: the build).
func TestEveryRouteHasARule(t *testing.T) {
	m := testMaster(t)
	seen := map[string]bool{}
	for _, r := range m.engine.Routes() {
		key := r.Method + " " + r.Path
		if !strings.HasPrefix(r.Path, "/api/") || notAdminGroup[key] {
			continue
		}
		seen[key] = true
		if _, ok := routeRules[key]; !ok {
			t.Errorf("route %s has no row in routeRules", key)
		}
	}
	for key := range routeRules {
		if !seen[key] {
			t.Errorf("row %s names no route", key)
		}
	}
}

// TestEveryRouteWithEveryRole walks every row's route with every role, in
// front of a handler that does nothing (the decision alone): an ALL key
// passes all; a member holding every permission on the instance's
// configuration passes all but the admins' (403); a member without grants
// passes only its own account's (403 elsewhere, naming the permission); a
// narrowed key only its permissions; a PUBLIC key none (401), nor a
// disabled member (401).
func TestEveryRouteWithEveryRole(t *testing.T) {
	m := testMaster(t)
	if err := m.db.PutConfiguration(api.Configuration{Name: "game", Command: "exec sleep 60", StopTimeoutSeconds: 1}); err != nil {
		t.Fatal(err)
	}
	in, err := m.instances.Create("game", "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.db.PutBackup(api.Backup{ID: "b1", InstanceID: in.ID, Configuration: "game", State: api.BackupCompleted}); err != nil {
		t.Fatal(err)
	}
	if err := m.db.PutSchedule(api.Schedule{ID: "s1", Name: "nightly", Configuration: "game", Cron: "@daily", Timezone: "UTC",
		Tasks: []api.ScheduleTask{{Type: api.TaskRollingRestart, MaxUnavailable: 1}}}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []userCreate{{Name: "full", Password: "a password of full"}, {Name: "none", Password: "a password of none"}, {Name: "gone", Password: "a password of gone"}} {
		if _, err := m.createUser(u); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.db.PutGrant(users.Grant{ID: "g1", User: "full", Configuration: "game", Permissions: users.Permissions}); err != nil {
		t.Fatal(err)
	}
	key := func(user string, perms []string) string {
		_, tok, err := m.keys.CreateForUser("k-"+user+strings.Join(perms, "-"), universe.ScopeMember, time.Hour, auth.UserKey{User: user, Permissions: perms}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	_, admin, _ := m.keys.Create("t-admin", universe.ScopeAll, 0)
	_, public, _ := m.keys.Create("t-public", universe.ScopePublic, 0)
	full, none, narrow, gone := key("full", nil), key("none", nil), key("full", []string{"console.read"}), key("gone", nil)
	if _, err := m.db.UpdateUser("gone", func(u *users.User) error { u.Disabled = true; return nil }); err != nil {
		t.Fatal(err)
	}
	m.usersChanged()

	e := gin.New()
	for path := range routeRules {
		method, p, _ := strings.Cut(path, " ")
		e.Handle(method, p, m.requestID, m.renderErrors, m.authenticate, m.requireUserKey, m.authorize, func(c *gin.Context) { c.Status(http.StatusNoContent) })
	}
	fill := strings.NewReplacer(":id", in.ID, ":name", "game", ":key", "x", ":group", "lobby", "*path", "a.txt", "*name", "heap", ":grant", "g1", ":backup", "b1", ":schedule", "s1")
	mismatches := 0
	for path, rl := range routeRules {
		method, p, _ := strings.Cut(path, " ")
		url := fill.Replace(p)
		if strings.HasPrefix(p, "/api/templates/:group/:name") {
			url = strings.Replace(fill.Replace(strings.Replace(p, ":name", "base", 1)), "game", "base", 1)
		}
		want := map[string]int{"admin": 204, "public": 401, "gone": 401}
		switch rl.on {
		case adminOnly:
			want["full"], want["none"], want["narrow"] = 403, 403, 403
		case self:
			want["full"], want["none"], want["narrow"] = 204, 204, 204
			want["admin"], want["public"] = 403, 401 // an ALL key not made by a user has no account
		default:
			want["full"], want["none"] = 204, 403
			want["narrow"] = 403
			if rl.perm == "console.read" || rl.perm == "" && strings.HasSuffix(p, "lifecycle") {
				want["narrow"] = 204 // the lifecycle's permission is the handler's to ask
			}
			if rl.perm == "" {
				want["none"] = 204
			}
		}
		for role, tok := range map[string]string{"admin": admin, "public": public, "full": full, "none": none, "narrow": narrow, "gone": gone} {
			req := httptest.NewRequest(method, url, nil)
			req.RemoteAddr = "127.0.0.1:5555"
			req.Header.Set("Authorization", "Bearer "+tok)
			w := httptest.NewRecorder()
			e.ServeHTTP(w, req)
			if w.Code != want[role] {
				mismatches++
				t.Errorf("%s %s as %s: %d, want %d (%s)", method, url, role, w.Code, want[role], strings.TrimSpace(w.Body.String()))
			}
			if w.Code == 403 && rl.perm != "" && rl.on != adminOnly && rl.on != self && !strings.Contains(w.Body.String(), rl.perm) {
				t.Errorf("%s %s as %s: the refusal does not name %s: %s", method, url, role, rl.perm, w.Body.String())
			}
		}
	}
	t.Logf("%d routes × 6 roles, %d mismatches", len(routeRules), mismatches)
}

// testMaster is a master that is not listening (its router and state).
func testMaster(t *testing.T) *Master {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.TemplatesDir = t.TempDir()
	cfg.AccessLog = false
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// TestEveryUIRouteHasARule: every dashboard route behind a session has a
// row in uiRules (what a member needs), and every row names a route.
func TestEveryUIRouteHasARule(t *testing.T) {
	m := testMaster(t)
	open := map[string]bool{"GET /ui/": true, "POST /ui/login": true, "GET /ui/link": true, "POST /ui/logout": true,
		"GET /ui/assets/*filepath": true, "HEAD /ui/assets/*filepath": true}
	seen := map[string]bool{}
	for _, r := range m.engine.Routes() {
		key := r.Method + " " + r.Path
		if !strings.HasPrefix(r.Path, "/ui/") || open[key] {
			continue
		}
		seen[key] = true
		if _, ok := uiRules[key]; !ok {
			t.Errorf("dashboard route %s has no row in uiRules", key)
		}
	}
	for key := range uiRules {
		if !seen[key] {
			t.Errorf("uiRules row %s names no route", key)
		}
	}
}
