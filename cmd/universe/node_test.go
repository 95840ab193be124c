package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/universe-orchestrator/universe/api"
)

// startAgent runs "universe agent" as a process of its own (this test
// binary, through the master helper), with the credential in env.
func startAgent(t *testing.T, dir string, env []string, args ...string) (*exec.Cmd, chan struct{}) {
	t.Helper()
	b, _ := json.Marshal(append([]string{"agent"}, args...))
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(append(os.Environ(), masterHelperEnv+"="+string(b)), env...)
	logf, err := os.OpenFile(filepath.Join(dir, "agent.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		killSupervisorsUnder(dir) // the instances it left running (agents leave them, by design)
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "agent.log"))
			t.Logf("agent.log:\n%s", tail(string(b), 30))
			logs, _ := filepath.Glob(filepath.Join(dir, "instances", "*", "*.log"))
			for _, f := range logs {
				b, _ := os.ReadFile(f)
				t.Logf("node's %s:\n%s", f, tail(string(b), 15))
			}
		}
	})
	return cmd, done
}

// TestAgentProcess: a node made with the CLI joins as a real agent process;
// the credential is never in its arguments; SIGKILL shows the node
// DISCONNECTED within seconds and a new agent brings it back; revocation
// ends the agent within a second with exit code 3; a key file others can
// read is refused.
func TestAgentProcess(t *testing.T) {
	c := newCluster(t)
	m, admin, nodePort := c.m, c.admin, c.nodePort
	env := []string{"UNIVERSE_URL=" + m.base, "UNIVERSE_TOKEN=" + admin}
	code, out, errOut := cliEnvRun(t, env, "node", "create", "edge-1", "--ram", "1024", "--cpu", "200", "--labels", "zone=eu")
	if code != 0 {
		t.Fatalf("node create: %d %s %s", code, out, errOut)
	}
	join := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "UNIVERSE_NODE_KEY=") {
			join = l
		}
	}
	if !strings.Contains(join, " universe agent --master nats://127.0.0.1:"+strconv.Itoa(nodePort)+" --data ") {
		t.Fatalf("join line %q", join)
	}
	cred := strings.TrimPrefix(strings.Fields(join)[0], "UNIVERSE_NODE_KEY=")
	// A template, to reach the node when it joins.
	jsonReq[any](t, "POST", m.base+"/api/templates/lobby/base", admin, "", 201)
	if resp, b := request(t, "PUT", m.base+"/api/templates/lobby/base/files/server.properties", admin, "motd=hello\n"); resp.StatusCode != 204 {
		t.Fatalf("put a template file: %d %s", resp.StatusCode, b)
	}
	agentDir := t.TempDir()
	url := "nats://127.0.0.1:" + strconv.Itoa(nodePort)
	a1, _ := startAgent(t, agentDir, []string{"UNIVERSE_NODE_KEY=" + cred}, "--master", url, "--data", agentDir)
	state := func() api.ClusterNode {
		return jsonReq[api.ClusterNode](t, "GET", m.base+"/api/cluster/nodes/edge-1", admin, "", 200)
	}
	waitFor(t, "edge-1 to come online", 30*time.Second, func() bool { return state().State == api.NodeOnline })
	if args, _ := os.ReadFile("/proc/" + strconv.Itoa(a1.Process.Pid) + "/cmdline"); strings.Contains(string(args), "unvn_") {
		t.Fatal("the credential is in the agent's arguments")
	}
	nodeFile := filepath.Join(agentDir, "templates", "lobby", "base", "server.properties")
	waitFor(t, "the template to reach the node", 30*time.Second, func() bool {
		b, _ := os.ReadFile(nodeFile)
		return string(b) == "motd=hello\n"
	})
	// A change reaches it when the templates are synced.
	request(t, "PUT", m.base+"/api/templates/lobby/base/files/server.properties", admin, "motd=changed\n")
	if sync := jsonReq[api.TemplateSync](t, "POST", m.base+"/api/templates/sync", admin, "", 200); sync.Nodes != 1 {
		t.Fatalf("template sync: %+v", sync)
	}
	waitFor(t, "the changed template to reach the node", 30*time.Second, func() bool {
		b, _ := os.ReadFile(nodeFile)
		return string(b) == "motd=changed\n"
	})
	_, out, _ = cliEnvRun(t, env, "node", "list")
	if !strings.Contains(out, "edge-1") || !strings.Contains(out, "ONLINE") || !strings.Contains(out, "node-1") {
		t.Fatalf("node list: %s", out)
	}

	// A killed agent: DISCONNECTED once its heartbeats stop.
	killed := time.Now()
	_ = a1.Process.Signal(syscall.SIGKILL)
	waitFor(t, "edge-1 to be seen disconnected", 30*time.Second, func() bool { return state().State == api.NodeDisconnected })
	t.Logf("agent SIGKILL to DISCONNECTED: %v", time.Since(killed))
	_, done2 := startAgent(t, agentDir, []string{"UNIVERSE_NODE_KEY=" + cred}, "--master", url, "--data", agentDir)
	waitFor(t, "edge-1 to come back", 30*time.Second, func() bool { return state().State == api.NodeOnline })

	// Revocation: the agent exits, saying so, with code 3.
	revoked := time.Now()
	if code, out, errOut := cliEnvRun(t, env, "node", "revoke", "edge-1"); code != 0 {
		t.Fatalf("node revoke: %d %s %s", code, out, errOut)
	}
	select {
	case <-done2:
		t.Logf("revocation to the agent's exit: %v", time.Since(revoked))
	case <-time.After(5 * time.Second):
		t.Fatal("the revoked agent runs on")
	}
	b, _ := os.ReadFile(filepath.Join(agentDir, "agent.log"))
	if !strings.Contains(string(b), "revoked") {
		t.Fatalf("the agent did not say it was revoked:\n%s", b)
	}

	// A key file others can read is refused.
	kf := filepath.Join(t.TempDir(), "node.key")
	_ = os.WriteFile(kf, []byte(cred), 0o644)
	if code, _, errOut := cliEnvRun(t, nil, "agent", "--master", url, "--key-file", kf); code != exitUsage || !strings.Contains(errOut, "chmod 600") {
		t.Fatalf("a 0644 key file: %d %s", code, errOut)
	}
}

// cluster is a child master with a node port, for the node tests.
type cluster struct {
	m              *childMaster
	admin, dir     string
	port, nodePort int
	args           []string // the master's cluster flags (for a restart)
}

// newCluster starts a master with an ALL key and a node port.
func newCluster(t *testing.T, extra ...string) *cluster {
	t.Helper()
	c := &cluster{dir: t.TempDir(), port: freePort(t), nodePort: freePort(t)}
	code, out, errOut := cli(t, "key", "create", "admin", "ALL", "--data", c.dir)
	if code != 0 {
		t.Fatalf("key create: %s", errOut)
	}
	c.admin = tokenRE.FindString(out)
	c.args = append([]string{"--cluster-addr", "127.0.0.1:" + strconv.Itoa(c.nodePort)}, extra...)
	c.m = startChildMaster(t, c.dir, c.port, c.args...)
	return c
}

// cliEnvRun runs the CLI in this process with env (KEY=value) as its
// environment.
func cliEnvRun(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	vars := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	var out, errb strings.Builder
	code = run(t.Context(), args, func(k string) string { return vars[k] }, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}
