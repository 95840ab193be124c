package master_test

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/instance"
	"github.com/universe-orchestrator/universe/instance/runtime"
	"github.com/universe-orchestrator/universe/master"
)

func fastBackoff(c *master.Config) {
	c.RestartBackoff = instance.Backoff{Base: 50 * time.Millisecond, Max: 400 * time.Millisecond, Reset: time.Minute}
	c.Resync = 200 * time.Millisecond
}

// sampleMax samples f every millisecond from now on; the returned func
// stops the sampling and returns the largest value seen.
func sampleMax(f func() int) (stop func() int) {
	done := make(chan struct{})
	result := make(chan int, 1)
	go func() {
		best := f()
		for {
			select {
			case <-done:
				result <- best
				return
			default:
			}
			best = max(best, f())
			time.Sleep(time.Millisecond)
		}
	}()
	return func() int { close(done); return <-result }
}

// waitUntil polls cond until it holds; past d the test fails, saying what
// it waited for and what the optional state funcs tell.
func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool, state ...func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			msg := "timed out waiting for " + what
			for _, s := range state {
				msg += "; " + s()
			}
			t.Fatal(msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A process killed from outside is started again by on-failure, with a new
// pid and the restart counted.
func TestRestartPolicyRestartsAKilledProcess(t *testing.T) {
	e := newEnv(t, fastBackoff)
	e.putConfig("svc", map[string]any{"command": "sleep 60", "restartPolicy": "on-failure",
		"availablePorts": map[string]int{"min": 21600, "max": 21610}, "stopTimeoutSeconds": 1})
	info := e.create("svc")
	pid := *info.ProcessPid
	if err := syscall.Kill(-int(pid), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the restart", 10*time.Second, func() bool {
		i := e.info(info.ID)
		return i.State == "ONLINE" && i.ProcessPid != nil && *i.ProcessPid != pid
	})
	if got := e.info(info.ID); got.Restarts != 1 {
		t.Fatalf("restarts %d, want 1", got.Restarts)
	}
}

// Exits that keep coming stop the policy: OFFLINE with "crash loop".
func TestCrashLoopStopsRestarting(t *testing.T) {
	e := newEnv(t, fastBackoff)
	e.putConfig("crash", map[string]any{"command": "exit 3", "restartPolicy": "always", "crashLoopFailures": 3,
		"availablePorts": map[string]int{"min": 21611, "max": 21620}})
	info := e.create("crash")
	waitUntil(t, "the crash loop", 10*time.Second, func() bool {
		return strings.HasPrefix(e.info(info.ID).Reason, "crash loop")
	})
	got := e.info(info.ID)
	time.Sleep(500 * time.Millisecond) // longer than the backoff: no restart may come
	if again := e.info(info.ID); again.State != "OFFLINE" || again.Restarts != got.Restarts || got.Restarts != 2 || *got.ExitCode != 3 {
		t.Fatalf("after the crash loop %+v, then %+v", got, again)
	}
}

// The reconciler under concurrent creates and deletes never exceeds the
// maximum and comes back to the minimum.
func TestReconcilerMinimumAndMaximum(t *testing.T) {
	e := newEnv(t, fastBackoff)
	e.putConfig("pool", map[string]any{"command": "sleep 60", "minimumServiceCount": 3, "maximumServiceCount": 5,
		"availablePorts": map[string]int{"min": 21621, "max": 21680}, "stopTimeoutSeconds": 1})
	mgr := e.m.Instances()
	active := func() int { return len(mgr.Live("pool")) }
	waitUntil(t, "the minimum", 10*time.Second, func() bool { return active() == 3 })
	maxSeen := sampleMax(active)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				resp := e.do("POST", "/api/instances", e.admin, `{"configurationName":"pool"}`)
				if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusConflict {
					t.Errorf("create: %d %s", resp.StatusCode, readAll(resp))
				}
				return
			}
			if ids := mgr.Live("pool"); len(ids) > 0 {
				_ = mgr.Delete(ids[i%len(ids)], "test")
			}
		}()
	}
	wg.Wait()
	waitUntil(t, "the minimum again", 15*time.Second, func() bool { return active() >= 3 })
	if n := maxSeen(); n > 5 {
		t.Fatalf("%d active instances seen, maximum 5", n)
	}
}

