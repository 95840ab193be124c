package master_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/instance"
	"github.com/universe-orchestrator/universe/master"
	"github.com/universe-orchestrator/universe/master/auth"
)

// instanceToken waits for the instance to have written its own key into
// key.txt of its working dir (the configuration's command does) and
// returns it.
func (e *env) instanceToken(id string) string {
	e.t.Helper()
	var token string
	waitUntil(e.t.(*testing.T), "the key file of "+id, 10*time.Second, func() bool {
		b, err := os.ReadFile(filepath.Join(e.m.Config().DataDir, "running", id, "key.txt"))
		token = string(b)
		return err == nil && strings.HasPrefix(token, "unv_")
	})
	return token
}

const writeKey = `printf %s "$UNIVERSE_API_KEY" > key.txt; `

// An instance that reports itself STOPPED while its process runs cannot make
// the reconciler count it as gone: it is stopped for real, and at no moment
// do more processes run than the configuration's maximum.
func TestLyingInstanceKeyCannotBreakMaximum(t *testing.T) {
	e := newEnv(t, fastBackoff)
	e.putConfig("one", map[string]any{"command": writeKey + "exec sleep 60", "minimumServiceCount": 1, "maximumServiceCount": 1,
		"availablePorts": map[string]int{"min": 21710, "max": 21729}, "stopTimeoutSeconds": 1})
	mgr := e.m.Instances()
	running := func() (n int) {
		for _, in := range mgr.List(instance.Filter{Configuration: "one"}) {
			if in.ProcessPid != nil && alive(int(*in.ProcessPid)) {
				n++
			}
		}
		return n
	}
	waitUntil(t, "the minimum", 10*time.Second, func() bool { return len(mgr.Live("one")) == 1 })
	maxSeen := sampleMax(running)
	maxRecords := sampleMax(func() int { return len(mgr.List(instance.Filter{Configuration: "one"})) })
	for round := 0; round < 3; round++ {
		var id string
		waitUntil(t, "an instance", 10*time.Second, func() bool {
			live := mgr.Live("one")
			if len(live) == 1 {
				id = live[0]
			}
			return id != ""
		})
		token := e.instanceToken(id)
		for i := 0; i < 3; i++ {
			resp := e.do("PUT", "/api/instances/"+id+"/state", token, `{"state":"STOPPED"}`)
			if i > 0 && (resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusUnauthorized) {
				resp.Body.Close()
				continue // the first report may have ended it already (401: its key went with it)
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("report: %d %s", resp.StatusCode, readAll(resp))
			}
			info := decode[api.InstanceInfo](t, resp)
			if info.ReportedState != "STOPPED" {
				t.Errorf("reportedState %q", info.ReportedState)
			}
		}
		// It was stopped, then its record went: a dynamic instance that
		// says it is done is replaced, not kept as a stopped record.
		waitUntil(t, "the stopped instance's record to go", 10*time.Second, func() bool {
			_, err := mgr.Get(id)
			return err != nil
		})
	}
	waitUntil(t, "one running process", 10*time.Second, func() bool { return running() == 1 })
	if n := maxSeen(); n > 1 {
		t.Fatalf("%d processes of a configuration with maximum 1 ran at once", n)
	}
	if n := maxRecords(); n > 2 {
		t.Fatalf("%d records of a configuration with maximum 1 at once: reports piled up stopped records", n)
	}
}

