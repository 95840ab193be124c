package master

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/console"
	"github.com/universe-orchestrator/universe/master/auth"
	"github.com/universe-orchestrator/universe/master/users"
)

// The users' API: accounts (admins'), grants, the sign-in, and a user's
// own account (/api/me). The rules of who may call what are routeRules.

// The bodies and answers of the users' API are the wire's types (api),
// which the Go client shares; userView is a user as the API shows it:
// never a hash or a secret.
type userView = api.User

func viewOf(u users.User) userView {
	return userView{Name: u.Name, Admin: u.Admin, Disabled: u.Disabled, TOTP: u.TOTPSecret != "", CreatedAt: u.CreatedAt}
}

type userCreate = api.UserCreate

// createUser makes a user (the API's, the console's and the offline
// command's). Errors: EINVALID (name, weak password), ECONFLICT.
func (m *Master) createUser(req userCreate) (users.User, error) {
	u, err := users.New(req.Name, req.Password, req.Admin, m.cfg.Now())
	if err != nil {
		return users.User{}, err
	}
	if err := m.db.CreateUser(u); err != nil {
		return users.User{}, err
	}
	m.usersChanged()
	return u, nil
}

func (m *Master) handleUserCreate(c *gin.Context) {
	var req userCreate
	if err := bindJSONStrict(c, &req); err != nil {
		fail(c, err)
		return
	}
	u, err := m.createUser(req)
	if err != nil {
		fail(c, err)
		return
	}
	c.Set(ctxAuditDetail, "user="+u.Name)
	c.JSON(http.StatusCreated, viewOf(u))
}

func (m *Master) handleUserList(c *gin.Context) {
	list, err := m.db.ListUsers()
	if err != nil {
		fail(c, err)
		return
	}
	out := make([]userView, 0, len(list))
	for _, u := range list {
		out = append(out, viewOf(u))
	}
	c.JSON(http.StatusOK, out)
}

func (m *Master) handleUserGet(c *gin.Context) {
	u, err := m.db.GetUser(c.Param("name"))
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, viewOf(u))
}

type userPatch = api.UserPatch

// handleUserPatch disables or enables a user, or sets its password. A
// disabled user's sessions end at once (their sockets close), and its keys
// stop (each request checks).
func (m *Master) handleUserPatch(c *gin.Context) {
	var req userPatch
	if err := bindJSONStrict(c, &req); err != nil {
		fail(c, err)
		return
	}
	u, err := m.patchUser(c.Param("name"), req)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, viewOf(u))
}

// patchUser disables or enables a user, or sets its password (the API's
// and the dashboard's).
func (m *Master) patchUser(name string, req userPatch) (users.User, error) {
	var hash string
	if req.Password != nil {
		if err := users.ValidatePassword(name, *req.Password); err != nil {
			return users.User{}, err
		}
		h, err := users.Hash(*req.Password, users.Default)
		if err != nil {
			return users.User{}, err
		}
		hash = h
	}
	u, err := m.db.UpdateUser(name, func(u *users.User) error {
		if req.Disabled != nil {
			if *req.Disabled && u.Admin && !u.Disabled && m.lastAdmin(u.Name) {
				return universe.Errorf(universe.ECONFLICT, "%s is the last admin: make another admin first", u.Name)
			}
			u.Disabled = *req.Disabled
		}
		if hash != "" {
			u.PasswordHash = hash
		}
		u.Generation++
		return nil
	})
	if err != nil {
		return users.User{}, err
	}
	m.usersChanged()
	if u.Disabled || hash != "" {
		m.endSessionsOf(u.Name)
	}
	return u, nil
}

// lastAdmin says whether name is the only admin who is not disabled.
func (m *Master) lastAdmin(name string) bool {
	list, _ := m.db.ListUsers()
	for _, u := range list {
		if u.Admin && !u.Disabled && u.Name != name {
			return false
		}
	}
	return true
}

// endSessionsOf revokes the keys of name's sign-ins: its dashboard
// sessions end, and the WebSockets they opened close.
func (m *Master) endSessionsOf(name string) {
	for _, k := range m.keys.List() {
		if k.User == name && k.Login {
			_, _ = m.keys.Revoke(k.ID)
		}
	}
}

