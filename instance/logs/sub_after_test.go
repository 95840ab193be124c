package logs

import (
	"context"
	"testing"
	"time"

	"github.com/universe-orchestrator/universe/api"
)

// A subscriber that resumes after a sequence number the log has not
// reached yet (its previous master streamed further than this one's file
// holds) is never handed those lines when the log numbers them later.
func TestSubscriberResumedAheadGetsNoOldLines(t *testing.T) {
	l, err := Open(t.TempDir(), Options{LineRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(nil)
	for i := 0; i < 5; i++ {
		l.System("line")
	}
	sub, backlog := l.Subscribe(Position{Since: 8, HasSince: true})
	defer sub.Close()
	if len(backlog) != 0 {
		t.Fatalf("backlog %+v", backlog)
	}
	for i := 0; i < 6; i++ { // 6..11
		l.System("again")
	}
	l.Append([]api.LogLine{{Seq: 12, Stream: "stdout", Line: "x"}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var evs []Event
	for len(evs) < 4 {
		got, ok := sub.Next(ctx)
		if !ok {
			break
		}
		evs = append(evs, got...)
	}
	var seqs []uint64
	for _, e := range evs {
		if e.Kind != KindLine {
			t.Fatalf("unexpected event %+v", e)
		}
		seqs = append(seqs, e.Line.Seq)
	}
	if len(seqs) == 0 || seqs[0] != 9 {
		t.Fatalf("after resuming at 8 the subscriber got %v, want 9 onwards", seqs)
	}
}
