package scaling

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/universe-orchestrator/universe/api"
)

// Env is what the scaler acts through (the master's instance manager).
type Env interface {
	Configurations() ([]api.Configuration, error)
	// Instances are every instance the master runs (all configurations).
	Instances() []api.InstanceInfo
	// Start creates and starts an instance of the configuration; it
	// returns once it runs or failed.
	Start(configuration string) error
	// Stop stops an instance (and deletes it, unless static).
	Stop(id, reason string) error
	// Decided tells of a decision (the event log, metrics).
	Decided(configuration string, d api.ScalingDecision, n Numbers)
}

// Interval is the longest time between two passes.
const Interval = 2 * time.Second

// WarmUp is how long a scaler that just started (a master that started or
// became the leader) waits before it starts or stops for headroom: the
// instances' reports, which it holds in memory, come back first.
const WarmUp = 10 * time.Second

// keptDecisions is how many decisions a configuration keeps.
const keptDecisions = 100

// Scaler runs the passes: every Interval, and at once when Trigger says
// the picture changed (a report, a health change).
type Scaler struct {
	// WarmUp overrides the package's WarmUp (tests).
	WarmUp  time.Duration
	env     Env
	now     func() time.Time
	log     *slog.Logger
	trigger chan struct{}

	mu     sync.Mutex
	mem    map[string]*Memory
	status map[string]*status
	since  time.Time // when Run began (the warm-up)
}

type status struct {
	n         Numbers
	decisions []api.ScalingDecision // oldest first, at most keptDecisions
}

// New makes a scaler.
func New(env Env, now func() time.Time, log *slog.Logger) *Scaler {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Scaler{env: env, now: now, log: log, trigger: make(chan struct{}, 1), mem: map[string]*Memory{}, status: map[string]*status{}}
}

// Trigger asks for a pass soon; it never blocks.
func (s *Scaler) Trigger() {
	select {
	case s.trigger <- struct{}{}:
	default:
	}
}

// Run passes until ctx ends.
func (s *Scaler) Run(ctx context.Context) {
	s.mu.Lock()
	s.since = s.now()
	s.mu.Unlock()
	t := time.NewTicker(Interval)
	defer t.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.trigger:
			// Reports come in bursts (a thousand instances every few
			// seconds): one pass per MinGap takes them all in.
			if wait := MinGap - time.Since(last); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
		}
		last = time.Now()
		s.Pass(ctx)
	}
}

// MinGap is the shortest time between two passes a trigger asks for.
const MinGap = 100 * time.Millisecond

// Pass decides for every configuration once, and acts.
func (s *Scaler) Pass(ctx context.Context) {
	cfgs, err := s.env.Configurations()
	if err != nil {
		s.log.Warn("scaling: list configurations", "err", err)
		return
	}
	by := map[string][]api.InstanceInfo{}
	for _, in := range s.env.Instances() {
		by[in.ConfigurationName] = append(by[in.ConfigurationName], in)
	}
	now := s.now()
	s.mu.Lock()
	warmUp := WarmUp
	if s.WarmUp > 0 {
		warmUp = s.WarmUp
	}
	warm := now.Sub(s.since) < warmUp
	for name := range s.mem {
		if !hasConfig(cfgs, name) {
			delete(s.mem, name)
			delete(s.status, name)
		}
	}
	type todo struct {
		cfg string
		a   Action
		n   Numbers
	}
	var work []todo
	for _, cfg := range cfgs {
		mem := s.mem[cfg.Name]
		if mem == nil {
			mem = NewMemory()
			s.mem[cfg.Name] = mem
		}
		acts, n := Decide(cfg, by[cfg.Name], mem, now)
		st := s.status[cfg.Name]
		if st == nil {
			st = &status{}
			s.status[cfg.Name] = st
		}
		st.n = n
		for _, a := range acts {
			if warm && a.Reason != ReasonDrained && a.Reason != ReasonDrainDeadline {
				continue // the reports come back first
			}
			switch {
			case a.Start:
				mem.Pending++
				mem.LastStart = now
				mem.LastNone = ""
			case a.InstanceID != "":
				mem.Stopping[a.InstanceID] = true
				mem.LastNone = ""
			default:
				if a.Why == mem.LastNone {
					continue // said already
				}
				mem.LastNone = a.Why
			}
			work = append(work, todo{cfg.Name, a, n})
		}
	}
	s.mu.Unlock()
	for _, w := range work {
		d := api.ScalingDecision{Time: now.UTC(), Action: "none", Cause: w.a.Reason, Reason: w.a.Why, InstanceID: w.a.InstanceID,
			Desired: w.n.Desired, Actual: w.n.Actual, Joinable: w.n.Joinable, Starting: w.n.Starting}
		switch {
		case w.a.Start:
			d.Action = "start"
			go s.start(ctx, w.cfg)
		case w.a.InstanceID != "":
			d.Action = "stop"
			go s.stop(w.cfg, w.a)
		}
		s.record(w.cfg, d, w.n)
	}
}

func hasConfig(cfgs []api.Configuration, name string) bool {
	for _, c := range cfgs {
		if c.Name == name {
			return true
		}
	}
	return false
}

func (s *Scaler) start(ctx context.Context, cfg string) {
	err := s.env.Start(cfg)
	s.mu.Lock()
	mem := s.mem[cfg]
	if mem != nil {
		mem.Pending = max(mem.Pending-1, 0)
		if err != nil {
			mem.Failed(s.now())
		} else {
			mem.Started()
		}
	}
	s.mu.Unlock()
	if err != nil {
		s.log.Warn("scaling: start failed", "configuration", cfg, "err", err)
		s.record(cfg, api.ScalingDecision{Time: s.now().UTC(), Action: "none", Reason: "the start failed: " + err.Error()}, Numbers{})
	}
	if ctx.Err() == nil {
		s.Trigger()
	}
}

func (s *Scaler) stop(cfg string, a Action) {
	err := s.env.Stop(a.InstanceID, "scaling: "+a.Why)
	if err != nil {
		s.log.Warn("scaling: stop failed", "instance", a.InstanceID, "err", err)
	}
	s.mu.Lock()
	if mem := s.mem[cfg]; mem != nil {
		delete(mem.Stopping, a.InstanceID)
	}
	s.mu.Unlock()
}

func (s *Scaler) record(cfg string, d api.ScalingDecision, n Numbers) {
	s.mu.Lock()
	st := s.status[cfg]
	if st == nil {
		st = &status{}
		s.status[cfg] = st
	}
	st.decisions = append(st.decisions, d)
	if len(st.decisions) > keptDecisions {
		st.decisions = append(st.decisions[:0:0], st.decisions[len(st.decisions)-keptDecisions:]...)
	}
	s.mu.Unlock()
	s.env.Decided(cfg, d, n)
}

// Status is a configuration's numbers of the last pass and its decisions,
// newest first.
func (s *Scaler) Status(cfg string) api.ScalingStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := api.ScalingStatus{Decisions: []api.ScalingDecision{}}
	st := s.status[cfg]
	if st == nil {
		return out
	}
	out.Desired, out.Actual, out.Joinable = st.n.Desired, st.n.Actual, st.n.Joinable
	for i := len(st.decisions) - 1; i >= 0; i-- {
		out.Decisions = append(out.Decisions, st.decisions[i])
	}
	return out
}