// handleUserDelete deletes a user, its grants and its keys (each revoked
// first: sessions end, sockets close). The last admin stays (409).
func (m *Master) handleUserDelete(c *gin.Context) {
	if err := m.deleteUser(c.Param("name")); err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (m *Master) deleteUser(name string) error {
	u, err := m.db.GetUser(name)
	if err != nil {
		return err
	}
	if u.Admin && !u.Disabled && m.lastAdmin(name) {
		return universe.Errorf(universe.ECONFLICT, "%s is the last admin: make another admin first", name)
	}
	for _, k := range m.keys.List() {
		if k.User == name {
			_, _ = m.keys.Revoke(k.ID)
		}
	}
	if err := m.db.DeleteUser(name); err != nil {
		return err
	}
	m.usersChanged()
	return nil
}

type grantCreate = api.GrantCreate

// handleGrantCreate grants a member permissions on an instance or a
// configuration. No one grants more than they hold: a member needs
// user.grant there, and every permission granted.
func (m *Master) handleGrantCreate(c *gin.Context) {
	var req grantCreate
	if err := bindJSONStrict(c, &req); err != nil {
		fail(c, err)
		return
	}
	g, err := m.grant(c, c.Param("name"), req)
	if err != nil {
		fail(c, err)
		return
	}
	c.Set(ctxAuditDetail, "user="+g.User+" grant="+g.ID)
	c.JSON(http.StatusCreated, g)
}

// grant makes a grant of the caller's (the API's and the dashboard's).
func (m *Master) grant(c *gin.Context, name string, req grantCreate) (users.Grant, error) {
	if (req.InstanceID == "") == (req.Configuration == "") {
		return users.Grant{}, universe.Errorf(universe.EINVALID, "name one instanceId or one configuration")
	}
	if len(req.Permissions) == 0 || len(req.Permissions) > len(users.Permissions) {
		return users.Grant{}, universe.Errorf(universe.EINVALID, "permissions: one or more of %s", strings.Join(users.Permissions, ", "))
	}
	for _, p := range req.Permissions {
		if !users.ValidPermission(p) {
			return users.Grant{}, universe.Errorf(universe.EINVALID, "permissions: %q is not a permission (one of %s)", p, strings.Join(users.Permissions, ", "))
		}
	}
	u, err := m.db.GetUser(name)
	if err != nil {
		return users.Grant{}, err
	}
	if u.Admin {
		return users.Grant{}, universe.Errorf(universe.ECONFLICT, "%s is an admin: an admin holds everything already", name)
	}
	cfg := req.Configuration
	if req.InstanceID != "" {
		in, err := m.instances.Get(req.InstanceID)
		if err != nil {
			return users.Grant{}, err
		}
		cfg = in.Info().ConfigurationName
	} else if _, err := m.db.GetConfiguration(cfg); err != nil {
		return users.Grant{}, err
	}
	if r := callerRights(c); r != nil {
		if !r.Allowed("user.grant", req.InstanceID, cfg) {
			return users.Grant{}, needs("user.grant", "what is granted")
		}
		if !r.Holds(req.Permissions, req.InstanceID, cfg) {
			return users.Grant{}, universe.Errorf(universe.EFORBIDDEN, "no one grants more than they hold: you lack some of these permissions there")
		}
	}
	by := callerKey(c).User()
	if by == "" {
		by = callerKey(c).Label()
	}
	g := users.Grant{ID: users.NewGrantID(), User: name, InstanceID: req.InstanceID, Configuration: req.Configuration,
		Permissions: slices.Compact(slices.Sorted(slices.Values(req.Permissions))), By: by, CreatedAt: m.cfg.Now().UnixMilli()}
	if err := m.db.PutGrant(g); err != nil {
		return users.Grant{}, err
	}
	m.usersChanged()
	return g, nil
}

func (m *Master) handleGrantList(c *gin.Context) {
	if _, err := m.db.GetUser(c.Param("name")); err != nil {
		fail(c, err)
		return
	}
	gs, err := m.db.ListGrants(c.Param("name"))
	if err != nil {
		fail(c, err)
		return
	}
	if gs == nil {
		gs = []users.Grant{}
	}
	c.JSON(http.StatusOK, gs)
}

// handleGrantDelete revokes a grant: the member's sessions end (their
// sockets close), so what they see follows at once.
func (m *Master) handleGrantDelete(c *gin.Context) {
	if err := m.revokeGrant(c, c.Param("name"), c.Param("grant")); err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// revokeGrant deletes a grant the caller could have made.
func (m *Master) revokeGrant(c *gin.Context, name, id string) error {
	if r := callerRights(c); r != nil {
		gs, _ := m.db.ListGrants(name)
		i := slices.IndexFunc(gs, func(g users.Grant) bool { return g.ID == id })
		if i < 0 {
			return universe.Errorf(universe.ENOTFOUND, "user %s has no grant %q", name, id)
		}
		g := gs[i]
		cfg := g.Configuration
		if g.InstanceID != "" {
			if in, err := m.instances.Get(g.InstanceID); err == nil {
				cfg = in.Info().ConfigurationName
			}
		}
		if !r.Allowed("user.grant", g.InstanceID, cfg) || !r.Holds(g.Permissions, g.InstanceID, cfg) {
			return universe.Errorf(universe.EFORBIDDEN, "you may revoke only what you could grant")
		}
	}
	if err := m.db.DeleteGrant(name, id); err != nil {
		return err
	}
	m.usersChanged()
	m.endSessionsOf(name)
	return nil
}

type loginRequest = api.Login

// signIn checks a user's name, password and (with TOTP) code, and makes
// the key of a dashboard session. Failures are throttled per user and per
// address (5 a minute each), answer alike whatever was wrong, and take as
// long for a name that is no user's. Errors: EUNAUTHORIZED, ERATELIMITED.
func (m *Master) signIn(req loginRequest, addr netip.Addr) (*auth.Key, error) {
	now := m.cfg.Now()
	if wait := m.signinWait(req.Name, addr); wait > 0 {
		return nil, rateErr(wait)
	}
	wrong := func() (*auth.Key, error) {
		m.signinUsers.Fail(userAddr(req.Name), now)
		m.signinAddrs.Fail(addr, now)
		m.metrics.signins.WithLabelValues("refused").Inc()
		return nil, universe.Errorf(universe.EUNAUTHORIZED, "wrong name, password or code")
	}
	u, err := m.db.GetUser(req.Name)
	if err != nil || len(req.Password) > 1024 {
		m.verify(users.DummyHash(), req.Password) // as long as for a user
		return wrong()
	}
	if !m.verify(u.PasswordHash, req.Password) || u.Disabled {
		return wrong()
	}
	if u.TOTPSecret != "" {
		if req.Code == "" {
			return wrong()
		}
		if err := m.takeSecondFactor(u.Name, req.Code, now); err != nil {
			return wrong()
		}
	}
	m.purgeLoginKeys(u.Name)
	scope := universe.ScopeMember
	if u.Admin {
		scope = universe.ScopeAll
	}
	k, _, err := m.keys.CreateForUser("login-"+u.Name+"-"+strings.ToLower(users.NewGrantID()[1:9]), scope, auth.SessionLifetime,
		auth.UserKey{User: u.Name, Login: true}, nil)
	if err != nil {
		return nil, err
	}
	m.metrics.signins.WithLabelValues("ok").Inc()
	return k, nil
}

// purgeLoginKeys revokes the expired keys of sign-ins (of name; "" for
// everyone's): each sign-in makes one, and its session ends with it.
func (m *Master) purgeLoginKeys(name string) {
	now := m.cfg.Now()
	for _, k := range m.keys.List() {
		if k.Login && (name == "" || k.User == name) && k.Expired(now) {
			_, _ = m.keys.Revoke(k.ID)
		}
	}
}

// verify checks a password against its hash, one at a time: a flood of
// sign-ins (from many addresses, for many names) takes one core at most,
// whatever the throttles let through.
func (m *Master) verify(hash, password string) bool {
	m.hashing.Lock()
	defer m.hashing.Unlock()
	return users.Verify(hash, password)
}

// takeSecondFactor takes a TOTP code (once: its step is recorded, in one
// write that refuses a step taken already) or an unused recovery code
// (then spent). Errors: EUNAUTHORIZED.
func (m *Master) takeSecondFactor(name, code string, now time.Time) error {
	u, err := m.db.GetUser(name)
	if err != nil {
		return err
	}
	defer m.usersChanged()
	if step, err := users.CheckTOTP(u.TOTPSecret, strings.TrimSpace(code), now, u.TOTPLastStep); err == nil {
		return m.db.TakeSecondFactor(name, step, "")
	}
	return m.db.TakeSecondFactor(name, 0, users.RecoveryHash(code))
}

// signinWait is how long sign-ins as name, or from addr, are refused (0:
// not).
func (m *Master) signinWait(name string, addr netip.Addr) time.Duration {
	now := m.cfg.Now()
	_, w1 := m.signinUsers.Blocked(userAddr(name), now)
	_, w2 := m.signinAddrs.Blocked(addr, now)
	return max(w1, w2)
}

// userAddr stands for a user's name in a throttle that counts addresses:
// an IPv6 /64 made of the name's hash.
func userAddr(name string) netip.Addr {
	sum := sha256.Sum256([]byte(strings.ToLower(name)))
	var b [16]byte
	copy(b[:8], sum[:8])
	return netip.AddrFrom16(b)
}

func rateErr(wait time.Duration) error {
	return &universe.Error{Code: universe.ERATELIMITED, Message: "too many failed sign-ins: retry after " + wait.Round(time.Second).String()}
}

// handleLogin is POST /api/login: the dashboard's session cookie for a
// user's name, password and code.
func (m *Master) handleLogin(c *gin.Context) {
	var req loginRequest
	if err := bindJSONStrict(c, &req); err != nil {
		fail(c, err)
		return
	}
	addr := m.clientAddr(c)
	k, err := m.signIn(req, addr)
	if err != nil {
		if universe.ErrorCode(err) == universe.ERATELIMITED {
			m.rejectRate(c, m.signinWait(req.Name, addr), "Too many failed sign-ins. Retry after %dms.")
			return
		}
		fail(c, err)
		return
	}
	cookie, err := m.sessions.Create(k)
	if err != nil {
		fail(c, err)
		return
	}
	m.setSessionCookie(c, cookie, int(auth.SessionLifetime.Seconds()))
	m.audit(k.ID(), "api", "sign in as "+req.Name, nil, nil)
	c.JSON(http.StatusOK, gin.H{"name": req.Name})
}

type meView = api.Me

// handleMe is GET /api/me: the caller's user and grants, and its key.
func (m *Master) handleMe(c *gin.Context) {
	k := callerKey(c)
	rec := k.Record()
	out := meView{Scope: string(k.Scope()), Key: k.Label(), Grants: []users.Grant{}, Permissions: rec.Permissions}
	e, err := m.user(rec.User)
	if err != nil {
		fail(c, errUnauthorized)
		return
	}
	out.Name, out.Admin, out.TOTP = e.user.Name, e.user.Admin, e.user.TOTPSecret != ""
	if gs, err := m.db.ListGrants(e.user.Name); err == nil && gs != nil {
		out.Grants = gs
	}
	c.JSON(http.StatusOK, out)
}

type meKeyCreate = api.UserKeyCreate

// handleMeKey is POST /api/me/keys: a key of the caller's user, with its
// rights or fewer (never more: a key made by a narrowed key is narrowed
// as much).
func (m *Master) handleMeKey(c *gin.Context) {
	var req meKeyCreate
	if err := bindJSONStrict(c, &req); err != nil {
		fail(c, err)
		return
	}
	nk, token, perms, err := m.createUserKey(c, req)
	if err != nil {
		fail(c, err)
		return
	}
	c.Set(ctxAuditDetail, "key="+nk.Label())
	c.JSON(http.StatusCreated, gin.H{"id": nk.ID(), "label": nk.Label(), "scope": nk.Scope(), "permissions": perms, "token": token})
}

// createUserKey makes a key of the caller's user (the API's and the
// dashboard's): its rights or fewer.
func (m *Master) createUserKey(c *gin.Context, req meKeyCreate) (*auth.Key, string, []string, error) {
	k := callerKey(c)
	rec := k.Record()
	e, err := m.user(rec.User)
	if err != nil || e.user.Disabled {
		return nil, "", nil, errUnauthorized
	}
	for _, p := range req.Permissions {
		if !users.ValidPermission(p) {
			return nil, "", nil, universe.Errorf(universe.EINVALID, "permissions: %q is not a permission", p)
		}
	}
	perms := req.Permissions
	if rec.Permissions != nil { // narrowed: the new key at most as narrow
		if perms == nil {
			perms = rec.Permissions
		}
		perms = slices.DeleteFunc(slices.Clone(perms), func(p string) bool { return !slices.Contains(rec.Permissions, p) })
		if len(perms) == 0 {
			perms = []string{}
		}
	}
	var expires time.Duration
	if req.ExpiresIn != "" {
		d, err := universe.ParseDuration(req.ExpiresIn)
		if err != nil || d <= 0 {
			return nil, "", nil, universe.Errorf(universe.EINVALID, "expiresIn: a duration such as 30d or 12h")
		}
		expires = d
	}
	scope := universe.ScopeMember
	if e.user.Admin && perms == nil {
		scope = universe.ScopeAll
	}
	nk, token, err := m.keys.CreateForUser(req.Label, scope, expires, auth.UserKey{User: e.user.Name, Permissions: perms}, nil)
	if err != nil {
		return nil, "", nil, err
	}
	return nk, token, perms, nil
}

// handleMeTOTP is POST /api/me/totp: a new secret to enrol (shown once;
// it counts once confirmed with a code).
func (m *Master) handleMeTOTP(c *gin.Context) {
	secret, url, err := m.totpStart(callerKey(c).User())
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"secret": secret, "otpauthUrl": url})
}

