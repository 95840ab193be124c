package docker_test

import (
	"bufio"
	"context"
	"net"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/client"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/instance/runtime"
	"github.com/universe-orchestrator/universe/instance/runtime/docker"
	"github.com/universe-orchestrator/universe/instance/runtime/docker/dockertest"
)

func TestWords(t *testing.T) {
	env := []string{"PORT=25565", "NAME=a b"}
	for _, tc := range []struct {
		in   string
		want []string
		err  bool
	}{
		{"/echo -port 1", []string{"/echo", "-port", "1"}, false},
		{`/echo "two words" 'single $PORT' plain\ space`, []string{"/echo", "two words", "single $PORT", "plain space"}, false},
		{"/echo -port $PORT --name=\"$NAME\"", []string{"/echo", "-port", "25565", "--name=a b"}, false},
		{`/echo "unclosed`, nil, true},
		{"/echo $(id)", nil, true},
		{"   ", nil, true},
	} {
		got, err := docker.Words(tc.in, env)
		if (err != nil) != tc.err || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Words(%q) = %q, %v; want %q (error %v)", tc.in, got, err, tc.want, tc.err)
		}
		if err != nil && universe.ErrorCode(err) != universe.EINVALID {
			t.Errorf("Words(%q): %v is not EINVALID", tc.in, err)
		}
	}
}

type output struct {
	mu    sync.Mutex
	lines map[string][]string
}

func (o *output) add(stream string, lines []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.lines == nil {
		o.lines = map[string][]string{}
	}
	o.lines[stream] = append(o.lines[stream], lines...)
}

// wait waits until stream has a line with prefix, and returns it.
func (o *output) wait(t *testing.T, stream, prefix string) string {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		o.mu.Lock()
		for _, l := range o.lines[stream] {
			if strings.HasPrefix(l, prefix) {
				o.mu.Unlock()
				return l
			}
		}
		o.mu.Unlock()
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	t.Fatalf("no %s line %q; got %q", stream, prefix, o.lines)
	return ""
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// start runs the test image with command under name, memory limit memMB.
func start(t *testing.T, name, command string, memMB, port int) (runtime.Process, *output) {
	t.Helper()
	img := dockertest.Image(t)
	o := &output{}
	spec := runtime.Spec{
		Dir: t.TempDir(), Command: command, Env: []string{"UNIVERSE_INSTANCE_ID=" + name}, Output: o.add,
		Container: &runtime.ContainerSpec{
			Name: "universe-test-" + name, Image: img, WorkDir: "/data", PullPolicy: docker.PullNever, MemoryMB: memMB, CPU: 50,
			Labels: map[string]string{"universe.instance": name},
		},
	}
	if port > 0 {
		spec.Container.Ports = []runtime.Port{{Port: port, Protocol: "tcp"}}
	}
	p, err := docker.New().Start(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Signal(syscall.SIGKILL); <-p.Done() })
	return p, o
}

func done(t *testing.T, p runtime.Process) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the container did not exit")
	}
}

func gone(t *testing.T, name string) {
	t.Helper()
	cli := dockertest.Client(t)
	if _, err := cli.ContainerInspect(context.Background(), name); !client.IsErrNotFound(err) {
		t.Errorf("container %s is still there after the exit (%v)", name, err)
	}
}

