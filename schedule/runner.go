package schedule

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
)

// Store keeps schedules and their runs (the storage layer; replicated in a
// cluster).
type Store interface {
	Schedules() ([]api.Schedule, error)
	// CreateRun stores a new run; ECONFLICT when its id exists (that
	// firing ran already: it is never run twice).
	CreateRun(r api.ScheduleRun) error
	// PutRun replaces a run (its outcome).
	PutRun(r api.ScheduleRun) error
	// Runs lists a schedule's runs, newest first ("": every schedule's).
	Runs(scheduleID string) ([]api.ScheduleRun, error)
}

// Actions act on instances for the tasks.
type Actions interface {
	// Instances of a configuration, present now.
	Instances(configuration string) []string
	// Online reports whether an instance is ONLINE.
	Online(id string) bool
	Command(id, line string) error
	// Power starts, stops, restarts or kills an instance (accepted).
	Power(id, action string) error
	// Backup takes a backup of the instance, waiting for its outcome.
	Backup(ctx context.Context, id, name, by string) error
}

// Hooks tell the master's metrics of runs.
type Hooks struct {
	Run func(outcome string, lateness time.Duration)
	// Failed tells of a run that failed (for the event log).
	Failed func(sc api.Schedule, run api.ScheduleRun)
}

// Runner fires the schedules while this master leads: once a second it
// looks for schedules due, writes each firing's run (its id from the fire
// time) before the first task acts, and runs the chain in a goroutine.
type Runner struct {
	store Store
	act   Actions
	log   *slog.Logger
	hooks Hooks
	now   func() time.Time
	// Tick is the interval between looks (default 1s).
	Tick time.Duration

	mu      sync.Mutex
	running map[string]bool      // schedules with a run under way
	last    map[string]time.Time // the last fire time seen per schedule
	wg      sync.WaitGroup
}

// NewRunner makes a Runner (now nil: time.Now).
func NewRunner(store Store, act Actions, log *slog.Logger, hooks Hooks, now func() time.Time) *Runner {
	if now == nil {
		now = time.Now
	}
	return &Runner{store: store, act: act, log: log, hooks: hooks, now: now, Tick: time.Second,
		running: map[string]bool{}, last: map[string]time.Time{}}
}

// RunID is the id of the run of schedule id fired at t.
func RunID(id string, t time.Time) string { return id + "-" + strconv.FormatInt(t.Unix(), 10) }

// Run fires schedules until ctx ends, then waits for the runs under way
// (their tasks stop at the next step).
func (r *Runner) Run(ctx context.Context) {
	r.failLeftovers()
	for {
		r.Check(ctx)
		// The next look just after the next whole Tick (a second): cron
		// times are whole seconds, so a firing waits milliseconds, not
		// up to a Tick, whatever second the master started in.
		now := r.now()
		wait := now.Truncate(r.Tick).Add(r.Tick + 5*time.Millisecond).Sub(now)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			r.wg.Wait()
			return
		case <-t.C:
		}
	}
}

// failLeftovers marks failed the runs a previous leader left running.
func (r *Runner) failLeftovers() {
	runs, err := r.store.Runs("")
	if err != nil {
		return
	}
	for _, run := range runs {
		if run.Outcome != api.OutcomeRunning {
			continue
		}
		r.mu.Lock()
		mine := r.running[run.ScheduleID]
		r.mu.Unlock()
		if mine {
			continue
		}
		now := r.now().UTC()
		run.Outcome, run.Reason, run.FinishedAt = api.OutcomeFailed, "the master running it stopped or lost its lead", &now
		_ = r.store.PutRun(run)
	}
}