// The instance's own key reads its instance and reports its state, and
// nothing else; it dies with the instance.
func TestInstanceKeyAccessMatrix(t *testing.T) {
	e := newEnv(t, nil)
	e.putConfig("keyed", map[string]any{"command": `printf %s "$UNIVERSE_API_KEY" > key.txt; exec sleep 60`,
		"availablePorts": map[string]int{"min": 21690, "max": 21699}, "stopTimeoutSeconds": 1})
	own, other := e.create("keyed"), e.create("keyed")
	token := e.instanceToken(own.ID)
	cases := []struct {
		method, path, body string
		want               int
	}{
		{"GET", "/api/instances/" + own.ID, "", 200},
		{"PUT", "/api/instances/" + own.ID + "/state", `{"state":"ONLINE","players":3}`, 200},
		{"GET", "/api/instances/" + other.ID, "", 401},
		{"PUT", "/api/instances/" + other.ID + "/state", `{"state":"ONLINE"}`, 401},
		{"GET", "/api/instances", "", 401},
		{"GET", "/api/node", "", 401},
		{"GET", "/api/auth", "", 401},
		{"GET", "/api/keys", "", 401},
		{"GET", "/api/configurations", "", 401},
		{"PATCH", "/api/instances/" + own.ID + "/lifecycle?target=stop", "", 401},
		{"POST", "/api/instances/" + own.ID + "/execute", `{"command":"x"}`, 401},
		{"GET", "/api/instances/" + own.ID + "/logs", "", 401},
		{"DELETE", "/api/instances/" + own.ID, "", 401},
		{"GET", "/api/ping", "", 200},
	}
	for _, tc := range cases {
		resp := e.do(tc.method, tc.path, token, tc.body)
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want)
		}
		resp.Body.Close()
	}
	// The token is nowhere in the API's answers or the log.
	for _, p := range []string{"/api/instances/" + own.ID, "/api/instances/" + own.ID + "/logs", "/api/keys"} {
		if body := readAll(e.do("GET", p, e.admin, "")); strings.Contains(body, token) {
			t.Fatalf("%s shows the token", p)
		}
	}
	if resp := e.do("DELETE", "/api/instances/"+own.ID, e.admin, ""); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	if resp := e.do("GET", "/api/instances/"+own.ID, token, ""); resp.StatusCode != 401 {
		t.Fatalf("the key of a deleted instance: %d, want 401", resp.StatusCode)
	}
}

// An instance that reported and then stays silent goes OFFLINE.
func TestHeartbeatTimeout(t *testing.T) {
	e := newEnv(t, nil)
	e.putConfig("hb", map[string]any{"command": "sleep 60", "heartbeatTimeoutSeconds": 1,
		"availablePorts": map[string]int{"min": 21700, "max": 21709}, "stopTimeoutSeconds": 1})
	info := e.create("hb")
	if resp := e.do("PUT", "/api/instances/"+info.ID+"/state", e.admin, `{"state":"ONLINE"}`); resp.StatusCode != 200 {
		t.Fatalf("state: %d", resp.StatusCode)
	}
	waitUntil(t, "the heartbeat timeout", 10*time.Second, func() bool {
		i := e.info(info.ID)
		return i.State == "OFFLINE" && i.Reason == "heartbeat timeout"
	})
}

// A restart the policy had scheduled is still carried out by the next
// master when the previous one went away before it was due.
func TestPendingRestartSurvivesMasterRestart(t *testing.T) {
	var dir string
	slow := func(c *master.Config) {
		c.RestartBackoff = instance.Backoff{Base: 1500 * time.Millisecond, Max: 1500 * time.Millisecond, Reset: time.Minute}
		c.KeepInstances = true
		if dir == "" {
			dir = c.DataDir
		}
		c.DataDir = dir
	}
	e := newEnv(t, slow)
	e.putConfig("late", map[string]any{"command": "exit 1", "restartPolicy": "on-failure",
		"availablePorts": map[string]int{"min": 21621, "max": 21630}})
	info := e.create("late")
	waitUntil(t, "the restart to be scheduled", 10*time.Second, func() bool { return e.info(info.ID).NextRestartAt != 0 })
	if err := e.m.Close(); err != nil {
		t.Fatal(err)
	}
	e2 := newEnv(t, slow)
	if got := e2.info(info.ID); got.NextRestartAt == 0 || got.Restarts != 0 {
		t.Fatalf("after the master restart: %+v", got)
	}
	waitUntil(t, "the restart to happen", 10*time.Second, func() bool { return e2.info(info.ID).Restarts >= 1 })
	resp := e2.do("GET", "/api/instances/"+info.ID+"/logs", e2.admin, "")
	if body := readAll(resp); !strings.Contains(body, "restart still due") {
		t.Fatalf("log: %s", body)
	}
}

