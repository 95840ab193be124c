package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	universe "github.com/universe-orchestrator/universe"
)

// The tmux and screen runtimes run the command in a terminal multiplexer
// session, so that an operator can attach to it ("tmux attach -t
// universe-<id>", "screen -r universe-<id>"), while the supervisor still
// gets every line of output, stdin, signals and the exit code:
//
//   - The session's command is this binary in its exec-helper mode
//     (HelperCommand). It reads the command and the exact environment from
//     a 0600 file the supervisor wrote, so the environment is the
//     instance's own even when a tmux server with another environment
//     already runs; joins the instance's cgroup; writes its pid; waits on
//     a gate FIFO; then execs /bin/sh, which runs the command and records
//     its exit status in a file.
//   - Output: tmux pipe-pane, or screen's log with flush 0, writes what the
//     program writes to its terminal into a FIFO the supervisor reads line
//     by line (every line, not a screen capture). The gate opens only once
//     that pipe is in place, so no first line is missed.
//   - Stdin: tmux send-keys, screen readbuf+paste; the terminal's echo is
//     off, so input does not show up as output.
//   - Exit: a pidfd of the helper's pid (the shell after exec).
//
// Since the runtime lives in the supervisor, re-adoption after a master
// restart works as for "process".

// Files of a mux runtime in the state directory.
const (
	muxExecFile = "mux.exec.json" // what the helper runs (0600, removed once read)
	muxOutFile  = "mux.out"       // FIFO: terminal output
	muxGateFile = "mux.gate"      // FIFO: the helper waits on it
	muxPidFile  = "mux.pid"       // the helper's pid
	muxExitFile = "mux.exit"      // the command's exit status
	muxErrFile  = "mux.err"       // why the helper failed
	muxInFile   = "mux.in"        // screen: the line to paste (0600)
	muxRCFile   = "mux.screenrc"  // screen: its configuration
)

// muxStartTimeout bounds starting a session up to the opened gate.
const muxStartTimeout = 10 * time.Second

// muxCmdTimeout bounds each tmux or screen command.
const muxCmdTimeout = 5 * time.Second

// HelperCommand is the hidden subcommand of the exec helper: the session
// runs "<binary> supervise-exec <state dir>".
const HelperCommand = "supervise-exec"

// muxShell runs the command ($1) and writes its exit status to $2. It
// catches the signals meant for the command (it gets them too, being in
// the same process group) so that it lives to write the status.
const muxShell = `trap : HUP INT TERM QUIT
stty -echo 2>/dev/null
/bin/sh -c "$1"
echo $? > "$2"`

// helperSpec is what the helper runs.
type helperSpec struct {
	Dir     string   `json:"dir"`
	Command string   `json:"command"`
	Env     []string `json:"env"`
	Cgroup  string   `json:"cgroup,omitempty"`
}

// muxRuntime is tmux or screen.
type muxRuntime struct {
	name string
}

// NewTmux returns the tmux runtime.
func NewTmux() Runtime { return &muxRuntime{name: "tmux"} }

// NewScreen returns the screen runtime.
func NewScreen() Runtime { return &muxRuntime{name: "screen"} }

func (r *muxRuntime) Name() string { return r.name }

// Available says that the program is missing, if it is.
func (r *muxRuntime) Available() error {
	if _, err := exec.LookPath(r.name); err != nil {
		return universe.Errorf(universe.EINVALID, "runtime %s needs the program %s, which is not installed on this machine", r.name, r.name)
	}
	return nil
}

type muxProc struct {
	rt     *muxRuntime
	dir    string
	target string // the session, as the program's -t or -S wants it
	pid    int
	screen *exec.Cmd // screen: the SCREEN process, our child

	out, keep *os.File      // the output FIFO, and a write end held until the exit
	readDone  chan struct{} // closed when the output is read to its end

	inMu     sync.Mutex
	done     chan struct{}
	exitCode int
	killedBy atomic.Int32 // the last signal we sent, for an exit the shell could not record
}

// TmuxSocket is the name of Universe's own tmux server socket (tmux -L):
// instances never land on a tmux server the master happened to inherit.
// Attach with: tmux -L universe attach -t universe-<id>
const TmuxSocket = "universe"

