package master_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/master"
)

// chromiumPath finds Debian's chromium (or another Chrome). Without one the
// browser tests skip and say so, except under CI, where .ci/run installs
// it and a missing browser is a failure.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, n := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no chromium on this machine; .ci/run installs it (apt-get install -y chromium)")
	}
	t.Skip("no chromium on this machine (apt-get install -y chromium): the browser tests need a real browser")
	return ""
}

// browser is a headless Chromium with one tab, and every request it made.
type browser struct {
	t      *testing.T
	ctx    context.Context
	mu     sync.Mutex
	urls   []string
	errors []string // uncaught exceptions of the page's scripts and CSP violations
}

// cspProbe reports every Content-Security-Policy violation of a page as a
// console error the test collects (it runs in every document through the
// DevTools protocol, so the page's own policy does not apply to it).
const cspProbe = `document.addEventListener('securitypolicyviolation', e =>
  console.error('csp-violation: ' + e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline') + ' on ' + location.pathname));`

func newBrowser(t *testing.T, w, h int) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Flag("no-sandbox", true), // root in CI
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(w, h),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelT := chromedp.NewContext(actx)
	ctx, cancelD := context.WithTimeout(ctx, 4*time.Minute)
	t.Cleanup(func() { cancelD(); cancelT(); cancelA() })
	b := &browser{t: t, ctx: ctx}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(int64(w), int64(h))); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	if err := chromedp.Listen(ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			b.urls = append(b.urls, e.Request.URL)
		case *network.EventWebSocketCreated:
			b.urls = append(b.urls, e.URL)
		case *runtime.EventExceptionThrown:
			msg := e.ExceptionDetails.Text
			if e.ExceptionDetails.Exception != nil {
				msg += " " + e.ExceptionDetails.Exception.Description
			}
			b.errors = append(b.errors, msg)
		case *runtime.EventConsoleAPICalled:
			for _, a := range e.Args {
				if s := string(a.Value); strings.Contains(s, "csp-violation: ") {
					b.errors = append(b.errors, s)
				}
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: cspProbe})
		return err
	})); err != nil {
		t.Fatal(err)
	}
	// Every page a test visits must end without an uncaught exception or
	// a CSP violation.
	t.Cleanup(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if len(b.errors) > 0 {
			t.Errorf("the pages visited had %d script errors or CSP violations:\n%s", len(b.errors), strings.Join(b.errors, "\n"))
		}
	})
	return b
}

// do runs steps, 30 s at most (a shared machine can be slow; nothing
// here is timed). On failure it keeps a screenshot and says where it was.
func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.fail(err)
	}
}

// doOnNewPage is do for steps on a page that a form's submission just
// loaded: chromedp may still hold the node ids of the page before (its
// DOM events trail the new document, which a waitJS already sees), and a
// step that resolves one fails with "No node with given id found" before
// it acts. Such a failure is retried; steps must be ones that can run
// again after it (fields set, one click last).
func (b *browser) doOnNewPage(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	for try := 0; ; try++ {
		ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
		err := chromedp.Do(ctx, steps...)
		cancel()
		if err == nil {
			return
		}
		if try == 4 || !strings.Contains(err.Error(), "No node with given id found") {
			b.fail(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (b *browser) fail(err error) {
	b.t.Helper()
	where, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`location.href + " " + document.body.innerText.slice(0, 400)`))
	b.shot("failure")
	b.mu.Lock()
	errs := strings.Join(b.errors, "\n")
	b.mu.Unlock()
	b.t.Fatalf("%v\non the page: %s\nscript errors: %s", err, where, errs)
}

func eval[T any](b *browser, js string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](js))
	if err != nil {
		b.t.Fatalf("%s: %v", js, err)
	}
	return v
}

