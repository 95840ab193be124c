package runtime

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	universe "github.com/universe-orchestrator/universe"
)

// stdinTimeout bounds a write to a process that does not read its input.
const stdinTimeout = 5 * time.Second

// readBuffer is the size of each read from an output pipe. Idle instances
// hold two, so it is small; long lines are assembled across reads.
var readBuffer = 16 << 10

// maxReadBuffer is what a reader's buffer grows to while its stream keeps
// filling it.
const maxReadBuffer = 256 << 10

// busyPipeSize is the capacity a busy stream's pipe is given: its writer
// is woken, and its reader reads, 16 times less often than with Linux's
// default 64 KiB. Only busy streams get it, and give it back when they
// calm down: pipe pages count against a per-user limit (pipe-user-pages-soft,
// 64 MiB by default) beyond which every new pipe of the user is cut to 8 KiB.
const busyPipeSize = 1 << 20

// calmReads is how many small reads in a row make a busy stream calm again.
const calmReads = 64

// drainTimeout bounds reading output after the process group is gone (a
// descendant in another session may still hold the pipes).
const drainTimeout = 2 * time.Second

// Process is the "process" runtime: /bin/sh -c <command> in its own process
// group, stdin kept open, stdout and stderr read line by line.
type ProcessRuntime struct{}

// Name returns "process".
func (ProcessRuntime) Name() string { return "process" }

// Available returns nil if /bin/sh exists.
func (ProcessRuntime) Available() error {
	if _, err := os.Stat("/bin/sh"); err != nil {
		return universe.Errorf(universe.EINVALID, "runtime process needs /bin/sh, which is missing")
	}
	return nil
}

type proc struct {
	cmd      *exec.Cmd
	pid      int
	stdinMu  sync.Mutex
	stdin    *os.File
	done     chan struct{}
	exitCode int
	readers  sync.WaitGroup
}

