package console

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/chzyer/readline"
	universe "github.com/universe-orchestrator/universe"
	"golang.org/x/sys/unix"
)

// Terminal is the master's interactive console: a readline prompt with
// history and tab completion when In is a terminal, plain line reading
// otherwise (pipes, `docker attach`, scripts). End of input ends Run but
// not the master.
type Terminal struct {
	Registry    *Registry
	In          io.Reader
	Out         io.Writer
	HistoryFile string // created with mode 0600; "" for no history
	Prompt      string
	Logger      *slog.Logger // internal errors of commands go here
	// Log, when set, is where the master's log output goes: while the
	// prompt is shown it is redirected through the prompt, which is
	// redrawn under each line instead of being written over.
	Log *LogSink
}

// LogSink is a writer whose target can be swapped: the master's log writes
// to it, and the console points it through its prompt while it runs.
//
// A Write queues its line and returns; a goroutine of the sink, started
// when the queue was empty and gone once it is again, writes what is
// queued, as one write(2) for every line that came while it was writing
// the last batch. Under load (an access-log line per request, from
// many goroutines) that is one write for many lines instead of one each;
// alone, a line is written as soon as the writer wakes. At most maxPending
// bytes wait: a Write beyond that waits for room, so nothing is dropped.
// Lines are written whole, in the order of the Writes. Flush waits until
// everything queued is written (the master calls it before it exits).
type LogSink struct {
	mu      sync.Mutex
	turn    sync.Cond // signalled when a batch is taken or written
	w       io.Writer
	writing bool   // a drain goroutine runs
	pending []byte // lines queued, written next
	spare   []byte // the last batch's buffer, for reuse
}

// maxPending bounds the bytes queued behind the batch being written.
const maxPending = 256 << 10

// NewLogSink returns a sink writing to w.
func NewLogSink(w io.Writer) *LogSink {
	s := &LogSink{w: w}
	s.turn.L = &s.mu
	return s
}

// Write queues p for the current target and returns.
func (s *LogSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	for len(s.pending) > 0 && len(s.pending)+len(p) > maxPending {
		s.turn.Wait()
	}
	s.pending = append(s.pending, p...)
	if !s.writing {
		s.writing = true
		go s.drain()
	}
	s.mu.Unlock()
	return len(p), nil
}

// drain writes what is queued, batch after batch, until nothing is.
func (s *LogSink) drain() {
	s.mu.Lock()
	for len(s.pending) > 0 {
		batch, w := s.pending, s.w
		s.pending, s.spare = s.spare[:0], nil
		s.turn.Broadcast() // room for the writers waiting
		s.mu.Unlock()
		_, _ = w.Write(batch)
		s.mu.Lock()
		if cap(batch) <= 2*maxPending {
			s.spare = batch
		}
	}
	s.writing = false
	s.turn.Broadcast()
	s.mu.Unlock()
}

// Flush returns once every line written before it has reached the target.
func (s *LogSink) Flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.writing {
		s.turn.Wait()
	}
}

// set points the sink at w and returns the previous target, once what was
// queued before has been written to it.
func (s *LogSink) set(w io.Writer) io.Writer {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.writing {
		s.turn.Wait()
	}
	prev := s.w
	s.w = w
	return prev
}

type lineWriter struct{ w io.Writer }

func (l lineWriter) WriteLine(s string) { fmt.Fprintln(l.w, s) }

// Run reads and executes command lines until ctx is done or input ends.
func (t *Terminal) Run(ctx context.Context) error {
	if f, ok := t.In.(*os.File); ok && readline.IsTerminal(int(f.Fd())) {
		return t.runReadline(ctx, f)
	}
	return t.runPlain(ctx)
}

func (t *Terminal) exec(ctx context.Context, line string, out io.Writer) {
	ctx = WithCaller(ctx, Caller{Source: "terminal"})
	if err := t.Registry.Execute(ctx, line, lineWriter{out}); err != nil {
		if universe.ErrorCode(err) == universe.EINTERNAL && t.Logger != nil {
			t.Logger.Error("console command failed", "err", err)
		}
		fmt.Fprintln(out, "error: "+universe.ErrorMessage(err))
	}
}