// A supervisor killed while the master runs takes its process with it
// (process runtime); the master notices, records why, and the policy
// starts the instance again under a new supervisor.
func TestSupervisorKilledWhileMasterRuns(t *testing.T) {
	e := newEnv(t, fastBackoff)
	e.putConfig("orphan", map[string]any{"command": "echo up; sleep 60", "restartPolicy": "on-failure",
		"availablePorts": map[string]int{"min": 21631, "max": 21640}})
	info := e.create("orphan")
	sup := supervisorOf(t, info.ID)
	if err := syscall.Kill(sup, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the restart", 10*time.Second, func() bool {
		i := e.info(info.ID)
		return i.State == "ONLINE" && i.Restarts == 1 && i.ProcessPid != nil && *i.ProcessPid != *info.ProcessPid
	})
	waitUntil(t, "the old process to be gone", 5*time.Second, func() bool { return !alive(int(*info.ProcessPid)) })
	if again := supervisorOf(t, info.ID); again == sup {
		t.Fatalf("still the killed supervisor %d", sup)
	}
	body := readAll(e.do("GET", "/api/instances/"+info.ID+"/logs", e.admin, ""))
	if !strings.Contains(body, "supervisor lost: the process is gone") {
		t.Fatalf("the log does not say what happened: %s", body)
	}
}

// A supervisor that answers on its socket but not in this master's
// protocol (one started by another version of universe) is left alone
// with its process: the instance says why, and nothing is killed. (The
// process here is a tmux pane, which outlives its real supervisor; the
// socket is a stand-in that speaks no known protocol.)
func TestIncompatibleSupervisorIsLeftAlone(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("needs tmux")
	}
	sock, err := os.MkdirTemp("", "umux")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = exec.Command("tmux", "kill-server").Run()
		_ = exec.Command("tmux", "-L", runtime.TmuxSocket, "kill-server").Run()
		_ = os.RemoveAll(sock)
	})
	t.Setenv("TMUX_TMPDIR", sock)
	t.Setenv("TMUX", "")
	var dir string
	keep := func(c *master.Config) {
		c.KeepInstances = true
		if dir == "" {
			dir = c.DataDir
		}
		c.DataDir = dir
	}
	e := newEnv(t, keep)
	e.putConfig("old", map[string]any{"runtime": "tmux", "command": "sleep 60", "availablePorts": map[string]int{"min": 21641, "max": 21650}})
	info := e.create("old")
	pid := int(*info.ProcessPid)
	sup := supervisorOf(t, info.ID)
	if err := e.m.Close(); err != nil {
		t.Fatal(err)
	}
	_ = syscall.Kill(sup, syscall.SIGKILL) // the pane lives on in tmux
	waitUntil(t, "the supervisor to go", 5*time.Second, func() bool { return !alive(sup) })
	sockPath := filepath.Join(dir, "instances", info.ID, "supervisor.sock")
	_ = os.Remove(sockPath)
	ln, err := net.Listen("unix", sockPath)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("\x00\x00\x00\x02??")) // not a frame this master reads
			time.Sleep(100 * time.Millisecond)
			_ = c.Close()
		}
	}()
	e2 := newEnv(t, keep)
	got := e2.info(info.ID)
	if got.State != "OFFLINE" || !strings.Contains(got.Reason, "does not speak protocol") {
		t.Fatalf("after the restart: %+v", got)
	}
	time.Sleep(200 * time.Millisecond)
	if !alive(pid) {
		t.Fatal("the process of the foreign supervisor was killed")
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
}

