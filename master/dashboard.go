package master

import (
	"context"
	"net/http"
	"strings"

	"github.com/coder/websocket"
	"github.com/gin-gonic/gin"
	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/console"
	"github.com/universe-orchestrator/universe/master/auth"
	"github.com/universe-orchestrator/universe/master/webui"
)

// The dashboard: server-rendered pages under /ui/, signed in by a session
// cookie (see auth.Sessions). Its scripts use the same REST and WebSocket
// API as every client; the cookie authenticates them there too.

// uiPage is what every page template gets.
type uiPage struct {
	Title  string
	Nav    string // the active navigation entry; "signin" on the sign-in page
	Key    string // label of the signed-in key ("" on the sign-in page)
	Alert  string
	Notice string
	Data   any
	// R answers what the caller may do (the templates hide what it may
	// not; the server refuses it anyway).
	R uiRights
}

// sessionCookie names the session cookie: with TLS the __Host- prefix
// pins it to this host, path / and Secure.
func (m *Master) sessionCookie() string {
	if m.cfg.TLSCert != "" {
		return "__Host-universe_session"
	}
	return "universe_session"
}

func (m *Master) setSessionCookie(c *gin.Context, value string, maxAge int) {
	http.SetCookie(c.Writer, &http.Cookie{
		Name: m.sessionCookie(), Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: m.cfg.TLSCert != "",
	})
}

// uiHeaders are the dashboard's security headers: no inline script, no
// framing, no referrer, and pages are not cached (they show live state).
func uiHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	if !strings.HasPrefix(c.Request.URL.Path, "/ui/assets/") {
		h.Set("Cache-Control", "no-store")
	}
	c.Next()
}