// waitJS waits until the expression is true (30 s at most: a shared
// machine can be slow; nothing here is timed).
func (b *browser) waitJS(js string) {
	b.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		// A navigation ends a poll: poll again on the new page.
		_, err := chromedp.Run(b.ctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(time.Second), chromedp.WithPollingInterval(50*time.Millisecond)))
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			b.fail(fmt.Errorf("waiting for %s: %w", js, err))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// named asserts that the page has a control with this role and accessible
// name, as the accessibility tree (what screen readers use) computes it.
func (b *browser) named(role, name string) {
	b.t.Helper()
	// The root is given as a JavaScript object: DOM.getDocument would reset
	// the node ids chromedp tracks.
	doc, err := chromedp.Run(b.ctx, chromedp.Evaluate[*runtime.RemoteObject]("document"))
	if err != nil {
		b.t.Fatal(err)
	}
	var n int
	err = chromedp.Do(b.ctx, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		res, err := cdp.Call(ctx, t, accessibility.QueryAXTree, accessibility.QueryAXTreeParams{ObjectID: doc.ObjectID, Role: role, AccessibleName: name})
		if err != nil {
			return err
		}
		for _, nd := range res.Nodes {
			if !nd.Ignored {
				n++
			}
		}
		return nil
	}))
	if err != nil {
		b.t.Fatal(err)
	}
	if n == 0 {
		b.t.Errorf("no %s named %q on %s", role, name, eval[string](b, "location.pathname"))
	}
}

// shot saves a screenshot as a test artifact: into $UNIVERSE_ARTIFACTS
// when set (CI keeps that folder), else into the test's temp folder.
func (b *browser) shot(name string) { b.shotAt(name, "") }

// shotAt saves a screenshot with the element sel scrolled to the top (""
// the page's top).
func (b *browser) shotAt(name, sel string) {
	b.t.Helper()
	scroll := "window.scrollTo(0, 0)"
	if sel != "" {
		scroll = "document.querySelector(" + strconv.Quote(sel) + ").scrollIntoView()"
	}
	png, err := chromedp.Run(b.ctx, func(ctx context.Context, t *chromedp.Target) ([]byte, error) {
		if _, err := chromedp.Evaluate[chromedp.Void](scroll)(ctx, t); err != nil {
			return nil, err
		}
		return chromedp.CaptureScreenshot()(ctx, t)
	})
	if err != nil {
		b.t.Fatal(err)
	}
	dir := os.Getenv("UNIVERSE_ARTIFACTS")
	if dir == "" {
		dir = b.t.TempDir()
	}
	dir = filepath.Join(dir, "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// noSecrets checks that no token is in the page, its storage or its URL.
func (b *browser) noSecrets(tokens ...string) {
	b.t.Helper()
	state := eval[string](b, `document.documentElement.outerHTML + "\n" + JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + "\n" + location.href + "\n" + document.cookie`)
	for _, tok := range tokens {
		if strings.Contains(state, tok) {
			b.t.Errorf("a token is in the DOM, storage, URL or a script-visible cookie of %s", eval[string](b, "location.pathname"))
		}
	}
	if strings.Contains(state, "unv_") {
		b.t.Errorf("something token-shaped (unv_) is in the page %s", eval[string](b, "location.pathname"))
	}
}

func (b *browser) requests() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.urls...)
}

