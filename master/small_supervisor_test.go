package master_test

import (
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/universe-orchestrator/universe/instance/runtime"
	"github.com/universe-orchestrator/universe/instance/supervisor"
	"github.com/universe-orchestrator/universe/master"
)

// Instances run under cmd/universe-supervisor (the small binary "task
// build" and "go install ./cmd/..." put next to the master) as under the
// master's own binary: output, stdin, the exit; for tmux too, whose
// session runs the small binary's exec helper.
func TestSmallSupervisorBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	bin := filepath.Join(t.TempDir(), "universe-supervisor")
	_, file, _, _ := goruntime.Caller(0)
	build := exec.Command("go", "build", "-o", bin, "./cmd/universe-supervisor")
	build.Dir = filepath.Join(filepath.Dir(file), "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	e := newEnv(t, func(c *master.Config) { c.Supervisor = []string{bin} })
	runtimes := []string{"process"}
	if _, err := exec.LookPath("tmux"); err == nil {
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
		runtimes = append(runtimes, "tmux")
	}
	for _, rt := range runtimes {
		t.Run(rt, func(t *testing.T) {
			e.putConfig("small-"+rt, map[string]any{"runtime": rt, "command": `echo "hello $UNIVERSE_INSTANCE_ID"; read l; echo "got $l"; exit 4`,
				"availablePorts": map[string]int{"min": 21600, "max": 21610}})
			info := e.create("small-" + rt)
			f := e.liveLog(info.ID, "?format=json&lines=100")
			f.until("the greeting", line("hello "+info.ID))
			sup := supervisorOf(t, info.ID)
			dir, _ := os.Readlink("/proc/" + strconv.Itoa(sup) + "/cwd") // its state folder
			if exe, _ := os.Readlink("/proc/" + strconv.Itoa(sup) + "/exe"); exe != bin {
				t.Fatalf("the supervisor %d runs %q, want %q", sup, exe, bin)
			}
			if resp := e.do("POST", "/api/instances/"+info.ID+"/execute", e.admin, `{"command":"ping"}`); resp.StatusCode != 204 {
				// Seen once in CI (409, not running), never since: say
				// what the master and the supervisor saw.
				st, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(sup), "stat"))
				exit, _ := os.ReadFile(filepath.Join(dir, supervisor.ExitName))
				diag, _ := os.ReadFile(filepath.Join(dir, supervisor.StderrName))
				t.Fatalf("execute: %d %s\nthe instance: %s\nits log: %s\nits supervisor: %s\nexit record: %s\nsupervisor's log: %s",
					resp.StatusCode, readAll(resp), readAll(e.do("GET", "/api/instances/"+info.ID, e.admin, "")),
					readAll(e.do("GET", "/api/instances/"+info.ID+"/logs?lines=20", e.admin, "")), st, exit, diag)
			}
			f.until("the echo", line("got ping"))
			if got := e.waitState(info.ID, "OFFLINE"); got.ExitCode == nil || *got.ExitCode != 4 {
				t.Fatalf("after the exit: %+v", got)
			}
		})
	}
}

// supervisorOf finds the supervisor of instance id: the process whose
// command line is "... supervise <data>/instances/<id>".
func supervisorOf(t *testing.T, id string) int {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		p, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + d.Name() + "/cmdline")
		if err == nil && strings.Contains(string(b), "\x00supervise\x00") && strings.HasSuffix(string(b), "/instances/"+id+"\x00") {
			return p
		}
	}
	t.Fatalf("no supervisor found for instance %s", id)
	return 0
}
