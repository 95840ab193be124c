package main

import (
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

	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/scaling"
)

// haCluster is three master processes in a Raft cluster.
type haCluster struct {
	t      *testing.T
	dirs   []string
	ports  []int
	nats   []string // the masters' NATS URLs (agents' --master)
	args   [][]string
	ms     []*childMaster
	admin  string
	secret string
}

func newHACluster(t *testing.T) *haCluster {
	t.Helper()
	c := &haCluster{t: t}
	c.secret = filepath.Join(t.TempDir(), "ha.secret")
	if err := os.WriteFile(c.secret, []byte("a-secret-the-three-masters-share-0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	var peers []string
	haPorts := make([]int, 3)
	for i := range 3 {
		haPorts[i] = freePortPair(t) // the next port carries the NATS routes
		peers = append(peers, "127.0.0.1:"+strconv.Itoa(haPorts[i]))
	}
	for i := range 3 {
		dir := t.TempDir()
		c.dirs = append(c.dirs, dir)
		c.ports = append(c.ports, freePort(t))
		natsPort := strconv.Itoa(freePort(t))
		c.nats = append(c.nats, "nats://127.0.0.1:"+natsPort)
		c.args = append(c.args, []string{"--ha-addr", peers[i], "--ha-peers", strings.Join(peers, ","), "--ha-secret-file", c.secret,
			"--cluster-addr", "127.0.0.1:" + natsPort})
	}
	// The first key, made offline on one member before the first start,
	// is carried into the cluster.
	code, out, errOut := cli(t, "key", "create", "admin", "ALL", "--data", c.dirs[1])
	if code != 0 {
		t.Fatalf("key create: %s", errOut)
	}
	c.admin = tokenRE.FindString(out)
	for i := range 3 {
		c.ms = append(c.ms, startChildMaster(t, c.dirs[i], c.ports[i], c.args[i]...))
	}
	return c
}

// freePortPair returns a free port whose next one is free too.
func freePortPair(t *testing.T) int {
	t.Helper()
	for range 200 {
		p := freePort(t)
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+1))
		if err != nil {
			continue
		}
		_ = ln.Close()
		handedOutMu.Lock()
		taken := handedOut[p+1]
		handedOut[p+1] = true
		handedOutMu.Unlock()
		if !taken {
			return p
		}
	}
	t.Fatal("no pair of free ports")
	return 0
}

// countProcsWithEnv counts the processes whose environment holds kv.
func countProcsWithEnv(t *testing.T, kv string) int {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			continue
		}
		for _, v := range strings.Split(string(env), "\x00") {
			if v == kv {
				if st, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil && !strings.Contains(string(st), ") Z ") {
					n++
				}
				break
			}
		}
	}
	return n
}

// masters asks master i for the cluster's masters.
func (c *haCluster) masters(i int) ([]api.Master, error) {
	req, _ := http.NewRequest("GET", c.ms[i].base+"/api/cluster/masters", nil)
	req.Header.Set("Authorization", "Bearer "+c.admin)
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	var out []api.Master
	err = json.NewDecoder(resp.Body).Decode(&out)
	return out, err
}

// leader waits for a leader among the masters not in down, and returns
// its index.
func (c *haCluster) leader(down map[int]bool) int {
	c.t.Helper()
	found := -1
	waitFor(c.t, "a leader", 30*time.Second, func() bool {
		for i := range c.ms {
			if down[i] {
				continue
			}
			var p api.Ping
			resp, err := http.Get(c.ms[i].base + "/api/ping")
			if err != nil {
				continue
			}
			_ = json.NewDecoder(resp.Body).Decode(&p)
			resp.Body.Close()
			if p.Leader != nil && *p.Leader {
				found = i
				return true
			}
		}
		return false
	})
	return found
}

