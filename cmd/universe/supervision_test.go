package main

import (
	"context"
	"encoding/json"
	"fmt"
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

	"github.com/coder/websocket"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/instance/runtime"
)

// masterHelperEnv makes the test binary run a master (TestMain): the
// value is the JSON array of its arguments.
const masterHelperEnv = "UNIVERSE_TEST_MASTER_ARGS"

func masterHelper(argsJSON string) int {
	var args []string
	if err := json.Unmarshal([]byte(argsJSON), &args); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signalContext()
	defer stop()
	return run(ctx, args, os.Getenv, strings.NewReader(""), os.Stdout, os.Stderr)
}

// childMaster is a master in a process of its own, so that a test can
// SIGKILL it.
type childMaster struct {
	t    *testing.T
	cmd  *exec.Cmd
	base string
	done chan struct{} // closed when the process has exited
}

func startChildMaster(t *testing.T, dir string, port int, extra ...string) *childMaster {
	t.Helper()
	args := append([]string{"master", "--addr", "127.0.0.1:" + strconv.Itoa(port), "--data", dir, "--no-console",
		"--templates", filepath.Join(dir, "templates"), "--configurations", filepath.Join(dir, "configuration")}, extra...)
	b, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), masterHelperEnv+"="+string(b))
	logf, err := os.OpenFile(filepath.Join(dir, "master.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cm := &childMaster{t: t, cmd: cmd, base: "http://127.0.0.1:" + strconv.Itoa(port), done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(cm.done) }()
	t.Cleanup(func() {
		// A graceful stop stops the instances; what a SIGKILLed master
		// left behind (supervisors outlive it, by design) goes too.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-cm.done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
		}
		killSupervisorsUnder(dir)
		if t.Failed() { // what the master and the supervisors said
			if b, err := os.ReadFile(filepath.Join(dir, "master.log")); err == nil {
				t.Logf("master.log:\n%s", tail(string(b), 60))
			}
			logs, _ := filepath.Glob(filepath.Join(dir, "instances", "*", "instance.log"))
			for _, f := range logs {
				b, _ := os.ReadFile(f)
				t.Logf("%s:\n%s", f, tail(string(b), 30))
			}
		}
	})
	waitFor(t, "the child master to answer", 20*time.Second, func() bool {
		resp, err := http.Get(cm.base + "/api/ping")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	return cm
}

func (cm *childMaster) signal(sig syscall.Signal) {
	_ = cm.cmd.Process.Signal(sig)
	select {
	case <-cm.done:
	case <-time.After(60 * time.Second):
		cm.t.Fatal("the child master did not end")
	}
}

// freePort returns a port free on 127.0.0.1 that no earlier call of this
// test process returned: the kernel may hand a port just closed out again,
// and two "free" ports of one test (a master's and its cluster port) were
// once the same.
func freePort(t *testing.T) int {
	handedOutMu.Lock()
	defer handedOutMu.Unlock()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
		if !handedOut[port] {
			handedOut[port] = true
			return port
		}
	}
	t.Fatal("no fresh free port")
	return 0
}

var (
	handedOutMu sync.Mutex
	handedOut   = map[int]bool{}
)

func jsonReq[T any](t *testing.T, method, url, token, body string, want int) T {
	t.Helper()
	resp, b := request(t, method, url, token, body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s (want %d)", method, url, resp.StatusCode, b, want)
	}
	var v T
	if len(b) > 0 {
		_ = json.Unmarshal(b, &v)
	}
	return v
}

// follow reads json live-log frames of an instance into a channel.
func follow(t *testing.T, ctx context.Context, base, token, id, query string) <-chan api.LiveLogFrame {
	t.Helper()
	url := strings.Replace(base, "http", "ws", 1) + "/api/instances/" + id + "/live-log?format=json&" + query
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(1 << 20)
	out := make(chan api.LiveLogFrame, 100000)
	go func() {
		defer close(out)
		defer c.CloseNow()
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				return
			}
			var f api.LiveLogFrame
			if json.Unmarshal(b, &f) == nil {
				out <- f
			}
		}
	}()
	return out
}

// logFollower collects the json live-log lines of one instance.
type logFollower struct {
	t       *testing.T
	id      string
	frames  <-chan api.LiveLogFrame
	seen    []api.LogLine
	lastSeq uint64
}

// collect reads frames until until() holds.
func (f *logFollower) collect(until func() bool) {
	f.t.Helper()
	deadline := time.After(20 * time.Second)
	for !until() {
		select {
		case fr, ok := <-f.frames:
			if !ok {
				return
			}
			if (fr.Type == "" || fr.Type == "line") && fr.Seq > 0 {
				f.seen = append(f.seen, api.LogLine{Seq: fr.Seq, Stream: fr.Stream, Line: fr.Line})
				f.lastSeq = fr.Seq
			}
		case <-deadline:
			f.t.Fatalf("live-log of %s: what was awaited did not come (last seq %d)", f.id, f.lastSeq)
		}
	}
}

// checkContiguous fails unless every sequence number and every tick came
// once, in order.
func (f *logFollower) checkContiguous() {
	f.t.Helper()
	tick := 0
	for i, ln := range f.seen {
		if i > 0 && ln.Seq != f.seen[i-1].Seq+1 {
			f.t.Fatalf("%s: sequence jumps from %d to %d", f.id, f.seen[i-1].Seq, ln.Seq)
		}
		if n, ok := strings.CutPrefix(ln.Line, "tick "); ok && ln.Stream == "stdout" {
			k, _ := strconv.Atoi(n)
			if tick != 0 && k != tick+1 {
				f.t.Fatalf("%s: tick %d follows tick %d: a line was lost or repeated", f.id, k, tick)
			}
			tick = k
		}
	}
	f.t.Logf("%s: %d lines seen, seq %d..%d, ticks up to %d, contiguous", f.id, len(f.seen), f.seen[0].Seq, f.lastSeq, tick)
}

