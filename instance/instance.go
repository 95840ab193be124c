package instance

import (
	"bytes"
	"encoding/json"
	"errors"
	mrand "math/rand/v2"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/instance/logs"
	"github.com/universe-orchestrator/universe/instance/runtime"
	"github.com/universe-orchestrator/universe/instance/supervisor"
)

// process is a running instance process as the manager sees it: its
// supervisor's client.
type process interface {
	runtime.Process
	ExitReason() string
	Begin()
	Detach()
	Detached() bool
	Lost() bool
	NextSeq() uint64
	Collected()
	Unsent() []string
}

var _ process = (*supervisor.Client)(nil)

// holder is a process whose supervisor can be kept, once it has reported
// the exit, until released (supervisor.Client.Hold): Close stops every
// instance before any supervisor exits.
type holder interface {
	Hold()
	Release()
}

var _ holder = (*supervisor.Client)(nil)

// profiler is a process whose supervisor serves Go profiles (supervisor
// clients here, and instances on agent nodes through their node).
type profiler interface {
	Profile(name string, seconds int) ([]byte, error)
}

var _ profiler = (*supervisor.Client)(nil)

// Instance is one instance of this node. Lifecycle actions (start, stop,
// restart, delete) are serialised by a per-instance lock; Kill bypasses it.
type Instance struct {
	m      *Manager
	id     string
	action sync.Mutex // serialises lifecycle actions
	log    *logs.Log

	mu    sync.Mutex // guards the fields below
	info  api.InstanceInfo
	proc  process
	epoch int64 // epoch ms of the current start (StartedAt)
	// unreachableSince is when the master last heard from the node of an
	// instance on an unreachable agent node (zero: reachable). Such an
	// instance shows OFFLINE yet counts as active, until lostAfterSeconds.
	unreachableSince time.Time
	exited           chan struct{} // closed when the current process's exit is recorded
	stopping         string        // who asked for the running process to stop ("" = nobody)
	failing          string        // the stop is a failure (heartbeat timeout), not a request
	deleted          bool
	released         bool // a standby manager let it go: another master runs it now

	// restart policy
	restartTimer *time.Timer // a pending restart
	backoff      time.Duration
	failures     []time.Time // recent unrequested exits
	heartbeat    *time.Timer // armed once the instance reported its state

	// reportAt is when the master last took a state report (its clock).
	reportAt time.Time
	// health: the check's loop of the current process, and its count of
	// failures in a row.
	healthStop  func()
	healthFails int

	// firstKey is the key Create issued beside the instance's first
	// record (the two writes share a commit), for its first start.
	firstKey <-chan issuedKey
}

// issuedKey is the outcome of IssueInstanceKey.
type issuedKey struct {
	token string
	err   error
}

// ID returns the instance id.
func (in *Instance) ID() string { return in.id }

// Log returns the instance's log.
func (in *Instance) Log() *logs.Log { return in.log }

// Info returns a copy of the instance's record.
func (in *Instance) Info() api.InstanceInfo {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.copyInfo()
}

func (in *Instance) copyInfo() api.InstanceInfo {
	info := in.info
	info.ReportedAt = in.reportAt
	p := in.m.joinParams(info.ConfigurationName)
	info.Maintenance = p.maintenance
	info.Joinable = joinable(info, p, in.m.opt.Now())
	if info.Properties != nil {
		p := make(map[string]any, len(info.Properties))
		for k, v := range info.Properties {
			p[k] = v
		}
		info.Properties = p
	}
	return info
}

func (in *Instance) configName() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.info.ConfigurationName
}

func (in *Instance) isDeleted() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.deleted
}

// Running says whether the instance's process runs.
func (in *Instance) Running() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.proc != nil
}

// activeLocked says whether the instance counts against its
// configuration's minimum and maximum: CREATING, ONLINE, or waiting for a
// restart of its policy. Caller holds in.mu.
func (in *Instance) activeLocked() bool {
	s := State(in.info.State)
	return !in.deleted && (s == StateCreating || s == StateOnline || in.restartTimer != nil || in.info.Transition == TransitionRestarting ||
		(!in.unreachableSince.IsZero() && in.proc != nil))
}

// Lifecycle transitions (InstanceInfo.Transition).
const (
	TransitionStarting   = "starting"
	TransitionStopping   = "stopping"
	TransitionRestarting = "restarting"
)

// beginTransition shows that action t is under way (a restart covers the
// stop and start it is made of).
func (in *Instance) beginTransition(t string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.deleted || in.info.Transition == t || (in.info.Transition == TransitionRestarting && t != TransitionRestarting) {
		return
	}
	in.info.Transition = t
	in.changedLocked()
}

// endTransition shows that action t is over.
func (in *Instance) endTransition(t string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.info.Transition != t {
		return
	}
	in.info.Transition = ""
	in.changedLocked()
}

// changedLocked stores the record and tells subscribers, hooks and the
// reconciler. Caller holds in.mu.
func (in *Instance) changedLocked() { in.changed(false) }

// changedQueuedLocked is changedLocked without waiting for the record's
// commit (storage's PutInstanceQueued): for a change the next master can
// learn again should this one stop before the commit (a local process
// running: its supervisor is adopted). Caller holds in.mu.
func (in *Instance) changedQueuedLocked() { in.changed(true) }

