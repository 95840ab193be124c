package master

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/schedule"
)

// The dashboard's schedules: the Schedules tab of an instance (its own and
// its configuration's) and the Schedules panel of a configuration, each
// schedule with its next five run times and last run; a form for a
// schedule of one task (a configuration's may roll a restart), with a cron
// helper that shows the next five times as the expression is typed; run
// now, enable, disable, delete.

type schedulesData struct {
	// Base is the page the panel is on (/ui/instances/ID or
	// /ui/configurations/NAME); its forms post under Base+"/schedules".
	Base          string
	Configuration bool // on a configuration's page: rolling restarts offered
	Write         bool // the caller may add and change them (else: read only)
	List          []scheduleRow
	// Form holds what was sent when it was refused, Error why.
	Form  scheduleForm
	Error string
}

type scheduleForm struct {
	Name, Cron, Timezone, Type, Payload, MaxUnavailable string
}

type scheduleRow struct {
	api.Schedule
	Mine  bool // the page's own (else its configuration's)
	Next  []time.Time
	Last  *api.ScheduleRun
	Runs  []api.ScheduleRun // the latest, newest first (the history)
	Tasks string
}

var defaultScheduleForm = scheduleForm{Cron: "0 4 * * *", Timezone: "UTC", Type: "power", Payload: "restart", MaxUnavailable: "1"}

// schedulesFor lists the schedules of an instance (with its
// configuration's) or, with id "", of a configuration.
func (m *Master) schedulesFor(c *gin.Context, id, configuration string, form scheduleForm, why string) (*schedulesData, error) {
	all, err := m.db.Schedules()
	if err != nil {
		return nil, err
	}
	r := callerRights(c)
	sd := &schedulesData{Form: form, Error: why, Configuration: id == "", Write: r == nil || r.Allowed("schedule.write", id, configuration)}
	if id != "" {
		sd.Base = "/ui/instances/" + url.PathEscape(id)
	} else {
		sd.Base = "/ui/configurations/" + url.PathEscape(configuration)
	}
	now := m.cfg.Now()
	for _, s := range all {
		mine := s.InstanceID == id && id != "" || id == "" && s.Configuration == configuration
		if !mine && s.Configuration != configuration {
			continue
		}
		if r != nil && !r.Allowed("schedule.read", s.InstanceID, configuration) {
			continue
		}
		row := scheduleRow{Schedule: s, Mine: mine}
		if s.Enabled {
			row.Next = nextRuns(s.Cron, s.Timezone, now, 5)
		}
		if runs, err := m.db.Runs(s.ID); err == nil && len(runs) > 0 {
			row.Last = &runs[0]
			row.Runs = runs[:min(len(runs), 10)]
		}
		var tasks []string
		for _, t := range s.Tasks {
			tasks = append(tasks, strings.TrimSpace(t.Type+" "+t.Payload))
		}
		row.Tasks = strings.Join(tasks, " → ")
		sd.List = append(sd.List, row)
	}
	return sd, nil
}

// nextRuns is a cron expression's next n times after now (none when it
// does not parse).
func nextRuns(expr, tz string, now time.Time, n int) []time.Time {
	spec, err := schedule.Parse(expr, tz)
	if err != nil {
		return nil
	}
	var out []time.Time
	t := now
	for range n {
		t = spec.Next(t)
		if t.IsZero() {
			break
		}
		out = append(out, t)
	}
	return out
}

func (m *Master) uiSchedules(c *gin.Context) {
	m.uiSchedulesWith(c, defaultScheduleForm, "", http.StatusOK)
}

func (m *Master) uiSchedulesWith(c *gin.Context, form scheduleForm, why string, status int) {
	in, d := m.instancePage(c)
	if in == nil {
		return
	}
	d.SchedulesTab = true
	info := in.Info()
	sd, err := m.schedulesFor(c, info.ID, info.ConfigurationName, form, why)
	if err != nil {
		m.uiFail(c, "instances", "/ui/instances/"+url.PathEscape(in.ID()), err)
		return
	}
	d.Schedules = sd
	m.render(c, status, "instance", uiPage{Title: in.ID() + " schedules", Nav: "instances", Data: d})
}

