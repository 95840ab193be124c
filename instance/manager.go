package instance

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/instance/cgroup"
	"github.com/universe-orchestrator/universe/instance/logs"
	"github.com/universe-orchestrator/universe/instance/runtime"
	"github.com/universe-orchestrator/universe/instance/supervisor"
	"github.com/universe-orchestrator/universe/instance/template"
)

// Store is the persistence the manager needs (storage.DB has it).
type Store interface {
	GetConfiguration(name string) (api.Configuration, error)
	ListConfigurations() ([]api.Configuration, error)
	// ListConfigurationsWanted is ListConfigurations with only those
	// whose minimumServiceCount is above 0.
	ListConfigurationsWanted() ([]api.Configuration, error)
	PutInstance(info api.InstanceInfo) error
	// PutInstanceQueued is PutInstance without waiting for the commit, in
	// order with the other writes; failed is told if it was not written.
	PutInstanceQueued(info api.InstanceInfo, failed func(error))
	DeleteInstance(id string) error
	ListInstances() ([]api.InstanceInfo, error)
}

// Hooks let the owner count what happens (metrics). Any may be nil.
type Hooks struct {
	Started          func()
	Exited           func(reason string) // "stopped", "exited", "failed", "killed"
	Restarted        func()              // by the restart policy
	CrashLoop        func()
	HeartbeatTimeout func()
	Adopted          func(outcome string) // "running", "exited", "lost"
	LogLines         func(n int)
	LogDropped       func(cause string, n int)
	// Event tells of what happened to an instance (api.EventInstance*),
	// for the event log; it must not block nor call the instance.
	Event func(typ string, info api.InstanceInfo, message string, data map[string]any)
	// Reported tells that an instance of the configuration reported its
	// state (the scaler looks again); it must not block.
	Reported func(configuration string)
	// Health tells of an instance's health check changing its state.
	Health func(info api.InstanceInfo)
}

// Keys issues the per-instance API keys (the master's keyring).
type Keys interface {
	// IssueInstanceKey revokes the instance's key, if any, and returns the
	// token of a new one, bound to the instance.
	IssueInstanceKey(id string) (token string, err error)
	// RevokeInstanceKeys revokes the instance's key (it was deleted).
	RevokeInstanceKeys(id string)
}

// Backoff is the restart policy's delay: Base doubling up to Max, back to
// Base once a process ran for Reset.
type Backoff struct {
	Base, Max, Reset time.Duration
}

// Options configure a Manager.
type Options struct {
	NodeID    string // stable id of this node, default "node-1"
	DataDir   string // running/<id>, static/<name> and logs/<id> live here
	MasterURL string // given to instances as UNIVERSE_MASTER_URL
	Templates *template.Store
	Store     Store
	Runtimes  []runtime.Runtime // default: process
	Log       logs.Options      // callbacks are set by the manager
	PortFree  func(port int) bool
	Logger    *slog.Logger
	Now       func() time.Time
	Hooks     Hooks
	Keys      Keys // nil: instances get no UNIVERSE_API_KEY

	// Supervisor is the command that runs a supervisor: the universe binary
	// (default: this executable), to which "supervise <dir>" is appended.
	Supervisor []string
	// KeepInstances makes Close leave the instances running under their
	// supervisors, for the next master to adopt.
	KeepInstances bool
	// NoResume leaves STOPPED the instances that Close stopped (by default
	// Open starts them again, as Wings does with its servers).
	NoResume bool
	// Restart is the restart policy's backoff (default 1 s, 5 min, 10 min).
	Restart Backoff
	// Resync is the period of the reconciler's full pass (default 10 s).
	Resync time.Duration
	// Cgroups is the cgroup v2 directory under which instances get their
	// cgroups; "" disables resource limits, "auto" finds one.
	Cgroups string
	// Reports bound the properties an instance may report about itself.
	Reports ReportLimits
	// MountRoots are the host folders under which docker configurations
	// may bind-mount extra paths (dockerOptions.mounts); none: no extra
	// mount.
	MountRoots []string
	// ExtraCaps are capabilities beyond Docker's default set that docker
	// configurations may add (dockerOptions.capAdd).
	ExtraCaps []string
	// Remote runs instances on agent nodes; nil: every instance runs here.
	Remote Remote
	// Standby is a master in a cluster: the instances are the leader's to
	// run, so Open loads none, and SetLeader(true) loads them all
	// (adopting each on its node) until SetLeader(false) lets them go.
	Standby bool
}

// ReportLimits bound what an instance keeps in its record through its
// state reports. Zero values take the defaults.
type ReportLimits struct {
	MaxProperties int // properties kept at most (default 64)
	MaxKeyBytes   int // length of a property's name (default 64)
	MaxValueBytes int // length of a property's value as JSON (default 1 KiB)
}

func (r ReportLimits) withDefaults() ReportLimits {
	if r.MaxProperties <= 0 {
		r.MaxProperties = 64
	}
	if r.MaxKeyBytes <= 0 {
		r.MaxKeyBytes = 64
	}
	if r.MaxValueBytes <= 0 {
		r.MaxValueBytes = 1 << 10
	}
	return r
}

// Manager runs the instances of this node. Build it with New, load the
// records with Open, stop everything with Close.
type Manager struct {
	opt      Options
	log      *slog.Logger
	runtimes map[string]runtime.Runtime
	ports    *Ports
	baseEnv  []string
	limits   *cgroup.Limits

	supervisorCmd []string
	// fullSupervisorCmd runs supervisors of runtimes the small supervisor
	// binary does not link (docker): the master's own binary.
	fullSupervisorCmd []string
	reconcile         chan struct{} // a pass is wanted
	reconcileMu       sync.Mutex
	reconcileAll      bool                // the next pass looks at every configuration
	reconcileNames    map[string]struct{} // or at these only
	follower          atomic.Bool         // in a cluster, another master leads: no reconciling
	leadMu            sync.Mutex          // one SetLeader of a standby manager at a time
	stopReconcile     chan struct{}
	reconcileDone     chan struct{}
	stopOnce          sync.Once               // closes stopReconcile (Shutdown may come twice)
	createBackoff     map[string]*createRetry // by configuration; the reconciler's own
	params            paramsCache             // joinability numbers by configuration

	rtInfoMu sync.Mutex // guards the cached answer of RuntimeInfos
	rtInfo   []api.RuntimeInfo
	rtInfoAt time.Time

	mu        sync.Mutex
	instances map[string]*Instance
	closing   atomic.Bool    // set under mu; read without it (isClosing runs under an instance's mu)
	held      []holder       // supervisors Shutdown keeps until ReleaseSupervisors
	bg        sync.WaitGroup // background lifecycle actions and process watchers
}

