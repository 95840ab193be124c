package master_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/universe-orchestrator/universe/api"
)

// TestDashboardMemberInBrowser: a member signs in to the dashboard and sees
// what their grants allow, and nothing else: their instances only, the
// buttons and tabs of their permissions, a 403 page elsewhere. On their
// account page they change their password, turn on two-factor sign-in
// (the QR code loads; a code from the secret confirms it; the recovery
// codes show once) and make a key. An admin grants and revokes on an
// instance's Members tab and makes a user on the Users page. Every page
// is free of script errors and CSP violations (newBrowser checks).
func TestDashboardMemberInBrowser(t *testing.T) {
	e := newEnv(t, nil)
	e.putConfig("game", map[string]any{"command": "exec sleep 600", "availablePorts": map[string]int{"min": 22090, "max": 22094}, "stopTimeoutSeconds": 1})
	e.putConfig("other", map[string]any{"command": "exec sleep 600", "availablePorts": map[string]int{"min": 22095, "max": 22099}, "stopTimeoutSeconds": 1})
	mine := e.create("game")
	theirs := e.create("other")
	const pw = "mia's long password"
	for _, body := range []string{
		`{"name":"mia","password":"` + pw + `"}`,
		`{"name":"boss","password":"the boss's password","admin":true}`,
	} {
		if r := e.do("POST", "/api/users", e.admin, body); r.StatusCode != 201 {
			t.Fatalf("make a user: %d", r.StatusCode)
		}
	}
	if r := e.do("POST", "/api/users/mia/grants", e.admin, `{"configuration":"game","permissions":["instance.read","console.read","power.restart","file.list","config.read"]}`); r.StatusCode != 201 {
		t.Fatalf("grant mia: %d", r.StatusCode)
	}
	b := newBrowser(t, 1280, 800)
	origin := e.url
	signIn := func(name, password string) {
		b.do(chromedp.Navigate(origin+"/ui/"), chromedp.SendKeys(chromedp.CSS("#name"), name), chromedp.SendKeys(chromedp.CSS("#password"), password),
			chromedp.Click(chromedp.CSS("form button.primary")))
		b.do(chromedp.WaitVisible(chromedp.CSS("table#instances")))
	}
	signIn("mia", pw)

	// Her instances only; no admin's pages in the navigation.
	if txt := eval[string](b, `document.querySelector('table#instances').textContent`); !strings.Contains(txt, mine.ID) || strings.Contains(txt, theirs.ID) {
		t.Errorf("mia's instance list: %q", txt)
	}
	nav := eval[string](b, `document.querySelector('nav[aria-label=Main]').textContent`)
	for _, hidden := range []string{"Templates", "Nodes", "Keys", "Audit", "Settings", "Users"} {
		if strings.Contains(nav, hidden) {
			t.Errorf("a member's navigation shows %s: %q", hidden, nav)
		}
	}
	for _, shown := range []string{"Instances", "Configurations", "Events", "Account"} {
		b.named("link", shown)
	}
	if eval[bool](b, `!!document.querySelector('form[aria-label="Create an instance"]')`) {
		t.Error("a member without instance.create is offered to create instances")
	}
	if got := eval[string](b, `Array.from(document.querySelectorAll('#bulk button[name=action]')).map(b => b.value).join(',')`); got != "restart" {
		t.Errorf("a member with power.restart alone is offered the bulk actions %q", got)
	}
	b.shot("member-instances-1280")

	// Her instance: restart only, the Files tab, the console without input.
	b.do(chromedp.Navigate(origin + "/ui/instances/" + mine.ID))
	b.do(chromedp.WaitVisible(chromedp.CSS(`[role=log]`)))
	b.named("button", "Restart")
	b.named("link", "Files")
	for _, sel := range []string{`button[value=stop]`, `button[value=start]`, `button[value=kill]`, `#cmdform`, `a[href$="/backups"]`, `a[href$="/schedules"]`, `a[href$="/members"]`, `#spark`} {
		if eval[bool](b, `!!document.querySelector('`+sel+`')`) {
			t.Errorf("a member without the right sees %s", sel)
		}
	}
	b.shot("member-instance-1280")
	b.do(chromedp.Click(chromedp.CSS(`button[value=restart]`)))
	b.waitJS(`document.readyState === 'complete' && location.pathname === '/ui/instances/` + mine.ID + `'`)
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if in := decode[api.InstanceInfo](t, e.do("GET", "/api/instances/"+mine.ID, e.admin, "")); in.Restarts >= 1 && in.State == "ONLINE" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("mia's restart did not happen")
		}
	}
	// What she may not see: 403 pages saying what it needs.
	for path, want := range map[string]string{
		"/ui/instances/" + theirs.ID:            "instance.read",
		"/ui/keys":                              "for admins",
		"/ui/instances/" + mine.ID + "/backups": "backup.read",
		"/ui/configurations/other":              "config.read",
	} {
		b.do(chromedp.Navigate(origin + path))
		if txt := eval[string](b, `document.body.textContent`); !strings.Contains(txt, want) || !strings.Contains(txt, "Forbidden") {
			t.Errorf("%s as a member: %q", path, txt)
		}
	}
	// The configuration page reads, without save or delete.
	b.do(chromedp.Navigate(origin + "/ui/configurations/game"))
	if eval[bool](b, `!!document.querySelector('form[aria-label=Configuration] button.primary') || !!document.querySelector('form[aria-label="Delete the configuration"]')`) {
		t.Error("a member without config.write is offered to save or delete")
	}

	// Her account: password, two factors, a key.
	b.do(chromedp.Navigate(origin + "/ui/account"))
	b.named("button", "Change password")
	const pw2 = "mia's newer password"
	b.do(chromedp.SendKeys(chromedp.CSS(`input[name=current]`), pw), chromedp.SendKeys(chromedp.CSS(`form[aria-label="Change the password"] input[name=password]`), pw2),
		chromedp.SendKeys(chromedp.CSS(`input[name=again]`), pw2), chromedp.Click(chromedp.CSS(`form[aria-label="Change the password"] button`)))
	b.waitJS(`!!document.querySelector('#done') || !!document.querySelector('[role=alert]')`)
	if msg := eval[string](b, `(document.querySelector('[role=alert]') || {textContent: ''}).textContent`); msg != "" {
		t.Fatalf("the password change: %q", msg)
	}
	if r := e.do("POST", "/api/login", "", `{"name":"mia","password":"`+pw2+`"}`); r.StatusCode != 200 {
		t.Fatalf("sign-in with the new password: %d %s", r.StatusCode, readAll(r))
	}
	b.do(chromedp.Click(chromedp.CSS(`form[aria-label="Begin two-factor sign-in"] button`)))
	b.waitJS(`!!document.querySelector('#totp-secret') && document.querySelector('.enrol img').complete && document.querySelector('.enrol img').naturalWidth > 0`)
	b.shot("account-enrol-1280")
	secret := eval[string](b, `document.querySelector('#totp-secret').textContent`)
	code, err := totp.GenerateCode(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b.doOnNewPage(chromedp.SetValue(chromedp.CSS(`form[aria-label="Confirm two-factor sign-in"] input[name=code]`), code),
		chromedp.Click(chromedp.CSS(`form[aria-label="Confirm two-factor sign-in"] button`)))
	b.waitJS(`document.querySelectorAll('#recovery li').length === 10`)
	b.shot("account-recovery-1280")
	if u := decode[api.User](t, e.do("GET", "/api/users/mia", e.admin, "")); !u.TOTP {
		t.Error("two-factor sign-in is not on after the page's confirmation")
	}
	b.doOnNewPage(chromedp.SetValue(chromedp.CSS(`form[aria-label="Create a key of yours"] input[name=label]`), "mia-script"),
		chromedp.Click(chromedp.CSS(`form[aria-label="Create a key of yours"] button`)))
	b.do(chromedp.WaitVisible(chromedp.CSS("#token")))
	token := eval[string](b, `document.querySelector('#token').textContent`)
	if me := decode[api.Me](t, e.do("GET", "/api/me", token, "")); me.Name != "mia" || me.Scope != "MEMBER" {
		t.Errorf("the key made on the account page: %+v", me)
	}
	b.do(chromedp.Click(chromedp.CSS("#hide-token")))
	b.shot("account-1280")
	b.do(chromedp.EmulateViewport(390, 844))
	b.do(chromedp.Navigate(origin + "/ui/account"))
	b.shot("account-390")
	b.do(chromedp.Navigate(origin + "/ui/instances/" + mine.ID))
	b.shot("member-instance-390")
	b.do(chromedp.EmulateViewport(1280, 800))

	// An admin: the Users page makes a user; an instance's Members tab
	// grants and revokes.
	b.do(chromedp.Navigate(origin + "/ui/"))
	b.do(chromedp.Click(chromedp.CSS(`.who form button`)))
	b.waitJS(`document.readyState === 'complete' && document.body.dataset.page === 'signin'`)
	signIn("boss", "the boss's password")
	b.do(chromedp.Navigate(origin+"/ui/users"), chromedp.SendKeys(chromedp.CSS(`form[aria-label="Create a user"] input[name=name]`), "zed"),
		chromedp.SendKeys(chromedp.CSS(`form[aria-label="Create a user"] input[name=password]`), "zed's long password"),
		chromedp.Click(chromedp.CSS(`form[aria-label="Create a user"] button`)))
	b.waitJS(`document.readyState === 'complete' && document.querySelector('table[aria-label=Users]').textContent.includes('zed')`)
	b.shot("users-1280")
	b.do(chromedp.Navigate(origin + "/ui/instances/" + mine.ID + "/members"))
	b.named("table", "Members")
	b.do(chromedp.SendKeys(chromedp.CSS(`form[aria-label="Grant a member"] input[name=user]`), "zed"),
		chromedp.Click(chromedp.CSS(`form[aria-label="Grant a member"] input[value="console.read"]`)),
		chromedp.Click(chromedp.CSS(`form[aria-label="Grant a member"] input[value="instance.read"]`)),
		chromedp.Click(chromedp.CSS(`form[aria-label="Grant a member"] button`)))
	b.waitJS(`document.readyState === 'complete' && document.querySelector('table[aria-label=Members]').textContent.includes('zed')`)
	if gs := decode[[]api.Grant](t, e.do("GET", "/api/users/zed/grants", e.admin, "")); len(gs) != 1 || gs[0].InstanceID != mine.ID || len(gs[0].Permissions) != 2 {
		t.Fatalf("zed's grants after the Members tab: %+v", gs)
	}
	b.shot("members-1280")
	eval[bool](b, `(() => { window.confirm = () => true; return true; })()`) // the button asks first
	b.do(chromedp.Click(chromedp.CSS(`button[aria-label="Revoke the grant of zed"]`)))
	b.waitJS(`document.readyState === 'complete' && !document.querySelector('table[aria-label=Members]').textContent.includes('zed')`)
	if gs := decode[[]api.Grant](t, e.do("GET", "/api/users/zed/grants", e.admin, "")); len(gs) != 0 {
		t.Errorf("zed's grants after the revocation: %+v", gs)
	}
	// Drain from the instance page; the configuration's Scaling panel.
	b.do(chromedp.Navigate(origin + "/ui/instances/" + mine.ID))
	b.named("button", "Drain")
	b.do(chromedp.Click(chromedp.CSS(`button[aria-label=Drain]`)))
	b.waitJS(`document.readyState === 'complete' && !!document.querySelector('#joinable') && document.querySelector('#joinable').textContent.includes('draining')`)
	if in := decode[api.InstanceInfo](t, e.do("GET", "/api/instances/"+mine.ID, e.admin, "")); !in.Draining || in.DrainDeadline == 0 {
		t.Errorf("after the Drain button: %+v", in)
	}
	b.shot("instance-draining-1280")
	e.putConfig("game", map[string]any{"command": "exec sleep 600", "availablePorts": map[string]int{"min": 22090, "max": 22094}, "stopTimeoutSeconds": 1,
		"scaling": map[string]any{"readyHeadroom": 0}})
	b.do(chromedp.Navigate(origin + "/ui/configurations/game"))
	b.named("table", "Scaling decisions")
	b.shotAt("configuration-scaling-1280", "#scaling")
	b.do(chromedp.EmulateViewport(390, 844))
	b.do(chromedp.Navigate(origin + "/ui/users"))
	b.shot("users-390")
}
