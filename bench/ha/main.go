// Command ha measures a cluster of three real master processes (the
// universe binary, built once) as an operator runs it:
//
//	go run ./bench/ha -kills 50 -terms 10 -rounds 5
//
// throughput: POST /api/keys from 8 clients for -seconds, to a three-master
// cluster (spread over every master: followers forward) and to a single
// master without Raft, in alternating rounds; medians and their ratio.
// In the same rounds, the floor (bench/ha/floor): bare processes that do
// only the same writes, alone and as three hashicorp/raft members; its
// own ratio is what Raft costs on this machine with nothing else around.
// kills: while 8 clients write keys and configurations through every live
// master, the leader is SIGKILLed -kills times (and started again): for
// each, the time until a write is acknowledged again and until every
// survivor answers a call; at the end every acknowledged write is looked
// for on every master (0 lost is the goal).
// terms: the leader is stopped with SIGTERM (it hands the leadership
// over): the longest pause between acknowledged writes.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/universe-orchestrator/universe/api"
)

var (
	bin      string
	natsURLs []string // the masters' NATS servers
	client   = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
)

type master struct {
	dir, api string
	args     []string
	cmd      *exec.Cmd
	done     chan struct{}
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func (m *master) start() {
	m.cmd = exec.Command(bin, append([]string{"master", "--no-console", "--access-log=false", "--data", m.dir}, m.args...)...)
	logf, _ := os.OpenFile(filepath.Join(m.dir, "master.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	m.cmd.Stdout, m.cmd.Stderr = logf, logf
	if err := m.cmd.Start(); err != nil {
		log.Fatal(err)
	}
	m.done = make(chan struct{})
	go func() { _ = m.cmd.Wait(); logf.Close(); close(m.done) }()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get(m.api + "/api/ping"); err == nil {
			resp.Body.Close()
			return
		}
	}
	log.Fatalf("master %s did not answer", m.api)
}

func (m *master) signal(s syscall.Signal) {
	_ = m.cmd.Process.Signal(s)
	<-m.done
}

func (m *master) alive() bool {
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

func (m *master) isLeader() bool {
	resp, err := (&http.Client{Timeout: time.Second}).Get(m.api + "/api/ping")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var p struct{ Leader *bool }
	_ = json.NewDecoder(resp.Body).Decode(&p)
	return p.Leader != nil && *p.Leader
}

var tokenRE = regexp.MustCompile(`unv_[A-Za-z0-9_-]{43}`)

func adminKey(dir string) string {
	out, err := exec.Command(bin, "key", "create", "admin", "ALL", "--data", dir).CombinedOutput()
	if err != nil {
		log.Fatalf("key create: %v %s", err, out)
	}
	return tokenRE.FindString(string(out))
}

// freePortPair is a free port whose next one (the NATS routes) is free.
func freePortPair() int {
	for {
		p := freePort()
		if ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+1)); err == nil {
			ln.Close()
			return p
		}
	}
}

func newCluster(root, secret string) ([]*master, string) {
	var peers []string
	for range 3 {
		peers = append(peers, "127.0.0.1:"+strconv.Itoa(freePortPair()))
	}
	var ms []*master
	for i := range 3 {
		dir := filepath.Join(root, "m"+strconv.Itoa(i))
		_ = os.MkdirAll(dir, 0o700)
		port := freePort()
		nats := "127.0.0.1:" + strconv.Itoa(freePort())
		natsURLs = append(natsURLs, "nats://"+nats)
		ms = append(ms, &master{dir: dir, api: "http://127.0.0.1:" + strconv.Itoa(port), args: []string{"--addr", "127.0.0.1:" + strconv.Itoa(port),
			"--ha-addr", peers[i], "--ha-peers", strings.Join(peers, ","), "--ha-secret-file", secret, "--cluster-addr", nats}})
	}
	token := adminKey(ms[0].dir)
	for _, m := range ms {
		m.start()
	}
	waitLeader(ms)
	return ms, token
}

func waitLeader(ms []*master) int {
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for i, m := range ms {
			if m.alive() && m.isLeader() {
				return i
			}
		}
	}
	log.Fatal("no leader")
	return -1
}