func (in *Instance) changed(queued bool) {
	info := in.copyInfo()
	if in.deleted || in.released {
		return
	}
	if queued {
		id, log := in.id, in.m.log
		in.m.opt.Store.PutInstanceQueued(info, func(err error) {
			log.Error("store instance", "instance", id, "err", err)
		})
	} else if err := in.m.opt.Store.PutInstance(info); err != nil {
		in.m.log.Error("store instance", "instance", in.id, "err", err)
	}
	in.log.State(info)
	in.m.reconcileConfig(info.ConfigurationName)
}

func (in *Instance) setOffline(reason string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.info.State = string(StateOffline)
	in.info.Reason = reason
	in.info.ProcessPid = nil
	in.log.System(reason)
	in.changedLocked()
}

// startFailed records a start that failed: OFFLINE with the reason, and
// the restart policy's backoff applies as after a failed run (a node that
// does not answer, a start refused for capacity), so the story does not
// end with one try. Start failures are not crashes: they do not count
// toward the crash loop.
func (in *Instance) startFailed(reason string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.info.State = string(StateOffline)
	in.info.Reason = reason
	in.info.ProcessPid = nil
	in.log.System(reason)
	in.retryLocked()
	in.changedLocked()
}

// retryLocked arms a restart after a failed start, with the restart
// policy's backoff, when the policy restarts after failures. Caller holds
// in.mu.
func (in *Instance) retryLocked() {
	m := in.m
	if m.isClosing() || in.deleted || in.restartTimer != nil {
		return
	}
	cfg, err := m.opt.Store.GetConfiguration(in.info.ConfigurationName)
	if err != nil {
		return
	}
	if cfg = Normalize(cfg); cfg.RestartPolicy != api.RestartAlways && cfg.RestartPolicy != api.RestartOnFailure {
		return
	}
	b := m.opt.Restart
	delay := max(in.backoff, b.Base)
	in.backoff = min(delay*2, b.Max)
	in.info.NextRestartAt = m.opt.Now().Add(delay).UnixMilli()
	in.log.System("trying again in " + delay.String() + " (restart policy " + cfg.RestartPolicy + ")")
	in.armRestartLocked(delay)
}

// reserve checks that the instance fits on its node beside the node's
// other active instances, and counts it as active from now on (CREATING),
// under the manager's lock: concurrent starts and creates see it.
func (m *Manager) reserve(in *Instance, cfg api.Configuration) error {
	if m.opt.Remote == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	in.mu.Lock()
	node := in.info.WrapperNodeID
	in.mu.Unlock()
	if err := m.opt.Remote.Fits(node, cfg, m.usageExceptLocked(node, in)); err != nil {
		return err
	}
	in.mu.Lock()
	in.info.State = string(StateCreating)
	in.mu.Unlock()
	return nil
}

