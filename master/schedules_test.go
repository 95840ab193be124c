package master_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/universe-orchestrator/universe/api"
)

// A schedule on an instance fires its chain every second, each firing once
// (its own run id); "run now" adds a run; bad input is refused naming the
// field; deleting it takes its runs.
func TestSchedules(t *testing.T) {
	e := newEnv(t, nil)
	e.putConfig("sc", map[string]any{"command": `while read l; do echo "got $l"; done`, "stopTimeoutSeconds": 1, "availablePorts": map[string]int{"min": 22050, "max": 22059}})
	in := e.create("sc")
	e.waitState(in.ID, "ONLINE")
	for body, want := range map[string]string{
		`{"name":"x","instanceId":"` + in.ID + `","cron":"61 * * * *","tasks":[{"type":"command","payload":"a"}]}`:                                                              "cron",
		`{"name":"x","instanceId":"` + in.ID + `","cron":"@daily","timezone":"Mars/Base","tasks":[{"type":"command","payload":"a"}]}`:                                           "timezone",
		`{"name":"x","instanceId":"` + in.ID + `","cron":"@daily","tasks":[{"type":"command","payload":"a","offsetSeconds":901}]}`:                                              "tasks[0].offsetSeconds",
		`{"name":"x","instanceId":"` + in.ID + `","cron":"@daily","tasks":[{"type":"fly"}]}`:                                                                                    "tasks[0].type",
		`{"name":"x","instanceId":"` + in.ID + `","cron":"@daily","tasks":[{"type":"command","payload":"a"}],"bogus":1}`:                                                        "bogus",
		`{"name":"x","instanceId":"` + in.ID + `","cron":"@daily","tasks":[` + strings.Repeat(`{"type":"power","payload":"stop"},`, 20) + `{"type":"power","payload":"stop"}]}`: "tasks",
	} {
		r := e.do("POST", "/api/schedules", e.admin, body)
		if msg := errorBody(t, r); r.StatusCode != 400 || !strings.Contains(msg, want) {
			t.Errorf("%s: %d %q, want 400 naming %s", body, r.StatusCode, msg, want)
		}
	}
	if r := e.do("POST", "/api/schedules", e.admin, `{"name":"x","instanceId":"nope","cron":"@daily","tasks":[{"type":"command","payload":"a"}]}`); r.StatusCode != 404 {
		t.Errorf("a schedule of an unknown instance: %d", r.StatusCode)
	}

	r := e.do("POST", "/api/schedules", e.admin, `{"name":"tick","instanceId":"`+in.ID+`","cron":"@every 1s","enabled":true,"tasks":[{"type":"command","payload":"tick"}]}`)
	if r.StatusCode != 201 {
		t.Fatalf("create: %d %s", r.StatusCode, readAll(r))
	}
	s := decode[api.Schedule](t, r)
	if s.ID == "" || s.NextRun == nil || s.Timezone != "UTC" || s.CatchUpSeconds != 300 {
		t.Fatalf("created: %+v", s)
	}
	var runs []api.ScheduleRun
	deadline := time.Now().Add(20 * time.Second)
	for {
		runs = decode[[]api.ScheduleRun](t, e.do("GET", "/api/schedules/"+s.ID+"/runs", e.admin, ""))
		ok := 0
		for _, run := range runs {
			if run.Outcome == api.OutcomeOK {
				ok++
			}
		}
		if ok >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("runs: %+v", runs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	seen := map[string]bool{}
	for _, run := range runs {
		if seen[run.ID] || seen[run.FireTime.String()] {
			t.Errorf("a firing ran twice: %s", run.ID)
		}
		seen[run.ID], seen[run.FireTime.String()] = true, true
		if run.Outcome == api.OutcomeOK && (len(run.Tasks) != 1 || run.Tasks[0].InstanceID != in.ID || run.Tasks[0].Outcome != api.OutcomeOK) {
			t.Errorf("run: %+v", run)
		}
	}
	e.waitLog(in.ID, "got tick")

	// Stop it firing; run it by hand.
	r = e.do("PUT", "/api/schedules/"+s.ID, e.admin, `{"name":"tick","instanceId":"`+in.ID+`","cron":"@every 1s","enabled":false,"tasks":[{"type":"command","payload":"by hand"}]}`)
	if r.StatusCode != 200 || decode[api.Schedule](t, r).NextRun != nil {
		t.Fatalf("disable: %d", r.StatusCode)
	}
	r = e.do("POST", "/api/schedules/"+s.ID+"/run", e.admin, "")
	if r.StatusCode != 202 || !decode[api.ScheduleRun](t, r).Manual {
		t.Fatalf("run now: %d", r.StatusCode)
	}
	e.waitLog(in.ID, "got by hand")
	if list := decode[[]api.Schedule](t, e.do("GET", "/api/schedules?instanceId="+in.ID, e.admin, "")); len(list) != 1 {
		t.Errorf("list: %d", len(list))
	}
	if r := e.do("DELETE", "/api/schedules/"+s.ID, e.admin, ""); r.StatusCode != 204 {
		t.Fatalf("delete: %d", r.StatusCode)
	}
	if r := e.do("GET", "/api/schedules/"+s.ID+"/runs", e.admin, ""); r.StatusCode != 404 {
		t.Errorf("runs of a deleted schedule: %d", r.StatusCode)
	}
	if !strings.Contains(readAll(e.do("GET", "/api/metrics", "", "")), `universe_schedule_runs_total{outcome="ok"}`) {
		t.Error("no schedule metrics")
	}
}

// The cron helper's preview: the next times in the schedule's zone, or a
// 400 naming the field at fault.
func TestSchedulePreview(t *testing.T) {
	e := newEnv(t, nil)
	p := decode[api.SchedulePreview](t, e.do("GET", "/api/schedules/preview?cron="+url.QueryEscape("30 2 * * *")+"&timezone=Europe/Berlin", e.admin, ""))
	if len(p.Next) != 5 || p.Timezone != "Europe/Berlin" {
		t.Fatalf("preview: %+v", p)
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	for i, n := range p.Next {
		if l := n.In(berlin); l.Hour() != 2 || l.Minute() != 30 || i > 0 && !n.After(p.Next[i-1]) {
			t.Errorf("next[%d] = %s (%s in Berlin)", i, n, l)
		}
	}
	if p := decode[api.SchedulePreview](t, e.do("GET", "/api/schedules/preview?cron=@hourly&count=12", e.admin, "")); len(p.Next) != 12 || p.Timezone != "UTC" {
		t.Errorf("12 hourly: %+v", p)
	}
	for q, want := range map[string]string{
		"cron=" + url.QueryEscape("61 * * * *"): "cron",
		"cron=@daily&timezone=Mars/Base":        "timezone",
		"cron=":                                 "cron",
		"cron=@daily&count=51":                  "count",
	} {
		r := e.do("GET", "/api/schedules/preview?"+q, e.admin, "")
		if msg := errorBody(t, r); r.StatusCode != 400 || !strings.Contains(msg, want) {
			t.Errorf("%s: %d %q, want 400 naming %s", q, r.StatusCode, msg, want)
		}
	}
}