// post sends one write; ok means 2xx.
func post(api, token, path, body string, method string) bool {
	req, _ := http.NewRequest(method, api+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode/100 == 2
}

var seq atomic.Int64

// writers writes from n clients through apis() until stop; every
// acknowledged label is recorded with its time.
type ack struct {
	label    string
	sent, at time.Time
}

func writers(n int, token string, apis func() []string, stop <-chan struct{}, out chan<- ack) *sync.WaitGroup {
	var wg sync.WaitGroup
	for c := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				list := apis()
				if len(list) == 0 {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				api := list[i%len(list)]
				sent := time.Now()
				k := seq.Add(1)
				label := "w" + strconv.FormatInt(k, 10)
				var ok bool
				if k%4 == 0 { // a configuration now and then
					ok = post(api, token, "/api/configurations/c"+strconv.FormatInt(k, 10), `{"command":"true"}`, "PUT")
				} else {
					ok = post(api, token, "/api/keys", `{"label":"`+label+`","scope":"PUBLIC"}`, "POST")
				}
				if ok {
					out <- ack{label: label, sent: sent, at: time.Now()}
				} else {
					time.Sleep(5 * time.Millisecond)
				}
			}
		}()
	}
	return &wg
}

func rate(token string, apis []string, d time.Duration) float64 {
	stop := make(chan struct{})
	acks := make(chan ack, 1<<20)
	wg := writers(8, token, func() []string { return apis }, stop, acks)
	time.Sleep(d)
	close(stop)
	wg.Wait()
	return float64(len(acks)) / d.Seconds()
}

// profiles takes a CPU profile of each of apis for most of d, written to
// prefix-<i>.prof (the leader's name says so); the returned func waits
// for them.
func profiles(token string, apis []string, prefix string, d time.Duration) func() {
	var wg sync.WaitGroup
	secs := max(1, int(d.Seconds())-1)
	for i, a := range apis {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", a+"/api/debug/pprof/profile?seconds="+strconv.Itoa(secs), nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				log.Print(err)
				return
			}
			defer resp.Body.Close()
			var ping struct{ Leader bool }
			if r, err := http.Get(a + "/api/ping"); err == nil {
				_ = json.NewDecoder(r.Body).Decode(&ping)
				r.Body.Close()
			}
			name := prefix + "-" + strconv.Itoa(i)
			if ping.Leader {
				name += "-leader"
			}
			f, err := os.Create(name + ".prof")
			if err != nil {
				log.Print(err)
				return
			}
			_, _ = io.Copy(f, resp.Body)
			_ = f.Close()
		}()
	}
	return wg.Wait
}

