package runtime_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/instance/runtime"
)

func TestMain(m *testing.M) {
	runtime.RunIfHelper() // the tmux and screen sessions run this binary
	os.Exit(m.Run())
}

// muxRuntimes returns the multiplexer runtimes installed here, each with
// its own server directory so that tests do not touch the user's sessions.
func muxRuntimes(t *testing.T) []runtime.Runtime {
	t.Helper()
	var rs []runtime.Runtime
	for _, r := range []runtime.Runtime{runtime.NewTmux(), runtime.NewScreen()} {
		if err := r.Available(); err != nil {
			t.Logf("skipping %s: %v", r.Name(), err)
			continue
		}
		rs = append(rs, r)
	}
	if len(rs) == 0 {
		t.Skip("neither tmux nor screen is installed")
	}
	// Short paths: unix socket paths are limited.
	sock, err := os.MkdirTemp("", "umux")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(sock, 0o700)
	t.Cleanup(func() {
		_ = exec.Command("tmux", "kill-server").Run()
		_ = exec.Command("tmux", "-L", runtime.TmuxSocket, "kill-server").Run()
		_ = os.RemoveAll(sock)
	})
	t.Setenv("TMUX_TMPDIR", sock)
	t.Setenv("TMUX", "")
	t.Setenv("SCREENDIR", sock)
	return rs
}

func startMux(t *testing.T, r runtime.Runtime, name, cmd string) (runtime.Process, *collected) {
	t.Helper()
	c := &collected{}
	p, err := r.Start(runtime.Spec{Dir: t.TempDir(), StateDir: t.TempDir(), Name: name, Command: cmd,
		Env: []string{"GREETING=hi", "PATH=" + os.Getenv("PATH")}, Output: c.out})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Signal(syscall.SIGKILL); <-p.Done() })
	return p, c
}

