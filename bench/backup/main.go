// Command backup measures backups as an operator runs them: a real master
// process (the universe binary, built once), a static instance whose folder
// holds a generated tree, backups asked for over the REST API.
//
//	go run ./bench/backup -gib 2 -files 20000 -rounds 3            archive speed against tar | zstd -1 -T1, master RSS
//	go run ./bench/backup -gib 5 -files 50000 -rounds 1 -restore   ... and a restore checked file by file
//	go run ./bench/backup -gib 2 -files 20000 -rounds 1 -s3        ... and S3 (SeaweedFS) with 3 broken parts, then a dead S3
//
// Figures are medians of the rounds, ours and the floor alternating.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/backup/s3test"
	"github.com/universe-orchestrator/universe/bench/internal/proc"
)

var m *proc.Master

func main() {
	gib := flag.Float64("gib", 2, "size of the tree, GiB")
	files := flag.Int("files", 20000, "files in the tree")
	rounds := flag.Int("rounds", 3, "rounds (ours and the floor alternate)")
	restore := flag.Bool("restore", false, "restore the last backup over an emptied folder and compare every file")
	profile := flag.String("profile", "", "write a CPU profile of the master during the last round's backup to this file")
	useS3 := flag.Bool("s3", false, "also back up to S3 (SeaweedFS) through a proxy breaking 3 parts, then one breaking every part")
	flag.Parse()
	root, err := os.MkdirTemp("", "bench-backup-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(root)
	bin := proc.Build(root)
	data := filepath.Join(root, "data")
	_ = os.MkdirAll(data, 0o700)
	token := proc.AdminKey(bin, data)
	args := []string{}
	var faults *s3test.Faults
	var direct *minio.Client
	if *useS3 {
		srv, stop, err := s3test.StartIn(mkdir(root, "s3"))
		if err != nil {
			log.Fatal(err)
		}
		defer stop()
		var stopF func()
		faults, stopF, err = s3test.StartFaults(srv.Endpoint)
		if err != nil {
			log.Fatal(err)
		}
		defer stopF()
		keys := mkdir(root, "keys")
		_ = os.WriteFile(filepath.Join(keys, "a"), []byte(s3test.AccessKey), 0o600)
		_ = os.WriteFile(filepath.Join(keys, "s"), []byte(s3test.SecretKey), 0o600)
		targets := filepath.Join(keys, "targets.json")
		_ = os.WriteFile(targets, []byte(`{"offsite":{"type":"s3","endpoint":"`+faults.URL+`","bucket":"`+s3test.Bucket+`","pathStyle":true,"accessKeyFile":"a","secretKeyFile":"s"}}`), 0o600)
		args = append(args, "--backup-targets", targets)
		direct, _ = minio.New(strings.TrimPrefix(srv.Endpoint, "http://"), &minio.Options{Creds: credentials.NewStaticV4(s3test.AccessKey, s3test.SecretKey, ""), BucketLookup: minio.BucketLookupPath})
	}
	m = proc.StartMaster(bin, data, proc.FreePort(), token, args...)
	defer m.Stop()
	pid := m.Cmd.Process.Pid

	m.Call("PUT", "/api/configurations/bench", `{"command":"exec sleep 1000000","static":true,"stopTimeoutSeconds":1,"availablePorts":{"min":23400,"max":23410}}`, nil)
	var in api.InstanceInfo
	m.Call("POST", "/api/instances", `{"configurationName":"bench"}`, &in)
	m.Call("PATCH", "/api/instances/"+in.ID+"/lifecycle?target=stop", "", nil)
	dir := filepath.Join(data, "static", "bench")
	start := time.Now()
	bytesWritten := generate(dir, int64(*gib*(1<<30)), *files)
	fmt.Printf("tree: %d files, %.2f GiB, generated in %s\n", *files, float64(bytesWritten)/(1<<30), time.Since(start).Round(time.Millisecond))
	dropCaches()

	var ours, floor, durable []float64
	var last api.Backup
	var rssGrowth []int64
	for r := 0; r < *rounds; r++ {
		// The floor: tar | zstd -1 -T1 of the same tree to a file.
		out := filepath.Join(root, "floor.tar.zst")
		t0 := time.Now()
		cmd := exec.Command("bash", "-c", `tar -cf - -C "$1" . | zstd -1 -T1 -q -f -o "$2"`, "bash", dir, out)
		if b, err := cmd.CombinedOutput(); err != nil {
			log.Fatalf("tar | zstd: %v %s", err, b)
		}
		floor = append(floor, time.Since(t0).Seconds())
		fst, _ := os.Stat(out)
		_ = os.Remove(out)
		// The same, durable as a backup is: the file fsync'd at the end.
		t0 = time.Now()
		cmd = exec.Command("bash", "-c", `tar -cf - -C "$1" . | zstd -1 -T1 -q -f -o "$2" && sync "$2"`, "bash", dir, out)
		if b, err := cmd.CombinedOutput(); err != nil {
			log.Fatalf("tar | zstd && sync: %v %s", err, b)
		}
		durable = append(durable, time.Since(t0).Seconds())
		_ = os.Remove(out)

		base := rss(pid)
		var peak atomic.Int64
		stop := make(chan struct{})
		go func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
					if v := rss(pid); v > peak.Load() {
						peak.Store(v)
					}
				}
			}
		}()
		profiled := make(chan struct{})
		if *profile != "" && r == *rounds-1 {
			go func() {
				defer close(profiled)
				req, _ := http.NewRequest("GET", m.Base+"/api/debug/pprof/profile?seconds=3", nil)
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					log.Print(err)
					return
				}
				defer resp.Body.Close()
				f, _ := os.Create(*profile)
				_, _ = io.Copy(f, resp.Body)
				_ = f.Close()
			}()
		} else {
			close(profiled)
		}
		t0 = time.Now()
		last = backupAndWait(in.ID, `{"name":"round `+strconv.Itoa(r)+`"}`)
		<-profiled
		ours = append(ours, time.Since(t0).Seconds())
		close(stop)
		rssGrowth = append(rssGrowth, peak.Load()-base)
		if last.State != api.BackupCompleted {
			log.Fatalf("backup: %+v", last)
		}
		fmt.Printf("round %d: universe %.2f s (%.1f MiB archive, %d entries), tar|zstd -1 -T1 %.2f s (%.1f MiB); master RSS +%.1f MiB over %.1f MiB\n",
			r, ours[r], float64(last.SizeBytes)/(1<<20), last.Files, floor[r], float64(fst.Size())/(1<<20),
			float64(rssGrowth[r])/(1<<20), float64(base)/(1<<20))
		if r < *rounds-1 {
			m.Call("DELETE", "/api/backups/"+last.ID, "", nil)
		}
	}
	fmt.Printf("archive speed: universe median %.2f s, tar|zstd median %.2f s: ratio %.2f (floor time / ours; goal >= 0.67)\n", median(ours), median(floor), median(floor)/median(ours))
	fmt.Printf("against tar|zstd with the archive fsync'd at the end (as a backup is) median %.2f s: ratio %.2f\n", median(durable), median(durable)/median(ours))
	sort.Slice(rssGrowth, func(i, j int) bool { return rssGrowth[i] < rssGrowth[j] })
	fmt.Printf("master RSS growth during a backup: max %.1f MiB over %d rounds (goal <= 64 MiB)\n", float64(rssGrowth[len(rssGrowth)-1])/(1<<20), len(rssGrowth))

	if *restore {
		want := manifest(dir)
		if err := os.RemoveAll(dir); err != nil {
			log.Fatal(err)
		}
		_ = os.MkdirAll(dir, 0o755)
		_ = os.WriteFile(filepath.Join(dir, "stray"), []byte("not in the backup"), 0o644)
		t0 := time.Now()
		m.Call("POST", "/api/backups/"+last.ID+"/restore", `{"truncate":true}`, nil)
		waitLog(in.ID, "restore of backup "+last.ID)
		took := time.Since(t0)
		got := manifest(dir)
		bad := 0
		for p, w := range want {
			if got[p] != w {
				bad++
				if bad < 5 {
					fmt.Printf("  differs: %s\n", p)
				}
			}
		}
		bad += max(0, len(got)-len(want))
		fmt.Printf("restore (truncate) of %.2f GiB: %s; %d entries compared (SHA-256 of files, modes, link targets), %d differ\n",
			float64(last.SizeBytes)/(1<<30), took.Round(time.Millisecond), len(want), bad)
	}

	if *useS3 {
		m.Call("PUT", "/api/configurations/bench", `{"command":"exec sleep 1000000","static":true,"stopTimeoutSeconds":1,"availablePorts":{"min":23400,"max":23410},"backup":{"target":"offsite"}}`, nil)
		faults.Fail.Store(3)
		t0 := time.Now()
		b := backupAndWait(in.ID, `{"name":"s3"}`)
		fmt.Printf("S3 with 3 broken parts: %s in %s, %.1f MiB, %d parts sent (%d broken)\n", b.State, time.Since(t0).Round(time.Millisecond),
			float64(b.SizeBytes)/(1<<20), faults.Parts.Load(), faults.Broken.Load())
		faults.Always.Store(true)
		t0 = time.Now()
		b = backupAndWait(in.ID, `{"name":"s3 dead"}`)
		ctx := context.Background()
		open := 0
		for u := range direct.ListIncompleteUploads(ctx, s3test.Bucket, "", true) {
			if u.Err == nil {
				open++
			}
		}
		fmt.Printf("S3 failing every part: %s after %s (%s); multipart uploads left open on the server: %d\n", b.State, time.Since(t0).Round(time.Millisecond), b.Reason, open)
	}
}

