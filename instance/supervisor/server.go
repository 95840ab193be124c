package supervisor

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/instance/logs"
	"github.com/universe-orchestrator/universe/instance/runtime"
)

// Command is the hidden subcommand that runs a supervisor: the master
// starts "<its own binary> supervise <state dir>".
const Command = "supervise"

// lingerAfterExit is how long a supervisor whose process has exited waits
// for a master to attach and collect the exit before leaving it in
// ExitName only.
const lingerAfterExit = 2 * time.Second

// ringLines is the supervisor's memory of recent lines; a master that
// attaches further behind reads the file.
const ringLines = 256

// sessionBuffer bounds the lines queued for a master that reads slowly;
// beyond it the master gets a gap and reads the file.
const sessionBuffer = 1024

// Main runs a supervisor for the state directory args[0], reading its Spec
// from stdin, and returns the exit status of the supervisor itself. It
// reports "ok <pid>" or "error <message>" on stdout once the process runs
// or could not start, then closes stdout.
func Main(args []string, extra ...runtime.Runtime) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: universe supervise <state dir> (started by the master, not by hand)")
		return 2
	}
	debug.SetGCPercent(50) // a small heap: many supervisors run side by side
	// Caught and dropped, not ignored: an ignored signal stays ignored in
	// the process the supervisor starts (exec keeps SIG_IGN), which would
	// then not die of SIGPIPE, nor stop on SIGINT.
	shrug := make(chan os.Signal, 8)
	signal.Notify(shrug, syscall.SIGHUP, syscall.SIGINT, syscall.SIGPIPE)
	go func() {
		for range shrug {
		}
	}()
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	spec, err := readSpec(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stdout, "error cannot read the spec:", err)
		return 1
	}
	_ = os.Stdin.Close()
	s, err := start(args[0], spec, extra)
	if err != nil {
		fmt.Fprintln(os.Stdout, "error", universe.ErrorMessage(err))
		return 1
	}
	fmt.Fprintln(os.Stdout, "ok", s.proc.Pid())
	_ = os.Stdout.Close()
	go func() {
		for range term {
			// Whoever stops the supervisor stops the instance, gracefully.
			_ = s.proc.Signal(syscall.SIGTERM)
		}
	}()
	// Once the first master has attached and the process runs, what
	// starting and attaching touched goes back (once: a trim at the start
	// too cost each start a GC and a read of smaps while a fleet was being
	// started, and left more behind: bench/supervisors, RSS 3.2 MiB
	// against 2.8 with the one trim).
	time.AfterFunc(5*time.Second, trimMemory)
	s.run()
	return 0
}

type server struct {
	dir      string
	log      *logs.Log
	proc     runtime.Process
	ln       *listener
	exitFile *os.File // the exit record's file, made at start (createExit)

	drops atomic.Int64 // lines the throttle dropped, not yet reported

	mu       sync.Mutex
	session  *session
	attached chan struct{} // closed at the first attach after the exit
	exited   chan struct{} // closed once the exit is recorded
	exit     Exit
}

