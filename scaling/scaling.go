// Package scaling decides when a configuration's instances start and stop
// by their players: enough joinable instances are kept ready (the
// configuration's readyHeadroom) before players need them, and instances
// left empty are stopped, within the minimum and maximum counts. It knows
// nothing of HTTP: the master gives it an Env and runs its Loop on the
// leader only.
package scaling

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/universe-orchestrator/universe/api"
)

// Reasons of actions (the metrics' label values).
const (
	ReasonHeadroom      = "headroom"       // fewer joinable than readyHeadroom
	ReasonEmpty         = "empty"          // above the minimum, no players for scaleDownAfterSeconds
	ReasonDrained       = "drained"        // draining and empty
	ReasonDrainDeadline = "drain-deadline" // draining and its deadline passed
)

// Action is what a pass asks for.
type Action struct {
	Start      bool // else stop InstanceID
	InstanceID string
	Reason     string // one of the Reason* values
	Why        string // the sentence recorded with the decision
}

// Numbers are what a pass saw and wants.
type Numbers struct {
	Desired, Actual, Joinable, Starting int
}

// Memory is what the scaler remembers of one configuration between passes.
type Memory struct {
	LastStart  time.Time            // the latest start requested
	EmptySince map[string]time.Time // since when each instance has had no players
	Pending    int                  // starts requested, not yet answered
	Stopping   map[string]bool      // stops requested, not yet answered
	NextStart  time.Time            // no start before (a failed start's backoff)
	Backoff    time.Duration        // the current backoff (0: none)
	LastNone   string               // the last "none" reason recorded (said once)
}

// NewMemory makes an empty memory.
func NewMemory() *Memory {
	return &Memory{EmptySince: map[string]time.Time{}, Stopping: map[string]bool{}}
}

// StartGrace is how long a started instance that has not reported yet
// counts as starting (toward the headroom).
const StartGrace = 3 * time.Minute

// Decide is one pass over a configuration: the drains to end, the starts
// that bring the joinable instances up to readyHeadroom, at most one stop
// of an instance empty for scaleDownAfterSeconds. What instances report is
// a hint: only instances the master runs count, a report cannot push the
// count past the maximum, and an instance with players is never stopped
// for scaling.
func Decide(cfg api.Configuration, insts []api.InstanceInfo, mem *Memory, now time.Time) ([]Action, Numbers) {
	var acts []Action
	var n Numbers
	seen := map[string]bool{}
	active := 0 // CREATING or ONLINE, not on its way out: what the maximum bounds
	var idle []api.InstanceInfo
	for _, in := range insts {
		seen[in.ID] = true
		if in.Players > 0 {
			delete(mem.EmptySince, in.ID)
		} else if _, ok := mem.EmptySince[in.ID]; !ok {
			mem.EmptySince[in.ID] = now
		}
		if (in.State != "ONLINE" && in.State != "CREATING") || in.Transition == "stopping" || mem.Stopping[in.ID] || in.Lost {
			continue
		}
		active++
		if in.Draining {
			switch {
			case in.DrainDeadline > 0 && now.UnixMilli() >= in.DrainDeadline:
				acts = append(acts, Action{InstanceID: in.ID, Reason: ReasonDrainDeadline, Why: fmt.Sprintf("draining, its deadline passed with %d players", in.Players)})
			case in.Players == 0 && !in.ReportedAt.IsZero():
				acts = append(acts, Action{InstanceID: in.ID, Reason: ReasonDrained, Why: "draining and empty"})
			}
			continue
		}
		switch {
		case in.Joinable:
			n.Joinable++
			if in.Players == 0 {
				idle = append(idle, in)
			}
		case starting(in, now):
			n.Starting++
		}
	}
	for id := range mem.EmptySince {
		if !seen[id] {
			delete(mem.EmptySince, id)
		}
	}
	for id := range mem.Stopping {
		if !seen[id] {
			delete(mem.Stopping, id)
		}
	}
	n.Starting += mem.Pending
	n.Actual = active
	s := cfg.Scaling
	if s == nil || cfg.Maintenance {
		n.Desired = active
		return acts, n
	}
	headroom := n.Joinable + n.Starting
	room := -1 // starts the maximum allows; -1: no maximum
	if cfg.MaximumServiceCount > 0 {
		room = max(cfg.MaximumServiceCount-active-mem.Pending, 0)
	}
	n.Desired = active + mem.Pending
	switch {
	case headroom < s.ReadyHeadroom:
		want := s.ReadyHeadroom - headroom
		if room >= 0 {
			want = min(want, room)
		}
		n.Desired += want
		if want == 0 {
			acts = append(acts, Action{Why: fmt.Sprintf("at the maximum (%d): %d joinable + %d starting < headroom %d", cfg.MaximumServiceCount, n.Joinable, n.Starting, s.ReadyHeadroom)})
			break
		}
		if now.Before(mem.NextStart) {
			acts = append(acts, Action{Why: fmt.Sprintf("a start failed: the next in %s", mem.NextStart.Sub(now).Round(time.Second))})
			break
		}
		for range want {
			acts = append(acts, Action{Start: true, Reason: ReasonHeadroom,
				Why: fmt.Sprintf("%d joinable + %d starting < headroom %d", n.Joinable, n.Starting, s.ReadyHeadroom)})
		}
	case headroom > s.ReadyHeadroom && active > cfg.MinimumServiceCount:
		after := time.Duration(s.ScaleDownAfterSeconds) * time.Second
		if now.Sub(mem.LastStart) < after {
			break // hysteresis: no stop soon after a start
		}
		// The newest empty instance goes first.
		slices.SortFunc(idle, func(a, b api.InstanceInfo) int { return cmp.Compare(b.StartedAt, a.StartedAt) })
		for _, in := range idle {
			if now.Sub(mem.EmptySince[in.ID]) >= after && now.Sub(time.UnixMilli(in.StartedAt)) >= after {
				acts = append(acts, Action{InstanceID: in.ID, Reason: ReasonEmpty,
					Why: fmt.Sprintf("no players for %s; %d joinable + %d starting > headroom %d", now.Sub(mem.EmptySince[in.ID]).Round(time.Second), n.Joinable, n.Starting, s.ReadyHeadroom)})
				n.Desired--
				break
			}
		}
	}
	n.Desired = max(n.Desired, cfg.MinimumServiceCount)
	return acts, n
}

// starting says whether an instance counts as on its way to joinable: it
// runs (or is being created), has not reported since its start, and
// started within StartGrace.
func starting(in api.InstanceInfo, now time.Time) bool {
	if in.Transition == "stopping" || in.Health == api.HealthFailing {
		return false
	}
	since := in.StartedAt
	if since == 0 {
		since = in.CreatedAt
	}
	if in.State == "CREATING" || in.Transition == "starting" || in.Transition == "restarting" {
		return now.UnixMilli()-since < StartGrace.Milliseconds()
	}
	reported := !in.ReportedAt.IsZero() && in.ReportedAt.UnixMilli() >= in.StartedAt
	return !reported && now.UnixMilli()-since < StartGrace.Milliseconds()
}

// Failed records a failed start: the next waits 1 s doubling to 5 min,
// as the restart policy does.
func (m *Memory) Failed(now time.Time) {
	m.Backoff = min(max(m.Backoff*2, time.Second), 5*time.Minute)
	m.NextStart = now.Add(m.Backoff)
}

// Started records a start that worked: the backoff ends.
func (m *Memory) Started() { m.Backoff, m.NextStart = 0, time.Time{} }