func (c *collected) waitFor(t *testing.T, stream string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		got := append([]string(nil), c.lines[stream]...)
		c.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d lines, want %d: %q", len(got), n, got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Every line the command writes arrives, from the first, with the exit
// code; the environment is the instance's own, not the tmux server's.
func TestMuxOutputEnvExit(t *testing.T) {
	for _, r := range muxRuntimes(t) {
		t.Run(r.Name(), func(t *testing.T) {
			if r.Name() == "tmux" {
				// A server already runs, with other values in its environment,
				// and the supervisor runs inside it (TMUX set): instances go
				// to Universe's own server all the same.
				srv := exec.Command("tmux", "new-session", "-d", "-s", "other")
				srv.Env = append(os.Environ(), "GREETING=server", "LEAK=yes")
				if out, err := srv.CombinedOutput(); err != nil {
					t.Fatalf("tmux: %v %s", err, out)
				}
				if out, err := exec.Command("tmux", "set-environment", "-g", "LEAK", "yes").CombinedOutput(); err != nil {
					t.Fatalf("tmux: %v %s", err, out)
				}
			}
			if r.Name() == "tmux" {
				out, _ := exec.Command("tmux", "display-message", "-p", "#{socket_path},#{session_id}").CombinedOutput()
				t.Setenv("TMUX", strings.TrimSpace(string(out))+",0")
			}
			p, c := startMux(t, r, "out-"+r.Name(), `echo "$GREETING"; echo "leak=${LEAK:-no}"; sleep 0.2; i=0; while [ $i -lt 200 ]; do echo "n $i"; i=$((i+1)); done; exit 7`)
			if r.Name() == "tmux" {
				if exec.Command("tmux", "has-session", "-t", "=out-tmux").Run() == nil {
					t.Error("the instance's session is on the inherited tmux server")
				}
				if out, err := exec.Command("tmux", "-L", runtime.TmuxSocket, "has-session", "-t", "=out-tmux").CombinedOutput(); err != nil {
					t.Errorf("the instance's session is not on Universe's tmux server: %s", out)
				}
			}
			wait(t, p)
			if p.ExitCode() != 7 {
				t.Fatalf("exit code %d", p.ExitCode())
			}
			out := c.waitFor(t, "stdout", 202)
			if out[0] != "hi" || out[1] != "leak=no" {
				t.Fatalf("first lines %q", out[:2])
			}
			for i, l := range out[2:] {
				if l != "n "+itoa(i) {
					t.Fatalf("line %d: %q", i+2, l)
				}
			}
			if len(out) != 202 {
				t.Fatalf("%d lines: %q", len(out), out[202:])
			}
		})
	}
}

// Input arrives line by line and is not echoed; SIGTERM stops the command
// gracefully and its status is reported; the session is there for
// operators while it runs and gone after.
func TestMuxStdinSignal(t *testing.T) {
	for _, r := range muxRuntimes(t) {
		t.Run(r.Name(), func(t *testing.T) {
			name := "in-" + r.Name()
			p, c := startMux(t, r, name, `trap 'echo bye; exit 3' TERM; echo ready; while read l; do echo "got $l"; done`)
			c.waitFor(t, "stdout", 1)
			if p.Pid() <= 0 || syscall.Kill(p.Pid(), 0) != nil {
				t.Fatalf("pid %d is not running", p.Pid())
			}
			if r.Name() == "tmux" {
				if out, err := exec.Command("tmux", "-L", runtime.TmuxSocket, "has-session", "-t", "="+name).CombinedOutput(); err != nil {
					t.Fatalf("no tmux session %s: %s", name, out)
				}
			} else if out, _ := exec.Command("screen", "-ls").CombinedOutput(); !strings.Contains(string(out), name) {
				t.Fatalf("no screen session %s: %s", name, out)
			}
			lines := []string{"one", "two words", "-dash; $HOME 'q'"}
			for _, l := range lines {
				if err := p.WriteLine(l); err != nil {
					t.Fatal(err)
				}
			}
			out := c.waitFor(t, "stdout", 4)
			for i, l := range lines {
				if out[i+1] != "got "+l {
					t.Fatalf("line %d: %q, want %q (all: %q)", i+1, out[i+1], "got "+l, out)
				}
			}
			if err := p.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			wait(t, p)
			if p.ExitCode() != 3 {
				t.Fatalf("exit code %d", p.ExitCode())
			}
			if out := c.waitFor(t, "stdout", 5); out[4] != "bye" || len(out) != 5 {
				t.Fatalf("output %q", out)
			}
			if err := p.WriteLine("late"); universe.ErrorCode(err) != universe.ECONFLICT {
				t.Fatalf("write after exit: %v", err)
			}
			if r.Name() == "tmux" {
				if exec.Command("tmux", "-L", runtime.TmuxSocket, "has-session", "-t", "="+name).Run() == nil {
					t.Fatal("tmux session still there after the exit")
				}
			}
		})
	}
}

// A command that cannot start fails Start with the reason, and a missing
// program is named.
func TestMuxFailures(t *testing.T) {
	for _, r := range muxRuntimes(t) {
		t.Run(r.Name(), func(t *testing.T) {
			_, err := r.Start(runtime.Spec{Dir: filepath.Join(t.TempDir(), "missing"), StateDir: t.TempDir(), Name: "bad", Command: "true", Output: func(string, []string) {}})
			if err == nil || !strings.Contains(universe.ErrorMessage(err), "working directory") {
				t.Fatalf("start in a missing directory: %v", err)
			}
		})
	}
	t.Run("missing program", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		err := runtime.NewTmux().Available()
		if universe.ErrorCode(err) != universe.EINVALID || !strings.Contains(universe.ErrorMessage(err), "program tmux") {
			t.Fatalf("available without tmux: %v", err)
		}
	})
}

// A command killed before its shell can record its status exits with
// 128+9, as a killed process does, not with "unknown".
func TestMuxKilledExitCode(t *testing.T) {
	for _, r := range muxRuntimes(t) {
		t.Run(r.Name(), func(t *testing.T) {
			p, c := startMux(t, r, "kill-"+r.Name(), `trap '' TERM; echo ready; while true; do sleep 0.1; done`)
			c.waitFor(t, "stdout", 1)
			if err := p.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			wait(t, p)
			if p.ExitCode() != 128+int(syscall.SIGKILL) {
				t.Fatalf("exit code %d, want %d", p.ExitCode(), 128+int(syscall.SIGKILL))
			}
		})
	}
}
