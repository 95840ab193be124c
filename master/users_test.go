package master_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pquerna/otp/totp"

	"github.com/universe-orchestrator/universe/api"
)

// TestUsersSignInGrantsAndRevocation: an admin makes a member; weak
// passwords are refused; a sign-in answers alike for a wrong name and a
// wrong password, and is throttled after 5 failures; the member's session
// sees only what its grant covers and is refused the rest with 403 naming
// the permission; a key it makes is never wider than itself; revoking its
// grant ends its session and closes its live log within a second; the last
// admin cannot be deleted.
func TestUsersSignInGrantsAndRevocation(t *testing.T) {
	e := newEnv(t, nil)
	if r := e.do("PUT", "/api/configurations/game", e.admin, `{"command":"exec sleep 60","stopTimeoutSeconds":1}`); r.StatusCode != 204 {
		t.Fatalf("configuration: %d", r.StatusCode)
	}
	e.do("PUT", "/api/configurations/other", e.admin, `{"command":"exec sleep 60","stopTimeoutSeconds":1}`)
	game := decode[map[string]any](t, e.do("POST", "/api/instances", e.admin, `{"configurationName":"game"}`))["id"].(string)
	other := decode[map[string]any](t, e.do("POST", "/api/instances", e.admin, `{"configurationName":"other"}`))["id"].(string)

	// In this order: the second "ann" is the one refused.
	for _, c := range []struct {
		body string
		want int
	}{
		{`{"name":"ann","password":"short"}`, 400},
		{`{"name":"annannannan","password":"annannannan"}`, 400},
		{`{"name":"bad name","password":"long enough pw"}`, 400},
		{`{"name":"ann","password":"ann's long password"}`, 201},
		{`{"name":"ann","password":"another long password"}`, 409},
		{`{"name":"boss","password":"the boss's password","admin":true}`, 201},
	} {
		if r := e.do("POST", "/api/users", e.admin, c.body); r.StatusCode != c.want {
			t.Errorf("create %s: %d, want %d", c.body, r.StatusCode, c.want)
		}
	}
	if r := e.do("POST", "/api/users/ann/grants", e.admin, `{"configuration":"game","permissions":["instance.read","power.stop","console.read","no.such"]}`); r.StatusCode != 400 {
		t.Fatalf("a grant of an unknown permission: %d", r.StatusCode)
	}
	grant := decode[map[string]any](t, e.do("POST", "/api/users/ann/grants", e.admin, `{"configuration":"game","permissions":["instance.read","power.stop","console.read"]}`))["id"].(string)

	login := func(body string) *http.Response {
		return e.do("POST", "/api/login", "", body, "Sec-Fetch-Site: same-origin")
	}
	wrongUser := errorBody(t, login(`{"name":"nobody","password":"ann's long password"}`))
	wrongPass := errorBody(t, login(`{"name":"ann","password":"not her password"}`))
	if wrongUser != wrongPass {
		t.Fatalf("a wrong name and a wrong password answer differently: %q vs %q", wrongUser, wrongPass)
	}
	r := login(`{"name":"ann","password":"ann's long password"}`)
	if r.StatusCode != 200 || len(r.Cookies()) == 0 {
		t.Fatalf("sign in: %d", r.StatusCode)
	}
	cookie := r.Cookies()[0]
	as := func(method, path, body string) *http.Response {
		return e.do(method, path, "", body, "Cookie: "+cookie.Name+"="+cookie.Value, "Sec-Fetch-Site: same-origin")
	}
	list := decode[[]map[string]any](t, as("GET", "/api/instances", ""))
	if len(list) != 1 || list[0]["id"] != game {
		t.Fatalf("the member's instance list: %v", list)
	}
	if r := as("GET", "/api/instances/"+other, ""); r.StatusCode != 403 {
		t.Fatalf("an instance the member has no grant on: %d", r.StatusCode)
	}
	if r := as("PUT", "/api/configurations/game", `{"command":"true"}`); r.StatusCode != 403 || !strings.Contains(errorBody(t, r), "config.write") {
		t.Fatalf("a configuration write without config.write: %d", r.StatusCode)
	}
	if r := as("PATCH", "/api/instances/"+game+"/lifecycle?target=kill", ""); r.StatusCode != 403 || !strings.Contains(errorBody(t, r), "power.kill") {
		t.Fatalf("a kill without power.kill: %d", r.StatusCode)
	}
	if r := as("GET", "/api/keys", ""); r.StatusCode != 403 {
		t.Fatalf("the keys, as a member: %d", r.StatusCode)
	}
	me := decode[map[string]any](t, as("GET", "/api/me", ""))
	if me["name"] != "ann" || me["admin"] != false || len(me["grants"].([]any)) != 1 {
		t.Fatalf("me: %v", me)
	}
	// A key of hers, narrowed: it reads, it does not stop.
	nk := decode[map[string]any](t, as("POST", "/api/me/keys", `{"label":"ann-ro","permissions":["instance.read"]}`))
	tok := nk["token"].(string)
	if r := e.do("GET", "/api/instances/"+game, tok, ""); r.StatusCode != 200 {
		t.Fatalf("the narrowed key reads: %d", r.StatusCode)
	}
	if r := e.do("POST", "/api/instances/"+game+"/stop", tok, ""); r.StatusCode != 403 {
		t.Fatalf("the narrowed key stops: %d", r.StatusCode)
	}
	// The audit log names her, and the key she acted with.
	found := false
	for _, a := range decode[[]map[string]any](t, e.do("GET", "/api/audit", e.admin, "")) {
		if a["user"] == "ann" && strings.HasPrefix(a["keyLabel"].(string), "login-ann-") && strings.Contains(a["command"].(string), "/api/me/keys") {
			found = true
		}
	}
	if !found {
		t.Fatal("no audit entry names the member who made a key")
	}
	// No one grants more than they hold: she has no user.grant.
	if r := as("POST", "/api/users/ann/grants", `{"configuration":"game","permissions":["power.kill"]}`); r.StatusCode != 403 {
		t.Fatalf("a member granting: %d", r.StatusCode)
	}

	// Revoking her grant ends her session and closes her live log.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h := http.Header{}
	h.Set("Cookie", cookie.Name+"="+cookie.Value)
	h.Set("Origin", e.url)
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.url, "http")+"/api/instances/"+game+"/live-log", &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		t.Fatalf("live log as the member: %v", err)
	}
	defer ws.CloseNow()
	closed := make(chan time.Time, 1)
	go func() {
		for {
			if _, _, err := ws.Read(context.Background()); err != nil {
				closed <- time.Now()
				return
			}
		}
	}()
	revoked := time.Now()
	if r := e.do("DELETE", "/api/users/ann/grants/"+grant, e.admin, ""); r.StatusCode != 204 {
		t.Fatalf("revoke the grant: %d", r.StatusCode)
	}
	select {
	case at := <-closed:
		if d := at.Sub(revoked); d > time.Second {
			t.Fatalf("the live log closed %v after the revocation", d)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the live log stays open after the grant was revoked")
	}
	if r := as("GET", "/api/me", ""); r.StatusCode != 401 {
		t.Fatalf("the session after the revocation: %d", r.StatusCode)
	}

	// Throttled: 5 failures a minute per user, then 429 with the delay.
	for range 5 {
		login(`{"name":"boss","password":"wrong wrong wrong"}`)
	}
	if r := login(`{"name":"boss","password":"the boss's password"}`); r.StatusCode != 429 || decode[map[string]any](t, r)["retryAfterMs"] == nil {
		t.Fatalf("the 6th sign-in within a minute: %d", r.StatusCode)
	}
	// The last admin stays.
	if r := e.do("DELETE", "/api/users/boss", e.admin, ""); r.StatusCode != 409 {
		t.Fatalf("delete the last admin: %d", r.StatusCode)
	}
	if r := e.do("DELETE", "/api/users/ann", e.admin, ""); r.StatusCode != 204 {
		t.Fatalf("delete a member: %d", r.StatusCode)
	}
	if r := e.do("GET", "/api/instances/"+game, tok, ""); r.StatusCode != 401 {
		t.Fatalf("a key of a deleted user: %d", r.StatusCode)
	}
}