// TestMasterSIGKILLKeepsInstances is the fault-injection test of issue 4:
// instances write while live-log clients follow; the master is killed
// with SIGKILL and started again. Every instance must still run with the
// same pid, the log must hold every line exactly once with contiguous
// sequence numbers (those written while no master ran included), the
// live-log clients resume where they were, and stdin works again. The
// tmux and screen runtimes take part where they are installed.
func TestMasterSIGKILLKeepsInstances(t *testing.T) {
	dir := t.TempDir()
	mux, err := os.MkdirTemp("", "umux") // tmux and screen servers of this test only; a short path
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(mux, 0o700)
	t.Cleanup(func() {
		_ = exec.Command("tmux", "kill-server").Run()
		_ = exec.Command("tmux", "-L", runtime.TmuxSocket, "kill-server").Run()
		_ = os.RemoveAll(mux)
	})
	t.Setenv("TMUX_TMPDIR", mux)
	t.Setenv("TMUX", "")
	t.Setenv("SCREENDIR", mux)
	code, out, errOut := cli(t, "key", "create", "admin", "ALL", "--data", dir)
	if code != 0 {
		t.Fatalf("key create: %s", errOut)
	}
	admin := tokenRE.FindString(out)
	port := freePort(t)
	m1 := startChildMaster(t, dir, port)
	base := m1.base

	// Ticks on stdout and echoes of stdin; "tick N" is numbered, so a lost
	// or repeated line shows. (An asynchronous list reads /dev/null unless
	// given the saved stdin.)
	cmd := `exec 3<&0; { while read l <&3; do echo "got $l"; done; } & i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 0.005; done`
	runtimes := []string{"process"}
	for _, rt := range []string{"tmux", "screen"} {
		if _, err := exec.LookPath(rt); err == nil {
			runtimes = append(runtimes, rt)
		} else {
			t.Logf("%s is not installed: its instance is left out", rt)
		}
	}
	var ids []string
	pids := map[string]int64{}
	create := func(cfgName string) string {
		info := jsonReq[api.InstanceInfo](t, "POST", base+"/api/instances", admin, `{"configurationName":"`+cfgName+`"}`, 201)
		if info.State != "ONLINE" || info.ProcessPid == nil {
			t.Fatalf("create: %+v", info)
		}
		ids = append(ids, info.ID)
		pids[info.ID] = *info.ProcessPid
		return info.ID
	}
	t.Cleanup(func() {
		for _, pid := range pids {
			_ = syscall.Kill(-int(pid), syscall.SIGKILL)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var followers []*logFollower
	for i, rt := range runtimes {
		cfg, _ := json.Marshal(api.Configuration{Command: cmd, Runtime: rt, AvailablePorts: api.Ports{Min: 21400 + 10*i, Max: 21409 + 10*i}, StopTimeoutSeconds: 2})
		jsonReq[any](t, "PUT", base+"/api/configurations/ticker-"+rt, admin, string(cfg), 204)
		id := create("ticker-" + rt)
		followers = append(followers, &logFollower{t: t, id: id, frames: follow(t, ctx, base, admin, id, "lines=10000")})
	}
	create("ticker-process")
	create("ticker-process")
	for _, f := range followers {
		f.collect(func() bool { return f.lastSeq >= 50 })
	}

	m1.signal(syscall.SIGKILL)
	time.Sleep(300 * time.Millisecond) // the instances write on, unsupervised by any master
	restart := time.Now()
	m2 := startChildMaster(t, dir, port)
	took := time.Since(restart)

	for _, id := range ids {
		info := jsonReq[api.InstanceInfo](t, "GET", base+"/api/instances/"+id, admin, "", 200)
		if info.State != "ONLINE" || info.ProcessPid == nil || *info.ProcessPid != pids[id] {
			t.Fatalf("after the restart %s: %+v (pid was %d)", id, info, pids[id])
		}
		if err := syscall.Kill(int(pids[id]), 0); err != nil {
			t.Fatalf("process %d of %s: %v", pids[id], id, err)
		}
	}
	t.Logf("master restart to all instances re-adopted and answering: %s", took)

	// The live-log clients resume after the last line they had, and stdin
	// reaches each instance.
	for _, f := range followers {
		f.frames = follow(t, ctx, base, admin, f.id, "since="+strconv.FormatUint(f.lastSeq, 10))
		jsonReq[any](t, "POST", base+"/api/instances/"+f.id+"/execute", admin, `{"command":"hello again"}`, 204)
		gotEcho := false
		f.collect(func() bool {
			if n := len(f.seen); n > 0 && f.seen[n-1].Line == "got hello again" {
				gotEcho = true
			}
			return gotEcho && f.lastSeq > 200
		})
		f.checkContiguous()
	}

	// A graceful stop of the master stops the instances (the default).
	m2.signal(syscall.SIGTERM)
	for id, pid := range pids {
		waitFor(t, "instance "+id+" to stop", 10*time.Second, func() bool { return syscall.Kill(int(pid), 0) != nil })
	}
}

// killSupervisorsUnder kills every supervisor whose state directory is
// under dir, with its process group.
func killSupervisorsUnder(dir string) {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) >= 3 && args[1] == "supervise" && strings.HasPrefix(args[2], dir) {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
