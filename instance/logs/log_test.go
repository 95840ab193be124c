package logs_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/universe-orchestrator/universe/instance/logs"
)

func lines(n, from int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("line %d", from+i)
	}
	return out
}

func drain(t *testing.T, s *logs.Sub) []logs.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	var out []logs.Event
	for {
		evs, ok := s.Next(ctx)
		if !ok {
			return out
		}
		out = append(out, evs...)
	}
}

func TestRingAndResume(t *testing.T) {
	l, err := logs.Open("", logs.Options{RingLines: 10, LineRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	l.Write("stdout", lines(25, 1)) // seq 1..25; the ring keeps 16..25
	last, total, _ := l.Last(3, 1<<20)
	if total != 25 || len(last) != 3 || last[0].Seq != 23 || last[2].Line != "line 25" {
		t.Fatalf("last %+v total %d", last, total)
	}
	cases := []struct {
		name     string
		pos      logs.Position
		gap      [2]uint64 // zero: none
		firstSeq uint64
		numLines int
	}{
		{"tail", logs.Position{Lines: 4}, [2]uint64{}, 22, 4},
		{"tail beyond the ring", logs.Position{Lines: 100}, [2]uint64{}, 16, 10},
		{"since inside the ring", logs.Position{Since: 20, HasSince: true}, [2]uint64{}, 21, 5},
		{"since the last line", logs.Position{Since: 25, HasSince: true}, [2]uint64{}, 0, 0},
		{"since zero", logs.Position{Since: 0, HasSince: true}, [2]uint64{1, 15}, 16, 10},
		{"since before the ring", logs.Position{Since: 10, HasSince: true}, [2]uint64{11, 15}, 16, 10},
		{"since the oldest-1", logs.Position{Since: 15, HasSince: true}, [2]uint64{}, 16, 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, _ := logs.Open("", logs.Options{RingLines: 10, LineRate: -1})
			l.Write("stdout", lines(25, 1))
			s, backlog := l.Subscribe(tc.pos)
			defer s.Close()
			var gap [2]uint64
			var got []uint64
			for _, e := range backlog {
				switch e.Kind {
				case logs.KindGap:
					gap = [2]uint64{e.From, e.To}
				case logs.KindLine:
					got = append(got, e.Line.Seq)
				}
			}
			if gap != tc.gap || len(got) != tc.numLines || (len(got) > 0 && got[0] != tc.firstSeq) {
				t.Fatalf("gap %v lines %v", gap, got)
			}
			for i := 1; i < len(got); i++ {
				if got[i] != got[i-1]+1 {
					t.Fatalf("not contiguous: %v", got)
				}
			}
			// Then it follows.
			l.Write("stdout", []string{"next"})
			evs := drain(t, s)
			if len(evs) != 1 || evs[0].Line.Line != "next" {
				t.Fatalf("follow %+v", evs)
			}
		})
	}
}

// A subscriber that does not read gets one gap in place of what it missed,
// in order; the writer never waits, and other subscribers get everything.
func TestSlowSubscriberGetsGap(t *testing.T) {
	l, _ := logs.Open("", logs.Options{SubBuffer: 5, LineRate: -1})
	slow, _ := l.Subscribe(logs.Position{})
	fast, _ := l.Subscribe(logs.Position{})
	defer slow.Close()
	var got []uint64
	for i := 0; i < 4; i++ {
		l.Write("stdout", lines(5, i*5+1))
		for _, e := range drain(t, fast) {
			got = append(got, e.Line.Seq)
		}
	}
	if len(got) != 20 {
		t.Fatalf("fast subscriber got %d lines", len(got))
	}
	evs := drain(t, slow)
	if len(evs) != 6 || evs[4].Line.Seq != 5 || evs[5].Kind != logs.KindGap || evs[5].From != 6 || evs[5].To != 20 {
		t.Fatalf("slow subscriber %+v", evs)
	}
	l.Write("stdout", []string{"after"})
	evs = drain(t, slow)
	if len(evs) != 1 || evs[0].Line.Seq != 21 {
		t.Fatalf("after the gap %+v", evs)
	}
}

func TestThrottleReportsDrops(t *testing.T) {
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	l, _ := logs.Open("", logs.Options{LineRate: 10, Now: clock})
	l.Write("stdout", lines(25, 1)) // 10 kept, 15 dropped
	now = now.Add(2 * time.Second)
	l.Write("stdout", lines(1, 26)) // the drop report comes with the next write a second later
	last, _, _ := l.Last(100, 1<<20)
	var report string
	for _, ln := range last {
		if ln.Stream == "system" {
			report = ln.Line
		}
	}
	if len(last) != 12 || !strings.Contains(report, "15 lines dropped") {
		t.Fatalf("%d lines, report %q", len(last), report)
	}
}

func TestFileKeepsNumberingAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	l, err := logs.Open(dir, logs.Options{LineRate: -1, FileBytes: 200, FileCount: 3})
	if err != nil {
		t.Fatal(err)
	}
	l.Write("stdout", lines(40, 1))
	l.System("stopped")
	if err := l.Close(nil); err != nil {
		t.Fatal(err)
	}
	l2, err := logs.Open(dir, logs.Options{LineRate: -1, FileBytes: 200, FileCount: 3})
	if err != nil {
		t.Fatal(err)
	}
	last, total, _ := l2.Last(5, 1<<20)
	if total != 41 || len(last) == 0 || last[len(last)-1].Line != "stopped" {
		t.Fatalf("reopened: total %d last %+v", total, last)
	}
	l2.Write("stdout", []string{"again"})
	if last, _, _ := l2.Last(1, 1<<20); last[0].Seq != 42 {
		t.Fatalf("numbering restarted: %+v", last)
	}
}

