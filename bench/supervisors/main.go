// Command supervisors measures what each instance's supervisor costs, in
// the layouts an operator runs, against the floor of a Go program doing
// the least a supervisor does:
//
//	go run ./bench/supervisors -n 100 -start 50 -rounds 5
//
// Layouts: "go run" (the README's first command, run in the source tree:
// the master builds the supervisor-only binary into <data>/bin), "release"
// (universe and universe-supervisor side by side, as `task build` lays them
// out) and "lone" (a universe binary built alone: it supervises with
// itself).
//
// Memory: -n idle `sleep` instances in each layout; 8 s after the last
// start (supervisors give back what starting touched at start and 5 s on),
// every supervisor's RSS and PSS, medians; the floor is -n processes of
// bench/supervisors/floor (starts `sh -c sleep` in a folder and waits).
//
// Start: -start instances created by 10 concurrent clients until every one
// is ONLINE, against this process fork/exec-ing the same commands in
// folders of their own with 10 goroutines (the folder made, the process
// started), alternating, -rounds rounds, medians. Every layout's master
// runs through the rounds, each round taking the floors and then every
// layout in turn. -base REV adds the release layout built from another
// revision (an A/B in one run); -layouts picks some; -n 0 skips memory:
//
//	go run ./bench/supervisors -n 0 -layouts release,base -base HEAD~3 -rounds 10
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/universe-orchestrator/universe/bench/internal/proc"
)

const command = "exec sleep 600"

