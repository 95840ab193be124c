// Command authmem measures the memory of a real master process with many
// keys, and whether it grows while it is sent many distinct bogus tokens.
//
//	go run ./bench/authmem                 # 10,000 keys, 1,000,000 bogus tokens
//	go run ./bench/authmem -keys 1000 -bogus 100000
//
// It builds `universe`, fills a temp data dir with -keys keys, starts
// `universe master` on loopback as its own process, warms it up with valid
// requests, then sends -bogus requests each with a distinct well-formed but
// unknown token, from a distinct client address (X-Forwarded-For through a
// trusted proxy, the worst case for the failed-auth throttle's table). It
// prints the master's RSS (from /proc) and, from its /api/metrics, the live
// heap after the last GC (what it keeps) and the heap in use (with garbage)
// at each step.
package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/master/auth"
	"github.com/universe-orchestrator/universe/storage"
)

func main() {
	nKeys := flag.Int("keys", 10000, "keys in the store")
	nBogus := flag.Int("bogus", 1000000, "distinct bogus tokens to send")
	conns := flag.Int("conns", 8, "parallel keep-alive connections")
	flag.Parse()
	log.SetFlags(0)

	dir, err := os.MkdirTemp("", "authmem")
	check(err)
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "universe")
	build := exec.Command("go", "build", "-o", bin, "./cmd/universe")
	build.Stderr = os.Stderr
	check(build.Run())

	data := filepath.Join(dir, "data")
	admin := fill(data, *nKeys)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	addr := ln.Addr().String()
	ln.Close()
	master := exec.Command(bin, "master", "--addr", addr, "--data", data, "--no-console",
		"--access-log=false", "--trusted-proxies", "127.0.0.1", "--log-level", "warn")
	master.Stderr = os.Stderr
	check(master.Start())
	defer func() { _ = master.Process.Kill(); _, _ = master.Process.Wait() }()
	waitUp(addr)

	report := func(step string) {
		time.Sleep(200 * time.Millisecond)
		fmt.Printf("%-34s RSS %6.1f MiB   live heap after last GC %6.1f MiB   heap in use %6.1f MiB\n",
			step, rssMiB(master.Process.Pid), metricMiB(addr, "go_gc_heap_live_bytes"), metricMiB(addr, "go_memstats_heap_inuse_bytes"))
	}
	report(fmt.Sprintf("started, %d keys", *nKeys))
	send(addr, *conns, 20000, func(int) string { return "Authorization: Bearer " + admin + "\r\n" }, 200)
	report("after 20,000 valid requests")

	var sent atomic.Int64
	steps := []int{*nBogus / 10, *nBogus / 2, *nBogus}
	start := time.Now()
	done := 0
	for _, upTo := range steps {
		n := upTo - done
		base := done
		send(addr, *conns, n, func(i int) string {
			j := base + i
			var tok [32]byte
			binary.BigEndian.PutUint64(tok[:], uint64(j)+1<<40)
			ip := net.IPv4(10, byte(j>>16), byte(j>>8), byte(j)).String()
			return "Authorization: Bearer " + auth.TokenPrefix + base64.RawURLEncoding.EncodeToString(tok[:]) + "\r\nX-Forwarded-For: " + ip + "\r\n"
		}, 401)
		sent.Add(int64(n))
		done = upTo
		report(fmt.Sprintf("after %d bogus tokens", done))
	}
	fmt.Printf("bogus requests: %d in %v (%.0f req/s)\n", sent.Load(), time.Since(start).Round(time.Millisecond), float64(sent.Load())/time.Since(start).Seconds())
}

// fill creates n keys (n-1 PUBLIC, one ALL) and returns the ALL token.
func fill(dir string, n int) string {
	db, err := storage.Open(dir, storage.Options{NoSync: true})
	check(err)
	r, err := auth.OpenKeyring(db, nil)
	check(err)
	_, admin, err := r.Create("admin", universe.ScopeAll, 0)
	check(err)
	for i := 1; i < n; i++ {
		_, _, err := r.Create(fmt.Sprintf("key-%d", i), universe.ScopePublic, 0)
		check(err)
	}
	check(db.Close())
	return admin
}

// send makes n requests over conns keep-alive connections; header(i) gives
// the extra header lines of request i; every answer must have status want.
func send(addr string, conns, n int, header func(i int) string, want int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for c := 0; c < conns; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("tcp", addr)
			check(err)
			defer conn.Close()
			br := bufio.NewReaderSize(conn, 16<<10)
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				req := "GET /api/node HTTP/1.1\r\nHost: bench\r\n" + header(i) + "\r\n"
				_, err := io.WriteString(conn, req)
				check(err)
				status, length := readHead(br)
				if status != want {
					log.Fatalf("status %d, want %d", status, want)
				}
				_, err = br.Discard(length)
				check(err)
			}
		}()
	}
	wg.Wait()
}

func readHead(br *bufio.Reader) (status, length int) {
	for first := true; ; first = false {
		line, err := br.ReadSlice('\n')
		check(err)
		if len(line) <= 2 {
			return
		}
		if first {
			status, _ = strconv.Atoi(string(line[9:12]))
		} else if bytes.HasPrefix(bytes.ToLower(line), []byte("content-length:")) {
			length, _ = strconv.Atoi(string(bytes.TrimSpace(line[15:])))
		}
	}
}

func waitUp(addr string) {
	for i := 0; i < 100; i++ {
		if resp, err := http.Get("http://" + addr + "/api/ping"); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	log.Fatal("master did not come up")
}

func rssMiB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	check(err)
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func metricMiB(addr, name string) float64 {
	resp, err := http.Get("http://" + addr + "/api/metrics")
	check(err)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f / (1 << 20)
		}
	}
	return 0
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
