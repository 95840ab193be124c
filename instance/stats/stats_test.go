package stats

import (
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// TestSampleProcessTree samples a real process tree (a shell with a busy
// child): memory of the whole tree, CPU as cores, one series per target,
// gone when its target goes.
func TestSampleProcessTree(t *testing.T) {
	cmd := exec.Command("sh", "-c", "while :; do :; done & wait")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = exec.Command("pkill", "-P", itoa(cmd.Process.Pid)).Run()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	targets := []Target{{ID: "busy", Configuration: "c", PID: cmd.Process.Pid}}
	s := New(100*time.Millisecond, func() []Target { return targets })
	now := time.Now()
	for i := 0; i < 20; i++ {
		now = now.Add(100 * time.Millisecond)
		time.Sleep(100 * time.Millisecond)
		s.Sample(now)
	}
	got, ok := s.Get("busy")
	if !ok || got.Current == nil || len(got.Samples) < 10 {
		t.Fatalf("stats: %+v", got)
	}
	if got.Current.MemoryBytes <= 0 {
		t.Errorf("no memory for the tree: %+v", got.Current)
	}
	if got.CPUSecondsTotal <= 0 || got.Current.CPU <= 0 {
		t.Errorf("the busy child's CPU is not counted: total %v, now %v cores", got.CPUSecondsTotal, got.Current.CPU)
	}
	n := 0
	s.Each(func(id, config string, cpu float64, mem int64) {
		n++
		if id != "busy" || config != "c" {
			t.Errorf("series %s %s", id, config)
		}
	})
	if n != 1 {
		t.Errorf("%d series, want 1", n)
	}
	targets = nil
	s.Sample(now.Add(time.Second))
	if _, ok := s.Get("busy"); ok {
		t.Error("the series outlived its target")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