// start starts the process under a new supervisor. Caller holds
// in.action. Failures leave the instance OFFLINE with the reason.
func (in *Instance) start(by string) {
	firstKey := in.firstKey // this start's only (a next one revokes it)
	in.firstKey = nil
	in.cancelRestart()
	if in.Running() {
		return
	}
	m := in.m
	info := in.Info()
	cfg, err := m.opt.Store.GetConfiguration(info.ConfigurationName)
	if err != nil {
		in.startFailed("cannot start: " + universe.ErrorMessage(err))
		return
	}
	cfg = Normalize(cfg)
	remote := m.remote(info)
	if remote && m.opt.Remote == nil {
		in.startFailed("cannot start: its node " + info.WrapperNodeID + " is not known to this master")
		return
	}
	if !remote {
		rt, ok := m.runtimes[cfg.Runtime]
		if !ok {
			in.startFailed("cannot start: runtime " + cfg.Runtime + " is not available")
			return
		}
		if err := rt.Available(); err != nil {
			in.startFailed("cannot start: " + universe.ErrorMessage(err))
			return
		}
	}
	if err := m.reserve(in, cfg); err != nil {
		in.startFailed("cannot start: " + universe.ErrorMessage(err))
		return
	}
	rep, host := m.vars(info, cfg).Replacer()
	docker := cfg.Runtime == DockerRuntime
	env := make([]string, 0, len(cfg.EnvironmentVariables)+4)
	for k, v := range cfg.EnvironmentVariables {
		if _, ours := MasterEnv[k]; !ours {
			env = append(env, k+"="+rep.Replace(v))
		}
	}
	env = append(env,
		"UNIVERSE_INSTANCE_ID="+in.id,
		"UNIVERSE_MASTER_URL="+containerURL(m.masterURL(), docker && cfg.DockerOptions.NetworkMode != "host"),
		"UNIVERSE_CONFIGURATION="+info.ConfigurationName,
	)
	if m.opt.Keys != nil {
		// A fresh key for every process: the one of the previous process
		// is revoked. The first start takes the one Create issued.
		var token string
		var err error
		if firstKey != nil {
			k := <-firstKey
			token, err = k.token, k.err
		} else {
			token, err = m.opt.Keys.IssueInstanceKey(in.id)
		}
		if err != nil {
			in.startFailed("cannot start: cannot issue the instance's key")
			m.log.Error("issue instance key", "instance", in.id, "err", err)
			return
		}
		env = append(env, "UNIVERSE_API_KEY="+token)
	}
	if !docker && !remote {
		// A container has its image's environment, a node adds its own
		// base (cluster/agent).
		env = runtime.MergeEnv(m.baseEnv, env)
	}
	var limits *api.Limits
	var cgroup string
	var container *runtime.ContainerSpec
	switch {
	case docker:
		limits = &api.Limits{Enforced: true, Reason: dockerLimits}
		container = m.containerSpec(info, cfg, rep)
	case remote:
		limits = &api.Limits{Enforced: false, Reason: "the node did not say"} // replaced by the node's answer
	default:
		limits, cgroup = m.limits.Prepare(in.id, cfg.RAMMB, cfg.CPU)
	}
	handoff := in.log.Handoff
	if remote {
		handoff = in.log.Mirror // numbered on the node, kept here as well
	}
	next, err := handoff()
	if err != nil {
		m.log.Warn("hand off the log file", "instance", in.id, "err", err)
	}
	spec := supervisor.Spec{
		InstanceID: in.id, Runtime: cfg.Runtime, Dir: m.workDir(info), Command: rep.Replace(cfg.Command), Env: env,
		StartedBy: by, NextSeq: next, LineRate: m.opt.Log.LineRate, FileBytes: m.opt.Log.FileBytes,
		FileCount: m.opt.Log.FileCount, Cgroup: cgroup, Container: container,
	}
	var p process
	epoch := m.opt.Now().UnixMilli()
	if remote && State(info.State) == StateCreating && info.StartedAt != 0 && info.ProcessPid == nil {
		epoch = info.StartedAt // the first start: Create recorded it with the first record
	}
	// What the previous process reported goes now, before the new one can
	// report: a report it makes at once is not wiped when it is recorded
	// as running.
	in.mu.Lock()
	in.epoch = epoch
	in.info.LastHeartbeat = 0
	in.info.ReportedState = ""
	in.info.Players, in.info.MaxPlayers = 0, 0
	if remote && in.info.StartedAt != epoch {
		// A node's process is known by its start's epoch: recorded before
		// the node is told, so that a master that takes over (this one
		// restarted, or a new leader) expects the process the node may
		// already run, rather than have the node kill it as stale.
		in.info.StartedAt = epoch
		in.changedLocked()
	}
	in.mu.Unlock()
	if remote {
		install := Install{Override: cfg.TemplateInstallationConfig.OnTemplatePasteOverridePresentFiles, Files: cfg.FileModifications,
			Placeholders: m.vars(info, cfg).Values(), RAMMB: cfg.RAMMB, CPU: cfg.CPU, Health: cfg.HealthCheck, Port: info.AllocatedPort}
		if !cfg.Static && m.opt.Templates != nil {
			if install.Plan, err = m.opt.Templates.Plan(cfg.TemplateInstallationConfig, mrand.IntN); err != nil {
				_ = in.log.Takeback(0)
				in.startFailed("cannot start: " + universe.ErrorMessage(err))
				return
			}
		}
		p, err = m.opt.Remote.Start(info.WrapperNodeID, epoch, spec, install, in.log)
		if l, ok := p.(interface{ Limits() *api.Limits }); ok && err == nil && l.Limits() != nil {
			limits = l.Limits()
		}
	} else {
		p, err = supervisor.Start(m.supervisorFor(cfg.Runtime), m.stateDir(in.id), spec, supervisor.Options{Sink: in.log, Dropped: m.dropped})
	}
	if err != nil {
		_ = in.log.Takeback(0)
		m.limits.Release(in.id)
		in.startFailed("cannot start: " + universe.ErrorMessage(err))
		return
	}
	in.running(p, host, limits)
}

// running records that p runs and watches it. host and limits are those of
// a process just started; an adopted one passes "" and nil and keeps its
// record's.
func (in *Instance) running(p process, host string, limits *api.Limits) {
	pid := int64(p.Pid())
	exited := make(chan struct{})
	in.mu.Lock()
	in.proc, in.exited, in.stopping, in.failing = p, exited, "", ""
	in.unreachableSince, in.info.UnreachableSince = time.Time{}, 0
	in.info.State = string(StateOnline)
	in.info.Lost = false
	if host != "" {
		in.info.HostAddress = host
		in.info.StartedAt = in.epoch // a node's process is known by it
		in.info.ExitCode = nil
	}
	if limits != nil {
		in.info.LimitsEnforced, in.info.LimitsReason = limits.Enforced, limits.Reason
	}
	in.info.ProcessPid = &pid
	in.info.Reason = ""
	in.info.NextRestartAt = 0
	local := !in.m.remote(in.info)
	if local {
		in.armHealthLocked(p) // (a node checks its own instances: NodeHealth)
	} else if cfg, err := in.m.opt.Store.GetConfiguration(in.info.ConfigurationName); err == nil && cfg.HealthCheck != nil {
		in.info.Health, in.info.HealthError = api.HealthUnknown, ""
	}
	if local {
		// Not waited for: should this master stop before the commit, the
		// next one adopts the running supervisor and records this again.
		// The audit entry of the request that started it commits after
		// it, before the answer.
		in.changedQueuedLocked()
	} else {
		// A node's process is known by its start's epoch: the next
		// leader must find it in the record.
		in.changedLocked()
	}
	in.mu.Unlock()
	p.Begin()
	in.m.opt.Hooks.Started()
	in.m.event(api.EventInstanceStarted, in.Info(), "started, pid "+strconv.FormatInt(pid, 10), map[string]any{"pid": pid})
	in.m.background(func() { in.watch(p, exited) })
}