func mkdir(root, name string) string {
	p := filepath.Join(root, name)
	_ = os.MkdirAll(p, 0o700)
	return p
}

// generate writes n files totalling size bytes: game-world-like content,
// half incompressible blocks, half repetitive records.
func generate(dir string, size int64, n int) int64 {
	rng := rand.New(rand.NewPCG(1, 2))
	src := rand.NewChaCha8([32]byte{7})
	var total int64
	buf := make([]byte, 64<<10)
	for i := 0; i < n; i++ {
		sub := filepath.Join(dir, fmt.Sprintf("world/region-%03d", i%200))
		if i%200 == i {
			_ = os.MkdirAll(sub, 0o755)
		}
		// sizes vary around the mean
		want := size / int64(n)
		fsize := want/2 + rng.Int64N(want+1)
		if i == n-1 {
			fsize = max(0, size-total)
		}
		f, err := os.Create(filepath.Join(sub, fmt.Sprintf("r.%d.mca", i)))
		if err != nil {
			log.Fatal(err)
		}
		left := fsize
		for block := 0; left > 0; block++ {
			c := min(int64(len(buf)), left)
			if block%2 == 0 {
				_, _ = io.ReadFull(src, buf[:c])
			} else {
				b := buf[:0]
				for int64(len(b)) < c {
					b = fmt.Appendf(b, "entity %d at %d,%d,%d hp=20 state=idle\n", rng.IntN(1000), rng.IntN(30000), rng.IntN(256), rng.IntN(30000))
				}
				buf = b[:cap(b)]
			}
			if _, err := f.Write(buf[:c]); err != nil {
				log.Fatal(err)
			}
			left -= c
		}
		_ = f.Close()
		total += fsize
		if i%1000 == 0 {
			_ = os.Symlink(fmt.Sprintf("r.%d.mca", i), filepath.Join(sub, fmt.Sprintf("link-%d", i)))
		}
	}
	return total
}