// commitLatency is what a master's metrics say of its Raft commits: how
// many, and their mean latency.
func commitLatency(api string) string {
	resp, err := http.Get(api + "/api/metrics")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	var sum, count float64
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "universe_raft_commit_seconds_sum "); ok {
			sum, _ = strconv.ParseFloat(v, 64)
		}
		if v, ok := strings.CutPrefix(l, "universe_raft_commit_seconds_count "); ok {
			count, _ = strconv.ParseFloat(v, 64)
		}
	}
	if count == 0 {
		return "no commits"
	}
	return fmt.Sprintf("%.0f commits, mean %.2f ms", count, sum/count*1000)
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func pct(v []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), v...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func main() {
	kills := flag.Int("kills", 10, "SIGKILLs of the leader")
	terms := flag.Int("terms", 5, "SIGTERMs of the leader")
	rounds := flag.Int("rounds", 5, "throughput rounds")
	seconds := flag.Float64("seconds", 3, "seconds a throughput round")
	instances := flag.Int("instances", 20, "instances on an agent node, checked after the kills (same pid, no restart, none twice)")
	keep := flag.Bool("keep", false, "keep the masters' folders (their logs) after the run")
	profile := flag.String("profile", "", "write CPU profiles of every master during the last round's writes through all masters, and of the single master during its, to PREFIX-<n>.prof")
	withFloor := flag.Bool("floor", true, "measure the floor too in every round (bench/ha/floor: the same writes by bare processes, alone and as three Raft members)")
	flag.Parse()
	root, err := os.MkdirTemp("", "bench-ha-")
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		if *keep {
			log.Printf("kept %s (every master's log)", root)
		} else {
			os.RemoveAll(root)
		}
	}()
	bin = filepath.Join(root, "universe")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/universe").CombinedOutput(); err != nil {
		log.Fatalf("build: %v %s", err, out)
	}
	secret := filepath.Join(root, "secret")
	_ = os.WriteFile(secret, []byte("bench-secret-0123456789abcdef0123456789"), 0o600)

	ms, token := newCluster(filepath.Join(root, "cluster"), secret)
	defer func() {
		for _, m := range ms {
			if m.alive() {
				m.signal(syscall.SIGKILL)
			}
		}
	}()
	pids, agent := startInstances(root, token, ms, *instances)
	if agent != nil {
		defer func() { _ = agent.Process.Kill(); _ = agent.Wait() }()
	}
	single := &master{dir: filepath.Join(root, "single")}
	_ = os.MkdirAll(single.dir, 0o700)
	sport := freePort()
	single.api, single.args = "http://127.0.0.1:"+strconv.Itoa(sport), []string{"--addr", "127.0.0.1:" + strconv.Itoa(sport)}
	stoken := adminKey(single.dir)
	single.start()
	var all []string
	for _, m := range ms {
		all = append(all, m.api)
	}
	var fl *floor
	if *withFloor && *rounds > 0 {
		fl = startFloor(root)
		defer fl.stop()
	}
	d := time.Duration(*seconds * float64(time.Second))
	var rc, rl, rs, rfc, rfl, rfs []float64
	for r := range *rounds {
		var done func()
		if *profile != "" && r == *rounds-1 {
			done = profiles(token, all, *profile+"-master", d)
		}
		var mpids []int
		for _, m := range ms {
			mpids = append(mpids, m.cmd.Process.Pid)
		}
		c, cc := rateCPU(token, all, d, mpids)
		if done != nil {
			done()
		}
		l := rate(token, []string{ms[waitLeader(ms)].api}, d)
		if *profile != "" && r == *rounds-1 {
			done = profiles(stoken, []string{single.api}, *profile+"-single", d)
		}
		s, sc := rateCPU(stoken, []string{single.api}, d, []int{single.cmd.Process.Pid})
		if done != nil {
			done()
		}
		rc, rl, rs = append(rc, c), append(rl, l), append(rs, s)
		fmt.Printf("round %d: cluster %.0f writes/s (to the leader only %.0f), single %.0f writes/s, ratio %.2f; CPU a write: the three masters %s, the single %s\n", r+1, c, l, s, c/s, cc, sc)
		if fl != nil {
			fc, fcc := rateCPU("", fl.members, d, fl.pids(1, 4))
			fl1 := rate("", []string{fl.leader()}, d)
			fs, fsc := rateCPU("", []string{fl.single}, d, fl.pids(0, 1))
			rfc, rfl, rfs = append(rfc, fc), append(rfl, fl1), append(rfs, fs)
			fmt.Printf("         floor: cluster %.0f writes/s (to the leader only %.0f), single %.0f writes/s, ratio %.2f; CPU a write: the three members %s, the single %s\n", fc, fl1, fs, fc/fs, fcc, fsc)
		}
	}
	if fl != nil {
		fl.stop() // not beside the kills
	}
	for _, a := range all {
		fmt.Printf("  %s: %s\n", a, commitLatency(a))
	}
	single.signal(syscall.SIGTERM)
	if len(rc) == 0 {
		rc, rl, rs = []float64{0}, []float64{0}, []float64{1}
	}
	fmt.Printf("throughput at 8 clients: cluster %.0f/s (leader only %.0f/s: %.2f), single %.0f/s: ratio %.2f (goal >= 0.5)\n",
		median(rc), median(rl), median(rl)/median(rs), median(rs), median(rc)/median(rs))
	if len(rfc) > 0 {
		fmt.Printf("floor at 8 clients (bare processes, same writes, same rounds): cluster %.0f/s (leader only %.0f/s: %.2f), single %.0f/s: ratio %.2f; universe's cluster %.2f of the floor cluster, its single master %.2f of the floor single\n",
			median(rfc), median(rfl), median(rfl)/median(rfs), median(rfs), median(rfc)/median(rfs), median(rc)/median(rfc), median(rs)/median(rfs))
	}

	// Kills under writes.
	var mu sync.Mutex
	var acked []ack
	acks := make(chan ack, 1<<16)
	collected := make(chan struct{})
	go func() {
		for a := range acks {
			mu.Lock()
			acked = append(acked, a)
			mu.Unlock()
		}
		close(collected)
	}()
	live := func() []string {
		var out []string
		for _, m := range ms {
			if m.alive() {
				out = append(out, m.api)
			}
		}
		return out
	}
	// firstAckSentAfter is when the first write sent after t was
	// acknowledged (zero: none yet): writes in flight at a kill do not
	// count.
	firstAckSentAfter := func(t time.Time) time.Time {
		mu.Lock()
		defer mu.Unlock()
		var first time.Time
		for i := len(acked) - 1; i >= 0 && acked[i].at.After(t); i-- {
			if acked[i].sent.After(t) && (first.IsZero() || acked[i].at.Before(first)) {
				first = acked[i].at
			}
		}
		return first
	}
	stop := make(chan struct{})
	wg := writers(8, token, live, stop, acks)
	var toWrite, toAll []time.Duration
	for k := range *kills {
		lead := waitLeader(ms)
		time.Sleep(300 * time.Millisecond)
		killed := time.Now()
		ms[lead].signal(syscall.SIGKILL)
		for firstAckSentAfter(killed).IsZero() && time.Since(killed) < 60*time.Second {
			time.Sleep(2 * time.Millisecond)
		}
		tw := firstAckSentAfter(killed).Sub(killed)
		// Every survivor answers an API call (a read and a write).
		for {
			ok := true
			for i, m := range ms {
				if i != lead && !post(m.api, token, "/api/configurations/probe", `{"command":"true"}`, "PUT") {
					ok = false
				}
			}
			if ok || time.Since(killed) > 60*time.Second {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		ta := time.Since(killed)
		toWrite, toAll = append(toWrite, tw), append(toAll, ta)
		fmt.Printf("kill %d: writes again after %v, every survivor answers after %v\n", k+1, tw.Round(time.Millisecond), ta.Round(time.Millisecond))
		ms[lead].start()
	}
	var pauses []time.Duration
	for t := range *terms {
		lead := waitLeader(ms)
		time.Sleep(300 * time.Millisecond)
		mu.Lock()
		from := len(acked)
		mu.Unlock()
		stopped := time.Now()
		ms[lead].signal(syscall.SIGTERM)
		time.Sleep(2 * time.Second)
		mu.Lock()
		var gap time.Duration
		prev := stopped
		for _, a := range acked[from:] {
			if g := a.at.Sub(prev); g > gap {
				gap = g
			}
			prev = a.at
		}
		mu.Unlock()
		pauses = append(pauses, gap)
		fmt.Printf("SIGTERM %d: longest pause between acknowledged writes %v\n", t+1, gap.Round(time.Millisecond))
		ms[lead].start()
	}
	close(stop)
	wg.Wait()
	close(acks)
	<-collected
	lead := waitLeader(ms)
	// Every master has applied what the leader has before it is asked.
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		req, _ := http.NewRequest("GET", ms[lead].api+"/api/cluster/masters", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			continue
		}
		var list []struct {
			AppliedIndex uint64
			State        string
		}
		_ = json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		same := len(list) == 3
		for _, m := range list {
			same = same && m.State != "unreachable" && m.AppliedIndex == list[0].AppliedIndex
		}
		if same {
			break
		}
	}
	// Every acknowledged key on every master.
	lost := 0
	keys := 0
	for mi, m := range ms {
		lostHere := 0
		defer func() {
			if lostHere > 0 {
				fmt.Printf("master %d lacks %d acknowledged keys\n", mi, lostHere)
			}
		}()
		req, _ := http.NewRequest("GET", m.api+"/api/keys", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		var list []struct{ Label string }
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		_ = json.NewDecoder(bytes.NewReader(b)).Decode(&list)
		have := map[string]bool{}
		for _, k := range list {
			have[k.Label] = true
		}
		for _, a := range acked {
			n, _ := strconv.ParseInt(strings.TrimPrefix(a.label, "w"), 10, 64)
			if n%4 == 0 {
				continue // a configuration
			}
			keys++
			if !have[a.label] {
				lost++
				lostHere++
			}
		}
	}
	if len(toWrite) > 0 {
		fmt.Printf("SIGKILL of the leader, %d times: writes again p50 %v p99 %v (goal p99 <= 5s); every survivor answers p50 %v max %v (goal <= 10s)\n",
			len(toWrite), pct(toWrite, .5).Round(time.Millisecond), pct(toWrite, .99).Round(time.Millisecond), pct(toAll, .5).Round(time.Millisecond), pct(toAll, 1).Round(time.Millisecond))
	}
	if len(pauses) > 0 {
		fmt.Printf("SIGTERM of the leader, %d times: longest write pause p50 %v max %v (goal <= 1s)\n", len(pauses), pct(pauses, .5).Round(time.Millisecond), pct(pauses, 1).Round(time.Millisecond))
	}
	fmt.Printf("acknowledged writes %d (keys checked on 3 masters: %d), lost %d\n", len(acked), keys, lost)
	checkInstances(token, ms[lead].api, pids)
	for id := range pids { // their processes go with them
		post(ms[lead].api, token, "/api/instances/"+id, "", "DELETE")
	}
}

// startInstances registers an agent node, runs an agent process connected
// to every master's NATS server, and starts n instances on it through the
// cluster; it returns their pids by id.
func startInstances(root, token string, ms []*master, n int) (map[string]int64, *exec.Cmd) {
	if n == 0 {
		return nil, nil
	}
	var made struct{ Key string }
	for deadline := time.Now().Add(10 * time.Second); made.Key == ""; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			log.Fatal("node create")
		}
		req, _ := http.NewRequest("POST", ms[0].api+"/api/cluster/nodes", strings.NewReader(`{"name":"bench-node"}`))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			continue
		}
		_ = json.NewDecoder(resp.Body).Decode(&made)
		resp.Body.Close()
	}
	dir := filepath.Join(root, "agent")
	_ = os.MkdirAll(dir, 0o700)
	agent := exec.Command(bin, "agent", "--master", strings.Join(natsURLs, ","), "--data", dir)
	agent.Env = append(os.Environ(), "UNIVERSE_NODE_KEY="+made.Key)
	logf, _ := os.OpenFile(filepath.Join(dir, "agent.log"), os.O_CREATE|os.O_WRONLY, 0o600)
	agent.Stdout, agent.Stderr = logf, logf
	if err := agent.Start(); err != nil {
		log.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !post(ms[0].api, token, "/api/configurations/game", `{"command":"exec sleep 100000","stopTimeoutSeconds":1,"ramMB":16,"cpu":1,"availablePorts":{"min":30000,"max":30999}}`, "PUT"); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			log.Fatal("configuration game")
		}
	}
	pids := map[string]int64{}
	for deadline := time.Now().Add(60 * time.Second); len(pids) < n && time.Now().Before(deadline); {
		req, _ := http.NewRequest("POST", ms[len(pids)%3].api+"/api/instances", strings.NewReader(`{"configurationName":"game"}`))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			continue
		}
		var info api.InstanceInfo
		body, _ := io.ReadAll(resp.Body)
		_ = json.Unmarshal(body, &info)
		resp.Body.Close()
		if resp.StatusCode == 201 && info.ProcessPid != nil {
			pids[info.ID] = *info.ProcessPid
		} else {
			if resp.StatusCode != 503 { // 503: the node is not up yet
				fmt.Printf("create: %d %s\n", resp.StatusCode, body)
			}
			time.Sleep(200 * time.Millisecond) // the node is not up yet
		}
	}
	fmt.Printf("%d instances on an agent node, started through the cluster\n", len(pids))
	return pids, agent
}