// write creates a key through master i; it returns the HTTP status.
func (c *haCluster) write(i int, label string) int {
	req, _ := http.NewRequest("POST", c.ms[i].base+"/api/keys", strings.NewReader(`{"label":"`+label+`","scope":"PUBLIC"}`))
	req.Header.Set("Authorization", "Bearer "+c.admin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// labels lists the keys master i holds (its own state, read locally).
func (c *haCluster) labels(i int) map[string]bool {
	req, _ := http.NewRequest("GET", c.ms[i].base+"/api/keys", nil)
	req.Header.Set("Authorization", "Bearer "+c.admin)
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var keys []api.Key
	_ = json.NewDecoder(resp.Body).Decode(&keys)
	out := map[string]bool{}
	for _, k := range keys {
		out[k.Label] = true
	}
	return out
}

// TestHAClusterFailover: three real master processes form a cluster from
// the same flags; the key made offline on one of them works on all; writes
// go through any master (a follower forwards them); SIGKILL of the leader
// brings a new one within seconds, writes go on through the survivors, and
// not one acknowledged write is lost: every master holds every key it was
// answered 201 for, the killed one too once it is back. A configuration
// written through a follower reaches all, and the masters list says who
// leads.
func TestHAClusterFailover(t *testing.T) {
	c := newHACluster(t)
	lead := c.leader(nil)
	t.Logf("leader: master %d", lead)
	follower := (lead + 1) % 3
	// The offline key authenticates everywhere.
	waitFor(t, "the offline key on every master", 30*time.Second, func() bool {
		for i := range 3 {
			if ms, err := c.masters(i); err != nil || len(ms) != 3 {
				return false
			}
		}
		return true
	})
	ms, _ := c.masters(follower)
	leaders := 0
	for _, m := range ms {
		if m.Leader {
			leaders++
		}
	}
	if leaders != 1 {
		t.Fatalf("masters seen from a follower: %+v", ms)
	}
	// The dashboard's nodes page shows the masters.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	login, _ := http.NewRequest("POST", c.ms[follower].base+"/ui/login", strings.NewReader("key="+c.admin))
	login.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	login.Header.Set("Sec-Fetch-Site", "same-origin")
	lr, err := noRedirect.Do(login)
	if err != nil || len(lr.Cookies()) == 0 {
		t.Fatalf("sign in: %v %v", lr, err)
	}
	page, _ := http.NewRequest("GET", c.ms[follower].base+"/ui/nodes", nil)
	page.AddCookie(lr.Cookies()[0])
	pr, err := noRedirect.Do(page)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(pr.Body)
	pr.Body.Close()
	if !strings.Contains(string(body), `aria-label="Masters"`) || strings.Count(string(body), `<span class="chip">leader</span>`) != 1 {
		t.Fatalf("the nodes page does not show the masters:\n%s", body)
	}
	// The session made on a follower works on every master (sessions are
	// replicated): a page on the leader, and a write with the cookie alone
	// through the other follower (forwarded to the leader, which knows it).
	other := 3 - lead - follower
	waitFor(t, "the session on the leader", 10*time.Second, func() bool {
		req, _ := http.NewRequest("GET", c.ms[lead].base+"/ui/nodes", nil)
		req.AddCookie(lr.Cookies()[0])
		resp, err := noRedirect.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	cw, _ := http.NewRequest("POST", c.ms[other].base+"/api/keys", strings.NewReader(`{"label":"by-cookie","scope":"PUBLIC"}`))
	cw.AddCookie(lr.Cookies()[0])
	cw.Header.Set("Content-Type", "application/json")
	cw.Header.Set("Sec-Fetch-Site", "same-origin")
	if resp, err := noRedirect.Do(cw); err != nil || resp.StatusCode != 201 {
		t.Fatalf("a cookie write through a follower: %v %v", resp, err)
	}
	// Writes through every master, a follower's forwarded to the leader.
	var mu sync.Mutex
	acked := map[string]bool{}
	n := 0
	writeVia := func(i int) {
		label := "k" + strconv.Itoa(n)
		n++
		if code := c.write(i, label); code == 201 {
			mu.Lock()
			acked[label] = true
			mu.Unlock()
		}
	}
	for i := 0; i < 30; i++ {
		writeVia(i % 3)
	}
	if len(acked) != 30 {
		t.Fatalf("%d of 30 writes acknowledged with every master up", len(acked))
	}
	// Read your writes through the master you wrote to, a follower too.
	for i := range 3 {
		label := "ryw" + strconv.Itoa(i)
		if c.write(i, label) != 201 {
			t.Fatalf("a write through master %d", i)
		}
		if !c.labels(i)[label] {
			t.Fatalf("master %d answered a write it does not show at once", i)
		}
	}
	cfg := `{"command":"exec sleep 60","availablePorts":{"min":21960,"max":21969}}`
	req, _ := http.NewRequest("PUT", c.ms[follower].base+"/api/configurations/ha", strings.NewReader(cfg))
	req.Header.Set("Authorization", "Bearer "+c.admin)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 204 {
		t.Fatalf("a configuration through a follower: %v %v", resp, err)
	}

	// Templates' files reach every master: made and written through
	// followers (forwarded to the leader), fetched by the others.
	jsonReq[any](t, "POST", c.ms[follower].base+"/api/templates/lobby/base", c.admin, "", 201)
	if resp, b := request(t, "PUT", c.ms[(follower+1)%3].base+"/api/templates/lobby/base/files/server.properties", c.admin, "motd=replicated\n"); resp.StatusCode != 204 {
		t.Fatalf("a template file through a follower: %d %s", resp.StatusCode, b)
	}
	waitFor(t, "the template's file on every master", 30*time.Second, func() bool {
		for i := range 3 {
			if resp, b := request(t, "GET", c.ms[i].base+"/api/templates/lobby/base/files/server.properties", c.admin, ""); resp.StatusCode != 200 || string(b) != "motd=replicated\n" {
				return false
			}
		}
		return true
	})
	tplCfg := `{"command":"cat server.properties; exec sleep 60","availablePorts":{"min":21970,"max":21979},"stopTimeoutSeconds":1,` +
		`"templateInstallationConfig":{"allOf":[{"group":"lobby","name":"base"}]}}`
	jsonReq[any](t, "PUT", c.ms[follower].base+"/api/configurations/withtpl", c.admin, tplCfg, 204)

	// A user made through one follower signs in through the other, and its
	// session works on every master (users, keys and sessions replicate).
	jsonReq[any](t, "POST", c.ms[follower].base+"/api/users", c.admin, `{"name":"ops","password":"the ops password","admin":true}`, 201)
	lreq, _ := http.NewRequest("POST", c.ms[other].base+"/api/login", strings.NewReader(`{"name":"ops","password":"the ops password"}`))
	lreq.Header.Set("Content-Type", "application/json")
	lresp, err := noRedirect.Do(lreq)
	if err != nil || lresp.StatusCode != 200 || len(lresp.Cookies()) == 0 {
		t.Fatalf("a user's sign-in through a follower: %v %v", lresp, err)
	}
	waitFor(t, "the user's session on every master", 10*time.Second, func() bool {
		for i := range 3 {
			req, _ := http.NewRequest("GET", c.ms[i].base+"/api/me", nil)
			req.AddCookie(lresp.Cookies()[0])
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return false
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return false
			}
		}
		return true
	})

	// A PUBLIC key has one window of 100 calls, whichever masters they
	// reach: the leader counts them all.
	pub := jsonReq[api.KeyCreated](t, "POST", c.ms[follower].base+"/api/keys", c.admin, `{"label":"pub","scope":"PUBLIC"}`, 201)
	waitFor(t, "the PUBLIC key on every master", 10*time.Second, func() bool {
		for i := range 3 {
			if resp, _ := request(t, "GET", c.ms[i].base+"/api/keys/pub", c.admin, ""); resp.StatusCode != 200 {
				return false
			}
		}
		return true
	})
	for i := range 100 {
		if resp, b := request(t, "GET", c.ms[i%3].base+"/api/auth", pub.Token, ""); resp.StatusCode != 200 {
			t.Fatalf("PUBLIC call %d through master %d: %d %s", i+1, i%3, resp.StatusCode, b)
		}
	}
	for i := range 3 {
		if resp, _ := request(t, "GET", c.ms[i].base+"/api/auth", pub.Token, ""); resp.StatusCode != 429 {
			t.Fatalf("the 101st PUBLIC call through master %d: %d (want 429)", i, resp.StatusCode)
		}
	}

	// An agent node, registered through a follower, connected to another
	// follower's NATS server (the masters' servers are routed): the leader
	// places an instance on it.
	nodeMade := jsonReq[api.NodeCreated](t, "POST", c.ms[follower].base+"/api/cluster/nodes", c.admin, `{"name":"edge-1"}`, 201)
	for i := range 3 { // the join line lists every master's NATS server
		if !strings.Contains(nodeMade.JoinCommand, c.nats[i]) {
			t.Fatalf("the join line misses master %d's %s: %s", i, c.nats[i], nodeMade.JoinCommand)
		}
	}
	agentDir := t.TempDir()
	startAgent(t, agentDir, []string{"UNIVERSE_NODE_KEY=" + nodeMade.Key}, "--master", c.nats[other]+","+c.nats[follower]+","+c.nats[lead], "--data", agentDir)
	waitFor(t, "edge-1 online, seen through every master", 30*time.Second, func() bool {
		for i := range 3 {
			if resp, b := request(t, "GET", c.ms[i].base+"/api/cluster/nodes/edge-1", c.admin, ""); resp.StatusCode != 200 || !strings.Contains(string(b), `"state":"ONLINE"`) {
				return false
			}
		}
		return true
	})
	kept := jsonReq[api.InstanceInfo](t, "POST", c.ms[other].base+"/api/instances", c.admin, `{"configurationName":"ha"}`, 201)
	if kept.WrapperNodeID != "edge-1" || kept.State != "ONLINE" || kept.ProcessPid == nil {
		t.Fatalf("an instance placed by the leader: %+v", kept)
	}
	for i := range 3 { // read through any master: the leader's view
		got := jsonReq[api.InstanceInfo](t, "GET", c.ms[i].base+"/api/instances/"+kept.ID, c.admin, "", 200)
		if got.State != "ONLINE" || *got.ProcessPid != *kept.ProcessPid {
			t.Fatalf("the instance through master %d: %+v", i, got)
		}
	}

	// A schedule firing every second, made through a follower: the leader
	// fires it, and after the leader's kill the new one, each firing once.
	sched := jsonReq[api.Schedule](t, "POST", c.ms[other].base+"/api/schedules", c.admin, `{"name":"tick","instanceId":"`+kept.ID+`","cron":"@every 1s","enabled":true,"tasks":[{"type":"command","payload":"tick"}]}`, 201)
	runsOf := func(i int) []api.ScheduleRun {
		return jsonReq[[]api.ScheduleRun](t, "GET", c.ms[i].base+"/api/schedules/"+sched.ID+"/runs", c.admin, "", 200)
	}
	waitFor(t, "the schedule to fire", 20*time.Second, func() bool { return len(runsOf(other)) >= 2 })

	// A scaled configuration: the leader's scaler starts its one instance
	// (it never reports: it counts as starting for scaling.StartGrace).
	jsonReq[any](t, "PUT", c.ms[other].base+"/api/configurations/scaled", c.admin,
		`{"command":"exec sleep 600","nodes":["edge-1"],"stopTimeoutSeconds":1,"maximumServiceCount":3,"scaling":{"readyHeadroom":1}}`, 204)
	scaledActive := func(i int) []api.InstanceInfo {
		var out []api.InstanceInfo
		for _, in := range jsonReq[[]api.InstanceInfo](t, "GET", c.ms[i].base+"/api/instances?configuration=scaled", c.admin, "", 200) {
			if in.State == "ONLINE" || in.State == "CREATING" {
				out = append(out, in)
			}
		}
		return out
	}
	waitFor(t, "the leader's scaler to start an instance", 30*time.Second, func() bool { return len(scaledActive(other)) == 1 })
	scaledFirst := scaledActive(other)[0]

	// A history of concurrent key writes and reads through every live
	// master, across the kill, checked for linearizability at the end.
	hist := &keyHistory{prefix: "lin"}
	var downMu sync.Mutex
	down := map[int]bool{}
	live := func() []int {
		downMu.Lock()
		defer downMu.Unlock()
		var out []int
		for i := range 3 {
			if !down[i] {
				out = append(out, i)
			}
		}
		return out
	}
	stopHist := make(chan struct{})
	histDone := hist.run(c, live, stopHist)
	time.Sleep(500 * time.Millisecond)

	// SIGKILL of the leader: a new one takes writes within seconds.
	killed := time.Now()
	c.ms[lead].signal(syscall.SIGKILL)
	downMu.Lock()
	down[lead] = true
	downMu.Unlock()
	newLead := c.leader(down)
	t.Logf("SIGKILL of the leader → master %d leads after %v", newLead, time.Since(killed).Round(time.Millisecond))
	survivor := 3 - lead - newLead
	var firstOK time.Duration
	for i := 0; i < 30; i++ {
		before := len(acked)
		writeVia([]int{newLead, survivor}[i%2])
		if firstOK == 0 && len(acked) > before {
			firstOK = time.Since(killed)
		}
	}
	t.Logf("first write acknowledged %v after the kill", firstOK.Round(time.Millisecond))
	if firstOK == 0 || firstOK > 10*time.Second {
		t.Fatalf("no write acknowledged within 10 s of the leader's kill (%v)", firstOK)
	}
	time.Sleep(time.Second) // the history goes on under the new leader
	close(stopHist)
	histDone.Wait()

	// The new leader runs the instance the old one started: adopted on
	// its node, same id, same process, not restarted; and it obeys the new
	// leader (a stop through the other survivor).
	waitFor(t, "the new leader to show the instance the old one started", 30*time.Second, func() bool {
		resp, b := request(t, "GET", c.ms[survivor].base+"/api/instances/"+kept.ID, c.admin, "")
		var got api.InstanceInfo
		_ = json.Unmarshal(b, &got)
		return resp.StatusCode == 200 && got.State == "ONLINE" && got.ProcessPid != nil && *got.ProcessPid == *kept.ProcessPid
	})
	if err := syscall.Kill(int(*kept.ProcessPid), 0); err != nil {
		t.Fatalf("the instance's process is gone after the leader's kill: %v", err)
	}
	if running := countProcsWithEnv(t, "UNIVERSE_INSTANCE_ID="+kept.ID); running != 1 {
		t.Fatalf("%d processes of instance %s run", running, kept.ID)
	}
	if resp, b := request(t, "POST", c.ms[survivor].base+"/api/instances/"+kept.ID+"/stop", c.admin, ""); resp.StatusCode/100 != 2 {
		t.Fatalf("stop through the new leader: %d %s", resp.StatusCode, b)
	}
	waitFor(t, "the instance stopped by the new leader", 30*time.Second, func() bool {
		return syscall.Kill(int(*kept.ProcessPid), 0) != nil
	})

	// The new leader fires the schedule; no firing ran twice.
	waitFor(t, "the new leader to fire the schedule", 30*time.Second, func() bool {
		for _, r := range runsOf(survivor) {
			if r.FireTime.After(killed) && r.Outcome != api.OutcomeRunning {
				return true
			}
		}
		return false
	})
	// The new leader's scaler, past its warm-up, does not start a second
	// one: one instance of the scaled configuration, one process. (The
	// record holds the epoch of a node's process before the node is told
	// to start it, so the new leader expects that process; an instance
	// whose start order the old leader never sent comes back under a new
	// id; never two.)
	time.Sleep(scaling.WarmUp + 3*scaling.Interval)
	var seenActive []api.InstanceInfo
	var seenProcs int
	deadline := time.Now().Add(30 * time.Second)
	for {
		seenActive, seenProcs = scaledActive(survivor), countProcsWithEnv(t, "UNIVERSE_CONFIGURATION=scaled")
		if len(seenActive) == 1 && seenProcs == 1 {
			break
		}
		if time.Now().After(deadline) {
			all := jsonReq[[]api.InstanceInfo](t, "GET", c.ms[survivor].base+"/api/instances?configuration=scaled", c.admin, "", 200)
			t.Fatalf("not one instance of the scaled configuration and one process after 30 s: %d processes; the instances: %+v", seenProcs, all)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if l := scaledActive(survivor); l[0].ID != scaledFirst.ID {
		t.Logf("the scaled instance %s came back as %s after the kill", scaledFirst.ID, l[0].ID)
	}
	fired := map[int64]string{}
	for _, r := range runsOf(newLead) {
		if prev, dup := fired[r.FireTime.Unix()]; dup && !r.Manual {
			t.Errorf("the firing at %v ran twice: %s and %s", r.FireTime, prev, r.ID)
		}
		fired[r.FireTime.Unix()] = r.ID
	}

	// The new leader installs the template it got from the old one: an
	// instance created through the other survivor runs on the node with it.
	// (Once the agent is heard again: it may have been connected to the
	// killed master's server, and reconnects to another.)
	waitFor(t, "edge-1 online through the new leader", 30*time.Second, func() bool {
		resp, b := request(t, "GET", c.ms[newLead].base+"/api/cluster/nodes/edge-1", c.admin, "")
		return resp.StatusCode == 200 && strings.Contains(string(b), `"state":"ONLINE"`)
	})
	created := jsonReq[api.InstanceInfo](t, "POST", c.ms[survivor].base+"/api/instances", c.admin, `{"configurationName":"withtpl"}`, 201)
	if created.State != "ONLINE" {
		t.Fatalf("an instance with a template on the new leader: %+v", created)
	}
	if resp, b := request(t, "GET", c.ms[newLead].base+"/api/instances/"+created.ID+"/files/server.properties", c.admin, ""); resp.StatusCode != 200 || string(b) != "motd=replicated\n" {
		t.Fatalf("the instance's template file on the new leader: %d %q", resp.StatusCode, b)
	}

	// The killed master comes back and catches up; nothing acknowledged is
	// missing anywhere.
	c.ms[lead] = startChildMaster(t, c.dirs[lead], c.ports[lead], c.args[lead]...)
	waitFor(t, "every master to hold every acknowledged key", 60*time.Second, func() bool {
		for i := range 3 {
			have := c.labels(i)
			for l := range acked {
				if !have[l] {
					return false
				}
			}
		}
		return true
	})
	for i := range 3 {
		req, _ := http.NewRequest("GET", c.ms[i].base+"/api/configurations/ha", nil)
		req.Header.Set("Authorization", "Bearer "+c.admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("master %d lacks the configuration: %v %v", i, resp, err)
		}
		resp.Body.Close()
	}
	t.Logf("%d acknowledged writes, all on every master", len(acked))
	final := map[string]bool{}
	waitFor(t, "a consistent read of the keys", 30*time.Second, func() bool {
		resp, b := request(t, "GET", c.ms[c.leader(nil)].base+"/api/keys?consistent=true", c.admin, "")
		var keys []api.Key
		if resp.StatusCode != 200 || json.Unmarshal(b, &keys) != nil {
			return false
		}
		for _, k := range keys {
			final[k.Label] = true
		}
		return true
	})
	hist.check(t, final)
	// A template deleted through one master goes from every master.
	jsonReq[any](t, "DELETE", c.ms[lead].base+"/api/templates/lobby/base", c.admin, "", 204)
	waitFor(t, "the deleted template gone from every master", 30*time.Second, func() bool {
		for i := range 3 {
			if resp, _ := request(t, "GET", c.ms[i].base+"/api/templates/lobby/base/files", c.admin, ""); resp.StatusCode != 404 {
				return false
			}
		}
		return true
	})

	// Its Raft series.
	lead = c.leader(nil)
	_, b := request(t, "GET", c.ms[lead].base+"/api/metrics", "", "")
	if !strings.Contains(string(b), "universe_raft_leader 1") || !strings.Contains(string(b), "universe_raft_commit_seconds_count") {
		t.Fatalf("the leader's metrics lack the Raft series")
	}

	// A minority never acts: with two of three masters gone, the last one
	// refuses writes (503 with retryAfterMs) and still serves reads.
	others := []int{(lead + 1) % 3, (lead + 2) % 3}
	c.ms[lead].signal(syscall.SIGKILL)
	c.ms[others[0]].signal(syscall.SIGKILL)
	last := others[1]
	waitFor(t, "the minority to refuse writes", 30*time.Second, func() bool {
		req, _ := http.NewRequest("POST", c.ms[last].base+"/api/keys", strings.NewReader(`{"label":"minority","scope":"PUBLIC"}`))
		req.Header.Set("Authorization", "Bearer "+c.admin)
		req.Header.Set("Content-Type", "application/json")
		resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var e api.Error
		_ = json.NewDecoder(resp.Body).Decode(&e)
		if resp.StatusCode == 201 {
			t.Fatal("a minority master acknowledged a write")
		}
		return resp.StatusCode == 503 && e.RetryAfterMs > 0
	})
	if have := c.labels(last); !have["k0"] {
		t.Fatal("the minority master stopped serving reads")
	}
}

// TestHABootstrapFromSingle: a single master's data becomes a new
// cluster's first state with --ha-bootstrap-from-single (its key and its
// configuration on every master); without the flag the master refuses to
// join, saying so, rather than drop or double that state.
func TestHABootstrapFromSingle(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := cli(t, "key", "create", "admin", "ALL", "--data", dir)
	if code != 0 {
		t.Fatalf("key create: %s", errOut)
	}
	admin := tokenRE.FindString(out)
	port := freePort(t)
	natsAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	single := startChildMaster(t, dir, port, "--cluster-addr", natsAddr, "--no-local-instances")
	jsonReq[any](t, "PUT", single.base+"/api/configurations/lobby", admin, `{"command":"true"}`, 204)
	// An agent node and an instance on it: both carried into the cluster,
	// the instance adopted by its leader, not restarted.
	jsonReq[any](t, "PUT", single.base+"/api/configurations/game", admin, `{"command":"exec sleep 120","stopTimeoutSeconds":1}`, 204)
	nodeMade := jsonReq[api.NodeCreated](t, "POST", single.base+"/api/cluster/nodes", admin, `{"name":"edge-1"}`, 201)
	agentDir := t.TempDir()
	startAgent(t, agentDir, []string{"UNIVERSE_NODE_KEY=" + nodeMade.Key}, "--master", "nats://"+natsAddr, "--data", agentDir)
	waitFor(t, "edge-1 online", 30*time.Second, func() bool {
		resp, b := request(t, "GET", single.base+"/api/cluster/nodes/edge-1", admin, "")
		return resp.StatusCode == 200 && strings.Contains(string(b), `"state":"ONLINE"`)
	})
	game := jsonReq[api.InstanceInfo](t, "POST", single.base+"/api/instances", admin, `{"configurationName":"game"}`, 201)
	if game.WrapperNodeID != "edge-1" || game.ProcessPid == nil {
		t.Fatalf("an instance on the agent: %+v", game)
	}
	jsonReq[any](t, "POST", single.base+"/api/templates/lobby/base", admin, "", 201)
	if resp, b := request(t, "PUT", single.base+"/api/templates/lobby/base/files/a.txt", admin, "from the single master\n"); resp.StatusCode != 204 {
		t.Fatalf("a template file: %d %s", resp.StatusCode, b)
	}
	single.signal(syscall.SIGTERM)

	secret := filepath.Join(t.TempDir(), "ha.secret")
	_ = os.WriteFile(secret, []byte("bootstrap-from-single-secret-0123456789"), 0o600)
	var peers []string
	for range 3 {
		peers = append(peers, "127.0.0.1:"+strconv.Itoa(freePortPair(t)))
	}
	haArgs := func(i int) []string {
		addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
		if i == 0 {
			addr = natsAddr // where its agent reconnects
		}
		return []string{"--ha-addr", peers[i], "--ha-peers", strings.Join(peers, ","), "--ha-secret-file", secret, "--cluster-addr", addr}
	}
	// Without the flag: refused.
	b, _ := json.Marshal(append([]string{"master", "--addr", "127.0.0.1:" + strconv.Itoa(port), "--data", dir, "--no-console",
		"--templates", filepath.Join(dir, "templates"), "--configurations", filepath.Join(dir, "configuration")}, haArgs(0)...))
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), masterHelperEnv+"="+string(b))
	done := make(chan []byte, 1)
	go func() { o, _ := cmd.CombinedOutput(); done <- o }()
	select {
	case o := <-done:
		if !strings.Contains(string(o), "--ha-bootstrap-from-single") {
			t.Fatalf("a single master's data joined without the flag: %s", o)
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("a master with a single master's data started in a cluster without --ha-bootstrap-from-single")
	}
	// With it: the key and the configuration on all three.
	ms := []*childMaster{startChildMaster(t, dir, port, append(haArgs(0), "--ha-bootstrap-from-single")...)}
	for i := 1; i < 3; i++ {
		ms = append(ms, startChildMaster(t, t.TempDir(), freePort(t), haArgs(i)...))
	}
	waitFor(t, "the single master's state on every master (its templates too)", 60*time.Second, func() bool {
		for _, m := range ms {
			resp, _ := request(t, "GET", m.base+"/api/configurations/lobby", admin, "")
			if resp.StatusCode != 200 {
				return false
			}
			resp, b := request(t, "GET", m.base+"/api/templates/lobby/base/files/a.txt", admin, "")
			if resp.StatusCode != 200 || string(b) != "from the single master\n" {
				return false
			}
		}
		return true
	})
	waitFor(t, "the carried instance adopted by the cluster's leader", 30*time.Second, func() bool {
		for _, m := range ms {
			resp, b := request(t, "GET", m.base+"/api/instances/"+game.ID, admin, "")
			var got api.InstanceInfo
			_ = json.Unmarshal(b, &got)
			if resp.StatusCode != 200 || got.State != "ONLINE" || got.ProcessPid == nil || *got.ProcessPid != *game.ProcessPid {
				return false
			}
		}
		return true
	})
	if n := countProcsWithEnv(t, "UNIVERSE_INSTANCE_ID="+game.ID); n != 1 {
		t.Fatalf("%d processes of the carried instance", n)
	}
}

// TestHAJoinAndLeave: a fourth master started with --ha-join is added with
// "universe cluster join" (through a follower), catches up and serves the
// cluster's state; "cluster leave" takes it out again.
func TestHAJoinAndLeave(t *testing.T) {
	c := newHACluster(t)
	lead := c.leader(nil)
	waitFor(t, "the offline key on the leader", 30*time.Second, func() bool { _, err := c.masters(lead); return err == nil })
	if code := c.write(lead, "before-join"); code != 201 {
		t.Fatalf("a write: %d", code)
	}
	addr := "127.0.0.1:" + strconv.Itoa(freePortPair(t))
	dir := t.TempDir()
	fourth := startChildMaster(t, dir, freePort(t), "--ha-addr", addr, "--ha-join", "--ha-secret-file", c.secret,
		"--cluster-addr", "127.0.0.1:"+strconv.Itoa(freePort(t)))
	env := []string{"UNIVERSE_URL=" + c.ms[(lead+1)%3].base, "UNIVERSE_TOKEN=" + c.admin}
	if code, out, errOut := cliEnvRun(t, env, "cluster", "join", addr); code != 0 {
		t.Fatalf("cluster join: %d %s %s", code, out, errOut)
	}
	waitFor(t, "the fourth master to hold the cluster's keys", 30*time.Second, func() bool {
		req, _ := http.NewRequest("GET", fourth.base+"/api/keys/before-join", nil)
		req.Header.Set("Authorization", "Bearer "+c.admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	if ms, err := c.masters(lead); err != nil || len(ms) != 4 {
		t.Fatalf("masters after the join: %+v %v", ms, err)
	}
	_, out, _ := cliEnvRun(t, env, "cluster", "status")
	if !strings.Contains(out, addr) || !strings.Contains(out, "leader") {
		t.Fatalf("cluster status: %s", out)
	}
	if code, out, errOut := cliEnvRun(t, env, "cluster", "leave", addr); code != 0 {
		t.Fatalf("cluster leave: %d %s %s", code, out, errOut)
	}
	if ms, err := c.masters(lead); err != nil || len(ms) != 3 {
		t.Fatalf("masters after the leave: %+v %v", ms, err)
	}
}

// TestHANodeLostAcrossLeaders: a node dies, the leader records its
// instance unreachable (still counted as running), then the leader dies
// before the instance's lostAfterSeconds. The new leader takes the record
// as unreachable since then (not as a stopped instance), declares the
// instance lost in time, and replaces it once the node is back; the stale
// process is stopped there: the old id does not run any more, the new one
// once.
func TestHANodeLostAcrossLeaders(t *testing.T) {
	c := newHACluster(t)
	lead := c.leader(nil)
	waitFor(t, "the offline key on the leader", 30*time.Second, func() bool { _, err := c.masters(lead); return err == nil })
	follower := (lead + 1) % 3
	jsonReq[any](t, "PUT", c.ms[follower].base+"/api/configurations/game", c.admin,
		`{"command":"exec sleep 120","stopTimeoutSeconds":1,"lostAfterSeconds":5,"availablePorts":{"min":21980,"max":21989}}`, 204)
	made := jsonReq[api.NodeCreated](t, "POST", c.ms[follower].base+"/api/cluster/nodes", c.admin, `{"name":"edge-1"}`, 201)
	agentDir := t.TempDir()
	env := []string{"UNIVERSE_NODE_KEY=" + made.Key}
	urls := strings.Join(c.nats, ",")
	a1, a1done := startAgent(t, agentDir, env, "--master", urls, "--data", agentDir)
	nodeState := func(i int) string {
		_, b := request(t, "GET", c.ms[i].base+"/api/cluster/nodes/edge-1", c.admin, "")
		var n api.ClusterNode
		_ = json.Unmarshal(b, &n)
		return n.State
	}
	waitFor(t, "edge-1 online", 30*time.Second, func() bool { return nodeState(follower) == api.NodeOnline })
	old := jsonReq[api.InstanceInfo](t, "POST", c.ms[follower].base+"/api/instances", c.admin, `{"configurationName":"game"}`, 201)
	if old.ProcessPid == nil {
		t.Fatalf("instance: %+v", old)
	}
	_ = a1.Process.Kill() // its instance runs on, unreachable
	<-a1done
	// The leader records the node unreachable (still counted as running),
	// then dies before the instance's lostAfterSeconds.
	waitFor(t, "the leader to record the node unreachable", 30*time.Second, func() bool {
		_, b := request(t, "GET", c.ms[lead].base+"/api/instances/"+old.ID, c.admin, "")
		var got api.InstanceInfo
		_ = json.Unmarshal(b, &got)
		return got.UnreachableSince != 0
	})
	c.ms[lead].signal(syscall.SIGKILL)
	down := map[int]bool{lead: true}
	newLead := c.leader(down)
	waitFor(t, "the new leader to declare the instance lost", 30*time.Second, func() bool {
		_, b := request(t, "GET", c.ms[newLead].base+"/api/instances/"+old.ID, c.admin, "")
		var got api.InstanceInfo
		_ = json.Unmarshal(b, &got)
		return got.Lost
	})
	startAgent(t, agentDir, env, "--master", urls, "--data", agentDir)
	var repl api.InstanceInfo
	waitFor(t, "a replacement running on the node, the stale process stopped", 60*time.Second, func() bool {
		var list []api.InstanceInfo
		_, b := request(t, "GET", c.ms[newLead].base+"/api/instances", c.admin, "")
		_ = json.Unmarshal(b, &list)
		for _, in := range list {
			if in.ConfigurationName == "game" && in.ID != old.ID && in.State == "ONLINE" {
				repl = in
			}
		}
		return repl.ID != "" && countProcsWithEnv(t, "UNIVERSE_INSTANCE_ID="+old.ID) == 0
	})
	if n := countProcsWithEnv(t, "UNIVERSE_INSTANCE_ID="+repl.ID); n != 1 {
		t.Fatalf("%d processes of the replacement %s", n, repl.ID)
	}
}