// Check fires what is due now (Run calls it every Tick).
func (r *Runner) Check(ctx context.Context) {
	list, err := r.store.Schedules()
	if err != nil {
		r.log.Warn("schedules", "err", err)
		return
	}
	now := r.now().UTC()
	seen := make(map[string]bool, len(list))
	for _, sc := range list {
		seen[sc.ID] = true
		if !sc.Enabled {
			// Windows while disabled are not owed: enabled again, it
			// fires from then on (none "missed").
			r.mu.Lock()
			r.last[sc.ID] = now
			r.mu.Unlock()
			continue
		}
		spec, err := Parse(sc.Cron, sc.Timezone)
		if err != nil {
			continue
		}
		from := r.lastFire(sc)
		fire := spec.Next(from)
		if fire.After(now) {
			continue
		}
		// The latest firing due: older ones missed meanwhile are not run.
		for i := 0; i < 100000; i++ {
			n := spec.Next(fire)
			if n.After(now) {
				break
			}
			fire = n
		}
		r.mu.Lock()
		r.last[sc.ID] = fire
		busy := r.running[sc.ID]
		r.mu.Unlock()
		run := api.ScheduleRun{ID: RunID(sc.ID, fire), ScheduleID: sc.ID, FireTime: fire, StartedAt: now, Tasks: []api.TaskResult{}}
		catchUp := time.Duration(sc.CatchUpSeconds) * time.Second
		switch {
		case catchUp > 0 && now.Sub(fire) > catchUp:
			r.skip(run, "missed while no master was leading (older than catchUpSeconds)")
		case busy:
			r.skip(run, "the previous run is still going")
		default:
			r.start(ctx, sc, run, "schedule "+sc.Name)
		}
	}
	r.mu.Lock()
	for id := range r.last {
		if !seen[id] {
			delete(r.last, id) // deleted
		}
	}
	r.mu.Unlock()
}

// lastFire is the last firing of sc this master knows of: from its runs
// once (the newest not made by hand), then from memory.
func (r *Runner) lastFire(sc api.Schedule) time.Time {
	r.mu.Lock()
	t, ok := r.last[sc.ID]
	r.mu.Unlock()
	if ok {
		return t
	}
	t = sc.CreatedAt
	if runs, err := r.store.Runs(sc.ID); err == nil {
		for _, run := range runs {
			if !run.Manual && run.FireTime.After(t) {
				t = run.FireTime
			}
		}
	}
	r.mu.Lock()
	r.last[sc.ID] = t
	r.mu.Unlock()
	return t
}

func (r *Runner) skip(run api.ScheduleRun, why string) {
	fin := run.StartedAt
	run.Outcome, run.Reason, run.FinishedAt = api.OutcomeSkipped, why, &fin
	if err := r.store.CreateRun(run); err != nil && universe.ErrorCode(err) != universe.ECONFLICT {
		r.log.Warn("schedule run", "run", run.ID, "err", err)
		return
	}
	if r.hooks.Run != nil {
		r.hooks.Run(api.OutcomeSkipped, 0)
	}
}

// start writes the run, then runs its chain in the background. A run whose
// id exists already is not run again.
func (r *Runner) start(ctx context.Context, sc api.Schedule, run api.ScheduleRun, by string) bool {
	run.Outcome, run.StartedAt = api.OutcomeRunning, r.now().UTC()
	r.mu.Lock()
	if r.running[sc.ID] {
		r.mu.Unlock()
		return false
	}
	r.running[sc.ID] = true
	r.mu.Unlock()
	if err := r.store.CreateRun(run); err != nil {
		r.mu.Lock()
		delete(r.running, sc.ID)
		r.mu.Unlock()
		if universe.ErrorCode(err) != universe.ECONFLICT {
			r.log.Warn("schedule run", "run", run.ID, "err", err)
		}
		return false
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		run := r.execute(ctx, sc, run, by)
		// No longer under way once its outcome is known: a look that
		// sees the run finished sees the schedule free.
		r.mu.Lock()
		delete(r.running, sc.ID)
		r.mu.Unlock()
		r.finish(sc, run)
	}()
	return true
}

// RunNow starts a run of sc by hand. Errors: ECONFLICT when one is under
// way.
func (r *Runner) RunNow(ctx context.Context, sc api.Schedule, by string) (api.ScheduleRun, error) {
	now := r.now().UTC()
	run := api.ScheduleRun{ID: sc.ID + "-manual-" + strconv.FormatInt(now.UnixNano(), 10), ScheduleID: sc.ID, FireTime: now, StartedAt: now, Manual: true, Tasks: []api.TaskResult{}}
	if !r.start(ctx, sc, run, by) {
		return run, universe.Errorf(universe.ECONFLICT, "a run of schedule %s is under way", sc.ID)
	}
	run.Outcome = api.OutcomeRunning
	return run, nil
}

