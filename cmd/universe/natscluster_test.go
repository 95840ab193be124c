package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/universe-orchestrator/universe/api"
	ucluster "github.com/universe-orchestrator/universe/cluster"
)

// pkgDir is this package's folder (TestMain moves the tests elsewhere).
var pkgDir, _ = os.Getwd()

var (
	natsServerOnce sync.Once
	natsServerPath string
	natsServerErr  error
)

// natsServer returns a nats-server binary: $NATS_SERVER, or the version
// go.mod pins, built from its Go module once per test run.
func natsServer(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("NATS_SERVER"); p != "" {
		return p
	}
	natsServerOnce.Do(func() {
		dir, err := os.MkdirTemp("", "universe-nats-server-")
		if err != nil {
			natsServerErr = err
			return
		}
		natsServerPath = filepath.Join(dir, "nats-server")
		cmd := exec.Command("go", "build", "-o", natsServerPath, "github.com/nats-io/nats-server/v2")
		cmd.Dir = pkgDir
		if out, err := cmd.CombinedOutput(); err != nil {
			natsServerErr = fmt.Errorf("build nats-server: %v\n%s", err, out)
		}
	})
	if natsServerErr != nil {
		t.Fatal(natsServerErr)
	}
	return natsServerPath
}

// natsNode is one server of the operator's cluster, a process of its own.
type natsNode struct {
	client, route, monitor int
	cmd                    *exec.Cmd
	done                   chan struct{}
}

func (n *natsNode) url() string { return "nats://127.0.0.1:" + strconv.Itoa(n.client) }

// connz lists the names of the clients connected to n.
func (n *natsNode) connz() []string {
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(n.monitor) + "/connz")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var cz struct {
		Conns []struct {
			Name string `json:"name"`
		} `json:"connections"`
	}
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &cz)
	var out []string
	for _, c := range cz.Conns {
		out = append(out, c.Name)
	}
	return out
}

// startNATSClusterPorts starts clustered nats-servers on the given client
// ports whose authorization holds the master's user and the given user
// entries.
func startNATSClusterPorts(t *testing.T, dir, masterPassword string, clientPorts []int, users []string) []*natsNode {
	t.Helper()
	bin := natsServer(t)
	nodes := make([]*natsNode, len(clientPorts))
	for i := range nodes {
		nodes[i] = &natsNode{client: clientPorts[i], route: freePort(t), monitor: freePort(t)}
	}
	// The master's permissions, as the README documents them.
	entries := append([]string{`{ user: master, password: "` + masterPassword + `", permissions: { publish: ["universe.>", "_INBOX.>"], subscribe: ["universe.>", "_INBOX.>"] } }`}, users...)
	for i, n := range nodes {
		var routes []string
		for j, o := range nodes {
			if j != i {
				routes = append(routes, "nats-route://127.0.0.1:"+strconv.Itoa(o.route))
			}
		}
		conf := fmt.Sprintf(`server_name: n%d
listen: 127.0.0.1:%d
http: 127.0.0.1:%d
cluster { name: universe, listen: 127.0.0.1:%d, routes: [%s] }
authorization { users = [
  %s
] }
`, i, n.client, n.monitor, n.route, strings.Join(routes, ", "), strings.Join(entries, "\n  "))
		path := filepath.Join(dir, fmt.Sprintf("n%d.conf", i))
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("n%d.log", i)))
		if err != nil {
			t.Fatal(err)
		}
		n.cmd = exec.Command(bin, "-c", path)
		n.cmd.Stdout, n.cmd.Stderr = logf, logf
		if err := n.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		logf.Close()
		n.done = make(chan struct{})
		go func(n *natsNode) { _ = n.cmd.Wait(); close(n.done) }(n)
		t.Cleanup(func() { _ = n.cmd.Process.Kill(); <-n.done })
	}
	for _, n := range nodes {
		waitFor(t, "a nats-server to listen", 30*time.Second, func() bool {
			c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(n.client))
			if err == nil {
				c.Close()
			}
			return err == nil
		})
	}
	return nodes
}

