// Command hardening measures what the hardening issue asks of a real master
// (in this process, on loopback, with a temp data dir and real processes):
//
//	go run ./bench/hardening rss      -seconds 60  # RSS with one instance printing 64 KB lines, and a follower
//	go run ./bench/hardening slowbody -clients 2000 -wait 30s  # connections slow-body clients still hold
//	go run ./bench/hardening audit    -commands 100 # database growth from commands printing MBs
//
// Each prints its figure next to its baseline (idle RSS; the clients
// started; the database before), and the goal.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/universe-orchestrator/universe/bench/internal/benchmaster"
	"github.com/universe-orchestrator/universe/instance/supervisor"
	"github.com/universe-orchestrator/universe/master"
)

var memprofile *string

// bench is a master in this process (benchmaster).
type bench struct{ *benchmaster.Master }

func start(mutate func(*master.Config)) *bench {
	return &bench{benchmaster.Start("universe-hardening-", mutate)}
}

func (b *bench) create(config string) string {
	var in struct{ ID string }
	_ = json.Unmarshal(b.Do("POST", "/api/instances", `{"configurationName":"`+config+`"}`), &in)
	return in.ID
}

// rssKiB is this process's resident set size.
func rssKiB() int {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			n, _ := strconv.Atoi(strings.Fields(l)[1])
			return n
		}
	}
	return 0
}

const longLines = `line=$(head -c 65000 /dev/zero | tr '\0' x); while true; do echo "$line"; done`

func rss(seconds int) {
	b := start(nil)
	defer b.Close()
	b.Do("PUT", "/api/configurations/long", `{"command":`+strconv.Quote(longLines)+`,"availablePorts":{"min":24100,"max":24110},"stopTimeoutSeconds":2}`)
	runtime.GC()
	debug.FreeOSMemory()
	time.Sleep(time.Second)
	idle := rssKiB()
	id := b.create("long")
	// One follower reads everything as it comes.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var got atomic.Int64
	go func() {
		h := http.Header{"Authorization": {"Bearer " + b.Token}}
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(b.URL, "http")+"/api/instances/"+id+"/live-log?format=json", &websocket.DialOptions{HTTPHeader: h})
		if err != nil {
			log.Print(err)
			return
		}
		c.SetReadLimit(1 << 20)
		for {
			_, data, err := c.Read(ctx)
			if err != nil {
				return
			}
			got.Add(int64(len(data)))
		}
	}()
	peak := 0
	var samples []int
	var ms, peakMS runtime.MemStats
	for i := 0; i < seconds; i++ {
		time.Sleep(time.Second)
		r := rssKiB()
		samples = append(samples, r)
		if r > peak {
			runtime.ReadMemStats(&ms)
			peak, peakMS = r, ms
		}
	}
	if *memprofile != "" {
		f, _ := os.Create(*memprofile)
		_ = pprof.WriteHeapProfile(f)
		f.Close()
	}
	fmt.Printf("rss: at the peak: heap in use %d KiB, heap from the OS %d KiB, stacks %d KiB, GC cycles %d\n",
		peakMS.HeapInuse>>10, peakMS.HeapSys>>10, peakMS.StackInuse>>10, peakMS.NumGC)
	var total struct{ TotalLines uint64 }
	_ = json.Unmarshal(b.Do("GET", "/api/instances/"+id+"/logs?lines=1", ""), &total)
	logs := b.Do("GET", "/api/instances/"+id+"/logs?lines=10000", "")
	fmt.Printf("rss: idle %d KiB; with one instance printing 64 KB lines for %d s and one follower: peak %d KiB (+%.1f MiB), last %d KiB; %d lines written, %.0f MiB delivered to the follower; logs?lines=10000 answer %d bytes (goal: peak ≤ idle + 64 MiB)\n",
		idle, seconds, peak, float64(peak-idle)/1024, samples[len(samples)-1], total.TotalLines, float64(got.Load())/(1<<20), len(logs))
}