// recordPidOnceKnown records the pid of p, a node's process adopted
// without one, once its node has told it (within a minute), unless p is no
// longer the instance's process.
func (in *Instance) recordPidOnceKnown(p process) {
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		select {
		case <-p.Done():
			return
		default:
		}
		pid := int64(p.Pid())
		if pid <= 0 {
			continue
		}
		in.mu.Lock()
		if in.proc == p && (in.info.ProcessPid == nil || *in.info.ProcessPid <= 0) {
			in.info.ProcessPid = &pid
			in.changedLocked()
		}
		in.mu.Unlock()
		return
	}
}

// watch records the exit of p and applies the restart policy.
func (in *Instance) watch(p process, exited chan struct{}) {
	<-p.Done()
	if p.Detached() {
		close(exited) // the master leaves; the process runs on
		return
	}
	code := p.ExitCode()
	reason := p.ExitReason()
	lost := p.Lost()
	if err := in.log.Takeback(p.NextSeq()); err != nil {
		in.m.log.Warn("take back the log file", "instance", in.id, "err", err)
	}
	for _, line := range p.Unsent() {
		in.log.System(line)
	}
	p.Collected()
	in.m.limits.Release(in.id)
	in.mu.Lock()
	defer close(exited)
	defer in.mu.Unlock()
	if in.proc != p {
		return
	}
	pid := 0
	if in.info.ProcessPid != nil {
		pid = int(*in.info.ProcessPid)
	}
	in.proc = nil
	in.stopHeartbeat()
	in.stopHealthLocked()
	in.info.Draining, in.info.DrainDeadline = false, 0 // a drain ends with its process
	if in.info.Health != "" {
		in.info.Health, in.info.HealthError = api.HealthUnknown, ""
	}
	in.info.ProcessPid = nil
	in.info.ExitCode = &code
	var metric string
	failed, lostRemote := false, false
	switch {
	case lost && in.m.remote(in.info):
		// Nothing of it is on this machine; its node knows (or is gone).
		lostRemote = true
		in.info.ExitCode = nil
		in.info.State = string(StateOffline)
		in.info.Reason = reason
		if in.info.Reason == "" {
			in.info.Reason = "lost on its node " + in.info.WrapperNodeID
		}
		in.unreachableSince, in.info.UnreachableSince = time.Time{}, 0
		metric, failed = "failed", true
		in.log.System(in.info.Reason)
	case lost:
		switch {
		case in.info.Runtime == DockerRuntime:
			in.m.removeContainer(in.id)
		default:
			killLeftover(pid, in.id)
		}
		in.info.ExitCode = nil
		in.info.State = string(StateOffline)
		in.info.Reason = "supervisor lost: the process is gone"
		metric, failed = "failed", true
		in.log.System(in.info.Reason)
	case in.failing != "":
		in.info.State = string(StateOffline)
		in.info.Reason = in.failing
		metric, failed = "failed", true
		in.log.System("exited with code " + strconv.Itoa(code) + " after " + in.failing)
	case in.stopping != "":
		in.info.State = string(StateStopped)
		in.info.Reason = "stopped by " + in.stopping
		metric = "stopped"
		if code == 128+int(syscall.SIGKILL) {
			metric = "killed" // it did not stop when asked (or was killed)
		}
		in.log.System("exited with code " + strconv.Itoa(code) + ", stopped by " + in.stopping)
	case reason != "":
		in.info.State = string(StateOffline)
		in.info.Reason = reason
		metric, failed = "killed", true
		in.log.System(reason + " (exit code " + strconv.Itoa(code) + ")")
	case code > 128:
		in.info.State = string(StateOffline)
		in.info.Reason = "killed by signal " + strconv.Itoa(code-128)
		metric, failed = "killed", true
		in.log.System("killed by signal " + strconv.Itoa(code-128))
	default:
		in.info.State = string(StateOffline)
		in.info.Reason = "exited with code " + strconv.Itoa(code)
		metric = "exited"
		if code != 0 {
			metric, failed = "failed", true
		}
		in.log.System("exited with code " + strconv.Itoa(code))
	}
	requested := in.stopping != "" && in.failing == ""
	in.stopping, in.failing = "", ""
	if in.info.Transition == TransitionStopping {
		in.info.Transition = "" // the process is gone
	}
	switch {
	case requested:
	case lostRemote && !in.info.Static:
		// Lost with its node: replaced under a new id on a node that can
		// host it; this record says lost and goes then. (A static one
		// never moves: its policy starts it again where it is.)
		in.info.Lost = true
		in.replaceLocked(0)
	default:
		in.policyLocked(failed)
	}
	in.changedLocked()
	in.m.opt.Hooks.Exited(metric)
	switch info := in.copyInfo(); {
	case requested:
		in.m.event(api.EventInstanceStopped, info, "stopped: "+info.Reason, map[string]any{"exitCode": code})
	case lostRemote:
		in.m.event(api.EventInstanceLost, info, info.Reason, nil)
	case failed || code != 0:
		in.m.event(api.EventInstanceCrashed, info, "crashed: "+info.Reason, map[string]any{"exitCode": code, "reason": reason})
	default:
		in.m.event(api.EventInstanceStopped, info, "exited with code 0, nobody asked", map[string]any{"exitCode": code})
	}
	// An instance whose configuration was deleted goes once it has stopped.
	if name := in.info.ConfigurationName; !in.deleted && !in.m.isClosing() {
		if _, err := in.m.opt.Store.GetConfiguration(name); universe.ErrorCode(err) == universe.ENOTFOUND {
			in.m.background(func() { in.m.DropOrphans(name, "the master") })
		}
	}
}