// New builds a manager; nothing runs until Open.
func New(opt Options) *Manager {
	if opt.NodeID == "" {
		opt.NodeID = "node-1"
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if abs, err := filepath.Abs(opt.DataDir); err == nil {
		opt.DataDir = abs // supervisors run elsewhere
	}
	if len(opt.Runtimes) == 0 {
		opt.Runtimes = runtime.Builtin()
	}
	h := &opt.Hooks
	if h.Started == nil {
		h.Started = func() {}
	}
	if h.Exited == nil {
		h.Exited = func(string) {}
	}
	for _, f := range []*func(){&h.Restarted, &h.CrashLoop, &h.HeartbeatTimeout} {
		if *f == nil {
			*f = func() {}
		}
	}
	if h.Adopted == nil {
		h.Adopted = func(string) {}
	}
	if h.LogDropped == nil {
		h.LogDropped = func(string, int) {}
	}
	if opt.Restart.Base <= 0 {
		opt.Restart.Base = time.Second
	}
	if opt.Restart.Max <= 0 {
		opt.Restart.Max = 5 * time.Minute
	}
	if opt.Restart.Reset <= 0 {
		opt.Restart.Reset = 10 * time.Minute
	}
	if opt.Resync <= 0 {
		opt.Resync = 10 * time.Second
	}
	opt.Reports = opt.Reports.withDefaults()
	opt.Log.OnLines, opt.Log.OnDropped = h.LogLines, h.LogDropped
	opt.Log.Now = opt.Now
	m := &Manager{
		opt:           opt,
		log:           opt.Logger,
		runtimes:      map[string]runtime.Runtime{},
		ports:         NewPorts(opt.PortFree),
		instances:     map[string]*Instance{},
		reconcile:     make(chan struct{}, 1),
		limits:        cgroup.New(opt.Cgroups, opt.Logger),
		createBackoff: map[string]*createRetry{},
	}
	m.supervisorCmd = opt.Supervisor
	m.fullSupervisorCmd = opt.Supervisor
	if len(m.supervisorCmd) == 0 {
		m.supervisorCmd, m.fullSupervisorCmd = SupervisorCommands(opt.DataDir, m.log)
	}
	for _, r := range opt.Runtimes {
		m.runtimes[r.Name()] = r
	}
	m.baseEnv = runtime.BaseEnv() // built, never the master's whole environment
	return m
}

// Process is an instance's running process as the manager drives it: a
// local supervisor (supervisor.Client) or a process on an agent node.
type Process = process

// Remote runs instances on agent nodes (the cluster hub).
type Remote interface {
	// Place picks the agent node an instance of cfg goes to and a port
	// there, or says (local) that it goes on this node. usage tells what
	// the instances on a node hold. Errors: EUNAVAILABLE naming why no
	// node fits.
	Place(cfg api.Configuration, usage func(node string) NodeUsage) (node string, port int, local bool, err error)
	// Start starts an instance on node under epoch; lines go to sink. A
	// new working folder there is filled as install says.
	Start(node string, epoch int64, spec supervisor.Spec, install Install, sink supervisor.Sink) (Process, error)
	// Adopt is the process of an instance a previous master started.
	Adopt(node, id string, epoch int64, pid int, sink supervisor.Sink) Process
	// Fits says whether an instance of cfg may start on node beside what
	// the node's other active instances hold (u). Errors: EUNAVAILABLE
	// naming the resource that ran out.
	Fits(node string, cfg api.Configuration, u NodeUsage) error
}

// Install is how a node fills the working folder of an instance it runs
// for the first time: templates, then placeholders in files.
type Install struct {
	Plan         []api.Template
	Override     bool
	Files        []string
	Placeholders map[string]string
	// RAMMB and CPU are the limits the node enforces (as the master does
	// for its own instances), where it can.
	RAMMB, CPU int
	// Health is the configuration's health check, which the node runs
	// against Port and reports (Manager.NodeHealth).
	Health *api.HealthCheck
	Port   int
}

// remote says whether info's instance runs on an agent node.
func (m *Manager) remote(info api.InstanceInfo) bool {
	return info.WrapperNodeID != "" && info.WrapperNodeID != m.opt.NodeID
}

// NodeUsage is what the instances on one node hold, for placement.
type NodeUsage struct {
	Ports     map[int]bool   // ports of every instance on it
	RAMMB     int            // reserved by its active instances
	CPU       int            // reserved by its active instances
	Instances int            // its active instances
	ByConfig  map[string]int // its active instances by configuration
}

// DefaultLostAfter is lostAfterSeconds when a configuration leaves it 0.
const DefaultLostAfter = 120 * time.Second

// NodeChanged takes a node's reachability, as the hub sees it. The
// running instances of an unreachable node show OFFLINE with a reason
// naming it (so that proxies stop routing to them) yet count as active,
// and nothing replaces them before their configuration's
// lostAfterSeconds, counted from when the master last heard from the node
// (from now if it never did since it started: a grace period). Reachable
// again, they are ONLINE, same ids and pids.
func (m *Manager) NodeChanged(node string, reachable bool, lastHeard time.Time) {
	since := lastHeard
	if since.IsZero() {
		since = m.opt.Now()
	}
	m.mu.Lock()
	ins := make([]*Instance, 0)
	for _, in := range m.instances {
		ins = append(ins, in)
	}
	m.mu.Unlock()
	var soonest time.Duration
	for _, in := range ins {
		in.mu.Lock()
		if in.info.WrapperNodeID != node || in.proc == nil {
			in.mu.Unlock()
			continue
		}
		switch {
		case !reachable && in.unreachableSince.IsZero():
			in.unreachableSince, in.info.UnreachableSince = since, since.UnixMilli()
			in.info.State = string(StateOffline)
			in.info.Reason = "its node " + node + " is unreachable (last heard " + since.UTC().Format(time.RFC3339) + "); still counted as running"
			in.changedLocked()
			if d := m.lostAfter(in.info.ConfigurationName); soonest == 0 || d < soonest {
				soonest = d
			}
		case reachable && !in.unreachableSince.IsZero():
			in.unreachableSince, in.info.UnreachableSince = time.Time{}, 0
			in.info.State = string(StateOnline)
			in.info.Reason = ""
			in.changedLocked()
		}
		in.mu.Unlock()
	}
	if soonest > 0 {
		time.AfterFunc(soonest+100*time.Millisecond, m.reconcileSoon)
	}
}

func (m *Manager) lostAfter(config string) time.Duration {
	cfg, err := m.opt.Store.GetConfiguration(config)
	if err != nil || cfg.LostAfterSeconds <= 0 {
		return DefaultLostAfter
	}
	return time.Duration(cfg.LostAfterSeconds) * time.Second
}

// loseUnreachable gives up the dynamic instances whose node has been
// unreachable for longer than their lostAfterSeconds: they are lost, and
// the reconciler replaces them under new ids (the node kills them when it
// comes back: it is told what the master has there). Static instances
// never move on their own.
func (m *Manager) loseUnreachable() {
	m.mu.Lock()
	ins := make([]*Instance, 0)
	for _, in := range m.instances {
		ins = append(ins, in)
	}
	m.mu.Unlock()
	now := m.opt.Now()
	for _, in := range ins {
		in.mu.Lock()
		since, p, static := in.unreachableSince, in.proc, in.info.Static
		config, node := in.info.ConfigurationName, in.info.WrapperNodeID
		in.mu.Unlock()
		if since.IsZero() || p == nil || static || now.Sub(since) < m.lostAfter(config) {
			continue
		}
		if l, ok := p.(interface{ Lose(reason string) }); ok {
			l.Lose("lost: its node " + node + " was unreachable for longer than lostAfterSeconds")
		}
	}
}

// usageOfNodesLocked tells what the instances on each node hold, the
// nodes counted in one pass over the instances the first time one is
// asked for (a placement asks for every candidate node). Caller holds m.mu
// while it uses the function.
func (m *Manager) usageOfNodesLocked() func(node string) NodeUsage {
	var all map[string]NodeUsage
	return func(node string) NodeUsage {
		if all == nil {
			all = map[string]NodeUsage{}
			for _, in := range m.instances {
				in.mu.Lock()
				n := in.info.WrapperNodeID
				u, ok := all[n]
				if !ok {
					u = NodeUsage{Ports: map[int]bool{}, ByConfig: map[string]int{}}
				}
				u.add(in)
				all[n] = u
				in.mu.Unlock()
			}
		}
		if u, ok := all[node]; ok {
			return u
		}
		return NodeUsage{Ports: map[int]bool{}, ByConfig: map[string]int{}}
	}
}

// add counts in (its lock held) in u.
func (u *NodeUsage) add(in *Instance) {
	u.Ports[in.info.AllocatedPort] = true
	if in.activeLocked() {
		u.RAMMB += in.info.AllocatedRAMMB
		u.CPU += in.info.AllocatedCPU
		u.Instances++
		u.ByConfig[in.info.ConfigurationName]++
	}
}

// usageExceptLocked tells what the instances on node hold, but except.
// Caller holds m.mu.
func (m *Manager) usageExceptLocked(node string, except *Instance) NodeUsage {
	u := NodeUsage{Ports: map[int]bool{}, ByConfig: map[string]int{}}
	for _, in := range m.instances {
		if in == except {
			continue
		}
		in.mu.Lock()
		if in.info.WrapperNodeID == node {
			u.add(in)
		}
		in.mu.Unlock()
	}
	return u
}

// SupervisorBinary is the name of the small supervisor-only binary
// (cmd/universe-supervisor). Next to the master's executable, it runs the
// supervisors instead of the master's own binary: it holds only what a
// supervisor needs, so each supervisor takes a fraction of the memory.
const SupervisorBinary = "universe-supervisor"

// DefaultSupervisor is the binary that runs supervisors: SupervisorBinary
// when it lies next to this executable, else this executable itself (as
// with "go run"), whose "supervise" mode does the same.
func DefaultSupervisor() string {
	exe, err := os.Executable()
	if err != nil {
		return os.Args[0]
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return os.Args[0]
	}
	sib := filepath.Join(filepath.Dir(exe), SupervisorBinary)
	if st, err := os.Stat(sib); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
		return sib
	}
	return exe
}

