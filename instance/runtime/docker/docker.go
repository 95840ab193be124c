// Package docker is the "docker" runtime: an instance runs in a container
// of a Docker Engine, talked to through the Moby project's Go client
// (DOCKER_HOST and the other DOCKER_* variables are honoured; the API
// version is negotiated, so Debian's engine 20.10 with API 1.41 works).
//
// Like the other runtimes it runs inside the instance's supervisor, which
// keeps the container attached (stdin, stdout and stderr apart, no TTY)
// across restarts of the master. It lives in a package of its own so that
// the small supervisor binary, which runs the other runtimes, does not
// link the client: the master runs docker instances under its own binary.
//
// A container is created attached and waited for before it starts, so no
// output and no exit is missed, and it is removed as soon as it has
// exited and its exit code and OOM state are read: its output is already
// in the instance's log, and every start makes a new one.
package docker

import (
	"context"
	"errors"

	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"
	"mvdan.cc/sh/v3/shell"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/instance/runtime"
)

// Name is the runtime key of configurations.
const Name = "docker"

// Pull policies of dockerOptions.imagePullPolicy.
const (
	PullNever   = "never"
	PullMissing = "missing"
	PullAlways  = "always"
)

// Timeouts of calls to the engine.
const (
	pingTimeout   = 3 * time.Second
	callTimeout   = 30 * time.Second
	pullTimeout   = 10 * time.Minute
	stdinTimeout  = 5 * time.Second
	availableTTL  = 5 * time.Second
	oomChecks     = 100 // a 137 exit is looked at again up to this many times,
	oomCheckEvery = 50 * time.Millisecond
	unavailableTT = time.Second
)

// Runtime starts containers. The zero value is not usable: call New.
type Runtime struct {
	mu      sync.Mutex
	cli     *client.Client
	cliErr  error
	checked time.Time
	avail   error
}

// New returns the docker runtime; it connects on first use.
func New() *Runtime { return &Runtime{} }

// Name is "docker".
func (r *Runtime) Name() string { return Name }

func (r *Runtime) client() (*client.Client, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cli == nil && r.cliErr == nil {
		r.cli, r.cliErr = client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	}
	return r.cli, r.cliErr
}

// Available says why no engine can be used (none answers at DOCKER_HOST or
// the default socket), or nil. The answer is kept for a few seconds.
func (r *Runtime) Available() error {
	r.mu.Lock()
	if !r.checked.IsZero() && time.Since(r.checked) < ttl(r.avail) {
		defer r.mu.Unlock()
		return r.avail
	}
	r.mu.Unlock()
	err := r.ping()
	r.mu.Lock()
	r.checked, r.avail = time.Now(), err
	r.mu.Unlock()
	return err
}

func ttl(err error) time.Duration {
	if err != nil {
		return unavailableTT
	}
	return availableTTL
}