func slowbody(clients int, wait time.Duration) {
	b := start(nil)
	defer b.Close()
	addr := strings.TrimPrefix(b.URL, "http://")
	conns := make([]net.Conn, 0, clients)
	setup := time.Now()
	for i := 0; i < clients; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			log.Fatalf("dial %d: %v", i, err)
		}
		auth := ""
		if i%200 != 0 { // a few without a token: more than the failed-auth throttle allows (20/s) would get the address 429s at once
			auth = "Authorization: Bearer " + b.Token + "\r\n"
		}
		fmt.Fprintf(c, "POST /api/keys HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n%s\r\n", auth)
		conns = append(conns, c)
	}
	// Every client trickles a byte a second.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					if _, err := c.Write([]byte(" ")); err != nil {
						return
					}
				}
			}
		}()
	}
	setupTook := time.Since(setup)
	time.Sleep(wait)
	// A connection the master closed reads EOF (after its answer).
	// All at once: a connection still open does not answer within the
	// deadline (checking them one after another would let time pass).
	var open atomic.Int64
	var amu sync.Mutex
	answers := map[string]int{}
	var cw sync.WaitGroup
	deadline := time.Now().Add(500 * time.Millisecond)
	for _, c := range conns {
		cw.Add(1)
		go func() {
			defer cw.Done()
			_ = c.SetReadDeadline(deadline)
			br := bufio.NewReader(c)
			if line, err := br.ReadString('\n'); err == nil {
				amu.Lock()
				answers[strings.TrimSpace(line)]++
				amu.Unlock()
			}
			for {
				if _, err := br.ReadByte(); err != nil {
					if isTimeout(err) {
						open.Add(1)
					}
					return
				}
			}
		}()
	}
	cw.Wait()
	fmt.Printf("slowbody: answers seen: %v\n", answers)
	close(stop)
	for _, c := range conns {
		_ = c.Close()
	}
	wg.Wait()
	fmt.Printf("slowbody: %d clients trickling 1 byte/s (1 in 200 without a token), started within %s; %s after the last started, the master holds %d of their connections (goal: 0)\n",
		clients, setupTook.Round(time.Millisecond), wait, open.Load())
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func audit(commands int) {
	b := start(nil)
	defer b.Close()
	// An instance whose log holds about 4 MiB (the answer's limit): each
	// "instance logs" prints it all.
	b.Do("PUT", "/api/configurations/loud", `{"command":`+strconv.Quote(`line=$(head -c 65000 /dev/zero | tr '\0' x); i=0; while [ $i -lt 200 ]; do echo "$line"; i=$((i+1)); done; exec sleep 600`)+`,"availablePorts":{"min":24120,"max":24130},"stopTimeoutSeconds":2}`)
	id := b.create("loud")
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var l struct{ TotalLines int }
		_ = json.Unmarshal(b.Do("GET", "/api/instances/"+id+"/logs?lines=1", ""), &l)
		if l.TotalLines >= 200 {
			break
		}
	}
	db := filepath.Join(b.M.Config().DataDir, "universe.db")
	before, _ := os.Stat(db)
	printed := 0
	for i := 0; i < commands; i++ {
		out := b.Do("POST", "/api/commands/execute", `{"command":"instance logs `+id+` 10000"}`)
		printed += len(out)
	}
	after, _ := os.Stat(db)
	fmt.Printf("audit: %d commands printing %.1f MiB each (%.0f MiB in all): database %d KiB before, %d KiB after, +%d KiB (goal: ≤ 1024 KiB)\n",
		commands, float64(printed)/float64(commands)/(1<<20), float64(printed)/(1<<20), before.Size()>>10, after.Size()>>10, (after.Size()-before.Size())>>10)
}

func main() {
	supervisor.RunIfChild()
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: hardening rss|slowbody|audit [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	seconds := fs.Int("seconds", 60, "rss: how long the instance prints")
	clients := fs.Int("clients", 2000, "slowbody: how many clients")
	wait := fs.Duration("wait", 30*time.Second, "slowbody: how long before counting")
	commands := fs.Int("commands", 100, "audit: how many commands")
	memprofile = fs.String("memprofile", "", "rss: write a heap profile at the end")
	_ = fs.Parse(os.Args[2:])
	switch os.Args[1] {
	case "rss":
		rss(*seconds)
	case "slowbody":
		slowbody(*clients, *wait)
	case "audit":
		audit(*commands)
	default:
		log.Fatalf("unknown benchmark %q", os.Args[1])
	}
}