// policyLocked applies the restart policy after an exit nobody asked for:
// a restart after a backoff (1 s doubling to 5 min; back to 1 s after 10
// min of running), unless the instance crash-loops. Caller holds in.mu.
func (in *Instance) policyLocked(failed bool) {
	m := in.m
	if m.isClosing() || in.deleted {
		return
	}
	cfg, err := m.opt.Store.GetConfiguration(in.info.ConfigurationName)
	if err != nil {
		return
	}
	cfg = Normalize(cfg)
	switch {
	case cfg.RestartPolicy == api.RestartAlways:
	case cfg.RestartPolicy == api.RestartOnFailure && failed:
	default:
		return
	}
	now := m.opt.Now()
	window := time.Duration(cfg.CrashLoopWindowSeconds) * time.Second
	recent := in.failures[:0]
	for _, t := range in.failures {
		if now.Sub(t) < window {
			recent = append(recent, t)
		}
	}
	in.failures = append(recent, now)
	if len(in.failures) >= cfg.CrashLoopFailures {
		in.info.Reason = "crash loop: " + strconv.Itoa(len(in.failures)) + " exits within " + window.String() + "; not restarting until started again"
		in.log.System(in.info.Reason)
		in.failures, in.backoff = nil, 0
		m.opt.Hooks.CrashLoop()
		m.event(api.EventInstanceCrashLoop, in.copyInfo(), in.info.Reason, map[string]any{"exits": cfg.CrashLoopFailures})
		m.log.Warn("instance crash loop", "instance", in.id)
		return
	}
	b := m.opt.Restart
	ran := now.Sub(time.UnixMilli(in.info.StartedAt))
	if in.backoff == 0 || ran >= b.Reset {
		in.backoff = b.Base
	}
	delay := in.backoff
	in.backoff = min(in.backoff*2, b.Max)
	in.info.NextRestartAt = now.Add(delay).UnixMilli()
	in.log.System("restarting in " + delay.String() + " (restart policy " + cfg.RestartPolicy + ")")
	in.armRestartLocked(delay)
}

// armRestartLocked starts the timer of a pending restart (NextRestartAt is
// set): after delay, the instance starts unless something cancelled it.
func (in *Instance) armRestartLocked(delay time.Duration) {
	m := in.m
	if in.info.Lost {
		in.restartTimer = time.AfterFunc(delay, func() { m.background(func() { m.replaceLost(in) }) })
		return
	}
	in.restartTimer = time.AfterFunc(delay, func() {
		m.background(func() {
			in.action.Lock()
			defer in.action.Unlock()
			in.mu.Lock()
			pending := in.restartTimer != nil && !in.deleted && in.proc == nil
			if pending {
				in.info.Restarts++
			}
			in.mu.Unlock()
			if pending && !m.isClosing() {
				m.opt.Hooks.Restarted()
				m.event(api.EventInstanceRestarted, in.Info(), "restarted by its restart policy", nil)
				in.start("restart policy")
			}
		})
	})
}

// replaceLocked arms the replacement of an instance lost with its node
// (info.Lost) after delay. While it is pending the instance counts as
// active, so the reconciler does not replace it a second time. Caller
// holds in.mu.
func (in *Instance) replaceLocked(delay time.Duration) {
	if in.m.isClosing() || in.deleted {
		return
	}
	in.info.NextRestartAt = in.m.opt.Now().Add(delay).UnixMilli()
	in.armRestartLocked(delay)
}

// replaceLost creates the replacement of in, an instance lost with its
// node, placed where one fits now, and deletes in. When no node can host
// one, it tries again with the restart policy's backoff (1 s doubling to
// 5 min), for as long as it takes, saying why in the record.
func (m *Manager) replaceLost(in *Instance) {
	in.action.Lock()
	in.mu.Lock()
	pending := in.restartTimer != nil && !in.deleted && in.proc == nil && in.info.Lost
	name, node := in.info.ConfigurationName, in.info.WrapperNodeID
	in.mu.Unlock()
	if !pending || m.isClosing() {
		in.action.Unlock()
		return
	}
	info, err := m.create(name, "reconciler (replacing "+in.id+", lost with its node "+node+")", in)
	switch code := universe.ErrorCode(err); {
	case err == nil, code == universe.ENOTFOUND, code == universe.ECONFLICT:
		// Replaced; or its configuration is gone, or at its maximum
		// without it: either way this record goes.
		in.action.Unlock()
		by := "the reconciler (replaced by " + info.ID + ")"
		if err != nil {
			by = "the reconciler (not replaced: " + universe.ErrorMessage(err) + ")"
		}
		m.log.Info("lost instance replaced", "instance", in.id, "node", node, "by", info.ID, "err", err)
		if err == nil {
			m.event(api.EventInstanceReplaced, in.Info(), "replaced by "+info.ID+" (lost with its node "+node+")",
				map[string]any{"replacementId": info.ID, "replacementNode": info.WrapperNodeID})
		}
		_ = m.Delete(in.id, by)
		return
	}
	defer in.action.Unlock()
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.restartTimer == nil || in.deleted { // cancelled meanwhile
		return
	}
	b := m.opt.Restart
	delay := max(in.backoff, b.Base)
	in.backoff = min(delay*2, b.Max)
	in.info.Reason = "lost with its node " + node + "; not replaced yet: " + universe.ErrorMessage(err)
	in.log.System(in.info.Reason + "; trying again in " + delay.String())
	in.restartTimer = nil
	in.replaceLocked(delay)
	in.changedLocked()
}

