package main

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
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

// netnsLab is three network namespaces, each a test host: eth0 on an API
// network the test (in the root namespace) reaches, eth1 on the masters'
// own network, which a partition takes down.
type netnsLab struct {
	t        *testing.T
	tag      string
	apiNet   string // "10.201.N."
	haNet    string // "10.202.N."
	ns       []string
	bridges  []string
	rules    []string // bridges with an iptables FORWARD rule of ours
	children []*exec.Cmd
}

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v %s", strings.Join(args, " "), err, out)
	}
}

func newNetnsLab(t *testing.T, hosts int) *netnsLab {
	t.Helper()
	if os.Getuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("the partition test needs root (network namespaces)")
		}
		t.Skip("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("the partition test needs ip (iproute2); .ci/run installs it")
		}
		t.Skip("no ip (iproute2) on this machine")
	}
	n, _ := rand.Int(rand.Reader, big.NewInt(200))
	r := int(n.Int64()) + 20
	tag := fmt.Sprintf("%x", r) + strconv.Itoa(os.Getpid()%1000)
	l := &netnsLab{t: t, tag: tag, apiNet: fmt.Sprintf("10.201.%d.", r), haNet: fmt.Sprintf("10.202.%d.", r)}
	t.Cleanup(l.close)
	for _, b := range []string{"uba" + tag, "ubh" + tag} {
		ipCmd(t, "link", "add", b, "type", "bridge")
		l.bridges = append(l.bridges, b)
		ipCmd(t, "link", "set", b, "up")
		// A host firewall that drops forwarded packets (Docker's sets
		// FORWARD to DROP, and bridged packets pass it) lets ours through.
		if _, err := exec.LookPath("iptables"); err == nil {
			if exec.Command("iptables", "-I", "FORWARD", "-i", b, "-o", b, "-j", "ACCEPT").Run() == nil {
				l.rules = append(l.rules, b)
			}
		}
	}
	ipCmd(t, "addr", "add", l.apiNet+"1/24", "dev", l.bridges[0])
	for i := range hosts {
		ns := "uns" + tag + strconv.Itoa(i)
		ipCmd(t, "netns", "add", ns)
		l.ns = append(l.ns, ns)
		ipCmd(t, "-n", ns, "link", "set", "lo", "up")
		for k, net := range []string{l.apiNet, l.haNet} {
			host, peer := fmt.Sprintf("uv%s%d%d", tag, i, k), fmt.Sprintf("eth%d", k)
			ipCmd(t, "link", "add", host, "type", "veth", "peer", "name", "up"+tag+strconv.Itoa(i)+strconv.Itoa(k))
			ipCmd(t, "link", "set", "up"+tag+strconv.Itoa(i)+strconv.Itoa(k), "netns", ns)
			ipCmd(t, "-n", ns, "link", "set", "up"+tag+strconv.Itoa(i)+strconv.Itoa(k), "name", peer)
			ipCmd(t, "link", "set", host, "master", l.bridges[k])
			ipCmd(t, "link", "set", host, "up")
			ipCmd(t, "-n", ns, "addr", "add", net+strconv.Itoa(10+i)+"/24", "dev", peer)
			ipCmd(t, "-n", ns, "link", "set", peer, "up")
		}
	}
	return l
}

func (l *netnsLab) close() {
	for _, c := range l.children {
		_ = c.Process.Kill()
		_, _ = c.Process.Wait()
	}
	for _, ns := range l.ns {
		_ = exec.Command("ip", "netns", "del", ns).Run()
	}
	for _, b := range l.bridges {
		_ = exec.Command("ip", "link", "del", b).Run()
	}
	for _, b := range l.rules {
		_ = exec.Command("iptables", "-D", "FORWARD", "-i", b, "-o", b, "-j", "ACCEPT").Run()
	}
}

// partition takes host i off the masters' network (true) or puts it back.
func (l *netnsLab) partition(i int, cut bool) {
	state := "up"
	if cut {
		state = "down"
	}
	ipCmd(l.t, "-n", l.ns[i], "link", "set", "eth1", state)
}

