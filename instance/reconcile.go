package instance

import (
	"time"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/instance/logs"
)

// reconcileSoon asks for a reconciler pass over every configuration. It
// never blocks.
func (m *Manager) reconcileSoon() {
	m.reconcileMu.Lock()
	m.reconcileAll = true
	m.reconcileMu.Unlock()
	m.wakeReconciler()
}

// reconcileConfig asks for a reconciler pass over one configuration (its
// instance exited or was deleted, it was stored or deleted): a change to
// one configuration does not cost a pass over all of them, which under a
// stream of configuration writes grew with their number. It never blocks.
func (m *Manager) reconcileConfig(name string) {
	m.reconcileMu.Lock()
	if !m.reconcileAll {
		if m.reconcileNames == nil {
			m.reconcileNames = map[string]struct{}{}
		}
		m.reconcileNames[name] = struct{}{}
	}
	m.reconcileMu.Unlock()
	m.wakeReconciler()
}

func (m *Manager) wakeReconciler() {
	select {
	case m.reconcile <- struct{}{}:
	default:
	}
}

// SetLeader tells the manager whether this master leads its cluster: the
// reconciler (creates below minimums, losses of unreachable instances)
// runs on the leader only, from the moment it gains the leadership to the
// moment it loses it. A master alone is always its own leader.
//
// A standby manager (Options.Standby) runs the instances only while it
// leads: gaining the leadership, it loads every record and adopts each
// instance on its node (the records are the cluster's: the previous
// leader wrote them); losing it, it lets them go, running, for the next
// leader to adopt. Its writes of records are fenced by its term, so what
// it still writes after it was deposed is refused.
func (m *Manager) SetLeader(leader bool) {
	if !m.opt.Standby {
		m.follower.Store(!leader)
		if leader {
			m.reconcileSoon()
		}
		return
	}
	m.leadMu.Lock()
	defer m.leadMu.Unlock()
	if leader == !m.follower.Load() {
		return
	}
	if !leader {
		m.follower.Store(true)
		m.release()
		return
	}
	if err := m.load(); err != nil {
		m.log.Error("load the cluster's instances", "err", err)
	}
	m.follower.Store(false)
	m.reconcileSoon()
}

// Take adopts an instance whose record reached the state without this
// manager (a single master's record carried into its new cluster) while
// it leads; one it has, or a follower, does nothing.
func (m *Manager) Take(info api.InstanceInfo) {
	if !m.opt.Standby {
		return
	}
	m.leadMu.Lock()
	defer m.leadMu.Unlock()
	if m.follower.Load() {
		return
	}
	m.mu.Lock()
	if _, ok := m.instances[info.ID]; ok {
		m.mu.Unlock()
		return
	}
	lg, err := logs.Open(m.stateDir(info.ID), m.opt.Log)
	if err != nil {
		m.mu.Unlock()
		m.log.Error("open the log of a carried instance", "instance", info.ID, "err", err)
		return
	}
	info.Transition = ""
	in := &Instance{m: m, id: info.ID, info: info, log: lg}
	m.instances[info.ID] = in
	m.mu.Unlock()
	if s := State(info.State); s == StateCreating || s == StateOnline {
		if err := m.adopt(in); err != nil {
			m.log.Error("adopt a carried instance", "instance", info.ID, "err", err)
		}
	}
	m.reconcileSoon()
}

// release lets every instance go (a standby manager that stopped
// leading): its process runs on under its node, for the next leader.
func (m *Manager) release() {
	m.mu.Lock()
	all := make([]*Instance, 0, len(m.instances))
	for _, in := range m.instances {
		all = append(all, in)
	}
	m.instances = map[string]*Instance{}
	m.mu.Unlock()
	for _, in := range all {
		in.mu.Lock()
		in.released = true
		in.cancelRestartLocked()
		in.stopHeartbeat()
		in.stopHealthLocked()
		p := in.proc
		in.mu.Unlock()
		if p != nil {
			p.Detach()
		}
		if in.log != nil {
			_ = in.log.Close(nil)
		}
		m.ports.Release(in.id, in.info.AllocatedPort)
	}
	if len(all) > 0 {
		m.log.Info("no longer the leader: instances left to the next one", "instances", len(all))
	}
}

// ConfigurationChanged tells the reconciler the configuration name was
// stored or deleted.
func (m *Manager) ConfigurationChanged(name string) {
	m.forgetParams()
	m.reconcileConfig(name)
}