func (t *Terminal) runPlain(ctx context.Context) error {
	lines := make(chan string)
	// This reader may stay blocked on a read of stdin after Run returns;
	// a read of a terminal or pipe cannot be cancelled. It ends with the
	// process and touches nothing shared but the channel.
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(t.In)
		sc.Buffer(make([]byte, 64*1024), 64*1024)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case line, ok := <-lines:
			if !ok {
				return nil
			}
			t.exec(ctx, line, t.Out)
		}
	}
}

func (t *Terminal) runReadline(ctx context.Context, in *os.File) error {
	if t.HistoryFile != "" {
		// readline would create it 0666: make it private first.
		f, err := os.OpenFile(t.HistoryFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("console history: %w", err)
		}
		_ = f.Close()
		_ = os.Chmod(t.HistoryFile, 0o600)
	}
	prompt := t.Prompt
	if prompt == "" {
		prompt = "universe> "
	}
	// The terminal is In, whatever the process's own stdin is.
	fd := int(in.Fd())
	var saved *unix.Termios
	rl, err := readline.NewEx(&readline.Config{
		Prompt:          prompt,
		HistoryFile:     t.HistoryFile,
		AutoComplete:    t.completer(),
		InterruptPrompt: "^C",
		EOFPrompt:       "",
		Stdin:           in,
		Stdout:          t.Out,
		Stderr:          t.Out,
		FuncIsTerminal:  func() bool { return readline.IsTerminal(fd) },
		FuncMakeRaw: func() error {
			st, err := unix.IoctlGetTermios(fd, unix.TCGETS)
			if err != nil {
				return err
			}
			saved = st
			_, err = readline.MakeRaw(fd)
			return err
		},
		FuncExitRaw: func() error {
			if saved == nil {
				return nil
			}
			return unix.IoctlSetTermios(fd, unix.TCSETS, saved)
		},
		FuncGetWidth: func() int {
			if w, _, err := readline.GetSize(fd); err == nil && w > 0 {
				return w
			}
			return 80
		},
	})
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			_ = rl.Close() // unblocks Readline
		case <-done:
		}
	}()
	defer rl.Close()
	if t.Log != nil {
		prev := t.Log.set(rl.Stderr()) // clears the prompt, writes, redraws it
		defer t.Log.set(prev)
	}
	for {
		line, err := rl.Readline()
		if ctx.Err() != nil {
			return nil // the master is stopping (the console's stop, a signal): nothing more to say
		}
		if errors.Is(err, readline.ErrInterrupt) {
			if line == "" {
				fmt.Fprintln(rl.Stdout(), "(type stop to stop the master)")
			}
			continue
		} else if errors.Is(err, io.EOF) {
			fmt.Fprintln(rl.Stdout(), "Console closed (Ctrl-D); the master keeps running. Stop it with Ctrl-C or SIGTERM.")
			return nil
		} else if err != nil { // closed
			return nil
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		t.exec(ctx, line, rl.Stdout())
	}
}

// completer builds readline's completion tree from the registry.
func (t *Terminal) completer() *readline.PrefixCompleter {
	var items []readline.PrefixCompleterInterface
	var build func(c *Command) []readline.PrefixCompleterInterface
	build = func(c *Command) []readline.PrefixCompleterInterface {
		var out []readline.PrefixCompleterInterface
		for _, n := range append([]string{c.Name}, c.Aliases...) {
			var kids []readline.PrefixCompleterInterface
			for _, s := range c.Sub {
				kids = append(kids, build(s)...)
			}
			if c.Args != nil {
				kids = append(kids, readline.PcItemDynamic(func(string) []string { return c.Args() }))
			}
			out = append(out, readline.PcItem(n, kids...))
		}
		return out
	}
	for _, c := range t.Registry.Commands() {
		items = append(items, build(c)...)
	}
	return readline.NewPrefixCompleter(items...)
}