// cancelRestart drops a pending restart of the policy.
func (in *Instance) cancelRestart() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.cancelRestartLocked()
}

func (in *Instance) cancelRestartLocked() {
	if in.restartTimer != nil {
		in.restartTimer.Stop()
		in.restartTimer = nil
		in.info.NextRestartAt = 0
	}
}

// resetPolicy forgets recent failures: an operator started it.
func (in *Instance) resetPolicy() {
	in.mu.Lock()
	in.failures, in.backoff = nil, 0
	in.mu.Unlock()
}

// stop stops the process gracefully: the stop command on stdin (or SIGTERM
// to its group), then SIGKILL to the group after the stop timeout. It
// returns once the exit is recorded. Caller holds in.action.
func (in *Instance) stop(by string) {
	in.stopAs(by, "", nil)
}

// stopAs stops the process; with failure set the exit counts as that
// failure (the restart policy applies) rather than as a request.
// With cfgs (the manager's Close: every instance stops at once) its
// configuration is taken from there instead of read from the store.
func (in *Instance) stopAs(by, failure string, cfgs map[string]api.Configuration) {
	in.mu.Lock()
	if failure == "" {
		in.cancelRestartLocked()
	}
	p, exited := in.proc, in.exited
	if p == nil {
		in.mu.Unlock()
		return
	}
	in.stopping, in.failing = by, failure
	in.mu.Unlock()
	cfg, ok := cfgs[in.configName()]
	if !ok {
		var err error
		if cfg, err = in.m.opt.Store.GetConfiguration(in.configName()); err != nil {
			cfg = api.Configuration{} // deleted meanwhile: SIGTERM and the default timeout
		}
	}
	cfg = Normalize(cfg)
	timeout := time.Duration(cfg.StopTimeoutSeconds) * time.Second
	if cfg.StopCommand != "" {
		in.log.System("stopping (by " + by + "): sending \"" + cfg.StopCommand + "\"")
		if err := p.WriteLine(cfg.StopCommand); err != nil {
			_ = p.Signal(syscall.SIGTERM)
		}
	} else {
		in.log.System("stopping (by " + by + "): SIGTERM")
		_ = p.Signal(syscall.SIGTERM)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-exited:
		return
	case <-t.C:
	}
	in.log.System("did not stop within " + timeout.String() + ": killing its process group")
	err := p.Signal(syscall.SIGKILL)
	if in.m.remote(in.Info()) {
		// Its node may not answer (a partition): the stop is not waited
		// for forever; the node's exit report ends it when it comes.
		select {
		case <-exited:
		case <-time.After(remoteKillWait):
			in.log.System("its node " + in.Info().WrapperNodeID + " did not confirm the kill (" + universe.ErrorMessage(err) + ")")
		}
		return
	}
	<-exited
}

// remoteKillWait bounds how long a stop waits for the node of an instance
// to report the exit after the kill.
const remoteKillWait = 10 * time.Second

// Profile takes Go profile name of the instance's supervisor (see
// supervisor.Profiles); "profile" is its CPU over seconds. Errors:
// ENOTFOUND, EINVALID, ECONFLICT (not running), EUNAVAILABLE.
func (in *Instance) Profile(name string, seconds int) ([]byte, error) {
	if err := supervisor.ValidProfile(name, seconds); err != nil {
		return nil, err
	}
	in.mu.Lock()
	p := in.proc
	in.mu.Unlock()
	pr, ok := p.(profiler)
	if !ok {
		return nil, universe.Errorf(universe.ECONFLICT, "the instance is not running")
	}
	return pr.Profile(name, seconds)
}

// Start starts a stopped instance in the background (202) unless it runs
// already (done=true, nothing to do). Errors: ENOTFOUND (deleted),
// ECONFLICT (its configuration is at its maximum).
func (in *Instance) Start(by string) (accepted bool, err error) {
	if in.isDeleted() {
		return false, universe.Errorf(universe.ENOTFOUND, "no instance %q", in.id)
	}
	if in.Running() {
		return false, nil
	}
	if err := in.m.admit(in); err != nil {
		return false, err
	}
	in.beginTransition(TransitionStarting)
	in.m.background(func() { _ = in.StartWait(by) })
	return true, nil
}

// Stop stops the instance in the background (202) unless it is not
// running; a pending restart of the policy is cancelled either way.
func (in *Instance) Stop(by string) (accepted bool, err error) {
	if in.isDeleted() {
		return false, universe.Errorf(universe.ENOTFOUND, "no instance %q", in.id)
	}
	if !in.Running() {
		in.cancelPendingAsStop(by)
		return false, nil
	}
	in.beginTransition(TransitionStopping)
	in.m.background(func() { in.StopWait(by) })
	return true, nil
}