// Start starts spec in a new session named after spec.Name.
func (r *muxRuntime) Start(spec Spec) (Process, error) {
	if err := r.Available(); err != nil {
		return nil, err
	}
	if err := CheckDir(spec.Dir); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own binary: %w", err)
	}
	dir := spec.StateDir
	for _, f := range []string{muxExecFile, muxOutFile, muxGateFile, muxPidFile, muxExitFile, muxErrFile, muxInFile, muxRCFile} {
		_ = os.Remove(filepath.Join(dir, f))
	}
	b, _ := json.Marshal(helperSpec{Dir: spec.Dir, Command: spec.Command, Env: spec.Env, Cgroup: spec.Cgroup})
	if err := os.WriteFile(filepath.Join(dir, muxExecFile), b, 0o600); err != nil {
		return nil, fmt.Errorf("write exec file: %w", err)
	}
	for _, f := range []string{muxOutFile, muxGateFile} {
		if err := unix.Mkfifo(filepath.Join(dir, f), 0o600); err != nil {
			return nil, fmt.Errorf("create fifo: %w", err)
		}
	}
	p := &muxProc{rt: r, dir: dir, readDone: make(chan struct{}), done: make(chan struct{})}
	// The read end first (a non-blocking open needs no writer), then a
	// write end of our own, so that reading sees no end of file before the
	// multiplexer opens the FIFO, nor after it closes it early.
	if p.out, err = os.OpenFile(filepath.Join(dir, muxOutFile), os.O_RDONLY|syscall.O_NONBLOCK, 0); err != nil {
		return nil, fmt.Errorf("open output fifo: %w", err)
	}
	if p.keep, err = os.OpenFile(filepath.Join(dir, muxOutFile), os.O_WRONLY|syscall.O_NONBLOCK, 0); err != nil {
		_ = p.out.Close()
		return nil, fmt.Errorf("open output fifo: %w", err)
	}
	name := sessionName(spec.Name)
	if err := p.launch(self, name); err != nil {
		if why := p.helperError(); why != "" { // it failed before the session was set up
			err = universe.Errorf(universe.EINVALID, "start %s session: %s", r.name, why)
		}
		p.abort()
		return nil, err
	}
	if err := p.openGate(); err != nil {
		p.abort()
		return nil, err
	}
	go func() {
		defer close(p.readDone)
		ReadLines(p.out, "stdout", spec.Output, spec.Admit)
	}()
	go p.wait()
	return p, nil
}

// sessionName makes name usable as a tmux or screen session name.
func sessionName(name string) string {
	if name == "" {
		name = "universe"
	}
	return strings.NewReplacer(".", "_", ":", "_", " ", "_").Replace(name)
}

// launch creates the session and connects its output to the FIFO.
// The helper enters the working directory, so that a missing one is
// reported as such.
func (p *muxProc) launch(self, name string) error {
	fifo := filepath.Join(p.dir, muxOutFile)
	switch p.rt.name {
	case "tmux":
		p.target = "=" + name + ":"
		_ = p.run("kill-session", "-t", "="+name) // a stale session of an earlier run
		if err := p.run("new-session", "-d", "-s", name, "-x", "200", "-y", "50", self, HelperCommand, p.dir); err != nil {
			return err
		}
		return p.run("pipe-pane", "-O", "-t", p.target, "exec cat > "+shellQuote(fifo))
	default: // screen
		rc := "logfile flush 0\nscrollback 1000\n"
		if err := os.WriteFile(filepath.Join(p.dir, muxRCFile), []byte(rc), 0o600); err != nil {
			return fmt.Errorf("write screenrc: %w", err)
		}
		c := exec.Command("screen", "-c", filepath.Join(p.dir, muxRCFile), "-L", "-Logfile", fifo, "-D", "-m", "-S", name, self, HelperCommand, p.dir)
		c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := c.Start(); err != nil {
			return universe.Errorf(universe.EINVALID, "start screen: %v", err)
		}
		p.screen = c
		p.target = strconv.Itoa(c.Process.Pid) + "." + name
		return nil
	}
}

