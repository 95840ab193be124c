package master_test

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/master"
)

// signIn signs in at /ui/login with token and returns the session cookie.
func (e *env) signIn(token string) *http.Cookie {
	e.t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.PostForm(e.url+"/ui/login", url.Values{"key": {token}})
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("sign in: %d", resp.StatusCode)
	}
	for _, c := range resp.Cookies() {
		if c.Name == "universe_session" {
			return c
		}
	}
	e.t.Fatal("no session cookie")
	return nil
}

// withCookie sends a request carrying the session cookie and headers.
func (e *env) withCookie(method, path string, ck *http.Cookie, body string, headers ...string) *http.Response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.AddCookie(ck)
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestSessionCookie(t *testing.T) {
	e := newEnv(t, nil)
	ck := e.signIn(e.admin)
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" {
		t.Errorf("cookie attributes: %+v", ck)
	}
	if strings.Contains(ck.Value, e.admin) || strings.HasPrefix(ck.Value, "unv_") {
		t.Error("the cookie carries the token")
	}
	// PUBLIC keys cannot sign in to the dashboard.
	resp, _ := http.PostForm(e.url+"/ui/login", url.Values{"key": {e.public}})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("PUBLIC key sign-in: %d, want 403", resp.StatusCode)
	}
	resp.Body.Close()
	// A wrong key: 401 with the form again.
	resp, _ = http.PostForm(e.url+"/ui/login", url.Values{"key": {"unv_wrong"}})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong key: %d", resp.StatusCode)
	}
	resp.Body.Close()

	// The cookie authenticates the REST API; a bearer header wins over it.
	if r := e.withCookie("GET", "/api/instances", ck, ""); r.StatusCode != 200 {
		t.Fatalf("GET with the cookie: %d", r.StatusCode)
	}
	if r := e.withCookie("GET", "/api/auth", ck, "", "Authorization: Bearer "+e.public); r.StatusCode != 200 || decode[api.Auth](t, r).Scope != "PUBLIC" {
		t.Error("the Authorization header did not take precedence over the cookie")
	}
	// The page needs no script to list instances, and has the headers.
	r := e.withCookie("GET", "/ui/instances", ck, "")
	if r.StatusCode != 200 {
		t.Fatalf("GET /ui/instances: %d", r.StatusCode)
	}
	csp := r.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'self'") || r.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("headers: CSP %q, XFO %q", csp, r.Header.Get("X-Frame-Options"))
	}
	body := readAll(r)
	if strings.Contains(body, "<script>") || strings.Contains(body, " style=") || strings.Contains(body, "onclick") {
		t.Error("inline script or style in a page")
	}

	// GET / sends browsers to the dashboard; API clients get JSON.
	req, _ := http.NewRequest("GET", e.url+"/", nil)
	req.Header.Set("Accept", "text/html")
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if resp, err := noRedirect.Do(req); err != nil || resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/" {
		t.Errorf("GET / for a browser: %v %v", resp.StatusCode, err)
	}
	if resp := e.do("GET", "/", "", ""); resp.StatusCode != 401 {
		t.Errorf("GET / without a key or a browser: %d", resp.StatusCode)
	}

	// Sign out ends the session.
	if r := e.withCookie("POST", "/ui/logout", ck, ""); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out: %d", r.StatusCode)
	}
	if r := e.withCookie("GET", "/api/instances", ck, ""); r.StatusCode != 401 {
		t.Errorf("after sign out: %d", r.StatusCode)
	}
}

