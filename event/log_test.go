package event_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/event"
)

// The log keeps at most its bytes (the oldest go); a follower that starts
// before what is kept, or falls behind, is told of a gap; adding never
// waits for a follower.
func TestLogBoundsAndGaps(t *testing.T) {
	l := event.NewLog(64<<10, nil)
	slow := l.Subscribe(0) // never read while the events are added
	msg := strings.Repeat("x", 200)
	start := time.Now()
	for i := 0; i < 20000; i++ {
		l.Add(api.Event{Type: api.EventInstanceStarted, InstanceID: "i", Message: msg})
	}
	t.Logf("20,000 events added in %s with a follower that reads nothing", time.Since(start))
	kept := l.List(event.Filter{Limit: 10000})
	if len(kept) == 0 || len(kept) > 64<<10/200 || kept[len(kept)-1].Seq != 20000 {
		t.Fatalf("kept %d events, the last %d", len(kept), kept[len(kept)-1].Seq)
	}
	late := l.Subscribe(0)
	frames, _ := late.Next(context.Background())
	if frames[0].Gap == nil || frames[0].Gap.From != 1 || frames[0].Gap.To != kept[0].Seq-1 || frames[1].Event.Seq != kept[0].Seq {
		t.Errorf("a late follower's first frames: %+v %+v", frames[0], frames[1])
	}
	frames, _ = slow.Next(context.Background())
	var delivered, missed uint64
	next := uint64(1)
	for _, f := range frames {
		switch {
		case f.Event != nil:
			if f.Event.Seq != next {
				t.Fatalf("event %d where %d was due", f.Event.Seq, next)
			}
			delivered++
			next++
		case f.Gap != nil:
			if f.Gap.From != next {
				t.Fatalf("gap from %d where %d was due", f.Gap.From, next)
			}
			missed += f.Gap.To - f.Gap.From + 1
			next = f.Gap.To + 1
		}
	}
	if delivered+missed != 20000 || missed == 0 {
		t.Errorf("the slow follower: %d delivered + %d in gaps", delivered, missed)
	}
	if got := l.List(event.Filter{Since: 19990}); len(got) != 10 {
		t.Errorf("since: %d", len(got))
	}
}
