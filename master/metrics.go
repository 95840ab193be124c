package master

import (
	"github.com/universe-orchestrator/universe/cluster/ha"
	"regexp"
	goruntime "runtime"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/cluster/hub"
	"github.com/universe-orchestrator/universe/instance"
	"github.com/universe-orchestrator/universe/instance/stats"
	"github.com/universe-orchestrator/universe/master/auth"
)

// metrics are the master's Prometheus series, in a registry of its own (no
// global state). No label ever carries a token, a key label or a key id.
type metrics struct {
	reg          *prometheus.Registry
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	authFailures *prometheus.CounterVec
	signins      *prometheus.CounterVec
	rateLimited  *prometheus.CounterVec
	wsSessions   *prometheus.GaugeVec
	starts       prometheus.Counter
	exits        *prometheus.CounterVec
	liveLogSubs  prometheus.Gauge
	logLines     prometheus.Counter
	logDropped   *prometheus.CounterVec
	restarts     prometheus.Counter
	crashLoops   prometheus.Counter
	heartbeats   prometheus.Counter
	adoptions    *prometheus.CounterVec
	statusLabel  [600]string
	perRoute     sync.Map // routeKey → *routeSeries: the vectors' children, looked up once
}

// routeKey names one request series; its values are bounded (route
// templates, known methods, statuses).
type routeKey struct {
	route, method string
	status        int
}

type routeSeries struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// observe counts one request: the series' children are found once per
// (route, method, status) instead of hashing the labels per request.
func (m *metrics) observe(route, method string, status int, seconds float64) {
	k := routeKey{route, method, status}
	v, ok := m.perRoute.Load(k)
	if !ok {
		v, _ = m.perRoute.LoadOrStore(k, &routeSeries{
			requests: m.requests.WithLabelValues(route, method, m.status(status)),
			duration: m.duration.WithLabelValues(route, method),
		})
	}
	rs := v.(*routeSeries)
	rs.requests.Inc()
	rs.duration.Observe(seconds)
}

