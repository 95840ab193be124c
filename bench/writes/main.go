// Command writes measures key creation through the API of a real master
// process (the universe binary, built once, default flags: the access log
// on, to a file) against raw bbolt on the same disk, in this process, in
// alternating rounds:
//
//	go run ./bench/writes -rounds 5 -seconds 2
//
// floor: raw bbolt writing what a key creation writes (the key, its label
// and an audit entry, in three buckets, one fsync'd Update), one writer,
// into a database as big as the master's; and one record per Update.
// api-1, api-8: POST /api/keys (key and audit entry) from 1 and 8 clients
// over HTTP. It prints each round and the medians, with api-1/floor (goal
// >= 0.8) and api-8/api-1 (goal >= 3).
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/universe-orchestrator/universe/bench/internal/proc"
	bolt "go.etcd.io/bbolt"
)

func rawRate(dir string, d time.Duration) float64 {
	db, err := bolt.Open(filepath.Join(dir, "raw.db"), 0o600, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	val := bytes.Repeat([]byte("k"), 300) // about a key record
	n := 0
	start := time.Now()
	for time.Since(start) < d {
		err := db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("keys"))
			if err != nil {
				return err
			}
			return b.Put([]byte(strconv.Itoa(n)), val)
		})
		if err != nil {
			log.Fatal(err)
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds()
}