// checkInstances compares what the leader says of the instances, and the
// processes that run, with what they were before the kills.
func checkInstances(token, leader string, pids map[string]int64) {
	if len(pids) == 0 {
		return
	}
	var list []api.InstanceInfo
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		req, _ := http.NewRequest("GET", leader+"/api/instances", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			continue
		}
		list = nil
		_ = json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		online := 0
		for _, in := range list {
			if in.State == "ONLINE" {
				online++
			}
		}
		if online >= len(pids) {
			break
		}
	}
	samePid, restarted, extra := 0, 0, 0
	for _, in := range list {
		pid, ok := pids[in.ID]
		if !ok {
			extra++
			continue
		}
		if in.ProcessPid != nil && *in.ProcessPid == pid && in.State == "ONLINE" {
			samePid++
		}
		restarted += in.Restarts
	}
	twice := 0
	for id := range pids {
		if n := procsOf(id); n > 1 {
			twice++
		}
	}
	fmt.Printf("instances after the kills: %d of %d ONLINE with the pid they started with, %d restarts, %d instances the cluster made besides, %d ids running twice\n",
		samePid, len(pids), restarted, extra, twice)
}

// procsOf counts the live processes of instance id (their environment
// names it).
func procsOf(id string) int {
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !bytes.Contains(env, []byte("\x00UNIVERSE_INSTANCE_ID="+id+"\x00")) && !bytes.HasPrefix(env, []byte("UNIVERSE_INSTANCE_ID="+id+"\x00")) {
			continue
		}
		if st, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil && !bytes.Contains(st, []byte(") Z ")) {
			n++
		}
	}
	return n
}