// cancelPendingAsStop turns a pending policy restart into STOPPED.
func (in *Instance) cancelPendingAsStop(by string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.restartTimer == nil {
		return
	}
	in.cancelRestartLocked()
	in.info.State = string(StateStopped)
	in.info.Reason = "stopped by " + by
	in.log.System("pending restart cancelled by " + by)
	in.changedLocked()
}

// Restart stops (if running) and starts the instance again in the
// background, with the same id and working dir.
func (in *Instance) Restart(by string) error {
	if in.isDeleted() {
		return universe.Errorf(universe.ENOTFOUND, "no instance %q", in.id)
	}
	// Its stop would delete it (DropOrphans) and the start find nothing:
	// refuse, saying why, instead.
	if name := in.configName(); name != "" {
		if _, err := in.m.opt.Store.GetConfiguration(name); universe.ErrorCode(err) == universe.ENOTFOUND {
			return universe.Errorf(universe.ECONFLICT, "its configuration %s was deleted: it cannot start again, and is deleted when it stops", name)
		}
	}
	in.beginTransition(TransitionRestarting)
	in.m.background(func() { _ = in.RestartWait(by) })
	return nil
}

// StartWait starts the instance (if not running) and returns when it has
// started or failed to. Errors: ENOTFOUND (deleted), ECONFLICT (maximum).
func (in *Instance) StartWait(by string) error {
	in.action.Lock()
	defer in.action.Unlock()
	defer in.endTransition(TransitionStarting)
	if in.isDeleted() {
		return universe.Errorf(universe.ENOTFOUND, "no instance %q", in.id)
	}
	if !in.Running() {
		if err := in.m.admit(in); err != nil {
			return err
		}
		in.beginTransition(TransitionStarting)
	}
	in.resetPolicy()
	in.start(by)
	return nil
}

// RestartWait restarts the instance and returns when it has started again
// or failed to. Errors: ENOTFOUND (deleted).
func (in *Instance) RestartWait(by string) error {
	in.action.Lock()
	defer in.action.Unlock()
	in.beginTransition(TransitionRestarting)
	defer in.endTransition(TransitionRestarting)
	return in.restart(by)
}

func (in *Instance) restart(by string) error {
	if in.isDeleted() {
		return universe.Errorf(universe.ENOTFOUND, "no instance %q", in.id)
	}
	in.stop(by)
	in.mu.Lock()
	in.info.Restarts++
	in.mu.Unlock()
	in.resetPolicy()
	in.start(by)
	return nil
}

// StopWait stops the instance (if running) and returns when it has
// stopped: after any action queued before it.
func (in *Instance) StopWait(by string) {
	in.action.Lock()
	defer in.action.Unlock()
	defer in.endTransition(TransitionStopping)
	if !in.Running() {
		in.cancelPendingAsStop(by)
		return
	}
	in.beginTransition(TransitionStopping)
	in.stop(by)
}

// Kill sends SIGKILL to the whole process group at once, bypassing the
// lifecycle lock. The exit is recorded as STOPPED, killed by by. Errors:
// ECONFLICT when it is not running.
func (in *Instance) Kill(by string) error {
	in.mu.Lock()
	p := in.proc
	if p == nil {
		in.mu.Unlock()
		return universe.Errorf(universe.ECONFLICT, "instance %s is not running", in.id)
	}
	in.cancelRestartLocked()
	in.stopping, in.failing = by+" (killed)", ""
	if in.info.Transition == "" {
		in.info.Transition = TransitionStopping // until watch records the exit
		in.changedLocked()
	}
	in.mu.Unlock()
	in.log.System("killed by " + by)
	return p.Signal(syscall.SIGKILL)
}

// Execute writes line to the instance's stdin. Errors: EINVALID (more than
// one line), ECONFLICT (not running), EUNAVAILABLE (its input is full).
func (in *Instance) Execute(line string) error {
	if bytes.ContainsAny([]byte(line), "\r\n\x00") {
		return universe.Errorf(universe.EINVALID, "command must be one line")
	}
	in.mu.Lock()
	p := in.proc
	in.mu.Unlock()
	if p == nil {
		return universe.Errorf(universe.ECONFLICT, "instance %s is not running", in.id)
	}
	return p.WriteLine(line)
}