// totpStart begins name's enrolment: a new secret, pending until a code
// confirms it.
func (m *Master) totpStart(name string) (secret, url string, err error) {
	secret, url, err = users.NewTOTP(name)
	if err != nil {
		return "", "", err
	}
	if _, err := m.db.UpdateUser(name, func(u *users.User) error {
		if u.TOTPSecret != "" {
			return universe.Errorf(universe.ECONFLICT, "two-factor sign-in is on already: turn it off first")
		}
		u.TOTPPending = secret
		return nil
	}); err != nil {
		return "", "", err
	}
	m.usersChanged()
	return secret, url, nil
}

type codeRequest struct {
	Code string `json:"code"`
}

// handleMeTOTPConfirm turns two-factor sign-in on with a first code; the
// answer holds 10 single-use recovery codes, shown once.
func (m *Master) handleMeTOTPConfirm(c *gin.Context) {
	var req codeRequest
	if err := bindJSONStrict(c, &req); err != nil {
		fail(c, err)
		return
	}
	codes, err := m.totpConfirm(callerKey(c).User(), req.Code)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"recoveryCodes": codes})
}

// totpConfirm turns name's second factor on with a first code; the
// recovery codes are to be shown once.
func (m *Master) totpConfirm(name, code string) ([]string, error) {
	codes, hashes := users.NewRecoveryCodes(10)
	now := m.cfg.Now()
	_, err := m.db.UpdateUser(name, func(u *users.User) error {
		if u.TOTPPending == "" {
			return universe.Errorf(universe.ECONFLICT, "no enrolment under way: POST /api/me/totp first")
		}
		step, err := users.CheckTOTP(u.TOTPPending, strings.TrimSpace(code), now, 0)
		if err != nil {
			return universe.Errorf(universe.EINVALID, "wrong code: enter the code your app shows now")
		}
		u.TOTPSecret, u.TOTPPending, u.TOTPLastStep, u.RecoveryHashes = u.TOTPPending, "", step, hashes
		return nil
	})
	if err != nil {
		return nil, err
	}
	m.usersChanged()
	return codes, nil
}

