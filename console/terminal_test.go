package console_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/universe-orchestrator/universe/console"
)

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

// screen collects what the terminal shows.
type screen struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (s *screen) read(f *os.File) {
	b := make([]byte, 4096)
	for {
		n, err := f.Read(b)
		s.mu.Lock()
		s.buf.Write(b[:n])
		s.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (s *screen) waitFor(t *testing.T, want string) string {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		s.mu.Lock()
		got := s.buf.String()
		s.mu.Unlock()
		if strings.Contains(got, want) {
			return got
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t.Fatalf("the terminal never showed %q; it shows %q", want, s.buf.String())
	return ""
}

// On a terminal, log lines written while the prompt is shown go above it
// and the prompt is drawn again under them; Ctrl-D says what it did.
func TestTerminalKeepsThePromptClean(t *testing.T) {
	ptm, pts := openPTY(t)
	sc := &screen{}
	go sc.read(ptm)
	var logged strings.Builder
	sink := console.NewLogSink(&logged)
	term := &console.Terminal{Registry: console.NewRegistry(), In: pts, Out: pts, Log: sink}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- term.Run(ctx) }()
	sc.waitFor(t, "universe> ")
	_, _ = sink.Write([]byte("level=INFO msg=request path=/api/node\n"))
	got := sc.waitFor(t, "path=/api/node")
	after := got[strings.LastIndex(got, "path=/api/node"):]
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(after, "universe> ") && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		got = sc.waitFor(t, "path=/api/node")
		after = got[strings.LastIndex(got, "path=/api/node"):]
	}
	if !strings.Contains(after, "universe> ") {
		t.Fatalf("no prompt after the log line: %q", got)
	}
	sink.Flush()
	if logged.Len() != 0 {
		t.Fatalf("the log went around the prompt: %q", logged.String())
	}
	_, _ = ptm.Write([]byte{4}) // Ctrl-D
	sc.waitFor(t, "the master keeps running")
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Ctrl-D did not end the console")
	}
	// Back to where it wrote before.
	_, _ = sink.Write([]byte("after\n"))
	sink.Flush()
	if logged.String() != "after\n" {
		t.Fatalf("after the console: %q", logged.String())
	}
}
