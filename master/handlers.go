package master

import (
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
)

func (m *Master) handlePing(c *gin.Context) {
	p := api.Ping{Status: "ok"}
	if m.ha != nil {
		leader := m.ha.IsLeader()
		p.Leader = &leader
		if leader {
			p.LeaderURL = m.baseURL
		} else if l, ok := m.ha.Leader(c.Request.Context()); ok {
			p.LeaderURL = l.APIURL
		}
	}
	c.JSON(http.StatusOK, p)
}

// handleNode answers public facts about this node: version, uptime and
// instance counts. Nothing in it is a path, a command or a secret.
func (m *Master) handleNode(c *gin.Context) {
	now := m.cfg.Now()
	// Every state is reported, at zero too.
	counts := api.InstanceCounts{ByState: m.instances.Counts()}
	for _, n := range counts.ByState {
		counts.Total += n
	}
	answerJSON(c, &api.Node{
		Version:   m.cfg.Version,
		NodeID:    m.cfg.NodeID,
		StartedAt: m.startedAt.UnixMilli(),
		UptimeMs:  now.Sub(m.startedAt).Milliseconds(),
		Instances: counts,
		Limits:    m.instances.Limits(),
		Runtimes:  m.instances.RuntimeInfos(),
	})
}

// handleAuth says who the caller is and, for PUBLIC keys, how much of the
// rate window is left (after this call).
func (m *Master) handleAuth(c *gin.Context) {
	k := callerKey(c)
	out := api.Auth{ID: k.ID(), Label: k.Label(), Scope: string(k.Scope()), ExpiresAt: millis(k.ExpiresAt())}
	if k.Scope() == universe.ScopePublic {
		d := m.limiter.Peek(k.ID(), m.cfg.Now())
		out.RateLimit = &api.RateLimit{
			Limit: d.Limit, Remaining: d.Remaining,
			WindowMs: m.limiter.Rate().Window.Milliseconds(), ResetMs: ceilDiv(d.Reset, time.Millisecond),
		}
	}
	c.JSON(http.StatusOK, out)
}

func (m *Master) handleAuthVerify(c *gin.Context) {
	k := callerKey(c)
	c.JSON(http.StatusOK, api.Auth{ID: k.ID(), Label: k.Label(), Scope: string(k.Scope())})
}

func (m *Master) handleKeyList(c *gin.Context) {
	now := m.cfg.Now()
	out := []api.Key{}
	for _, r := range m.keys.List() {
		out = append(out, keyJSON(r, now))
	}
	c.JSON(http.StatusOK, out)
}

func (m *Master) handleKeyGet(c *gin.Context) {
	k, err := m.keys.Get(c.Param("key"))
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, keyJSON(k.Record(), m.cfg.Now()))
}

func (m *Master) handleKeyCreate(c *gin.Context) {
	var req api.KeyCreateRequest
	if err := bindJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	if req.Label == "" || req.Scope == "" {
		fail(c, universe.Errorf(universe.EINVALID, "label and scope are required"))
		return
	}
	scope, err := universe.ParseScope(req.Scope)
	if err != nil {
		fail(c, err)
		return
	}
	var expiresIn time.Duration
	if req.ExpiresIn != "" {
		if expiresIn, err = universe.ParseDuration(req.ExpiresIn); err != nil {
			fail(c, err)
			return
		}
	}
	// The key and its audit entry are one transaction.
	detail := "label=" + req.Label + " scope=" + string(scope)
	k, token, err := m.keys.CreateAudited(req.Label, scope, expiresIn, func(universe.KeyRecord) universe.AuditEntry {
		return m.auditEntry(callerKey(c).ID(), "rest", "POST /api/keys "+detail, nil, nil)
	})
	if err != nil {
		c.Set(ctxAuditDetail, detail)
		fail(c, err)
		return
	}
	c.Set(ctxAudited, true)
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, api.KeyCreated{Key: keyJSON(k.Record(), m.cfg.Now()), Token: token})
}

func (m *Master) handleKeyRevoke(c *gin.Context) {
	ref := c.Param("key")
	rec, err := m.keys.Revoke(ref)
	if err != nil {
		fail(c, err)
		return
	}
	c.Set(ctxAuditDetail, "label="+rec.Label)
	c.Status(http.StatusNoContent)
}

// handleAuditList returns the newest audit entries (?limit=1..1000, default 100).
func (m *Master) handleAuditList(c *gin.Context) {
	limit := 100
	if s := c.Query("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			fail(c, universe.Errorf(universe.EINVALID, "limit must be a whole number from 1 to 1000"))
			return
		}
		limit = n
	}
	entries, err := m.auditFor(c, limit)
	if err != nil {
		fail(c, err)
		return
	}
	if entries == nil {
		entries = []universe.AuditEntry{}
	}
	c.JSON(http.StatusOK, entries)
}

// auditFor is the newest limit audit entries the caller may see: all for
// an admin; for a member, its own and those on what it holds audit.read.
func (m *Master) auditFor(c *gin.Context, limit int) ([]universe.AuditEntry, error) {
	r := callerRights(c)
	if r == nil {
		return m.db.ListAudit(limit)
	}
	entries, err := m.db.ListAudit(10000) // the newest it may see among more
	if err != nil {
		return nil, err
	}
	me := callerKey(c).User()
	entries = slices.DeleteFunc(entries, func(e universe.AuditEntry) bool {
		return e.User != me && !((e.InstanceID != "" || e.Configuration != "") && r.Allowed("audit.read", e.InstanceID, e.Configuration))
	})
	return entries[:min(len(entries), limit)], nil
}

func keyJSON(r universe.KeyRecord, now time.Time) api.Key {
	return api.Key{
		ID: r.ID, Label: r.Label, Scope: string(r.Scope),
		CreatedAt: millis(r.CreatedAt), LastUsedAt: millis(r.LastUsedAt), ExpiresAt: millis(r.ExpiresAt),
		Expired: r.Expired(now), Instance: r.Instance,
	}
}

func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}
