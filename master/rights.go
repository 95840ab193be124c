package master

import (
	"sync"

	"github.com/gin-gonic/gin"
	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/master/auth"
	"github.com/universe-orchestrator/universe/master/users"
)

// What a route needs of a member (a user's key of scope MEMBER): one row a
// route, beside the router. ALL keys (and admins' keys) pass every row;
// PUBLIC and instance keys never reach these routes. A route without a row
// is an admin's only (TestEveryRouteHasARule fails the build for it).
type rule struct {
	perm string // the permission; "" with admin
	on   ruleOn
}

type ruleOn int

const (
	adminOnly  ruleOn = iota
	onInstance        // on the instance of :id (its grant or its configuration's)
	onConfig          // on the configuration of :name
	onBackup          // on the instance of the backup :backup
	anywhere          // held on anything: the handler narrows (lists, a create's body)
	onSchedule        // on the instance or configuration of the schedule :schedule
	self              // a user's own account (/api/me...): any user's key
)

// routeRules are keyed by method and gin's full path.
var routeRules = map[string]rule{
	"GET /api/keys":                                  {on: adminOnly},
	"POST /api/keys":                                 {on: adminOnly},
	"GET /api/keys/:key":                             {on: adminOnly},
	"DELETE /api/keys/:key":                          {on: adminOnly},
	"POST /api/commands/execute":                     {on: adminOnly},
	"GET /api/console":                               {on: adminOnly},
	"GET /api/audit":                                 {"audit.read", anywhere}, // the handler keeps what the member may see
	"GET /api/cluster/masters":                       {on: adminOnly},
	"POST /api/cluster/masters":                      {on: adminOnly},
	"DELETE /api/cluster/masters/:id":                {on: adminOnly},
	"GET /api/debug/pprof/*name":                     {on: adminOnly},
	"GET /api/configurations":                        {"config.read", anywhere},
	"GET /api/configurations/:name":                  {"config.read", onConfig},
	"PUT /api/configurations/:name":                  {"config.write", onConfig},
	"DELETE /api/configurations/:name":               {"config.write", onConfig},
	"GET /api/templates":                             {"template.read", anywhere},
	"POST /api/templates/sync":                       {on: adminOnly},
	"GET /api/templates/:group/:name":                {"template.read", anywhere},
	"POST /api/templates/:group/:name":               {on: adminOnly},
	"DELETE /api/templates/:group/:name":             {on: adminOnly},
	"GET /api/templates/:group/:name/files":          {"template.read", anywhere},
	"GET /api/templates/:group/:name/files/*path":    {"template.read", anywhere},
	"POST /api/templates/:group/:name/files/*path":   {on: adminOnly},
	"PUT /api/templates/:group/:name/files/*path":    {on: adminOnly},
	"PATCH /api/templates/:group/:name/files/*path":  {on: adminOnly},
	"DELETE /api/templates/:group/:name/files/*path": {on: adminOnly},
	"GET /api/templates/:group/:name/export":         {"template.read", anywhere},
	"POST /api/templates/:group/:name/export":        {"template.read", anywhere},
	"POST /api/templates/:group/:name/import":        {on: adminOnly},
	"POST /api/instances":                            {"instance.create", anywhere}, // the body's configuration: the handler
	"DELETE /api/instances/:id":                      {"instance.delete", onInstance},
	"PATCH /api/instances/:id/lifecycle":             {"", onInstance}, // power.<action>: the handler
	"POST /api/instances/:id/stop":                   {"power.stop", onInstance},
	"POST /api/instances/:id/execute":                {"console.write", onInstance},
	"POST /api/instances/:id/command":                {"console.write", onInstance},
	"GET /api/instances/:id/logs":                    {"console.read", onInstance},
	"GET /api/instances/:id/live-log":                {"console.read", onInstance},
	"GET /api/instances/:id/stats":                   {"stats.read", onInstance},
	"GET /api/instances/:id/debug/pprof/:name":       {on: adminOnly},
	"GET /api/instances/:id/files":                   {"file.list", onInstance},
	"GET /api/instances/:id/files/*path":             {"file.read", onInstance},
	"PUT /api/instances/:id/files/*path":             {"file.write", onInstance},
	"DELETE /api/instances/:id/files/*path":          {"file.delete", onInstance},
	"POST /api/instances/:id/files/*path":            {"file.write", onInstance},
	"POST /api/instances/:id/backups":                {"backup.create", onInstance},
	"GET /api/instances/:id/backups":                 {"backup.read", onInstance},
	"GET /api/configurations/:name/backups":          {"backup.read", onConfig},
	"GET /api/backups/:backup":                       {"backup.read", onBackup},
	"GET /api/backups/:backup/download":              {"backup.download", onBackup},
	"DELETE /api/backups/:backup":                    {"backup.delete", onBackup},
	"POST /api/backups/:backup/lock":                 {"backup.delete", onBackup}, // a lock keeps it from deletion
	"POST /api/backups/:backup/unlock":               {"backup.delete", onBackup},
	"POST /api/backups/:backup/restore":              {"backup.restore", onBackup},
	"POST /api/schedules":                            {"schedule.write", anywhere}, // the handler: on the body's target, and each task's permission
	"GET /api/schedules":                             {"schedule.read", anywhere},  // the handler keeps what the member may read
	"GET /api/schedules/preview":                     {"schedule.read", anywhere},
	"POST /api/instances/:id/drain":                  {"power.stop", onInstance},
	"GET /api/configurations/:name/scaling":          {"config.read", onConfig},
	"GET /api/schedules/:schedule":                   {"schedule.read", onSchedule},
	"PUT /api/schedules/:schedule":                   {"schedule.write", onSchedule}, // and the new body's, as a create
	"DELETE /api/schedules/:schedule":                {"schedule.write", onSchedule},
	"POST /api/schedules/:schedule/run":              {"schedule.write", onSchedule},
	"GET /api/schedules/:schedule/runs":              {"schedule.read", onSchedule},
	"GET /api/events":                                {"instance.read", anywhere}, // the handler keeps what the member may see
	"GET /api/events/live":                           {"instance.read", anywhere},
	"POST /api/webhooks":                             {on: adminOnly},
	"GET /api/webhooks":                              {on: adminOnly},
	"DELETE /api/webhooks/:webhook":                  {on: adminOnly},
	"GET /api/webhooks/:webhook/deliveries":          {on: adminOnly},
	"GET /api/cluster/nodes":                         {on: adminOnly},
	"POST /api/cluster/nodes":                        {on: adminOnly},
	"GET /api/cluster/nodes/:name":                   {on: adminOnly},
	"PATCH /api/cluster/nodes/:name":                 {on: adminOnly},
	"DELETE /api/cluster/nodes/:name":                {on: adminOnly},
	"POST /api/users":                                {on: adminOnly},
	"GET /api/users":                                 {on: adminOnly},
	"GET /api/users/:name":                           {on: adminOnly},
	"PATCH /api/users/:name":                         {on: adminOnly},
	"DELETE /api/users/:name":                        {on: adminOnly},
	"POST /api/users/:name/grants":                   {"user.grant", anywhere}, // what is granted, where: the handler
	"GET /api/users/:name/grants":                    {on: adminOnly},
	"DELETE /api/users/:name/grants/:grant":          {"user.grant", anywhere},
	"GET /api/me":                                    {on: self},
	"POST /api/me/keys":                              {on: self},
	"POST /api/me/totp":                              {on: self},
	"POST /api/me/totp/confirm":                      {on: self},
	"DELETE /api/me/totp":                            {on: self},
	"POST /api/me/password":                          {on: self},
}