// uiRoutes adds the dashboard to the router.
func (m *Master) uiRoutes(e *gin.Engine) {
	e.GET("/", func(c *gin.Context) {
		if strings.Contains(c.GetHeader("Accept"), "text/html") {
			c.Redirect(http.StatusSeeOther, "/ui/")
			return
		}
		m.authenticate(c)
		if !c.IsAborted() {
			fail(c, universe.Errorf(universe.ENOTFOUND, "no such endpoint; the dashboard is at /ui/"))
		}
	})
	ui := e.Group("/ui", uiHeaders)
	ui.GET("/", m.uiHome)
	ui.POST("/login", m.uiCrossOrigin, m.uiLogin)
	ui.GET("/link", m.uiLink)
	ui.POST("/logout", m.uiCrossOrigin, m.uiLogout)
	ui.StaticFS("/assets", http.FS(webui.Assets()))

	s := ui.Group("", m.uiSession, m.uiAuthorize)
	s.GET("/session", m.uiSessionWS)
	s.GET("/instances", m.uiInstances)
	s.POST("/instances", m.uiInstanceCreate)
	s.POST("/instances/bulk", m.uiBulk)
	s.GET("/instances/:id", m.uiInstance)
	s.POST("/instances/:id/power", m.uiPower)
	s.POST("/instances/:id/command", m.uiCommand)
	s.POST("/instances/:id/drain", m.uiDrain)
	s.GET("/instances/:id/log.txt", m.uiLogDownload)
	s.GET("/instances/:id/files", m.uiFiles)
	s.POST("/instances/:id/files/upload", m.uiFilesUpload)
	s.POST("/instances/:id/files/save", m.uiFilesSave)
	s.POST("/instances/:id/files/delete", m.uiFilesDelete)
	s.POST("/instances/:id/files/new", m.uiFilesNew)
	s.POST("/instances/:id/files/rename", m.uiFilesRename)
	s.POST("/instances/:id/files/unzip", m.uiFilesUnzip)
	s.GET("/instances/:id/backups", m.uiBackups)
	s.POST("/instances/:id/backups", m.uiBackupCreate)
	s.POST("/instances/:id/backups/:backup/:action", m.uiBackupAction)
	s.GET("/instances/:id/schedules", m.uiSchedules)
	s.POST("/instances/:id/schedules", m.uiScheduleCreate)
	s.POST("/instances/:id/schedules/:schedule/:action", m.uiScheduleAction)
	s.GET("/configurations", m.uiConfigurations)
	s.GET("/configurations/:name", m.uiConfiguration)
	s.POST("/configurations/:name", m.uiConfigurationSave)
	s.POST("/configurations/:name/delete", m.uiConfigurationDelete)
	s.POST("/configurations/:name/schedules", m.uiConfigScheduleCreate)
	s.POST("/configurations/:name/schedules/:schedule/:action", m.uiScheduleAction)
	s.POST("/configurations/:name/members", m.uiMemberGrant)
	s.POST("/configurations/:name/members/:grant/revoke", m.uiMemberRevoke)
	s.GET("/instances/:id/members", m.uiMembers)
	s.POST("/instances/:id/members", m.uiMemberGrant)
	s.POST("/instances/:id/members/:grant/revoke", m.uiMemberRevoke)
	s.GET("/account", m.uiAccount)
	s.POST("/account/password", m.uiAccountPassword)
	s.POST("/account/totp", m.uiAccountTOTP)
	s.GET("/account/totp.png", m.uiAccountTOTPQR)
	s.POST("/account/totp/confirm", m.uiAccountTOTPConfirm)
	s.POST("/account/totp/disable", m.uiAccountTOTPDisable)
	s.POST("/account/keys", m.uiAccountKeyCreate)
	s.POST("/account/keys/:key/revoke", m.uiAccountKeyRevoke)
	s.GET("/users", m.uiUsers)
	s.POST("/users", m.uiUserCreate)
	s.POST("/users/:user/:action", m.uiUserAction)
	s.POST("/users/:user/grants/:grant/revoke", m.uiUserGrantRevoke)
	s.GET("/templates", m.uiTemplates)
	s.POST("/templates", m.uiTemplateCreate)
	s.GET("/templates/:group/:name", m.uiTemplates)
	s.POST("/templates/:group/:name/upload", m.uiTemplateUpload)
	s.POST("/templates/:group/:name/import", m.uiTemplateImport)
	s.POST("/templates/:group/:name/save", m.uiTemplateSave)
	s.POST("/templates/:group/:name/delete", m.uiTemplateDelete)
	s.POST("/templates/:group/:name/remove", m.uiTemplateRemove)
	s.GET("/keys", m.uiKeys)
	s.POST("/keys", m.uiKeyCreate)
	s.POST("/keys/:key/revoke", m.uiKeyRevoke)
	s.GET("/audit", m.uiAudit)
	s.GET("/events", m.uiEvents)
	s.GET("/settings", m.uiSettings)
	s.POST("/settings/webhooks", m.uiWebhookCreate)
	s.POST("/settings/webhooks/:webhook/delete", m.uiWebhookDelete)
	s.GET("/nodes", m.uiNodes)
	s.POST("/nodes", m.uiNodeCreate)
	s.POST("/nodes/:name", m.uiNodeAction)
	for _, p := range []string{"/ui/instances/:id/files/upload", "/ui/templates/:group/:name/upload", "/ui/templates/:group/:name/import"} {
		m.uploads[p] = true
	}
}

// uiCrossOrigin refuses a cross-site form post (403).
func (m *Master) uiCrossOrigin(c *gin.Context) {
	if err := m.crossOrigin.Check(c.Request); err != nil {
		fail(c, universe.Errorf(universe.EFORBIDDEN, "cross-origin request refused"))
		return
	}
	c.Next()
}

// uiSession admits requests with a live session. Without one, a page
// request goes to the sign-in page (which says why the session ended).
func (m *Master) uiSession(c *gin.Context) {
	ck, err := c.Request.Cookie(m.sessionCookie())
	var k *auth.Key
	if err == nil {
		k, _ = m.sessions.Authenticate(ck.Value)
	}
	if k == nil {
		if c.Request.Method == http.MethodGet && !isUpgrade(c.Request) {
			c.Redirect(http.StatusSeeOther, "/ui/")
			c.Abort()
			return
		}
		fail(c, errUnauthorized)
		return
	}
	m.admitSession(c, k)
}

