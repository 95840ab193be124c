package master

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"
	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/master/users"
)

// The dashboard's account page (a user's password, second factor and own
// keys), Users page (an admin's: accounts and their grants) and Members
// panels (an instance's or a configuration's grants, for whoever may
// grant there). They share the API's logic (users_api.go).

type accountData struct {
	User     userView
	IsUser   bool
	Grants   []users.Grant
	Keys     []universe.KeyRecord
	Enrol    *struct{ Secret, URL string } // an enrolment just begun
	Recovery []string                      // codes just made: shown once
	Created  *struct{ Label, Token string }
	Error    string
	Done     string // what a form just did
}

func (m *Master) accountData(c *gin.Context) (accountData, error) {
	name := callerKey(c).User()
	d := accountData{IsUser: name != ""}
	if !d.IsUser {
		return d, nil
	}
	u, err := m.db.GetUser(name)
	if err != nil {
		return d, err
	}
	d.User = viewOf(u)
	if gs, err := m.db.ListGrants(name); err == nil {
		d.Grants = gs
	}
	for _, k := range m.keys.List() {
		if k.User == name && !k.Login {
			d.Keys = append(d.Keys, k)
		}
	}
	return d, nil
}

func (m *Master) uiAccount(c *gin.Context) { m.uiAccountWith(c, http.StatusOK, nil) }

// uiAccountWith renders the account page; more fills what a form just did.
func (m *Master) uiAccountWith(c *gin.Context, status int, more func(*accountData)) {
	d, err := m.accountData(c)
	if err != nil {
		m.uiFail(c, "account", "/ui/instances", err)
		return
	}
	if more != nil {
		more(&d)
	}
	m.render(c, status, "account", uiPage{Title: "Account", Nav: "account", Data: d})
}

// uiAccountFail shows err on the account page (its form's error).
func (m *Master) uiAccountFail(c *gin.Context, err error) {
	if code := universe.ErrorCode(err); code == universe.EINTERNAL {
		m.uiFail(c, "account", "/ui/account", err)
		return
	}
	m.uiAccountWith(c, statusOf(universe.ErrorCode(err)), func(d *accountData) { d.Error = universe.ErrorMessage(err) })
}

// userOnly answers a key's session (no account): false and a message.
func (m *Master) userOnly(c *gin.Context) bool {
	if callerKey(c).User() != "" {
		return true
	}
	m.uiFail(c, "account", "/ui/instances", universe.Errorf(universe.EFORBIDDEN, "this session is a key's: an account is a user's (sign in with a name and password)"))
	return false
}

func (m *Master) uiAccountPassword(c *gin.Context) {
	if !m.userOnly(c) {
		return
	}
	req := passwordChange{Current: c.PostForm("current"), Password: c.PostForm("password")}
	err := error(nil)
	if req.Password != c.PostForm("again") {
		err = universe.Errorf(universe.EINVALID, "the two new passwords differ")
	} else {
		err = m.changePassword(c, req)
	}
	m.dashAudit(c, "change own password", err)
	if err != nil {
		m.uiAccountFail(c, err)
		return
	}
	m.uiAccountWith(c, http.StatusOK, func(d *accountData) { d.Done = "Password changed; your other sessions ended." })
}

func (m *Master) uiAccountTOTP(c *gin.Context) {
	if !m.userOnly(c) {
		return
	}
	secret, u, err := m.totpStart(callerKey(c).User())
	m.dashAudit(c, "begin two-factor enrolment", err)
	if err != nil {
		m.uiAccountFail(c, err)
		return
	}
	m.uiAccountWith(c, http.StatusOK, func(d *accountData) { d.Enrol = &struct{ Secret, URL string }{secret, u} })
}