func TestContainerLifecycle(t *testing.T) {
	port := freePort(t)
	p, o := start(t, "life", "/echo -port "+strconv.Itoa(port)+" one 'two words'", 64, port)
	if got := o.wait(t, "stdout", "ready "); got != "ready life in /data args one,two words" {
		t.Errorf("first line %q", got)
	}
	o.wait(t, "stderr", "stderr hello")
	if p.Pid() <= 0 {
		t.Errorf("pid %d", p.Pid())
	}
	for i := 0; i < 3; i++ { // stdin, repeatedly
		if err := p.WriteLine("hi " + strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
		o.wait(t, "stdout", "echo: hi "+strconv.Itoa(i))
	}
	if err := p.WriteLine("err on stderr"); err != nil {
		t.Fatal(err)
	}
	o.wait(t, "stderr", "on stderr")
	// The port is published under the same number.
	var hello string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err != nil {
			continue
		}
		hello, _ = bufio.NewReader(c).ReadString('\n')
		_ = c.Close()
		if hello != "" {
			break
		}
	}
	if hello != "hello life\n" {
		t.Errorf("port %d answered %q", port, hello)
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done(t, p)
	o.wait(t, "stdout", "bye")
	if p.ExitCode() != 0 {
		t.Errorf("exit code %d after SIGTERM", p.ExitCode())
	}
	gone(t, "universe-test-life")
	if err := p.WriteLine("late"); universe.ErrorCode(err) != universe.ECONFLICT {
		t.Errorf("stdin after the exit: %v, want a conflict", err)
	}
}

func TestContainerExitCodeAndImageCommand(t *testing.T) {
	p, o := start(t, "code", "", 0, 0) // the image's own command
	o.wait(t, "stdout", "ready code in /data args image-default")
	if err := p.WriteLine("exit 7"); err != nil {
		t.Fatal(err)
	}
	done(t, p)
	if p.ExitCode() != 7 {
		t.Errorf("exit code %d, want 7", p.ExitCode())
	}
	gone(t, "universe-test-code")
}

func TestContainerMemoryLimitKills(t *testing.T) {
	p, o := start(t, "hog", "/echo", 32, 0)
	o.wait(t, "stdout", "ready")
	if err := p.WriteLine("hog"); err != nil {
		t.Fatal(err)
	}
	done(t, p)
	reason := p.(runtime.ExitReasoner).ExitReason()
	if p.ExitCode() != 137 || !strings.Contains(reason, "OOM-killed") || !strings.Contains(reason, "32 MiB") {
		t.Errorf("exit code %d, reason %q; want 137 and OOM-killed", p.ExitCode(), reason)
	}
	gone(t, "universe-test-hog")
}

func TestMissingImage(t *testing.T) {
	dockertest.Client(t)
	for _, policy := range []string{docker.PullNever, docker.PullMissing} {
		_, err := docker.New().Start(runtime.Spec{Dir: t.TempDir(), Output: func(string, []string) {},
			Container: &runtime.ContainerSpec{Name: "universe-test-missing", Image: "universe-test-missing:none", WorkDir: "/data", PullPolicy: policy}})
		if err == nil || !strings.Contains(err.Error(), "universe-test-missing:none") {
			t.Errorf("policy %s: %v, want an error naming the image", policy, err)
		}
	}
}

func TestAvailable(t *testing.T) {
	dockertest.Client(t)
	if err := docker.New().Available(); err != nil {
		t.Fatalf("an engine answers, yet: %v", err)
	}
	t.Setenv("DOCKER_HOST", "unix://"+t.TempDir()+"/none.sock")
	err := docker.New().Available()
	if err == nil || !strings.Contains(err.Error(), "docker is unavailable") || !strings.Contains(err.Error(), "none.sock") {
		t.Fatalf("no engine: %v", err)
	}
}

// A configuration's command runs as the arguments of an image's
// ENTRYPOINT, not instead of it: the start says so.
func TestEntrypointIsSaid(t *testing.T) {
	dockertest.Image(t) // builds both images
	o := &output{}
	spec := runtime.Spec{
		Dir: t.TempDir(), Command: "hello", Env: []string{"UNIVERSE_INSTANCE_ID=entry"}, Output: o.add,
		Container: &runtime.ContainerSpec{Name: "universe-test-entry", Image: dockertest.EntrypointTag, WorkDir: "/data", PullPolicy: docker.PullNever,
			Labels: map[string]string{"universe.instance": "entry"}},
	}
	p, err := docker.New().Start(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Signal(syscall.SIGKILL); <-p.Done() })
	o.wait(t, "stdout", "ready entry in /data args entry,hello")
	n, ok := p.(interface{ Notes() []string })
	if !ok || len(n.Notes()) != 1 || !strings.Contains(n.Notes()[0], "ENTRYPOINT /echo entry runs, with the command as its arguments") {
		t.Fatalf("the start's notes: %v", n)
	}
}