// TestTwoFactorSignIn: enrolment shows a secret once; confirmed with a
// code, it gives 10 recovery codes; a sign-in then needs a code, a code is
// taken once, and a recovery code once.
func TestTwoFactorSignIn(t *testing.T) {
	e := newEnv(t, nil)
	e.do("POST", "/api/users", e.admin, `{"name":"cara","password":"cara's long password"}`)
	login := func(body string) *http.Response {
		return e.do("POST", "/api/login", "", body, "Sec-Fetch-Site: same-origin")
	}
	r := login(`{"name":"cara","password":"cara's long password"}`)
	ck := r.Cookies()[0]
	as := func(method, path, body string) *http.Response {
		return e.do(method, path, "", body, "Cookie: "+ck.Name+"="+ck.Value, "Sec-Fetch-Site: same-origin")
	}
	enrol := decode[map[string]string](t, as("POST", "/api/me/totp", ""))
	if enrol["secret"] == "" || !strings.HasPrefix(enrol["otpauthUrl"], "otpauth://totp/") {
		t.Fatalf("enrol: %v", enrol)
	}
	code, _ := totp.GenerateCode(enrol["secret"], time.Now())
	conf := decode[map[string][]string](t, as("POST", "/api/me/totp/confirm", `{"code":"`+code+`"}`))
	if len(conf["recoveryCodes"]) != 10 {
		t.Fatalf("recovery codes: %v", conf)
	}
	if r := login(`{"name":"cara","password":"cara's long password"}`); r.StatusCode != 401 {
		t.Fatalf("a sign-in without the code: %d", r.StatusCode)
	}
	// The code that confirmed is spent: the next step's code signs in.
	next, _ := totp.GenerateCode(enrol["secret"], time.Now().Add(30*time.Second))
	if r := login(`{"name":"cara","password":"cara's long password","code":"` + next + `"}`); r.StatusCode != 200 {
		t.Fatalf("a sign-in with a code: %d", r.StatusCode)
	}
	if r := login(`{"name":"cara","password":"cara's long password","code":"` + next + `"}`); r.StatusCode != 401 {
		t.Fatalf("the same code again: %d", r.StatusCode)
	}
	rc := conf["recoveryCodes"][0]
	if r := login(`{"name":"cara","password":"cara's long password","code":"` + rc + `"}`); r.StatusCode != 200 {
		t.Fatalf("a recovery code: %d", r.StatusCode)
	}
	if r := login(`{"name":"cara","password":"cara's long password","code":"` + rc + `"}`); r.StatusCode != 401 {
		t.Fatalf("a recovery code twice: %d", r.StatusCode)
	}
	// Signing out takes the sign-in's key with the session.
	logins := func() int {
		n := 0
		for _, k := range decode[[]map[string]any](t, e.do("GET", "/api/keys", e.admin, "")) {
			if strings.HasPrefix(k["label"].(string), "login-cara-") {
				n++
			}
		}
		return n
	}
	before := logins()
	if r := e.do("POST", "/ui/logout", "", "", "Cookie: "+ck.Name+"="+ck.Value, "Sec-Fetch-Site: same-origin"); r.StatusCode != 303 && r.StatusCode != 200 {
		t.Fatalf("sign out: %d", r.StatusCode)
	}
	if after := logins(); after != before-1 {
		t.Fatalf("sign-in keys: %d before signing out, %d after", before, after)
	}
	if r := as("GET", "/api/me", ""); r.StatusCode != 401 {
		t.Fatalf("the session after signing out: %d", r.StatusCode)
	}
}

