package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/instance/runtime/docker/dockertest"
)

// TestDockerInstanceEndToEnd runs an instance in a real container of a
// real engine under a child master: ONLINE, its port answers, stdin is
// echoed (stdout and stderr apart), the live-log follows; the master is
// SIGKILLed and started again: the container is re-adopted untouched and
// no line is lost; the memory limit kills a hog with OOM as the reason and
// the restart policy starts it again; a stop leaves no container.
func TestDockerInstanceEndToEnd(t *testing.T) {
	img := dockertest.Image(t)
	dc := dockertest.Client(t)
	dir := t.TempDir()
	code, out, errOut := cli(t, "key", "create", "admin", "ALL", "--data", dir)
	if code != 0 {
		t.Fatalf("key create: %s", errOut)
	}
	admin := tokenRE.FindString(out)
	port := freePort(t)
	m1 := startChildMaster(t, dir, port)
	base := m1.base
	instPort := freePort(t)
	var ids []string
	t.Cleanup(func() { removeContainers(dc, ids) })

	cfg, _ := json.Marshal(api.Configuration{
		Runtime: "docker", Image: img, Command: "/echo -port %PORT% -tick 20ms",
		RAMMB: 32, CPU: 50, AvailablePorts: api.Ports{Min: instPort, Max: instPort},
		RestartPolicy: api.RestartOnFailure, StopTimeoutSeconds: 5,
		DockerOptions: &api.DockerOptions{ImagePullPolicy: "never"},
	})
	jsonReq[any](t, "PUT", base+"/api/configurations/box", admin, string(cfg), 204)
	info := jsonReq[api.InstanceInfo](t, "POST", base+"/api/instances", admin, `{"configurationName":"box"}`, 201)
	ids = append(ids, info.ID)
	if info.State != "ONLINE" || info.ProcessPid == nil || info.Runtime != "docker" || !info.LimitsEnforced {
		t.Fatalf("create: %+v", info)
	}
	pid := *info.ProcessPid
	node := jsonReq[api.Node](t, "GET", base+"/api/node", admin, "", 200)
	var dockerRT *api.RuntimeInfo
	for i := range node.Runtimes {
		if node.Runtimes[i].Name == "docker" {
			dockerRT = &node.Runtimes[i]
		}
	}
	if dockerRT == nil || !dockerRT.Available || !dockerRT.LimitsEnforced {
		t.Fatalf("GET /api/node runtimes: %+v", node.Runtimes)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	f := &logFollower{t: t, id: info.ID, frames: follow(t, ctx, base, admin, info.ID, "lines=10000")}
	has := func(stream, prefix string) func() bool {
		return func() bool {
			for _, l := range f.seen {
				if l.Stream == stream && strings.HasPrefix(l.Line, prefix) {
					return true
				}
			}
			return false
		}
	}
	f.collect(has("stdout", "ready "+info.ID+" in /data"))
	f.collect(has("stderr", "stderr hello"))
	for i := 0; i < 2; i++ {
		jsonReq[any](t, "POST", base+"/api/instances/"+info.ID+"/execute", admin, `{"command":"hi `+strconv.Itoa(i)+`"}`, 204)
		f.collect(has("stdout", "echo: hi "+strconv.Itoa(i)))
	}
	if got := dial(t, instPort); got != "hello "+info.ID {
		t.Fatalf("port %d answered %q", instPort, got)
	}
	// The container holds the instance's own key and nothing of the
	// operator's token.
	c, err := dc.ContainerInspect(ctx, "universe-"+info.ID)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(c)
	if strings.Contains(string(raw), admin) || !strings.Contains(strings.Join(c.Config.Env, "\n"), "UNIVERSE_API_KEY=unv_") ||
		c.Config.Labels["universe.instance"] != info.ID || c.Config.Labels["universe.configuration"] != "box" {
		t.Fatalf("docker inspect: env %q labels %v", c.Config.Env, c.Config.Labels)
	}
	f.collect(func() bool { return f.lastSeq > 30 })

	// Master SIGKILL: the container runs on; the next master re-adopts it.
	m1.signal(syscall.SIGKILL)
	time.Sleep(300 * time.Millisecond) // ticks go on with no master
	m2 := startChildMaster(t, dir, port)
	got := jsonReq[api.InstanceInfo](t, "GET", base+"/api/instances/"+info.ID, admin, "", 200)
	if got.State != "ONLINE" || got.ProcessPid == nil || *got.ProcessPid != pid {
		t.Fatalf("after the master restart: %+v (pid was %d)", got, pid)
	}
	f.frames = follow(t, ctx, base, admin, info.ID, "since="+strconv.FormatUint(f.lastSeq, 10))
	jsonReq[any](t, "POST", base+"/api/instances/"+info.ID+"/execute", admin, `{"command":"after"}`, 204)
	f.collect(has("stdout", "echo: after"))
	f.collect(func() bool { return f.lastSeq > 80 })
	f.checkContiguous()

	// The memory limit kills a hog; the restart policy starts it again.
	jsonReq[any](t, "POST", base+"/api/instances/"+info.ID+"/execute", admin, `{"command":"hog"}`, 204)
	f.collect(has("system", "OOM-killed"))
	waitFor(t, "the restart policy to start the instance again", 30*time.Second, func() bool {
		cur := jsonReq[api.InstanceInfo](t, "GET", base+"/api/instances/"+info.ID, admin, "", 200)
		return cur.State == "ONLINE" && cur.ProcessPid != nil && *cur.ProcessPid != pid
	})

	// A supervisor that dies leaves its container behind: the master
	// removes it (the instance is lost) and the policy starts a new one;
	// never two containers of one instance.
	restarted := jsonReq[api.InstanceInfo](t, "GET", base+"/api/instances/"+info.ID, admin, "", 200)
	killSupervisorsUnder(dir)
	waitFor(t, "the policy to replace the lost instance", 30*time.Second, func() bool {
		cur := jsonReq[api.InstanceInfo](t, "GET", base+"/api/instances/"+info.ID, admin, "", 200)
		return cur.State == "ONLINE" && cur.ProcessPid != nil && *cur.ProcessPid != *restarted.ProcessPid
	})
	if left := containersOf(dc, info.ID); len(left) != 1 {
		t.Fatalf("containers of the instance after its supervisor was lost: %v", left)
	}
	if !strings.Contains(strings.Join(systemLines(t, base, admin, info.ID), "\n"), "supervisor lost") {
		t.Fatal("the log does not say the supervisor was lost")
	}

	// A stop leaves no container.
	jsonReq[any](t, "POST", base+"/api/instances/"+info.ID+"/stop", admin, "", 202)
	waitFor(t, "the instance to stop", 20*time.Second, func() bool {
		return jsonReq[api.InstanceInfo](t, "GET", base+"/api/instances/"+info.ID, admin, "", 200).State == "STOPPED"
	})
	if left := containersOf(dc, info.ID); len(left) > 0 {
		t.Fatalf("containers left after the stop: %v", left)
	}

	// A missing image: OFFLINE with a reason naming it, never CREATING.
	cfg, _ = json.Marshal(api.Configuration{Runtime: "docker", Image: "universe-test-missing:none", AvailablePorts: api.Ports{Min: 21890, Max: 21899},
		DockerOptions: &api.DockerOptions{ImagePullPolicy: "never"}})
	jsonReq[any](t, "PUT", base+"/api/configurations/nothing", admin, string(cfg), 204)
	missing := jsonReq[api.InstanceInfo](t, "POST", base+"/api/instances", admin, `{"configurationName":"nothing"}`, 201)
	ids = append(ids, missing.ID)
	waitFor(t, "the instance of a missing image to be OFFLINE", 20*time.Second, func() bool {
		cur := jsonReq[api.InstanceInfo](t, "GET", base+"/api/instances/"+missing.ID, admin, "", 200)
		return cur.State == "OFFLINE" && strings.Contains(cur.Reason, "universe-test-missing:none")
	})
	m2.signal(syscall.SIGTERM)
}

// systemLines are the system lines of an instance's log.
func systemLines(t *testing.T, base, token, id string) []string {
	logs := jsonReq[api.LogEntries](t, "GET", base+"/api/instances/"+id+"/logs?format=entries&lines=10000", token, "", 200)
	var out []string
	for _, l := range logs.Entries {
		if l.Stream == api.StreamSystem {
			out = append(out, l.Line)
		}
	}
	return out
}

func dial(t *testing.T, port int) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err != nil {
			continue
		}
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		_ = c.Close()
		if line != "" {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

// containersOf lists the containers (any state) labelled with instance id.
func containersOf(cli dockerLister, id string) []string {
	list, err := cli.ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", "universe.instance="+id))})
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, c := range list {
		out = append(out, strings.Join(c.Names, ",")+" "+c.State)
	}
	return out
}

type dockerLister interface {
	ContainerList(ctx context.Context, options container.ListOptions) ([]container.Summary, error)
	ContainerRemove(ctx context.Context, id string, options container.RemoveOptions) error
}

func removeContainers(cli dockerLister, ids []string) {
	for _, id := range ids {
		_ = cli.ContainerRemove(context.Background(), "universe-"+id, container.RemoveOptions{Force: true})
	}
}