// Start starts spec.Command with /bin/sh -c in spec.Dir, in a new process
// group. When the shell exits, whatever is left of its group is killed, so
// no child outlives it.
func (ProcessRuntime) Start(spec Spec) (Process, error) {
	if err := CheckDir(spec.Dir); err != nil {
		return nil, err
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("create stdin pipe: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		closeAll(inR, inW)
		return nil, fmt.Errorf("create stdout pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		closeAll(inR, inW, outR, outW)
		return nil, fmt.Errorf("create stderr pipe: %w", err)
	}
	cmd := exec.Command("/bin/sh", "-c", spec.Command)
	cmd.Dir = spec.Dir
	cmd.Env = spec.Env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	// Its own group, so that signals reach everything it spawns; killed
	// with its supervisor, so that it never runs unsupervised.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if spec.CgroupFD > 0 {
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, spec.CgroupFD
	}
	err = cmd.Start()
	closeAll(inR, outW, errW) // the child has its copies
	if err != nil {
		closeAll(inW, outR, errR)
		return nil, universe.Errorf(universe.EINVALID, "start process: %v", err)
	}
	p := &proc{cmd: cmd, pid: cmd.Process.Pid, stdin: inW, done: make(chan struct{})}
	p.readers.Add(2)
	for _, r := range []struct {
		f      *os.File
		stream string
	}{{outR, "stdout"}, {errR, "stderr"}} {
		go func() {
			defer p.readers.Done()
			ReadLines(r.f, r.stream, spec.Output, spec.Admit)
		}()
	}
	go p.wait(outR, errR, spec.Subreaper)
	return p, nil
}

// WaitPoll waits for the exit of p, a child of this process, and reaps
// it, without holding an OS thread meanwhile as os.Process.Wait does (a
// blocking waitid): a non-blocking pidfd in the runtime's poller says when
// it has exited. Without pidfds (Linux before 5.3) it falls back to
// Process.Wait. p is released. The master reaps its supervisors this way
// (one thread per instance otherwise), and each supervisor its process.
func WaitPoll(p *os.Process) (syscall.WaitStatus, error) {
	fd, err := unix.PidfdOpen(p.Pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		state, err := p.Wait()
		if err != nil {
			return 0, err
		}
		return state.Sys().(syscall.WaitStatus), nil
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	defer f.Close()
	defer p.Release()
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var (
		ws   syscall.WaitStatus
		werr error
	)
	if err := rc.Read(func(uintptr) bool {
		pid := 0
		for pid, werr = syscall.Wait4(p.Pid, &ws, syscall.WNOHANG, nil); werr == syscall.EINTR; {
			pid, werr = syscall.Wait4(p.Pid, &ws, syscall.WNOHANG, nil)
		}
		// Reaped, or an error: done. Still running: wait for the pidfd
		// to become readable, then try again.
		return werr != nil || pid == p.Pid
	}); err != nil {
		return 0, err
	}
	return ws, werr
}

func closeAll(fs ...*os.File) {
	for _, f := range fs {
		_ = f.Close()
	}
}

func (p *proc) wait(outR, errR *os.File, subreaper bool) {
	var reaped chan struct{}
	if subreaper {
		// Orphans that exit while it runs are collected as they go: each
		// exit of a child (re-parented ones included) is a SIGCHLD here.
		reaped = make(chan struct{})
		chld := make(chan os.Signal, 1)
		signal.Notify(chld, syscall.SIGCHLD)
		// No signal.Stop when it ends: it waits, in a loop of
		// runtime.Gosched, until the runtime's signal goroutine is idle,
		// which on a busy machine (hundreds of supervisors stopping at
		// once, each just sent SIGCHLD) burned a tenth of each
		// supervisor's CPU at exit. The notification stays; the
		// supervisor exits moments later, and a full channel drops the
		// signal rather than block.
		go func() {
			for {
				select {
				case <-reaped:
					return
				case <-chld:
					reapOrphans(p.pid)
				}
			}
		}()
	}
	ws, err := WaitPoll(p.cmd.Process)
	// The shell is gone; so must its children be: its group, and, under a
	// subreaper, whatever left the group (setsid) too.
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	if subreaper {
		close(reaped)
		killDescendants()
	}
	switch {
	case err != nil:
		p.exitCode = -1
	case ws.Signaled():
		p.exitCode = 128 + int(ws.Signal())
	default:
		p.exitCode = ws.ExitStatus()
	}
	drained := make(chan struct{})
	go func() { p.readers.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(drainTimeout):
		// A descendant in another session holds the pipes: stop reading.
		closeAll(outR, errR)
		<-drained
	}
	p.stdinMu.Lock()
	_ = p.stdin.Close()
	p.stdin = nil
	p.stdinMu.Unlock()
	close(p.done)
}

// ReadLines splits the output of one stream into lines and hands them out
// a read at a time, until f ends; then it closes f. With admit, the
// complete lines of a read that it does not admit are skipped before any
// copy is made of them.
func ReadLines(f *os.File, stream string, out func(string, []string), admit func(int) int) {
	defer f.Close()
	buf := make([]byte, readBuffer) // on the heap: a constant size would put it on the stack and grow it
	var (
		carry []byte
		lines []string
		busy  bool // the pipe was grown
		small int  // small reads in a row while busy
	)
	for {
		n, err := f.Read(buf)
		if n == len(buf) && len(buf) < maxReadBuffer {
			// A busy stream: fewer, larger reads (an idle one keeps the
			// small buffer). The next read fills the new one.
			grown := make([]byte, 4*len(buf))
			copy(grown, buf[:n])
			buf = grown
			if len(buf) == maxReadBuffer && !busy {
				busy = setPipeSize(f, busyPipeSize)
			}
		}
		if busy {
			if small++; n >= len(buf)/16 {
				small = 0
			} else if small == calmReads {
				// Calm again: the default pipe, and a small buffer.
				setPipeSize(f, 64<<10)
				busy, small = false, 0
				nb := make([]byte, readBuffer) // n < readBuffer: the read fits
				copy(nb, buf[:n])
				buf = nb
			}
		}
		if n > 0 {
			lines = lines[:0]
			data := buf[:n]
			keep := -1 // lines of this read still admitted (-1: all)
			if admit != nil {
				keep = admit(bytes.Count(data, nl))
			}
			for {
				if keep == 0 {
					// The rest of the complete lines are dropped: skipped at
					// once, not line by line, and never copied.
					if j := bytes.LastIndexByte(data, '\n'); j >= 0 {
						carry = carry[:0]
						data = data[j+1:]
					}
					break
				}
				i := bytes.IndexByte(data, '\n')
				if i < 0 {
					break
				}
				keep--
				seg := data[:i]
				if len(carry) > 0 {
					carry = append(carry, seg...)
					seg = carry
				}
				lines = splitLine(lines, bytes.TrimSuffix(seg, []byte{'\r'}))
				carry = carry[:0]
				data = data[i+1:]
			}
			carry = append(carry, data...)
			for len(carry) > MaxLine {
				cut := cutAt(carry, MaxLine)
				lines = append(lines, string(carry[:cut])+SplitMarker)
				carry = append(carry[:0], carry[cut:]...)
			}
			if len(lines) > 0 {
				out(stream, lines)
			}
		}
		if err != nil {
			if len(carry) > 0 {
				out(stream, splitLine(nil, carry))
			}
			return
		}
	}
}

var nl = []byte{'\n'}

// setPipeSize asks the kernel for a pipe capacity (F_SETPIPE_SZ), and says
// whether it was granted.
func setPipeSize(f *os.File, size int) bool {
	sc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	ok := false
	_ = sc.Control(func(fd uintptr) {
		_, e := unix.FcntlInt(fd, unix.F_SETPIPE_SZ, size)
		ok = e == nil
	})
	return ok
}

// splitLine appends line, cut into pieces of at most MaxLine bytes.
func splitLine(lines []string, line []byte) []string {
	for len(line) > MaxLine {
		cut := cutAt(line, MaxLine)
		lines = append(lines, string(line[:cut])+SplitMarker)
		line = line[cut:]
	}
	return append(lines, string(line))
}

// cutAt returns a cut point at or below max that does not split a UTF-8
// sequence (when the text is UTF-8).
func cutAt(b []byte, max int) int {
	for i := max; i > max-utf8.UTFMax && i > 0; i-- {
		if utf8.RuneStart(b[i]) {
			return i
		}
	}
	return max
}

func (p *proc) Pid() int                        { return p.pid }
func (p *proc) Done() <-chan struct{}           { return p.done }
func (p *proc) ExitCode() int                   { return p.exitCode }
func (p *proc) Signal(sig syscall.Signal) error { return signalGroup(p.pid, p.done, sig) }

// signalGroup sends sig to the process group pgid unless done is closed
// (the group may be gone, or its id taken by another).
func signalGroup(pgid int, done <-chan struct{}, sig syscall.Signal) error {
	select {
	case <-done:
		return nil
	default:
	}
	if err := syscall.Kill(-pgid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal process group: %w", err)
	}
	return nil
}

func (p *proc) WriteLine(line string) error {
	p.stdinMu.Lock()
	defer p.stdinMu.Unlock()
	if p.stdin == nil {
		return universe.Errorf(universe.ECONFLICT, "the instance is not running")
	}
	_ = p.stdin.SetWriteDeadline(time.Now().Add(stdinTimeout))
	buf := make([]byte, 0, len(line)+1)
	buf = append(append(buf, line...), '\n')
	_, err := p.stdin.Write(buf)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		return universe.Errorf(universe.EUNAVAILABLE, "the instance has not read its input for %s", stdinTimeout)
	default:
		return universe.Errorf(universe.ECONFLICT, "the instance does not accept input (it closed its stdin or exited)")
	}
}

// CheckDir says which working directory is missing, where starting a
// process in it would fail with exec's "fork/exec /bin/sh: no such file or
// directory", which names the shell instead of the folder.
func CheckDir(dir string) error {
	if dir == "" {
		return nil
	}
	st, err := os.Stat(dir)
	switch {
	case err != nil && os.IsNotExist(err):
		return universe.Errorf(universe.EINVALID, "start process: working directory %s does not exist", dir)
	case err != nil:
		return universe.Errorf(universe.EINVALID, "start process: working directory %s: %v", dir, err)
	case !st.IsDir():
		return universe.Errorf(universe.EINVALID, "start process: working directory %s is not a directory", dir)
	}
	return nil
}