// floor is bench/ha/floor running: a single process and a cluster of
// three, their HTTP addresses.
type floor struct {
	single  string
	members []string
	procs   []*exec.Cmd
}

// startFloor builds bench/ha/floor and starts it alone and as three Raft
// members (in root), once the cluster has a leader.
func startFloor(root string) *floor {
	bin := filepath.Join(root, "floor")
	if out, err := exec.Command("go", "build", "-o", bin, "./bench/ha/floor").CombinedOutput(); err != nil {
		log.Fatalf("build the floor: %v %s", err, out)
	}
	f := &floor{}
	run := func(dir string, args ...string) {
		_ = os.MkdirAll(dir, 0o700)
		cmd := exec.Command(bin, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // gone with the bench, whatever ends it
		logf, _ := os.Create(filepath.Join(dir, "log"))
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			log.Fatal(err)
		}
		f.procs = append(f.procs, cmd)
	}
	sp := freePort()
	f.single = "http://127.0.0.1:" + strconv.Itoa(sp)
	run(filepath.Join(root, "floor-single"), "single", "127.0.0.1:"+strconv.Itoa(sp), filepath.Join(root, "floor-single"))
	var peers []string
	for range 3 {
		h := "127.0.0.1:" + strconv.Itoa(freePort())
		peers = append(peers, h+"=127.0.0.1:"+strconv.Itoa(freePort()))
		f.members = append(f.members, "http://"+h)
	}
	for i := range 3 {
		dir := filepath.Join(root, "floor-"+strconv.Itoa(i))
		run(dir, "raft", strconv.Itoa(i), dir, strings.Join(peers, ","))
	}
	f.leader() // elected
	deadline := time.Now().Add(30 * time.Second)
	for !post(f.single, "", "/", "{}", "POST") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	return f
}

