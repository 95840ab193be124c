package schedule_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/schedule"
	"github.com/universe-orchestrator/universe/storage"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		expr, tz, field string
	}{
		{"*/5 * * * *", "", ""},
		{"@daily", "Europe/Berlin", ""},
		{"@every 1s", "", ""},
		{"@every 500ms", "", "cron"},
		{"61 * * * *", "", "cron"},
		{"* * * *", "", "cron"},
		{"0 4 * * *", "Mars/Olympus", "timezone"},
		{"CRON_TZ=UTC 0 4 * * *", "", "cron"},
	} {
		_, err := schedule.Parse(c.expr, c.tz)
		if c.field == "" && err != nil || c.field != "" && (err == nil || !strings.HasPrefix(universe.ErrorMessage(err), c.field)) {
			t.Errorf("Parse(%q, %q): %v, want an error naming %q", c.expr, c.tz, err, c.field)
		}
	}
	// 09:00 in Berlin is 08:00 UTC in winter and 07:00 UTC in summer.
	s, _ := schedule.Parse("0 9 * * *", "Europe/Berlin")
	if got := s.Next(time.Date(2027, 1, 10, 0, 0, 0, 0, time.UTC)); !got.Equal(time.Date(2027, 1, 10, 8, 0, 0, 0, time.UTC)) {
		t.Errorf("winter: %v", got)
	}
	if got := s.Next(time.Date(2027, 7, 10, 0, 0, 0, 0, time.UTC)); !got.Equal(time.Date(2027, 7, 10, 7, 0, 0, 0, time.UTC)) {
		t.Errorf("summer: %v", got)
	}
}

