package master

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/instance"
	"github.com/universe-orchestrator/universe/schedule"
)

// scheduler runs the schedules' Runner while this master leads (alone: from
// Open to Close).
type scheduler struct {
	runner *schedule.Runner
	loop   leaderLoop
}

func (m *Master) newScheduler() {
	runs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "universe_schedule_runs_total",
		Help: "Schedule runs, by outcome (started, ok, failed, skipped).",
	}, []string{"outcome"})
	late := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "universe_schedule_lateness_seconds",
		Help:    "How long after its fire time a schedule's run started.",
		Buckets: []float64{.01, .05, .1, .25, .5, 1, 2, 5, 10, 60},
	})
	m.metrics.reg.MustRegister(runs, late)
	m.sched = &scheduler{runner: schedule.NewRunner(m.db, scheduleActions{m}, m.log, schedule.Hooks{
		Run: func(outcome string, lateness time.Duration) {
			runs.WithLabelValues(outcome).Inc()
			if outcome == "started" {
				late.Observe(lateness.Seconds())
			}
		},
		Failed: m.scheduleFailedEvent,
	}, m.cfg.Now)}
}

// startScheduler starts firing schedules (leadership gained, or Open alone).
func (m *Master) startScheduler() { m.sched.loop.start(m.ctx, m.sched.runner.Run) }

// stopScheduler stops firing and waits for the runs under way to stop.
func (m *Master) stopScheduler() { m.sched.loop.stop() }

// scheduleActions are the tasks' hands on the instances.
type scheduleActions struct{ m *Master }

func (a scheduleActions) Instances(cfg string) []string {
	var out []string
	for _, in := range a.m.instances.List(instance.Filter{Configuration: cfg}) {
		out = append(out, in.ID)
	}
	return out
}

func (a scheduleActions) Online(id string) bool {
	in, err := a.m.instances.Get(id)
	return err == nil && in.Info().State == "ONLINE"
}

func (a scheduleActions) Command(id, line string) error {
	in, err := a.m.instances.Get(id)
	if err != nil {
		return err
	}
	return in.Execute(line)
}

func (a scheduleActions) Power(id, action string) error {
	in, err := a.m.instances.Get(id)
	if err != nil {
		return err
	}
	by := "schedule"
	switch action {
	case "start":
		_, err = in.Start(by)
	case "stop":
		_, err = in.Stop(by)
	case "restart":
		err = in.Restart(by)
	case "kill":
		err = in.Kill(by)
	default:
		err = universe.Errorf(universe.EINVALID, "unknown power action %q", action)
	}
	return err
}

func (a scheduleActions) Backup(ctx context.Context, id, name, by string) error {
	sub, err := a.m.backupSubject(id)
	if err != nil {
		return err
	}
	b, err := a.m.backups.Create(sub, api.BackupRequest{Name: name}, by)
	if err != nil {
		return err
	}
	for b.State == api.BackupPending || b.State == api.BackupRunning {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		if b, err = a.m.db.GetBackup(b.ID); err != nil {
			return err
		}
	}
	if b.State != api.BackupCompleted {
		return universe.Errorf(universe.ECONFLICT, "backup %s failed: %s", b.ID, b.Reason)
	}
	return nil
}

// withNext fills a schedule's next run time.
func withNext(s api.Schedule, now time.Time) api.Schedule {
	s.NextRun = nil
	if next := nextRuns(s.Cron, s.Timezone, now, 1); s.Enabled && len(next) == 1 {
		s.NextRun = &next[0]
	}
	return s
}

// scheduleConfig is the configuration a schedule acts in: its own, or its
// instance's.
func (m *Master) scheduleConfig(s api.Schedule) string {
	if s.Configuration != "" {
		return s.Configuration
	}
	if in, err := m.instances.Get(s.InstanceID); err == nil {
		return in.Info().ConfigurationName
	}
	return ""
}

// taskPermission is what a member needs to have a schedule do a task.
func taskPermission(t api.ScheduleTask) string {
	switch t.Type {
	case api.TaskCommand:
		return "console.write"
	case api.TaskPower:
		return "power." + t.Payload
	case api.TaskBackup:
		return "backup.create"
	case api.TaskRollingRestart:
		return "power.restart"
	}
	return "schedule.write"
}

// maySchedule says whether the caller may make or change s: schedule.write
// on its target, and the permission of each of its tasks there (a
// schedule does nothing its maker could not do). Nil for an admin.
func (m *Master) maySchedule(c *gin.Context, s api.Schedule) error {
	r := callerRights(c)
	if r == nil {
		return nil
	}
	cfg := m.scheduleConfig(s)
	where := "configuration " + s.Configuration
	if s.InstanceID != "" {
		where = "instance " + s.InstanceID
	}
	if !r.Allowed("schedule.write", s.InstanceID, cfg) {
		return needs("schedule.write", where)
	}
	for _, t := range s.Tasks {
		if p := taskPermission(t); !r.Allowed(p, s.InstanceID, cfg) {
			return needs(p, where)
		}
	}
	return nil
}