// manifest describes every entry: mode, and the SHA-256 of a file or the
// target of a link.
func manifest(dir string) map[string]string {
	out := map[string]string{}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, _ := d.Info()
		v := info.Mode().String()
		switch {
		case info.Mode().IsRegular():
			f, _ := os.Open(p)
			h := sha256.New()
			_, _ = io.Copy(h, f)
			f.Close()
			v += " " + hex.EncodeToString(h.Sum(nil)) + " " + info.ModTime().UTC().Truncate(time.Second).String()
		case info.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			v += " -> " + l
		}
		out[rel] = v
		return nil
	})
	return out
}

func backupAndWait(id, body string) api.Backup {
	var b api.Backup
	m.Call("POST", "/api/instances/"+id+"/backups", body, &b)
	for b.State == api.BackupPending || b.State == api.BackupRunning {
		time.Sleep(50 * time.Millisecond)
		m.Call("GET", "/api/backups/"+b.ID, "", &b)
	}
	return b
}

func waitLog(id, text string) {
	for deadline := time.Now().Add(30 * time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var raw json.RawMessage
		m.Call("GET", "/api/instances/"+id+"/logs?lines=50", "", &raw)
		b := []byte(raw)
		if bytes.Contains(b, []byte(text)) && (bytes.Contains(b, []byte(" done: ")) || bytes.Contains(b, []byte("FAILED"))) {
			if bytes.Contains(b, []byte("FAILED")) {
				log.Fatalf("restore failed: %s", b)
			}
			return
		}
	}
	log.Fatal("no restore")
}

// rss is a process's resident memory, bytes.
func rss(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func dropCaches() { _ = os.WriteFile("/proc/sys/vm/drop_caches", []byte("1"), 0) }

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}
