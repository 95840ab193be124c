package master_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/master"
)

// TestScalingByPlayers: real processes, reports as the plugins send them.
// The scaler keeps one joinable instance ready: it starts one for an empty
// configuration, a second when the first fills up, never past the maximum,
// and stops the newest empty ones once the players are gone (never below
// the headroom, never one with players). A drained instance leaves the
// joinable set (a replacement starts) and stops once empty. A report with
// more players than room is refused. Maintenance stops the scaling. Every
// decision is listed with its numbers, newest first, and is an event.
func TestScalingByPlayers(t *testing.T) {
	e := newEnv(t, func(c *master.Config) { c.ScalingWarmUp = time.Millisecond })
	cfg := map[string]any{"command": "exec sleep 600", "stopTimeoutSeconds": 1, "availablePorts": map[string]int{"min": 22110, "max": 22129},
		"maximumServiceCount": 3, "scaling": map[string]any{"readyHeadroom": 1, "scaleDownAfterSeconds": 2}}
	// Bad input first.
	for field, bad := range map[string]map[string]any{
		"scaling.fullAt":        {"readyHeadroom": 1, "fullAt": 1.5},
		"scaling.readyHeadroom": {"readyHeadroom": 4},
	} {
		c := map[string]any{}
		for k, v := range cfg {
			c[k] = v
		}
		c["scaling"] = bad
		r := e.do("PUT", "/api/configurations/lobby", e.admin, mustJSON(c))
		if msg := errorBody(t, r); r.StatusCode != 400 || !strings.Contains(msg, field) {
			t.Errorf("%v: %d %q, want 400 naming %s", bad, r.StatusCode, msg, field)
		}
	}
	if r := e.do("POST", "/api/instances/nope/drain", e.admin, ""); r.StatusCode != 404 {
		t.Errorf("drain of an unknown instance: %d", r.StatusCode)
	}
	e.putConfig("lobby", cfg)

	list := func() []api.InstanceInfo {
		var out []api.InstanceInfo
		for _, in := range decode[[]api.InstanceInfo](t, e.do("GET", "/api/instances?configuration=lobby", e.admin, "")) {
			if in.State == "ONLINE" || in.State == "CREATING" {
				out = append(out, in)
			}
		}
		return out
	}
	wait := func(what string, f func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !f(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; instances %+v; scaling %+v", what, list(), decode[api.ScalingStatus](t, e.do("GET", "/api/configurations/lobby/scaling", e.admin, "")))
			}
		}
	}
	report := func(id string, players, maxPlayers int) int {
		t.Helper()
		r := e.do("PUT", "/api/instances/"+id+"/state", e.admin, fmt.Sprintf(`{"state":"ONLINE","players":%d,"maxPlayers":%d}`, players, maxPlayers))
		r.Body.Close()
		return r.StatusCode
	}
	// An empty configuration: one instance is started, and only one while
	// it has not reported.
	wait("a first instance", func() bool { l := list(); return len(l) == 1 && l[0].State == "ONLINE" })
	first := list()[0]
	if first.Joinable {
		t.Errorf("joinable before any report: %+v", first)
	}
	if c := report(first.ID, 0, 10); c != 200 {
		t.Fatalf("report: %d", c)
	}
	if c := report(first.ID, 11, 10); c != 400 {
		t.Errorf("a report of 11 players for 10: %d, want 400", c)
	}
	if in := decode[api.InstanceInfo](t, e.do("GET", "/api/instances/"+first.ID, e.admin, "")); !in.Joinable || in.Players != 0 {
		t.Errorf("after an empty report: %+v", in)
	}
	if n := len(list()); n != 1 {
		t.Fatalf("%d instances for a headroom of 1 met", n)
	}
	// It fills up (9 of 10 ≥ 0.9): a second starts; then a third; the
	// maximum (3) holds the fourth back.
	report(first.ID, 9, 10)
	wait("a second instance", func() bool { return len(list()) == 2 })
	second := list()[1]
	if second.ID == first.ID {
		second = list()[0]
	}
	wait("the second to run", func() bool {
		in := decode[api.InstanceInfo](t, e.do("GET", "/api/instances/"+second.ID, e.admin, ""))
		return in.State == "ONLINE"
	})
	report(second.ID, 9, 10)
	wait("a third instance", func() bool { return len(list()) == 3 })
	var third api.InstanceInfo
	for _, in := range list() {
		if in.ID != first.ID && in.ID != second.ID {
			third = in
		}
	}
	wait("the third to run", func() bool {
		return decode[api.InstanceInfo](t, e.do("GET", "/api/instances/"+third.ID, e.admin, "")).State == "ONLINE"
	})
	report(third.ID, 9, 10)
	wait("the decision at the maximum", func() bool {
		st := decode[api.ScalingStatus](t, e.do("GET", "/api/configurations/lobby/scaling", e.admin, ""))
		return len(st.Decisions) > 0 && strings.Contains(st.Decisions[0].Reason, "at the maximum")
	})
	if n := len(list()); n != 3 {
		t.Fatalf("past the maximum: %d instances", n)
	}
	// The players leave but 4 on the third: the empty ones go, newest
	// first, one a pass; the busy one (4 of 10: still joinable) meets the
	// headroom alone and stays.
	report(first.ID, 0, 10)
	report(second.ID, 0, 10)
	report(third.ID, 4, 10)
	wait("the scale-down", func() bool {
		for _, in := range list() {
			if in.State == "ONLINE" {
				report(in.ID, map[bool]int{true: 4, false: 0}[in.ID == third.ID], 10)
			}
		}
		return len(list()) == 1
	})
	if left := list(); left[0].ID != third.ID {
		t.Errorf("left after the scale-down: %s, want the busy %s", left[0].ID, third.ID)
	}
	// Draining the busy one: not joinable, stays while it has players,
	// stops once empty.
	if r := e.do("POST", "/api/instances/"+third.ID+"/drain", e.admin, `{"deadlineSeconds":600}`); r.StatusCode != 200 {
		t.Fatalf("drain: %d", r.StatusCode)
	}
	d := decode[api.InstanceInfo](t, e.do("POST", "/api/instances/"+third.ID+"/drain", e.admin, "")) // again: 200, the deadline kept
	if !d.Draining || d.Joinable || d.DrainDeadline == 0 {
		t.Errorf("drained: %+v", d)
	}
	report(third.ID, 4, 10)
	wait("a replacement for the drained one", func() bool { return len(list()) == 2 })
	time.Sleep(3 * time.Second) // a pass or more (no assertion on time: on the state)
	if in := decode[api.InstanceInfo](t, e.do("GET", "/api/instances/"+third.ID, e.admin, "")); in.State != "ONLINE" {
		t.Fatalf("a draining instance with players was stopped: %+v", in)
	}
	report(third.ID, 0, 10)
	wait("the drained instance to stop", func() bool {
		r := e.do("GET", "/api/instances/"+third.ID, e.admin, "")
		r.Body.Close()
		return r.StatusCode == 404
	})
	st := decode[api.ScalingStatus](t, e.do("GET", "/api/configurations/lobby/scaling", e.admin, ""))
	var actions []string
	for _, dd := range st.Decisions {
		actions = append(actions, dd.Action+":"+dd.Reason)
	}
	if len(st.Decisions) < 4 || st.Decisions[0].Action != "stop" || !strings.Contains(st.Decisions[0].Reason, "draining") {
		t.Errorf("decisions, newest first: %v", actions)
	}
	if evs := decode[[]api.Event](t, e.do("GET", "/api/events?type=scaling.decision", e.admin, "")); len(evs) < 4 {
		t.Errorf("scaling events: %d", len(evs))
	}
	// Maintenance: not scaled, its instances show it.
	cfg["maintenance"] = true
	e.putConfig("lobby", cfg)
	for _, in := range list() {
		report(in.ID, 9, 10)
	}
	time.Sleep(3 * time.Second)
	for _, in := range list() {
		if !in.Maintenance || in.Joinable {
			t.Errorf("an instance of a configuration in maintenance: %+v", in)
		}
	}
	if n := len(list()); n != 1 {
		t.Errorf("scaled in maintenance: %d instances", n)
	}
	_ = second
	metrics := readAll(e.do("GET", "/api/metrics", "", ""))
	for _, want := range []string{`universe_scaling_actions_total{action="start",reason="headroom"}`, `universe_scaling_desired_instances{configuration="lobby"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// A failing health check makes an instance not joinable and, after its
// failures in a row, restarts it under its restart policy.
func TestHealthCheckRestarts(t *testing.T) {
	e := newEnv(t, nil)
	e.putConfig("hc", map[string]any{"command": "exec sleep 600", "stopTimeoutSeconds": 1, "availablePorts": map[string]int{"min": 22130, "max": 22134},
		"restartPolicy": "always", "healthCheck": map[string]any{"type": "tcp", "intervalSeconds": 1, "timeoutSeconds": 1, "graceSeconds": 1, "failures": 2}})
	in := e.create("hc")
	if in.Health != api.HealthUnknown {
		t.Errorf("health before the first check: %q", in.Health)
	}
	var seen api.InstanceInfo
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		seen = decode[api.InstanceInfo](t, e.do("GET", "/api/instances/"+in.ID, e.admin, ""))
		if seen.Restarts >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no restart after failing checks: %+v", seen)
		}
	}
	if !strings.Contains(readAll(e.do("GET", "/api/instances/"+in.ID+"/logs?lines=50", e.admin, "")), "health check failed 2 times in a row") {
		t.Error("the log does not say why it restarted")
	}
	r := e.do("PUT", "/api/configurations/bad", e.admin, `{"command":"x","healthCheck":{"type":"udp"}}`)
	if msg := errorBody(t, r); r.StatusCode != 400 || !strings.Contains(msg, "healthCheck.type") {
		t.Errorf("a udp health check: %d %q", r.StatusCode, msg)
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