func start(dir string, spec Spec, extra []runtime.Runtime) (*server, error) {
	rt, err := runtime.ByName(spec.Runtime)
	for _, r := range extra {
		if r.Name() == spec.Runtime {
			rt, err = r, nil
		}
	}
	if err != nil {
		return nil, err
	}
	s := &server{dir: dir, attached: make(chan struct{}), exited: make(chan struct{})}
	s.log, err = logs.Open(dir, logs.Options{
		RingLines: ringLines, RingBytes: 1 << 20, SubBuffer: sessionBuffer, FileSync: true, MinNext: spec.NextSeq,
		LineRate: spec.LineRate, FileBytes: spec.FileBytes, FileCount: spec.FileCount,
		OnDropped: func(cause string, n int) {
			if cause == "throttled" {
				s.drops.Add(int64(n))
			}
		},
		OnWarnFile: func(err error) { fmt.Fprintln(os.Stderr, "log file:", err) },
	})
	if err != nil {
		return nil, err
	}
	if s.exitFile, err = createExit(dir); err != nil {
		_ = s.log.Close(nil)
		return nil, fmt.Errorf("exit record: %w", err)
	}
	if s.ln, err = listen(dir); err != nil {
		_ = s.exitFile.Close()
		_ = s.log.Close(nil)
		return nil, fmt.Errorf("listen: %w", err)
	}
	rs := runtime.Spec{Dir: spec.Dir, Command: spec.Command, Env: spec.Env, Name: "universe-" + spec.InstanceID, StateDir: dir, Container: spec.Container}
	// Whatever the process spawns stays ours to kill, also when it leaves
	// the process group (setsid) and its parent exits: without a cgroup
	// (cgroup v1 hosts) this is how nothing outlives the instance.
	rs.Subreaper = spec.Runtime == "process" && runtime.Subreaper() == nil
	if spec.Cgroup != "" {
		cg, err := os.Open(spec.Cgroup)
		if err != nil {
			s.abort()
			return nil, fmt.Errorf("open cgroup: %w", err)
		}
		defer cg.Close()
		rs.CgroupFD, rs.Cgroup = int(cg.Fd()), spec.Cgroup
	}
	// Output waits for the "started" line, so that it comes first.
	started := make(chan struct{})
	lg := s.log
	rs.Output = func(stream string, lines []string) {
		<-started
		lg.WriteAdmitted(stream, lines)
	}
	rs.Admit = lg.Admit // dropped lines are never made into strings
	p, err := rt.Start(rs)
	if err != nil {
		s.abort()
		return nil, err
	}
	s.proc = p
	if pid := p.Pid(); pid > 0 {
		lg.System("started pid " + strconv.Itoa(pid) + " (by " + spec.StartedBy + ")")
	} else {
		lg.System("started (by " + spec.StartedBy + "), no pid: it had ended before it could be seen")
	}
	if n, ok := p.(interface{ Notes() []string }); ok {
		for _, note := range n.Notes() {
			lg.System(note)
		}
	}
	close(started)
	return s, nil
}

func (s *server) abort() {
	_ = s.exitFile.Close()
	s.ln.removeSocket() // first: while bound, its inode cannot be another's
	_ = s.ln.Close()
	_ = s.log.Close(nil)
}

// run serves masters until the process has exited and the exit is
// collected (or nobody came for it in time).
func (s *server) run() {
	go s.accept()
	<-s.proc.Done()
	code := s.proc.ExitCode()
	_ = s.log.Close(nil) // flushes and closes the file; sessions end
	exit := Exit{Code: code, At: time.Now().UnixMilli(), Next: s.log.Total() + 1}
	if r, ok := s.proc.(runtime.ExitReasoner); ok {
		exit.Reason = r.ExitReason()
	}
	if err := writeExit(s.dir, s.exitFile, exit); err != nil {
		fmt.Fprintln(os.Stderr, "write exit record:", err)
	}
	s.mu.Lock()
	s.exit = exit
	close(s.exited)
	sess := s.session
	s.mu.Unlock()
	if sess == nil {
		select {
		case <-s.attached:
		case <-time.After(lingerAfterExit):
		}
		s.mu.Lock()
		sess = s.session
		s.mu.Unlock()
	}
	if sess != nil {
		select {
		case <-sess.done:
		case <-time.After(ioTimeout):
		}
	}
	s.ln.removeSocket() // first: while bound, its inode cannot be another's
	_ = s.ln.Close()
}

func (s *server) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		go s.serve(c)
	}
}

// session is one attached master. A newer attach replaces it.
type session struct {
	c      *codec
	sendMu sync.Mutex
	done   chan struct{} // closed when the master said bye or left
	once   sync.Once
}

func (ss *session) send(m *msg) error {
	ss.sendMu.Lock()
	defer ss.sendMu.Unlock()
	return ss.c.send(m)
}

func (ss *session) close() {
	ss.once.Do(func() {
		_ = ss.c.conn.Close()
		close(ss.done)
	})
}