// uiAccountTOTPQR is the QR code of the enrolment under way (no cache).
func (m *Master) uiAccountTOTPQR(c *gin.Context) {
	if !m.userOnly(c) {
		return
	}
	u, err := m.db.GetUser(callerKey(c).User())
	if err == nil && u.TOTPPending == "" {
		err = universe.Errorf(universe.ENOTFOUND, "no enrolment under way")
	}
	var png []byte
	if err == nil {
		png, err = users.TOTPQR(u.Name, u.TOTPPending)
	}
	if err != nil {
		fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Data(http.StatusOK, "image/png", png)
}

func (m *Master) uiAccountTOTPConfirm(c *gin.Context) {
	if !m.userOnly(c) {
		return
	}
	codes, err := m.totpConfirm(callerKey(c).User(), c.PostForm("code"))
	m.dashAudit(c, "turn two-factor sign-in on", err)
	if err != nil {
		m.uiAccountFail(c, err)
		return
	}
	m.uiAccountWith(c, http.StatusOK, func(d *accountData) { d.Recovery = codes })
}

func (m *Master) uiAccountTOTPDisable(c *gin.Context) {
	if !m.userOnly(c) {
		return
	}
	err := m.totpDisable(callerKey(c).User(), c.PostForm("code"))
	m.dashAudit(c, "turn two-factor sign-in off", err)
	if err != nil {
		m.uiAccountFail(c, err)
		return
	}
	m.uiAccountWith(c, http.StatusOK, func(d *accountData) { d.Done = "Two-factor sign-in is off." })
}

func (m *Master) uiAccountKeyCreate(c *gin.Context) {
	if !m.userOnly(c) {
		return
	}
	req := meKeyCreate{Label: strings.TrimSpace(c.PostForm("label")), ExpiresIn: c.PostForm("expires")}
	nk, token, _, err := m.createUserKey(c, req)
	m.dashAudit(c, "create own key label="+req.Label, err)
	if err != nil {
		m.uiAccountFail(c, err)
		return
	}
	m.uiAccountWith(c, http.StatusCreated, func(d *accountData) { d.Created = &struct{ Label, Token string }{nk.Label(), token} })
}

func (m *Master) uiAccountKeyRevoke(c *gin.Context) {
	if !m.userOnly(c) {
		return
	}
	id := c.Param("key")
	i := slices.IndexFunc(m.keys.List(), func(k universe.KeyRecord) bool { return k.ID == id && k.User == callerKey(c).User() && !k.Login })
	err := error(nil)
	if i < 0 {
		err = universe.Errorf(universe.ENOTFOUND, "you have no key %q", id)
	} else {
		_, err = m.keys.Revoke(id)
	}
	m.dashAudit(c, "revoke own key="+id, err)
	if err != nil {
		m.uiFail(c, "account", "/ui/account", err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/ui/account")
}

// ---- Users (admins) ----

type usersData struct {
	Users          []userRow
	Permissions    []string
	Configurations []string
	Error          string
	Form           userCreate
}

type userRow struct {
	userView
	Grants []users.Grant
}

func (m *Master) uiUsers(c *gin.Context) { m.uiUsersWith(c, http.StatusOK, "", userCreate{}) }

func (m *Master) uiUsersWith(c *gin.Context, status int, why string, form userCreate) {
	list, err := m.db.ListUsers()
	if err != nil {
		m.uiFail(c, "users", "/ui/instances", err)
		return
	}
	grants, _ := m.db.ListGrants("")
	d := usersData{Permissions: users.Permissions, Error: why, Form: userCreate{Name: form.Name, Admin: form.Admin}}
	for _, u := range list {
		r := userRow{userView: viewOf(u)}
		for _, g := range grants {
			if g.User == u.Name {
				r.Grants = append(r.Grants, g)
			}
		}
		d.Users = append(d.Users, r)
	}
	if cfgs, err := m.db.ListConfigurations(); err == nil {
		for _, cfg := range cfgs {
			d.Configurations = append(d.Configurations, cfg.Name)
		}
	}
	m.render(c, status, "users", uiPage{Title: "Users", Nav: "users", Data: d})
}

func (m *Master) uiUserCreate(c *gin.Context) {
	req := userCreate{Name: strings.TrimSpace(c.PostForm("name")), Password: c.PostForm("password"), Admin: c.PostForm("admin") == "on"}
	_, err := m.createUser(req)
	m.dashAudit(c, "create user="+req.Name, err)
	if err != nil {
		m.uiUsersWith(c, statusOf(universe.ErrorCode(err)), universe.ErrorMessage(err), req)
		return
	}
	c.Redirect(http.StatusSeeOther, "/ui/users")
}

// uiUserAction: enable, disable, delete, password (set a new one) or grant
// (add a grant) on one user.
func (m *Master) uiUserAction(c *gin.Context) {
	name, action := c.Param("user"), c.Param("action")
	var err error
	switch action {
	case "enable", "disable":
		off := action == "disable"
		_, err = m.patchUser(name, userPatch{Disabled: &off})
	case "password":
		pw := c.PostForm("password")
		_, err = m.patchUser(name, userPatch{Password: &pw})
	case "delete":
		err = m.deleteUser(name)
	case "grant":
		_, err = m.grant(c, name, grantFromForm(c))
	default:
		err = universe.Errorf(universe.ENOTFOUND, "no such action %q", action)
	}
	m.dashAudit(c, action+" user="+name, err)
	if err != nil {
		m.uiUsersWith(c, statusOf(universe.ErrorCode(err)), universe.ErrorMessage(err), userCreate{})
		return
	}
	c.Redirect(http.StatusSeeOther, "/ui/users")
}

func (m *Master) uiUserGrantRevoke(c *gin.Context) {
	name, id := c.Param("user"), c.Param("grant")
	err := m.revokeGrant(c, name, id)
	m.dashAudit(c, "revoke grant user="+name+" grant="+id, err)
	if err != nil {
		m.uiFail(c, "users", "/ui/users", err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/ui/users")
}

// grantFromForm reads a grant's form: the fields instanceId or
// configuration, else "on" ("instance:ID" or "configuration:NAME"), and
// the permissions checked.
func grantFromForm(c *gin.Context) grantCreate {
	g := grantCreate{InstanceID: strings.TrimSpace(c.PostForm("instanceId")), Configuration: strings.TrimSpace(c.PostForm("configuration")),
		Permissions: c.PostFormArray("permissions")}
	if kind, v, ok := strings.Cut(c.PostForm("on"), ":"); ok && g.InstanceID == "" && g.Configuration == "" {
		switch kind {
		case "instance":
			g.InstanceID = strings.TrimSpace(v)
		case "configuration":
			g.Configuration = strings.TrimSpace(v)
		}
	}
	return g
}

// ---- Members: the grants on an instance or a configuration ----

type membersData struct {
	Base        string // the page: its forms post under Base+"/members"
	Grants      []users.Grant
	Permissions []string // what the caller may grant here
	Error       string
}

// membersOf lists the grants on instance id (with its configuration's)
// or, id "", on configuration cfg, and what the caller may grant there.
func (m *Master) membersOf(c *gin.Context, id, cfg, why string) *membersData {
	d := &membersData{Error: why}
	if id != "" {
		d.Base = "/ui/instances/" + url.PathEscape(id)
	} else {
		d.Base = "/ui/configurations/" + url.PathEscape(cfg)
	}
	all, _ := m.db.ListGrants("")
	for _, g := range all {
		if id != "" && g.InstanceID == id || g.Configuration == cfg && g.InstanceID == "" {
			d.Grants = append(d.Grants, g)
		}
	}
	r := callerRights(c)
	for _, p := range users.Permissions {
		if r == nil || r.Allowed(p, id, cfg) {
			d.Permissions = append(d.Permissions, p)
		}
	}
	return d
}

func (m *Master) uiMembers(c *gin.Context) { m.uiMembersWith(c, http.StatusOK, "") }

func (m *Master) uiMembersWith(c *gin.Context, status int, why string) {
	in, d := m.instancePage(c)
	if in == nil {
		return
	}
	d.MembersTab = true
	d.Members = m.membersOf(c, in.ID(), in.Info().ConfigurationName, why)
	m.render(c, status, "instance", uiPage{Title: in.ID() + " members", Nav: "instances", Data: d})
}

func (m *Master) uiMemberGrant(c *gin.Context) {
	id, name := c.Param("id"), c.Param("name")
	user := strings.TrimSpace(c.PostForm("user"))
	g := grantCreate{Permissions: c.PostFormArray("permissions")}
	if id != "" {
		g.InstanceID = id
	} else {
		g.Configuration = name
	}
	_, err := m.grant(c, user, g)
	m.dashAudit(c, "grant user="+user+" on="+id+name, err)
	if err != nil {
		if id != "" {
			m.uiMembersWith(c, statusOf(universe.ErrorCode(err)), universe.ErrorMessage(err))
		} else {
			m.uiConfigurationMembers(c, statusOf(universe.ErrorCode(err)), universe.ErrorMessage(err))
		}
		return
	}
	c.Redirect(http.StatusSeeOther, membersBack(id, name))
}

func (m *Master) uiMemberRevoke(c *gin.Context) {
	id, name := c.Param("id"), c.Param("name")
	user, gid := c.PostForm("user"), c.Param("grant")
	// The grant must be this page's (a member could otherwise revoke
	// elsewhere what it may grant here).
	all, _ := m.db.ListGrants(user)
	i := slices.IndexFunc(all, func(g users.Grant) bool {
		return g.ID == gid && (id != "" && g.InstanceID == id || id == "" && g.Configuration == name && g.InstanceID == "")
	})
	err := error(nil)
	if i < 0 {
		err = universe.Errorf(universe.ENOTFOUND, "no grant %q here", gid)
	} else {
		err = m.revokeGrant(c, user, gid)
	}
	m.dashAudit(c, "revoke grant user="+user+" grant="+gid, err)
	if err != nil {
		m.uiFail(c, "instances", membersBack(id, name), err)
		return
	}
	c.Redirect(http.StatusSeeOther, membersBack(id, name))
}

func membersBack(id, name string) string {
	if id != "" {
		return "/ui/instances/" + url.PathEscape(id) + "/members"
	}
	return "/ui/configurations/" + url.PathEscape(name) + "#members"
}

// uiConfigurationMembers shows the configuration page with its members'
// form refused for why.
func (m *Master) uiConfigurationMembers(c *gin.Context, status int, why string) {
	m.uiConfigurationPage(c, defaultScheduleForm, "", why, status)
}