func TestValidate(t *testing.T) {
	good := api.Schedule{Name: "restart", InstanceID: "a", Cron: "@hourly", Tasks: []api.ScheduleTask{{Type: "power", Payload: "restart"}}}
	if err := schedule.Validate(good); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*api.Schedule){
		"tasks[0].offsetSeconds": func(s *api.Schedule) { s.Tasks[0].OffsetSeconds = 901 },
		"tasks[0].payload":       func(s *api.Schedule) { s.Tasks[0].Payload = "explode" },
		"tasks[0].type":          func(s *api.Schedule) { s.Tasks[0].Type = "reboot" },
		"tasks: 1 to 20":         func(s *api.Schedule) { s.Tasks = make([]api.ScheduleTask, 21) },
		"give instanceId":        func(s *api.Schedule) { s.Configuration = "game" },
		"tasks[0]: rolling":      func(s *api.Schedule) { s.Tasks[0].Type = api.TaskRollingRestart },
	} {
		s := good
		s.Tasks = append([]api.ScheduleTask{}, good.Tasks...)
		mutate(&s)
		if err := schedule.Validate(s); err == nil || !strings.HasPrefix(universe.ErrorMessage(err), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// actions records what the tasks did.
type actions struct {
	mu      sync.Mutex
	calls   []string
	offline map[string]bool
	fail    map[string]bool
	hold    chan struct{} // Command waits on it when set
}

func (a *actions) rec(s string) {
	a.mu.Lock()
	a.calls = append(a.calls, s)
	a.mu.Unlock()
}

func (a *actions) Instances(string) []string { return []string{"i1", "i2"} }
func (a *actions) Online(id string) bool     { return !a.offline[id] }
func (a *actions) Command(id, line string) error {
	if a.hold != nil {
		<-a.hold
	}
	a.rec(id + " cmd " + line)
	if a.fail[id] {
		return universe.Errorf(universe.ECONFLICT, "it broke")
	}
	return nil
}
func (a *actions) Power(id, action string) error { a.rec(id + " " + action); return nil }
func (a *actions) Backup(_ context.Context, id, name, _ string) error {
	a.rec(id + " backup " + name)
	return nil
}

func (a *actions) log() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.calls...)
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func open(t *testing.T, dir string) *storage.DB {
	db, err := storage.Open(dir, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// waitRuns waits until the schedule's runs are all finished and returns them.
func waitRuns(t *testing.T, db *storage.DB, id string, n int) []api.ScheduleRun {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		runs, _ := db.Runs(id)
		done := len(runs) == n
		for _, r := range runs {
			done = done && r.Outcome != api.OutcomeRunning
		}
		if done {
			return runs
		}
		if time.Now().After(deadline) {
			t.Fatalf("runs of %s: %+v, want %d finished", id, runs, n)
		}
	}
}

// Every firing runs once: looking again, or a new runner (a master
// restarted) looking at the same time, runs nothing more; windows missed
// meanwhile run once, the latest, if younger than catchUpSeconds, else
// are recorded skipped.
func TestExactlyOnce(t *testing.T) {
	dir := t.TempDir()
	db := open(t, dir)
	defer db.Close()
	t0 := time.Date(2027, 1, 1, 12, 0, 30, 0, time.UTC)
	clk := &clock{t: t0}
	act := &actions{}
	every := api.Schedule{ID: "s1", Name: "tick", InstanceID: "i1", Cron: "* * * * *", Enabled: true, CatchUpSeconds: 300, CreatedAt: t0,
		Tasks: []api.ScheduleTask{{Type: "command", Payload: "say hi"}}}
	hourly := api.Schedule{ID: "s2", Name: "hourly", InstanceID: "i1", Cron: "0 * * * *", Enabled: true, CatchUpSeconds: 300, CreatedAt: t0,
		Tasks: []api.ScheduleTask{{Type: "power", Payload: "restart"}}}
	for _, s := range []api.Schedule{every, hourly} {
		if err := db.PutSchedule(s); err != nil {
			t.Fatal(err)
		}
	}
	log := slog.New(slog.DiscardHandler)
	r := schedule.NewRunner(db, act, log, schedule.Hooks{}, clk.now)
	ctx := context.Background()
	r.Check(ctx) // 12:00:30: nothing due
	clk.set(t0.Add(40 * time.Second))
	r.Check(ctx) // 12:01:10: the 12:01 firing
	r.Check(ctx)
	runs := waitRuns(t, db, "s1", 1)
	if runs[0].ID != schedule.RunID("s1", time.Date(2027, 1, 1, 12, 1, 0, 0, time.UTC)) || runs[0].Outcome != api.OutcomeOK {
		t.Fatalf("runs: %+v", runs)
	}
	// A master started again at the same moment: nothing twice.
	r2 := schedule.NewRunner(db, act, log, schedule.Hooks{}, clk.now)
	r2.Check(ctx)
	waitRuns(t, db, "s1", 1)
	// Down ten minutes: the latest window only.
	clk.set(t0.Add(10*time.Minute + 40*time.Second)) // 12:11:10
	r2.Check(ctx)
	runs = waitRuns(t, db, "s1", 2)
	if !runs[0].FireTime.Equal(time.Date(2027, 1, 1, 12, 11, 0, 0, time.UTC)) {
		t.Errorf("the catch-up ran %v", runs[0].FireTime)
	}
	// The hourly one, 13:00, looked at only at 13:40: older than 300 s.
	clk.set(time.Date(2027, 1, 1, 13, 40, 0, 0, time.UTC))
	r2.Check(ctx)
	h := waitRuns(t, db, "s2", 1)
	if h[0].Outcome != api.OutcomeSkipped || !strings.Contains(h[0].Reason, "missed") {
		t.Errorf("a window missed long ago: %+v", h[0])
	}
	// (and the every-minute one fired at 13:40, its third run)
	waitRuns(t, db, "s1", 3)
	if got := act.log(); strings.Join(got, ";") != "i1 cmd say hi;i1 cmd say hi;i1 cmd say hi" {
		t.Errorf("actions: %v", got)
	}
}

// A run's chain: offsets, a failure that ends it, continueOnFailure, an
// offline instance skipped with onlyWhenOnline; runs do not overlap.
func TestChainAndOverlap(t *testing.T) {
	db := open(t, t.TempDir())
	defer db.Close()
	act := &actions{offline: map[string]bool{"i2": true}, fail: map[string]bool{"i1": true}}
	sc := api.Schedule{ID: "c1", Name: "nightly", Configuration: "game", Cron: "@daily", Enabled: true, OnlyWhenOnline: true, CreatedAt: time.Now(),
		Tasks: []api.ScheduleTask{
			{Type: "command", Payload: "say bye", ContinueOnFailure: true},
			{Type: "backup", Payload: "nightly", OffsetSeconds: 1},
			{Type: "command", Payload: "never"},
			{Type: "power", Payload: "stop"},
		}}
	if err := db.PutSchedule(sc); err != nil {
		t.Fatal(err)
	}
	r := schedule.NewRunner(db, act, slog.New(slog.DiscardHandler), schedule.Hooks{}, nil)
	ctx := context.Background()
	run, err := r.RunNow(ctx, sc, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.RunNow(ctx, sc, "test"); universe.ErrorCode(err) != universe.ECONFLICT {
		t.Errorf("a second run while one is under way: %v", err)
	}
	runs := waitRuns(t, db, "c1", 1)
	got := runs[0]
	if got.ID != run.ID || got.Outcome != api.OutcomeFailed || !got.Manual {
		t.Fatalf("run: %+v", got)
	}
	want := []string{"command i1 failed", "command i2 skipped", "backup i1 ok", "backup i2 skipped", "command i1 failed", "command i2 skipped"}
	var have []string
	for _, x := range got.Tasks {
		have = append(have, x.Type+" "+x.InstanceID+" "+x.Outcome)
	}
	if strings.Join(have, ";") != strings.Join(want, ";") {
		t.Errorf("tasks:\n got %v\nwant %v", have, want)
	}
	if strings.Contains(strings.Join(act.log(), ";"), "stop") {
		t.Error("the chain went on past a failure")
	}
}

// A schedule disabled for hours and enabled again owes nothing of those
// hours: no run, no "missed" record; it fires at its next time.
func TestReenabledOwesNothing(t *testing.T) {
	db := open(t, t.TempDir())
	defer db.Close()
	t0 := time.Date(2027, 1, 1, 12, 0, 30, 0, time.UTC)
	clk := &clock{t: t0}
	sc := api.Schedule{ID: "h", Name: "hourly", InstanceID: "i1", Cron: "0 * * * *", Enabled: false, CatchUpSeconds: 300, CreatedAt: t0,
		Tasks: []api.ScheduleTask{{Type: "command", Payload: "x"}}}
	if err := db.PutSchedule(sc); err != nil {
		t.Fatal(err)
	}
	r := schedule.NewRunner(db, &actions{}, slog.New(slog.DiscardHandler), schedule.Hooks{}, clk.now)
	r.Check(context.Background())
	clk.set(time.Date(2027, 1, 1, 15, 10, 0, 0, time.UTC))
	r.Check(context.Background()) // still disabled
	sc.Enabled = true
	_ = db.PutSchedule(sc)
	r.Check(context.Background())
	if runs, _ := db.Runs("h"); len(runs) != 0 {
		t.Fatalf("runs for the hours it was disabled: %+v", runs)
	}
	clk.set(time.Date(2027, 1, 1, 16, 0, 1, 0, time.UTC))
	r.Check(context.Background())
	if runs := waitRuns(t, db, "h", 1); !runs[0].FireTime.Equal(time.Date(2027, 1, 1, 16, 0, 0, 0, time.UTC)) {
		t.Errorf("run: %+v", runs[0])
	}
}