// ctxRights holds the *users.Rights of a member's request.
const ctxRights = "universe.rights"

// authorize admits ALL keys to every route of the admin group, and a
// member as its route's rule says; others get 401 (insufficient scope),
// a member without the permission 403 naming it.
func (m *Master) authorize(c *gin.Context) {
	k := callerKey(c)
	rl, ok := routeRules[c.Request.Method+" "+c.FullPath()]
	if ok && rl.on == self {
		if s := k.Scope(); s != universe.ScopeAll && s != universe.ScopeMember {
			m.rejectScope(c)
			return
		}
		if k.User() == "" {
			fail(c, universe.Errorf(universe.EFORBIDDEN, "this route is a user's own: sign in as a user (a key not made by a user has no account)"))
			return
		}
		c.Next()
		return
	}
	switch k.Scope() {
	case universe.ScopeAll:
		c.Next()
		return
	case universe.ScopeMember:
	default:
		m.rejectScope(c)
		return
	}
	r, err := m.rightsOf(k)
	if err != nil {
		fail(c, errUnauthorized)
		return
	}
	if !ok || rl.on == adminOnly {
		fail(c, universe.Errorf(universe.EFORBIDDEN, "this needs an admin"))
		return
	}
	c.Set(ctxRights, r)
	switch rl.on {
	case onInstance:
		if rl.perm == "" {
			break // the handler asks for the permission (mayOnInstance)
		}
		if err := m.mayOnInstance(c, rl.perm, c.Param("id")); err != nil {
			fail(c, err)
			return
		}
	case onBackup:
		// A backup is its instance's: the instance's grant or its
		// configuration's. An unknown backup is 403 here, not 404: a
		// member learns nothing of backups it may not see.
		b, err := m.db.GetBackup(c.Param("backup"))
		if err != nil || !r.Allowed(rl.perm, b.InstanceID, b.Configuration) {
			fail(c, needs(rl.perm, "backup "+c.Param("backup")))
			return
		}
	case onSchedule:
		// Like a backup: an unknown schedule is 403 here, not 404.
		s, err := m.db.GetSchedule(c.Param("schedule"))
		if err != nil || !r.Allowed(rl.perm, s.InstanceID, m.scheduleConfig(s)) {
			fail(c, needs(rl.perm, "schedule "+c.Param("schedule")))
			return
		}
	case onConfig:
		if !r.Allowed(rl.perm, "", c.Param("name")) {
			fail(c, needs(rl.perm, "configuration "+c.Param("name")))
			return
		}
	case anywhere:
		if !r.Anywhere(rl.perm) {
			fail(c, needs(rl.perm, "anything"))
			return
		}
	}
	c.Next()
}

