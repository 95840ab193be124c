package supervisor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/instance/runtime"
)

// Sink receives what a supervisor reports of its log (logs.Log is one, with
// a counter for throttled lines added).
type Sink interface {
	// Total is the sequence number of the last line the sink has.
	Total() uint64
	// Append adds lines numbered by the supervisor.
	Append(lines []api.LogLine)
	// CatchUp reads lines before seq to from the file.
	CatchUp(to uint64)
	// Forward sets where the sink's system lines go.
	Forward(func(line string))
}

// Options of a Client.
type Options struct {
	Sink    Sink
	Dropped func(n int) // lines the supervisor's throttle dropped (may be nil)
}

// startTimeout bounds a supervisor's start: reading the spec, opening the
// log and starting the process.
const startTimeout = 15 * time.Second

// Client is the master's side of one supervisor: a runtime.Process whose
// output goes to the Sink. It ends (Done) when the process has exited and
// the exit is collected, when the supervisor is lost, or when the master
// detaches from it.
type Client struct {
	dir  string
	opt  Options
	pid  int
	spid int // the supervisor's pid, 0 if unknown

	sendMu sync.Mutex
	c      *codec

	// System lines wait here to be sent, in order, before anything sent
	// after them (a stop's notice comes before the signal it announces).
	sysMu sync.Mutex
	sysQ  []string

	beginOnce sync.Once

	mu       sync.Mutex
	nextID   uint64
	waiting  map[uint64]chan *msg
	detached bool
	lost     bool
	code     int
	reason   string // why, beyond the code (exit.json)
	next     uint64 // the log's next sequence number at the exit; 0 unknown
	done     chan struct{}
	held     chan struct{} // Hold: closed by Release
}

// Start starts a supervisor with command (the universe binary and its
// arguments before the subcommand) for spec, with its state in dir, and
// attaches to it. The log's file must have been handed off (spec.NextSeq).
func Start(command []string, dir string, spec Spec, opt Options) (*Client, error) {
	b, err := encodeSpec(spec)
	if err != nil {
		return nil, universe.Errorf(universe.EINVALID, "start supervisor: %v", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	ClearExit(dir)
	stderr, err := os.OpenFile(filepath.Join(dir, StderrName), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open supervisor log: %w", err)
	}
	defer stderr.Close()
	args := append(append(append([]string{}, command[1:]...), Command), dir)
	cmd := exec.Command(command[0], args...)
	cmd.Dir = dir
	// A built environment, never the parent's: a node's credential, NATS
	// passwords or the operator's token must not reach an instance
	// through /proc/<supervisor>/environ.
	cmd.Env = append(runtime.BaseEnv(), "GOMAXPROCS=1")
	cmd.Stderr = stderr
	// Its own session: signals to the master's terminal or process group
	// do not reach it, and it outlives the master.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, universe.Errorf(universe.EINTERNAL, "start supervisor: %v", err)
	}
	spid := cmd.Process.Pid // reap releases cmd.Process
	go reap(cmd)            // when it ends while the master runs
	go func() {
		_, _ = in.Write(b)
		_ = in.Close()
	}()
	answer := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		_ = out.Close() // nothing more comes that way
		answer <- strings.TrimSpace(line)
	}()
	var line string
	select {
	case line = <-answer:
	case <-time.After(startTimeout):
		_ = syscall.Kill(spid, syscall.SIGKILL)
		return nil, universe.Errorf(universe.EUNAVAILABLE, "the supervisor did not start within %s", startTimeout)
	}
	switch {
	case strings.HasPrefix(line, "ok "):
	case strings.HasPrefix(line, "error "):
		return nil, universe.Errorf(universe.EINVALID, "%s", strings.TrimPrefix(line, "error "))
	default:
		return nil, universe.Errorf(universe.EINTERNAL, "the supervisor failed to start (see %s)", StderrName)
	}
	cl, err := attach(dir, opt)
	if errors.Is(err, errNotRunning) {
		// It ran and ended before we could attach: the exit is in the file.
		return exited(dir, opt), nil
	}
	if cl != nil {
		cl.spid = spid
	}
	return cl, err
}

