package master_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/master"
)

// putConfig stores a configuration and fails the test unless it is 204.
func (e *env) putConfig(name string, cfg map[string]any) {
	e.t.Helper()
	b, _ := json.Marshal(cfg)
	resp := e.do("PUT", "/api/configurations/"+name, e.admin, string(b))
	if resp.StatusCode != http.StatusNoContent {
		e.t.Fatalf("PUT configuration %s: %d %s", name, resp.StatusCode, readAll(resp))
	}
}

func readAll(resp *http.Response) string {
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			return sb.String()
		}
	}
}

// create makes an instance and returns it (201 expected).
func (e *env) create(config string) api.InstanceInfo {
	e.t.Helper()
	resp := e.do("POST", "/api/instances", e.admin, `{"configurationName":"`+config+`"}`)
	if resp.StatusCode != http.StatusCreated {
		e.t.Fatalf("create instance of %s: %d %s", config, resp.StatusCode, readAll(resp))
	}
	return decode[api.InstanceInfo](e.t, resp)
}

func (e *env) info(id string) api.InstanceInfo {
	e.t.Helper()
	resp := e.do("GET", "/api/instances/"+id, e.admin, "")
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("get instance %s: %d", id, resp.StatusCode)
	}
	return decode[api.InstanceInfo](e.t, resp)
}

