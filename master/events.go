package master

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"slices"
	"strconv"
	"sync"

	"github.com/coder/websocket"
	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/backup"
	"github.com/universe-orchestrator/universe/event"
	"github.com/universe-orchestrator/universe/instance"
)

// The event log (in this master's memory, bounded) and the webhooks that
// receive its events.

// eventTypes are the types a webhook may ask for.
var eventTypes = []string{
	api.EventInstanceStarted, api.EventInstanceStopped, api.EventInstanceCrashed, api.EventInstanceRestarted,
	api.EventInstanceCrashLoop, api.EventInstanceLost, api.EventInstanceReplaced, api.EventNodeLost, api.EventNodeBack,
	api.EventBackupCompleted, api.EventBackupFailed, api.EventRestoreCompleted, api.EventRestoreFailed,
	api.EventScheduleFailed, api.EventKeyCreated, api.EventKeyRevoked, api.EventScalingDecision,
}

type eventState struct {
	log   *event.Log
	hooks *event.Dispatcher
	mu    sync.Mutex
	nodes map[string]bool // the reachability last told of each node
}

func (m *Master) newEvents() {
	deliveries := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "universe_webhook_deliveries_total",
		Help: "Webhook deliveries ended, by outcome (ok, failed, dropped).",
	}, []string{"outcome"})
	events := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "universe_events_total",
		Help: "Events added to the event log, by type.",
	}, []string{"type"})
	m.metrics.reg.MustRegister(deliveries, events)
	for _, o := range []string{"ok", "failed", "dropped"} {
		deliveries.WithLabelValues(o)
	}
	m.ev = &eventState{log: event.NewLog(0, m.cfg.Now), hooks: event.NewDispatcher(m.log, m.cfg.WebhooksAllowPrivate), nodes: map[string]bool{}}
	m.ev.log.Advance(m.eventClock())
	m.ev.hooks.Outcome = func(o string) { deliveries.WithLabelValues(o).Inc() }
	m.ev.log.OnEvent(func(e api.Event) {
		events.WithLabelValues(e.Type).Inc()
		m.ev.hooks.Send(e)
	})
	m.keys.OnChange(func(rec universe.KeyRecord, created bool) {
		if rec.Scope == universe.ScopeInstance || rec.Login {
			return // instances' own keys and sign-ins' keys come and go with them
		}
		if !m.leads() {
			return // every master applies the change; the leader tells of it
		}
		typ, what := api.EventKeyRevoked, "revoked"
		if created {
			typ, what = api.EventKeyCreated, "created"
		}
		m.ev.log.Add(api.Event{Type: typ, Message: "key " + rec.Label + " (" + string(rec.Scope) + ") " + what,
			Data: map[string]any{"keyId": rec.ID, "label": rec.Label, "scope": rec.Scope}})
	})
	m.reloadWebhooks()
}

// leads says whether this master leads its cluster (a master alone
// always does): the leader alone tells of changes every master applies.
func (m *Master) leads() bool {
	if !m.cfg.HA.Enabled() {
		return true
	}
	// (haNode, not m.ha: the log replays into the state, and tells of
	// keys, before openHA has set m.ha; a master not yet leading tells
	// nothing, so a restart does not send old events to webhooks again.)
	n := m.haNode.Load()
	return n != nil && n.IsLeader()
}

// eventClock is where a log's numbering starts when this master starts or
// gains the leadership (event.Log.Advance).
func (m *Master) eventClock() uint64 { return uint64(max(m.cfg.Now().UnixMicro(), 1)) }

// reloadWebhooks gives the dispatcher the webhooks stored.
func (m *Master) reloadWebhooks() {
	hooks, err := m.db.Webhooks()
	if err != nil {
		m.log.Warn("webhooks", "err", err)
		return
	}
	m.ev.hooks.Set(hooks)
}

// instanceEvent adds an instance's event; its data holds the instance's
// state after what happened ("state") and why ("stateReason", when it
// says), so that a follower (the dashboard's instances page) need not
// fetch the list to show them.
func (m *Master) instanceEvent(typ string, info api.InstanceInfo, message string, data map[string]any) {
	d := make(map[string]any, len(data)+2)
	for k, v := range data {
		d[k] = v
	}
	d["state"] = info.State
	if info.Reason != "" {
		d["stateReason"] = info.Reason
	}
	m.ev.log.Add(api.Event{Type: typ, InstanceID: info.ID, Configuration: info.ConfigurationName, Node: info.WrapperNodeID, Message: message, Data: d})
}