// Restarting an instance does not make the reconciler replace it: an
// instance that is restarting is active, and the restart shows as a
// transition.
func TestRestartIsNoLoss(t *testing.T) {
	e := newEnv(t, fastBackoff)
	e.putConfig("four", map[string]any{"command": "sleep 60", "minimumServiceCount": 4,
		"availablePorts": map[string]int{"min": 21770, "max": 21789}, "stopTimeoutSeconds": 2})
	mgr := e.m.Instances()
	waitUntil(t, "the minimum", 10*time.Second, func() bool { return len(mgr.Live("four")) == 4 })
	id := mgr.Live("four")[0]
	resp := e.do("PATCH", "/api/instances/"+id+"/lifecycle?target=restart", e.admin, "")
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("restart: %d", resp.StatusCode)
	}
	if lr := decode[api.LifecycleResponse](t, resp); lr.Instance.Transition != "restarting" {
		t.Errorf("the restart's answer shows transition %q", lr.Instance.Transition)
	}
	seen := map[string]bool{}
	waitUntil(t, "the restart", 15*time.Second, func() bool {
		for _, in := range mgr.List(instance.Filter{Configuration: "four"}) {
			seen[in.ID] = true
		}
		i := e.info(id)
		return i.Transition == "" && i.State == "ONLINE" && i.Restarts == 1
	})
	time.Sleep(300 * time.Millisecond) // a reconciler pass woken by the restart would have created by now
	for _, in := range mgr.List(instance.Filter{Configuration: "four"}) {
		seen[in.ID] = true
	}
	if len(seen) != 4 {
		t.Fatalf("%d instances of a configuration with minimum 4 existed across a restart", len(seen))
	}
}

// Whatever an instance spawned dies with it, also what left its process
// group and session (setsid), on a stop and on its own exit.
func TestSetsidDescendantsDieWithTheInstance(t *testing.T) {
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Skip("setsid is not installed")
	}
	e := newEnv(t, nil)
	// A grandchild in its own session whose parent exits at once (it is
	// re-parented), and a child in its own session.
	spawn := `sh -c 'setsid sleep 300 & echo $! > grandchild.pid' ; setsid sleep 300 & echo $! > child.pid; `
	e.putConfig("stays", map[string]any{"command": spawn + "exec sleep 300",
		"availablePorts": map[string]int{"min": 21790, "max": 21799}, "stopTimeoutSeconds": 1})
	e.putConfig("exits", map[string]any{"command": spawn + "sleep 0.3; exit 0",
		"availablePorts": map[string]int{"min": 21800, "max": 21809}, "stopTimeoutSeconds": 1})
	pidsOf := func(id string) []int {
		var pids []int
		waitUntil(t, "the pid files", 10*time.Second, func() bool {
			pids = pids[:0]
			for _, f := range []string{"child.pid", "grandchild.pid"} {
				b, err := os.ReadFile(filepath.Join(e.m.Config().DataDir, "running", id, f))
				pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
				if err != nil || pid == 0 {
					return false
				}
				pids = append(pids, pid)
			}
			return true
		})
		return pids
	}
	stays := e.create("stays").ID
	stayPids := pidsOf(stays)
	exits := e.create("exits").ID
	exitPids := pidsOf(exits)
	for _, pid := range append(append([]int{}, stayPids...), exitPids...) {
		if !alive(pid) {
			t.Fatalf("pid %d is not running to begin with", pid)
		}
	}
	if resp := e.do("PATCH", "/api/instances/"+stays+"/lifecycle?target=stop", e.admin, ""); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("stop: %d", resp.StatusCode)
	}
	e.waitState(stays, "STOPPED")
	e.waitState(exits, "OFFLINE")
	for _, pid := range append(stayPids, exitPids...) {
		waitUntil(t, "pid "+strconv.Itoa(pid)+" to be gone", 5*time.Second, func() bool { return !alive(pid) })
	}
}