// waitState polls the instance until it is in state.
func (e *env) waitState(id, state string) api.InstanceInfo {
	e.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		info := e.info(id)
		if info.State == state {
			return info
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("instance %s is %s (%s), want %s", id, info.State, info.Reason, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// frames reads JSON live-log frames.
type frames struct {
	t    testing.TB
	conn *websocket.Conn
}

// until reads frames until match returns true, and returns that frame.
func (f *frames) until(what string, match func(api.LiveLogFrame) bool) api.LiveLogFrame {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		_, data, err := f.conn.Read(ctx)
		if err != nil {
			f.t.Fatalf("waiting for %s: %v", what, err)
		}
		var fr api.LiveLogFrame
		if err := json.Unmarshal(data, &fr); err != nil {
			f.t.Fatalf("bad frame %q: %v", data, err)
		}
		if match(fr) {
			return fr
		}
	}
}

func line(s string) func(api.LiveLogFrame) bool {
	return func(f api.LiveLogFrame) bool { return f.Type == "" && f.Line == s }
}

func state(s string) func(api.LiveLogFrame) bool {
	return func(f api.LiveLogFrame) bool { return f.Type == api.FrameState && f.State == s }
}

func (e *env) liveLog(id, query string) *frames {
	e.t.Helper()
	conn, resp, err := e.dialWS("/api/instances/"+id+"/live-log"+query, e.admin)
	if err != nil {
		e.t.Fatalf("dial live-log: %v (%v)", err, resp)
	}
	e.t.Cleanup(func() { _ = conn.CloseNow() })
	return &frames{t: e.t, conn: conn}
}

func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// "pid (comm) S ...": a zombie (Z) is dead, only not reaped.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func TestInstanceLifecycleEndToEnd(t *testing.T) {
	var dataDir string
	e := newEnv(t, func(c *master.Config) { dataDir = c.DataDir })
	e.putConfig("echo", map[string]any{
		"command": `echo "ready port=%PORT% id=$UNIVERSE_INSTANCE_ID cfg=%CONFIGURATION_NAME%"; ` +
			`while read l; do echo "got: $l"; [ "$l" = bye ] && exit 0; done`,
		"stopCommand":        "bye",
		"stopTimeoutSeconds": 5,
		"availablePorts":     map[string]int{"min": 21100, "max": 21109},
	})

	info := e.create("echo")
	if info.State != "ONLINE" || info.ProcessPid == nil || info.AllocatedPort < 21100 || info.AllocatedPort > 21109 {
		t.Fatalf("created %+v", info)
	}
	if info.WrapperNodeID != "node-1" || len(info.ID) != 6 {
		t.Fatalf("id %q node %q", info.ID, info.WrapperNodeID)
	}
	id := info.ID
	workDir := filepath.Join(dataDir, "running", id)
	if _, err := os.Stat(workDir); err != nil {
		t.Fatalf("working dir: %v", err)
	}

	// The live-log sends the backlog, then follows.
	ll := e.liveLog(id, "?format=json")
	ll.until("initial state", state("ONLINE"))
	ready := fmt.Sprintf("ready port=%d id=%s cfg=echo", info.AllocatedPort, id)
	first := ll.until("ready line", line(ready))
	if first.Seq == 0 || first.Stream != "stdout" || first.TS == 0 {
		t.Fatalf("line frame %+v", first)
	}

	// Execute echoes back through the live-log, any number of times.
	for i := 0; i < 3; i++ {
		resp := e.do("POST", "/api/instances/"+id+"/execute", e.admin, fmt.Sprintf(`{"command":"hello %d"}`, i))
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("execute: %d %s", resp.StatusCode, readAll(resp))
		}
		got := ll.until("echo", line(fmt.Sprintf("got: hello %d", i)))
		if got.Seq <= first.Seq {
			t.Fatalf("sequence went back: %d after %d", got.Seq, first.Seq)
		}
	}

	// The logs endpoint.
	resp := e.do("GET", "/api/instances/"+id+"/logs?lines=3", e.admin, "")
	logs := decode[api.Logs](t, resp)
	if logs.InstanceID != id || logs.RequestedLines != 3 || len(logs.Lines) != 3 || logs.Lines[2] != "got: hello 2" {
		t.Fatalf("logs %+v", logs)
	}
	for _, q := range []string{"0", "10001", "x", "-1"} {
		if resp := e.do("GET", "/api/instances/"+id+"/logs?lines="+q, e.admin, ""); resp.StatusCode != 400 {
			t.Errorf("lines=%s: %d, want 400", q, resp.StatusCode)
		}
	}

	// Restart keeps the id and the working dir; the stop command ends it.
	marker := filepath.Join(workDir, "kept.txt")
	if err := os.WriteFile(marker, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	resp = e.do("PATCH", "/api/instances/"+id+"/lifecycle?target=restart", e.admin, "")
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("restart: %d %s", resp.StatusCode, readAll(resp))
	}
	st := ll.until("stopped", state("STOPPED"))
	if st.Instance == nil || st.Instance.ExitCode == nil || *st.Instance.ExitCode != 0 {
		t.Fatalf("stopped frame %+v", st.Instance)
	}
	ll.until("online again", state("ONLINE"))
	ll.until("ready again", line(ready))
	after := e.info(id)
	if after.ID != id || after.Restarts != 1 || *after.ProcessPid == *info.ProcessPid {
		t.Fatalf("after restart %+v", after)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("restart lost the working dir: %v", err)
	}

	// Stop: graceful via the stop command.
	resp = e.do("PATCH", "/api/instances/"+id+"/lifecycle?target=stop", e.admin, "")
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("stop: %d", resp.StatusCode)
	}
	stopped := e.waitState(id, "STOPPED")
	if stopped.ExitCode == nil || *stopped.ExitCode != 0 || stopped.ProcessPid != nil {
		t.Fatalf("stopped %+v", stopped)
	}
	if resp := e.do("POST", "/api/instances/"+id+"/execute", e.admin, `{"command":"x"}`); resp.StatusCode != http.StatusConflict {
		t.Fatalf("execute on a stopped instance: %d, want 409", resp.StatusCode)
	}
	// Stopping a stopped instance is nothing to do.
	if resp := e.do("PATCH", "/api/instances/"+id+"/lifecycle?target=stop", e.admin, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("second stop: %d, want 200", resp.StatusCode)
	}

	// Delete removes the working dir and ends the live-log normally.
	if resp := e.do("DELETE", "/api/instances/"+id, e.admin, ""); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	final := ll.until("final state", func(f api.LiveLogFrame) bool { return f.Type == api.FrameState && f.Deleted })
	if final.Instance == nil || final.Instance.ID != id {
		t.Fatalf("final frame %+v", final)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, err := ll.conn.Read(ctx); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("live-log ended with %v, want a normal close", err)
	}
	if _, err := os.Stat(workDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("working dir still there: %v", err)
	}
	if resp := e.do("GET", "/api/instances/"+id, e.admin, ""); resp.StatusCode != 404 {
		t.Fatalf("deleted instance: %d, want 404", resp.StatusCode)
	}
}

// A process that ignores its stop command and SIGTERM is killed after the
// timeout, and so is the child it started.
func TestStopKillsStubbornProcessGroup(t *testing.T) {
	e := newEnv(t, nil)
	e.putConfig("stubborn", map[string]any{
		"command":            `trap "" TERM; sleep 600 & echo "child $!"; while true; do sleep 0.1; done`,
		"stopTimeoutSeconds": 1,
		"availablePorts":     map[string]int{"min": 21110, "max": 21119},
	})
	info := e.create("stubborn")
	ll := e.liveLog(info.ID, "?format=json")
	fr := ll.until("child pid", func(f api.LiveLogFrame) bool { return strings.HasPrefix(f.Line, "child ") })
	child, err := strconv.Atoi(strings.TrimPrefix(fr.Line, "child "))
	if err != nil {
		t.Fatal(err)
	}
	shell := int(*info.ProcessPid)
	start := time.Now()
	e.do("PATCH", "/api/instances/"+info.ID+"/lifecycle?target=stop", e.admin, "")
	stopped := e.waitState(info.ID, "STOPPED")
	if took := time.Since(start); took < time.Second {
		t.Fatalf("stopped after %v; the process ignores SIGTERM, so it should have taken the 1 s timeout", took)
	}
	if stopped.ExitCode == nil || *stopped.ExitCode != 128+int(syscall.SIGKILL) {
		t.Fatalf("exit code %v, want %d", stopped.ExitCode, 128+int(syscall.SIGKILL))
	}
	ll.until("kill notice", func(f api.LiveLogFrame) bool { return strings.Contains(f.Line, "did not stop within 1s") })
	if m := readAll(e.do("GET", "/api/metrics", "", "")); !strings.Contains(m, `universe_instance_exits_total{reason="killed"} 1`) {
		t.Errorf("a stop that had to kill is not counted as killed")
	}
	for _, pid := range []int{shell, child} {
		if alive(pid) {
			t.Errorf("pid %d outlived the stop", pid)
		}
	}
}