// What an instance keeps about itself is bounded: how many properties, how
// long their names and values, how large a report; null removes one.
func TestStateReportBounds(t *testing.T) {
	e := newEnv(t, nil)
	e.putConfig("rep", map[string]any{"command": writeKey + "exec sleep 60",
		"availablePorts": map[string]int{"min": 21730, "max": 21739}, "stopTimeoutSeconds": 1})
	id := e.create("rep").ID
	token := e.instanceToken(id)
	props := func(n int, prefix string) string {
		m := map[string]any{}
		for i := 0; i < n; i++ {
			m[fmt.Sprintf("%s%d", prefix, i)] = i
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	cases := []struct {
		name, body string
		want       int
	}{
		{"64 properties", props(64, "p"), 200},
		{"one more", `{"extra":1}`, 400},
		{"one removed, one added", `{"p0":null,"extra":1}`, 200},
		{"a long name", `{"` + strings.Repeat("k", 65) + `":1}`, 400},
		{"a long value", `{"p1":"` + strings.Repeat("v", 1030) + `"}`, 400},
		{"a large report", `{"state":"ONLINE","x":"` + strings.Repeat("v", 17<<10) + `"}`, 413},
		{"lastHeartbeat null", `{"state":"ONLINE","lastHeartbeat":null}`, 200},
	}
	for _, tc := range cases {
		resp := e.do("PUT", "/api/instances/"+id+"/state", token, tc.body)
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, resp.StatusCode, readAll(resp), tc.want)
		}
		resp.Body.Close()
	}
	info := e.info(id)
	got := decode[map[string]any](t, e.do("GET", "/api/instances/"+id+"/properties", token, ""))
	if len(got) != 64 || got["p0"] != nil || got["extra"] == nil {
		t.Errorf("properties after the reports: %d %v", len(got), got["p0"])
	}
	if info.LastHeartbeat == 0 || info.State != "ONLINE" {
		t.Errorf("after a null heartbeat: %+v", info)
	}
}

// An instance's own key is rate limited: it cannot flood the master.
func TestInstanceKeyRateLimit(t *testing.T) {
	e := newEnv(t, func(c *master.Config) { c.InstanceRate = auth.Rate{Limit: 5, Window: time.Minute} })
	e.putConfig("rl", map[string]any{"command": writeKey + "exec sleep 60",
		"availablePorts": map[string]int{"min": 21740, "max": 21749}, "stopTimeoutSeconds": 1})
	id := e.create("rl").ID
	token := e.instanceToken(id)
	codes := []int{}
	for i := 0; i < 7; i++ {
		resp := e.do("GET", "/api/instances/"+id, token, "")
		codes = append(codes, resp.StatusCode)
		resp.Body.Close()
	}
	if fmt.Sprint(codes) != "[200 200 200 200 200 429 429]" {
		t.Fatalf("statuses %v, want 5 × 200 then 429", codes)
	}
	// Other keys are not affected.
	if resp := e.do("GET", "/api/instances/"+id, e.admin, ""); resp.StatusCode != 200 {
		t.Fatalf("admin: %d", resp.StatusCode)
	}
}

// An instance printing 64 KB lines: the logs answer is bounded in bytes,
// says how many lines it left out, and never carries a line twice.
func TestLongLinesBoundedAnswer(t *testing.T) {
	e := newEnv(t, func(c *master.Config) { c.MaxLogResponseBytes = 1 << 20 })
	e.putConfig("long", map[string]any{"command": `i=0; while [ $i -lt 60 ]; do head -c 65000 /dev/zero | tr '\0' x; echo " $i"; i=$((i+1)); done; exec sleep 60`,
		"availablePorts": map[string]int{"min": 21750, "max": 21759}, "stopTimeoutSeconds": 1})
	id := e.create("long").ID
	var body string
	waitUntil(t, "60 long lines", 20*time.Second, func() bool {
		body = readAll(e.do("GET", "/api/instances/"+id+"/logs?lines=10000", e.admin, ""))
		return strings.Contains(body, "x 59\"")
	})
	if len(body) > 1<<20+64<<10 {
		t.Fatalf("answer of %d bytes, limit 1 MiB", len(body))
	}
	var logs api.Logs
	if err := json.Unmarshal([]byte(body), &logs); err != nil {
		t.Fatal(err)
	}
	if logs.OmittedLines == 0 || len(logs.Lines) == 0 || strings.Contains(body, `"entries"`) {
		t.Fatalf("lines %d, omitted %d, entries in it: %v", len(logs.Lines), logs.OmittedLines, strings.Contains(body, `"entries"`))
	}
	var entries api.LogEntries
	if err := json.Unmarshal([]byte(readAll(e.do("GET", "/api/instances/"+id+"/logs?lines=10000&format=entries", e.admin, ""))), &entries); err != nil {
		t.Fatal(err)
	}
	if len(entries.Entries) != len(logs.Lines) || entries.OmittedLines != logs.OmittedLines {
		t.Fatalf("entries %d/%d vs lines %d/%d", len(entries.Entries), entries.OmittedLines, len(logs.Lines), logs.OmittedLines)
	}
}

