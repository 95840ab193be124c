package logs_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/universe-orchestrator/universe/instance/logs"
)

// Memory follows bytes, not only lines: long lines push old ones out of the
// ring, a subscriber's queue is bounded in bytes too (the rest is a gap),
// and an answer is bounded in bytes.
func TestBoundedInBytes(t *testing.T) {
	l, _ := logs.Open("", logs.Options{RingLines: 10000, RingBytes: 1 << 20, SubBytes: 256 << 10, LineRate: -1})
	sub, _ := l.Subscribe(logs.Position{})
	long := strings.Repeat("x", 64<<10)
	for i := 0; i < 100; i++ {
		l.Write("stdout", []string{long + strconv.Itoa(i)})
	}
	all, total, omitted := l.Last(10000, 1<<30)
	if total != 100 || len(all) > 16 || len(all) < 10 || omitted != 0 {
		t.Fatalf("ring holds %d lines of 64 KiB (total %d, omitted %d), want about 1 MiB of them", len(all), total, omitted)
	}
	if last := all[len(all)-1]; last.Seq != 100 {
		t.Fatalf("newest line %d", last.Seq)
	}
	some, _, omitted := l.Last(10000, 200<<10)
	if len(some) != 3 || omitted != len(all)-3 {
		t.Fatalf("200 KiB answer: %d lines, %d omitted", len(some), omitted)
	}
	evs := drain(t, sub)
	var got, gap uint64
	for _, e := range evs {
		switch e.Kind {
		case logs.KindLine:
			got++
		case logs.KindGap:
			gap += e.To - e.From + 1
		}
	}
	if got > 4 || got+gap != 100 {
		t.Fatalf("subscriber: %d lines and %d in gaps, want at most 4 lines (256 KiB) and the rest as gaps", got, gap)
	}
	// A small line always fits.
	l.Write("stdout", []string{"short"})
	if last, _, _ := l.Last(1, 10); len(last) != 1 || last[0].Line != "short" {
		t.Fatalf("last %+v", last)
	}
}

// Lines numbered while the disk was full are missing from the file: after
// a restart the log shows them as a gap with its count, and a system line
// says how many and why.
func TestDiskFullShowsAsGap(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a full file system needs root (mount -t tmpfs)")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	logDir := filepath.Join(dir, "log")
	opt := logs.Options{LineRate: -1, FileSync: true, FileBytes: 1 << 20}
	l, err := logs.Open(logDir, opt)
	if err != nil {
		t.Fatal(err)
	}
	l.Write("stdout", []string{"before"})
	// Fill the disk.
	filler := filepath.Join(dir, "filler")
	f, _ := os.Create(filler)
	_, _ = f.Write(make([]byte, 256<<10))
	f.Close()
	line := strings.Repeat("y", 1000)
	for i := 0; i < 50; i++ {
		l.Write("stdout", []string{line})
	}
	// Space again: the next write goes through, with the report.
	_ = os.Remove(filler)
	l.Write("stdout", []string{"after"})
	if err := l.Close(nil); err != nil {
		t.Fatal(err)
	}

	l2, err := logs.Open(logDir, opt)
	if err != nil {
		t.Fatal(err)
	}
	sub, backlog := l2.Subscribe(logs.Position{HasSince: true})
	defer sub.Close()
	var gap uint64
	var report, before, after bool
	for _, e := range backlog {
		switch {
		case e.Kind == logs.KindGap:
			gap += e.To - e.From + 1
		case e.Line.Line == "before":
			before = true
		case e.Line.Line == "after":
			after = true
		case e.Line.Stream == "system" && strings.Contains(e.Line.Line, "missing from the log file: no space left"):
			report = true
			if !strings.HasPrefix(e.Line.Line, strconv.FormatUint(gap, 10)+" lines") {
				t.Errorf("report %q, gap %d", e.Line.Line, gap)
			}
		}
	}
	if gap == 0 || !report || !before || !after {
		t.Fatalf("after a full disk: gap %d, report %v, before %v, after %v", gap, report, before, after)
	}
}