func (s *server) serve(conn conn) {
	c := newCodec(conn)
	var m msg
	_ = conn.SetReadDeadline(time.Now().Add(ioTimeout))
	if err := c.recv(&m); err != nil || m.Op != opAttach {
		_ = conn.Close()
		return
	}
	if m.Version != Version {
		// A master of another protocol: say which one this is, and leave
		// the session (and the process) as they are.
		_ = c.send(&msg{Op: opHello, Version: Version, Pid: s.proc.Pid()})
		_ = conn.Close()
		return
	}
	_ = conn.SetReadDeadline(time.Time{})
	ss := &session{c: c, done: make(chan struct{})}
	s.mu.Lock()
	old := s.session
	s.session = ss
	select {
	case <-s.attached:
	default:
		close(s.attached)
	}
	s.mu.Unlock()
	if old != nil {
		old.close()
	}
	sub, backlog := s.log.Subscribe(logs.Position{Since: m.Since, HasSince: true})
	go s.stream(ss, sub, backlog)
	defer ss.close()
	for {
		if err := c.recv(&m); err != nil {
			sub.Close()
			return
		}
		switch m.Op {
		case opWrite:
			err := s.proc.WriteLine(m.Text)
			_ = ss.send(reply(m.ID, err))
		case opSignal:
			err := s.proc.Signal(syscall.Signal(m.Sig))
			_ = ss.send(reply(m.ID, err))
		case opSystem:
			s.log.System(m.Text)
		case opProfile:
			// A CPU profile takes seconds: stdin and signals go on meanwhile.
			id, name, seconds := m.ID, m.Text, m.Sig
			go func() {
				b, err := writeProfile(name, seconds)
				r := reply(id, err)
				r.Text = string(b)
				_ = ss.send(r)
			}()
		case opBye:
			sub.Close()
			return
		}
	}
}

func reply(id uint64, err error) *msg {
	r := &msg{Op: opReply, ID: id}
	if err != nil {
		r.ErrCode = universe.ErrorCode(err)
		r.Text = universe.ErrorMessage(err)
	}
	return r
}

// stream sends the hello, the backlog and then every event of sub; once
// the log has ended (the process exited), the exit.
func (s *server) stream(ss *session, sub *logs.Sub, backlog []logs.Event) {
	if err := ss.send(&msg{Op: opHello, Version: Version, Pid: s.proc.Pid()}); err != nil {
		ss.close()
		return
	}
	if err := s.sendEvents(ss, backlog); err != nil {
		ss.close()
		return
	}
	ctx := contextOf(ss.done)
	for {
		evs, ok := sub.Next(ctx)
		if !ok {
			break
		}
		if err := s.sendEvents(ss, evs); err != nil {
			ss.close()
			return
		}
	}
	select {
	case <-ss.done:
		return // replaced or gone
	case <-s.exited:
	}
	s.mu.Lock()
	e := s.exit
	s.mu.Unlock()
	if err := ss.send(&msg{Op: opExit, Code: e.Code, Since: e.Next}); err != nil {
		ss.close()
	}
}

func (s *server) sendEvents(ss *session, evs []logs.Event) error {
	var lines []api.LogLine
	flush := func() error {
		d := int(s.drops.Swap(0))
		if len(lines) == 0 && d == 0 {
			return nil
		}
		err := ss.send(&msg{Op: opLines, Lines: lines, Dropped: d})
		lines = lines[:0]
		return err
	}
	for _, e := range evs {
		switch e.Kind {
		case logs.KindLine:
			lines = append(lines, e.Line)
		case logs.KindGap:
			if err := flush(); err != nil {
				return err
			}
			if err := ss.send(&msg{Op: opGap, From: e.From, To: e.To}); err != nil {
				return err
			}
		}
	}
	return flush()
}

// replyErr turns a reply back into an error.
func replyErr(m *msg) error {
	if m.ErrCode == "" {
		return nil
	}
	return &universe.Error{Code: m.ErrCode, Message: m.Text}
}

// contextOf returns a context cancelled when done is closed.
func contextOf(done <-chan struct{}) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-done; cancel() }()
	return ctx
}

// RunIfChild runs a supervisor and exits when this process was started as
// one ("<binary> supervise <dir>"); otherwise it returns at once. extra
// are runtimes beyond the built-in ones (docker: the master's binary
// links it, the small supervisor does not). Every
// binary that starts instances calls it first in main (tests: in TestMain),
// since the master re-executes its own binary.
func RunIfChild(extra ...runtime.Runtime) {
	runtime.RunIfHelper()
	if len(os.Args) > 1 && os.Args[1] == Command {
		os.Exit(Main(os.Args[2:], extra...))
	}
}