// Commands with huge output leave a bounded excerpt in the audit log, so
// the database barely grows; REST changes are audited too.
func TestAuditFloodAndRESTChanges(t *testing.T) {
	e := newEnv(t, nil)
	e.putConfig("loud", map[string]any{"command": `i=0; while [ $i -lt 60 ]; do head -c 65000 /dev/zero | tr '\0' x; echo " $i"; i=$((i+1)); done; exec sleep 60`,
		"availablePorts": map[string]int{"min": 21760, "max": 21769}, "stopTimeoutSeconds": 1})
	id := e.create("loud").ID
	waitUntil(t, "60 long lines", 20*time.Second, func() bool {
		return strings.Contains(readAll(e.do("GET", "/api/instances/"+id+"/logs?lines=1", e.admin, "")), "x 59\"")
	})
	dbFile := filepath.Join(e.m.Config().DataDir, "universe.db")
	before, _ := os.Stat(dbFile)
	for i := 0; i < 20; i++ {
		resp := e.do("POST", "/api/commands/execute", e.admin, `{"command":"instance logs `+id+` 10000"}`)
		if resp.StatusCode != 200 {
			t.Fatalf("command: %d", resp.StatusCode)
		}
		readAll(resp)
	}
	after, _ := os.Stat(dbFile)
	if grow := after.Size() - before.Size(); grow > 1<<20 {
		t.Errorf("20 commands with MBs of output grew the database by %d bytes", grow)
	}
	e.do("POST", "/api/instances/"+id+"/execute", e.admin, `{"command":"say hi"}`)
	e.do("PATCH", "/api/instances/"+id+"/lifecycle?target=stop", e.admin, "")
	e.do("POST", "/api/templates/g/t", e.admin, "")
	e.do("PUT", "/api/templates/g/t/files/a.txt", e.admin, "x")
	e.do("DELETE", "/api/instances/nosuch", e.admin, "")
	e.do("PUT", "/api/configurations/bad", e.admin, `{"command":""}`)
	var entries []api.AuditEntry
	if err := json.Unmarshal([]byte(readAll(e.do("GET", "/api/audit?limit=30", e.admin, ""))), &entries); err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, a := range entries {
		all = append(all, a.Command+" "+a.Result)
		if strings.HasPrefix(a.Command, "instance logs") && (a.OutputOmitted == 0 || len(strings.Join(a.Output, "")) > 2<<10) {
			t.Errorf("audit of %q keeps %d bytes, omits %d lines", a.Command, len(strings.Join(a.Output, "")), a.OutputOmitted)
		}
	}
	joined := strings.Join(all, "\n")
	for _, want := range []string{
		"POST /api/instances/" + id + "/execute command=say hi ok",
		"PATCH /api/instances/" + id + "/lifecycle action=stop ok",
		"POST /api/templates/g/t ok",
		"PUT /api/templates/g/t/files/a.txt ok",
		"DELETE /api/instances/nosuch error",
		"POST /api/instances configuration=loud id=" + id + " ok",
		"PUT /api/configurations/bad error",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("audit lacks %q:\n%s", want, joined)
		}
	}
	// A configuration and its entry are written together, once.
	var puts []api.AuditEntry
	for _, a := range entries {
		if a.Command == "PUT /api/configurations/loud" {
			puts = append(puts, a)
		}
	}
	if len(puts) != 1 || puts[0].Result != "ok" || puts[0].Configuration != "loud" || puts[0].KeyID == "" {
		t.Errorf("audit of the configuration's PUT: %+v", puts)
	}
}

