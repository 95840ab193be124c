package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/universe-orchestrator/universe/api"
)

// universeOnPath gives a folder holding "universe": this test binary
// under that name, which TestMain runs as the CLI. So a command line the
// product prints can run as printed, from any folder.
func universeOnPath(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	if err := os.Symlink(os.Args[0], filepath.Join(bin, "universe")); err != nil {
		t.Fatal(err)
	}
	return bin
}

// shellEnv is this process's environment without the helpers' variables,
// with bin first on PATH and extra added.
func shellEnv(bin string, extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, masterHelperEnv+"=") && !strings.HasPrefix(kv, "PATH=") && !strings.HasPrefix(kv, "UNIVERSE_") {
			env = append(env, kv)
		}
	}
	return append(append(env, "PATH="+bin+":"+os.Getenv("PATH")), extra...)
}

// environOf reads /proc/<pid>/environ as a map.
func environOf(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		t.Fatalf("environ of %d: %v", pid, err)
	}
	env := map[string]string{}
	for _, kv := range strings.Split(string(b), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}

// parentOf reads a process's parent from /proc/<pid>/stat.
func parentOf(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	ppid, _ := strconv.Atoi(fields[1])
	return ppid
}

// TestPrintedJoinLine runs the join line "node create" prints exactly as
// printed (its relative --data included) with sh, from a folder of its
// own: the node joins, an instance placed there runs with its log in
// <data>/instances/<id>, and neither the instance nor its supervisor can
// read the node's credential or anything else of the agent's environment.
func TestPrintedJoinLine(t *testing.T) {
	c := newCluster(t)
	env := []string{"UNIVERSE_URL=" + c.m.base, "UNIVERSE_TOKEN=" + c.admin}
	code, out, errOut := cliEnvRun(t, env, "node", "create", "edge-1")
	if code != 0 {
		t.Fatalf("node create: %d %s %s", code, out, errOut)
	}
	if !strings.Contains(errOut, "warning: the join command names 127.0.0.1:") || !strings.Contains(errOut, "--public-url") {
		t.Errorf("a loopback join address without a warning saying how to set it: %q", errOut)
	}
	join := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "UNIVERSE_NODE_KEY=") {
			join = strings.TrimSpace(l)
		}
	}
	if join == "" {
		t.Fatalf("no join line in:\n%s", out)
	}
	work := t.TempDir()
	sh := exec.Command("sh", "-c", join)
	sh.Dir = work
	// A secret of the agent's own, beside its credential.
	sh.Env = shellEnv(universeOnPath(t), "AGENT_SECRET=do-not-leak")
	sh.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	runAgentProcess(t, sh, work)
	info := instanceOnEdge(t, c, "echo started in $PWD; exec sleep 600", 21950)
	// Its folder is below the data directory the line named, relative to
	// the folder it ran in, not to the instance's folder.
	data := filepath.Join(work, "edge-1")
	waitFor(t, "the instance's log on the node", 10*time.Second, func() bool {
		logs, _ := filepath.Glob(filepath.Join(data, "instances", info.ID, "*.log"))
		for _, f := range logs {
			if b, _ := os.ReadFile(f); strings.Contains(string(b), "started in "+data) {
				return true
			}
		}
		return false
	})
	if nested, _ := filepath.Glob(filepath.Join(data, "instances", info.ID, "edge-1")); len(nested) > 0 {
		t.Fatalf("the data directory was resolved again inside the instance's folder: %v", nested)
	}
	pid := int(*info.ProcessPid)
	sup := parentOf(t, pid)
	for who, p := range map[string]int{"instance": pid, "supervisor": sup} {
		e := environOf(t, p)
		for k, v := range e {
			if strings.Contains(v, "unvn_") || k == "UNIVERSE_NODE_KEY" || k == "AGENT_SECRET" || k == "UNIVERSE_TOKEN" || k == "UNIVERSE_URL" {
				t.Errorf("the %s (pid %d) has the agent's %s in its environment", who, p, k)
			}
		}
		if e["PATH"] == "" {
			t.Errorf("the %s (pid %d) has no PATH", who, p)
		}
	}
	if e := environOf(t, pid); e["UNIVERSE_INSTANCE_ID"] != info.ID || e["UNIVERSE_API_KEY"] == "" {
		t.Errorf("the instance lacks its own variables: %v", e)
	}
}