// handleMeTOTPDelete turns two-factor sign-in off, with a current code.
func (m *Master) handleMeTOTPDelete(c *gin.Context) {
	var req codeRequest
	if err := bindJSONStrict(c, &req); err != nil {
		fail(c, err)
		return
	}
	if err := m.totpDisable(callerKey(c).User(), req.Code); err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// totpDisable turns name's second factor off, with a current code.
func (m *Master) totpDisable(name, code string) error {
	u, err := m.db.GetUser(name)
	if err != nil {
		return err
	}
	if u.TOTPSecret == "" {
		return universe.Errorf(universe.ECONFLICT, "two-factor sign-in is off")
	}
	if err := m.takeSecondFactor(name, code, m.cfg.Now()); err != nil {
		return universe.Errorf(universe.EFORBIDDEN, "wrong code")
	}
	if _, err := m.db.UpdateUser(name, func(u *users.User) error {
		u.TOTPSecret, u.TOTPPending, u.RecoveryHashes = "", "", nil
		return nil
	}); err != nil {
		return err
	}
	m.usersChanged()
	return nil
}

type passwordChange struct {
	Current  string `json:"current"`
	Password string `json:"password"`
}

// handleMePassword changes the caller's password (the current one
// first); its other sessions end.
func (m *Master) handleMePassword(c *gin.Context) {
	var req passwordChange
	if err := bindJSONStrict(c, &req); err != nil {
		fail(c, err)
		return
	}
	if err := m.changePassword(c, req); err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// changePassword changes the caller's password (the current one first);
// its other sessions end.
func (m *Master) changePassword(c *gin.Context, req passwordChange) error {
	name := callerKey(c).User()
	u, err := m.db.GetUser(name)
	if err != nil {
		return err
	}
	if !users.Verify(u.PasswordHash, req.Current) {
		return universe.Errorf(universe.EFORBIDDEN, "the current password is wrong")
	}
	if err := users.ValidatePassword(name, req.Password); err != nil {
		return err
	}
	hash, err := users.Hash(req.Password, users.Default)
	if err != nil {
		return err
	}
	if _, err := m.db.UpdateUser(name, func(u *users.User) error { u.PasswordHash = hash; u.Generation++; return nil }); err != nil {
		return err
	}
	m.usersChanged()
	self := callerKey(c).ID()
	for _, k := range m.keys.List() {
		if k.User == name && k.Login && k.ID != self {
			_, _ = m.keys.Revoke(k.ID)
		}
	}
	return nil
}

// passwordShown follows "Password" on the line that shows a generated
// password; the audit keeps the line masked.
const passwordShown = " (shown only now; change it with POST /api/me/password): "

// userCommands are the console's (and the Commands endpoint's) "user"
// commands: a user made there gets a generated password, shown once.
func (m *Master) userCommands() *console.Command {
	create := &console.Command{
		Name: "create", Usage: "user create <name> [--admin]",
		Summary: "make a user; its generated password is shown once",
		Run: func(_ context.Context, args []string, w console.Writer) error {
			var name string
			admin := false
			for _, a := range args {
				switch {
				case a == "--admin":
					admin = true
				case name == "" && !strings.HasPrefix(a, "-"):
					name = a
				default:
					return console.ErrUsage
				}
			}
			if name == "" {
				return console.ErrUsage
			}
			pw := users.NewPassword()
			u, err := m.createUser(userCreate{Name: name, Password: pw, Admin: admin})
			if err != nil {
				return err
			}
			role := "member"
			if u.Admin {
				role = "admin"
			}
			w.WriteLine(fmt.Sprintf("Created user %s (%s).", u.Name, role))
			w.WriteLine("Password" + passwordShown + pw)
			return nil
		},
	}
	list := &console.Command{
		Name: "list", Usage: "user list", Summary: "list the users",
		Run: func(_ context.Context, args []string, w console.Writer) error {
			if len(args) > 0 {
				return console.ErrUsage
			}
			list, err := m.db.ListUsers()
			if err != nil {
				return err
			}
			if len(list) == 0 {
				w.WriteLine("No users. Make one with: user create <name> [--admin]")
				return nil
			}
			for _, u := range list {
				role := "member"
				if u.Admin {
					role = "admin"
				}
				state := ""
				if u.Disabled {
					state = " (disabled)"
				}
				w.WriteLine(fmt.Sprintf("%-20s %s%s", u.Name, role, state))
			}
			return nil
		},
	}
	return &console.Command{Name: "user", Usage: "user <create|list>", Summary: "users of the dashboard and the API", Sub: []*console.Command{create, list}}
}