// Output over the line rate is dropped before it is copied, and every
// dropped line is counted in a system line: kept + dropped = written.
func TestThrottledOutputIsCounted(t *testing.T) {
	e := newEnv(t, func(c *master.Config) { c.InstanceLog.LineRate = 200 })
	e.putConfig("flood", map[string]any{"command": `yes | head -n 20000; echo done > done.txt; exec sleep 60`,
		"availablePorts": map[string]int{"min": 21840, "max": 21849}, "stopTimeoutSeconds": 1})
	id := e.create("flood").ID
	var entries api.LogEntries
	dropped := 0
	waitUntil(t, "the drop report", 15*time.Second, func() bool {
		_ = json.Unmarshal([]byte(readAll(e.do("GET", "/api/instances/"+id+"/logs?lines=10000&format=entries", e.admin, ""))), &entries)
		dropped = 0
		for _, l := range entries.Entries {
			var n int
			if _, err := fmt.Sscanf(l.Line, "output throttled: %d lines dropped", &n); err == nil && l.Stream == "system" {
				dropped += n
			}
		}
		_, err := os.Stat(filepath.Join(e.m.Config().DataDir, "running", id, "done.txt"))
		return err == nil && dropped > 0 && kept(entries)+dropped == 20000
	}, func() string {
		seqs := map[uint64]int{}
		var sys []string
		for _, l := range entries.Entries {
			seqs[l.Seq]++
			if l.Stream == "system" {
				sys = append(sys, fmt.Sprintf("%d:%s", l.Seq, l.Line))
			}
		}
		dups := 0
		for _, n := range seqs {
			if n > 1 {
				dups++
			}
		}
		return fmt.Sprintf("kept %d, dropped %d, %d entries, %d duplicate seqs, first %d last %d, system: %v", kept(entries), dropped,
			len(entries.Entries), dups, entries.Entries[0].Seq, entries.Entries[len(entries.Entries)-1].Seq, sys)
	})
}

func kept(l api.LogEntries) int {
	n := 0
	for _, e := range l.Entries {
		if e.Stream == "stdout" && e.Line == "y" {
			n++
		}
	}
	return n
}

// An instance's process starts with the default signal dispositions: it is
// not left ignoring SIGPIPE, SIGINT or SIGHUP because its supervisor
// ignores them.
func TestInstanceSignalsAreDefault(t *testing.T) {
	e := newEnv(t, nil)
	e.putConfig("sig", map[string]any{"command": `grep SigIgn /proc/$$/status; exec sleep 60`,
		"availablePorts": map[string]int{"min": 21850, "max": 21859}, "stopTimeoutSeconds": 1})
	id := e.create("sig").ID
	var line string
	waitUntil(t, "the SigIgn line", 10*time.Second, func() bool {
		for _, l := range strings.Split(readAll(e.do("GET", "/api/instances/"+id+"/logs", e.admin, "")), `"`) {
			if strings.HasPrefix(l, "SigIgn:") {
				line = l
				return true
			}
		}
		return false
	})
	mask, err := strconv.ParseUint(strings.TrimSpace(strings.ReplaceAll(strings.TrimPrefix(line, "SigIgn:"), `\t`, "")), 16, 64)
	if err != nil {
		t.Fatalf("%q: %v", line, err)
	}
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGPIPE} {
		if mask&(1<<(uint(sig)-1)) != 0 {
			t.Errorf("the instance ignores %v (SigIgn %s)", sig, line)
		}
	}
}
