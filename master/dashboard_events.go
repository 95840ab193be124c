package master

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"
	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/event"
)

// The dashboard's Events page (the newest events, filtered, followed live
// by the page's script) and its Settings page (the webhooks: create with
// the secret shown once, deliveries, delete).

// uiEventRows is how many events the Events page shows (and keeps while
// following).
const uiEventRows = 200

type eventsData struct {
	Events       []api.Event
	Types        []string
	Type, InstID string
	Last         uint64 // the log's newest number: the page follows from it
}

func (m *Master) uiEvents(c *gin.Context) {
	d := eventsData{Types: eventTypes, Type: c.Query("type"), InstID: strings.TrimSpace(c.Query("instance")), Last: m.ev.log.Last()}
	if d.Type != "" && !slices.Contains(eventTypes, d.Type) {
		d.Type = ""
	}
	d.Events = m.ev.log.Recent(event.Filter{Type: d.Type, InstanceID: d.InstID, Keep: m.eventsVisible(c)}, uiEventRows)
	m.render(c, http.StatusOK, "events", uiPage{Title: "Events", Nav: "events", Data: d})
}

type settingsData struct {
	Hooks   []webhookRow
	Types   []string
	Created *api.Webhook // just made: its secret, this once
	Form    webhookCreate
	Error   string
}

type webhookRow struct {
	api.Webhook
	Shown      string // the URL without what may be a credential
	Deliveries []api.Delivery
	Failed     int
}

// shownURL is a webhook's URL as the dashboard shows it: no user info, no
// query, and path segments long enough to be a token (Discord's) hidden.
func shownURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	segs := strings.Split(u.Path, "/")
	for i, s := range segs {
		if len(s) > 24 {
			segs[i] = s[:4] + "…"
		}
	}
	out := u.Scheme + "://" + u.Host + strings.Join(segs, "/")
	if u.RawQuery != "" {
		out += "?…"
	}
	return out
}

func (m *Master) settingsData(form webhookCreate, why string) (settingsData, error) {
	hooks, err := m.db.Webhooks()
	if err != nil {
		return settingsData{}, err
	}
	d := settingsData{Types: eventTypes, Form: form, Error: why}
	for _, h := range hooks {
		h.Secret = ""
		r := webhookRow{Webhook: h, Shown: shownURL(h.URL)}
		all := m.ev.hooks.Deliveries(h.ID)
		for _, del := range all {
			if del.Outcome == "failed" || del.Outcome == "dropped" {
				r.Failed++
			}
		}
		if len(all) > 20 {
			all = all[:20]
		}
		r.Deliveries = all
		d.Hooks = append(d.Hooks, r)
	}
	return d, nil
}

func (m *Master) uiSettings(c *gin.Context) {
	m.uiSettingsWith(c, webhookCreate{Events: []string{"*"}, Format: "json"}, "", nil, http.StatusOK)
}

func (m *Master) uiSettingsWith(c *gin.Context, form webhookCreate, why string, created *api.Webhook, status int) {
	d, err := m.settingsData(form, why)
	if err != nil {
		m.uiFail(c, "settings", "/ui/instances", err)
		return
	}
	d.Created = created
	m.render(c, status, "settings", uiPage{Title: "Settings", Nav: "settings", Data: d})
}

func (m *Master) uiWebhookCreate(c *gin.Context) {
	req := webhookCreate{URL: strings.TrimSpace(c.PostForm("url")), Events: c.PostFormArray("events"), Format: c.PostForm("format")}
	if slices.Contains(req.Events, "*") || len(req.Events) == 0 && c.PostForm("all") == "on" {
		req.Events = []string{"*"}
	}
	w, err := m.createWebhook(req, byOf(c))
	m.dashAudit(c, "webhook create webhook="+w.ID, err)
	if err != nil {
		if universe.ErrorCode(err) == universe.EINVALID {
			m.uiSettingsWith(c, req, universe.ErrorMessage(err), nil, http.StatusBadRequest)
			return
		}
		m.uiFail(c, "settings", "/ui/settings", err)
		return
	}
	m.uiSettingsWith(c, webhookCreate{Events: []string{"*"}, Format: "json"}, "", &w, http.StatusCreated)
}

func (m *Master) uiWebhookDelete(c *gin.Context) {
	err := m.db.DeleteWebhook(c.Param("webhook"))
	if err == nil {
		m.reloadWebhooks()
	}
	m.dashAudit(c, "webhook delete webhook="+c.Param("webhook"), err)
	if err != nil {
		m.uiFail(c, "settings", "/ui/settings", err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/ui/settings")
}
