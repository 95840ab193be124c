package instance

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/instance/logs"
	"github.com/universe-orchestrator/universe/instance/runtime"
)

// Instance is one instance of this node. Lifecycle actions (start, stop,
// restart, delete) are serialised by a per-instance lock; Kill bypasses it.
type Instance struct {
	m      *Manager
	id     string
	action sync.Mutex // serialises lifecycle actions
	log    *logs.Log

	mu       sync.Mutex // guards the fields below
	info     api.InstanceInfo
	proc     runtime.Process
	exited   chan struct{} // closed when the current process's exit is recorded
	stopping string        // who asked for the running process to stop ("" = nobody)
	deleted  bool
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

// changed stores the record and tells subscribers and hooks. Caller holds
// in.mu.
func (in *Instance) changedLocked() {
	info := in.copyInfo()
	if in.deleted {
		return
	}
	if err := in.m.opt.Store.PutInstance(info); err != nil {
		in.m.log.Error("store instance", "instance", in.id, "err", err)
	}
	in.log.State(info)
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

// start starts the process. Caller holds in.action. Failures leave the
// instance OFFLINE with the reason.
func (in *Instance) start(by string) {
	if in.Running() {
		return
	}
	m := in.m
	info := in.Info()
	cfg, err := m.opt.Store.GetConfiguration(info.ConfigurationName)
	if err != nil {
		in.setOffline("cannot start: " + universe.ErrorMessage(err))
		return
	}
	cfg = Normalize(cfg)
	rt, ok := m.runtimes[cfg.Runtime]
	if !ok {
		in.setOffline("cannot start: runtime " + cfg.Runtime + " is not available")
		return
	}
	rep, host := m.vars(info, cfg).Replacer()
	env := make([]string, 0, len(m.baseEnv)+len(cfg.EnvironmentVariables)+3)
	env = append(env, m.baseEnv...)
	for k, v := range cfg.EnvironmentVariables {
		env = append(env, k+"="+rep.Replace(v))
	}
	env = append(env,
		"UNIVERSE_INSTANCE_ID="+in.id,
		"UNIVERSE_MASTER_URL="+m.masterURL(),
		"UNIVERSE_CONFIGURATION="+info.ConfigurationName,
	)
	lg := in.log
	// Output waits until the start is recorded, so that the log and the
	// live-log show "started" and ONLINE before the first line of output.
	started := make(chan struct{})
	p, err := rt.Start(runtime.Spec{
		Dir:     m.workDir(info),
		Command: rep.Replace(cfg.Command),
		Env:     env,
		Output: func(stream string, lines []string) {
			<-started
			lg.Write(stream, lines)
		},
	})
	if err != nil {
		in.setOffline("cannot start: " + universe.ErrorMessage(err))
		return
	}
	pid := int64(p.Pid())
	exited := make(chan struct{})
	in.mu.Lock()
	in.proc, in.exited, in.stopping = p, exited, ""
	in.info.State = string(StateOnline)
	in.info.HostAddress = host
	in.info.ProcessPid = &pid
	in.info.StartedAt = m.opt.Now().UnixMilli()
	in.info.ExitCode = nil
	in.info.Reason = ""
	lg.System("started pid " + strconv.FormatInt(pid, 10) + " (by " + by + ")")
	in.changedLocked()
	in.mu.Unlock()
	close(started)
	m.opt.Hooks.Started()
	m.background(func() { in.watch(p, exited) })
}

// watch records the exit of p.
func (in *Instance) watch(p runtime.Process, exited chan struct{}) {
	<-p.Done()
	code := p.ExitCode()
	in.log.Flush()
	in.mu.Lock()
	defer close(exited)
	defer in.mu.Unlock()
	if in.proc != p {
		return
	}
	in.proc = nil
	in.info.ProcessPid = nil
	in.info.ExitCode = &code
	var metric string
	switch {
	case in.stopping != "":
		in.info.State = string(StateStopped)
		in.info.Reason = "stopped by " + in.stopping
		metric = "stopped"
		in.log.System("exited with code " + strconv.Itoa(code) + ", stopped by " + in.stopping)
	case code > 128:
		in.info.State = string(StateOffline)
		in.info.Reason = "killed by signal " + strconv.Itoa(code-128)
		metric = "killed"
		in.log.System("killed by signal " + strconv.Itoa(code-128))
	default:
		in.info.State = string(StateOffline)
		in.info.Reason = "exited with code " + strconv.Itoa(code)
		metric = "exited"
		if code != 0 {
			metric = "failed"
		}
		in.log.System("exited with code " + strconv.Itoa(code))
	}
	in.stopping = ""
	in.changedLocked()
	in.m.opt.Hooks.Exited(metric)
}

// stop stops the process gracefully: the stop command on stdin (or SIGTERM
// to its group), then SIGKILL to the group after the stop timeout. It
// returns once the exit is recorded. Caller holds in.action.
func (in *Instance) stop(by string) {
	in.mu.Lock()
	p, exited := in.proc, in.exited
	if p == nil {
		in.mu.Unlock()
		return
	}
	in.stopping = by
	in.mu.Unlock()
	cfg, err := in.m.opt.Store.GetConfiguration(in.configName())
	if err != nil {
		cfg = api.Configuration{} // deleted meanwhile: SIGTERM and the default timeout
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
	_ = p.Signal(syscall.SIGKILL)
	<-exited
}

// Start starts a stopped instance in the background (202) unless it runs
// already (done=true, nothing to do). Errors: ENOTFOUND (deleted).
func (in *Instance) Start(by string) (accepted bool, err error) {
	if in.isDeleted() {
		return false, universe.Errorf(universe.ENOTFOUND, "no instance %q", in.id)
	}
	if in.Running() {
		return false, nil
	}
	in.m.background(func() { _ = in.StartWait(by) })
	return true, nil
}

// Stop stops the instance in the background (202) unless it is not
// running.
func (in *Instance) Stop(by string) (accepted bool, err error) {
	if in.isDeleted() {
		return false, universe.Errorf(universe.ENOTFOUND, "no instance %q", in.id)
	}
	if !in.Running() {
		return false, nil
	}
	in.m.background(func() { in.StopWait(by) })
	return true, nil
}

// Restart stops (if running) and starts the instance again in the
// background, with the same id and working dir.
func (in *Instance) Restart(by string) error {
	if in.isDeleted() {
		return universe.Errorf(universe.ENOTFOUND, "no instance %q", in.id)
	}
	in.m.background(func() { _ = in.RestartWait(by) })
	return nil
}

// StartWait starts the instance (if not running) and returns when it has
// started or failed to. Errors: ENOTFOUND (deleted).
func (in *Instance) StartWait(by string) error {
	in.action.Lock()
	defer in.action.Unlock()
	if in.isDeleted() {
		return universe.Errorf(universe.ENOTFOUND, "no instance %q", in.id)
	}
	in.start(by)
	return nil
}

// RestartWait restarts the instance and returns when it has started again
// or failed to. Errors: ENOTFOUND (deleted).
func (in *Instance) RestartWait(by string) error {
	in.action.Lock()
	defer in.action.Unlock()
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
	in.start(by)
	return nil
}

// StopWait stops the instance (if running) and returns when it has
// stopped: after any action queued before it.
func (in *Instance) StopWait(by string) {
	in.action.Lock()
	defer in.action.Unlock()
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
	in.stopping = by + " (killed)"
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
// state, heartbeat and any other fields (kept under properties). Errors:
// EINVALID for an unknown state.
func (in *Instance) ReportState(r api.StateReport) (api.InstanceInfo, error) {
	if r.State != "" && !State(r.State).Valid() {
		return api.InstanceInfo{}, universe.Errorf(universe.EINVALID, "state must be one of CREATING, ONLINE, OFFLINE, STOPPED")
	}
	props := make(map[string]any, len(r.Extra))
	for k, raw := range r.Extra {
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return api.InstanceInfo{}, universe.Errorf(universe.EINVALID, "field %q is not valid JSON", k)
		}
		props[k] = v
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.deleted {
		return api.InstanceInfo{}, universe.Errorf(universe.ENOTFOUND, "no instance %q", in.id)
	}
	if r.State != "" {
		in.info.State = r.State
	}
	if r.LastHeartbeat != 0 {
		in.info.LastHeartbeat = r.LastHeartbeat
	} else {
		in.info.LastHeartbeat = in.m.opt.Now().UnixMilli()
	}
	if len(props) > 0 {
		if in.info.Properties == nil {
			in.info.Properties = map[string]any{}
		}
		for k, v := range props {
			in.info.Properties[k] = v
		}
	}
	in.changedLocked()
	return in.copyInfo(), nil
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