// openGate waits until the helper waits on the gate, then lets it run and
// learns its pid.
func (p *muxProc) openGate() error {
	gate := filepath.Join(p.dir, muxGateFile)
	opened := make(chan error, 1)
	go func() {
		f, err := os.OpenFile(gate, os.O_WRONLY, 0) // blocks until the helper opens it
		if err == nil {
			_, err = f.Write([]byte("go\n"))
			_ = f.Close()
		}
		opened <- err
	}()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(muxStartTimeout)
	for {
		select {
		case err := <-opened:
			if err != nil {
				return fmt.Errorf("open gate: %w", err)
			}
			b, err := os.ReadFile(filepath.Join(p.dir, muxPidFile))
			if err != nil {
				return fmt.Errorf("read helper pid: %w", err)
			}
			if p.pid, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil || p.pid <= 0 {
				return fmt.Errorf("bad helper pid %q", b)
			}
			return nil
		case <-tick.C:
		}
		why := p.helperError()
		switch {
		case why != "":
		case p.screen != nil && isZombie(p.screen.Process.Pid):
			why = "screen exited"
		case time.Now().After(deadline):
			why = "the session did not start its command in " + muxStartTimeout.String()
		}
		if why != "" {
			// Release the blocked open, if it still is.
			if f, err := os.OpenFile(gate, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
				<-opened
				_ = f.Close()
			}
			return universe.Errorf(universe.EINVALID, "start %s session: %s", p.rt.name, why)
		}
	}
}

// helperError is why the helper failed, if it did.
func (p *muxProc) helperError() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, muxErrFile))
	return strings.TrimSpace(string(b))
}

// abort undoes a failed start.
func (p *muxProc) abort() {
	if p.rt.name == "tmux" && p.target != "" {
		_ = p.run("kill-session", "-t", strings.TrimSuffix(p.target, ":"))
	}
	if p.screen != nil {
		_ = p.screen.Process.Kill()
		_ = p.screen.Wait()
	}
	_ = p.keep.Close()
	_ = p.out.Close()
	p.cleanFiles()
}

func (p *muxProc) cleanFiles() {
	for _, f := range []string{muxExecFile, muxOutFile, muxGateFile, muxPidFile, muxExitFile, muxErrFile, muxInFile, muxRCFile} {
		_ = os.Remove(filepath.Join(p.dir, f))
	}
}

// run runs one command of the multiplexer. (screen -X only sends the
// command; screenQuery waits until the session has done what was sent.)
func (p *muxProc) run(args ...string) error {
	if p.rt.name == "screen" {
		args = append([]string{"-S", p.target, "-X"}, args...)
	}
	return p.exec(args...)
}

// screenQuery asks the screen session something and waits for the answer,
// by which time it has carried out every command sent before.
func (p *muxProc) screenQuery(args ...string) error {
	return p.exec(append([]string{"-S", p.target, "-Q"}, args...)...)
}

func (p *muxProc) exec(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), muxCmdTimeout)
	defer cancel()
	if p.rt.name == "tmux" {
		args = append([]string{"-L", TmuxSocket}, args...)
	}
	c := exec.CommandContext(ctx, p.rt.name, args...)
	c.Env = withoutVar(os.Environ(), "TMUX") // never the server of a tmux we run inside
	out, err := c.CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if msg == "" {
			msg = err.Error()
		}
		what := args[0]
		if p.rt.name == "tmux" {
			what = args[2] // after -L <socket>
		}
		if p.rt.name == "screen" && len(args) > 3 {
			what = args[3] // after -S <session> -X|-Q
		}
		return universe.Errorf(universe.EINVALID, "%s %s: %s", p.rt.name, what, msg)
	}
	return nil
}

// wait waits for the helper's shell to exit, then for its output.
func (p *muxProc) wait() {
	waitPid(p.pid)
	// What it left behind in its group goes with it, as with "process".
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	_ = p.keep.Close()
	select {
	case <-p.readDone:
	case <-time.After(drainTimeout):
		_ = p.out.Close() // something still holds the FIFO open
		<-p.readDone
	}
	p.exitCode = -1
	if b, err := os.ReadFile(filepath.Join(p.dir, muxExitFile)); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			p.exitCode = n
		}
	} else if sig := p.killedBy.Load(); sig != 0 {
		p.exitCode = 128 + int(sig) // killed before its shell could say so
	}
	if p.rt.name == "tmux" {
		_ = p.run("kill-session", "-t", strings.TrimSuffix(p.target, ":")) // in case remain-on-exit kept it
	} else {
		go func() { // SCREEN ends with its only window
			t := time.AfterFunc(drainTimeout, func() { _ = p.screen.Process.Kill() })
			_ = p.screen.Wait()
			t.Stop()
		}()
	}
	p.inMu.Lock()
	close(p.done)
	p.inMu.Unlock()
	p.cleanFiles()
}