// TestCrossOrigin: a cookie-authenticated unsafe request from another
// site and a WebSocket from a foreign Origin are refused (403); requests
// with a bearer header are never judged by their Origin.
func TestCrossOrigin(t *testing.T) {
	e := newEnv(t, nil)
	e.putConfig("sleeper", map[string]any{"command": "exec sleep 600", "availablePorts": map[string]int{"min": 21400, "max": 21410}})
	ck := e.signIn(e.admin)
	body := `{"configurationName":"sleeper"}`
	for _, h := range [][]string{
		{"Origin: http://evil.example", "Content-Type: application/json"},
		{"Sec-Fetch-Site: cross-site", "Content-Type: application/json"},
	} {
		if r := e.withCookie("POST", "/api/instances", ck, body, h...); r.StatusCode != http.StatusForbidden {
			t.Errorf("cross-origin POST %v: %d, want 403", h, r.StatusCode)
		}
	}
	if r := e.withCookie("POST", "/ui/instances", ck, "configuration=sleeper", "Origin: http://evil.example", "Content-Type: application/x-www-form-urlencoded"); r.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin form post: %d", r.StatusCode)
	}
	if r := e.withCookie("POST", "/ui/login", ck, "key="+e.admin, "Origin: http://evil.example", "Content-Type: application/x-www-form-urlencoded"); r.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin sign-in: %d", r.StatusCode)
	}
	// Same origin: fine.
	r := e.withCookie("POST", "/api/instances", ck, body, "Origin: "+e.url, "Sec-Fetch-Site: same-origin", "Content-Type: application/json")
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("same-origin POST: %d %s", r.StatusCode, readAll(r))
	}
	in := decode[api.InstanceInfo](t, r)
	// A bearer header with a foreign Origin: not refused.
	if r := e.do("PATCH", "/api/instances/"+in.ID+"/lifecycle?target=start", e.admin, "", "Origin: http://evil.example"); r.StatusCode >= 400 {
		t.Errorf("header client with a foreign Origin: %d", r.StatusCode)
	}

	wsURL := "ws" + strings.TrimPrefix(e.url, "http") + "/api/instances/" + in.ID + "/live-log"
	dial := func(h http.Header) (*websocket.Conn, *http.Response, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPHeader: h})
	}
	h := http.Header{"Cookie": {ck.String()}, "Origin": {"http://evil.example"}}
	if _, resp, err := dial(h); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("foreign-Origin WebSocket with the cookie: %v %v, want 403", err, resp)
	}
	h = http.Header{"Authorization": {"Bearer " + e.admin}, "Origin": {"http://evil.example"}}
	c, _, err := dial(h)
	if err != nil {
		t.Fatalf("WebSocket with a bearer header and a foreign Origin: %v", err)
	}
	c.CloseNow()
	h = http.Header{"Cookie": {ck.String()}, "Origin": {e.url}}
	c, _, err = dial(h)
	if err != nil {
		t.Fatalf("same-origin WebSocket with the cookie: %v", err)
	}
	c.CloseNow()
}