// execute runs the chain: each task after its offset, on the schedule's
// instance or each of its configuration's; a failure ends the chain
// unless the task continues on failure.
func (r *Runner) execute(ctx context.Context, sc api.Schedule, run api.ScheduleRun, by string) api.ScheduleRun {
	if r.hooks.Run != nil && !run.Manual {
		r.hooks.Run("started", r.now().Sub(run.FireTime))
	}
	run.Outcome = api.OutcomeOK
	for i, t := range sc.Tasks {
		if t.OffsetSeconds > 0 {
			timer := time.NewTimer(time.Duration(t.OffsetSeconds) * time.Second)
			select {
			case <-ctx.Done():
				timer.Stop()
				run.Outcome, run.Reason = api.OutcomeFailed, "the master stopped leading during the run"
				return run
			case <-timer.C:
			}
		}
		targets := []string{sc.InstanceID}
		if sc.Configuration != "" {
			targets = r.act.Instances(sc.Configuration)
		}
		failed := false
		if t.Type == api.TaskRollingRestart {
			res := r.rolling(ctx, targets, t.MaxUnavailable)
			run.Tasks = append(run.Tasks, res...)
			for _, x := range res {
				failed = failed || x.Outcome == api.OutcomeFailed
			}
		} else {
			for _, id := range targets {
				res := api.TaskResult{Type: t.Type, InstanceID: id, Outcome: api.OutcomeOK}
				if sc.OnlyWhenOnline && !r.act.Online(id) {
					res.Outcome, res.Reason = api.OutcomeSkipped, "the instance is not online"
				} else if err := r.task(ctx, t, id, sc.Name, by); err != nil {
					res.Outcome, res.Reason = api.OutcomeFailed, universe.ErrorMessage(err)
					failed = true
				}
				run.Tasks = append(run.Tasks, res)
			}
		}
		if failed {
			run.Outcome = api.OutcomeFailed
			run.Reason = fmt.Sprintf("task %d (%s) failed", i+1, t.Type)
			if !t.ContinueOnFailure {
				break
			}
		}
	}
	return run
}

func (r *Runner) finish(sc api.Schedule, run api.ScheduleRun) {
	fin := r.now().UTC()
	run.FinishedAt = &fin
	if err := r.store.PutRun(run); err != nil {
		r.log.Warn("schedule run", "run", run.ID, "err", err)
	}
	if r.hooks.Run != nil {
		r.hooks.Run(run.Outcome, 0)
	}
	if run.Outcome == api.OutcomeFailed && r.hooks.Failed != nil {
		r.hooks.Failed(sc, run)
	}
}

func (r *Runner) task(ctx context.Context, t api.ScheduleTask, id, schedule, by string) error {
	switch t.Type {
	case api.TaskCommand:
		return r.act.Command(id, t.Payload)
	case api.TaskPower:
		return r.act.Power(id, t.Payload)
	case api.TaskBackup:
		name := t.Payload
		if name == "" {
			name = schedule
		}
		return r.act.Backup(ctx, id, name, by)
	}
	return universe.Errorf(universe.EINVALID, "unknown task %q", t.Type)
}

// rolling restarts ids at most maxUnavailable at a time, each batch only
// once the one before is ONLINE again (or its timeout: a failure, which
// ends the rollout).
func (r *Runner) rolling(ctx context.Context, ids []string, maxUnavailable int) []api.TaskResult {
	if maxUnavailable <= 0 {
		maxUnavailable = defaultRollMaxUnavl
	}
	var out []api.TaskResult
	for start := 0; start < len(ids); start += maxUnavailable {
		batch := ids[start:min(start+maxUnavailable, len(ids))]
		for _, id := range batch {
			res := api.TaskResult{Type: api.TaskRollingRestart, InstanceID: id, Outcome: api.OutcomeOK}
			if err := r.act.Power(id, "restart"); err != nil {
				res.Outcome, res.Reason = api.OutcomeFailed, universe.ErrorMessage(err)
			}
			out = append(out, res)
		}
		deadline := time.Now().Add(defaultRollTimeout)
		for i := len(out) - len(batch); i < len(out); i++ {
			if out[i].Outcome != api.OutcomeOK {
				continue
			}
			// A restart takes the instance down first: wait for it to
			// be back.
			for !r.act.Online(out[i].InstanceID) || time.Since(deadline.Add(-defaultRollTimeout)) < 200*time.Millisecond {
				if time.Now().After(deadline) {
					out[i].Outcome, out[i].Reason = api.OutcomeFailed, "not ONLINE again within "+defaultRollTimeout.String()
					break
				}
				select {
				case <-ctx.Done():
					out[i].Outcome, out[i].Reason = api.OutcomeFailed, "the master stopped leading during the rollout"
					return out
				case <-time.After(100 * time.Millisecond):
				}
			}
		}
		for _, x := range out {
			if x.Outcome == api.OutcomeFailed {
				return out // the rollout stops at a failure
			}
		}
	}
	return out
}