// TestAgentBinaryUsesSmallSupervisor runs universe-agent as a release lays
// it out, universe-supervisor beside it: the supervisors of its instances
// run universe-supervisor, not the agent's own binary (which carries the
// NATS client and more into each, and its start-up into every start).
func TestAgentBinaryUsesSmallSupervisor(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries")
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	bin := t.TempDir()
	for _, b := range []string{"universe-agent", "universe-supervisor"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(bin, b), "./cmd/"+b)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", b, err, out)
		}
	}
	c := newCluster(t)
	env := []string{"UNIVERSE_URL=" + c.m.base, "UNIVERSE_TOKEN=" + c.admin}
	code, out, errOut := cliEnvRun(t, env, "node", "create", "edge-1")
	if code != 0 {
		t.Fatalf("node create: %d %s %s", code, out, errOut)
	}
	cred := ""
	for _, f := range strings.Fields(out) {
		if strings.HasPrefix(f, "UNIVERSE_NODE_KEY=") {
			cred = f
		}
	}
	data := t.TempDir()
	agent := exec.Command(filepath.Join(bin, "universe-agent"), "agent", "--master", "nats://127.0.0.1:"+strconv.Itoa(c.nodePort), "--data", data)
	agent.Env = shellEnv(bin, cred)
	agent.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	runAgentProcess(t, agent, data)
	info := instanceOnEdge(t, c, "exec sleep 600", 21960)
	sup := parentOf(t, int(*info.ProcessPid))
	exe, err := os.Readlink("/proc/" + strconv.Itoa(sup) + "/exe")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(bin, "universe-supervisor"); exe != want {
		t.Fatalf("the instance's supervisor (pid %d) runs %s, want %s", sup, exe, want)
	}
}

// runAgentProcess starts cmd (an agent, or a shell running one, in a
// process group of its own) with its output in a log shown if the test
// fails; at the end its group is killed, and the supervisors it left under
// dir (agents leave them running, by design).
func runAgentProcess(t *testing.T, cmd *exec.Cmd, dir string) {
	t.Helper()
	logf, err := os.Create(filepath.Join(t.TempDir(), "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		killSupervisorsUnder(dir)
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("agent log:\n%s", tail(string(b), 40))
		}
	})
}

// instanceOnEdge waits for node edge-1 to be online, then creates an
// instance running command there (configuration "far", ports from
// minPort): ONLINE, on edge-1, with a pid.
func instanceOnEdge(t *testing.T, c *cluster, command string, minPort int) api.InstanceInfo {
	t.Helper()
	waitFor(t, "edge-1 to come online", 30*time.Second, func() bool {
		return jsonReq[api.ClusterNode](t, "GET", c.m.base+"/api/cluster/nodes/edge-1", c.admin, "", 200).State == api.NodeOnline
	})
	cfg, _ := json.Marshal(api.Configuration{Command: command, Nodes: []string{"edge-1"},
		AvailablePorts: api.Ports{Min: minPort, Max: minPort + 9}, StopTimeoutSeconds: 2})
	jsonReq[any](t, "PUT", c.m.base+"/api/configurations/far", c.admin, string(cfg), 204)
	info := jsonReq[api.InstanceInfo](t, "POST", c.m.base+"/api/instances", c.admin, `{"configurationName":"far"}`, 201)
	if info.State != "ONLINE" || info.WrapperNodeID != "edge-1" || info.ProcessPid == nil {
		t.Fatalf("an instance on edge-1: %+v", info)
	}
	return info
}
