// Package schedule runs schedules: chains of tasks (stdin commands, power
// actions, backups, rolling restarts) at the times of cron expressions,
// each firing exactly once. It knows nothing of HTTP; the master runs its
// Runner while it leads, and gives it the instances through Actions.
package schedule

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
)

// Limits of a schedule.
const (
	MaxTasks            = 20
	MaxPerInstance      = 100
	MaxOffsetSeconds    = 900
	DefaultCatchUp      = 300
	maxPayload          = 1024
	minEvery            = time.Second
	defaultRollTimeout  = 5 * time.Minute
	defaultRollMaxUnavl = 1
)

var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Spec is a parsed cron expression in its time zone.
type Spec struct {
	s   cron.Schedule
	loc *time.Location
}

// Parse parses a cron expression and an IANA time zone ("" is UTC).
// Errors: EINVALID naming the field.
func Parse(expr, tz string) (Spec, error) {
	loc := time.UTC
	if tz != "" && tz != "UTC" {
		l, err := time.LoadLocation(tz)
		if err != nil || strings.ContainsAny(tz, " \t") {
			return Spec{}, universe.Errorf(universe.EINVALID, "timezone: unknown time zone %q", tz)
		}
		loc = l
	}
	if strings.Contains(expr, "TZ=") {
		return Spec{}, universe.Errorf(universe.EINVALID, "cron: give the time zone in timezone, not in the expression")
	}
	if d, ok := strings.CutPrefix(expr, "@every "); ok {
		// (the parser rounds a shorter delay up to a second, silently)
		if dur, err := time.ParseDuration(d); err == nil && dur < minEvery {
			return Spec{}, universe.Errorf(universe.EINVALID, "cron: @every needs at least 1s")
		}
	}
	s, err := parser.Parse(expr)
	if err != nil {
		return Spec{}, universe.Errorf(universe.EINVALID, "cron: %v", err)
	}
	return Spec{s: s, loc: loc}, nil
}

// Next is the first fire time after t.
func (s Spec) Next(t time.Time) time.Time { return s.s.Next(t.In(s.loc)).UTC() }

// Validate checks a schedule's fields (its target's existence is the
// caller's). Errors: EINVALID naming the field.
func Validate(sc api.Schedule) error {
	if sc.Name == "" || len(sc.Name) > 64 || hasControl(sc.Name) {
		return universe.Errorf(universe.EINVALID, "name: 1 to 64 bytes, no control characters")
	}
	if (sc.InstanceID == "") == (sc.Configuration == "") {
		return universe.Errorf(universe.EINVALID, "give instanceId or configuration (one of them)")
	}
	if _, err := Parse(sc.Cron, sc.Timezone); err != nil {
		return err
	}
	if sc.CatchUpSeconds < 0 || sc.CatchUpSeconds > 7*24*3600 {
		return universe.Errorf(universe.EINVALID, "catchUpSeconds: 0 to 604800")
	}
	if len(sc.Tasks) == 0 || len(sc.Tasks) > MaxTasks {
		return universe.Errorf(universe.EINVALID, "tasks: 1 to %d", MaxTasks)
	}
	for i, t := range sc.Tasks {
		field := fmt.Sprintf("tasks[%d]", i)
		if t.OffsetSeconds < 0 || t.OffsetSeconds > MaxOffsetSeconds {
			return universe.Errorf(universe.EINVALID, "%s.offsetSeconds: 0 to %d", field, MaxOffsetSeconds)
		}
		if len(t.Payload) > maxPayload || hasControl(t.Payload) {
			return universe.Errorf(universe.EINVALID, "%s.payload: at most %d bytes, no control characters", field, maxPayload)
		}
		switch t.Type {
		case api.TaskCommand:
			if t.Payload == "" {
				return universe.Errorf(universe.EINVALID, "%s.payload: the command to send", field)
			}
		case api.TaskPower:
			switch t.Payload {
			case "start", "stop", "restart", "kill":
			default:
				return universe.Errorf(universe.EINVALID, "%s.payload: start, stop, restart or kill", field)
			}
		case api.TaskBackup:
			if len(t.Payload) > 64 {
				return universe.Errorf(universe.EINVALID, "%s.payload: a backup name of at most 64 bytes", field)
			}
		case api.TaskRollingRestart:
			if sc.Configuration == "" {
				return universe.Errorf(universe.EINVALID, "%s: rolling-restart is for a configuration's schedule", field)
			}
			if t.MaxUnavailable < 0 || t.MaxUnavailable > 1000 {
				return universe.Errorf(universe.EINVALID, "%s.maxUnavailable: 0 (one) to 1000", field)
			}
		default:
			return universe.Errorf(universe.EINVALID, "%s.type: command, power, backup or rolling-restart", field)
		}
	}
	return nil
}

// Normalize fills a schedule's defaults.
func Normalize(sc api.Schedule) api.Schedule {
	if sc.Timezone == "" {
		sc.Timezone = "UTC"
	}
	if sc.Tasks == nil {
		sc.Tasks = []api.ScheduleTask{}
	}
	if sc.CatchUpSeconds == 0 {
		sc.CatchUpSeconds = DefaultCatchUp
	}
	return sc
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return true
		}
	}
	return false
}
