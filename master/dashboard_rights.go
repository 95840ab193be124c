package master

import (
	"net/http"

	"github.com/gin-gonic/gin"
	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/master/users"
)

// What a dashboard page or form needs of a member, one row a route, like
// routeRules for the API: the same rights, the same answers (a page a
// member may not see is a 403 page naming the permission). An admin (an
// ALL key's session or an admin user's) passes every row. A route without
// a row is an admin's (TestEveryUIRouteHasARule fails the build for it).
var uiRules = map[string]rule{
	"GET /ui/session":   {on: self},
	"GET /ui/instances": {"instance.read", anywhere}, // the list holds what the member may read
	// The handlers check each instance (the configuration's
	// instance.create; each one's power.<action>).
	"POST /ui/instances":                                        {"instance.create", anywhere},
	"POST /ui/instances/bulk":                                   {"instance.read", anywhere},
	"GET /ui/instances/:id":                                     {"instance.read", onInstance},
	"POST /ui/instances/:id/power":                              {"instance.read", onInstance},
	"POST /ui/instances/:id/drain":                              {"power.stop", onInstance},
	"POST /ui/instances/:id/command":                            {"console.write", onInstance},
	"GET /ui/instances/:id/log.txt":                             {"console.read", onInstance},
	"GET /ui/instances/:id/files":                               {"file.list", onInstance},
	"POST /ui/instances/:id/files/upload":                       {"file.write", onInstance},
	"POST /ui/instances/:id/files/save":                         {"file.write", onInstance},
	"POST /ui/instances/:id/files/delete":                       {"file.delete", onInstance},
	"POST /ui/instances/:id/files/new":                          {"file.write", onInstance},
	"POST /ui/instances/:id/files/rename":                       {"file.write", onInstance},
	"POST /ui/instances/:id/files/unzip":                        {"file.write", onInstance},
	"GET /ui/instances/:id/backups":                             {"backup.read", onInstance},
	"POST /ui/instances/:id/backups":                            {"backup.create", onInstance},
	"POST /ui/instances/:id/backups/:backup/:action":            {"backup.read", onInstance}, // and the action's own
	"GET /ui/instances/:id/schedules":                           {"schedule.read", onInstance},
	"POST /ui/instances/:id/schedules":                          {"schedule.write", onInstance},
	"POST /ui/instances/:id/schedules/:schedule/:action":        {"schedule.read", onInstance}, // and schedule.write on the schedule: the handler
	"GET /ui/instances/:id/members":                             {"user.grant", onInstance},
	"POST /ui/instances/:id/members":                            {"user.grant", onInstance},
	"POST /ui/instances/:id/members/:grant/revoke":              {"user.grant", onInstance},
	"GET /ui/configurations":                                    {"config.read", anywhere},
	"GET /ui/configurations/:name":                              {"config.read", onConfig},
	"POST /ui/configurations/:name":                             {"config.write", onConfig},
	"POST /ui/configurations/:name/delete":                      {"config.write", onConfig},
	"POST /ui/configurations/:name/schedules":                   {"schedule.write", onConfig},
	"POST /ui/configurations/:name/schedules/:schedule/:action": {"schedule.read", onConfig}, // the same
	"POST /ui/configurations/:name/members":                     {"user.grant", onConfig},
	"POST /ui/configurations/:name/members/:grant/revoke":       {"user.grant", onConfig},
	"GET /ui/account":                                           {on: self},
	"POST /ui/account/password":                                 {on: self},
	"POST /ui/account/totp":                                     {on: self},
	"GET /ui/account/totp.png":                                  {on: self},
	"POST /ui/account/totp/confirm":                             {on: self},
	"POST /ui/account/totp/disable":                             {on: self},
	"POST /ui/account/keys":                                     {on: self},
	"POST /ui/account/keys/:key/revoke":                         {on: self},
	"GET /ui/templates":                                         {on: adminOnly},
	"POST /ui/templates":                                        {on: adminOnly},
	"GET /ui/templates/:group/:name":                            {on: adminOnly},
	"POST /ui/templates/:group/:name/upload":                    {on: adminOnly},
	"POST /ui/templates/:group/:name/import":                    {on: adminOnly},
	"POST /ui/templates/:group/:name/save":                      {on: adminOnly},
	"POST /ui/templates/:group/:name/delete":                    {on: adminOnly},
	"POST /ui/templates/:group/:name/remove":                    {on: adminOnly},
	"GET /ui/keys":                                              {on: adminOnly},
	"POST /ui/keys":                                             {on: adminOnly},
	"POST /ui/keys/:key/revoke":                                 {on: adminOnly},
	"GET /ui/audit":                                             {"audit.read", anywhere},    // what the member may see
	"GET /ui/events":                                            {"instance.read", anywhere}, // the same
	"GET /ui/settings":                                          {on: adminOnly},
	"POST /ui/settings/webhooks":                                {on: adminOnly},
	"POST /ui/settings/webhooks/:webhook/delete":                {on: adminOnly},
	"GET /ui/nodes":                                             {on: adminOnly},
	"POST /ui/nodes":                                            {on: adminOnly},
	"POST /ui/nodes/:name":                                      {on: adminOnly},
	"GET /ui/users":                                             {on: adminOnly},
	"POST /ui/users":                                            {on: adminOnly},
	"POST /ui/users/:user/:action":                              {on: adminOnly},
	"POST /ui/users/:user/grants/:grant/revoke":                 {on: adminOnly},
}

