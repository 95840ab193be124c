package master

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/instance"
	"github.com/universe-orchestrator/universe/scaling"
)

// Scaling by players: the scaler runs on the leader (a master alone
// leads), acting through the instance manager; its decisions go to the
// event log and the metrics.

type scalerState struct {
	s       *scaling.Scaler
	actions *prometheus.CounterVec
	loop    leaderLoop
}

func (m *Master) newScaler() {
	actions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "universe_scaling_actions_total",
		Help: "Starts and stops of instances by the scaler, by action and reason (headroom, empty, drained, drain-deadline).",
	}, []string{"action", "reason"})
	m.metrics.reg.MustRegister(actions)
	m.scale = &scalerState{actions: actions}
	m.scale.s = scaling.New(scalingEnv{m}, m.cfg.Now, m.log)
	m.scale.s.WarmUp = m.cfg.ScalingWarmUp
	m.metrics.reg.MustRegister(scalingCollector{m})
}

// startScaler starts scaling (leadership gained, or Open alone).
func (m *Master) startScaler() { m.scale.loop.start(m.ctx, m.scale.s.Run) }

// stopScaler stops scaling (leadership lost, or the master stops).
func (m *Master) stopScaler() { m.scale.loop.stop() }

// scalingEnv is the scaler's hands.
type scalingEnv struct{ m *Master }

// Configurations are those the scaler acts on: the scaled ones, and
// those of draining instances (a drain ends in a stop whether or not the
// configuration scales). The others are not decoded at every pass.
func (e scalingEnv) Configurations() ([]api.Configuration, error) {
	cfgs, err := e.m.db.ListConfigurationsScaled()
	if err != nil {
		return nil, err
	}
	have := make(map[string]bool, len(cfgs))
	for _, c := range cfgs {
		have[c.Name] = true
	}
	for _, in := range e.m.instances.List(instance.Filter{}) {
		if !in.Draining || have[in.ConfigurationName] {
			continue
		}
		have[in.ConfigurationName] = true
		c, err := e.m.db.GetConfiguration(in.ConfigurationName)
		if universe.ErrorCode(err) == universe.ENOTFOUND {
			continue
		} else if err != nil {
			return nil, err
		}
		cfgs = append(cfgs, c)
	}
	for i := range cfgs {
		cfgs[i] = instance.Normalize(cfgs[i])
	}
	return cfgs, nil
}

func (e scalingEnv) Instances() []api.InstanceInfo { return e.m.instances.List(instance.Filter{}) }

func (e scalingEnv) Start(cfg string) error {
	info, err := e.m.instances.Create(cfg, "scaling")
	if err == nil && info.State != "ONLINE" {
		err = universe.Errorf(universe.EINTERNAL, "%s", info.Reason)
	}
	return err
}

func (e scalingEnv) Stop(id, reason string) error {
	in, err := e.m.instances.Get(id)
	if err != nil {
		return err
	}
	if in.Info().Static {
		in.StopWait(reason)
		return nil
	}
	return e.m.instances.Delete(id, reason)
}

func (e scalingEnv) Decided(cfg string, d api.ScalingDecision, n scaling.Numbers) {
	if d.Action != "none" {
		e.m.scale.actions.WithLabelValues(d.Action, d.Cause).Inc()
	}
	e.m.ev.log.Add(api.Event{Type: api.EventScalingDecision, InstanceID: d.InstanceID, Configuration: cfg,
		Message: "scaling " + cfg + ": " + d.Action + " (" + d.Reason + ")",
		Data:    map[string]any{"action": d.Action, "cause": d.Cause, "reason": d.Reason, "desired": n.Desired, "actual": n.Actual, "joinable": n.Joinable, "starting": n.Starting}})
}

// scalingCollector reports desired and actual instances per configuration
// (the last pass's numbers).
type scalingCollector struct{ m *Master }

var (
	descDesired = prometheus.NewDesc("universe_scaling_desired_instances", "Instances the scaler wants, per configuration (its last pass).", []string{"configuration"}, nil)
	descActual  = prometheus.NewDesc("universe_scaling_actual_instances", "Instances running or starting, per configuration (the scaler's last pass).", []string{"configuration"}, nil)
	descJoin    = prometheus.NewDesc("universe_scaling_joinable_instances", "Joinable instances, per configuration (the scaler's last pass).", []string{"configuration"}, nil)
)

func (c scalingCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descDesired
	ch <- descActual
	ch <- descJoin
}

func (c scalingCollector) Collect(ch chan<- prometheus.Metric) {
	cfgs, err := c.m.db.ListConfigurationsScaled()
	if err != nil {
		return
	}
	for _, cfg := range cfgs {
		if cfg.Scaling == nil {
			continue
		}
		st := c.m.scale.s.Status(cfg.Name)
		ch <- prometheus.MustNewConstMetric(descDesired, prometheus.GaugeValue, float64(st.Desired), cfg.Name)
		ch <- prometheus.MustNewConstMetric(descActual, prometheus.GaugeValue, float64(st.Actual), cfg.Name)
		ch <- prometheus.MustNewConstMetric(descJoin, prometheus.GaugeValue, float64(st.Joinable), cfg.Name)
	}
}

// handleScaling answers GET /api/configurations/{name}/scaling.
func (m *Master) handleScaling(c *gin.Context) {
	if _, err := m.db.GetConfiguration(c.Param("name")); err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, m.scale.s.Status(c.Param("name")))
}

// handleDrain answers POST /api/instances/{id}/drain.
func (m *Master) handleDrain(c *gin.Context) {
	var req api.DrainRequest
	if err := bindOptionalJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	if req.DeadlineSeconds < 0 || req.DeadlineSeconds > 7*86400 {
		fail(c, universe.Errorf(universe.EINVALID, "deadlineSeconds must be 0 (when empty) to 604800"))
		return
	}
	in, err := m.instances.Get(c.Param("id"))
	if err != nil {
		fail(c, err)
		return
	}
	var deadline time.Time
	if req.DeadlineSeconds > 0 {
		deadline = m.cfg.Now().Add(time.Duration(req.DeadlineSeconds) * time.Second)
	}
	info, err := in.Drain(deadline)
	if err != nil {
		fail(c, err)
		return
	}
	c.Set(ctxAuditDetail, "deadlineSeconds="+strconv.Itoa(req.DeadlineSeconds))
	m.scale.s.Trigger()
	c.JSON(http.StatusOK, info)
}