// scheduleOf makes the schedule the form describes, for an instance (id)
// or a configuration (name).
func (m *Master) scheduleOf(c *gin.Context, id, name string) (api.Schedule, scheduleForm, error) {
	form := scheduleForm{Name: strings.TrimSpace(c.PostForm("name")), Cron: strings.TrimSpace(c.PostForm("cron")),
		Timezone: strings.TrimSpace(c.PostForm("timezone")), Type: c.PostForm("type"), Payload: c.PostForm("payload"),
		MaxUnavailable: strings.TrimSpace(c.PostForm("maxUnavailable"))}
	task := api.ScheduleTask{Type: form.Type, Payload: form.Payload}
	if form.Type == api.TaskRollingRestart {
		task.Payload = ""
		n, err := strconv.Atoi(form.MaxUnavailable)
		if err != nil || n < 1 {
			return api.Schedule{}, form, universe.Errorf(universe.EINVALID, "maxUnavailable must be a whole number of at least 1")
		}
		task.MaxUnavailable = n
	}
	s := api.Schedule{Name: form.Name, InstanceID: id, Cron: form.Cron, Timezone: form.Timezone, Enabled: true,
		OnlyWhenOnline: c.PostForm("onlyWhenOnline") == "on", Tasks: []api.ScheduleTask{task}}
	if id == "" {
		s.Configuration = name
	}
	s.ID, s.CreatedAt, s.By = newBackupishID(), m.cfg.Now().UTC(), byOf(c)
	s, err := m.checkSchedule(s)
	if err == nil {
		err = m.maySchedule(c, s)
	}
	if err == nil {
		err = m.db.PutSchedule(s)
	}
	return s, form, err
}

func (m *Master) uiScheduleCreate(c *gin.Context) {
	id := c.Param("id")
	s, form, err := m.scheduleOf(c, id, "")
	m.dashAudit(c, "schedule create id="+id+" schedule="+s.ID, err)
	if err != nil {
		if universe.ErrorCode(err) == universe.EINVALID {
			m.uiSchedulesWith(c, form, universe.ErrorMessage(err), http.StatusBadRequest)
			return
		}
		m.uiFail(c, "instances", "/ui/instances/"+url.PathEscape(id)+"/schedules", err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/ui/instances/"+url.PathEscape(id)+"/schedules")
}

func (m *Master) uiConfigScheduleCreate(c *gin.Context) {
	name := c.Param("name")
	s, form, err := m.scheduleOf(c, "", name)
	m.dashAudit(c, "schedule create configuration="+name+" schedule="+s.ID, err)
	if err != nil {
		if universe.ErrorCode(err) == universe.EINVALID {
			m.uiConfigurationWith(c, form, universe.ErrorMessage(err), http.StatusBadRequest)
			return
		}
		m.uiFail(c, "configurations", "/ui/configurations/"+url.PathEscape(name), err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/ui/configurations/"+url.PathEscape(name)+"#schedules")
}

// uiScheduleAction: run, enable, disable or delete one schedule shown on
// an instance's tab or a configuration's page.
func (m *Master) uiScheduleAction(c *gin.Context) {
	back := "/ui/instances/" + url.PathEscape(c.Param("id")) + "/schedules"
	nav := "instances"
	if name := c.Param("name"); name != "" {
		back, nav = "/ui/configurations/"+url.PathEscape(name)+"#schedules", "configurations"
	}
	sid, action := c.Param("schedule"), c.Param("action")
	s, err := m.db.GetSchedule(sid)
	if r := callerRights(c); err == nil && r != nil && !r.Allowed("schedule.write", s.InstanceID, m.scheduleConfig(s)) {
		err = needs("schedule.write", "schedule "+sid)
	}
	if err == nil {
		switch action {
		case "run":
			_, err = m.sched.runner.RunNow(m.ctx, s, byOf(c))
		case "enable", "disable":
			s.Enabled = action == "enable"
			err = m.db.PutSchedule(s)
		case "delete":
			err = m.db.DeleteSchedule(sid)
		default:
			err = universe.Errorf(universe.ENOTFOUND, "no such action %q", action)
		}
	}
	m.dashAudit(c, "schedule "+action+" schedule="+sid+" enabled="+strconv.FormatBool(s.Enabled), err)
	if err != nil {
		m.uiFail(c, nav, back, err)
		return
	}
	c.Redirect(http.StatusSeeOther, back)
}