// One write of more lines than the ring holds: a subscriber is told about
// the lines that were pushed out before it could be handed them.
func TestBatchLargerThanRing(t *testing.T) {
	l, _ := logs.Open("", logs.Options{RingLines: 10, LineRate: -1})
	s, _ := l.Subscribe(logs.Position{})
	defer s.Close()
	l.Write("stdout", lines(25, 1))
	evs := drain(t, s)
	if len(evs) != 11 || evs[0].Kind != logs.KindGap || evs[0].From != 1 || evs[0].To != 15 || evs[1].Line.Seq != 16 || evs[10].Line.Seq != 25 {
		t.Fatalf("events %+v", evs)
	}
}

// A subscriber's queue gives back what a burst made it grow to, and the
// events it handed out hold no line once the next read comes (the ring
// may have let those lines go).
func TestSubscriberQueueShrinksAfterABurst(t *testing.T) {
	l, _ := logs.Open("", logs.Options{LineRate: -1})
	sub, _ := l.Subscribe(logs.Position{})
	defer sub.Close()
	next := func() []logs.Event {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		evs, ok := sub.Next(ctx)
		if !ok {
			t.Fatal("no events")
		}
		return evs
	}
	l.Write("stdout", lines(1000, 1))
	burst := next()
	if len(burst) != 1000 {
		t.Fatalf("burst: %d events", len(burst))
	}
	l.Write("stdout", lines(1, 1001))
	if evs := next(); len(evs) != 1 || evs[0].Line.Seq != 1001 {
		t.Fatalf("after the burst: %+v", evs)
	}
	for i, e := range burst {
		if e != (logs.Event{}) {
			t.Fatalf("event %d handed out before still holds %+v", i, e)
		}
	}
	l.Write("stdout", lines(1, 1002))
	if evs := next(); len(evs) != 1 || evs[0].Line.Seq != 1002 || cap(evs) > 256 {
		t.Fatalf("the queue after the burst: %d events, capacity %d (the burst's was %d)", len(evs), cap(evs), cap(burst))
	}
}
