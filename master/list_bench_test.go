package master_test

import (
	"io"
	"net/http"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/master"
	"github.com/universe-orchestrator/universe/storage"
)

// BenchmarkInstanceList10k: GET /api/instances with 10,000 records (of
// stopped instances, loaded at the master's start), over loopback; it
// reports the body's size and the bytes the master allocated per request
// beside it (the goal: at most twice the body).
func BenchmarkInstanceList10k(b *testing.B) {
	dir := b.TempDir()
	db, err := storage.Open(dir, storage.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().UnixMilli()
	for i := range 10000 {
		exit := 0
		if err := db.PutInstance(api.InstanceInfo{ID: "i" + strconv.Itoa(i), ConfigurationName: "lobby", WrapperNodeID: "node-1", HostAddress: "127.0.0.1",
			AllocatedPort: 20000 + i%10000, State: "STOPPED", AllocatedRAMMB: 1024, AllocatedCPU: 100, Runtime: "process", CreatedAt: now + int64(i),
			ExitCode: &exit, Reason: "stopped by admin"}); err != nil {
			b.Fatal(err)
		}
	}
	_ = db.Close()
	e := newEnv(b, func(c *master.Config) { c.DataDir = dir })
	client := &http.Client{}
	get := func() int64 {
		req, _ := http.NewRequest("GET", e.url+"/api/instances", nil)
		req.Header.Set("Authorization", "Bearer "+e.admin)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
		return n
	}
	body := get()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for b.Loop() {
		get()
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(body), "body-bytes")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/float64(body), "alloc/body")
}
