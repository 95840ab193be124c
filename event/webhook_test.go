package event_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/event"
)

// receiver records the events delivered to it.
type receiver struct {
	mu   sync.Mutex
	seqs []uint64
}

func (r *receiver) got() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]uint64(nil), r.seqs...)
}

func (r *receiver) take(req *http.Request) {
	var body struct{ Event api.Event }
	b, _ := io.ReadAll(req.Body)
	_ = json.Unmarshal(b, &body)
	r.mu.Lock()
	r.seqs = append(r.seqs, body.Event.Seq)
	r.mu.Unlock()
}

func waitUntil(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A delivery that fails waits for its next try without holding up the
// events after it; it is taken once the target answers again. A target
// that hangs delays only itself.
func TestWebhookRetryDoesNotHoldUpOthers(t *testing.T) {
	var flaky receiver
	var mu sync.Mutex
	refused := 0
	flakySrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Universe-Event") == api.EventInstanceCrashed {
			mu.Lock()
			refused++
			n := refused
			mu.Unlock()
			if n <= 2 { // the first event: 500 twice
				w.WriteHeader(500)
				return
			}
		}
		flaky.take(r)
	}))
	defer flakySrv.Close()
	release := make(chan struct{})
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hanging.Close()
	defer close(release)
	var good receiver
	goodSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { good.take(r) }))
	defer goodSrv.Close()

	d := event.NewDispatcher(nil, true)
	defer d.Close()
	d.Set([]api.Webhook{
		{ID: "flaky", URL: flakySrv.URL, Events: []string{"*"}, Format: "json", Secret: "s"},
		{ID: "hanging", URL: hanging.URL, Events: []string{"*"}, Format: "json", Secret: "s"},
		{ID: "good", URL: goodSrv.URL, Events: []string{"*"}, Format: "json", Secret: "s"},
	})
	d.Send(api.Event{Seq: 1, Type: api.EventInstanceCrashed})
	for seq := uint64(2); seq <= 50; seq++ {
		d.Send(api.Event{Seq: seq, Type: api.EventInstanceStarted})
	}
	waitUntil(t, "the good target to take all 50", func() bool { return len(good.got()) == 50 })
	waitUntil(t, "the flaky target to take the 49 after the refused one", func() bool { return len(flaky.got()) >= 49 })
	if got := flaky.got(); got[0] == 1 {
		t.Fatalf("the refused event came first: %v", got[:3])
	}
	waitUntil(t, "the refused event, tried again", func() bool { return len(flaky.got()) == 50 })
	if got := flaky.got(); got[49] != 1 {
		t.Errorf("the flaky target's last event: %d, want the refused one (1)", got[49])
	}
	// The target has the event before the dispatcher has its answer and
	// records the delivery: wait for the record, then check it.
	var refusedDel *api.Delivery
	waitUntil(t, "the refused event's delivery recorded done", func() bool {
		for _, del := range d.Deliveries("flaky") {
			if del.EventSeq == 1 && del.Outcome != "retrying" {
				refusedDel = &del
				return true
			}
		}
		return false
	})
	if refusedDel.Outcome != "ok" || refusedDel.Attempts != 3 {
		t.Errorf("the refused event's delivery: %+v", *refusedDel)
	}
	if h := d.Deliveries("hanging"); len(h) != 0 && h[0].Outcome == "ok" {
		t.Errorf("the hanging target took a delivery: %+v", h[0])
	}
}
