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

// A log advanced (a master that starts or gains the leadership) numbers on
// from there: "since" from an earlier log stays meaningful, and a follower
// from before the jump is told of the numbers it never got.
func TestLogAdvance(t *testing.T) {
	l := event.NewLog(0, nil)
	if l.Last() != 0 {
		t.Fatalf("an empty log's last: %d", l.Last())
	}
	l.Add(api.Event{Type: api.EventNodeLost})
	l.Advance(1000)
	l.Advance(500) // never backwards
	e := l.Add(api.Event{Type: api.EventNodeBack})
	if e.Seq != 1000 || l.Last() != 1000 {
		t.Fatalf("after Advance(1000): seq %d, last %d", e.Seq, l.Last())
	}
	if got := l.List(event.Filter{Since: 700}); len(got) != 1 || got[0].Seq != 1000 {
		t.Fatalf("since 700: %+v", got)
	}
	// A new leader's log, advanced past what a follower saw elsewhere:
	// its events come, and no gap is made up for numbers it never held.
	other := event.NewLog(0, nil)
	other.Advance(2000)
	other.Add(api.Event{Type: api.EventNodeBack})
	frames, _ := other.Subscribe(1000).Next(context.Background())
	if len(frames) != 1 || frames[0].Event == nil || frames[0].Event.Seq != 2000 {
		t.Fatalf("a follower resuming on another log: %+v", frames)
	}
	// A follower that falls behind across a jump is told the exact count
	// it missed, not the distance between the numbers.
	small := event.NewLog(2000, nil)
	behind := small.Subscribe(0)
	for i := 0; i < 10; i++ {
		small.Add(api.Event{Type: api.EventNodeLost})
	}
	small.Advance(1 << 40)
	for i := 0; i < 100; i++ {
		small.Add(api.Event{Type: api.EventNodeLost})
	}
	frames, _ = behind.Next(context.Background())
	if frames[0].Gap == nil || frames[0].Gap.From != 1 || frames[0].Gap.Count != uint64(110-(len(frames)-1)) {
		t.Fatalf("a follower behind across a jump: gap %+v, then %d events", frames[0].Gap, len(frames)-1)
	}
}

func TestLogRecent(t *testing.T) {
	l := event.NewLog(0, nil)
	for i := 0; i < 10; i++ {
		typ := api.EventInstanceStarted
		if i%2 == 1 {
			typ = api.EventInstanceStopped
		}
		l.Add(api.Event{Type: typ})
	}
	got := l.Recent(event.Filter{Type: api.EventInstanceStopped}, 3)
	if len(got) != 3 || got[0].Seq != 10 || got[1].Seq != 8 || got[2].Seq != 6 {
		t.Fatalf("recent: %+v", got)
	}
}