// Kill bypasses the lifecycle lock and kills at once, even during a stop
// that waits for its timeout.
func TestKillDuringStop(t *testing.T) {
	e := newEnv(t, nil)
	e.putConfig("slow", map[string]any{
		"command":            `trap "" TERM; while true; do sleep 0.1; done`,
		"stopTimeoutSeconds": 60,
		"availablePorts":     map[string]int{"min": 21120, "max": 21129},
	})
	info := e.create("slow")
	e.do("PATCH", "/api/instances/"+info.ID+"/lifecycle?target=stop", e.admin, "")
	resp := e.do("POST", "/api/commands/execute", e.admin, `{"command":"instance kill `+info.ID+`"}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("kill: %d %s", resp.StatusCode, readAll(resp))
	}
	e.waitState(info.ID, "STOPPED")
}

func TestCrashIsOffline(t *testing.T) {
	e := newEnv(t, nil)
	e.putConfig("crash", map[string]any{
		"command":        `echo bye >&2; exit 3`,
		"availablePorts": map[string]int{"min": 21130, "max": 21139},
	})
	info := e.create("crash")
	off := e.waitState(info.ID, "OFFLINE")
	if off.ExitCode == nil || *off.ExitCode != 3 || off.Reason != "exited with code 3" {
		t.Fatalf("offline %+v", off)
	}
	resp := e.do("GET", "/api/instances/"+info.ID+"/logs?format=entries", e.admin, "")
	logs := decode[api.LogEntries](t, resp)
	var stderr, system bool
	for _, l := range logs.Entries {
		stderr = stderr || (l.Stream == "stderr" && l.Line == "bye")
		system = system || (l.Stream == "system" && l.Line == "exited with code 3")
	}
	if !stderr || !system {
		t.Fatalf("log %+v", logs.Entries)
	}
	// It can be started again.
	resp = e.do("PATCH", "/api/instances/"+info.ID+"/lifecycle?target=start", e.admin, "")
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("start: %d", resp.StatusCode)
	}
}

// Fifty concurrent creates get fifty different ports; the next one finds
// none free: 503 and no record.
func TestPortAllocationUnderConcurrency(t *testing.T) {
	e := newEnv(t, func(c *master.Config) { c.ShutdownTimeout = 20 * time.Second })
	e.putConfig("many", map[string]any{
		"command":            "exec sleep 600",
		"stopTimeoutSeconds": 2,
		"availablePorts":     map[string]int{"min": 21200, "max": 21249},
	})
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		ports = map[int]string{}
		codes = map[int]int{}
	)
	client := &http.Client{}
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", e.url+"/api/instances", strings.NewReader(`{"configurationName":"many"}`))
			req.Header.Set("Authorization", "Bearer "+e.admin)
			resp, err := client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var info api.InstanceInfo
			_ = json.NewDecoder(resp.Body).Decode(&info)
			mu.Lock()
			defer mu.Unlock()
			codes[resp.StatusCode]++
			if resp.StatusCode == 201 {
				if other, dup := ports[info.AllocatedPort]; dup {
					t.Errorf("port %d given to %s and %s", info.AllocatedPort, other, info.ID)
				}
				ports[info.AllocatedPort] = info.ID
			}
		}()
	}
	wg.Wait()
	if codes[201] != 50 || len(ports) != 50 {
		t.Fatalf("codes %v, %d distinct ports", codes, len(ports))
	}
	resp := e.do("POST", "/api/instances", e.admin, `{"configurationName":"many"}`)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(errorBody(t, resp), "no free port") {
		t.Fatalf("51st create: %d", resp.StatusCode)
	}
	if n := len(decode[[]api.InstanceInfo](t, e.do("GET", "/api/instances", e.admin, ""))); n != 50 {
		t.Fatalf("%d records, want 50", n)
	}
}
