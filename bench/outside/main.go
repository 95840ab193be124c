// Command outside measures the master's request overhead as an operator
// gets it: a real master process (default flags, access log on, written to
// a file) and a bare gin process serving the same bytes on the same paths
// (bench/outside/bare), both driven by this process (the load generator,
// outside both) at -conns keep-alive connections, in alternating rounds:
//
//	go run ./bench/outside -rounds 5 -seconds 3 -conns 32
//
// It prints each round and the medians of master/bare for
// GET /api/instances/{id} (goal >= 0.85) and GET /api/node (goal >= 0.75).
// With -profile FILE it writes a CPU profile of the master under load
// (GET /api/debug/pprof/profile) for go tool pprof.
package main

import (
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
	"time"
)

func freePort() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitUp(url string) {
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return
		}
	}
	log.Fatalf("%s does not answer", url)
}

func call(method, url, token, body string) (int, []byte) {
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// load sends GETs of url from conns keep-alive connections for d and
// returns the requests per second answered 200.
func load(url, token string, conns int, d time.Duration) float64 {
	var n atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1}}
			req, _ := http.NewRequest("GET", url, nil)
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			for time.Now().Before(stop) {
				resp, err := c.Do(req)
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					n.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return float64(n.Load()) / d.Seconds()
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func main() {
	rounds := flag.Int("rounds", 5, "alternating rounds")
	seconds := flag.Float64("seconds", 3, "seconds a measurement")
	conns := flag.Int("conns", 32, "keep-alive connections")
	profile := flag.String("profile", "", "write a CPU profile of the master under load to this file")
	profileOf := flag.String("profile-of", "node", "the load under the profile: node (GET /api/node) or instance (GET /api/instances/{id})")
	flag.Parse()
	root, err := os.MkdirTemp("", "bench-outside-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(root)
	uni, bare := filepath.Join(root, "universe"), filepath.Join(root, "bare")
	for _, b := range [][2]string{{uni, "./cmd/universe"}, {bare, "./bench/outside/bare"}} {
		if out, err := exec.Command("go", "build", "-o", b[0], b[1]).CombinedOutput(); err != nil {
			log.Fatalf("build %s: %v %s", b[1], err, out)
		}
	}
	data := filepath.Join(root, "data")
	out, err := exec.Command(uni, "key", "create", "admin", "ALL", "--data", data).CombinedOutput()
	if err != nil {
		log.Fatalf("key create: %v %s", err, out)
	}
	token := regexp.MustCompile(`unv_[A-Za-z0-9_-]{43}`).FindString(string(out))
	maddr := freePort()
	logf, _ := os.Create(filepath.Join(root, "master.log")) // the access log goes here, as under systemd
	master := exec.Command(uni, "master", "--addr", maddr, "--data", data, "--no-console")
	master.Stdout, master.Stderr = logf, logf
	if err := master.Start(); err != nil {
		log.Fatal(err)
	}
	defer func() { _ = master.Process.Kill(); _, _ = master.Process.Wait() }()
	mbase := "http://" + maddr
	waitUp(mbase + "/api/ping")
	if code, b := call("PUT", mbase+"/api/configurations/lobby", token, `{"command":"true","availablePorts":{"min":25565,"max":25600}}`); code != 204 {
		log.Fatalf("configuration: %d %s", code, b)
	}
	code, b := call("POST", mbase+"/api/instances", token, `{"configurationName":"lobby"}`)
	if code != 201 {
		log.Fatalf("instance: %d %s", code, b)
	}
	id := regexp.MustCompile(`"id":"([a-z0-9]+)"`).FindStringSubmatch(string(b))[1]
	time.Sleep(500 * time.Millisecond) // "true" has exited: the record no longer changes
	paths := []string{"/api/instances/" + id, "/api/node"}
	var args []string
	for i, p := range paths {
		_, body := call("GET", mbase+p, token, "")
		f := filepath.Join(root, "body"+strconv.Itoa(i))
		_ = os.WriteFile(f, body, 0o600)
		args = append(args, p+"="+f)
	}
	baddr := freePort()
	bareCmd := exec.Command(bare, append([]string{"-addr", baddr}, args...)...)
	if err := bareCmd.Start(); err != nil {
		log.Fatal(err)
	}
	defer func() { _ = bareCmd.Process.Kill(); _, _ = bareCmd.Process.Wait() }()
	bbase := "http://" + baddr
	waitUp(bbase + paths[1])
	d := time.Duration(*seconds * float64(time.Second))
	ratios := map[string][]float64{}
	for r := range *rounds {
		for _, p := range paths {
			m := load(mbase+p, token, *conns, d)
			bb := load(bbase+p, "", *conns, d)
			ratios[p] = append(ratios[p], m/bb)
			fmt.Printf("round %d %-28s master %7.0f/s  bare %7.0f/s  ratio %.3f\n", r+1, p, m, bb, m/bb)
		}
	}
	goals := map[string]float64{paths[0]: 0.85, paths[1]: 0.75}
	for _, p := range paths {
		v := ratios[p]
		sort.Float64s(v)
		fmt.Printf("%-28s master/bare median %.3f (%.3f-%.3f) at %d connections, goal >= %.2f\n", p, median(v), v[0], v[len(v)-1], *conns, goals[p])
	}
	if *profile != "" {
		done := make(chan struct{})
		path := paths[1]
		if *profileOf == "instance" {
			path = paths[0]
		}
		go func() { load(mbase+path, token, *conns, 12*time.Second); close(done) }()
		time.Sleep(time.Second)
		req, _ := http.NewRequest("GET", mbase+"/api/debug/pprof/profile?seconds=10", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			f, _ := os.Create(*profile)
			_, _ = io.Copy(f, resp.Body)
			f.Close()
			resp.Body.Close()
			fmt.Println("CPU profile of the master under load:", *profile)
		}
		<-done
	}
}