// SupervisorCommands are the commands that run supervisors for a node
// whose data directory is dataDir: small for the built-in runtimes (the
// supervisor-only binary next to this executable, else one built from
// source into dataDir/bin when "go run" started this one, else this
// executable), full for the others (docker: this executable, which links
// the Docker client). The master and an agent choose alike.
func SupervisorCommands(dataDir string, log *slog.Logger) (small, full []string) {
	small, full = []string{DefaultSupervisor()}, []string{selfBinary()}
	if small[0] == full[0] && dataDir != "" {
		if sup, err := FromSource(filepath.Join(dataDir, "bin")); err == nil {
			small = []string{sup}
			log.Info("supervisors run the supervisor-only binary built from source", "path", sup)
		} else if goRunExe.MatchString(filepath.ToSlash(full[0])) {
			log.Warn("supervisors run this whole binary (about 5 MiB more each)", "error", err)
		}
	}
	return small, full
}

// selfBinary is this executable.
func selfBinary() string {
	exe, err := os.Executable()
	if err != nil {
		return os.Args[0]
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return os.Args[0]
	}
	return exe
}

// supervisorFor is the supervisor command of an instance of runtime rt:
// the small supervisor binary links the built-in runtimes only.
func (m *Manager) supervisorFor(rt string) []string {
	for _, r := range runtime.Builtin() {
		if r.Name() == rt {
			return m.supervisorCmd
		}
	}
	return m.fullSupervisorCmd
}