// Reachable says whether something accepts connections on the supervisor
// socket of dir: after a failed Adopt, a supervisor of another protocol
// version (or one that hangs), whose process must be left alone.
func Reachable(dir string) bool {
	c, err := dial(dir, time.Second)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// Adopt attaches to the supervisor of dir, started by an earlier master.
// When none answers, the Client reports the exit it recorded (ok true), or
// ok is false: the supervisor died without recording one.
func Adopt(dir string, opt Options) (cl *Client, ok bool) {
	cl, err := attach(dir, opt)
	if err == nil {
		return cl, true
	}
	if _, has := ReadExit(dir); has {
		return exited(dir, opt), true
	}
	return nil, false
}

// exited is a Client for a process whose exit was recorded in dir.
func exited(dir string, opt Options) *Client {
	e, _ := ReadExit(dir)
	cl := &Client{dir: dir, opt: opt, waiting: map[uint64]chan *msg{}, done: make(chan struct{}), code: e.Code, next: e.Next}
	close(cl.done)
	return cl
}

func attach(dir string, opt Options) (*Client, error) {
	cl := &Client{dir: dir, opt: opt, waiting: map[uint64]chan *msg{}, done: make(chan struct{})}
	hello, err := cl.connect()
	if err != nil {
		return nil, err
	}
	cl.pid = hello.Pid
	opt.Sink.Forward(cl.system)
	return cl, nil
}

// Begin starts taking in what the supervisor sends: lines (which wait in
// the socket meanwhile), replies and the exit. The owner calls it once it
// has recorded the process as running, so that its state comes first.
func (cl *Client) Begin() {
	cl.beginOnce.Do(func() {
		select {
		case <-cl.done:
		default:
			go cl.read()
		}
	})
}

// connect dials the supervisor and attaches from the sink's last line.
func (cl *Client) connect() (*msg, error) {
	conn, err := dial(cl.dir, 2*time.Second)
	if err != nil {
		return nil, errNotRunning
	}
	c := newCodec(conn)
	if err := c.send(&msg{Op: opAttach, Version: Version, Since: cl.opt.Sink.Total()}); err != nil {
		_ = conn.Close()
		return nil, errNotRunning
	}
	var hello msg
	_ = conn.SetReadDeadline(time.Now().Add(ioTimeout))
	if err := c.recv(&hello); err != nil || hello.Op != opHello || hello.Version != Version {
		_ = conn.Close()
		return nil, errNotRunning // Reachable tells a supervisor of another version apart
	}
	_ = conn.SetReadDeadline(time.Time{})
	cl.sendMu.Lock()
	cl.c = c
	cl.sendMu.Unlock()
	return &hello, nil
}

// read handles what the supervisor sends until the exit, the loss of the
// supervisor or a detach.
func (cl *Client) read() {
	for {
		cl.sendMu.Lock()
		c := cl.c
		cl.sendMu.Unlock()
		var m msg
		for {
			if err := c.recv(&m); err != nil {
				break
			}
			switch m.Op {
			case opLines:
				cl.opt.Sink.Append(m.Lines)
				if m.Dropped > 0 && cl.opt.Dropped != nil {
					cl.opt.Dropped(m.Dropped)
				}
			case opGap:
				cl.opt.Sink.CatchUp(m.To + 1)
			case opReply:
				cl.mu.Lock()
				ch := cl.waiting[m.ID]
				delete(cl.waiting, m.ID)
				cl.mu.Unlock()
				if ch != nil {
					r := m
					ch <- &r
				}
			case opExit:
				cl.mu.Lock()
				held := cl.held
				cl.mu.Unlock()
				if held != nil {
					// Recorded now; the supervisor goes at Release.
					cl.finish(m.Code, m.Since, false)
					cl.failWaiting()
					<-held
				}
				_ = cl.send(&msg{Op: opBye})
				_ = c.conn.Close()
				cl.finish(m.Code, m.Since, false)
				cl.failWaiting() // a request the exit overtook gets its answer now
				return
			}
		}
		_ = c.conn.Close()
		cl.failWaiting()
		cl.mu.Lock()
		detached := cl.detached
		cl.mu.Unlock()
		if detached {
			cl.finish(0, 0, false)
			return
		}
		// The connection broke: attach again (the supervisor dropped a
		// slow reader), else it is gone: with an exit record or without.
		if _, err := cl.connect(); err == nil {
			continue
		}
		if e, ok := ReadExit(cl.dir); ok {
			cl.finish(e.Code, e.Next, false)
		} else {
			cl.finish(-1, 0, true)
		}
		return
	}
}

func (cl *Client) finish(code int, next uint64, lost bool) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	select {
	case <-cl.done:
		return
	default:
	}
	cl.code, cl.next, cl.lost = code, next, lost
	if e, ok := ReadExit(cl.dir); ok && !lost {
		cl.reason = e.Reason
	}
	close(cl.done)
}