func (r *Runtime) ping() error {
	cli, err := r.client()
	if err != nil {
		return universe.Errorf(universe.EUNAVAILABLE, "docker is unavailable: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		return universe.Errorf(universe.EUNAVAILABLE, "docker is unavailable: no Docker Engine answers at %s (%s)", cli.DaemonHost(), firstLine(err))
	}
	return nil
}

// Version is the engine's version and API version, for GET /api/node.
func (r *Runtime) Version() (engine, api string, err error) {
	cli, err := r.client()
	if err != nil {
		return "", "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
	defer cancel()
	v, err := cli.ServerVersion(ctx)
	if err != nil {
		return "", "", err
	}
	return v.Version, v.APIVersion, nil
}

// Remove removes the container called name, running or not; a missing one
// is no error. The master calls it for an instance whose supervisor died.
func (r *Runtime) Remove(name string) error {
	cli, err := r.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	err = cli.ContainerRemove(ctx, name, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !client.IsErrNotFound(err) {
		return err
	}
	return nil
}

// Start creates the container of spec, attaches to it, starts it and
// returns it running. Errors name the image when it is missing.
func (r *Runtime) Start(spec runtime.Spec) (runtime.Process, error) {
	c := spec.Container
	if c == nil || c.Image == "" {
		return nil, universe.Errorf(universe.EINVALID, "the docker runtime needs an image")
	}
	cli, err := r.client()
	if err != nil {
		return nil, universe.Errorf(universe.EUNAVAILABLE, "docker is unavailable: %v", err)
	}
	if err := r.ensureImage(cli, c.Image, c.PullPolicy); err != nil {
		return nil, err
	}
	config, host, err := containerConfig(spec)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	// A container left by a supervisor that died is in the way: it is ours.
	_ = cli.ContainerRemove(ctx, c.Name, container.RemoveOptions{Force: true, RemoveVolumes: true})
	created, err := cli.ContainerCreate(ctx, config, host, nil, nil, c.Name)
	if err != nil {
		return nil, universe.Errorf(universe.EINVALID, "create container: %s", firstLine(err))
	}
	p := &proc{cli: cli, id: created.ID, name: c.Name, memoryMB: c.MemoryMB, done: make(chan struct{})}
	fail := func(format string, err error) (runtime.Process, error) {
		p.remove()
		return nil, universe.Errorf(universe.EINVALID, format, firstLine(err))
	}
	// Attached and waited for before it starts: nothing is missed.
	hj, err := cli.ContainerAttach(context.Background(), p.id, container.AttachOptions{Stream: true, Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		return fail("attach to the container: %s", err)
	}
	p.conn = hj.Conn
	waitCh, waitErr := cli.ContainerWait(context.Background(), p.id, container.WaitConditionNextExit)
	if err := cli.ContainerStart(ctx, p.id, container.StartOptions{}); err != nil {
		hj.Close()
		return fail("start the container: %s", err)
	}
	info, err := cli.ContainerInspect(ctx, p.id)
	if err != nil {
		hj.Close()
		return fail("inspect the container: %s", err)
	}
	if info.State != nil {
		p.pid = info.State.Pid
	}
	if info.Config != nil && len(info.Config.Entrypoint) > 0 && strings.TrimSpace(spec.Command) != "" {
		// The configuration's command replaces the image's CMD, not its
		// ENTRYPOINT: say so, since it is not what a command usually means.
		p.notes = append(p.notes, "the image's ENTRYPOINT "+strings.Join(info.Config.Entrypoint, " ")+" runs, with the command as its arguments")
	}
	// stdout and stderr arrive multiplexed on one stream: they are split
	// into two pipes, each read line by line as the process runtime does.
	outR, outW, err := os.Pipe()
	if err != nil {
		hj.Close()
		return fail("pipe: %s", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		hj.Close()
		_ = outR.Close()
		_ = outW.Close()
		return fail("pipe: %s", err)
	}
	var readers sync.WaitGroup
	readers.Add(3)
	go func() {
		defer readers.Done()
		_, _ = stdcopy.StdCopy(outW, errW, hj.Reader)
		_ = outW.Close()
		_ = errW.Close()
	}()
	for _, s := range []struct {
		f      *os.File
		stream string
	}{{outR, "stdout"}, {errR, "stderr"}} {
		go func() {
			defer readers.Done()
			runtime.ReadLines(s.f, s.stream, spec.Output, spec.Admit)
		}()
	}
	go p.wait(waitCh, waitErr, &readers, hj.Close)
	return p, nil
}

// ensureImage makes sure the image is there, as the pull policy says.
func (r *Runtime) ensureImage(cli *client.Client, ref, policy string) error {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if policy != PullAlways {
		_, err := cli.ImageInspect(ctx, ref)
		if err == nil {
			return nil
		}
		if !client.IsErrNotFound(err) {
			return universe.Errorf(universe.EUNAVAILABLE, "image %s: %s", ref, firstLine(err))
		}
		if policy == PullNever {
			return universe.Errorf(universe.EINVALID, "image %s is not on this node (imagePullPolicy never)", ref)
		}
	}
	pctx, pcancel := context.WithTimeout(context.Background(), pullTimeout)
	defer pcancel()
	rc, err := cli.ImagePull(pctx, ref, image.PullOptions{})
	if err == nil {
		err = jsonmessage.DisplayJSONMessagesStream(rc, io.Discard, 0, false, nil)
		_ = rc.Close()
	}
	if err != nil {
		if policy == PullAlways {
			return universe.Errorf(universe.EINVALID, "image %s cannot be pulled: %s", ref, firstLine(err))
		}
		return universe.Errorf(universe.EINVALID, "image %s is not on this node and cannot be pulled: %s", ref, firstLine(err))
	}
	return nil
}

// containerConfig turns spec into the engine's configuration.
func containerConfig(spec runtime.Spec) (*container.Config, *container.HostConfig, error) {
	c := spec.Container
	config := &container.Config{
		Image:        c.Image,
		Env:          spec.Env,
		WorkingDir:   c.WorkDir,
		User:         c.User,
		Labels:       c.Labels,
		OpenStdin:    true,
		AttachStdin:  true,
		AttachStdout: true,
		AttachStderr: true,
		ExposedPorts: nat.PortSet{},
	}
	if strings.TrimSpace(spec.Command) != "" {
		words, err := Words(spec.Command, spec.Env)
		if err != nil {
			return nil, nil, err
		}
		config.Cmd = words
	}
	host := &container.HostConfig{
		NetworkMode:  container.NetworkMode(c.NetworkMode),
		PortBindings: nat.PortMap{},
		CapDrop:      []string{"ALL"},
		CapAdd:       c.CapAdd,
		SecurityOpt:  []string{"no-new-privileges"},
		ExtraHosts:   c.ExtraHosts,
		Mounts:       []mount.Mount{{Type: mount.TypeBind, Source: spec.Dir, Target: c.WorkDir}},
	}
	for _, m := range c.Mounts {
		host.Mounts = append(host.Mounts, mount.Mount{Type: mount.TypeBind, Source: m.Host, Target: m.Container, ReadOnly: m.ReadOnly})
	}
	if c.MemoryMB > 0 {
		host.Memory = int64(c.MemoryMB) << 20
		host.MemorySwap = host.Memory // no swap beyond it
	}
	if c.CPU > 0 {
		host.NanoCPUs = int64(c.CPU) * 1e7 // 100 = one core
	}
	if host.NetworkMode != "host" {
		for _, p := range c.Ports {
			port, err := nat.NewPort(p.Protocol, strconv.Itoa(p.Port))
			if err != nil {
				return nil, nil, universe.Errorf(universe.EINVALID, "port %d/%s: %v", p.Port, p.Protocol, err)
			}
			config.ExposedPorts[port] = struct{}{}
			host.PortBindings[port] = []nat.PortBinding{{HostPort: strconv.Itoa(p.Port)}}
		}
	}
	return config, host, nil
}

// Words splits command into words as a shell would: quotes, escapes and
// $VARIABLES (from env); no shell runs in the container.
func Words(command string, env []string) ([]string, error) {
	vars := map[string]string{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[k] = v
		}
	}
	words, err := shell.Fields(command, func(k string) string { return vars[k] })
	if err != nil {
		return nil, universe.Errorf(universe.EINVALID, "command: %v", err)
	}
	if len(words) == 0 {
		return nil, universe.Errorf(universe.EINVALID, "command: no words")
	}
	return words, nil
}

// proc is a running container.
type proc struct {
	cli      *client.Client
	id, name string
	pid      int
	memoryMB int
	conn     net.Conn // the attach stream: stdin goes here
	stdinMu  sync.Mutex

	done     chan struct{}
	exitCode int
	reason   string
	killed   atomic.Bool // a SIGKILL was sent through Signal: a 137 is ours
	notes    []string    // said in the log at the start
}

// Notes are what the start has to say in the instance's log.
func (p *proc) Notes() []string { return p.notes }

func (p *proc) Pid() int              { return p.pid }
func (p *proc) Done() <-chan struct{} { return p.done }
func (p *proc) ExitCode() int         { return p.exitCode }
func (p *proc) ExitReason() string    { return p.reason }
func (p *proc) exited() bool          { return isClosed(p.done) }
func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// WriteLine writes line to the container's stdin.
func (p *proc) WriteLine(line string) error {
	if p.exited() {
		return universe.Errorf(universe.ECONFLICT, "the process has exited")
	}
	p.stdinMu.Lock()
	defer p.stdinMu.Unlock()
	_ = p.conn.SetWriteDeadline(time.Now().Add(stdinTimeout))
	_, err := io.WriteString(p.conn, line+"\n")
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return universe.Errorf(universe.EUNAVAILABLE, "the process does not read its input")
		}
		return universe.Errorf(universe.ECONFLICT, "the process has closed its input")
	}
	return nil
}

// Signal sends sig to the container's main process (the engine signals
// PID 1 of the container; it dies with its whole PID namespace).
func (p *proc) Signal(sig syscall.Signal) error {
	if p.exited() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if sig == syscall.SIGKILL {
		p.killed.Store(true)
	}
	if err := p.cli.ContainerKill(ctx, p.id, strconv.Itoa(int(sig))); err != nil && !p.exited() {
		if strings.Contains(err.Error(), "is not running") {
			return nil
		}
		return universe.Errorf(universe.EUNAVAILABLE, "signal the container: %s", firstLine(err))
	}
	return nil
}

// wait records the exit: the code, whether the memory limit killed it;
// then removes the container, once its output is read.
func (p *proc) wait(waitCh <-chan container.WaitResponse, errCh <-chan error, readers *sync.WaitGroup, closeAttach func()) {
	code := -1
	select {
	case res := <-waitCh:
		code = int(res.StatusCode)
	case err := <-errCh:
		// The engine restarted or the connection broke: poll until the
		// container is no longer running (or gone).
		code = p.pollExit(err)
	}
	// The engine may learn of an OOM kill after it reported the exit (on a
	// busy machine, more than a second after): a SIGKILL exit (137) of a
	// container with a memory limit is looked at again for up to 5 s
	// before it is taken as a plain kill, unless the kill was ours.
	for try := 0; ; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		info, err := p.cli.ContainerInspect(ctx, p.id)
		cancel()
		if err != nil || info.State == nil {
			break
		}
		if code < 0 {
			code = info.State.ExitCode
		}
		if info.State.OOMKilled {
			p.reason = "OOM-killed: the container went over its memory limit"
			if p.memoryMB > 0 {
				p.reason += " of " + strconv.Itoa(p.memoryMB) + " MiB"
			}
			break
		}
		if code != 137 || p.memoryMB == 0 || p.killed.Load() || try == oomChecks {
			break
		}
		time.Sleep(oomCheckEvery)
	}
	// The output ends with the container; a broken stream is cut short.
	drained := make(chan struct{})
	go func() { readers.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(5 * time.Second):
		closeAttach()
		<-drained
	}
	closeAttach()
	p.remove()
	p.exitCode = code
	close(p.done)
}

func (p *proc) pollExit(cause error) int {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		info, err := p.cli.ContainerInspect(ctx, p.id)
		cancel()
		switch {
		case client.IsErrNotFound(err):
			p.reason = "the container disappeared (" + firstLine(cause) + ")"
			return -1
		case err == nil && info.State != nil && !info.State.Running && !info.State.Restarting:
			return info.State.ExitCode
		}
		time.Sleep(time.Second)
	}
}

func (p *proc) remove() {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	_ = p.cli.ContainerRemove(ctx, p.id, container.RemoveOptions{Force: true, RemoveVolumes: true})
}

// firstLine is the first line of err's message, without the client's
// prefixes: engine errors can be long.
func firstLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimPrefix(s, "Error response from daemon: ")
	return s
}