// Validate checks a configuration (normalized) against this node: its
// runtimes, templates and the roots docker mounts may use. Errors:
// EINVALID naming every bad field.
func (m *Manager) Validate(c api.Configuration, tpl Templates) error {
	// Only the configuration's own runtime is asked whether it is usable
	// (the others are named, not checked): tmux's and screen's check
	// searches PATH, which was 4 % of a master's CPU under a stream of
	// configuration writes.
	runtimes := make(map[string]error, len(m.runtimes))
	for k, r := range m.runtimes {
		if k == c.Runtime {
			runtimes[k] = r.Available()
		} else {
			runtimes[k] = nil
		}
	}
	return Validate(c, runtimes, tpl, DockerPolicy{MountRoots: m.opt.MountRoots, ExtraCaps: m.opt.ExtraCaps})
}

// RuntimeInfos describes every runtime of this node, for GET /api/node.
// The answer is kept for runtimeInfoTTL: asking a runtime costs a search
// of PATH or a call to the engine, too much for every request.
func (m *Manager) RuntimeInfos() []api.RuntimeInfo {
	m.rtInfoMu.Lock()
	defer m.rtInfoMu.Unlock()
	if now := time.Now(); m.rtInfo == nil || now.Sub(m.rtInfoAt) > runtimeInfoTTL {
		m.rtInfo, m.rtInfoAt = m.runtimeInfos(), now
	}
	return append([]api.RuntimeInfo(nil), m.rtInfo...)
}

// runtimeInfoTTL bounds how old GET /api/node's runtime list may be.
const runtimeInfoTTL = 2 * time.Second