// waitPid returns once pid has exited (a process that is not our child).
func waitPid(pid int) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err == nil {
		defer unix.Close(fd)
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			if _, err := unix.Poll(fds, -1); err == nil || !errors.Is(err, unix.EINTR) {
				return
			}
		}
	}
	for syscall.Kill(pid, 0) == nil && !isZombie(pid) {
		time.Sleep(200 * time.Millisecond)
	}
}

func isZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && b[i+2] == 'Z'
}

func (p *muxProc) Pid() int              { return p.pid }
func (p *muxProc) Done() <-chan struct{} { return p.done }
func (p *muxProc) ExitCode() int         { return p.exitCode }

func (p *muxProc) Signal(sig syscall.Signal) error {
	if sig == syscall.SIGKILL || sig == syscall.SIGTERM {
		p.killedBy.Store(int32(sig))
	}
	return signalGroup(p.pid, p.done, sig)
}

// WriteLine types line and Enter into the session.
func (p *muxProc) WriteLine(line string) error {
	p.inMu.Lock()
	defer p.inMu.Unlock()
	select {
	case <-p.done:
		return universe.Errorf(universe.ECONFLICT, "the instance is not running")
	default:
	}
	var err error
	if p.rt.name == "tmux" {
		if err = p.run("send-keys", "-t", p.target, "-l", "--", line); err == nil {
			err = p.run("send-keys", "-t", p.target, "Enter")
		}
	} else {
		in := filepath.Join(p.dir, muxInFile)
		if err = os.WriteFile(in, []byte(line+"\n"), 0o600); err == nil {
			if err = p.run("readbuf", in); err == nil {
				if err = p.run("paste", "."); err == nil {
					err = p.screenQuery("number") // the file is read before it goes
				}
			}
			_ = os.Remove(in)
		}
	}
	if err != nil {
		return universe.Errorf(universe.ECONFLICT, "the instance does not accept input (%s)", universe.ErrorMessage(err))
	}
	return nil
}

// withoutVar returns env without the variable name.
func withoutVar(env []string, name string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// shellQuote quotes s for /bin/sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// RunIfHelper runs the exec helper and never returns when this process was
// started as one ("<binary> supervise-exec <dir>"); otherwise it returns
// at once. Binaries and test binaries that start tmux or screen instances
// call it first (supervisor.RunIfChild does).
func RunIfHelper() {
	if len(os.Args) == 3 && os.Args[1] == HelperCommand {
		os.Exit(helperMain(os.Args[2]))
	}
}

// helperMain prepares and execs the command; it returns only on failure.
func helperMain(dir string) int {
	fail := func(format string, args ...any) int {
		msg := fmt.Sprintf(format, args...)
		_ = os.WriteFile(filepath.Join(dir, muxErrFile), []byte(msg+"\n"), 0o600)
		fmt.Fprintln(os.Stderr, "universe:", msg)
		return 1
	}
	path := filepath.Join(dir, muxExecFile)
	b, err := os.ReadFile(path)
	_ = os.Remove(path) // it holds the environment, the instance key among it
	if err != nil {
		return fail("cannot read what to run: %v", err)
	}
	var spec helperSpec
	if err := json.Unmarshal(b, &spec); err != nil {
		return fail("cannot read what to run: %v", err)
	}
	if spec.Cgroup != "" {
		// Join the instance's cgroup before the command starts.
		if err := os.WriteFile(filepath.Join(spec.Cgroup, "cgroup.procs"), []byte("0"), 0); err != nil {
			return fail("cannot join the cgroup: %v", err)
		}
	}
	if err := os.Chdir(spec.Dir); err != nil {
		return fail("cannot enter the working directory: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, muxPidFile), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		return fail("cannot write the pid: %v", err)
	}
	gate, err := os.Open(filepath.Join(dir, muxGateFile)) // blocks until the supervisor is ready
	if err != nil {
		return fail("cannot open the gate: %v", err)
	}
	buf := make([]byte, 8)
	n, _ := gate.Read(buf)
	_ = gate.Close()
	if string(buf[:n]) != "go\n" {
		return fail("the supervisor gave up")
	}
	env := spec.Env
	if t := os.Getenv("TERM"); t != "" && !hasKey(env, "TERM") {
		env = append(env, "TERM="+t)
	}
	err = syscall.Exec("/bin/sh", []string{"sh", "-c", muxShell, "sh", spec.Command, filepath.Join(dir, muxExitFile)}, env)
	return fail("cannot run /bin/sh: %v", err)
}

func hasKey(env []string, key string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, key+"=") {
			return true
		}
	}
	return false
}