// rawLikeAPI is rawRate with what a key creation writes: the key, its
// label and an audit entry, in three buckets, in one fsync'd Update, into
// a database already holding keys keys (the API's holds those of the
// earlier rounds).
func rawLikeAPI(dir string, d time.Duration, keys int) float64 {
	db, err := bolt.Open(filepath.Join(dir, "raw3.db"), 0o600, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	key, label, audit := bytes.Repeat([]byte("k"), 300), bytes.Repeat([]byte("i"), 10), bytes.Repeat([]byte("a"), 200)
	n := 0
	put := func(tx *bolt.Tx) error {
		for i, v := range [][]byte{key, label, audit} {
			b, err := tx.CreateBucketIfNotExists([]byte{'b', byte(i)})
			if err != nil {
				return err
			}
			k := []byte(fmt.Sprintf("%016d", n))
			if i == 0 {
				k = []byte(strconv.Itoa(n * 7919 % 1000003)) // ids are random: anywhere in the tree
			}
			if err := b.Put(k, v); err != nil {
				return err
			}
		}
		n++
		return nil
	}
	for n < keys { // the earlier rounds' records, a thousand a transaction
		err := db.Update(func(tx *bolt.Tx) error {
			for i := 0; i < 1000 && n < keys; i++ {
				if err := put(tx); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			log.Fatal(err)
		}
	}
	start := time.Now()
	done := 0
	for time.Since(start) < d {
		if err := db.Update(put); err != nil {
			log.Fatal(err)
		}
		done++
	}
	return float64(done) / time.Since(start).Seconds()
}

func apiRate(url, token string, clients int, d time.Duration, seq *atomic.Int64) float64 {
	var done atomic.Int64
	var wg sync.WaitGroup
	var lat []float64
	start := time.Now()
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	cl := &http.Client{Transport: tr}
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < d {
				body := fmt.Sprintf(`{"label":"b%d","scope":"PUBLIC"}`, seq.Add(1))
				req, _ := http.NewRequest("POST", url+"/api/keys", bytes.NewBufferString(body))
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/json")
				t0 := time.Now()
				resp, err := cl.Do(req)
				if err != nil {
					log.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body) // read to the end: the connection is reused
				resp.Body.Close()
				if resp.StatusCode != 201 {
					log.Fatalf("create: %d", resp.StatusCode)
				}
				done.Add(1)
				if clients == 1 {
					lat = append(lat, float64(time.Since(t0).Microseconds()))
				}
			}
		}()
	}
	wg.Wait()
	if clients == 1 {
		sort.Float64s(lat)
		fmt.Printf("  1 client latency µs: p50 %.0f p90 %.0f p99 %.0f max %.0f\n", lat[len(lat)/2], lat[len(lat)*9/10], lat[len(lat)*99/100], lat[len(lat)-1])
	}
	return float64(done.Load()) / time.Since(start).Seconds()
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func main() {
	rounds := flag.Int("rounds", 5, "alternating rounds")
	seconds := flag.Float64("seconds", 2, "seconds per measurement")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the master during the last round's 1-client run (and FILE.8 during its 8-client run)")
	flag.Parse()
	d := time.Duration(*seconds * float64(time.Second))
	dir, err := os.MkdirTemp("", "universe-writes-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin := proc.Build(dir)
	data := filepath.Join(dir, "data")
	token := proc.AdminKey(bin, data)
	m := proc.StartMaster(bin, data, proc.FreePort(), token, "--access-log=true")
	defer m.Stop()
	bareBin := filepath.Join(dir, "bare")
	if out, err := exec.Command("go", "build", "-o", bareBin, "./bench/writes/bare").CombinedOutput(); err != nil {
		log.Fatalf("build bare: %v %s", err, out)
	}
	bareAddr := "127.0.0.1:" + strconv.Itoa(proc.FreePort())
	bare := exec.Command(bareBin, bareAddr, filepath.Join(dir, "bare.db"))
	if err := bare.Start(); err != nil {
		log.Fatal(err)
	}
	defer func() { _ = bare.Process.Kill(); _ = bare.Wait() }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", bareAddr); err == nil {
			c.Close()
			break
		} else if time.Now().After(deadline) {
			log.Fatal(err)
		}
	}
	var seq atomic.Int64
	var raw, raw3, bare1, bare8, one, eight []float64
	for r := 0; r < *rounds; r++ {
		_ = os.Remove(filepath.Join(dir, "raw.db"))
		raw = append(raw, rawRate(dir, d))
		_ = os.Remove(filepath.Join(dir, "raw3.db"))
		raw3 = append(raw3, rawLikeAPI(dir, d, int(seq.Load())))
		bare1 = append(bare1, apiRate("http://"+bareAddr, token, 1, d, &seq))
		bare8 = append(bare8, apiRate("http://"+bareAddr, token, 8, d, &seq))
		var prof <-chan []byte
		if *cpuprofile != "" && r == *rounds-1 {
			prof = profile(m, d)
		}
		one = append(one, apiRate(m.Base, token, 1, d, &seq))
		if prof != nil {
			if err := os.WriteFile(*cpuprofile, <-prof, 0o644); err != nil {
				log.Fatal(err)
			}
		}
		if *cpuprofile != "" && r == *rounds-1 {
			prof = profile(m, d)
		}
		eight = append(eight, apiRate(m.Base, token, 8, d, &seq))
		if prof != nil {
			if err := os.WriteFile(*cpuprofile+".8", <-prof, 0o644); err != nil {
				log.Fatal(err)
			}
			prof = nil
		}
		fmt.Printf("round %d: raw bbolt %.0f tx/s, with a key creation's three records in three buckets %.0f tx/s; bare HTTP process writing them 1 client %.0f/s, 8 clients %.0f/s; POST /api/keys to the master process, 1 client %.0f/s, 8 clients %.0f/s\n",
			r+1, raw[r], raw3[r], bare1[r], bare8[r], one[r], eight[r])
	}
	fmt.Printf("median: floor (three records, one fsync'd transaction) %.0f tx/s (%.2f of one record's %.0f)\n", median(raw3), median(raw3)/median(raw), median(raw))
	fmt.Printf("median: bare HTTP process 1 client %.0f/s: %.2f of the floor; 8 clients %.0f/s: %.2f x its 1 client\n",
		median(bare1), median(bare1)/median(raw3), median(bare8), median(bare8)/median(bare1))
	fmt.Printf("median: api-1 %.0f/s: %.2f of the floor (goal >= 0.8), %.2f of the bare HTTP process; api-8 %.0f/s: %.2f x api-1 (goal >= 3)\n",
		median(one), median(one)/median(raw3), median(one)/median(bare1), median(eight), median(eight)/median(one))
}

// profile takes a CPU profile of the master over d (rounded up to whole
// seconds), started now, and sends it when done.
func profile(m *proc.Master, d time.Duration) <-chan []byte {
	out := m.CPUProfile(int((d + time.Second - 1) / time.Second))
	time.Sleep(100 * time.Millisecond)
	return out
}