// Instances that a graceful stop of the master stopped start again with the
// next master (unless NoResume); those an operator stopped stay stopped.
func TestGracefulStopResumes(t *testing.T) {
	for _, noResume := range []bool{false, true} {
		var dir string
		same := func(c *master.Config) {
			c.NoResume = noResume
			if dir == "" {
				dir = c.DataDir
			}
			c.DataDir = dir
		}
		e := newEnv(t, same)
		e.putConfig("back", map[string]any{"command": "exec sleep 60", "stopTimeoutSeconds": 1,
			"availablePorts": map[string]int{"min": 21810, "max": 21819}})
		running, stopped := e.create("back").ID, e.create("back").ID
		if resp := e.do("PATCH", "/api/instances/"+stopped+"/lifecycle?target=stop", e.admin, ""); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("stop: %d", resp.StatusCode)
		}
		e.waitState(stopped, "STOPPED")
		if err := e.m.Close(); err != nil {
			t.Fatal(err)
		}
		e2 := newEnv(t, same)
		if noResume {
			time.Sleep(200 * time.Millisecond)
			if got := e2.info(running); got.State != "STOPPED" {
				t.Fatalf("with NoResume: %s", got.State)
			}
		} else {
			e2.waitState(running, "ONLINE")
		}
		if got := e2.info(stopped); got.State != "STOPPED" {
			t.Fatalf("an instance an operator stopped came back: %s", got.State)
		}
		_ = e2.m.Close()
	}
}

// Templates and configuration files live in the data directory by default;
// a layout of an earlier version (./templates, ./configuration) is moved
// there on start.
func TestLegacyFoldersMoveIntoData(t *testing.T) {
	work := t.TempDir()
	_ = os.MkdirAll(filepath.Join(work, "templates", "lobby", "base"), 0o755)
	_ = os.WriteFile(filepath.Join(work, "templates", "lobby", "base", "a.txt"), []byte("x"), 0o644)
	_ = os.MkdirAll(filepath.Join(work, "configuration"), 0o755)
	_ = os.WriteFile(filepath.Join(work, "configuration", "lobby.json"), []byte(`{"command":"true"}`), 0o644)
	old, _ := os.Getwd()
	if err := os.Chdir(work); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(old)
	data := filepath.Join(work, "data")
	e := newEnv(t, func(c *master.Config) { c.DataDir, c.TemplatesDir, c.ConfigDir = data, "", "" })
	if cfg := e.m.Config(); cfg.TemplatesDir != filepath.Join(data, "templates") || cfg.ConfigDir != filepath.Join(data, "configuration") {
		t.Fatalf("folders %s %s", cfg.TemplatesDir, cfg.ConfigDir)
	}
	if _, err := os.Stat(filepath.Join(data, "templates", "lobby", "base", "a.txt")); err != nil {
		t.Fatalf("template not moved: %v", err)
	}
	if _, err := os.Stat(filepath.Join(work, "templates")); !os.IsNotExist(err) {
		t.Fatalf("old folder still there: %v", err)
	}
	if r := e.do("GET", "/api/templates", e.admin, ""); !strings.Contains(readAll(r), `"lobby"`) {
		t.Fatal("the moved template is not served")
	}
	if _, err := os.Stat(filepath.Join(data, "configuration", "lobby.json")); err != nil {
		t.Fatalf("configuration not moved: %v", err)
	}
}

// Descendants that are re-parented to the supervisor and exit while the
// instance runs are reaped as they go: no zombies pile up.
func TestOrphansAreReaped(t *testing.T) {
	e := newEnv(t, nil)
	e.putConfig("orphans", map[string]any{"command": `i=0; while [ $i -lt 20 ]; do sh -c 'sleep 0.05 &'; i=$((i+1)); done; sleep 0.5; echo spawned; exec sleep 60`,
		"availablePorts": map[string]int{"min": 21860, "max": 21869}, "stopTimeoutSeconds": 1})
	info := e.create("orphans")
	waitUntil(t, "the orphans", 10*time.Second, func() bool {
		return strings.Contains(readAll(e.do("GET", "/api/instances/"+info.ID+"/logs", e.admin, "")), "spawned")
	})
	shell := int(*e.info(info.ID).ProcessPid)
	b, err := os.ReadFile("/proc/" + strconv.Itoa(shell) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b)[strings.LastIndexByte(string(b), ')')+2:])
	supervisor := f[1]
	zombies := func() int {
		n := 0
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			st, err := os.ReadFile("/proc/" + e.Name() + "/stat")
			if err != nil {
				continue
			}
			s := string(st)
			rest := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
			if len(rest) > 1 && rest[1] == supervisor && rest[0] == "Z" {
				n++
			}
		}
		return n
	}
	waitUntil(t, "no zombies under the supervisor", 10*time.Second, func() bool { return zombies() == 0 },
		func() string { return strconv.Itoa(zombies()) + " zombies" })
}