func main() {
	n := flag.Int("n", 100, "idle instances whose supervisors are measured")
	startN := flag.Int("start", 50, "instances created per start round")
	rounds := flag.Int("rounds", 5, "start rounds per layout")
	profile := flag.String("profile", "", "after the release layout's start rounds, write a CPU profile of its master to this file, taken over 3 s of start rounds, and the machine's CPU use in them")
	base := flag.String("base", "", "also run the release layout built from this git revision (a worktree of it), its start rounds alternating with the others': an A/B in one run")
	only := flag.String("layouts", "", "comma-separated layouts to run (go run, release, lone, base; default all)")
	perfOut := flag.String("perf", "", "record the whole machine with perf (perf record -a -g) during the start rounds (every layout's and the floors') into this file")
	flag.Parse()
	if _, err := os.Stat("go.mod"); err != nil {
		log.Fatal("run from the source tree: go run ./bench/supervisors")
	}
	root, _ := os.Getwd()
	dir, err := os.MkdirTemp("", "universe-bench-supervisors-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	build := func(out, pkg string) string {
		if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
			log.Fatalf("build %s: %v %s", pkg, err, b)
		}
		return out
	}
	release := filepath.Join(dir, "release")
	build(filepath.Join(release, "universe"), "./cmd/universe")
	build(filepath.Join(release, "universe-supervisor"), "./cmd/universe-supervisor")
	lone := build(filepath.Join(dir, "lone", "universe"), "./cmd/universe")
	floor := build(filepath.Join(dir, "floor", "floor"), "./bench/supervisors/floor")
	// go run builds the same binary into the build cache: once here, so
	// that the first round does not time a build.
	if b, err := exec.Command("go", "build", "-o", os.DevNull, "./cmd/universe").CombinedOutput(); err != nil {
		log.Fatalf("%v %s", err, b)
	}

	type layout struct {
		name string
		argv []string
	}
	all := []layout{
		{"go run", []string{"go", "run", "./cmd/universe"}},
		{"release", []string{filepath.Join(release, "universe")}},
		{"lone", []string{lone}},
	}
	if *base != "" {
		src := filepath.Join(dir, "base-src")
		if b, err := exec.Command("git", "worktree", "add", "--detach", src, *base).CombinedOutput(); err != nil {
			log.Fatalf("git worktree add %s: %v %s", *base, err, b)
		}
		defer exec.Command("git", "worktree", "remove", "--force", src).Run()
		out := filepath.Join(dir, "base")
		for _, b := range []string{"universe", "universe-supervisor"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(out, b), "./cmd/"+b)
			cmd.Dir = src
			if o, err := cmd.CombinedOutput(); err != nil {
				log.Fatalf("build %s at %s: %v %s", b, *base, err, o)
			}
		}
		all = append(all, layout{"base", []string{filepath.Join(out, "universe")}})
	}
	var layouts []layout
	for _, l := range all {
		if *only == "" || strings.Contains(","+*only+",", ","+l.name+",") {
			layouts = append(layouts, l)
		}
	}

	if *n > 0 {
		fmt.Printf("memory of %d idle supervisors (KiB, medians; 8 s after the last start)\n", *n)
	}
	fr, fp := 0, 0
	if *n > 0 {
		fr, fp = floorMemory(floor, filepath.Join(dir, "floor-run"), *n)
		fmt.Printf("  %-8s RSS %6d  PSS %6d  (bench/supervisors/floor)\n", "floor", fr, fp)
	}
	for _, l := range layouts {
		if *n == 0 {
			break
		}
		m, data := startMaster(l.argv, root, dir, l.name)
		m.Call("PUT", "/api/configurations/idle", `{"command":"`+command+`","availablePorts":{"min":23300,"max":23999}}`, nil)
		for i := 0; i < *n; i++ {
			m.Call("POST", "/api/instances", `{"configurationName":"idle"}`, nil)
		}
		time.Sleep(8 * time.Second)
		pids := supervisors(data)
		rss, pss := memory(pids)
		fmt.Printf("  %-8s RSS %6d  PSS %6d  (%d supervisors, running %s)  RSS %.2f x floor, PSS %.2f x floor\n",
			l.name, rss, pss, len(pids), exeOf(pids), float64(rss)/float64(fr), float64(pss)/float64(fp))
		m.Stop()
	}

	fmt.Printf("start: %d instances by 10 clients until all ONLINE, against fork/exec of the same commands in new folders (ms, medians of %d)\n", *startN, *rounds)
	// Every layout's master runs through the rounds; each round takes the
	// floors and then every layout in turn.
	const putStart = `{"command":"` + command + `","availablePorts":{"min":23300,"max":23999}}`
	masters := make([]*proc.Master, len(layouts))
	for i, l := range layouts {
		masters[i], _ = startMaster(l.argv, root, dir, l.name+"-start")
		masters[i].Call("PUT", "/api/configurations/start", putStart, nil)
	}
	us := make([][]float64, len(layouts))
	var fs, f2 []float64
	stopPerf := proc.Perf(*perfOut, "")
	for r := 0; r < *rounds; r++ {
		fs = append(fs, forkExec(filepath.Join(dir, "forkexec", strconv.Itoa(r)), *startN, ""))
		f2 = append(f2, forkExec(filepath.Join(dir, "forkexec2", strconv.Itoa(r)), *startN, floor))
		for i, m := range masters {
			us[i] = append(us[i], createAll(m, *startN))
			m.DeleteAll()
			m.Call("PUT", "/api/configurations/start", putStart, nil)
		}
	}
	stopPerf()
	fmt.Printf("  fork/exec %6.1f ms (%s);  through the floor supervisor %6.1f ms (%s)\n", median(fs), list(fs), median(f2), list(f2))
	for i, l := range layouts {
		fmt.Printf("  %-8s %7.1f ms (%s)  ratio to fork/exec %.2f, to the floor supervisor %.2f\n",
			l.name, median(us[i]), list(us[i]), median(us[i])/median(fs), median(us[i])/median(f2))
		if *profile != "" && l.name == "release" {
			profileStarts(masters[i], *startN, *profile)
		}
		masters[i].Stop()
	}
}

func startMaster(argv []string, root, dir, name string) (*proc.Master, string) {
	d := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
	data := filepath.Join(d, "data")
	if err := os.MkdirAll(d, 0o755); err != nil {
		log.Fatal(err)
	}
	token := proc.AdminKey(filepath.Join(dir, "release", "universe"), data)
	return proc.StartMasterWith(argv, root, data, proc.FreePort(), token), data
}

// createAll creates n instances with 10 concurrent clients and returns the
// milliseconds until every one answered ONLINE.
func createAll(m *proc.Master, n int) float64 {
	var wg sync.WaitGroup
	next := make(chan struct{}, n)
	for i := 0; i < n; i++ {
		next <- struct{}{}
	}
	close(next)
	start := time.Now()
	for c := 0; c < 10; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				var info struct {
					State string `json:"state"`
				}
				m.Call("POST", "/api/instances", `{"configurationName":"start"}`, &info)
				if info.State != "ONLINE" {
					log.Fatalf("created in state %s", info.State)
				}
			}
		}()
	}
	wg.Wait()
	return float64(time.Since(start).Microseconds()) / 1000
}

