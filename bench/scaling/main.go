// Command scaling is the scaling bench: a master process and agent
// processes on this machine, a configuration of fake game servers
// (bench/scaling/fakeserver, each reporting its players with its own key as
// the original's plugin does), and a proxy played by this program that
// sends a wave of players (0 → peak → 0 over -minutes) to joinable
// instances only. It reports the time from the headroom dropping (the proxy
// filling an instance) to the start of a new instance, the starts and
// stops against those a perfect oracle needs, stops of instances with
// players, the most instances running against the maximum, and the
// player-seconds that found no joinable instance.
//
//	go run ./bench/scaling -minutes 8 -peak 200 -agents 2
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/bench/internal/proc"
)

func main() {
	minutes := flag.Float64("minutes", 8, "the wave's length (an hour's wave, scaled down)")
	peak := flag.Int("peak", 200, "players at the wave's top")
	perServer := flag.Int("max", 20, "maxPlayers of a server")
	headroom := flag.Int("headroom", 2, "readyHeadroom")
	maxInst := flag.Int("maxinst", 16, "maximumServiceCount")
	scaleDown := flag.Int("scaledown", 30, "scaleDownAfterSeconds")
	agents := flag.Int("agents", 2, "agent processes beside the master")
	load := flag.Int("load", 0, "instead of the wave: this many instances reporting every 5 s; the scaler's share of the master's CPU from a 30 s profile")
	flag.Parse()

	dir, err := os.MkdirTemp("", "scaling-bench-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin := proc.Build(dir)
	fake := filepath.Join(dir, "fakeserver")
	if out, err := exec.Command("go", "build", "-o", fake, "./bench/scaling/fakeserver").CombinedOutput(); err != nil {
		log.Fatalf("build fakeserver: %v %s", err, out)
	}
	data := filepath.Join(dir, "master")
	_ = os.MkdirAll(data, 0o700)
	token := proc.AdminKey(bin, data)
	natsPort := proc.FreePort()
	m := proc.StartMaster(bin, data, proc.FreePort(), token, "--cluster-addr", "127.0.0.1:"+strconv.Itoa(natsPort))
	var agentCmds []*exec.Cmd
	defer func() {
		m.DeleteAll() // while the agents run: they stop their instances
		for _, a := range agentCmds {
			_ = a.Process.Kill()
			_ = a.Wait()
		}
		m.Stop()
	}()
	for i := 1; i <= *agents; i++ {
		name := "edge-" + strconv.Itoa(i)
		var n api.NodeCreated
		m.Call("POST", "/api/cluster/nodes", `{"name":"`+name+`"}`, &n)
		adir := filepath.Join(dir, name)
		_ = os.MkdirAll(adir, 0o700)
		cmd := exec.Command(bin, "agent", "--master", "nats://127.0.0.1:"+strconv.Itoa(natsPort), "--data", adir)
		cmd.Env = append(os.Environ(), "UNIVERSE_NODE_KEY="+n.Key)
		logf, _ := os.Create(filepath.Join(dir, name+".log"))
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			log.Fatal(err)
		}
		agentCmds = append(agentCmds, cmd)
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			var node api.ClusterNode
			m.Call("GET", "/api/cluster/nodes/"+name, "", &node)
			if node.State == api.NodeOnline {
				break
			}
			if time.Now().After(deadline) {
				log.Fatalf("%s did not come online", name)
			}
		}
	}
	if *load > 0 {
		loadMode(m, token, bin, *load)
		return
	}
	cfg := fmt.Sprintf(`{"command":"exec %s -max %d","availablePorts":{"min":23000,"max":23199},"stopTimeoutSeconds":2,"minimumServiceCount":1,"maximumServiceCount":%d,"scaling":{"readyHeadroom":%d,"fullAt":0.9,"scaleDownAfterSeconds":%d}}`,
		fake, *perServer, *maxInst, *headroom, *scaleDown)
	m.Call("PUT", "/api/configurations/lobby", cfg, nil)
	fmt.Printf("a master and %d agents; lobby: %d players a server, headroom %d, maximum %d, scale down after %d s; a wave of %d players over %.1f minutes\n",
		*agents, *perServer, *headroom, *maxInst, *scaleDown, *peak, *minutes)

	full := int(math.Ceil(float64(*perServer) * 0.9)) // joinable below this
	wave := time.Duration(*minutes * float64(time.Minute))
	target := func(t time.Duration) int {
		if t < 0 || t > wave {
			return 0
		}
		return int(math.Round(float64(*peak) * (1 - math.Cos(2*math.Pi*t.Seconds()/wave.Seconds())) / 2))
	}
	// Let the first instances (the minimum, the headroom) come up.
	time.Sleep(15 * time.Second)

	assigned := map[string]int{} // the proxy's players on each instance
	known := map[string]api.InstanceInfo{}
	var drops []time.Time // headroom drops not yet answered by a start
	var latencies []time.Duration
	starts, stops, stoppedWithPlayers, maxActive := 0, 0, 0, 0
	waiting := 0.0 // player-seconds without a joinable instance
	nodes := map[string]int{}
	wasShort := false
	tick := 500 * time.Millisecond
	t0 := time.Now()
	set := func(id string, n int) {
		assigned[id] = n
		req, _ := http.NewRequest("POST", m.Base+"/api/instances/"+id+"/execute", strings.NewReader(fmt.Sprintf(`{"command":"players %d"}`, n)))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	for time.Since(t0) < wave+time.Duration(*scaleDown+30)*time.Second {
		time.Sleep(tick)
		now := time.Now()
		var list []api.InstanceInfo
		m.Call("GET", "/api/instances?configuration=lobby", "", &list)
		seen := map[string]bool{}
		active := 0
		for _, in := range list {
			if in.State != "ONLINE" && in.State != "CREATING" {
				continue
			}
			seen[in.ID] = true
			active++
			if _, ok := known[in.ID]; !ok {
				known[in.ID] = in
				starts++
				nodes[in.WrapperNodeID]++
				if len(drops) > 0 {
					latencies = append(latencies, time.UnixMilli(in.CreatedAt).Sub(drops[0]))
					drops = drops[1:]
				}
			}
		}
		maxActive = max(maxActive, active)
		for id := range known {
			if !seen[id] {
				stops++
				if assigned[id] > 0 {
					stoppedWithPlayers++
				}
				delete(known, id)
				delete(assigned, id)
			}
		}
		// The proxy: players come and go as the wave says, onto joinable
		// instances (the fullest first), off the emptiest first.
		want := target(time.Since(t0))
		have := 0
		for _, n := range assigned {
			have += n
		}
		joinable := map[string]bool{}
		for _, in := range list {
			if in.Joinable {
				joinable[in.ID] = true
			}
		}
		ids := make([]string, 0, len(assigned)+len(joinable))
		for id := range known {
			ids = append(ids, id)
		}
		if want > have {
			sort.Slice(ids, func(i, j int) bool { return assigned[ids[i]] > assigned[ids[j]] })
			for _, id := range ids {
				if want <= have {
					break
				}
				if !joinable[id] || assigned[id] >= full {
					continue
				}
				add := min(full-assigned[id], want-have)
				set(id, assigned[id]+add)
				have += add
			}
			waiting += float64(want-have) * tick.Seconds()
		} else if want < have {
			sort.Slice(ids, func(i, j int) bool { return assigned[ids[i]] < assigned[ids[j]] })
			for _, id := range ids {
				if have <= want {
					break
				}
				if assigned[id] == 0 {
					continue
				}
				sub := min(assigned[id], have-want)
				set(id, assigned[id]-sub)
				have -= sub
			}
		}
		// Headroom as the proxy sees it after its moves.
		j := 0
		for id := range joinable {
			if assigned[id] < full {
				j++
			}
		}
		short := j < *headroom
		if short && !wasShort {
			drops = append(drops, now)
		}
		wasShort = short
	}

	// The oracle: at each moment floor(players/full) full servers and
	// headroom more, within the minimum and the maximum; its starts and
	// stops are the ups and downs of that count.
	need := func(p int) int { return min(max(p/full+*headroom, 1), *maxInst) }
	oracle, prev := 0, need(0)
	for s := 0.0; s <= wave.Seconds(); s += 0.5 {
		n := need(target(time.Duration(s * float64(time.Second))))
		if n > prev {
			oracle += n - prev
		} else {
			oracle += prev - n
		}
		prev = n
	}
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	q := func(p float64) time.Duration {
		if len(latencies) == 0 {
			return 0
		}
		return latencies[min(len(latencies)-1, int(p*float64(len(latencies))))]
	}
	fmt.Printf("headroom dropped → new instance created: %d samples, p50 %s, p99 %s, max %s (goal p99 <= 2 s)\n",
		len(latencies), q(0.5).Round(time.Millisecond), q(0.99).Round(time.Millisecond), q(1).Round(time.Millisecond))
	fmt.Printf("starts %d + stops %d = %d; a perfect oracle: %d; ratio %.2f (goal <= 1.2)\n", starts, stops, starts+stops, oracle, float64(starts+stops)/float64(max(oracle, 1)))
	fmt.Printf("stops of an instance with players: %d; most instances running: %d of a maximum of %d; player-seconds without a joinable instance: %.0f\n",
		stoppedWithPlayers, maxActive, *maxInst, waiting)
	fmt.Printf("instances started by node: %v\n", nodes)
}