func (cl *Client) failWaiting() {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	for id, ch := range cl.waiting {
		close(ch)
		delete(cl.waiting, id)
	}
}

// send sends the queued system lines, then m (nil: only the lines).
func (cl *Client) send(m *msg) error {
	cl.sendMu.Lock()
	defer cl.sendMu.Unlock()
	if cl.c == nil {
		return errNotRunning
	}
	cl.sysMu.Lock()
	lines := cl.sysQ
	cl.sysQ = nil
	cl.sysMu.Unlock()
	for _, line := range lines {
		if err := cl.c.send(&msg{Op: opSystem, Text: line}); err != nil {
			return err
		}
	}
	if m == nil {
		return nil
	}
	return cl.c.send(m)
}

// request sends m and waits for the reply.
func (cl *Client) request(m *msg) error {
	_, err := cl.requestWithin(m, ioTimeout)
	return err
}

// requestWithin sends m and waits for the reply up to timeout.
func (cl *Client) requestWithin(m *msg, timeout time.Duration) (*msg, error) {
	ch := make(chan *msg, 1)
	cl.mu.Lock()
	select {
	case <-cl.done:
		cl.mu.Unlock()
		return nil, universe.Errorf(universe.ECONFLICT, "the instance is not running")
	default:
	}
	cl.nextID++
	m.ID = cl.nextID
	cl.waiting[m.ID] = ch
	cl.mu.Unlock()
	if err := cl.send(m); err != nil {
		cl.mu.Lock()
		delete(cl.waiting, m.ID)
		cl.mu.Unlock()
		return nil, universe.Errorf(universe.EUNAVAILABLE, "the instance's supervisor does not answer")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	select {
	case r, ok := <-ch:
		if !ok {
			select {
			case <-cl.done:
				return nil, universe.Errorf(universe.ECONFLICT, "the instance is not running")
			default:
				return nil, universe.Errorf(universe.EUNAVAILABLE, "the instance's supervisor does not answer")
			}
		}
		return r, replyErr(r)
	case <-ctx.Done():
		cl.mu.Lock()
		delete(cl.waiting, m.ID)
		cl.mu.Unlock()
		return nil, universe.Errorf(universe.EUNAVAILABLE, "the instance's supervisor does not answer")
	}
}

// maxSystemQueue bounds the system lines waiting to be sent.
const maxSystemQueue = 1024

// system forwards a system line to the supervisor's log. It does not
// block: the line is queued, and sent before any message sent after it.
func (cl *Client) system(line string) {
	cl.sysMu.Lock()
	if len(cl.sysQ) < maxSystemQueue {
		cl.sysQ = append(cl.sysQ, line)
	}
	cl.sysMu.Unlock()
	go func() { _ = cl.send(nil) }()
}

// Unsent returns the system lines that were never sent (the supervisor
// exited first) and forgets them: the owner writes them itself.
func (cl *Client) Unsent() []string {
	cl.sysMu.Lock()
	defer cl.sysMu.Unlock()
	lines := cl.sysQ
	cl.sysQ = nil
	return lines
}

// Pid is the process's pid.
func (cl *Client) Pid() int { return cl.pid }

// SupervisorPid is the supervisor's pid when this master started it (0
// after an adoption).
func (cl *Client) SupervisorPid() int { return cl.spid }

// Dir is the supervisor's state directory.
func (cl *Client) Dir() string { return cl.dir }

// WriteLine writes line to the process's stdin.
func (cl *Client) WriteLine(line string) error {
	return cl.request(&msg{Op: opWrite, Text: line})
}

// Signal sends sig to the process group.
func (cl *Client) Signal(sig syscall.Signal) error {
	err := cl.request(&msg{Op: opSignal, Sig: int(sig)})
	if universe.ErrorCode(err) == universe.ECONFLICT {
		return nil // exited meanwhile
	}
	return err
}

// Profile takes Go profile name (see Profiles) of the supervisor; for
// "profile", its CPU over seconds. Errors: ENOTFOUND, EINVALID (see
// ValidProfile), ECONFLICT (not running, or a CPU profile is being
// taken), EUNAVAILABLE (no answer: a supervisor started by an older
// master does not serve profiles).
func (cl *Client) Profile(name string, seconds int) ([]byte, error) {
	if err := ValidProfile(name, seconds); err != nil {
		return nil, err
	}
	r, err := cl.requestWithin(&msg{Op: opProfile, Text: name, Sig: seconds}, ioTimeout+time.Duration(seconds)*time.Second)
	if err != nil {
		return nil, err
	}
	return []byte(r.Text), nil
}

// Done is closed when the process's exit is collected, the supervisor is
// lost, or the master detached.
func (cl *Client) Done() <-chan struct{} { return cl.done }

// ExitCode is the exit code after Done (-1 when lost).
func (cl *Client) ExitCode() int {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.code
}

// ExitReason says, after Done, why the process exited beyond its code,
// when its runtime knew ("" otherwise).
func (cl *Client) ExitReason() string {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.reason
}

// NextSeq is, after Done, the sequence number after the last line the
// supervisor logged (0 when unknown: the supervisor was lost).
func (cl *Client) NextSeq() uint64 {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.next
}

// Lost says the supervisor died without recording an exit.
func (cl *Client) Lost() bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.lost
}