// A master's stop records every instance's exit while the supervisors
// wait (Shutdown keeps them, so that their own exits do not take CPU from
// the stops still under way), then lets them all go at once.
func TestShutdownKeepsSupervisorsUntilReleased(t *testing.T) {
	e := newEnv(t, nil)
	e.putConfig("held", map[string]any{"command": "exec sleep 60", "stopTimeoutSeconds": 5,
		"availablePorts": map[string]int{"min": 21820, "max": 21829}})
	var ids []string
	var pids, sups []int
	for range 3 {
		info := e.create("held")
		ids = append(ids, info.ID)
		pids = append(pids, int(*info.ProcessPid))
		sups = append(sups, supervisorOf(t, info.ID))
	}
	mgr := e.m.Instances()
	if err := mgr.Shutdown(); err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		in, err := mgr.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		if got := in.Info(); got.State != "STOPPED" || got.ExitCode == nil || got.ProcessPid != nil {
			t.Fatalf("%s after Shutdown: %+v", id, got)
		}
		if alive(pids[i]) {
			t.Fatalf("the process of %s runs after Shutdown", id)
		}
	}
	// Without the hold each supervisor would be gone within milliseconds
	// of its exit report; held, it waits (up to its 10 s limit).
	time.Sleep(300 * time.Millisecond)
	for i, sup := range sups {
		if !alive(sup) {
			t.Fatalf("the supervisor of %s went before it was let go", ids[i])
		}
	}
	mgr.ReleaseSupervisors()
	waitUntil(t, "every supervisor to go", 5*time.Second, func() bool {
		for _, sup := range sups {
			if alive(sup) {
				return false
			}
		}
		return true
	})
	if err := e.m.Close(); err != nil { // Shutdown again: nothing left to do
		t.Fatal(err)
	}
}

// Supervisors and instances get a built environment, never the master's:
// its token, its cloud keys and whatever else it was started with stay
// with it (read back from /proc/<pid>/environ), while PATH and what the
// configuration says are there.
func TestChildrenGetABuiltEnvironment(t *testing.T) {
	t.Setenv("UNIVERSE_TOKEN", "unv_not-for-children")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "not-for-children")
	t.Setenv("LC_ALL", "C.UTF-8")
	e := newEnv(t, nil)
	e.putConfig("envy", map[string]any{"command": "exec sleep 60", "environmentVariables": map[string]string{"GAME_MODE": "%PORT%", "PATH": "/opt/game/bin:/usr/bin:/bin"},
		"availablePorts": map[string]int{"min": 21625, "max": 21629}, "stopTimeoutSeconds": 1})
	info := e.create("envy")
	pid := int(*info.ProcessPid)
	read := func(pid int) map[string]string {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
		if err != nil {
			t.Fatal(err)
		}
		env := map[string]string{}
		for _, kv := range strings.Split(string(b), "\x00") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				env[k] = v
			}
		}
		return env
	}
	stat, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	sup, _ := strconv.Atoi(fields[1])
	for who, p := range map[string]int{"instance": pid, "supervisor": sup} {
		env := read(p)
		for _, k := range []string{"UNIVERSE_TOKEN", "AWS_SECRET_ACCESS_KEY"} {
			if _, ok := env[k]; ok {
				t.Errorf("the %s has the master's %s", who, k)
			}
		}
		if env["LC_ALL"] != "C.UTF-8" || env["PATH"] == "" {
			t.Errorf("the %s lacks the locale or PATH: %v", who, env)
		}
	}
	env := read(pid)
	if env["GAME_MODE"] != strconv.Itoa(info.AllocatedPort) || env["PATH"] != "/opt/game/bin:/usr/bin:/bin" || env["UNIVERSE_INSTANCE_ID"] != info.ID {
		t.Errorf("the instance's own variables: %v", env)
	}
}
