package logs

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/universe-orchestrator/universe/api"
)

// writeFiles writes lines 1..n (of varying lengths) through a rotator that
// rotates beyond max bytes, keeping count files.
func writeFiles(t *testing.T, n int, max int64, count int) string {
	t.Helper()
	dir := t.TempDir()
	r, _, err := openRotator(dir, max, count)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		ln := api.LogLine{Seq: uint64(i), TS: 1700000000000 + int64(i), Stream: api.StreamStdout, Line: strings.Repeat("x", i%97) + strconv.Itoa(i)}
		if i%5 == 0 {
			ln.Stream = api.StreamStderr
		}
		if err := r.write(ln); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestReadRange(t *testing.T) {
	// 20,000 lines of ~70 bytes in files of 256 KiB, 4 kept: lines below
	// about 5,000 are rotated away.
	dir := writeFiles(t, 20000, 256<<10, 4)
	first := uint64(0)
	for i := 3; i >= 0 && first == 0; i-- {
		if lf, ok := openLogFile((&rotator{dir: dir}).path(i)); ok {
			first = lf.firstSeq()
			lf.close()
		}
	}
	if first < 2 || first > 10000 {
		t.Fatalf("oldest line kept: %d", first)
	}
	for _, tc := range []struct {
		name     string
		from, to uint64
		budget   int
		newest   bool
		want     [2]uint64 // first and last line returned (0,0: none)
	}{
		{"inside the newest file", 19990, 20001, 1 << 20, false, [2]uint64{19990, 20000}},
		{"no upper bound", 19990, 0, 1 << 20, false, [2]uint64{19990, 20000}},
		{"across files", first + 10, 19000, 4 << 20, false, [2]uint64{first + 10, 18999}},
		{"older than the files", 1, first + 3, 1 << 20, false, [2]uint64{first, first + 2}},
		{"beyond the end", 20001, 0, 1 << 20, false, [2]uint64{}},
		{"forward, budget", 10000, 20001, 700, false, [2]uint64{10000, 0}},
		{"newest, budget", 10000, 20001, 700, true, [2]uint64{0, 20000}},
		{"newest across files", first, 20001, 4 << 20, true, [2]uint64{first, 20000}},
		{"one line", 15000, 15001, 1, false, [2]uint64{15000, 15000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := readRange(dir, 4, tc.from, tc.to, tc.budget, tc.newest)
			if len(got) == 0 {
				if tc.want != [2]uint64{} {
					t.Fatalf("nothing, want %v", tc.want)
				}
				return
			}
			if (tc.want[0] != 0 && got[0].Seq != tc.want[0]) || (tc.want[1] != 0 && got[len(got)-1].Seq != tc.want[1]) {
				t.Fatalf("lines %d..%d, want %v", got[0].Seq, got[len(got)-1].Seq, tc.want)
			}
			size := 0
			for _, ln := range got {
				size += len(strconv.FormatUint(ln.Seq, 10)) + 13 + len(ln.Stream) + len(ln.Line) + 4
			}
			if len(got) > 1 && size > tc.budget {
				t.Fatalf("%d lines, %d bytes of records, over the budget of %d", len(got), size, tc.budget)
			}
			if tc.budget == 700 && len(got) < 5 {
				t.Fatalf("%d lines for a budget of %d", len(got), tc.budget)
			}
			for i, ln := range got {
				if i > 0 && ln.Seq != got[i-1].Seq+1 {
					t.Fatalf("line %d after %d", ln.Seq, got[i-1].Seq)
				}
				want := strings.Repeat("x", int(ln.Seq%97)) + strconv.FormatUint(ln.Seq, 10)
				if ln.Line != want || ln.TS != 1700000000000+int64(ln.Seq) {
					t.Fatalf("line %d: %q at %d", ln.Seq, ln.Line, ln.TS)
				}
				if (ln.Seq%5 == 0) != (ln.Stream == api.StreamStderr) {
					t.Fatalf("line %d on %s", ln.Seq, ln.Stream)
				}
			}
		})
	}
}

// Damaged records (a torn write, garbage) are skipped, and the search
// still finds the lines around them.
func TestReadRangeDamaged(t *testing.T) {
	dir := t.TempDir()
	var sb strings.Builder
	for i := 1; i <= 3000; i++ {
		switch {
		case i == 1000:
			sb.WriteString("garbage without numbers\n")
		case i == 2000:
			sb.WriteString("2000 17000") // torn: no newline, runs into the next
		default:
			sb.WriteString(strconv.Itoa(i) + " 1700000000000 stdout line " + strconv.Itoa(i) + "\n")
		}
	}
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte(sb.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	// The torn record swallowed the next one: 2001 is lost with 2000.
	for _, tc := range [][2]uint64{{1, 1}, {999, 999}, {1000, 1001}, {1001, 1001}, {1999, 1999}, {2001, 2002}, {2500, 2500}, {3000, 3000}} {
		from := tc[0]
		got := readRange(dir, 3, from, 0, 1<<20, false)
		if len(got) == 0 || got[len(got)-1].Seq != 3000 {
			t.Fatalf("from %d: %d lines", from, len(got))
		}
		if got[0].Seq != tc[1] {
			t.Fatalf("from %d: first %d, want %d", from, got[0].Seq, tc[1])
		}
		for _, ln := range got {
			if ln.Seq == 1000 || ln.Seq == 2000 || ln.Seq == 2001 || ln.Line != "line "+strconv.FormatUint(ln.Seq, 10) {
				t.Fatalf("from %d: %+v", from, ln)
			}
		}
	}
}

func FuzzAppendRecords(f *testing.F) {
	f.Add([]byte("1 2 stdout hello\n2 3 stderr x y\n"))
	f.Add([]byte("99999999999999999999 1 stdout x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, ln := range appendRecords(nil, data) {
			if strings.Contains(ln.Line, "\n") || strings.Contains(ln.Stream, " ") {
				t.Fatalf("%+v", ln)
			}
		}
	})
}

// Read goes to the files for lines in a hole of the ring (a catch-up
// loads only the newest lines), not past them.
func TestReadThroughARingHole(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{RingLines: 200, LineRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(nil)
	lines := make([]string, 1000)
	for i := range lines {
		lines[i] = "line " + strconv.Itoa(i+1)
	}
	l.Write(api.StreamStdout, lines[:50]) // 1..50 in the ring
	l.Flush()
	// Another writer adds 51..1000 to the file; this log catches up,
	// loading only the newest 200: the ring holds 1..50 and 801..1000.
	next, err := l.Handoff()
	if err != nil || next != 51 {
		t.Fatalf("handoff: %d %v", next, err)
	}
	r, _, err := openRotator(dir, 10<<20, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := 51; i <= 1000; i++ {
		_ = r.write(api.LogLine{Seq: uint64(i), TS: 1, Stream: api.StreamStdout, Line: lines[i-1]})
	}
	_ = r.close()
	l.CatchUp(1001)
	// Read as a follower does: from where the last read ended.
	var got []api.LogLine
	for from := uint64(40); from <= 1000; {
		part := l.Read(from, 1001, 1<<20)
		if len(part) == 0 || part[0].Seq != from {
			t.Fatalf("read from %d: %d lines, first %v", from, len(part), part)
		}
		got = append(got, part...)
		from = part[len(part)-1].Seq + 1
	}
	for i, ln := range got {
		if ln.Seq != uint64(40+i) || ln.Line != lines[ln.Seq-1] {
			t.Fatalf("line %d (%q) at %d", ln.Seq, ln.Line, i)
		}
	}
}