// Detached says Done came from Detach: the process still runs.
func (cl *Client) Detached() bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.detached
}

// Detach leaves the process running under its supervisor, for a later
// master to adopt, and ends this Client.
func (cl *Client) Detach() {
	cl.mu.Lock()
	cl.detached = true
	cl.mu.Unlock()
	cl.sendMu.Lock()
	if cl.c != nil {
		_ = cl.c.conn.Close()
	}
	cl.sendMu.Unlock()
	cl.beginOnce.Do(func() { cl.finish(0, 0, false) }) // never begun: nothing reads
	<-cl.done
}

// Hold keeps the supervisor, once it has reported the exit (Done), until
// Release: it waits, idle, for its master to leave. A master that stops
// every instance at once holds them all, so that no supervisor's own exit
// (the kernel's teardown of a process: a third of a supervisor's CPU in
// a stop) takes CPU from the stops still under way.
func (cl *Client) Hold() {
	cl.mu.Lock()
	if cl.held == nil {
		cl.held = make(chan struct{})
	}
	cl.mu.Unlock()
}

// Release lets a held supervisor go: the Client says goodbye, and the
// supervisor exits, in the background. Without Hold it does nothing.
func (cl *Client) Release() {
	cl.mu.Lock()
	if cl.held != nil {
		close(cl.held)
		cl.held = nil
	}
	cl.mu.Unlock()
}

// Collected removes the exit record once the master has recorded the exit.
func (cl *Client) Collected() { ClearExit(cl.dir) }