// TestSessionRevocation: revoking the key ends its sessions and their
// sockets at once; the sign-in page then says why.
func TestSessionRevocation(t *testing.T) {
	e := newEnv(t, nil)
	_, tok, err := e.m.Keyring().Create("ops", universe.ScopeAll, 0)
	if err != nil {
		t.Fatal(err)
	}
	ck := e.signIn(tok)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.url, "http")+"/ui/session", &websocket.DialOptions{HTTPHeader: http.Header{"Cookie": {ck.String()}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	closed := make(chan error, 1)
	go func() { _, _, err := c.Read(context.Background()); closed <- err }()
	start := time.Now()
	if _, err := e.m.Keyring().Revoke("ops"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-closed:
		if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
			t.Errorf("close: %v", err)
		}
		t.Logf("revocation → session socket closed in %v", time.Since(start))
	case <-time.After(30 * time.Second):
		t.Fatal("the session's socket stayed open after revocation")
	}
	if r := e.withCookie("GET", "/api/instances", ck, ""); r.StatusCode != 401 {
		t.Errorf("REST after revocation: %d", r.StatusCode)
	}
	r := e.withCookie("GET", "/ui/", ck, "")
	if b := readAll(r); r.StatusCode != 200 || !strings.Contains(b, `role="alert"`) || !strings.Contains(b, "revoked") {
		t.Errorf("sign-in page after revocation: %d %s", r.StatusCode, b)
	}

	// An expiring key: its session ends with it.
	_, short, err := e.m.Keyring().Create("short", universe.ScopeAll, 1500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	ck = e.signIn(short)
	deadline := time.Now().Add(30 * time.Second)
	for e.withCookie("GET", "/api/instances", ck, "").StatusCode == 200 {
		if time.Now().After(deadline) {
			t.Fatal("the session outlived its key")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if b := readAll(e.withCookie("GET", "/ui/", ck, "")); !strings.Contains(b, "expired") {
		t.Errorf("sign-in page after expiry lacks the reason: %s", b)
	}
}

// TestDashboardLink: `dashboard link` prints a one-time link; it signs in
// once, and the code is masked in the audit log.
func TestDashboardLink(t *testing.T) {
	e := newEnv(t, nil)
	r := e.do("POST", "/api/commands/execute", e.admin, `{"command":"dashboard link"}`)
	if r.StatusCode != 200 {
		t.Fatalf("dashboard link: %d %s", r.StatusCode, readAll(r))
	}
	out := decode[api.CommandResponse](t, r)
	var link string
	for _, l := range out.Output {
		if i := strings.Index(l, "/ui/link?code="); i >= 0 {
			link = l
		}
	}
	if link == "" {
		t.Fatalf("no link in %q", out.Output)
	}
	// The line is the whole link, usable as printed (no --public-url:
	// the address the master serves on).
	u, err := url.Parse(link)
	if err != nil || u.Scheme != "http" || "http://"+u.Host != e.url {
		t.Fatalf("the printed link %q is not a whole URL of the master (%s): %v", link, e.url, err)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(link)
	if err != nil || resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) == 0 {
		t.Fatalf("first use: %v %v", resp.StatusCode, err)
	}
	ck := resp.Cookies()[0]
	if r := e.withCookie("GET", "/api/auth", ck, ""); decode[api.Auth](t, r).Label != "test-admin" {
		t.Error("the link did not sign in as the key that asked for it")
	}
	resp, _ = noRedirect.Get(e.url + u.RequestURI())
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("second use: %d, want 401", resp.StatusCode)
	}
	code := u.Query().Get("code")
	audit := readAll(e.do("GET", "/api/audit", e.admin, ""))
	if strings.Contains(audit, code) {
		t.Error("the one-time code is in the audit log")
	}
	if strings.Contains(e.logs.String(), code) {
		t.Error("the one-time code is in the master's log")
	}
}

// TestInstanceFilesAndStats: the files API stays inside the instance's
// directory; stats sample the process tree.
func TestInstanceFilesAndStats(t *testing.T) {
	e := newEnv(t, func(c *master.Config) { c.StatsInterval = 200 * time.Millisecond })
	e.putConfig("busy", map[string]any{"command": "echo hi > hello.txt; while :; do :; done", "availablePorts": map[string]int{"min": 21420, "max": 21430}})
	in := e.create("busy")
	e.waitState(in.ID, "ONLINE")
	base := "/api/instances/" + in.ID + "/files"
	for _, c := range []struct {
		method, path, body string
		want               int
	}{
		{"PUT", base + "/plugins/a/b.yml", "x: 1\n", 204},
		{"GET", base + "/plugins/a/b.yml", "", 200},
		{"GET", base + "/nope", "", 404},
		{"GET", base + "/../../etc/passwd", "", 400},
		{"PUT", base + "/%2e%2e/escape", "x", 400},
		{"GET", base + "/plugins%2Fa", "", 400},
		{"GET", "/api/instances/nope/files", "", 404},
		{"DELETE", base + "/plugins", "", 204},
		{"GET", base + "/plugins/a/b.yml", "", 404},
	} {
		r := e.do(c.method, c.path, e.admin, c.body)
		if r.StatusCode != c.want {
			t.Errorf("%s %s: %d, want %d (%s)", c.method, c.path, r.StatusCode, c.want, readAll(r))
		}
		r.Body.Close()
	}
	// A symbolic link out of the directory is not followed.
	if r := e.do("PUT", base+"/ok.txt", e.admin, "fine"); r.StatusCode != 204 {
		t.Fatal(r.StatusCode)
	}
	dir, err := e.m.Instances().WorkDir(in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(dir, "out")); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"GET", "PUT", "DELETE"} {
		if r := e.do(m, base+"/out/hostname", e.admin, "x"); r.StatusCode != 400 {
			t.Errorf("%s through a symbolic link: %d, want 400", m, r.StatusCode)
		}
	}
	list := decode[[]api.TemplateFile](t, e.do("GET", base, e.admin, ""))
	found := false
	for _, f := range list {
		found = found || f.Path == "ok.txt"
	}
	if !found {
		t.Errorf("listing lacks ok.txt: %+v", list)
	}
	if r := e.do("GET", base+"/ok.txt", e.public, ""); r.StatusCode != 401 {
		t.Errorf("PUBLIC key reads files: %d", r.StatusCode)
	}

	// What the instance plants in its folder: a FIFO (its open would
	// block a reader for ever), a hard link to a file outside, a name
	// with a newline. None hangs or is served; the list marks what cannot
	// be used through it.
	if err := syscall.Mkfifo(filepath.Join(dir, "pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "secret.txt")
	if err := os.WriteFile(outside, []byte("outside"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(outside, filepath.Join(dir, "linked.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bad\nname.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, p := range []string{"pipe", "linked.txt"} {
			if r := e.do("GET", base+"/"+p, e.admin, ""); r.StatusCode != 400 || strings.Contains(readAll(r), "outside") {
				t.Errorf("GET %s planted by the instance: %d, want 400", p, r.StatusCode)
			}
		}
		if r := e.do("GET", "/ui/instances/"+in.ID+"/files?path=.&view=pipe", e.admin, ""); r.StatusCode >= 500 {
			t.Errorf("the dashboard's view of a FIFO: %d", r.StatusCode)
		}
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("reading a FIFO planted by the instance hangs")
	}
	marked := map[string]string{}
	for _, f := range decode[[]api.TemplateFile](t, e.do("GET", base, e.admin, "")) {
		marked[f.Path] = f.Unusable
		if f.Path == "pipe" {
			t.Errorf("a FIFO is listed: %+v", f)
		}
	}
	if marked["linked.txt"] == "" || marked[`bad\nname.txt`] == "" || marked["ok.txt"] != "" {
		t.Errorf("the list does not mark what cannot be used: %q", marked)
	}

	// Stats: a busy loop uses about a core; the series exist while the
	// instance does, and go with it.
	var st api.InstanceStats
	deadline := time.Now().Add(30 * time.Second)
	for {
		st = decode[api.InstanceStats](t, e.do("GET", "/api/instances/"+in.ID+"/stats", e.admin, ""))
		if len(st.Samples) >= 3 && st.Current != nil && st.Current.CPU > 0.2 && st.Current.MemoryBytes > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats never showed the busy loop: %+v", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	metrics := readAll(e.do("GET", "/api/metrics", "", ""))
	if !strings.Contains(metrics, `universe_instance_cpu_seconds_total{configuration="busy",instance="`+in.ID+`"}`) ||
		!strings.Contains(metrics, `universe_instance_memory_bytes{configuration="busy",instance="`+in.ID+`"}`) {
		t.Error("no per-instance series in the metrics")
	}
	if r := e.do("DELETE", "/api/instances/"+in.ID, e.admin, ""); r.StatusCode != 204 {
		t.Fatal(r.StatusCode)
	}
	deadline = time.Now().Add(30 * time.Second)
	for strings.Contains(readAll(e.do("GET", "/api/metrics", "", "")), `instance="`+in.ID+`"`) {
		if time.Now().After(deadline) {
			t.Fatal("the deleted instance's series stayed")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The one-time sign-in link refuses an address that keeps guessing codes,
// as the key sign-in does.
func TestSignInLinkRefusesGuessing(t *testing.T) {
	e := newEnv(t, nil)
	for i := 0; i < 100; i++ {
		r := e.do("GET", "/ui/link?code=uil_guess"+strconv.Itoa(i), "", "")
		r.Body.Close()
		switch r.StatusCode {
		case http.StatusUnauthorized:
			continue
		case http.StatusTooManyRequests:
			t.Logf("refused after %d guesses", i)
			return
		default:
			t.Fatalf("guess %d: %d", i, r.StatusCode)
		}
	}
	t.Fatal("100 wrong sign-in codes from one address, and it may still guess")
}

// A fresh instance has stats from its first second, not from the
// sampler's next tick (a minute away here).
func TestStatsOfAFreshInstance(t *testing.T) {
	e := newEnv(t, func(c *master.Config) { c.StatsInterval = time.Minute })
	e.putConfig("fresh", map[string]any{"command": "exec sleep 60", "stopTimeoutSeconds": 1, "availablePorts": map[string]int{"min": 21670, "max": 21679}})
	in := e.create("fresh")
	st := decode[api.InstanceStats](t, e.do("GET", "/api/instances/"+in.ID+"/stats", e.admin, ""))
	if st.Current == nil || st.Current.MemoryBytes <= 0 || st.IntervalMs != 60000 || len(st.Samples) != 1 {
		t.Fatalf("stats of an instance just started: %+v", st)
	}
}

// Configurations and whole templates can be deleted from the dashboard;
// the audit page names keys by their labels.
func TestDashboardDeletesAndAuditLabels(t *testing.T) {
	e := newEnv(t, nil)
	ck := e.signIn(e.admin)
	form := []string{"Content-Type: application/x-www-form-urlencoded", "Sec-Fetch-Site: same-origin"}
	e.putConfig("old", map[string]any{"command": "exec sleep 60", "stopTimeoutSeconds": 1, "availablePorts": map[string]int{"min": 21690, "max": 21699}})
	in := e.create("old")
	if r := e.withCookie("POST", "/ui/configurations/old/delete", ck, "force=true", form...); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("delete a configuration: %d %s", r.StatusCode, readAll(r))
	}
	if r := e.do("GET", "/api/configurations/old", e.admin, ""); r.StatusCode != 404 {
		t.Fatalf("the deleted configuration: %d", r.StatusCode)
	}
	if r := e.do("GET", "/api/instances/"+in.ID, e.admin, ""); r.StatusCode != 404 {
		t.Fatalf("its instance after a forced delete: %d", r.StatusCode)
	}
	if r := e.do("POST", "/api/templates/lobby/base", e.admin, ""); r.StatusCode != 201 {
		t.Fatal(r.StatusCode)
	}
	if r := e.withCookie("POST", "/ui/templates/lobby/base/remove", ck, "", form...); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("delete a template: %d %s", r.StatusCode, readAll(r))
	}
	if r := e.do("GET", "/api/templates/lobby/base/files", e.admin, ""); r.StatusCode != 404 {
		t.Fatalf("the deleted template: %d", r.StatusCode)
	}
	page := readAll(e.withCookie("GET", "/ui/audit", ck, ""))
	if !strings.Contains(page, ">test-admin</td>") || !strings.Contains(page, "delete configuration=old force=true") {
		t.Fatalf("the audit page does not name the key by its label:\n%s", page)
	}
}

// The dashboard's file manager makes folders and empty files, renames and
// unzips, through the same rules as the API.
func TestDashboardFileManager(t *testing.T) {
	e := newEnv(t, nil)
	ck := e.signIn(e.admin)
	form := []string{"Content-Type: application/x-www-form-urlencoded", "Sec-Fetch-Site: same-origin"}
	e.putConfig("fm", map[string]any{"command": "exec sleep 60", "stopTimeoutSeconds": 1, "availablePorts": map[string]int{"min": 21750, "max": 21759}})
	in := e.create("fm")
	ui := "/ui/instances/" + in.ID + "/files/"
	post := func(p, body string, want int) {
		t.Helper()
		if r := e.withCookie("POST", ui+p, ck, body, form...); r.StatusCode != want {
			t.Fatalf("POST %s %s: %d %s", p, body, r.StatusCode, readAll(r))
		}
	}
	post("new?dir=", "name=maps&kind=folder", http.StatusSeeOther)
	post("new?dir=maps", "name=notes.txt&kind=file", http.StatusSeeOther)
	post("new?dir=maps", "name=notes.txt&kind=file", http.StatusConflict)
	post("rename?path=maps/notes.txt&dir=maps", "to=maps/readme.txt", http.StatusSeeOther)
	if r := e.do("GET", "/api/instances/"+in.ID+"/files/maps/readme.txt", e.admin, ""); r.StatusCode != 200 {
		t.Fatalf("the renamed file: %d", r.StatusCode)
	}
	page := readAll(e.withCookie("GET", ui[:len(ui)-1]+"?path=maps", ck, ""))
	if !strings.Contains(page, "readme.txt") || !strings.Contains(page, `aria-label="Rename readme.txt"`) || !strings.Contains(page, "New folder") {
		t.Fatalf("the files page:\n%s", page)
	}
}