// render writes a page; a template error is an internal error.
func (m *Master) render(c *gin.Context, status int, name string, p uiPage) {
	if k, ok := c.Get(ctxKey); ok {
		p.Key = k.(*auth.Key).Label()
		if u := k.(*auth.Key).User(); u != "" {
			p.Key = u
		}
		p.R = rightsFor(c)
	}
	c.Status(status)
	c.Header("Content-Type", "text/html; charset=utf-8")
	if err := m.pages.Render(c.Writer, name, p); err != nil {
		m.log.Error("render page", "page", name, "requestId", requestIDOf(c), "err", err)
	}
}

// uiFail shows err on a page, with the status its code maps to.
func (m *Master) uiFail(c *gin.Context, nav, back string, err error) {
	code := universe.ErrorCode(err)
	msg := universe.ErrorMessage(err)
	if code == universe.EINTERNAL {
		m.log.Error("dashboard request failed", "requestId", requestIDOf(c), "route", c.FullPath(), "err", err)
		msg = "internal error (request " + requestIDOf(c) + ")"
	}
	m.render(c, statusOf(code), "message", uiPage{Title: "Error", Nav: nav,
		Data: map[string]string{"Heading": http.StatusText(statusOf(code)), "Text": msg, "Back": back}})
}

var endedWhy = map[string]string{
	auth.EndedRevoked:   "You were signed out: the key of this session was revoked.",
	auth.EndedExpired:   "You were signed out: the session or its key expired.",
	auth.EndedSignedOut: "",
}

// uiHome is the sign-in page, or the instances page when signed in.
func (m *Master) uiHome(c *gin.Context) {
	if ck, err := c.Request.Cookie(m.sessionCookie()); err == nil {
		k, why := m.sessions.Authenticate(ck.Value)
		if k != nil {
			c.Redirect(http.StatusSeeOther, "/ui/instances")
			return
		}
		m.setSessionCookie(c, "", -1)
		m.render(c, http.StatusOK, "signin", uiPage{Title: "Sign in", Nav: "signin", Alert: endedWhy[why]})
		return
	}
	m.render(c, http.StatusOK, "signin", uiPage{Title: "Sign in", Nav: "signin"})
}

// uiLogin signs in with a key typed into the form. Failures count against
// the client like any failed authentication.
func (m *Master) uiLogin(c *gin.Context) {
	now := m.cfg.Now()
	addr := m.clientAddr(c)
	if blocked, _ := m.throttle.Blocked(addr, now); blocked {
		m.render(c, http.StatusTooManyRequests, "signin", uiPage{Title: "Sign in", Nav: "signin", Alert: "Too many failed sign-ins from this address. Wait a minute and try again."})
		return
	}
	if name := strings.TrimSpace(c.PostForm("name")); name != "" {
		// A user's name, password and code: the same as POST /api/login.
		k, err := m.signIn(loginRequest{Name: name, Password: c.PostForm("password"), Code: c.PostForm("code")}, addr)
		if err != nil {
			alert, status := "Wrong name, password or code.", http.StatusUnauthorized
			if universe.ErrorCode(err) == universe.ERATELIMITED {
				alert, status = "Too many failed sign-ins. Wait a minute and try again.", http.StatusTooManyRequests
			}
			m.render(c, status, "signin", uiPage{Title: "Sign in", Nav: "signin", Alert: alert})
			return
		}
		m.startSession(c, k, "sign in as "+name)
		return
	}
	token := strings.TrimSpace(c.PostForm("key"))
	k, err := m.keys.AuthenticateAt(token, now)
	if err != nil {
		m.throttle.Fail(addr, now)
		m.metrics.authFailures.WithLabelValues(auth.FailureReason(err)).Inc()
		m.render(c, http.StatusUnauthorized, "signin", uiPage{Title: "Sign in", Nav: "signin", Alert: "This key is not valid."})
		return
	}
	m.startSession(c, k, "sign in")
}