// A member's lists of events and audit entries hold what it may see: the
// events of instances it may read, the audit entries on what it holds
// audit.read (and its own actions); its live events socket the same.
func TestMemberSeesOnlyItsEventsAndAudit(t *testing.T) {
	e := newEnv(t, nil)
	e.putConfig("game", map[string]any{"command": "exec sleep 60", "stopTimeoutSeconds": 1, "availablePorts": map[string]int{"min": 22100, "max": 22104}})
	e.putConfig("other", map[string]any{"command": "exec sleep 60", "stopTimeoutSeconds": 1, "availablePorts": map[string]int{"min": 22105, "max": 22109}})
	if r := e.do("POST", "/api/users", e.admin, `{"name":"ann","password":"a long password of ann"}`); r.StatusCode != 201 {
		t.Fatal(r.StatusCode)
	}
	if r := e.do("POST", "/api/users/ann/grants", e.admin, `{"configuration":"game","permissions":["instance.read","audit.read","power.restart"]}`); r.StatusCode != 201 {
		t.Fatal(r.StatusCode)
	}
	r := e.do("POST", "/api/login", "", `{"name":"ann","password":"a long password of ann"}`, "Sec-Fetch-Site: same-origin")
	if r.StatusCode != 200 || len(r.Cookies()) == 0 {
		t.Fatalf("ann's sign-in: %d", r.StatusCode)
	}
	ck := r.Cookies()[0]
	key := decode[api.UserKeyCreated](t, e.do("POST", "/api/me/keys", "", `{"label":"ann-key"}`, "Cookie: "+ck.Name+"="+ck.Value, "Sec-Fetch-Site: same-origin")).Token
	ws, _, err := e.dialWS("/api/events/live?since=0", key)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	game := e.create("game")
	other := e.create("other")
	e.do("PATCH", "/api/instances/"+other.ID+"/lifecycle?target=restart", e.admin, "")
	if r := e.do("PATCH", "/api/instances/"+game.ID+"/lifecycle?target=restart", key, ""); r.StatusCode/100 != 2 {
		t.Fatalf("ann's restart: %d", r.StatusCode)
	}
	e.waitState(game.ID, "ONLINE")

	evs := decode[[]api.Event](t, e.do("GET", "/api/events", key, ""))
	if len(evs) == 0 {
		t.Fatal("ann sees no events")
	}
	for _, ev := range evs {
		if ev.InstanceID != game.ID {
			t.Errorf("ann sees an event not hers: %+v", ev)
		}
	}
	if all := decode[[]api.Event](t, e.do("GET", "/api/events", e.admin, "")); len(all) <= len(evs) {
		t.Errorf("the admin sees %d events, ann %d", len(all), len(evs))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for seen := 0; seen < len(evs); {
		_, data, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("ann's events socket: %v", err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			var f api.EventFrame
			_ = json.Unmarshal([]byte(line), &f)
			if f.Event != nil && f.Event.InstanceID != game.ID {
				t.Fatalf("ann's socket sends an event not hers: %+v", f.Event)
			}
			if f.Event != nil {
				seen++
			}
		}
	}

	entries := decode[[]api.AuditEntry](t, e.do("GET", "/api/audit", key, ""))
	var hers, onGame bool
	for _, a := range entries {
		switch {
		case a.User == "ann":
			hers = true
		case a.InstanceID == game.ID || a.Configuration == "game":
			onGame = true
		default:
			t.Errorf("ann sees an audit entry not hers: %+v", a)
		}
	}
	if !hers || !onGame {
		t.Errorf("ann's audit: hers %v, on game %v: %+v", hers, onGame, entries)
	}
}

// A member with schedule.write makes schedules on what it was granted,
// doing only what it may do itself; it lists and reads only those it may
// read.
func TestMemberSchedules(t *testing.T) {
	e := newEnv(t, nil)
	e.putConfig("game", map[string]any{"command": "exec sleep 60", "stopTimeoutSeconds": 1, "availablePorts": map[string]int{"min": 22160, "max": 22164}})
	e.putConfig("other", map[string]any{"command": "exec sleep 60", "stopTimeoutSeconds": 1, "availablePorts": map[string]int{"min": 22165, "max": 22169}})
	game := e.create("game")
	if r := e.do("POST", "/api/users", e.admin, `{"name":"sam","password":"a long password of sam"}`); r.StatusCode != 201 {
		t.Fatal(r.StatusCode)
	}
	if r := e.do("POST", "/api/users/sam/grants", e.admin, `{"configuration":"game","permissions":["instance.read","schedule.read","schedule.write","power.restart"]}`); r.StatusCode != 201 {
		t.Fatal(r.StatusCode)
	}
	r := e.do("POST", "/api/login", "", `{"name":"sam","password":"a long password of sam"}`, "Sec-Fetch-Site: same-origin")
	ck := r.Cookies()[0]
	key := decode[api.UserKeyCreated](t, e.do("POST", "/api/me/keys", "", `{"label":"sam-key"}`, "Cookie: "+ck.Name+"="+ck.Value, "Sec-Fetch-Site: same-origin")).Token
	theirs := decode[api.Schedule](t, e.do("POST", "/api/schedules", e.admin, `{"name":"x","configuration":"other","cron":"@daily","tasks":[{"type":"power","payload":"restart"}]}`))

	ok := e.do("POST", "/api/schedules", key, `{"name":"nightly","instanceId":"`+game.ID+`","cron":"0 4 * * *","enabled":true,"tasks":[{"type":"power","payload":"restart"}]}`)
	if ok.StatusCode != 201 {
		t.Fatalf("sam's restart schedule: %d %s", ok.StatusCode, readAll(ok))
	}
	mine := decode[api.Schedule](t, ok)
	for body, want := range map[string]string{
		`{"name":"stop","instanceId":"` + game.ID + `","cron":"@daily","tasks":[{"type":"power","payload":"stop"}]}`: "power.stop",
		`{"name":"say","instanceId":"` + game.ID + `","cron":"@daily","tasks":[{"type":"command","payload":"hi"}]}`:  "console.write",
		`{"name":"there","configuration":"other","cron":"@daily","tasks":[{"type":"power","payload":"restart"}]}`:    "schedule.write",
	} {
		r := e.do("POST", "/api/schedules", key, body)
		if msg := errorBody(t, r); r.StatusCode != 403 || !strings.Contains(msg, want) {
			t.Errorf("%s: %d %q, want 403 naming %s", body, r.StatusCode, msg, want)
		}
	}
	if l := decode[[]api.Schedule](t, e.do("GET", "/api/schedules", key, "")); len(l) != 1 || l[0].ID != mine.ID {
		t.Errorf("sam's list: %+v", l)
	}
	for _, path := range []string{"/api/schedules/" + theirs.ID, "/api/schedules/" + theirs.ID + "/runs", "/api/schedules/nope"} {
		if r := e.do("GET", path, key, ""); r.StatusCode != 403 {
			t.Errorf("GET %s as sam: %d", path, r.StatusCode)
		}
	}
	if r := e.do("POST", "/api/schedules/"+mine.ID+"/run", key, ""); r.StatusCode != 202 {
		t.Errorf("sam runs his schedule: %d", r.StatusCode)
	}
	if r := e.do("DELETE", "/api/schedules/"+theirs.ID, key, ""); r.StatusCode != 403 {
		t.Errorf("sam deletes another's schedule: %d", r.StatusCode)
	}
}
