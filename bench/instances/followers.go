package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/universe-orchestrator/universe/api"
)

// followers measures what each live-log follower costs the master (heap
// and goroutine stacks, after a GC), with the clients in another process
// so that only the server side is counted; then what is left once they
// have gone. Baseline, same run, same clients: a minimal relay, a bare
// coder/websocket server that writes each line to every connection.
func followers(args []string) {
	fs := flag.NewFlagSet("followers", flag.ExitOnError)
	n := fs.Int("n", 2000, "followers")
	every := fs.Duration("every", 100*time.Millisecond, "a line to every follower this often (the instance's and the relay's)")
	relayFirst := fs.Bool("relay-first", false, "measure the relay before the master (what stays after the first followers left is the Go runtime's: a fair baseline only when it comes first)")
	_ = fs.Parse(args)
	if os.Getenv("HEAPPROFILE") != "" {
		runtime.MemProfileRate = 1 // every allocation, for an exact profile
	}
	b := start(0)
	defer b.Close()
	b.Do("PUT", "/api/configurations/tick", api.Configuration{
		Command: fmt.Sprintf("while true; do echo tick; sleep %g; done", every.Seconds()), AvailablePorts: api.Ports{Min: 20000, Max: 20010},
	})
	info := b.create("tick")
	wsURL := "ws" + strings.TrimPrefix(b.URL, "http") + "/api/instances/" + info.ID + "/live-log?lines=1"
	relayURL, stopRelay := startRelay(*every)
	var master, relay followerCost
	if *relayFirst {
		relay = measureFollowers(*n, relayURL, "")
		master = measureFollowers(*n, wsURL, b.Token)
	} else {
		master = measureFollowers(*n, wsURL, b.Token)
		relay = measureFollowers(*n, relayURL, "")
	}
	stopRelay()
	// The master once more: what the first followers left (goroutine
	// descriptors the runtime keeps) is reused, not added to.
	again := measureFollowers(*n, wsURL, b.Token)
	fmt.Printf("per follower, %d followers: master %.1f KiB, minimal relay %.1f KiB (ratio %.2f; goal <= 32 KB each); after they left: master %+.1f KiB in all, relay %+.1f KiB (%s first); the master again: %.1f KiB each, %+.1f KiB after they left\n",
		*n, master.each/1024, relay.each/1024, master.each/relay.each, master.left/1024, relay.left/1024,
		map[bool]string{true: "relay", false: "master"}[*relayFirst], again.each/1024, again.left/1024)
}

// startRelay starts the baseline of followers: a minimal relay.
func startRelay(every time.Duration) (url string, stop func()) {
	// The minimal relay: one goroutine per connection, fed by a ticker.
	var mu sync.Mutex
	conns := map[chan []byte]bool{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		ch := make(chan []byte, 16)
		mu.Lock()
		conns[ch] = true
		mu.Unlock()
		defer func() { mu.Lock(); delete(conns, ch); mu.Unlock() }()
		ctx := c.CloseRead(r.Context())
		for {
			select {
			case <-ctx.Done():
				return
			case line := <-ch:
				if c.Write(ctx, websocket.MessageText, line) != nil {
					return
				}
			}
		}
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				mu.Lock()
				for ch := range conns {
					select {
					case ch <- []byte("tick"):
					default:
					}
				}
				mu.Unlock()
			}
		}
	}()
	return "ws://" + ln.Addr().String() + "/", func() { close(done); _ = srv.Close() }
}

type followerCost struct{ each, left float64 }

// measureFollowers connects n clients (a child process) to url and
// returns this process's memory per connection, and what stays after the
// child exits.
func measureFollowers(n int, url, token string) followerCost {
	h0, s0 := heap()
	g0 := runtime.NumGoroutine()
	cmd := exec.Command(os.Args[0], "follow-clients", url, strconv.Itoa(n))
	cmd.Env = append(os.Environ(), "BENCH_TOKEN="+token)
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || strings.TrimSpace(line) != "ready" {
		log.Fatalf("clients: %q %v", line, err)
	}
	time.Sleep(2 * time.Second) // a few lines through every connection
	h1, s1 := heap()
	g1 := runtime.NumGoroutine()
	if f := os.Getenv("LIVEHEAPPROFILE"); f != "" && token != "" { // what the master holds while they follow
		if out, err := os.Create(f); err == nil {
			_ = pprof.WriteHeapProfile(out)
			_ = out.Close()
		}
	}
	fmt.Printf("  %s: per connection heap %.1f KiB, goroutine stacks %.1f KiB, %.2f goroutines\n", map[bool]string{true: "master", false: "relay"}[token != ""],
		float64(int64(h1)-int64(h0))/1024/float64(n), float64(int64(s1)-int64(s0))/1024/float64(n), float64(g1-g0)/float64(n))
	_ = stdin.Close()
	_ = cmd.Wait()
	time.Sleep(3 * time.Second) // the server notices every close
	h2, s2 := heap()
	if f := os.Getenv("HEAPPROFILE"); f != "" && token != "" { // what the master keeps after they left
		out, err := os.Create(f)
		if err == nil {
			_ = pprof.WriteHeapProfile(out)
			_ = out.Close()
		}
	}
	return followerCost{
		each: float64(int64(h1+s1)-int64(h0+s0)) / float64(n),
		left: float64(int64(h2+s2) - int64(h0+s0)),
	}
}

// followClients is the child: n live-log clients that read until stdin
// closes.
func followClients(args []string) {
	url := args[0]
	n, _ := strconv.Atoi(args[1])
	h := http.Header{}
	if t := os.Getenv("BENCH_TOKEN"); t != "" {
		h.Set("Authorization", "Bearer "+t)
	}
	var conns []*websocket.Conn
	for range n {
		c, _, err := websocket.Dial(context.Background(), url, &websocket.DialOptions{HTTPHeader: h})
		if err != nil {
			log.Fatal(err)
		}
		conns = append(conns, c)
		go func() {
			for {
				if _, _, err := c.Read(context.Background()); err != nil {
					return
				}
			}
		}()
	}
	fmt.Println("ready")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	for _, c := range conns {
		_ = c.CloseNow()
	}
}