// checkSchedule normalizes and validates s, and checks its target exists
// (404) and the instance's count of schedules (at most 100).
func (m *Master) checkSchedule(s api.Schedule) (api.Schedule, error) {
	s = schedule.Normalize(s)
	if err := schedule.Validate(s); err != nil {
		return s, err
	}
	if s.InstanceID != "" {
		if _, err := m.instances.Get(s.InstanceID); err != nil {
			return s, err
		}
		all, err := m.db.Schedules()
		if err != nil {
			return s, err
		}
		n := 0
		for _, o := range all {
			if o.InstanceID == s.InstanceID && o.ID != s.ID {
				n++
			}
		}
		if n >= schedule.MaxPerInstance {
			return s, universe.Errorf(universe.EINVALID, "instance %s has %d schedules already (at most %d)", s.InstanceID, n, schedule.MaxPerInstance)
		}
	} else if _, err := m.db.GetConfiguration(s.Configuration); err != nil {
		return s, err
	}
	return s, nil
}

func (m *Master) handleScheduleCreate(c *gin.Context) {
	var s api.Schedule
	if err := bindJSONStrict(c, &s); err != nil {
		fail(c, err)
		return
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	s.ID, s.CreatedAt, s.By, s.NextRun = hex.EncodeToString(id[:]), m.cfg.Now().UTC(), byOf(c), nil
	s, err := m.checkSchedule(s)
	if err == nil {
		err = m.maySchedule(c, s)
	}
	if err != nil {
		fail(c, err)
		return
	}
	if err := m.db.PutSchedule(s); err != nil {
		fail(c, err)
		return
	}
	c.Set(ctxAuditDetail, "schedule="+s.ID)
	c.JSON(http.StatusCreated, withNext(s, m.cfg.Now()))
}

func (m *Master) handleScheduleList(c *gin.Context) {
	all, err := m.db.Schedules()
	if err != nil {
		fail(c, err)
		return
	}
	inst, cfg := c.Query("instanceId"), c.Query("configuration")
	out := []api.Schedule{}
	now := m.cfg.Now()
	r := callerRights(c)
	for _, s := range all {
		if r != nil && !r.Allowed("schedule.read", s.InstanceID, m.scheduleConfig(s)) {
			continue
		}
		if (inst == "" || s.InstanceID == inst) && (cfg == "" || s.Configuration == cfg) {
			out = append(out, withNext(s, now))
		}
	}
	writeJSONArray(c, out)
}

func (m *Master) handleScheduleGet(c *gin.Context) {
	s, err := m.db.GetSchedule(c.Param("schedule"))
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, withNext(s, m.cfg.Now()))
}

// handleSchedulePut replaces a schedule's fields (its id, creation and
// target's kind stay).
func (m *Master) handleSchedulePut(c *gin.Context) {
	old, err := m.db.GetSchedule(c.Param("schedule"))
	if err != nil {
		fail(c, err)
		return
	}
	var s api.Schedule
	if err := bindJSONStrict(c, &s); err != nil {
		fail(c, err)
		return
	}
	s.ID, s.CreatedAt, s.By, s.NextRun = old.ID, old.CreatedAt, old.By, nil
	if s, err = m.checkSchedule(s); err == nil {
		err = m.maySchedule(c, s)
	}
	if err != nil {
		fail(c, err)
		return
	}
	if err := m.db.PutSchedule(s); err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, withNext(s, m.cfg.Now()))
}

func (m *Master) handleScheduleDelete(c *gin.Context) {
	if err := m.db.DeleteSchedule(c.Param("schedule")); err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// handleScheduleRun runs a schedule now (202 with the run); its outcome is
// in its runs.
func (m *Master) handleScheduleRun(c *gin.Context) {
	s, err := m.db.GetSchedule(c.Param("schedule"))
	if err != nil {
		fail(c, err)
		return
	}
	run, err := m.sched.runner.RunNow(m.ctx, s, byOf(c))
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusAccepted, run)
}

func (m *Master) handleScheduleRuns(c *gin.Context) {
	if _, err := m.db.GetSchedule(c.Param("schedule")); err != nil {
		fail(c, err)
		return
	}
	runs, err := m.db.Runs(c.Param("schedule"))
	if err != nil {
		fail(c, err)
		return
	}
	writeJSONArray(c, runs)
}

// handleSchedulePreview answers GET /api/schedules/preview: the next run
// times of ?cron= in ?timezone= (the dashboard's cron helper).
func (m *Master) handleSchedulePreview(c *gin.Context) {
	expr, tz := strings.TrimSpace(c.Query("cron")), strings.TrimSpace(c.Query("timezone"))
	n := 5
	if s := c.Query("count"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > 50 {
			fail(c, universe.Errorf(universe.EINVALID, "count must be 1 to 50"))
			return
		}
		n = v
	}
	if expr == "" {
		fail(c, universe.Errorf(universe.EINVALID, "cron is required"))
		return
	}
	if _, err := schedule.Parse(expr, tz); err != nil {
		fail(c, err)
		return
	}
	if tz == "" {
		tz = "UTC"
	}
	c.JSON(http.StatusOK, api.SchedulePreview{Cron: expr, Timezone: tz, Next: nextRuns(expr, tz, m.cfg.Now(), n)})
}
