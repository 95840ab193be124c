package runtime_test

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/instance/runtime"
)

type collected struct {
	mu    sync.Mutex
	lines map[string][]string
}

func (c *collected) out(stream string, lines []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lines == nil {
		c.lines = map[string][]string{}
	}
	c.lines[stream] = append(c.lines[stream], lines...)
}

func start(t *testing.T, cmd string) (runtime.Process, *collected) {
	t.Helper()
	c := &collected{}
	p, err := runtime.ProcessRuntime{}.Start(runtime.Spec{Dir: t.TempDir(), Command: cmd, Env: []string{"GREETING=hi"}, Output: c.out})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Signal(syscall.SIGKILL); <-p.Done() })
	return p, c
}

func wait(t *testing.T, p runtime.Process) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("process did not end")
	}
}

func TestOutputLines(t *testing.T) {
	long := 3*runtime.MaxLine + 10
	p, c := start(t, `echo "$GREETING"; printf 'no newline' >&2; printf 'crlf\r\n'; head -c `+itoa(long)+` /dev/zero | tr '\0' 'x'; echo; exit 7`)
	wait(t, p)
	if p.ExitCode() != 7 {
		t.Fatalf("exit code %d", p.ExitCode())
	}
	out := c.lines["stdout"]
	if len(out) != 6 || out[0] != "hi" || out[1] != "crlf" {
		t.Fatalf("stdout %d lines: %.40q", len(out), out)
	}
	total := 0
	for i, l := range out[2:] {
		body := strings.TrimSuffix(l, runtime.SplitMarker)
		if i < 3 && (body == l || len(body) != runtime.MaxLine) {
			t.Fatalf("piece %d: %d bytes, marker %v", i, len(body), body != l)
		}
		total += len(body)
	}
	if total != long {
		t.Fatalf("split pieces hold %d bytes, want %d", total, long)
	}
	if e := c.lines["stderr"]; len(e) != 1 || e[0] != "no newline" {
		t.Fatalf("stderr %q", e)
	}
}

func TestStdinStaysOpen(t *testing.T) {
	p, c := start(t, `while read l; do echo "got $l"; done`)
	for i := 0; i < 3; i++ {
		if err := p.WriteLine("line " + itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		n := len(c.lines["stdout"])
		c.mu.Unlock()
		if n == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d echoes", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	_ = p.Signal(syscall.SIGTERM)
	wait(t, p)
	if err := p.WriteLine("late"); universe.ErrorCode(err) != universe.ECONFLICT {
		t.Fatalf("write after exit: %v", err)
	}
}

// When the shell exits, the children it left behind die with it, and
// their hold on the pipes does not keep the process from ending.
func TestNoOrphans(t *testing.T) {
	p, c := start(t, `sleep 600 & echo "child $!"`)
	wait(t, p)
	c.mu.Lock()
	line := c.lines["stdout"][0]
	c.mu.Unlock()
	pid := atoi(strings.TrimPrefix(line, "child "))
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(pid, 0) == nil && !zombie(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("child %d outlived its shell", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Admit is asked before lines are copied: only the lines it admits arrive,
// the first of each read, in order, whole; the others are skipped.
func TestAdmitDropsBeforeCopying(t *testing.T) {
	c := &collected{}
	var mu sync.Mutex
	asked, admitted := 0, 0
	admit := func(n int) int {
		mu.Lock()
		defer mu.Unlock()
		asked += n
		k := min(n, 3) // three lines of each read
		admitted += k
		return k
	}
	p, err := runtime.ProcessRuntime{}.Start(runtime.Spec{Dir: t.TempDir(), Env: []string{},
		Command: `i=0; while [ $i -lt 5000 ]; do echo "line $i"; i=$((i+1)); done`, Output: c.out, Admit: admit})
	if err != nil {
		t.Fatal(err)
	}
	wait(t, p)
	c.mu.Lock()
	out := c.lines["stdout"]
	c.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	if asked != 5000 || len(out) != admitted || admitted == 0 || admitted == 5000 {
		t.Fatalf("asked about %d lines, admitted %d, got %d", asked, admitted, len(out))
	}
	last := -1
	for _, l := range out {
		n, err := strconv.Atoi(strings.TrimPrefix(l, "line "))
		if err != nil || n <= last {
			t.Fatalf("line %q after %d: not whole or out of order", l, last)
		}
		last = n
	}
}

// pipeSize reads the capacity of the pipe behind fd of process pid.
func pipeSize(pid, fd int) int {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/fd/" + strconv.Itoa(fd))
	if err != nil {
		return -1
	}
	defer f.Close()
	n, err := unix.FcntlInt(f.Fd(), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		return -1
	}
	return n
}

// A flooding stream gets a 1 MiB pipe while it floods, and the default
// back once it writes a line at a time again.
func TestBusyStreamPipeGrowsAndShrinks(t *testing.T) {
	c := &collected{}
	p, err := runtime.ProcessRuntime{}.Start(runtime.Spec{Dir: t.TempDir(), Output: c.out,
		Admit:   func(n int) int { return min(n, 10) }, // a throttle: most of the flood is skipped
		Command: `echo go; read x; yes | head -c 200000000; i=0; while [ $i -lt 100 ]; do echo calm; sleep 0.01; i=$((i+1)); done; echo done; exec cat`})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Signal(syscall.SIGKILL); <-p.Done() })
	if got := pipeSize(p.Pid(), 1); got != 64<<10 {
		t.Fatalf("pipe of %d bytes at the start, want the default 64 KiB", got)
	}
	if err := p.WriteLine("x"); err != nil {
		t.Fatal(err)
	}
	seen := 0
	deadline := time.Now().Add(60 * time.Second)
	for {
		if n := pipeSize(p.Pid(), 1); n > seen {
			seen = n
		}
		c.mu.Lock()
		out := c.lines["stdout"]
		finished := len(out) > 0 && out[len(out)-1] == "done"
		c.mu.Unlock()
		if finished {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the flood did not end")
		}
		time.Sleep(time.Millisecond)
	}
	if seen != 1<<20 {
		t.Errorf("largest pipe seen during the flood: %d bytes, want 1 MiB", seen)
	}
	if got := pipeSize(p.Pid(), 1); got != 64<<10 {
		t.Errorf("pipe of %d bytes after 100 calm lines, want 64 KiB", got)
	}
}