// leader is the HTTP address of the floor cluster's leader (waits for one).
func (f *floor) leader() string {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, m := range f.members {
			if resp, err := http.Get(m + "/leader"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return m
				}
			}
		}
	}
	log.Fatal("the floor cluster has no leader")
	return ""
}

// pids are the floor's processes from i to j (0: the single, 1-3: the
// members).
func (f *floor) pids(i, j int) []int {
	var out []int
	for _, c := range f.procs[i:j] {
		out = append(out, c.Process.Pid)
	}
	return out
}

func (f *floor) stop() {
	for _, c := range f.procs {
		_ = c.Process.Kill()
		_ = c.Wait()
	}
}

// cpuTicks is the CPU time that process pid has used, in user mode and
// in the kernel, in clock ticks (100 a second).
func cpuTicks(pid int) (user, system int64) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	user, _ = strconv.ParseInt(f[11], 10, 64)
	system, _ = strconv.ParseInt(f[12], 10, 64)
	return user, system
}

// cpuUse is the CPU time per acknowledged write that processes used
// together, and the kernel's share of it.
type cpuUse struct{ perWrite, kernel float64 }

func (c cpuUse) String() string {
	return fmt.Sprintf("%.0f µs (%.0f %% in the kernel)", c.perWrite, 100*c.kernel)
}

// rateCPU is rate, and the CPU time the processes pids used meanwhile.
func rateCPU(token string, apis []string, d time.Duration, pids []int) (float64, cpuUse) {
	var user, system int64
	for _, p := range pids {
		u, s := cpuTicks(p)
		user, system = user-u, system-s
	}
	perSecond := rate(token, apis, d)
	for _, p := range pids {
		u, s := cpuTicks(p)
		user, system = user+u, system+s
	}
	writes := max(perSecond*d.Seconds(), 1) // (a round with none: its CPU, not a division by zero)
	return perSecond, cpuUse{float64(user+system) * 1e4 / writes, float64(system) / float64(max(user+system, 1))}
}