// ReportState records what a plugin inside the instance reports: its
// heartbeat, its own view of its state (kept as reportedState) and any
// other fields (kept under properties; null removes one). A report never
// overrides what the supervisor observed: an instance that reports STOPPED
// or OFFLINE while its process runs is taken as asking to be stopped, and
// is stopped for real (it stays ONLINE until its process has exited). While
// the process runs, a report arms the heartbeat timeout of its
// configuration. Errors: EINVALID for an unknown state or properties beyond
// the limits.
func (in *Instance) ReportState(r api.StateReport) (api.InstanceInfo, error) {
	if r.State != "" && !State(r.State).Valid() {
		return api.InstanceInfo{}, universe.Errorf(universe.EINVALID, "state must be one of CREATING, ONLINE, OFFLINE, STOPPED")
	}
	lim := in.m.opt.Reports
	// Player counts are fields of their own (proxies balance on them).
	players, maxPlayers := -1, -1
	for key, dst := range map[string]*int{"players": &players, "maxPlayers": &maxPlayers} {
		raw, ok := r.Extra[key]
		if !ok {
			continue
		}
		var n float64
		if err := json.Unmarshal(raw, &n); err != nil || n < 0 || n > 1e9 || n != float64(int(n)) {
			return api.InstanceInfo{}, universe.Errorf(universe.EINVALID, "%s must be a whole number from 0", key)
		}
		*dst = int(n)
	}
	props := make(map[string]any, len(r.Extra))
	for k, raw := range r.Extra {
		if k == "players" || k == "maxPlayers" {
			continue
		}
		if len(k) > lim.MaxKeyBytes {
			return api.InstanceInfo{}, universe.Errorf(universe.EINVALID, "property names are at most %d bytes long", lim.MaxKeyBytes)
		}
		if len(raw) > lim.MaxValueBytes {
			return api.InstanceInfo{}, universe.Errorf(universe.EINVALID, "property %q is longer than %d bytes", k, lim.MaxValueBytes)
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return api.InstanceInfo{}, universe.Errorf(universe.EINVALID, "field %q is not valid JSON", k)
		}
		props[k] = v // nil: remove
	}
	timeout := time.Duration(0)
	if cfg, err := in.m.opt.Store.GetConfiguration(in.configName()); err == nil {
		timeout = time.Duration(cfg.HeartbeatTimeoutSeconds) * time.Second
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.deleted {
		return api.InstanceInfo{}, universe.Errorf(universe.ENOTFOUND, "no instance %q", in.id)
	}
	n := len(in.info.Properties)
	for k, v := range props {
		_, had := in.info.Properties[k]
		switch {
		case v == nil && had:
			n--
		case v != nil && !had:
			n++
		}
	}
	if n > lim.MaxProperties {
		return api.InstanceInfo{}, universe.Errorf(universe.EINVALID, "an instance keeps at most %d properties; remove some by setting them to null", lim.MaxProperties)
	}
	if r.State != "" {
		in.info.ReportedState = r.State
	}
	effP, effM := in.info.Players, in.info.MaxPlayers
	if players >= 0 {
		effP = players
	}
	if maxPlayers >= 0 {
		effM = maxPlayers
	}
	if (players >= 0 || maxPlayers >= 0) && effP > effM && (maxPlayers >= 0 || effM > 0) {
		// What an instance reports is a hint: more players than it has
		// room for is not a count to scale on.
		return api.InstanceInfo{}, universe.Errorf(universe.EINVALID, "players (%d) must not exceed maxPlayers (%d)", effP, effM)
	}
	if players >= 0 {
		in.info.Players = players
	}
	if maxPlayers >= 0 {
		in.info.MaxPlayers = maxPlayers
	}
	in.reportAt = in.m.opt.Now()
	if hook := in.m.opt.Hooks.Reported; hook != nil {
		defer hook(in.info.ConfigurationName)
	}
	if r.LastHeartbeat != 0 {
		in.info.LastHeartbeat = r.LastHeartbeat
	} else {
		in.info.LastHeartbeat = in.m.opt.Now().UnixMilli()
	}
	for k, v := range props {
		if v == nil {
			delete(in.info.Properties, k)
			continue
		}
		if in.info.Properties == nil {
			in.info.Properties = map[string]any{}
		}
		in.info.Properties[k] = v
	}
	if len(in.info.Properties) == 0 {
		in.info.Properties = nil
	}
	if timeout > 0 && in.proc != nil {
		in.armHeartbeatLocked(in.proc, timeout)
	}
	// A process being started (CREATING) is stopped once it has started.
	starting := in.proc == nil && State(in.info.State) == StateCreating
	if s := State(r.State); (s == StateStopped || s == StateOffline) && (in.proc != nil || starting) && in.stopping == "" {
		in.log.System("the instance reported " + r.State + ": stopping it")
		static := in.info.Static
		in.m.background(func() {
			by := "its own report (" + r.State + ")"
			in.StopWait(by)
			if !static {
				// A dynamic instance that says it is done goes: the
				// reconciler replaces it under its create backoff, and
				// reports cannot pile up stopped records.
				_ = in.m.Delete(in.id, by)
			}
		})
	}
	in.changedLocked()
	return in.copyInfo(), nil
}

// armHeartbeatLocked (re)starts the heartbeat timeout of process p. Caller
// holds in.mu.
func (in *Instance) armHeartbeatLocked(p process, timeout time.Duration) {
	if in.heartbeat != nil {
		in.heartbeat.Reset(timeout)
		return
	}
	in.heartbeat = time.AfterFunc(timeout, func() {
		in.m.background(func() {
			in.action.Lock()
			defer in.action.Unlock()
			in.mu.Lock()
			current := in.proc == p && in.heartbeat != nil
			in.mu.Unlock()
			if !current {
				return
			}
			in.log.System("no heartbeat for " + timeout.String() + ": heartbeat timeout")
			in.m.opt.Hooks.HeartbeatTimeout()
			in.stopAs("heartbeat timeout", "heartbeat timeout", nil)
		})
	})
}

// stopHeartbeat disarms the heartbeat timeout. Caller holds in.mu.
func (in *Instance) stopHeartbeat() {
	if in.heartbeat != nil {
		in.heartbeat.Stop()
		in.heartbeat = nil
	}
}

func isText(b []byte) bool {
	return utf8.Valid(b) && bytes.IndexByte(b, 0) < 0
}

func killGroup(pid int) error {
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}
