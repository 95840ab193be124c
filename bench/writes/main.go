// Command writes measures key creation through the API against raw bbolt
// on the same disk, in the same process, in paired rounds:
//
//	go run ./bench/writes -rounds 5 -seconds 2
//
// baseline: one bbolt Update (fsync'd) per key-sized record, one writer.
// api-1, api-8: POST /api/keys (key and audit entry) from 1 and 8 clients.
// It prints each round and the medians, with api-1/raw and api-8/api-1.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/instance/supervisor"
	"github.com/universe-orchestrator/universe/master"
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

// keyringRate is a key creation without HTTP: Keyring.CreateAudited, the
// key and its audit entry in one transaction, as POST /api/keys does.
func keyringRate(m *master.Master, d time.Duration, seq *atomic.Int64) float64 {
	n := 0
	start := time.Now()
	for time.Since(start) < d {
		_, _, err := m.Keyring().CreateAudited(fmt.Sprintf("d%d", seq.Add(1)), universe.ScopePublic, 0, func(k universe.KeyRecord) universe.AuditEntry {
			return universe.AuditEntry{Time: time.Now(), KeyID: "kbench", Source: "rest", Command: "POST /api/keys label=" + k.Label + " scope=PUBLIC", Result: "ok"}
		})
		if err != nil {
			log.Fatal(err)
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds()
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
	supervisor.RunIfChild()
	rounds := flag.Int("rounds", 5, "paired rounds")
	seconds := flag.Float64("seconds", 2, "seconds per measurement")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the 1-client API runs")
	flag.Parse()
	d := time.Duration(*seconds * float64(time.Second))
	dir, err := os.MkdirTemp("", "universe-writes-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	cfg := master.DefaultConfig()
	cfg.Addr, cfg.DataDir, cfg.AccessLog = "127.0.0.1:0", filepath.Join(dir, "data"), false
	m, err := master.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	if err := m.Open(); err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	_, token, err := m.Keyring().Create("bench", universe.ScopeAll, 0)
	if err != nil {
		log.Fatal(err)
	}
	url := "http://" + m.Addr()
	var seq atomic.Int64
	var raw, raw3, direct, one, eight []float64
	for r := 0; r < *rounds; r++ {
		_ = os.Remove(filepath.Join(dir, "raw.db"))
		raw = append(raw, rawRate(dir, d))
		_ = os.Remove(filepath.Join(dir, "raw3.db"))
		raw3 = append(raw3, rawLikeAPI(dir, d, int(seq.Load())))
		direct = append(direct, keyringRate(m, d, &seq))
		if *cpuprofile != "" {
			f, _ := os.Create(*cpuprofile)
			_ = pprof.StartCPUProfile(f)
		}
		one = append(one, apiRate(url, token, 1, d, &seq))
		if *cpuprofile != "" {
			pprof.StopCPUProfile()
		}
		eight = append(eight, apiRate(url, token, 8, d, &seq))
		fmt.Printf("round %d: raw bbolt %.0f tx/s (three records in three buckets: %.0f), the keyring without HTTP %.0f/s, POST /api/keys 1 client %.0f/s, 8 clients %.0f/s\n", r+1, raw[r], raw3[r], direct[r], one[r], eight[r])
	}
	fmt.Printf("median: raw with a key creation's three records %.0f tx/s (%.2f of raw); the keyring without HTTP %.0f/s (%.2f of raw); api-1 %.2f of the three records\n",
		median(raw3), median(raw3)/median(raw), median(direct), median(direct)/median(raw), median(one)/median(raw3))
	fmt.Printf("median: raw %.0f tx/s; api-1 %.0f/s (%.2f of raw; goal >= 0.8); api-8 %.0f/s (%.2f x api-1; goal >= 2)\n",
		median(raw), median(one), median(one)/median(raw), median(eight), median(eight)/median(one))
}