// nodeEvent tells of a node's reachability when it changes.
func (m *Master) nodeEvent(node string, reachable bool) {
	if !m.leads() {
		return
	}
	m.ev.mu.Lock()
	was, known := m.ev.nodes[node]
	m.ev.nodes[node] = reachable
	m.ev.mu.Unlock()
	if known && was == reachable || !known && reachable {
		return
	}
	if reachable {
		m.ev.log.Add(api.Event{Type: api.EventNodeBack, Node: node, Message: "node " + node + " is reachable again"})
	} else {
		m.ev.log.Add(api.Event{Type: api.EventNodeLost, Node: node, Message: "node " + node + " is not reachable"})
	}
}

func (m *Master) backupEvent(b api.Backup) {
	e := api.Event{Type: api.EventBackupCompleted, InstanceID: b.InstanceID, Configuration: b.Configuration,
		Message: "backup " + strconv.Quote(b.Name) + " completed", Data: map[string]any{"backupId": b.ID, "sizeBytes": b.SizeBytes}}
	if b.State != api.BackupCompleted {
		e.Type, e.Message = api.EventBackupFailed, "backup "+strconv.Quote(b.Name)+" failed: "+b.Reason
	}
	m.ev.log.Add(e)
}

func (m *Master) restoreEvent(b api.Backup, err error) {
	e := api.Event{Type: api.EventRestoreCompleted, InstanceID: b.InstanceID, Configuration: b.Configuration,
		Message: "backup " + strconv.Quote(b.Name) + " restored", Data: map[string]any{"backupId": b.ID}}
	if err != nil {
		e.Type, e.Message = api.EventRestoreFailed, "restore of backup "+strconv.Quote(b.Name)+" failed: "+backup.Reason(err)
	}
	m.ev.log.Add(e)
}

func (m *Master) scheduleFailedEvent(sc api.Schedule, run api.ScheduleRun) {
	m.ev.log.Add(api.Event{Type: api.EventScheduleFailed, InstanceID: sc.InstanceID, Configuration: sc.Configuration,
		Message: "schedule " + strconv.Quote(sc.Name) + " failed: " + run.Reason, Data: map[string]any{"scheduleId": sc.ID, "runId": run.ID}})
}

func (m *Master) handleEventList(c *gin.Context) {
	f := event.Filter{Type: c.Query("type"), InstanceID: c.Query("instanceId")}
	if s := c.Query("since"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			fail(c, universe.Errorf(universe.EINVALID, "since must be a sequence number"))
			return
		}
		f.Since = n
	}
	if s := c.Query("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 10000 {
			fail(c, universe.Errorf(universe.EINVALID, "limit must be 1 to 10000"))
			return
		}
		f.Limit = n
	}
	f.Keep = m.eventsVisible(c)
	writeJSONArray(c, m.ev.log.List(f))
}

// eventsVisible says which events the caller may see: all for an admin;
// for a member, those of the instances (and configurations) it may read.
func (m *Master) eventsVisible(c *gin.Context) func(api.Event) bool {
	r := callerRights(c)
	if r == nil {
		return nil
	}
	return func(e api.Event) bool {
		return (e.InstanceID != "" || e.Configuration != "") && r.Allowed("instance.read", e.InstanceID, e.Configuration)
	}
}

// handleEventsLive follows the event log over a WebSocket: a frame an
// event (api.EventFrame), a gap frame for events this follower missed;
// each message holds one or more frames, a line each.
func (m *Master) handleEventsLive(c *gin.Context) {
	var since uint64
	if s := c.Query("since"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			fail(c, universe.Errorf(universe.EINVALID, "since must be a sequence number"))
			return
		}
		since = n
	} else {
		since = m.ev.log.Last() // from now on
	}
	keep := m.eventsVisible(c)
	m.serveWS(c, "events", 1024, func(ctx context.Context, conn *websocket.Conn) error {
		ctx = conn.CloseRead(ctx)
		sub := m.ev.log.Subscribe(since)
		sub.Keep = keep
		var buf []byte
		for {
			frames, ok := sub.NextRaw(ctx, 256)
			if !ok {
				return ctx.Err()
			}
			// Frames go out a message of up to eventsMessageBytes each,
			// one per line: a follower that keeps up gets a message an
			// event; one that reads in bursts, fewer and larger ones.
			for len(frames) > 0 {
				buf = buf[:0]
				for len(frames) > 0 && (len(buf) == 0 || len(buf)+len(frames[0]) < eventsMessageBytes) {
					if len(buf) > 0 {
						buf = append(buf, '\n')
					}
					buf = append(buf, frames[0]...)
					frames = frames[1:]
				}
				wctx, cancel := context.WithTimeout(ctx, liveLogWriteTimeout)
				err := conn.Write(wctx, websocket.MessageText, buf)
				cancel()
				if err != nil {
					return err
				}
			}
		}
	})
}