// forkExec is proc.StartFloor in milliseconds.
func forkExec(dir string, n int, via string) float64 {
	return float64(proc.StartFloor(dir, n, command, via, nil).Microseconds()) / 1000
}

// floorMemory runs n floor processes and measures them like supervisors.
func floorMemory(bin, dir string, n int) (rss, pss int) {
	var procs []*exec.Cmd
	for i := 0; i < n; i++ {
		d := filepath.Join(dir, strconv.Itoa(i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			log.Fatal(err)
		}
		cmd := exec.Command(bin, d, command)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "GOMAXPROCS=1"} // as a supervisor runs
		if err := cmd.Start(); err != nil {
			log.Fatal(err)
		}
		procs = append(procs, cmd)
	}
	time.Sleep(8 * time.Second)
	var pids []int
	for _, p := range procs {
		pids = append(pids, p.Process.Pid)
	}
	rss, pss = memory(pids)
	for _, p := range procs {
		_ = p.Process.Signal(syscall.SIGTERM)
		_ = p.Wait()
	}
	return rss, pss
}

// supervisors are the pids of the supervisors of instances under data.
func supervisors(data string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) >= 3 && args[1] == "supervise" && strings.HasPrefix(args[2], data) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func exeOf(pids []int) string {
	if len(pids) == 0 {
		return "-"
	}
	exe, _ := os.Readlink("/proc/" + strconv.Itoa(pids[0]) + "/exe")
	return filepath.Base(filepath.Dir(exe)) + "/" + filepath.Base(exe)
}

// memory is the median RSS (VmRSS) and PSS (smaps_rollup) of pids, KiB.
func memory(pids []int) (rss, pss int) {
	var rs, ps []float64
	for _, pid := range pids {
		rs = append(rs, float64(field("/proc/"+strconv.Itoa(pid)+"/status", "VmRSS:")))
		ps = append(ps, float64(field("/proc/"+strconv.Itoa(pid)+"/smaps_rollup", "Pss:")))
	}
	return int(median(rs)), int(median(ps))
}

func field(path, name string) int {
	b, _ := os.ReadFile(path)
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == name {
			v, _ := strconv.Atoi(f[1])
			return v
		}
	}
	return 0
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func list(v []float64) string {
	var parts []string
	for _, x := range v {
		parts = append(parts, strconv.FormatFloat(x, 'f', 0, 64))
	}
	return strings.Join(parts, " ")
}

// profileStarts writes a CPU profile of m's master over 3 s of start
// rounds (each followed by the deletion of what it started, which the
// profile holds too) to file, and prints how busy the machine was.
func profileStarts(m *proc.Master, n int, file string) {
	done := m.CPUProfile(3)
	busy0, all0 := cpuTimes()
	var rounds int
	var creating time.Duration
	for {
		select {
		case b := <-done:
			busy1, all1 := cpuTimes()
			if err := os.WriteFile(file, b, 0o644); err != nil {
				log.Fatal(err)
			}
			fmt.Printf("  profile of the release master over %d start rounds (%.0f ms creating a round): %s; the machine %.0f %% busy\n",
				rounds, float64(creating.Milliseconds())/float64(max(rounds, 1)), file, 100*float64(busy1-busy0)/float64(max(all1-all0, 1)))
			return
		default:
		}
		t := time.Now()
		createAll(m, n)
		creating += time.Since(t)
		rounds++
		m.DeleteAll()
		m.Call("PUT", "/api/configurations/start", `{"command":"`+command+`","availablePorts":{"min":23300,"max":23999}}`, nil)
	}
}

// cpuTimes reads the machine's busy and total CPU ticks from /proc/stat.
func cpuTimes() (busy, all uint64) {
	b, _ := os.ReadFile("/proc/stat")
	line, _, _ := strings.Cut(string(b), "\n")
	for i, f := range strings.Fields(line)[1:] {
		v, _ := strconv.ParseUint(f, 10, 64)
		all += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, all
}