// startMaster runs a master in host i's namespace (this test binary).
func (l *netnsLab) startMaster(i int, dir string, args ...string) string {
	l.t.Helper()
	api := l.apiNet + strconv.Itoa(10+i) + ":7000"
	all := append([]string{"master", "--addr", api, "--data", dir, "--no-console",
		"--templates", filepath.Join(dir, "templates"), "--configurations", filepath.Join(dir, "configuration")}, args...)
	b, _ := json.Marshal(all)
	cmd := exec.Command("ip", "netns", "exec", l.ns[i], os.Args[0])
	cmd.Env = append(os.Environ(), masterHelperEnv+"="+string(b))
	logf, err := os.OpenFile(filepath.Join(dir, "master.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		l.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	logf.Close()
	l.children = append(l.children, cmd)
	base := "http://" + api
	waitFor(l.t, "master "+strconv.Itoa(i)+" to answer", 20*time.Second, func() bool {
		resp, err := (&http.Client{Timeout: time.Second}).Get(base + "/api/ping")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	l.t.Cleanup(func() {
		// Stopped before its folder is removed (cleanups run last
		// first): its graceful stop still writes there.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		exited := make(chan struct{})
		go func() { _, _ = cmd.Process.Wait(); close(exited) }()
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if l.t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "master.log"))
			l.t.Logf("master %d log:\n%s", i, tail(string(b), 30))
		}
	})
	return base
}

// TestHAPartitionMinorityNeverActs: three masters on three network
// namespaces. The leader is cut off from the other two (its link to the
// masters' network goes down; clients still reach it): it stops acting
// within its lease, and no write is acknowledged by it; the other two elect
// a leader and go on. After the heal it follows, catches up, and every
// acknowledged write is on every master.
func TestHAPartitionMinorityNeverActs(t *testing.T) {
	l := newNetnsLab(t, 3)
	secret := filepath.Join(t.TempDir(), "ha.secret")
	_ = os.WriteFile(secret, []byte("partition-test-secret-0123456789abc"), 0o600)
	var peers []string
	for i := range 3 {
		peers = append(peers, l.haNet+strconv.Itoa(10+i)+":7100")
	}
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	_, out, _ := cli(t, "key", "create", "admin", "ALL", "--data", dirs[0])
	admin := tokenRE.FindString(out)
	var bases []string
	for i := range 3 {
		bases = append(bases, l.startMaster(i, dirs[i], "--ha-addr", peers[i], "--ha-peers", strings.Join(peers, ","), "--ha-secret-file", secret,
			"--cluster-addr", l.apiNet+strconv.Itoa(10+i)+":7001"))
	}
	client := &http.Client{Timeout: 10 * time.Second}
	ping := func(i int) api.Ping {
		var p api.Ping
		resp, err := client.Get(bases[i] + "/api/ping")
		if err != nil {
			return p
		}
		defer resp.Body.Close()
		_ = json.NewDecoder(resp.Body).Decode(&p)
		return p
	}
	write := func(i int, label string) int {
		req, _ := http.NewRequest("POST", bases[i]+"/api/keys", strings.NewReader(`{"label":"`+label+`","scope":"PUBLIC"}`))
		req.Header.Set("Authorization", "Bearer "+admin)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	leader := func(skip int) int {
		found := -1
		waitFor(t, "a leader", 30*time.Second, func() bool {
			for i := range 3 {
				if p := ping(i); i != skip && p.Leader != nil && *p.Leader {
					found = i
					return true
				}
			}
			return false
		})
		return found
	}
	old := leader(-1)
	acked := map[string]bool{}
	waitFor(t, "the first key to work", 30*time.Second, func() bool { return write(old, "warmup") == 201 })
	acked["warmup"] = true
	for i := range 9 {
		label := "before" + strconv.Itoa(i)
		if write(i%3, label) == 201 {
			acked[label] = true
		}
	}

	l.partition(old, true)
	cut := time.Now()
	newLead := leader(old)
	t.Logf("leader %d cut off; %d leads %v later", old, newLead, time.Since(cut).Round(time.Millisecond))
	// The cut-off master acknowledges nothing, and says there is no leader
	// it can reach once its lease is over.
	waitFor(t, "the cut-off master to stop leading", 10*time.Second, func() bool {
		p := ping(old)
		return p.Leader != nil && !*p.Leader
	})
	for i := range 5 {
		if code := write(old, "minority"+strconv.Itoa(i)); code == 201 {
			t.Fatalf("the cut-off master acknowledged a write (%d)", code)
		} else if code != 503 {
			t.Fatalf("a write to the cut-off master: %d, want 503", code)
		}
	}
	survivor := 3 - old - newLead
	for i := range 10 {
		label := "during" + strconv.Itoa(i)
		if write([]int{newLead, survivor}[i%2], label) == 201 {
			acked[label] = true
		}
	}

	l.partition(old, false)
	healed := time.Now()
	keysOf := func(i int) map[string]bool {
		req, _ := http.NewRequest("GET", bases[i]+"/api/keys", nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := client.Do(req)
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		var keys []api.Key
		_ = json.NewDecoder(resp.Body).Decode(&keys)
		have := map[string]bool{}
		for _, k := range keys {
			have[k.Label] = true
			if strings.HasPrefix(k.Label, "minority") {
				t.Fatalf("a write refused by the minority is on master %d", i)
			}
		}
		return have
	}
	waitFor(t, "every acknowledged write on every master after the heal", 60*time.Second, func() bool {
		for i := range 3 {
			have := keysOf(i)
			for k := range acked {
				if !have[k] {
					return false
				}
			}
		}
		return true
	})
	if p := ping(old); p.Leader == nil || (*p.Leader && old != leader(-1)) {
		t.Fatalf("after the heal: %+v", p)
	}
	t.Logf("healed: converged %v later, %d acknowledged writes on all three", time.Since(healed).Round(time.Millisecond), len(acked))
}
