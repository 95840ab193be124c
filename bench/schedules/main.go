// Command schedules measures schedules as an operator runs them: a real
// master process (the universe binary, built once), N schedules firing every
// minute, each sending a line to one instance, for some minutes; with -kill,
// the master is SIGKILLed two seconds before a minute's boundary and started
// again a second after it, so that the firing at that boundary falls while
// it is down. Then every schedule's runs are read: firings missing, firings run
// twice, lateness (started − fire time) p50/p99/max.
//
//	go run ./bench/schedules -n 1000 -minutes 4 -kill
//
// With -kill the master is down from 2 s before a boundary to 1 s after
// it: that firing runs when it is back (catch-up), late by those seconds.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/bench/internal/proc"
)

var (
	bin string
	m   *proc.Master
)

func main() {
	n := flag.Int("n", 1000, "schedules, each firing every minute")
	minutes := flag.Int("minutes", 4, "minutes to run")
	kill := flag.Bool("kill", false, "SIGKILL the master 2 s before the middle minute's boundary, and start it again at once")
	flag.Parse()
	root, err := os.MkdirTemp("", "bench-schedules-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(root)
	bin = proc.Build(root)
	data := filepath.Join(root, "data")
	_ = os.MkdirAll(data, 0o700)
	token := proc.AdminKey(bin, data)
	port := proc.FreePort()
	m = proc.StartMaster(bin, data, port, token)
	defer func() { m.Stop() }() // (m may be the master started again)

	m.Call("PUT", "/api/configurations/sink", `{"command":"exec cat >/dev/null","stopTimeoutSeconds":1,"availablePorts":{"min":23500,"max":23600}}`, nil)
	// At most 100 schedules an instance: n/100 instances.
	var inst []api.InstanceInfo
	for i := 0; i < (*n+99)/100; i++ {
		var in api.InstanceInfo
		m.Call("POST", "/api/instances", `{"configurationName":"sink"}`, &in)
		inst = append(inst, in)
	}
	t0 := time.Now()
	ids := make([]string, *n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			var s api.Schedule
			m.Call("POST", "/api/schedules", fmt.Sprintf(`{"name":"s%d","instanceId":"%s","cron":"* * * * *","enabled":true,"tasks":[{"type":"command","payload":"tick %d"}]}`, i, inst[i/100].ID, i), &s)
			ids[i] = s.ID
		}(i)
	}
	wg.Wait()
	created := time.Now()
	fmt.Printf("%d schedules created in %s\n", *n, created.Sub(t0).Round(time.Millisecond))
	first := created.Truncate(time.Minute).Add(time.Minute)
	last := first.Add(time.Duration(*minutes-1) * time.Minute)
	var killedAt, boundary time.Time
	if *kill {
		boundary = first.Add(time.Duration(*minutes/2) * time.Minute)
		time.Sleep(time.Until(boundary.Add(-2 * time.Second)))
		_ = m.Cmd.Process.Signal(syscall.SIGKILL)
		_ = m.Cmd.Wait()
		killedAt = time.Now()
		// Down across the boundary: started again a second after it.
		time.Sleep(time.Until(boundary.Add(time.Second)))
		m = proc.StartMaster(bin, data, port, token)
		fmt.Printf("master SIGKILLed at %s, started again at %s, answering after %s: the %s firing fell while it was down\n",
			killedAt.Format("15:04:05.000"), boundary.Add(time.Second).Format("15:04:05.000"), time.Since(boundary.Add(time.Second)).Round(time.Millisecond), boundary.Format("15:04:05"))
	}
	time.Sleep(time.Until(last.Add(20 * time.Second)))

	var late, caught []float64 // caught: the firing that fell while the master was down
	missing, twice, skipped, failed := 0, 0, 0, 0
	for _, id := range ids {
		var runs []api.ScheduleRun
		m.Call("GET", "/api/schedules/"+id+"/runs", "", &runs)
		seen := map[int64]int{}
		for _, r := range runs {
			seen[r.FireTime.Unix()]++
			switch r.Outcome {
			case api.OutcomeOK:
				if !boundary.IsZero() && r.FireTime.Equal(boundary) {
					caught = append(caught, r.StartedAt.Sub(r.FireTime).Seconds())
					continue
				}
				late = append(late, r.StartedAt.Sub(r.FireTime).Seconds())
			case api.OutcomeSkipped:
				skipped++
			default:
				failed++
			}
		}
		for f := first; !f.After(last); f = f.Add(time.Minute) {
			if seen[f.Unix()] == 0 {
				missing++
			}
			if seen[f.Unix()] > 1 {
				twice++
			}
		}
	}
	sort.Float64s(late)
	sort.Float64s(caught)
	quant := func(v []float64, p float64) float64 {
		if len(v) == 0 {
			return 0
		}
		return v[min(len(v)-1, int(p*float64(len(v))))]
	}
	q := func(p float64) float64 { return quant(late, p) }
	fmt.Printf("%d firings expected (%d schedules × %d minutes): %d ok, %d skipped, %d failed, %d missing, %d run twice\n",
		*n**minutes, *n, *minutes, len(late)+len(caught), skipped, failed, missing, twice)
	fmt.Printf("lateness (started − fire time): p50 %.3f s, p99 %.3f s, max %.3f s (goal p99 <= 2 s)\n", q(0.5), q(0.99), q(1))
	if len(caught) > 0 {
		fmt.Printf("the %d runs of the firing that fell while the master was down (catch-up on start, not counted above): p50 %.3f s, max %.3f s late\n",
			len(caught), quant(caught, 0.5), quant(caught, 1))
	}
	rss, _ := os.ReadFile("/proc/" + strconv.Itoa(m.Cmd.Process.Pid) + "/status")
	for _, l := range strings.Split(string(rss), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			fmt.Println("master", strings.Join(strings.Fields(l), " "))
		}
	}
}