// TestDashboardInBrowser drives the dashboard in a real headless Chromium:
// sign in, create an instance, see its first line, type a command and see
// it echoed, resume a dropped live-log with no line lost or repeated, bulk
// stop, sign out; revocation while a page is open signs it out; no token
// in the DOM, storage, URLs or logs; no request leaves the master's origin.
func TestDashboardInBrowser(t *testing.T) {
	e := newEnv(t, func(c *master.Config) { c.StatsInterval = 500 * time.Millisecond })
	e.putConfig("echo", map[string]any{
		"command":        "printf '\\033[32mready\\033[0m on %PORT%\\n'; while read l; do echo \"got: $l\"; done",
		"availablePorts": map[string]int{"min": 21300, "max": 21320},
	})
	_, browserToken, err := e.m.Keyring().Create("browser", universe.ScopeAll, 0)
	if err != nil {
		t.Fatal(err)
	}
	const password = "the operator's password"
	if r := e.do("POST", "/api/users", e.admin, `{"name":"operator","password":"`+password+`","admin":true}`); r.StatusCode != 201 {
		t.Fatalf("make the operator: %d", r.StatusCode)
	}
	b := newBrowser(t, 1280, 800)
	origin := e.url

	// Sign in as a user: name, password (and a code with two-factor).
	b.do(chromedp.Navigate(origin + "/ui/"))
	b.named("textbox", "Name")
	b.named("button", "Sign in")
	b.shot("signin-1280")
	b.do(chromedp.SendKeys(chromedp.CSS("#name"), "operator"), chromedp.SendKeys(chromedp.CSS("#password"), password),
		chromedp.Click(chromedp.CSS("form button.primary")))
	b.do(chromedp.WaitVisible(chromedp.CSS("table#instances")))
	b.named("table", "Instances")
	for _, n := range []string{"Instances", "Configurations", "Templates", "Keys", "Audit", "Nodes"} {
		b.named("link", n)
	}
	for _, n := range []string{"Sign out", "Start selected", "Stop selected", "Restart selected", "Kill selected"} {
		b.named("button", n)
	}
	b.noSecrets(browserToken, e.admin)

	// Create an instance from the form; its page shows its first line.
	b.do(chromedp.Click(chromedp.CSS(`form[aria-label="Create an instance"] button`)))
	b.do(chromedp.WaitVisible(chromedp.CSS(`[role=log]`)))
	id := eval[string](b, `document.querySelector('[role=log]').dataset.instance`)
	b.named("log", "Live log of "+id)
	b.named("textbox", "Command")
	for _, n := range []string{"Start", "Stop", "Restart", "Kill"} {
		b.named("button", n)
	}
	b.named("link", "Download log")
	b.named("link", "Files")
	b.waitJS(`document.querySelector('[role=log]').textContent.includes('ready on')`)
	if html := eval[string](b, `document.querySelector('[role=log]').innerHTML`); strings.Contains(html, "\x1b") || strings.Contains(html, "[32m") {
		t.Errorf("raw escapes in the console: %q", html)
	}
	if n := eval[int](b, `document.querySelectorAll('[role=log] .f2').length`); n == 0 {
		t.Error("the ANSI green of the first line is not rendered")
	}

	// A command typed in the input is echoed by the instance; ↑ brings it back.
	b.do(chromedp.SendKeys(chromedp.CSS(`input[aria-label=Command]`), "hello universe"+kb.Enter))
	b.waitJS(`document.querySelector('[role=log]').textContent.includes('got: hello universe')`)
	b.do(chromedp.SendKeys(chromedp.CSS(`input[aria-label=Command]`), kb.ArrowUp))
	if v := eval[string](b, `document.querySelector('input[aria-label=Command]').value`); v != "hello universe" {
		t.Errorf("↑ gave %q, want the last command", v)
	}
	b.do(chromedp.Evaluate[chromedp.Void](`document.querySelector('input[aria-label=Command]').value = ''`))

	// A dropped live-log resumes with ?since=: lines written while it was
	// down arrive once each, in order.
	b.do(chromedp.Evaluate[chromedp.Void](`window.__universeConsole.drop()`))
	for i := 0; i < 40; i++ {
		resp := e.do("POST", "/api/instances/"+id+"/execute", e.admin, fmt.Sprintf(`{"command":"n%02d"}`, i))
		resp.Body.Close()
	}
	b.waitJS(`document.querySelector('[role=log]').textContent.includes('got: n39')`)
	seqs := eval[[]int](b, `Array.from(document.querySelectorAll('[role=log] [data-seq]')).map(e => Number(e.dataset.seq))`)
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			t.Fatalf("console sequence numbers not contiguous after a resume: %v\n%s", seqs, eval[string](b, `document.querySelector('[role=log]').innerHTML`))
		}
	}
	if r := eval[int](b, `window.__universeConsole.stats.reconnects`); r < 1 {
		t.Errorf("the live-log did not reconnect (%d)", r)
	}
	b.waitJS(`document.querySelector('#cpu-line').getAttribute('points') !== ''`)
	b.shot("instance-1280")
	// At 1280×800 the newest lines and the command box are on screen.
	if !eval[bool](b, `document.querySelector('#cmdform').getBoundingClientRect().bottom <= innerHeight`) {
		t.Errorf("at 1280×800 the console's command box is below the fold (bottom %v)", eval[float64](b, `document.querySelector('#cmdform').getBoundingClientRect().bottom`))
	}

	// Files of the instance: write one through the API, see it, open it.
	if resp := e.do("PUT", "/api/instances/"+id+"/files/config/server.properties", e.admin, "motd=hello\n"); resp.StatusCode != 204 {
		t.Fatalf("PUT file: %d %s", resp.StatusCode, readAll(resp))
	}
	b.do(chromedp.Navigate(origin + "/ui/instances/" + id + "/files?path=config&view=config/server.properties"))
	b.named("table", "Files")
	b.waitJS(`document.querySelector('textarea').value.includes('motd=hello')`)
	b.shot("files-1280")
	// Upload through the form (it works without the page's script too).
	up := filepath.Join(t.TempDir(), "whitelist.json")
	if err := os.WriteFile(up, []byte(`["steve"]`), 0o644); err != nil {
		t.Fatal(err)
	}
	b.do(chromedp.SetUploadFiles(chromedp.CSS(`#upload input[type=file]`), []string{up}), chromedp.Click(chromedp.CSS(`#upload button`)))
	b.waitJS(`document.querySelector('table[aria-label=Files]') && document.querySelector('table[aria-label=Files]').textContent.includes('whitelist.json')`)
	if r := e.do("GET", "/api/instances/"+id+"/files/config/whitelist.json", e.admin, ""); r.StatusCode != 200 || readAll(r) != `["steve"]` {
		t.Errorf("the uploaded file: %d", r.StatusCode)
	}

	// Backups tab: take one with a name; the tab follows it to COMPLETED
	// (it reloads while one is under way); restore is offered only once
	// the instance is stopped.
	b.do(chromedp.Navigate(origin + "/ui/instances/" + id + "/backups"))
	b.named("table", "Backups")
	b.do(chromedp.SendKeys(chromedp.CSS(`input[aria-label="Name of the new backup"]`), "from the browser"),
		chromedp.Click(chromedp.CSS(`form[aria-label="New backup"] button`)))
	b.waitJS(`document.querySelector('table[aria-label=Backups]').textContent.includes('COMPLETED') && !document.getElementById('backups').dataset.refresh`)
	if !eval[bool](b, `document.querySelector('form[aria-label="Restore from the browser"] button').disabled`) {
		t.Error("restore is offered while the instance runs")
	}
	b.named("link", "Download from the browser")
	b.shot("backups-1280")
	if list := decode[[]api.Backup](t, e.do("GET", "/api/instances/"+id+"/backups", e.admin, "")); len(list) != 1 || list[0].Name != "from the browser" || list[0].State != api.BackupCompleted {
		t.Errorf("backups after the tab's button: %+v", list)
	}

	// Schedules tab: a refused cron says why, in the form; a good one is
	// listed with its next runs, and runs by hand.
	b.do(chromedp.Navigate(origin + "/ui/instances/" + id + "/schedules"))
	b.named("table", "Schedules")
	b.do(chromedp.SendKeys(chromedp.CSS(`form[aria-label="New schedule"] input[name=name]`), "nightly"),
		chromedp.SetValue(chromedp.CSS(`form[aria-label="New schedule"] input[name=cron]`), "99 4 * * *"),
		chromedp.Click(chromedp.CSS(`form[aria-label="New schedule"] button`)))
	b.waitJS(`document.querySelector('[role=alert]') && document.querySelector('[role=alert]').textContent.includes('cron')`)
	b.doOnNewPage(chromedp.SetValue(chromedp.CSS(`form[aria-label="New schedule"] input[name=cron]`), "0 4 * * *"),
		chromedp.SetValue(chromedp.CSS(`form[aria-label="New schedule"] select[name=type]`), "command"),
		chromedp.SetValue(chromedp.CSS(`form[aria-label="New schedule"] input[name=payload]`), "say from the schedule"),
		chromedp.Click(chromedp.CSS(`form[aria-label="New schedule"] button`)))
	b.waitJS(`document.querySelector('table[aria-label=Schedules]').textContent.includes('nightly')`)
	b.do(chromedp.Click(chromedp.CSS(`button[aria-label="Run nightly now"]`)))
	// The page the POST redirects to shows the run (before another
	// navigation, which would abort this one on a slow machine).
	b.waitJS(`document.readyState === 'complete' && !!document.querySelector('table[aria-label=Schedules] .badge[data-state=running], table[aria-label=Schedules] .badge[data-state=ok]')`)
	e.waitLog(id, "got: say from the schedule")
	b.do(chromedp.Navigate(origin + "/ui/instances/" + id + "/schedules"))
	b.waitJS(`!!document.querySelector('table[aria-label=Schedules] .badge[data-state=ok]')`)
	if n := eval[int](b, `document.querySelectorAll('table[aria-label=Schedules] details.history li').length`); n != 1 {
		t.Errorf("the schedule's history shows %d runs, want 1", n)
	}
	// The cron helper: the next five times of what is typed, or why not.
	b.waitJS(`document.querySelectorAll('#cron-next .mono').length === 5`)
	eval[bool](b, `(() => { const c = document.querySelector('form[aria-label="New schedule"] input[name=cron]'); c.value = '0 4 * * 9'; c.dispatchEvent(new Event('input')); return true; })()`)
	b.waitJS(`document.querySelector('#cron-next').classList.contains('invalid') && document.querySelector('#cron-next').textContent.includes('cron')`)
	eval[bool](b, `(() => { const c = document.querySelector('form[aria-label="New schedule"] input[name=cron]'); c.value = '*/15 * * * *'; c.dispatchEvent(new Event('input')); return true; })()`)
	b.waitJS(`!document.querySelector('#cron-next').classList.contains('invalid') && document.querySelectorAll('#cron-next .mono').length === 5`)
	b.shot("schedules-1280")

	// A configuration's schedules: a rolling restart, listed with its
	// next runs.
	b.do(chromedp.Navigate(origin + "/ui/configurations/echo"))
	b.named("table", "Schedules")
	b.do(chromedp.SendKeys(chromedp.CSS(`form[aria-label="New schedule"] input[name=name]`), "weekly-roll"),
		chromedp.SetValue(chromedp.CSS(`form[aria-label="New schedule"] input[name=cron]`), "0 5 * * 1"),
		chromedp.Click(chromedp.CSS(`form[aria-label="New schedule"] button`)))
	b.waitJS(`document.readyState === 'complete' && !!document.querySelector('table[aria-label=Schedules]') && document.querySelector('table[aria-label=Schedules]').textContent.includes('weekly-roll')`)
	if l := decode[[]api.Schedule](t, e.do("GET", "/api/schedules?configuration=echo", e.admin, "")); len(l) != 1 || l[0].Tasks[0].Type != api.TaskRollingRestart || l[0].Tasks[0].MaxUnavailable != 1 {
		t.Errorf("the configuration's schedules: %+v", l)
	}
	b.shotAt("configuration-schedules-1280", "#schedules")

	// Bulk stop of two instances, with a result per instance.
	second := e.create("echo")
	b.do(chromedp.Navigate(origin + "/ui/instances"))
	b.named("checkbox", "Select "+id)
	b.named("checkbox", "Select "+second.ID)
	b.do(chromedp.Click(chromedp.CSS(`input[aria-label="Select `+id+`"]`)), chromedp.Click(chromedp.CSS(`input[aria-label="Select `+second.ID+`"]`)))
	b.do(chromedp.Click(chromedp.CSS(`#bulk button[value=stop]`)))
	b.waitJS(`document.querySelectorAll('#results li').length === 2`)
	if txt := eval[string](b, `document.querySelector('#results').textContent`); strings.Count(txt, "stop: accepted") != 2 {
		t.Errorf("bulk results: %q", txt)
	}
	e.waitState(id, "STOPPED")
	e.waitState(second.ID, "STOPPED")
	b.waitJS(`Array.from(document.querySelectorAll('[data-cell=state]')).every(s => s.dataset.state === 'STOPPED')`)
	b.shot("instances-1280")

	// The rows follow a state change made elsewhere through the events
	// socket: the page's poll is switched off for this visit (no timer can
	// repeat) and the list it would fetch never comes, so only the event's
	// state can bring it.
	var noTimers page.ScriptIdentifier
	b.do(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		r, err := cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: `window.setInterval = () => 0;
const realFetch = window.fetch;
window.fetch = (u, o) => new URL(String(u), location.href).pathname === '/api/instances' ? new Promise(() => {}) : realFetch(u, o);`})
		if err == nil {
			noTimers = r.Identifier
		}
		return err
	}))
	b.do(chromedp.Navigate(origin + "/ui/instances"))
	b.do(chromedp.WaitVisible(chromedp.CSS("table#instances")))
	b.waitJS(`document.body.dataset.live === 'on'`)
	if r := e.do("PATCH", "/api/instances/"+second.ID+"/lifecycle?target=start", e.admin, ""); r.StatusCode/100 != 2 {
		t.Fatalf("start: %d %s", r.StatusCode, readAll(r))
	}
	b.waitJS(`document.querySelector('tr[data-id="` + second.ID + `"] [data-cell=state]').dataset.state === 'ONLINE'`)
	b.do(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, page.RemoveScriptToEvaluateOnNewDocument, page.RemoveScriptToEvaluateOnNewDocumentParams{Identifier: noTimers})
		return err
	}))

	// The other pages render and name their controls.
	for _, p := range []struct{ path, name, table string }{
		{"/ui/configurations", "configurations", "Configurations"},
		{"/ui/configurations/echo", "configuration", ""},
		{"/ui/templates", "templates", "Templates"},
		{"/ui/keys", "keys", "Keys"},
		{"/ui/audit", "audit", "Audit log"},
		{"/ui/nodes", "nodes", "Nodes"},
		{"/ui/events", "events", "Events"},
		{"/ui/settings", "settings", "Webhooks"},
	} {
		b.do(chromedp.Navigate(origin + p.path))
		if p.table != "" {
			b.named("table", p.table)
		}
		b.named("button", "Sign out")
		b.noSecrets(browserToken, e.admin)
		b.shot(p.name + "-1280")
	}

	// A validation error is shown at its field.
	b.do(chromedp.Navigate(origin+"/ui/configurations/echo"),
		chromedp.SetValue(chromedp.CSS(`#f-portMin`), "70000"),
		chromedp.Click(chromedp.CSS(`form[aria-label=Configuration] button.primary`)))
	b.do(chromedp.WaitVisible(chromedp.CSS(`#err-portMin`)))
	b.shot("configuration-error-1280")

	// The Events page follows the log: an instance started while it is open
	// shows on top, live.
	b.do(chromedp.Navigate(origin + "/ui/events"))
	b.waitJS(`document.querySelector('#events-status').textContent === 'Live'`)
	third := e.create("echo")
	b.waitJS(`Array.from(document.querySelectorAll('#events tr.fresh')).some(r => r.textContent.includes('instance.started') && r.textContent.includes(` + strconv.Quote(third.ID) + `))`)
	b.shot("events-live-1280")

	// Webhooks under Settings: a private target is refused with the reason;
	// a Discord one is made, its secret shown once, its URL's token hidden.
	b.do(chromedp.Navigate(origin+"/ui/settings"),
		chromedp.SendKeys(chromedp.CSS(`form[aria-label="New webhook"] input[name=url]`), "http://127.0.0.1:9/hook"),
		chromedp.Click(chromedp.CSS(`form[aria-label="New webhook"] button`)))
	b.waitJS(`!!document.querySelector('.field-error') && document.querySelector('.field-error').textContent.includes('loopback')`)
	const discordToken = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH"
	b.doOnNewPage(chromedp.SetValue(chromedp.CSS(`form[aria-label="New webhook"] input[name=url]`), "https://discord.example/api/webhooks/1/"+discordToken),
		chromedp.SetValue(chromedp.CSS(`form[aria-label="New webhook"] select[name=format]`), "discord"),
		chromedp.Click(chromedp.CSS(`form[aria-label="New webhook"] button`)))
	b.do(chromedp.WaitVisible(chromedp.CSS("#token")))
	hooks := decode[[]api.Webhook](t, e.do("GET", "/api/webhooks", e.admin, ""))
	if len(hooks) != 1 || hooks[0].Format != "discord" || hooks[0].Events[0] != "*" {
		t.Fatalf("webhooks after the form: %+v", hooks)
	}
	b.shot("webhook-created-1280")
	b.do(chromedp.Click(chromedp.CSS("#hide-token")))
	if html := eval[string](b, `document.documentElement.outerHTML`); strings.Contains(html, discordToken) {
		t.Error("the page shows the Discord webhook's token")
	}

	// A key made in the page shows its token once, and "Done" takes it out.
	b.do(chromedp.Navigate(origin+"/ui/keys"), chromedp.SendKeys(chromedp.CSS(`input[name=label]`), "made-in-browser"),
		chromedp.Click(chromedp.CSS(`form[aria-label="Create a key"] button`)))
	b.do(chromedp.WaitVisible(chromedp.CSS("#token")))
	b.shot("key-created-1280")
	b.do(chromedp.Click(chromedp.CSS("#hide-token")))
	b.noSecrets(browserToken, e.admin)

	// The phone layout.
	b.do(chromedp.EmulateViewport(390, 844))
	for _, p := range []struct{ path, name string }{{"/ui/instances", "instances"}, {"/ui/instances/" + second.ID, "instance"}, {"/ui/instances/" + id + "/backups", "backups"}, {"/ui/instances/" + id + "/schedules", "schedules"}, {"/ui/nodes", "nodes"}, {"/ui/events", "events"}, {"/ui/settings", "settings"}, {"/ui/configurations/echo", "configuration"}} {
		b.do(chromedp.Navigate(origin + p.path))
		b.shot(p.name + "-390")
		if p.name == "configuration" {
			b.shotAt("configuration-schedules-390", "#schedules")
		}
		// A short page does not stretch the header.
		if h := eval[float64](b, `document.querySelector('.side').getBoundingClientRect().height`); h > 140 {
			t.Errorf("%s at 390 px: the header is %v px high", p.path, h)
		}
	}
	b.do(chromedp.EmulateViewport(1280, 800))

	// Revocation while the instance page is open: the page signs out and
	// says why.
	if _, err := e.m.Instances().Get(id); err != nil {
		t.Fatal(err)
	}
	// The keys page holds no console: its session socket alone signs it out.
	b.do(chromedp.Navigate(origin + "/ui/keys"))
	b.waitJS(`window.__universeSession && window.__universeSession.readyState === 1`)
	start := time.Now()
	e.do("POST", "/api/users", e.admin, `{"name":"second","password":"the second admin's password","admin":true}`) // the last admin stays enabled
	if r := e.do("PATCH", "/api/users/operator", e.admin, `{"disabled":true}`); r.StatusCode != 200 {
		t.Fatalf("disable the operator: %d", r.StatusCode)
	}
	b.waitJS(`!!document.querySelector('[role=alert]') && document.querySelector('[role=alert]').textContent.includes('revoked')`)
	t.Logf("user disabled → sign-in page with the reason: %v", time.Since(start).Round(time.Millisecond))
	b.named("textbox", "Name")
	b.shot("revoked-1280")

	// Sign in again (a new key), then sign out.
	_, again, err := e.m.Keyring().Create("browser2", universe.ScopeAll, 0)
	if err != nil {
		t.Fatal(err)
	}
	// With the keyboard alone: open "Sign in with an API key", type the
	// key and press Enter; focus "Sign out" and press Enter.
	b.do(chromedp.Focus(chromedp.CSS("details summary")), chromedp.KeyEvent(kb.Enter))
	b.do(chromedp.WaitVisible(chromedp.CSS("#key")))
	b.named("textbox", "API key of scope ALL")
	b.do(chromedp.SendKeys(chromedp.CSS("#key"), again+kb.Enter))
	b.do(chromedp.WaitVisible(chromedp.CSS("table#instances")))
	b.do(chromedp.Focus(chromedp.CSS(`.who button`)), chromedp.KeyEvent(kb.Enter))
	b.do(chromedp.WaitVisible(chromedp.CSS("#name")))
	b.do(chromedp.Navigate(origin + "/ui/instances"))
	b.do(chromedp.WaitVisible(chromedp.CSS("#name"))) // signed out: back to the sign-in page

	// No request left the master's origin, and none carried a token.
	u, _ := url.Parse(origin)
	for _, r := range b.requests() {
		ru, err := url.Parse(r)
		if err != nil || ru.Host != u.Host {
			if !strings.HasPrefix(r, "data:") {
				t.Errorf("a request left the master's origin: %s", r)
			}
		}
		if strings.Contains(r, "unv_") {
			t.Errorf("a token in a URL: %s", r)
		}
	}
	for _, tok := range []string{browserToken, again, e.admin, password} {
		if strings.Contains(e.logs.String(), tok) {
			t.Error("a token or a password is in the master's log")
		}
	}
}

// The browser's probe sees what it must: a script the page's policy
// blocks and an uncaught exception are both reported (then forgotten, so
// that this test's own cleanup check passes).
func TestBrowserProbeSeesCSPViolations(t *testing.T) {
	e := newEnv(t, nil)
	b := newBrowser(t, 800, 600)
	b.do(chromedp.Navigate(e.url + "/ui/"))
	b.do(chromedp.Evaluate[chromedp.Void](`{ const s = document.createElement('script'); s.textContent = 'window.ran = 1'; document.body.append(s); setTimeout(() => { throw new Error('probe-exception'); }, 0); }`))
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.mu.Lock()
		got := strings.Join(b.errors, "\n")
		b.mu.Unlock()
		if strings.Contains(got, "csp-violation: script-src") && strings.Contains(got, "probe-exception") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the probe did not report the blocked inline script and the exception: %q", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if eval[bool](b, `window.ran === 1`) {
		t.Fatal("the page's policy let an inline script run")
	}
	b.mu.Lock()
	b.errors = nil
	b.mu.Unlock()
}
