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

// The dashboard's Schedules tab of an instance: its schedules and its
// configuration's, each with its next five run times and last run; a form
// for a schedule of one task; run now, enable, disable, delete.

type schedulesData struct {
	List []scheduleRow
	// Form holds what was sent when it was refused, Error why.
	Form  scheduleForm
	Error string
}

type scheduleForm struct {
	Name, Cron, Timezone, Type, Payload string
}

type scheduleRow struct {
	api.Schedule
	Mine  bool // the instance's own (else its configuration's)
	Next  []time.Time
	Last  *api.ScheduleRun
	Tasks string
}

func (m *Master) uiSchedules(c *gin.Context) {
	m.uiSchedulesWith(c, scheduleForm{Cron: "0 4 * * *", Timezone: "UTC", Type: "power", Payload: "restart"}, "", http.StatusOK)
}

func (m *Master) uiSchedulesWith(c *gin.Context, form scheduleForm, why string, status int) {
	in, d := m.instancePage(c)
	if in == nil {
		return
	}
	d.SchedulesTab = true
	all, err := m.db.Schedules()
	if err != nil {
		m.uiFail(c, "instances", "/ui/instances/"+url.PathEscape(in.ID()), err)
		return
	}
	info := in.Info()
	sd := &schedulesData{Form: form, Error: why}
	now := m.cfg.Now()
	for _, s := range all {
		if s.InstanceID != info.ID && s.Configuration != info.ConfigurationName {
			continue
		}
		row := scheduleRow{Schedule: s, Mine: s.InstanceID == info.ID}
		if spec, err := schedule.Parse(s.Cron, s.Timezone); err == nil && s.Enabled {
			t := now
			for range 5 {
				t = spec.Next(t)
				row.Next = append(row.Next, t)
			}
		}
		if runs, err := m.db.Runs(s.ID); err == nil && len(runs) > 0 {
			row.Last = &runs[0]
		}
		var tasks []string
		for _, t := range s.Tasks {
			tasks = append(tasks, strings.TrimSpace(t.Type+" "+t.Payload))
		}
		row.Tasks = strings.Join(tasks, " → ")
		sd.List = append(sd.List, row)
	}
	d.Schedules = sd
	m.render(c, status, "instance", uiPage{Title: in.ID() + " schedules", Nav: "instances", Data: d})
}

func (m *Master) uiScheduleCreate(c *gin.Context) {
	id := c.Param("id")
	form := scheduleForm{Name: strings.TrimSpace(c.PostForm("name")), Cron: strings.TrimSpace(c.PostForm("cron")),
		Timezone: strings.TrimSpace(c.PostForm("timezone")), Type: c.PostForm("type"), Payload: c.PostForm("payload")}
	s := api.Schedule{Name: form.Name, InstanceID: id, Cron: form.Cron, Timezone: form.Timezone, Enabled: true,
		OnlyWhenOnline: c.PostForm("onlyWhenOnline") == "on",
		Tasks:          []api.ScheduleTask{{Type: form.Type, Payload: form.Payload}}}
	s.ID, s.CreatedAt, s.By = newBackupishID(), m.cfg.Now().UTC(), byOf(c)
	s, err := m.checkSchedule(s)
	if err == nil {
		err = m.db.PutSchedule(s)
	}
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

// uiScheduleAction: run, enable, disable or delete one schedule shown on
// the instance's tab.
func (m *Master) uiScheduleAction(c *gin.Context) {
	id, sid, action := c.Param("id"), c.Param("schedule"), c.Param("action")
	back := "/ui/instances/" + url.PathEscape(id) + "/schedules"
	s, err := m.db.GetSchedule(sid)
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
		m.uiFail(c, "instances", back, err)
		return
	}
	c.Redirect(http.StatusSeeOther, back)
}