func (m *Manager) runtimeInfos() []api.RuntimeInfo {
	lim := m.limits.Status()
	out := make([]api.RuntimeInfo, 0, len(m.runtimes))
	for name, r := range m.runtimes {
		ri := api.RuntimeInfo{Name: name, Available: true, LimitsEnforced: lim.Enforced, LimitsReason: lim.Reason}
		if err := r.Available(); err != nil {
			ri.Available, ri.Reason = false, universe.ErrorMessage(err)
		}
		if name == DockerRuntime {
			ri.LimitsEnforced, ri.LimitsReason = true, dockerLimits
		}
		out = append(out, ri)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// containerSpec is the container of an instance of a docker configuration.
func (m *Manager) containerSpec(info api.InstanceInfo, cfg api.Configuration, rep *strings.Replacer) *runtime.ContainerSpec {
	o := cfg.DockerOptions
	c := &runtime.ContainerSpec{
		Name:  ContainerName(info.ID),
		Image: rep.Replace(cfg.Image),
		Labels: map[string]string{
			"universe.instance":      info.ID,
			"universe.configuration": cfg.Name,
			"universe.node":          m.opt.NodeID,
		},
		WorkDir:     "/data",
		User:        o.User,
		NetworkMode: o.NetworkMode,
		CapAdd:      o.CapAdd,
		PullPolicy:  o.ImagePullPolicy,
		MemoryMB:    cfg.RAMMB,
		CPU:         cfg.CPU,
	}
	for _, s := range o.Mounts {
		if mt, err := ParseMount(s, m.opt.MountRoots); err == nil {
			c.Mounts = append(c.Mounts, mt)
		}
	}
	if info.AllocatedPort > 0 {
		// Games listen on TCP, UDP or both on their port.
		c.Ports = append(c.Ports, runtime.Port{Port: info.AllocatedPort, Protocol: "tcp"}, runtime.Port{Port: info.AllocatedPort, Protocol: "udp"})
	}
	for _, ap := range cfg.AdditionalPorts {
		c.Ports = append(c.Ports, runtime.Port{Port: ap.Port, Protocol: strings.ToLower(ap.Protocol)})
	}
	if o.NetworkMode != "host" {
		c.ExtraHosts = []string{dockerHostAlias + ":host-gateway"}
	}
	return c
}

// ContainerName is the name of an instance's container.
func ContainerName(id string) string { return "universe-" + id }

// dockerHostAlias is the name a container reaches the master's machine by.
const dockerHostAlias = "host.docker.internal"

// containerURL is the master URL as a container sees it: loopback of the
// host is not the container's, so a loopback host becomes the host's alias.
func containerURL(u string, bridged bool) string {
	if !bridged {
		return u
	}
	for _, lo := range []string{"//127.0.0.1:", "//localhost:", "//[::1]:"} {
		if i := strings.Index(u, lo); i >= 0 {
			return u[:i] + "//" + dockerHostAlias + ":" + u[i+len(lo):]
		}
	}
	return u
}

// removeContainer removes the container of an instance whose supervisor
// died (the container outlives it).
func (m *Manager) removeContainer(id string) {
	r, ok := m.runtimes[DockerRuntime].(interface{ Remove(name string) error })
	if !ok {
		return
	}
	if err := r.Remove(ContainerName(id)); err != nil {
		m.log.Warn("remove the container of a lost instance", "instance", id, "err", err)
	}
}

// dockerLimits says how the docker runtime holds ramMB and cpu.
const dockerLimits = "enforced by Docker: the container's memory limit (no swap beyond it) and CPU quota"

// Runtimes maps each runtime key to why it cannot be used here (nil when it
// can), for configuration validation.
func (m *Manager) Runtimes() map[string]error {
	out := make(map[string]error, len(m.runtimes))
	for k, r := range m.runtimes {
		out[k] = r.Available()
	}
	return out
}

// SetMasterURL sets the URL instances get as UNIVERSE_MASTER_URL (before
// any instance starts; the master knows its port only once it listens).
func (m *Manager) SetMasterURL(u string) {
	m.mu.Lock()
	m.opt.MasterURL = u
	m.mu.Unlock()
}

func (m *Manager) masterURL() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.opt.MasterURL
}

func (m *Manager) runningDir(id string) string  { return filepath.Join(m.opt.DataDir, "running", id) }
func (m *Manager) staticDir(name string) string { return filepath.Join(m.opt.DataDir, "static", name) }

// stateDir holds an instance's log files and its supervisor's socket.
func (m *Manager) stateDir(id string) string { return filepath.Join(m.opt.DataDir, "instances", id) }

// dropped counts lines a supervisor's throttle dropped.
func (m *Manager) dropped(n int) { m.opt.Hooks.LogDropped("throttled", n) }

// Limits says whether resource limits are enforced on this node, and why
// not when they are not.
func (m *Manager) Limits() api.Limits { return m.limits.Status() }

func (m *Manager) isClosing() bool { return m.closing.Load() }

// Open loads the stored instance records and adopts every instance whose
// supervisor still runs: it stays ONLINE with the same pid, and its log
// goes on with the lines written meanwhile. An instance whose process
// exited meanwhile becomes OFFLINE with its exit code (and its restart
// policy applies); one whose supervisor is gone too is OFFLINE, and a
// leftover process of it is killed. Open then starts the reconciler.
func (m *Manager) Open() error {
	if m.opt.Standby {
		m.follower.Store(true) // until SetLeader(true)
	} else if err := m.load(); err != nil {
		return err
	}
	m.stopReconcile = make(chan struct{})
	m.reconcileDone = make(chan struct{})
	go m.reconciler()
	m.reconcileSoon()
	return nil
}

// load takes every record: it adopts the running instances, and arms the
// restarts and resumes that were due.
func (m *Manager) load() error {
	recs, err := m.opt.Store.ListInstances()
	if err != nil {
		return fmt.Errorf("load instances: %w", err)
	}
	var (
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
		sem   = make(chan struct{}, 16)
		// pending are the instances whose policy restart the previous
		// master had scheduled; their timers start once all are loaded.
		pending []*Instance
		// resume are the instances the previous master's graceful stop
		// stopped.
		resume []*Instance
	)
	for _, info := range recs {
		lg, err := logs.Open(m.stateDir(info.ID), m.opt.Log)
		if err != nil {
			return fmt.Errorf("open log of %s: %w", info.ID, err)
		}
		info.Transition = "" // an action the previous master did not finish is not under way
		inst := &Instance{m: m, id: info.ID, info: info, log: lg}
		if !m.remote(info) {
			m.ports.Reserve(info.ID, info.AllocatedPort)
		}
		m.instances[info.ID] = inst
		// On a node that was unreachable when the record was written: it
		// still counts as running (the node may be back), adopted as such.
		unreachable := info.UnreachableSince != 0 && m.remote(info) && info.ProcessPid != nil
		if s := State(info.State); s != StateCreating && s != StateOnline && !unreachable {
			supervisor.ClearExit(m.stateDir(info.ID))
			if info.ProcessPid != nil {
				inst.info.ProcessPid = nil
				_ = m.opt.Store.PutInstance(inst.info)
			}
			if info.NextRestartAt != 0 {
				pending = append(pending, inst) // the policy's restart is still due
			}
			if info.State == string(StateStopped) && info.Reason == reasonMasterStopped && !m.opt.NoResume {
				resume = append(resume, inst)
			}
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := m.adopt(inst); err != nil {
				errMu.Lock()
				if first == nil {
					first = err
				}
				errMu.Unlock()
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	for _, in := range pending {
		in.mu.Lock()
		delay := time.Until(time.UnixMilli(in.info.NextRestartAt))
		in.log.System("restart still due in " + max(delay, 0).Round(time.Millisecond).String() + " (scheduled before the master restarted)")
		in.armRestartLocked(max(delay, 0))
		in.mu.Unlock()
	}
	for _, in := range resume {
		in.log.System("starting again: the master's last stop stopped it")
		in.m.background(func() { _ = in.StartWait("master start (resume)") })
	}
	return nil
}

// adopt attaches to the supervisor of an instance that was running when
// the previous master stopped.
func (m *Manager) adopt(in *Instance) error {
	dir := m.stateDir(in.id)
	info := in.Info()
	if m.remote(info) {
		if m.opt.Remote == nil {
			in.setOffline("its node " + info.WrapperNodeID + " is not known to this master")
			return nil
		}
		_, _ = in.log.Mirror()
		pid := 0
		if info.ProcessPid != nil {
			pid = int(*info.ProcessPid)
		}
		p := m.opt.Remote.Adopt(info.WrapperNodeID, in.id, info.StartedAt, pid, in.log)
		in.running(p, "", nil)
		m.opt.Hooks.Adopted("running")
		if pid == 0 {
			// Its start was recorded (the epoch) but not its process: the
			// node tells the pid when it is attached to.
			go in.recordPidOnceKnown(p)
		}
		if info.UnreachableSince != 0 {
			// Its node was unreachable when its record was written (by this
			// master before a restart, or by a previous leader): so it stays
			// until the hub says otherwise, its loss counted from then.
			since := time.UnixMilli(info.UnreachableSince)
			in.mu.Lock()
			in.unreachableSince, in.info.UnreachableSince = since, info.UnreachableSince
			in.info.State, in.info.Reason = string(StateOffline), info.Reason
			in.changedLocked()
			in.mu.Unlock()
			time.AfterFunc(max(m.lostAfter(info.ConfigurationName)-m.opt.Now().Sub(since), 0)+100*time.Millisecond, m.reconcileSoon)
		}
		return nil
	}
	if _, err := in.log.Handoff(); err != nil {
		m.log.Warn("hand off the log file", "instance", in.id, "err", err)
	}
	cl, ok := supervisor.Adopt(dir, supervisor.Options{Sink: in.log, Dropped: m.dropped})
	if ok {
		select {
		case <-cl.Done():
		default:
			in.running(cl, "", nil)
			m.opt.Hooks.Adopted("running")
			m.log.Info("instance adopted", "instance", in.id, "pid", cl.Pid())
			return nil
		}
		// It exited while the master was down; the exit is recorded.
		m.opt.Hooks.Adopted("exited")
		in.mu.Lock()
		in.proc, in.exited = cl, make(chan struct{})
		in.mu.Unlock()
		in.watch(cl, in.exited)
		return nil
	}
	if supervisor.Reachable(dir) {
		// A supervisor runs but does not speak this master's protocol (a
		// binary of another version): its process is not ours to kill, nor
		// its log file ours to write.
		m.opt.Hooks.Adopted("incompatible")
		m.log.Warn("instance supervisor speaks another protocol version; left running", "instance", in.id)
		in.setOffline("its supervisor does not speak protocol v" + strconv.Itoa(supervisor.Version) +
			" of this master (started by another version?); the process was left running")
		return nil
	}
	m.opt.Hooks.Adopted("lost")
	if info.ProcessPid != nil {
		killLeftover(int(*info.ProcessPid), in.id)
	}
	if err := in.log.Takeback(0); err != nil {
		m.log.Warn("take back the log file", "instance", in.id, "err", err)
	}
	m.limits.Release(in.id)
	reason := "supervisor lost while the master was down"
	if State(info.State) == StateCreating {
		reason = "the master stopped while it was being created"
	}
	in.setOffline(reason)
	return nil
}

// Who stops the instances when the master stops gracefully, and the reason
// that leaves in their records (Open starts those again).
const (
	masterStopping      = "master shutting down"
	reasonMasterStopped = "stopped by " + masterStopping
)

// killLeftover kills the process group of pid if it is still the process
// of instance id (its environment says so; pids are reused).
func killLeftover(pid int, id string) {
	if pid <= 0 {
		return
	}
	env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil || !strings.Contains("\x00"+string(env), "\x00UNIVERSE_INSTANCE_ID="+id+"\x00") {
		return
	}
	_ = killGroup(pid)
}

// Close ends the manager. By default it stops every running instance
// gracefully (each within its stop timeout, all at once); with
// KeepInstances it detaches from them, and they run on under their
// supervisors. It waits for background actions and closes the logs.
func (m *Manager) Close() error {
	err := m.Shutdown()
	m.ReleaseSupervisors()
	return err
}

// ReleaseSupervisors lets the supervisors Shutdown kept go: each is told
// goodbye, and exits, in the background.
func (m *Manager) ReleaseSupervisors() {
	m.mu.Lock()
	held := m.held
	m.held = nil
	m.mu.Unlock()
	for _, h := range held {
		h.Release()
	}
}

// Shutdown is Close, except that the supervisors of the instances it
// stopped stay, idle, until ReleaseSupervisors: a supervisor's own exit
// (mostly the kernel's teardown of the process) is a third of its CPU in
// a stop, and with a thousand of them stopping at once, exits that came as
// soon as each instance was recorded took CPU from the stops still under
// way, and from the caller's own shutdown after them.
func (m *Manager) Shutdown() error {
	m.mu.Lock()
	m.closing.Store(true)
	all := make([]*Instance, 0, len(m.instances))
	for _, in := range m.instances {
		all = append(all, in)
	}
	m.mu.Unlock()
	if m.stopReconcile != nil {
		m.stopOnce.Do(func() { close(m.stopReconcile) })
		<-m.reconcileDone
	}
	// Each configuration is read once, not once per instance.
	cfgs := map[string]api.Configuration{}
	if list, err := m.opt.Store.ListConfigurations(); err == nil {
		for _, c := range list {
			cfgs[c.Name] = c
		}
	}
	var wg sync.WaitGroup
	for _, in := range all {
		in.mu.Lock()
		in.cancelRestartLocked()
		in.stopHeartbeat()
		p := in.proc
		remote := m.remote(in.info)
		in.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Instances on agent nodes outlive the master whatever it is
			// told: a master's stop is not the cluster's.
			if m.opt.KeepInstances || remote {
				if p != nil {
					p.Detach()
				}
				return
			}
			if h, ok := p.(holder); ok {
				h.Hold()
				m.mu.Lock()
				m.held = append(m.held, h)
				m.mu.Unlock()
			}
			in.action.Lock()
			defer in.action.Unlock()
			in.stopAs(masterStopping, "", cfgs)
		}()
	}
	wg.Wait()
	m.bg.Wait()
	for _, in := range all {
		_ = in.log.Close(nil)
	}
	return nil
}

// background runs f as a lifecycle action owned by the manager (Close waits
// for it).
func (m *Manager) background(f func()) {
	m.bg.Add(1)
	go func() {
		defer m.bg.Done()
		f()
	}()
}

// Get returns the instance with id. Errors: ENOTFOUND.
func (m *Manager) Get(id string) (*Instance, error) {
	m.mu.Lock()
	in, ok := m.instances[id]
	m.mu.Unlock()
	if !ok {
		return nil, universe.Errorf(universe.ENOTFOUND, "no instance %q", id)
	}
	return in, nil
}

// Filter selects instances in List; empty fields match all.
type Filter struct {
	State         string
	Configuration string
}

// List returns the instances that match f, ordered by creation time, then id.
func (m *Manager) List(f Filter) []api.InstanceInfo {
	m.mu.Lock()
	all := make([]*Instance, 0, len(m.instances))
	for _, in := range m.instances {
		all = append(all, in)
	}
	m.mu.Unlock()
	out := make([]api.InstanceInfo, 0, len(all))
	for _, in := range all {
		info := in.Info()
		if (f.State == "" || info.State == f.State) && (f.Configuration == "" || info.ConfigurationName == f.Configuration) {
			out = append(out, info)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].CreatedAt != out[j].CreatedAt {
			return out[i].CreatedAt < out[j].CreatedAt
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Counts returns the number of instances in each state.
func (m *Manager) Counts() map[string]int {
	out := make(map[string]int, len(States))
	for _, s := range States {
		out[string(s)] = 0
	}
	m.mu.Lock()
	all := make([]*Instance, 0, len(m.instances))
	for _, in := range m.instances {
		all = append(all, in)
	}
	m.mu.Unlock()
	for _, in := range all {
		in.mu.Lock()
		out[in.info.State]++
		in.mu.Unlock()
	}
	return out
}

// Live returns the ids of the instances of configuration name that are
// CREATING or ONLINE.
func (m *Manager) Live(name string) []string {
	var ids []string
	for _, info := range m.List(Filter{Configuration: name}) {
		if s := State(info.State); s == StateCreating || s == StateOnline {
			ids = append(ids, info.ID)
		}
	}
	return ids
}

const idChars = "abcdefghijklmnopqrstuvwxyz0123456789"

// newID returns an unused id. Caller holds m.mu.
func (m *Manager) newID() string {
	for {
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		for i := range b {
			b[i] = idChars[int(b[i])%len(idChars)]
		}
		id := string(b)
		if _, taken := m.instances[id]; !taken {
			return id
		}
	}
}

// Create makes an instance of configuration name and starts it: it
// allocates a port, stores a CREATING record, installs the templates,
// replaces placeholders and starts the process. A failure after the record
// exists leaves it OFFLINE with the reason (the record is returned with the
// error). by names who asked (for the log). Errors: ENOTFOUND (no such
// configuration), EINVALID (runtime unusable), ECONFLICT (a static
// configuration already has its instance), EUNAVAILABLE (no free port, the
// master is stopping).
func (m *Manager) Create(name, by string) (api.InstanceInfo, error) {
	return m.create(name, by, nil)
}

// create is Create; replacing (an instance lost with its node) does not
// count against the maximum, since the new one takes its place.
func (m *Manager) create(name, by string, replacing *Instance) (api.InstanceInfo, error) {
	cfg, err := m.opt.Store.GetConfiguration(name)
	if err != nil {
		return api.InstanceInfo{}, err
	}
	cfg = Normalize(cfg)
	rt, ok := m.runtimes[cfg.Runtime]
	if !ok {
		return api.InstanceInfo{}, universe.Errorf(universe.EINVALID, "configuration %s uses runtime %q, which this node does not have", name, cfg.Runtime)
	}
	if err := rt.Available(); err != nil {
		return api.InstanceInfo{}, err
	}
	m.mu.Lock()
	if m.closing.Load() {
		m.mu.Unlock()
		return api.InstanceInfo{}, universe.Errorf(universe.EUNAVAILABLE, "the master is shutting down")
	}
	if m.opt.Standby && m.follower.Load() {
		m.mu.Unlock()
		return api.InstanceInfo{}, universe.Errorf(universe.EUNAVAILABLE, "this master does not lead its cluster: the leader creates instances")
	}
	id := ""
	if cfg.Static {
		// A static configuration has one instance, whose id is its name.
		if in, ok := m.instances[name]; ok {
			m.mu.Unlock()
			return api.InstanceInfo{}, universe.Errorf(universe.ECONFLICT, "static configuration %s already has its instance %s", name, in.id)
		}
		id = name
	} else {
		id = m.newID()
	}
	if max := maxActive(cfg); max > 0 && m.activeLocked(name, replacing) >= max {
		m.mu.Unlock()
		return api.InstanceInfo{}, universe.Errorf(universe.ECONFLICT, "configuration %s has its maximum of %d active instances", name, max)
	}
	node, port, local := m.opt.NodeID, 0, true
	if m.opt.Remote != nil {
		var placed string
		if placed, port, local, err = m.opt.Remote.Place(cfg, m.usageOfNodesLocked()); err != nil {
			m.mu.Unlock()
			return api.InstanceInfo{}, err
		}
		if !local {
			node = placed
		}
	}
	if local {
		if port, err = m.ports.Allocate(id, cfg.AvailablePorts); err != nil {
			m.mu.Unlock()
			return api.InstanceInfo{}, err
		}
	}
	now := m.opt.Now()
	info := api.InstanceInfo{
		ID: id, ConfigurationName: name, WrapperNodeID: node, HostAddress: cfg.HostAddress,
		AllocatedPort: port, State: string(StateCreating), AllocatedRAMMB: cfg.RAMMB, AllocatedCPU: cfg.CPU,
		Runtime: cfg.Runtime, Static: cfg.Static, CreatedAt: now.UnixMilli(),
	}
	if !local {
		// The epoch its node will know its first process by, in the first
		// record: a master that takes over before the start is recorded
		// expects that process instead of having it killed as stale.
		info.StartedAt = now.UnixMilli()
	}
	in := &Instance{m: m, id: id, info: info}
	in.action.Lock() // nobody acts on it before it is deployed
	m.instances[id] = in
	m.mu.Unlock()
	defer in.action.Unlock()

	failed := func(err error) (api.InstanceInfo, error) {
		m.mu.Lock()
		delete(m.instances, id)
		m.mu.Unlock()
		if local {
			m.ports.Release(id, port)
		}
		if in.log != nil {
			_ = in.log.Close(nil)
		}
		_ = os.RemoveAll(m.stateDir(id))
		return api.InstanceInfo{}, err
	}
	fail := failed
	lg, err := logs.Open(m.stateDir(id), m.opt.Log)
	if err != nil {
		return fail(fmt.Errorf("open instance log: %w", err))
	}
	in.log = lg
	if m.opt.Keys != nil {
		// The key of its first process is written beside its record: the
		// two writes wait for one commit, not one after the other.
		keyc := make(chan issuedKey, 1)
		go func() {
			token, err := m.opt.Keys.IssueInstanceKey(id)
			keyc <- issuedKey{token, err}
		}()
		in.firstKey = keyc
		fail = func(err error) (api.InstanceInfo, error) {
			<-keyc
			m.opt.Keys.RevokeInstanceKeys(id)
			return failed(err)
		}
	}
	if err := m.opt.Store.PutInstance(info); err != nil {
		return fail(fmt.Errorf("store instance: %w", err))
	}
	lg.System("created from configuration " + name + " by " + by + " on node " + node + ", port " + strconv.Itoa(port))
	if !local {
		in.start(by) // the node makes its own working folder
		return in.Info(), nil
	}
	if err := m.deploy(in, cfg); err != nil {
		m.log.Warn("instance deploy failed", "instance", id, "err", err)
		if in.firstKey != nil {
			<-in.firstKey // no process took it
			in.firstKey = nil
			m.opt.Keys.RevokeInstanceKeys(id)
		}
		in.setOffline("deploy failed: " + universe.ErrorMessage(err))
		return in.Info(), nil
	}
	in.start(by)
	return in.Info(), nil
}

// maxActive is the cap on active instances of cfg (0: none).
func maxActive(cfg api.Configuration) int {
	if cfg.Static {
		return 1
	}
	return cfg.MaximumServiceCount
}

// activeLocked counts the active instances of configuration name, but
// except. Caller holds m.mu.
func (m *Manager) activeLocked(name string, except *Instance) int {
	n := 0
	for _, in := range m.instances {
		if in == except {
			continue
		}
		in.mu.Lock()
		if in.info.ConfigurationName == name && in.activeLocked() {
			n++
		}
		in.mu.Unlock()
	}
	return n
}

// admit checks that starting in keeps its configuration within its
// maximum. Errors: ECONFLICT.
func (m *Manager) admit(in *Instance) error {
	name := in.configName()
	cfg, err := m.opt.Store.GetConfiguration(name)
	if err != nil {
		return nil // start reports it
	}
	cfg = Normalize(cfg)
	max := maxActive(cfg)
	if max == 0 {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.activeLocked(name, in) >= max {
		return universe.Errorf(universe.ECONFLICT, "configuration %s has its maximum of %d active instances", name, max)
	}
	// Counted from now on, so that a concurrent start or create sees it.
	in.mu.Lock()
	in.info.State = string(StateCreating)
	in.mu.Unlock()
	return nil
}

// deploy prepares the working dir: templates (dynamic instances only) and
// placeholder replacement in fileModifications.
func (m *Manager) deploy(in *Instance, cfg api.Configuration) error {
	dir := m.workDir(in.Info())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create working dir: %w", err)
	}
	if !cfg.Static {
		plan, err := m.opt.Templates.Plan(cfg.TemplateInstallationConfig, mrand.IntN)
		if err != nil {
			return err
		}
		n, err := m.opt.Templates.Install(dir, plan, cfg.TemplateInstallationConfig.OnTemplatePasteOverridePresentFiles)
		if err != nil {
			return err
		}
		if len(plan) > 0 {
			names := make([]string, len(plan))
			for i, t := range plan {
				names[i] = t.Group + "/" + t.Name
			}
			in.log.System(fmt.Sprintf("installed %d files from %s", n, strings.Join(names, ", ")))
		}
	}
	rep, _ := m.vars(in.Info(), cfg).Replacer()
	return ApplyFileModifications(dir, cfg.FileModifications, rep, func(msg string) {
		in.log.System(msg)
		m.log.Warn(msg, "instance", in.id)
	})
}

// ApplyFileModifications replaces the placeholders of rep in the files of
// dir that files lists (paths inside dir only); what it skips it says
// through say.
func ApplyFileModifications(dir string, files []string, rep *strings.Replacer, say func(string)) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("open working dir: %w", err)
	}
	defer root.Close()
	for _, f := range files {
		data, err := root.ReadFile(f)
		if errors.Is(err, fs.ErrNotExist) {
			say("fileModifications: " + f + " does not exist; skipped")
			continue
		} else if err != nil {
			say("fileModifications: " + f + " cannot be read; skipped")
			continue
		}
		if !isText(data) {
			say("fileModifications: " + f + " is not UTF-8 text; left untouched")
			continue
		}
		out := rep.Replace(string(data))
		if out == string(data) {
			continue
		}
		fi, _ := root.Stat(f)
		if err := root.WriteFile(f, []byte(out), fi.Mode().Perm()); err != nil {
			return fmt.Errorf("write %s: %w", f, err)
		}
	}
	return nil
}

func (m *Manager) workDir(info api.InstanceInfo) string {
	if info.Static {
		return m.staticDir(info.ConfigurationName)
	}
	return m.runningDir(info.ID)
}

func (m *Manager) vars(info api.InstanceInfo, cfg api.Configuration) Vars {
	node := info.WrapperNodeID
	if node == "" {
		node = m.opt.NodeID
	}
	return Vars{Port: info.AllocatedPort, InstanceID: info.ID, NodeID: node, Configuration: cfg, MasterURL: m.masterURL()}
}

// DropOrphans deletes the instances of configuration name that do not run
// while the configuration does not exist: they can never start again. An
// instance of it that runs is deleted once it exits (see watch).
func (m *Manager) DropOrphans(name, by string) {
	if _, err := m.opt.Store.GetConfiguration(name); universe.ErrorCode(err) != universe.ENOTFOUND {
		return
	}
	for _, info := range m.List(Filter{Configuration: name}) {
		in, err := m.Get(info.ID)
		if err != nil || in.Running() || State(info.State) == StateCreating {
			continue
		}
		if err := m.Delete(info.ID, by+" (its configuration "+name+" was deleted)"); err != nil && universe.ErrorCode(err) != universe.ENOTFOUND {
			m.log.Warn("delete an instance of a deleted configuration", "instance", info.ID, "err", err)
		}
	}
}

// Delete stops the instance gracefully, then removes its record, its log
// and (dynamic instances) its working dir. Live-log subscribers get a final
// state frame. Errors: ENOTFOUND.
func (m *Manager) Delete(id, by string) error {
	in, err := m.Get(id)
	if err != nil {
		return err
	}
	in.action.Lock()
	defer in.action.Unlock()
	if in.isDeleted() {
		return universe.Errorf(universe.ENOTFOUND, "no instance %q", id)
	}
	in.stop(by)
	in.mu.Lock()
	in.deleted = true
	info := in.info
	in.mu.Unlock()
	if err := m.opt.Store.DeleteInstance(id); err != nil {
		return fmt.Errorf("delete instance record: %w", err)
	}
	m.mu.Lock()
	delete(m.instances, id)
	m.mu.Unlock()
	m.ports.Release(id, info.AllocatedPort)
	_ = in.log.Close(&info)
	if !info.Static {
		if err := os.RemoveAll(m.runningDir(id)); err != nil {
			m.log.Warn("remove working dir", "instance", id, "err", err)
		}
	}
	if err := os.RemoveAll(m.stateDir(id)); err != nil {
		m.log.Warn("remove state dir", "instance", id, "err", err)
	}
	if m.opt.Keys != nil {
		m.opt.Keys.RevokeInstanceKeys(id)
	}
	m.reconcileConfig(info.ConfigurationName)
	m.log.Info("instance deleted", "instance", id, "by", by)
	return nil
}

// WorkDir returns the working directory of instance id on this machine.
// Errors: ENOTFOUND; EUNAVAILABLE for an instance on an agent node (its
// files are on that machine).
func (m *Manager) WorkDir(id string) (string, error) {
	in, err := m.Get(id)
	if err != nil {
		return "", err
	}
	info := in.Info()
	if m.remote(info) {
		return "", universe.Errorf(universe.EUNAVAILABLE, "instance %s runs on node %s: its files are served only for instances on the master's machine in this release", id, info.WrapperNodeID)
	}
	return m.workDir(info), nil
}

// Local reports whether info's instance runs on this machine.
func (m *Manager) Local(info api.InstanceInfo) bool { return !m.remote(info) }

// event tells the Event hook, if any.
func (m *Manager) event(typ string, info api.InstanceInfo, message string, data map[string]any) {
	if m.opt.Hooks.Event != nil {
		m.opt.Hooks.Event(typ, info, message, data)
	}
}