// eventsMessageBytes bounds a message of /api/events/live (a single frame
// larger than this goes alone).
const eventsMessageBytes = 64 << 10

type webhookCreate struct {
	URL    string   `json:"url"`
	Events []string `json:"events"`
	Format string   `json:"format"`
}

func (m *Master) handleWebhookCreate(c *gin.Context) {
	var req webhookCreate
	if err := bindJSONStrict(c, &req); err != nil {
		fail(c, err)
		return
	}
	w, err := m.createWebhook(req, byOf(c))
	if err != nil {
		fail(c, err)
		return
	}
	c.Set(ctxAuditDetail, "webhook="+w.ID)
	c.JSON(http.StatusCreated, w) // the secret, this once
}

// createWebhook checks and stores a webhook (the API's and the
// dashboard's); the one answered holds its secret.
func (m *Master) createWebhook(req webhookCreate, by string) (api.Webhook, error) {
	if err := event.CheckURL(req.URL, m.cfg.WebhooksAllowPrivate); err != nil {
		return api.Webhook{}, err
	}
	if req.Format == "" {
		req.Format = "json"
	}
	if req.Format != "json" && req.Format != "discord" {
		return api.Webhook{}, universe.Errorf(universe.EINVALID, "format: json or discord")
	}
	if len(req.Events) == 0 || len(req.Events) > len(eventTypes) {
		return api.Webhook{}, universe.Errorf(universe.EINVALID, "events: the types to send, or [\"*\"]")
	}
	for _, t := range req.Events {
		if t != "*" && !slices.Contains(eventTypes, t) {
			return api.Webhook{}, universe.Errorf(universe.EINVALID, "events: unknown type %q", t)
		}
	}
	w := api.Webhook{ID: newBackupishID(), URL: req.URL, Events: req.Events, Format: req.Format, CreatedAt: m.cfg.Now().UTC(), By: by, Secret: event.NewSecret()}
	if err := m.db.PutWebhook(w); err != nil {
		return api.Webhook{}, err
	}
	m.reloadWebhooks()
	return w, nil
}

func (m *Master) handleWebhookList(c *gin.Context) {
	hooks, err := m.db.Webhooks()
	if err != nil {
		fail(c, err)
		return
	}
	for i := range hooks {
		hooks[i].Secret = ""
	}
	writeJSONArray(c, hooks)
}

func (m *Master) handleWebhookDelete(c *gin.Context) {
	if err := m.db.DeleteWebhook(c.Param("webhook")); err != nil {
		fail(c, err)
		return
	}
	m.reloadWebhooks()
	c.Status(http.StatusNoContent)
}

func (m *Master) handleWebhookDeliveries(c *gin.Context) {
	hooks, err := m.db.Webhooks()
	if err != nil {
		fail(c, err)
		return
	}
	if !slices.ContainsFunc(hooks, func(w api.Webhook) bool { return w.ID == c.Param("webhook") }) {
		fail(c, universe.Errorf(universe.ENOTFOUND, "no webhook %q", c.Param("webhook")))
		return
	}
	writeJSONArray(c, m.ev.hooks.Deliveries(c.Param("webhook")))
}

// newBackupishID is a random id of 16 hex digits.
func newBackupishID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// instanceHooks are the metrics' hooks of the instances, and their events.
func (m *Master) instanceHooks() instance.Hooks {
	h := m.metrics.instanceHooks()
	h.Event = m.instanceEvent
	h.Reported = func(string) { m.scale.s.Trigger() }
	h.Health = func(api.InstanceInfo) { m.scale.s.Trigger() }
	return h
}
