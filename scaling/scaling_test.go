package scaling_test

import (
	"testing"
	"time"

	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/scaling"
)

var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func cfg(headroom, minN, maxN int) api.Configuration {
	return api.Configuration{Name: "lobby", MinimumServiceCount: minN, MaximumServiceCount: maxN,
		Scaling: &api.Scaling{ReadyHeadroom: headroom, FullAt: 0.9, ScaleDownAfterSeconds: 300}}
}

// online is an instance that started at started and reported at now.
func online(id string, players, maxPlayers int, started, now time.Time) api.InstanceInfo {
	return api.InstanceInfo{ID: id, State: "ONLINE", Players: players, MaxPlayers: maxPlayers, StartedAt: started.UnixMilli(),
		ReportedAt: now, Joinable: float64(players) < float64(maxPlayers)*0.9}
}

func starts(acts []scaling.Action) (n int) {
	for _, a := range acts {
		if a.Start {
			n++
		}
	}
	return n
}

func stops(acts []scaling.Action) (ids []string) {
	for _, a := range acts {
		if !a.Start && a.InstanceID != "" {
			ids = append(ids, a.InstanceID)
		}
	}
	return ids
}

func TestHeadroomStartsBoundedByTheMaximum(t *testing.T) {
	mem := scaling.NewMemory()
	now := t0
	// Two full instances, headroom 2: two starts.
	insts := []api.InstanceInfo{online("a", 50, 50, t0.Add(-time.Hour), now), online("b", 46, 50, t0.Add(-time.Hour), now)}
	acts, n := scaling.Decide(cfg(2, 0, 0), insts, mem, now)
	if starts(acts) != 2 || n.Joinable != 0 || n.Desired != 4 {
		t.Fatalf("starts %d, numbers %+v", starts(acts), n)
	}
	// The maximum bounds them: one room left.
	acts, _ = scaling.Decide(cfg(2, 0, 3), insts, scaling.NewMemory(), now)
	if starts(acts) != 1 {
		t.Fatalf("under a maximum of 3: %d starts", starts(acts))
	}
	// At the maximum: none, and it says why.
	acts, _ = scaling.Decide(cfg(2, 0, 2), insts, scaling.NewMemory(), now)
	if starts(acts) != 0 || len(acts) != 1 || acts[0].Why == "" {
		t.Fatalf("at the maximum: %+v", acts)
	}
	// An instance starting counts toward the headroom: no second start.
	creating := api.InstanceInfo{ID: "c", State: "CREATING", CreatedAt: now.Add(-5 * time.Second).UnixMilli()}
	unreported := api.InstanceInfo{ID: "d", State: "ONLINE", StartedAt: now.Add(-10 * time.Second).UnixMilli()}
	acts, n = scaling.Decide(cfg(2, 0, 0), append(insts, creating, unreported), scaling.NewMemory(), now)
	if starts(acts) != 0 || n.Starting != 2 {
		t.Fatalf("with two starting: %d starts, %+v", starts(acts), n)
	}
	// Requested starts not yet answered count too.
	mem = scaling.NewMemory()
	mem.Pending = 1
	if acts, _ := scaling.Decide(cfg(2, 0, 0), insts, mem, now); starts(acts) != 1 {
		t.Fatalf("with one pending: %d starts", starts(acts))
	}
	// A start that failed backs off.
	mem = scaling.NewMemory()
	mem.Failed(now)
	if acts, _ := scaling.Decide(cfg(2, 0, 0), insts, mem, now); starts(acts) != 0 {
		t.Fatal("started within a failed start's backoff")
	}
}

func TestScaleDownNeverStopsPlayersNorGoesBelowTheMinimum(t *testing.T) {
	mem := scaling.NewMemory()
	start := t0.Add(-time.Hour)
	insts := []api.InstanceInfo{
		online("old", 0, 50, start, t0), online("new", 0, 50, start.Add(time.Minute), t0),
		online("busy", 10, 50, start.Add(2*time.Minute), t0),
	}
	// First sight of the empty ones: not empty long enough.
	if acts, _ := scaling.Decide(cfg(1, 0, 0), insts, mem, t0); len(stops(acts)) != 0 {
		t.Fatalf("stopped at first sight: %v", stops(acts))
	}
	// 5 minutes on: the newest empty goes first, one a pass.
	later := t0.Add(301 * time.Second)
	for i := range insts {
		insts[i].ReportedAt = later
	}
	acts, _ := scaling.Decide(cfg(1, 0, 0), insts, mem, later)
	if got := stops(acts); len(got) != 1 || got[0] != "new" {
		t.Fatalf("stops: %v", got)
	}
	// Never below the minimum (3 running, minimum 3).
	if acts, _ := scaling.Decide(cfg(1, 3, 0), insts, mem, later); len(stops(acts)) != 0 {
		t.Fatalf("stopped below the minimum: %v", stops(acts))
	}
	// Hysteresis: no stop within scaleDownAfterSeconds of a start.
	mem.LastStart = later.Add(-time.Minute)
	if acts, _ := scaling.Decide(cfg(1, 0, 0), insts, mem, later); len(stops(acts)) != 0 {
		t.Fatalf("stopped a minute after a start: %v", stops(acts))
	}
	// Never an instance with players, whatever the surplus.
	for _, id := range stops(acts) {
		if id == "busy" {
			t.Fatal("stopped an instance with players")
		}
	}
}

func TestDrainsAndMaintenance(t *testing.T) {
	now := t0
	d1 := online("d1", 0, 50, t0.Add(-time.Hour), now)
	d1.Draining, d1.Joinable = true, false
	d2 := online("d2", 5, 50, t0.Add(-time.Hour), now)
	d2.Draining, d2.Joinable, d2.DrainDeadline = true, false, now.Add(-time.Second).UnixMilli()
	d3 := online("d3", 5, 50, t0.Add(-time.Hour), now)
	d3.Draining, d3.Joinable = true, false
	acts, _ := scaling.Decide(api.Configuration{Name: "x"}, []api.InstanceInfo{d1, d2, d3}, scaling.NewMemory(), now)
	got := map[string]string{}
	for _, a := range acts {
		got[a.InstanceID] = a.Reason
	}
	if got["d1"] != scaling.ReasonDrained || got["d2"] != scaling.ReasonDrainDeadline || got["d3"] != "" {
		t.Fatalf("drain stops: %v", got)
	}
	c := cfg(3, 0, 0)
	c.Maintenance = true
	if acts, _ := scaling.Decide(c, nil, scaling.NewMemory(), now); len(acts) != 0 {
		t.Fatalf("a configuration in maintenance scaled: %+v", acts)
	}
}

// BenchmarkDecide1000: one configuration's pass over 1,000 reporting
// instances (the decision alone; the master's pass also lists them).
func BenchmarkDecide1000(b *testing.B) {
	insts := make([]api.InstanceInfo, 1000)
	for i := range insts {
		insts[i] = online("i"+string(rune('a'+i%26))+string(rune('a'+i/26%26))+string(rune('a'+i/676)), i%50, 50, t0.Add(-time.Hour), t0)
	}
	mem := scaling.NewMemory()
	c := cfg(20, 0, 0)
	b.ReportAllocs()
	for b.Loop() {
		scaling.Decide(c, insts, mem, t0)
	}
}
