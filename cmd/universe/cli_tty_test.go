package main

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY returns the two ends of a new pseudo-terminal.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Skipf("pty number: %v", err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open pty: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(); _ = m.Close() })
	return m, s
}

// Colour only on a terminal, and never with NO_COLOR; a stop shows its
// progress on a terminal's stderr.
func TestCLITerminalOutput(t *testing.T) {
	m, _ := newCLIMaster(t)
	code, _, errOut := m.run(m.admin, `{"command":"trap 'sleep 1.5; exit 0' TERM; echo up; while :; do sleep 0.1; done","availablePorts":{"min":21740,"max":21750}}`, "config", "apply", "-f", "-", "slow")
	if code != 0 {
		t.Fatal(errOut)
	}
	code, out, errOut := m.run(m.admin, "", "instance", "create", "slow", "-o", "json")
	if code != 0 {
		t.Fatal(errOut)
	}
	id := out[strings.Index(out, `"id": "`)+7:]
	id = id[:strings.IndexByte(id, '"')]

	// runTTY runs the CLI with stdout and stderr on a terminal and returns
	// what the terminal showed.
	runTTY := func(noColor bool, args ...string) string {
		ptm, pts := openPTY(t)
		env := m.env(m.admin)
		if noColor {
			env = m.env(m.admin, "NO_COLOR", "1")
		}
		got := make(chan string, 1)
		go func() {
			var b strings.Builder
			buf := make([]byte, 4096)
			for {
				n, err := ptm.Read(buf) // EIO once the terminal's other end is closed
				b.Write(buf[:n])
				if err != nil {
					got <- b.String()
					return
				}
			}
		}()
		code := run(context.Background(), args, env, strings.NewReader(""), pts, pts)
		_ = pts.Close()
		if code != 0 {
			t.Fatalf("%v: exit %d", args, code)
		}
		select {
		case s := <-got:
			return s
		case <-time.After(10 * time.Second):
			t.Fatal("the terminal did not end")
			return ""
		}
	}
	if out := runTTY(false, "instance", "list"); !strings.Contains(out, "\x1b[32mONLINE\x1b[0m") {
		t.Fatalf("no colour on a terminal: %q", out)
	}
	if out := runTTY(true, "instance", "list"); strings.Contains(out, "\x1b[") || !strings.Contains(out, "ONLINE") {
		t.Fatalf("NO_COLOR: %q", out)
	}
	if _, out, _ := m.run(m.admin, "", "instance", "list"); strings.Contains(out, "\x1b[") {
		t.Fatalf("colour into a pipe: %q", out)
	}
	if out := runTTY(false, "instance", "stop", id); !strings.Contains(out, "stop "+id+": ") || !strings.Contains(out, "STOPPED") {
		t.Fatalf("no progress shown for the stop: %q", out)
	}
}