// uiAuthorize admits an admin's session to every page, and a member's as
// its page's row says (a 403 page naming what it lacks otherwise).
func (m *Master) uiAuthorize(c *gin.Context) {
	k := callerKey(c)
	rl, ok := uiRules[c.Request.Method+" "+c.FullPath()]
	if k.Scope() == universe.ScopeAll {
		c.Next()
		return
	}
	r, err := m.rightsOf(k)
	if err != nil {
		m.setSessionCookie(c, "", -1)
		c.Redirect(http.StatusSeeOther, "/ui/")
		c.Abort()
		return
	}
	c.Set(ctxRights, r)
	var why error
	switch {
	case ok && rl.on == self:
	case !ok || rl.on == adminOnly:
		why = universe.Errorf(universe.EFORBIDDEN, "this page is for admins")
	case rl.on == onInstance:
		why = m.mayOnInstance(c, rl.perm, c.Param("id"))
	case rl.on == onConfig:
		if !r.Allowed(rl.perm, "", c.Param("name")) {
			why = needs(rl.perm, "configuration "+c.Param("name"))
		}
	case rl.on == anywhere:
		if !r.Anywhere(rl.perm) {
			why = needs(rl.perm, "anything")
		}
	}
	if why != nil {
		if c.FullPath() == "/ui/session" || isUpgrade(c.Request) {
			fail(c, why)
			return
		}
		m.uiFail(c, "", "/ui/instances", why)
		c.Abort()
		return
	}
	c.Next()
}

// uiRights is what a page's template asks of the caller's rights (nil
// rights: an admin's session).
type uiRights struct {
	r    *users.Rights
	user string // the signed-in user ("" for a key's session)
}

// Admin says whether the caller may do everything.
func (u uiRights) Admin() bool { return u.r == nil || u.r.Admin }

// User is the signed-in user's name ("" for a key's session).
func (u uiRights) User() string { return u.user }

// Can says whether the caller holds perm on the instance id of
// configuration cfg (id "": on the configuration).
func (u uiRights) Can(perm, id, cfg string) bool { return u.r == nil || u.r.Allowed(perm, id, cfg) }

// Anywhere says whether the caller holds perm on anything.
func (u uiRights) Anywhere(perm string) bool { return u.r == nil || u.r.Anywhere(perm) }

// rightsFor is the template's view of c's caller.
func rightsFor(c *gin.Context) uiRights {
	u := uiRights{r: callerRights(c)}
	if v, ok := c.Get(ctxKey); ok && v != nil {
		u.user = callerKey(c).User()
	}
	return u
}