// TestExternalNATSCluster runs the nodes over an operator's three-server
// NATS cluster instead of the embedded server: the master opens no node
// port; node create prints the cluster's URLs and the authorization entry
// the servers need; the agent joins with its nkey; the node's permissions
// (the servers' own) keep it off other nodes' subjects; an instance runs
// on the node, and losing the server the agent is connected to (SIGKILL)
// loses nothing: same pid, the log contiguous, stdin answered; revocation
// ends the agent.
func TestExternalNATSCluster(t *testing.T) {
	dir := t.TempDir()
	port, nodePort := freePort(t), freePort(t)
	code, out, errOut := cli(t, "key", "create", "admin", "ALL", "--data", dir)
	if code != 0 {
		t.Fatalf("key create: %s", errOut)
	}
	admin := tokenRE.FindString(out)
	const password = "s3cret-master-pass"
	// The servers' client ports are picked now; the servers start once
	// the node (and so its nkey) exists: the master connects when they
	// answer.
	natsDir := t.TempDir()
	clientPorts := make([]int, 3)
	for i := range clientPorts {
		clientPorts[i] = freePort(t)
	}
	var withPass, plain []string
	for _, p := range clientPorts {
		withPass = append(withPass, "nats://master:"+password+"@127.0.0.1:"+strconv.Itoa(p))
		plain = append(plain, "nats://127.0.0.1:"+strconv.Itoa(p))
	}
	m := startChildMaster(t, dir, port, "--cluster-addr", "127.0.0.1:"+strconv.Itoa(nodePort), "--nats-url", strings.Join(withPass, ","))
	base := m.base

	created := jsonReq[api.NodeCreated](t, "POST", base+"/api/cluster/nodes", admin, `{"name":"edge-1"}`, 201)
	if !strings.Contains(created.JoinCommand, "UNIVERSE_NATS_URL="+strings.Join(plain, ",")) || strings.Contains(created.JoinCommand, password) {
		t.Fatalf("join command: %q", created.JoinCommand)
	}
	_, kp, err := ucluster.ParseCredential(created.Key)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	if !strings.Contains(created.NATSAuthorization, pub) || !strings.Contains(created.NATSAuthorization, "universe.from.edge-1.>") {
		t.Fatalf("authorization entry: %q", created.NATSAuthorization)
	}
	// A second node's entry: its subjects must stay closed to edge-1.
	other := jsonReq[api.NodeCreated](t, "POST", base+"/api/cluster/nodes", admin, `{"name":"edge-2"}`, 201)

	// The operator's cluster, with the entries node create printed.
	servers := startNATSClusterPorts(t, natsDir, password, clientPorts, []string{created.NATSAuthorization, other.NATSAuthorization})

	// The master opened no node port of its own.
	if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(nodePort)); err == nil {
		c.Close()
		t.Fatal("the master listens on a node port with an external cluster")
	}

	// The servers enforce the node's permissions: edge-1's nkey cannot
	// publish as edge-2, nor read what is sent to edge-2.
	violations := make(chan error, 4)
	nc, err := nats.Connect(strings.Join(plain, ","), nats.Nkey(pub, kp.Sign), nats.CustomInboxPrefix(ucluster.Inbox("edge-1")),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violations <- err }))
	if err != nil {
		t.Fatalf("the node's nkey on the cluster: %v", err)
	}
	_ = nc.Publish(ucluster.From("edge-2", "hb"), []byte(`{}`))
	_, _ = nc.Subscribe(ucluster.To("edge-2", "inst.start"), func(*nats.Msg) {})
	_ = nc.Flush()
	for range 2 {
		select {
		case err := <-violations:
			if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
				t.Fatalf("want a permissions violation, got %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the cluster let edge-1 use edge-2's subjects")
		}
	}
	nc.Close()

	// The agent joins with the join command's environment.
	agentDir := t.TempDir()
	a, agentDone := startAgent(t, agentDir, []string{"UNIVERSE_NODE_KEY=" + created.Key, "UNIVERSE_NATS_URL=" + strings.Join(plain, ",")}, "--data", agentDir)
	waitFor(t, "edge-1 online over the external cluster", 30*time.Second, func() bool {
		return jsonReq[api.ClusterNode](t, "GET", base+"/api/cluster/nodes/edge-1", admin, "", 200).State == api.NodeOnline
	})
	if b, _ := os.ReadFile(filepath.Join(dir, "master.log")); strings.Contains(string(b), password) {
		t.Fatal("the master logged the cluster password")
	}

	cmd := `exec 3<&0; { while read l <&3; do echo "got $l"; done; } & i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 0.01; done`
	cfg, _ := json.Marshal(api.Configuration{Command: cmd, Nodes: []string{"edge-1"}, AvailablePorts: api.Ports{Min: 21950, Max: 21959}, StopTimeoutSeconds: 2})
	jsonReq[any](t, "PUT", base+"/api/configurations/far", admin, string(cfg), 204)
	info := jsonReq[api.InstanceInfo](t, "POST", base+"/api/instances", admin, `{"configurationName":"far"}`, 201)
	if info.State != "ONLINE" || info.WrapperNodeID != "edge-1" || info.ProcessPid == nil {
		t.Fatalf("created: %+v", info)
	}
	pid := int(*info.ProcessPid)
	t.Cleanup(func() { _ = syscall.Kill(-pid, syscall.SIGKILL) })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	f := &logFollower{t: t, id: info.ID, frames: follow(t, ctx, base, admin, info.ID, "lines=10000")}
	f.collect(func() bool { return f.lastSeq > 50 })

	// Lose the server the agent is connected to.
	var victim *natsNode
	waitFor(t, "the agent's server", 10*time.Second, func() bool {
		for _, s := range servers {
			for _, name := range s.connz() {
				if name == "universe-agent-edge-1" {
					victim = s
					return true
				}
			}
		}
		return false
	})
	masterThere := false
	for _, name := range victim.connz() {
		masterThere = masterThere || name == "universe-master"
	}
	t.Logf("killing nats-server :%d (the agent's; the master's too: %v)", victim.client, masterThere)
	_ = victim.cmd.Process.Signal(syscall.SIGKILL)
	<-victim.done
	from := f.lastSeq
	f.collect(func() bool { return f.lastSeq > from+200 })
	jsonReq[any](t, "POST", base+"/api/instances/"+info.ID+"/execute", admin, `{"command":"after the loss"}`, 204)
	f.collect(func() bool { return hasLine(f, "got after the loss") })
	// The node may have been unreachable for a moment (its reconnect
	// can take seconds on a loaded machine); its next heartbeat brings the
	// instance back ONLINE, with the same process.
	var got api.InstanceInfo
	waitFor(t, "the instance ONLINE again after losing a server", 15*time.Second, func() bool {
		got = jsonReq[api.InstanceInfo](t, "GET", base+"/api/instances/"+info.ID, admin, "", 200)
		return got.State == "ONLINE"
	})
	if got.ProcessPid == nil || int(*got.ProcessPid) != pid {
		t.Fatalf("after losing a server: %+v", got)
	}
	if list := jsonReq[[]api.InstanceInfo](t, "GET", base+"/api/instances", admin, "", 200); len(list) != 1 {
		t.Fatalf("instances after losing a server: %d, want 1 (nothing replaced)", len(list))
	}
	f.checkContiguous()

	// Revocation over the cluster: the agent is told, and exits (code 3).
	jsonReq[any](t, "DELETE", base+"/api/cluster/nodes/edge-1", admin, "", 204)
	select {
	case <-agentDone:
		if code := a.ProcessState.ExitCode(); code != 3 {
			t.Fatalf("revoked agent exit code %d, want 3", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the revoked agent did not exit")
	}
}