func newMetrics(keys *auth.Keyring, buildVersion string) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "universe_http_requests_total",
			Help: "HTTP requests served, by route template, method and status.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "universe_http_request_duration_seconds",
			Help:    "Time to serve an HTTP request, by route template and method.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "universe_auth_failures_total",
			Help: "Rejected authentications and authorizations, by reason.",
		}, []string{"reason"}),
		signins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "universe_user_signins_total",
			Help: "Users' sign-ins (name, password and code), by outcome: ok or refused.",
		}, []string{"outcome"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "universe_rate_limited_total",
			Help: "Requests answered 429, by limit: public_key or auth_failures.",
		}, []string{"limit"}),
		wsSessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "universe_websocket_sessions",
			Help: "Open WebSocket sessions, by endpoint.",
		}, []string{"endpoint"}),
		starts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "universe_instance_starts_total",
			Help: "Instance processes started.",
		}),
		exits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "universe_instance_exits_total",
			Help: "Instance processes that ended, by reason: stopped (asked for), exited (code 0), failed (other codes), killed (by a signal).",
		}, []string{"reason"}),
		liveLogSubs: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "universe_live_log_subscribers",
			Help: "Open live-log streams.",
		}),
		logLines: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "universe_log_lines_total",
			Help: "Instance log lines recorded.",
		}),
		logDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "universe_log_lines_dropped_total",
			Help: "Instance log lines dropped, by cause: throttled (over the per-instance line rate) or slow_client (one live-log client fell behind).",
		}, []string{"cause"}),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "universe_instance_policy_restarts_total",
			Help: "Instance processes started again by their restart policy.",
		}),
		crashLoops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "universe_instance_crash_loops_total",
			Help: "Instances whose restart policy gave up: too many exits within the crash-loop window.",
		}),
		heartbeats: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "universe_instance_heartbeat_timeouts_total",
			Help: "Instances taken OFFLINE because their heartbeat stopped.",
		}),
		adoptions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "universe_instance_adoptions_total",
			Help: "Instances found running when the master started, by outcome: running (re-adopted), exited (exited meanwhile), lost (supervisor gone), incompatible (its supervisor speaks another protocol version; left alone).",
		}, []string{"outcome"}),
	}
	for i := range m.statusLabel {
		m.statusLabel[i] = strconv.Itoa(i)
	}
	m.reg.MustRegister(m.requests, m.duration, m.authFailures, m.signins, m.rateLimited, m.wsSessions,
		m.starts, m.exits, m.liveLogSubs, m.logLines, m.logDropped, m.restarts, m.crashLoops, m.heartbeats, m.adoptions,
		collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(
			// The live heap after the last GC: the size of what the master keeps.
			collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/gc/heap/live:bytes$`)},
		)),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	for _, s := range []universe.Scope{universe.ScopeAll, universe.ScopePublic} {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "universe_keys",
			Help:        "API keys, by scope.",
			ConstLabels: prometheus.Labels{"scope": string(s)},
		}, func() float64 { return float64(keys.Count(s)) }))
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "universe_build_info",
		Help:        "1, with the master's version and Go version as labels.",
		ConstLabels: prometheus.Labels{"version": buildVersion, "goversion": goruntime.Version()},
	}, func() float64 { return 1 }))
	// Pre-create the series operators alert on, so they exist at zero.
	for _, r := range []string{"missing", "malformed", "unknown", "expired", "insufficient_scope"} {
		m.authFailures.WithLabelValues(r)
	}
	for _, l := range []string{"public_key", "instance_key", "auth_failures"} {
		m.rateLimited.WithLabelValues(l)
	}
	m.wsSessions.WithLabelValues("console")
	m.wsSessions.WithLabelValues("live-log")
	for _, r := range []string{"stopped", "exited", "failed", "killed"} {
		m.exits.WithLabelValues(r)
	}
	for _, c := range []string{"throttled", "slow_client"} {
		m.logDropped.WithLabelValues(c)
	}
	return m
}

// instanceHooks count what the instance manager reports.
func (m *metrics) instanceHooks() instance.Hooks {
	dropped := map[string]prometheus.Counter{}
	for _, c := range []string{"throttled", "slow_client"} {
		dropped[c] = m.logDropped.WithLabelValues(c)
	}
	return instance.Hooks{
		Started:          m.starts.Inc,
		Exited:           func(reason string) { m.exits.WithLabelValues(reason).Inc() },
		Restarted:        m.restarts.Inc,
		CrashLoop:        m.crashLoops.Inc,
		HeartbeatTimeout: m.heartbeats.Inc,
		Adopted:          func(outcome string) { m.adoptions.WithLabelValues(outcome).Inc() },
		LogLines:         func(n int) { m.logLines.Add(float64(n)) },
		LogDropped: func(cause string, n int) {
			if c, ok := dropped[cause]; ok {
				c.Add(float64(n))
			}
		},
	}
}

// registerInstances adds universe_instances{state}, counted once per
// scrape.
func (m *metrics) registerInstances(mgr *instance.Manager) {
	m.reg.MustRegister(instanceCollector{mgr: mgr, desc: prometheus.NewDesc(
		"universe_instances", "Instances of this node, by state.", []string{"state"}, nil)})
}

type instanceCollector struct {
	mgr  *instance.Manager
	desc *prometheus.Desc
}

func (c instanceCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c instanceCollector) Collect(ch chan<- prometheus.Metric) {
	for state, n := range c.mgr.Counts() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), state)
	}
}

func (m *metrics) status(code int) string {
	if code >= 0 && code < len(m.statusLabel) {
		return m.statusLabel[code]
	}
	return "other"
}

// methodLabel bounds the method label to the methods we know.
func methodLabel(method string) string {
	switch method {
	case "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS":
		return method
	}
	return "OTHER"
}

// registerNodes adds the per-node series: one per registered node (the
// master's own included), so their number is bounded by the nodes an
// operator created.
func (m *metrics) registerNodes(nodes func() ([]api.ClusterNode, error), relay func() map[string]hub.RelayStat) {
	m.reg.MustRegister(nodeCollector{nodes: nodes, relay: relay,
		lines:     prometheus.NewDesc("universe_node_relayed_lines_total", "Log lines the master took from each agent node.", []string{"node"}, nil),
		batches:   prometheus.NewDesc("universe_node_relayed_batches_total", "Log batches the master took from each agent node.", []string{"node"}, nil),
		resends:   prometheus.NewDesc("universe_node_resend_requests_total", "Times the master asked a node again for an instance's lines (a hole, a reconnection).", []string{"node"}, nil),
		state:     prometheus.NewDesc("universe_node_state", "1 for the state each node is in (ONLINE, DISCONNECTED, DRAINING, REVOKED).", []string{"node", "state"}, nil),
		capMem:    prometheus.NewDesc("universe_node_capacity_memory_bytes", "Memory each node offers its instances (0: no limit declared).", []string{"node"}, nil),
		capCPU:    prometheus.NewDesc("universe_node_capacity_cpu_cores", "CPU cores each node offers its instances (0: no limit declared).", []string{"node"}, nil),
		resMem:    prometheus.NewDesc("universe_node_reserved_memory_bytes", "Memory the active instances placed on each node reserve.", []string{"node"}, nil),
		resCPU:    prometheus.NewDesc("universe_node_reserved_cpu_cores", "CPU cores the active instances placed on each node reserve.", []string{"node"}, nil),
		instances: prometheus.NewDesc("universe_node_instances", "Instances on each node.", []string{"node"}, nil),
	})
}

type nodeCollector struct {
	nodes                          func() ([]api.ClusterNode, error)
	relay                          func() map[string]hub.RelayStat
	state, instances               *prometheus.Desc
	capMem, capCPU, resMem, resCPU *prometheus.Desc
	lines, batches, resends        *prometheus.Desc
}

func (c nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.state
	ch <- c.capMem
	ch <- c.capCPU
	ch <- c.resMem
	ch <- c.resCPU
	ch <- c.instances
	ch <- c.lines
	ch <- c.batches
	ch <- c.resends
}

func (c nodeCollector) Collect(ch chan<- prometheus.Metric) {
	nodes, err := c.nodes()
	if err != nil {
		return
	}
	for _, n := range nodes {
		for _, s := range []string{api.NodeOnline, api.NodeDisconnected, api.NodeDraining, api.NodeRevoked} {
			v := 0.0
			if n.State == s {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, v, n.Name, s)
		}
		// Base units, one unit per metric: bytes and cores.
		ch <- prometheus.MustNewConstMetric(c.capMem, prometheus.GaugeValue, float64(n.Capacity.RAMMB)*(1<<20), n.Name)
		ch <- prometheus.MustNewConstMetric(c.capCPU, prometheus.GaugeValue, float64(n.Capacity.CPU)/100, n.Name)
		ch <- prometheus.MustNewConstMetric(c.resMem, prometheus.GaugeValue, float64(n.Resources.UsedRAMMB)*(1<<20), n.Name)
		ch <- prometheus.MustNewConstMetric(c.resCPU, prometheus.GaugeValue, float64(n.Resources.UsedCPU)/100, n.Name)
		ch <- prometheus.MustNewConstMetric(c.instances, prometheus.GaugeValue, float64(n.InstanceCount), n.Name)
	}
	known := map[string]bool{}
	for _, n := range nodes {
		known[n.Name] = true
	}
	for node, st := range c.relay() {
		if !known[node] {
			continue // a node's series go with it
		}
		ch <- prometheus.MustNewConstMetric(c.lines, prometheus.CounterValue, float64(st.Lines), node)
		ch <- prometheus.MustNewConstMetric(c.batches, prometheus.CounterValue, float64(st.Batches), node)
		ch <- prometheus.MustNewConstMetric(c.resends, prometheus.CounterValue, float64(st.Resends), node)
	}
}

// statsCollector exports the stats sampler's instances: one series each,
// gone with the instance.
type statsCollector struct {
	s *stats.Sampler
	// remote are instances on agent nodes, as their nodes report them,
	// with their configurations.
	remote           func(f func(id, config string, cpu float64, mem int64))
	cpuDesc, memDesc *prometheus.Desc
}

func newStatsCollector(s *stats.Sampler, remote func(f func(id, config string, cpu float64, mem int64))) *statsCollector {
	return &statsCollector{s: s, remote: remote,
		cpuDesc: prometheus.NewDesc("universe_instance_cpu_seconds_total", "CPU time used by the instance's process tree.", []string{"instance", "configuration"}, nil),
		memDesc: prometheus.NewDesc("universe_instance_memory_bytes", "Resident memory of the instance's process tree.", []string{"instance", "configuration"}, nil)}
}

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.cpuDesc
	ch <- c.memDesc
}

func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	each := func(id, config string, cpu float64, mem int64) {
		ch <- prometheus.MustNewConstMetric(c.cpuDesc, prometheus.CounterValue, cpu, id, config)
		ch <- prometheus.MustNewConstMetric(c.memDesc, prometheus.GaugeValue, float64(mem), id, config)
	}
	c.s.Each(each)
	if c.remote != nil {
		c.remote(each)
	}
}

// registerHA adds the Raft series of a master in a cluster.
func (m *metrics) registerHA(n *ha.Node) {
	commit := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "universe_raft_commit_seconds",
		Help:    "Time from a write's command to its commit by the cluster (on a follower: through the leader).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	})
	n.CommitSeconds = commit.Observe
	m.reg.MustRegister(commit,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "universe_raft_leader", Help: "1 while this master leads its cluster."}, func() float64 {
			if n.IsLeader() {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "universe_raft_term", Help: "The current Raft term."}, func() float64 { return float64(n.Term()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "universe_raft_applied_index", Help: "Index of the last command applied here."}, func() float64 { return float64(n.AppliedIndex()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "universe_raft_leader_changes_total", Help: "Times this master gained or lost the leadership."}, func() float64 { return float64(n.Changes.Load()) }),
	)
}