// loadMode: n instances of a scaled configuration (sleep processes: the
// reports come from here, with the admin key, n/5 a second), then a 30 s
// CPU profile of the master: the samples under the scaler's passes against
// the wall time are its share of one core.
func loadMode(m *proc.Master, token, bin string, n int) {
	m.Call("PUT", "/api/configurations/load", fmt.Sprintf(`{"command":"exec sleep 3600","availablePorts":{"min":30000,"max":%d},"stopTimeoutSeconds":1,"minimumServiceCount":%d,"maximumServiceCount":%d,"scaling":{"readyHeadroom":1,"scaleDownAfterSeconds":3600}}`,
		30000+n+10, n, n+10), nil)
	t0 := time.Now()
	var list []api.InstanceInfo
	for deadline := time.Now().Add(15 * time.Minute); ; time.Sleep(2 * time.Second) {
		m.Call("GET", "/api/instances?configuration=load", "", &list)
		online := 0
		for _, in := range list {
			if in.State == "ONLINE" {
				online++
			}
		}
		if online >= n {
			break
		}
		if time.Now().After(deadline) {
			log.Fatalf("%d of %d online after 15 minutes", online, n)
		}
	}
	fmt.Printf("%d instances online in %s\n", n, time.Since(t0).Round(time.Second))
	stop := make(chan struct{})
	sent := 0
	go func() {
		client := &http.Client{Timeout: 5 * time.Second}
		tick := time.NewTicker(5 * time.Second / time.Duration(len(list)))
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			in := list[i%len(list)]
			body := fmt.Sprintf(`{"state":"ONLINE","players":%d,"maxPlayers":50}`, (i/len(list)+i)%40)
			req, _ := http.NewRequest("PUT", m.Base+"/api/instances/"+in.ID+"/state", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			if resp, err := client.Do(req); err == nil {
				resp.Body.Close()
				sent++
			}
		}
	}()
	time.Sleep(15 * time.Second) // reports from every instance first
	dir, _ := os.MkdirTemp("", "scaling-profile-")
	defer os.RemoveAll(dir)
	prof := filepath.Join(dir, "cpu.pb.gz")
	req, _ := http.NewRequest("GET", m.Base+"/api/debug/pprof/profile?seconds=30", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		log.Fatal(err)
	}
	f, _ := os.Create(prof)
	_, _ = io.Copy(f, resp.Body)
	resp.Body.Close()
	f.Close()
	close(stop)
	total := topSeconds(bin, prof, "")
	scaler := topSeconds(bin, prof, `scaling\.\(\*Scaler\)\.Pass`)
	fmt.Printf("%d reports/s from %d instances; the master's CPU over 30 s: %.2f s (%.1f%% of one core), of which the scaler's passes %.3f s (%.2f%% of one core; goal <= 5%%)\n",
		len(list)/5, len(list), total, total/30*100, scaler, scaler/30*100)
}

// topSeconds is the CPU seconds of the profile (under focus, a regexp of
// functions, when set), from go tool pprof's summary line.
func topSeconds(bin, prof, focus string) float64 {
	args := []string{"tool", "pprof", "-top", "-nodecount=100000", "-nodefraction=0", "-edgefraction=0"}
	if focus != "" {
		args = append(args, "-focus="+focus)
	}
	out, err := exec.Command("go", append(args, bin, prof)...).CombinedOutput()
	if err != nil {
		log.Fatalf("pprof: %v %s", err, out)
	}
	return parseSamples(string(out), focus != "")
}

// parseSamples reads pprof -top's header: the total samples, or with a
// focus the part it accounts for.
func parseSamples(out string, focused bool) float64 {
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if !focused {
			if i := strings.Index(l, "Total samples = "); i >= 0 {
				return seconds(strings.Fields(l[i+len("Total samples = "):])[0])
			}
			continue
		}
		if strings.HasPrefix(l, "Showing nodes accounting for ") {
			return seconds(strings.TrimSuffix(strings.Fields(strings.TrimPrefix(l, "Showing nodes accounting for "))[0], ","))
		}
	}
	return 0
}

func seconds(s string) float64 {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0
	}
	return d.Seconds()
}