// reconciler keeps every configuration at its minimumServiceCount of
// active instances: one pass whenever something changed, and a full pass
// every Resync. It is the only creator of instances besides the API, and
// creates go through Create, which checks the maximum under the manager's
// lock: concurrent calls cannot push a configuration above it.
func (m *Manager) reconciler() {
	defer close(m.reconcileDone)
	t := time.NewTicker(m.opt.Resync)
	defer t.Stop()
	for {
		select {
		case <-m.stopReconcile:
			return
		case <-m.reconcile:
		case <-t.C:
			m.reconcileMu.Lock()
			m.reconcileAll = true
			m.reconcileMu.Unlock()
		}
		m.reconcileMu.Lock()
		all, names := m.reconcileAll, m.reconcileNames
		m.reconcileAll, m.reconcileNames = false, nil
		m.reconcileMu.Unlock()
		if all {
			m.reconcilePass()
		} else if len(names) > 0 {
			m.reconcileNamed(names)
		}
	}
}

// createRetry is the reconciler's memory of its creates for one
// configuration: instances it has to replace again and again (they crash,
// fail to deploy, get deleted) are replaced with a growing delay.
type createRetry struct {
	last  time.Time     // last pass that created
	delay time.Duration // current delay; 0 = none
	until time.Time     // no create before
}

// reconcilePass creates the instances missing below each configuration's
// minimum. Replacing within the backoff's reset period (10 min) of the
// previous create doubles a delay (1 s to 5 min) before the next one, so a
// configuration whose instances cannot run does not spawn without end. An
// instance that failed stops counting as active as soon as it is OFFLINE
// without a pending restart.
func (m *Manager) reconcilePass() {
	if m.follower.Load() {
		return // in a cluster of masters, only the leader reconciles
	}
	m.loseUnreachable()
	cfgs, err := m.opt.Store.ListConfigurationsWanted()
	if err != nil {
		m.log.Error("reconciler: list configurations", "err", err)
		return
	}
	m.reconcileConfigs(cfgs)
}

// reconcileNamed is reconcilePass over the configurations named only.
func (m *Manager) reconcileNamed(names map[string]struct{}) {
	if m.follower.Load() {
		return
	}
	m.loseUnreachable()
	cfgs := make([]api.Configuration, 0, len(names))
	for name := range names {
		cfg, err := m.opt.Store.GetConfiguration(name)
		if universe.ErrorCode(err) == universe.ENOTFOUND {
			continue // deleted: nothing to keep running
		} else if err != nil {
			m.log.Error("reconciler: read configuration", "configuration", name, "err", err)
			continue
		}
		cfgs = append(cfgs, cfg)
	}
	m.reconcileConfigs(cfgs)
}

// reconcileConfigs creates what each of cfgs misses.
func (m *Manager) reconcileConfigs(cfgs []api.Configuration) {
	now := m.opt.Now()
	b := m.opt.Restart
	var wait time.Duration
	for _, cfg := range cfgs {
		cfg = Normalize(cfg)
		want := cfg.MinimumServiceCount
		if cfg.Static && want > 1 {
			want = 1
		}
		if want == 0 {
			continue
		}
		m.mu.Lock()
		have := m.activeLocked(cfg.Name, nil)
		closing := m.closing.Load()
		m.mu.Unlock()
		if closing {
			return
		}
		// (Instances lost with their node stay active until their own
		// replacement runs: Instance.replaceLocked.)
		if have >= want {
			continue
		}
		r := m.createBackoff[cfg.Name]
		if r == nil {
			r = &createRetry{}
			m.createBackoff[cfg.Name] = r
		}
		if now.Before(r.until) {
			if d := r.until.Sub(now); wait == 0 || d < wait {
				wait = d
			}
			continue
		}
		if !r.last.IsZero() && now.Sub(r.last) < b.Reset {
			r.delay = min(max(r.delay*2, b.Base), b.Max)
		} else {
			r.delay = 0
		}
		r.last, r.until = now, now.Add(r.delay)
		if cfg.Static {
			if in, err := m.Get(cfg.Name); err == nil {
				_ = in.StartWait("reconciler") // the static instance exists: start it again
				continue
			}
		}
		for ; have < want; have++ {
			info, err := m.Create(cfg.Name, "reconciler")
			if universe.ErrorCode(err) == universe.ECONFLICT {
				break // at its maximum
			}
			if err != nil || info.State != string(StateOnline) {
				m.log.Warn("reconciler: create failed", "configuration", cfg.Name, "err", err, "reason", info.Reason)
				break
			}
		}
	}
	if wait > 0 {
		time.AfterFunc(wait, m.reconcileSoon)
	}
}