func needs(perm, where string) error {
	return universe.Errorf(universe.EFORBIDDEN, "this needs %s on %s", perm, where)
}

// callerRights is the rights of the request's member; nil for an ALL key
// (everything).
func callerRights(c *gin.Context) *users.Rights {
	if v, ok := c.Get(ctxRights); ok {
		return v.(*users.Rights)
	}
	return nil
}

// mayOnInstance says whether the caller holds perm on instance id (its
// grant, or its configuration's). Errors: EFORBIDDEN naming perm.
func (m *Master) mayOnInstance(c *gin.Context, perm, id string) error {
	r := callerRights(c)
	if r == nil {
		return nil
	}
	cfg := ""
	if in, err := m.instances.Get(id); err == nil {
		cfg = in.Info().ConfigurationName
	}
	if !r.Allowed(perm, id, cfg) {
		return needs(perm, "instance "+id)
	}
	return nil
}

// userCache keeps each user's record and rights between requests; any
// change of users or grants clears it.
type userCache struct {
	mu      sync.Mutex
	entries map[string]userEntry
}

type userEntry struct {
	user   users.User
	rights *users.Rights
}

// usersChanged clears the cache (a user or a grant was written, here or
// through the log).
func (m *Master) usersChanged() {
	m.userCache.mu.Lock()
	m.userCache.entries = nil
	m.userCache.mu.Unlock()
}

// user returns name's record and rights. Errors: ENOTFOUND; EUNAUTHORIZED
// when disabled.
func (m *Master) user(name string) (userEntry, error) {
	m.userCache.mu.Lock()
	e, ok := m.userCache.entries[name]
	m.userCache.mu.Unlock()
	if ok {
		return e, nil
	}
	u, err := m.db.GetUser(name)
	if err != nil {
		return userEntry{}, err
	}
	e.user = u
	if u.Admin {
		e.rights = users.AdminRights
	} else {
		gs, err := m.db.ListGrants(name)
		if err != nil {
			return userEntry{}, err
		}
		e.rights = users.NewRights(gs, nil)
	}
	m.userCache.mu.Lock()
	if m.userCache.entries == nil {
		m.userCache.entries = map[string]userEntry{}
	}
	m.userCache.entries[name] = e
	m.userCache.mu.Unlock()
	return e, nil
}

// rightsOf is what key k may do: its user's rights, narrowed to the key's
// permissions. Errors: the user is gone or disabled.
func (m *Master) rightsOf(k *auth.Key) (*users.Rights, error) {
	if k.User() == "" {
		return users.AdminRights, nil
	}
	rec := k.Record()
	e, err := m.user(rec.User)
	if err != nil {
		return nil, err
	}
	if e.user.Disabled {
		return nil, universe.Errorf(universe.EUNAUTHORIZED, "user %s is disabled", rec.User)
	}
	if rec.Permissions != nil {
		return e.rights.Narrowed(rec.Permissions), nil
	}
	return e.rights, nil
}