// startSession gives the browser a session of key k and goes to the
// instances.
func (m *Master) startSession(c *gin.Context, k *auth.Key, what string) {
	cookie, err := m.sessions.Create(k)
	if err != nil {
		m.render(c, statusOf(universe.ErrorCode(err)), "signin", uiPage{Title: "Sign in", Nav: "signin", Alert: universe.ErrorMessage(err)})
		return
	}
	m.setSessionCookie(c, cookie, int(auth.SessionLifetime.Seconds()))
	m.audit(k.ID(), "dashboard", what, nil, nil)
	c.Redirect(http.StatusSeeOther, "/ui/instances")
}

// uiLink signs in with a one-time link of `dashboard link`.
func (m *Master) uiLink(c *gin.Context) {
	now, addr := m.cfg.Now(), m.clientAddr(c)
	// An address that guessed too often is refused before its code is
	// looked at, as a failed sign-in with a key is.
	if blocked, _ := m.throttle.Blocked(addr, now); blocked {
		m.render(c, http.StatusTooManyRequests, "signin", uiPage{Title: "Sign in", Nav: "signin", Alert: "Too many failed sign-ins from this address. Wait a minute and try again."})
		return
	}
	cookie, err := m.sessions.ConsumeLink(c.Query("code"))
	if err != nil {
		m.throttle.Fail(addr, now)
		m.render(c, http.StatusUnauthorized, "signin", uiPage{Title: "Sign in", Nav: "signin", Alert: universe.ErrorMessage(err)})
		return
	}
	m.setSessionCookie(c, cookie, int(auth.SessionLifetime.Seconds()))
	c.Redirect(http.StatusSeeOther, "/ui/instances")
}

func (m *Master) uiLogout(c *gin.Context) {
	if ck, err := c.Request.Cookie(m.sessionCookie()); err == nil {
		if k, _ := m.sessions.Authenticate(ck.Value); k != nil && k.Record().Login {
			_, _ = m.keys.Revoke(k.ID()) // a sign-in's key goes with its session
		}
		m.sessions.End(ck.Value)
	}
	m.setSessionCookie(c, "", -1)
	c.Redirect(http.StatusSeeOther, "/ui/")
}

// uiSessionWS is a WebSocket that every signed-in page holds: it is closed
// (1008, with the reason) the moment the session's key is revoked or
// expires, so the page signs out at once.
func (m *Master) uiSessionWS(c *gin.Context) {
	m.serveWS(c, "session", 1024, func(ctx context.Context, conn *websocket.Conn) error {
		ctx = conn.CloseRead(ctx)
		<-ctx.Done()
		return ctx.Err()
	})
}

// dashboardLabel is the key a `dashboard link` typed at the master's own
// terminal signs in as (the terminal has no key of its own). It is an
// ordinary ALL key, made on first use; revoking it ends those sessions.
const dashboardLabel = "dashboard-link"

func (m *Master) dashboardCommands() []*console.Command {
	link := &console.Command{Name: "link", Usage: "dashboard link [<key label or id>]",
		Summary: "print a one-time sign-in link to the dashboard (valid 5 minutes)",
		Run: func(ctx context.Context, args []string, w console.Writer) error {
			var (
				k   *auth.Key
				err error
			)
			switch {
			case len(args) > 1:
				return console.ErrUsage
			case len(args) == 1:
				k, err = m.keys.Get(args[0])
			case console.CallerFrom(ctx).KeyID != "":
				k, err = m.keys.ByID(console.CallerFrom(ctx).KeyID)
			default:
				if k, err = m.keys.Get(dashboardLabel); err != nil {
					k, _, err = m.keys.Create(dashboardLabel, universe.ScopeAll, 0)
				}
			}
			if err != nil {
				return err
			}
			code, err := m.sessions.CreateLink(k)
			if err != nil {
				return err
			}
			w.WriteLine("Open this link within " + auth.LinkLifetime.String() + " to sign in as " + k.Label() + " (it works once):")
			w.WriteLine(m.baseURL + "/ui/link?code=" + code)
			return nil
		}}
	return []*console.Command{{Name: "dashboard", Usage: "dashboard link", Summary: "the web dashboard at /ui/", Sub: []*console.Command{link}}}
}
