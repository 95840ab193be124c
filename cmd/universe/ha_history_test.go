package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/universe-orchestrator/universe/api"
)

// keyHistory is a history of key writes and reads against a cluster while
// it fails over, kept to check that it is linearizable. Every write makes
// a new label, so the history is one of a set that only grows: each write
// takes effect at one moment between its call and its answer, or never
// (an answer other than 201 may still have taken effect), and a read
// shows the set at one moment of its own.
type keyHistory struct {
	prefix string
	mu     sync.Mutex
	ops    []histOp
}

type histOp struct {
	write      bool
	consistent bool // a read through the leader (?consistent=true)
	label      string
	seen       map[string]bool // a read's labels of this history
	master     int
	start, end time.Time
	ok         bool // a write answered 201, a read 200
}

func (h *keyHistory) add(op histOp) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// run writes and reads through the masters live() lists, two writers, two
// readers through the leader and one reading where it asks, until stop.
func (h *keyHistory) run(c *haCluster, live func() []int, stop <-chan struct{}) *sync.WaitGroup {
	client := &http.Client{Timeout: 5 * time.Second}
	var wg sync.WaitGroup
	loop := func(f func(i, n int)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				ms := live()
				f(ms[n%len(ms)], n)
			}
		}()
	}
	for w := range 2 {
		loop(func(i, n int) {
			label := h.prefix + strconv.Itoa(w) + "-" + strconv.Itoa(n)
			op := histOp{write: true, label: label, master: i, start: time.Now()}
			req, _ := http.NewRequest("POST", c.ms[i].base+"/api/keys", strings.NewReader(`{"label":"`+label+`","scope":"PUBLIC"}`))
			req.Header.Set("Authorization", "Bearer "+c.admin)
			req.Header.Set("Content-Type", "application/json")
			if resp, err := client.Do(req); err == nil {
				resp.Body.Close()
				op.ok = resp.StatusCode == http.StatusCreated
			}
			op.end = time.Now()
			h.add(op)
			if !op.ok {
				time.Sleep(20 * time.Millisecond) // no leader yet: do not spin
			}
		})
	}
	read := func(consistent bool) func(i, n int) {
		return func(i, n int) {
			op := histOp{consistent: consistent, master: i, start: time.Now()}
			path := "/api/keys"
			if consistent {
				path += "?consistent=true"
			}
			req, _ := http.NewRequest("GET", c.ms[i].base+path, nil)
			req.Header.Set("Authorization", "Bearer "+c.admin)
			if resp, err := client.Do(req); err == nil {
				var keys []api.Key
				if resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&keys) == nil {
					op.ok, op.seen = true, map[string]bool{}
					for _, k := range keys {
						if strings.HasPrefix(k.Label, h.prefix) {
							op.seen[k.Label] = true
						}
					}
				}
				resp.Body.Close()
			}
			op.end = time.Now()
			if !op.ok {
				time.Sleep(20 * time.Millisecond) // no leader yet: do not spin
			}
			h.add(op)
		}
	}
	loop(read(true))
	loop(read(true))
	loop(read(false))
	return &wg
}

// check verifies the history against final, the labels the cluster holds
// once every master has converged (read through the leader):
//   - every acknowledged write is in final;
//   - a read shows only labels in final, and none whose write began after
//     the read ended;
//   - a read through the leader shows every write acknowledged before it
//     began, and every label another such read had shown before it began.
//
// Reads where the client asks (a follower's own state) may lag: they are
// held to the first two rules only.
func (h *keyHistory) check(t *testing.T, final map[string]bool) {
	t.Helper()
	v, writes, acked, reads, consistent := h.violations(final)
	for i, s := range v {
		if i == 10 {
			t.Errorf("… %d violations in all", len(v))
			break
		}
		t.Error(s)
	}
	if acked == 0 || consistent == 0 {
		t.Errorf("the history is too thin to check: %d acknowledged writes, %d consistent reads", acked, consistent)
	}
	t.Logf("history: %d writes (%d acknowledged), %d reads (%d consistent): linearizable: %v", writes, acked, reads, consistent, len(v) == 0)
}

// violations lists what breaks check's rules, with the history's counts.
func (h *keyHistory) violations(final map[string]bool) (v []string, writeCount, acked, readCount, consistent int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var writes, reads []histOp
	began := map[string]time.Time{}
	for _, op := range h.ops {
		if op.write {
			writes = append(writes, op)
			began[op.label] = op.start
		} else if op.ok {
			reads = append(reads, op)
		}
	}
	fail := func(format string, args ...any) { v = append(v, fmt.Sprintf(format, args...)) }
	for _, w := range writes {
		if w.ok {
			acked++
			if !final[w.label] {
				fail("write %s acknowledged by master %d at %v is lost", w.label, w.master, w.end.Format(time.StampMicro))
			}
		}
	}
	// Sweep the reads in the order they began, with what had been
	// acknowledged, and what consistent reads had shown, before each.
	sort.Slice(reads, func(i, j int) bool { return reads[i].start.Before(reads[j].start) })
	var done []histOp // acknowledged writes and consistent reads, by their end
	for _, w := range writes {
		if w.ok {
			done = append(done, w)
		}
	}
	for _, r := range reads {
		if r.consistent {
			done = append(done, r)
		}
	}
	sort.Slice(done, func(i, j int) bool { return done[i].end.Before(done[j].end) })
	must := map[string]string{} // label: why a consistent read must show it
	next := 0
	for _, r := range reads {
		for l := range r.seen {
			if !final[l] {
				fail("a read of master %d showed %s, which no master holds in the end", r.master, l)
			}
			if b, ok := began[l]; !ok || b.After(r.end) {
				fail("a read of master %d showed %s before its write began", r.master, l)
			}
		}
		for ; next < len(done) && done[next].end.Before(r.start); next++ {
			if d := done[next]; d.write {
				must[d.label] = "acknowledged at " + d.end.Format(time.StampMicro)
			} else {
				for l := range d.seen {
					if _, ok := must[l]; !ok {
						must[l] = "shown by a consistent read that ended at " + d.end.Format(time.StampMicro)
					}
				}
			}
		}
		if !r.consistent {
			continue
		}
		consistent++
		for l, why := range must {
			if !r.seen[l] {
				fail("a consistent read through master %d at %v misses %s, %s", r.master, r.start.Format(time.StampMicro), l, why)
			}
		}
	}
	return v, len(writes), acked, len(reads), consistent
}

// TestKeyHistoryFindsViolations: the checker finds a lost write, a read
// showing what was never kept or not yet written, a consistent read
// missing an acknowledged write or what an earlier one showed; and passes
// a history that has none of these (with a follower's read lagging).
func TestKeyHistoryFindsViolations(t *testing.T) {
	t0 := time.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	w := func(label string, from, to int, ok bool) histOp {
		return histOp{write: true, label: label, start: at(from), end: at(to), ok: ok}
	}
	r := func(consistent bool, from, to int, seen ...string) histOp {
		op := histOp{consistent: consistent, start: at(from), end: at(to), ok: true, seen: map[string]bool{}}
		for _, l := range seen {
			op.seen[l] = true
		}
		return op
	}
	final := map[string]bool{"a": true, "b": true, "c": true}
	good := []histOp{
		w("a", 0, 10, true), w("b", 5, 30, true), w("c", 40, 50, false), w("d", 40, 50, false),
		r(true, 12, 20, "a"),           // b not yet acknowledged: may be missing
		r(true, 15, 25, "a", "b"),      // b in flight: may be there
		r(true, 31, 35, "a", "b"),      // after b's answer
		r(false, 36, 38, "a"),          // a follower lagging
		r(true, 45, 60, "a", "b", "c"), // c took effect though unanswered
	}
	if v, _, _, _, _ := (&keyHistory{ops: good}).violations(final); len(v) != 0 {
		t.Fatalf("a linearizable history: %v", v)
	}
	for name, bad := range map[string][]histOp{
		"an acknowledged write lost":                  {w("a", 0, 10, true), w("e", 0, 10, true), r(true, 12, 20, "a")},
		"a read of what was never kept":               {w("a", 0, 10, true), w("d", 40, 50, false), r(false, 45, 60, "a", "d")},
		"a read before the write began":               {w("a", 0, 10, true), w("c", 40, 50, false), r(true, 12, 20, "a", "c")},
		"a consistent read missing an answered write": {w("a", 0, 10, true), w("b", 5, 30, true), r(true, 31, 35, "a")},
		"a consistent read going back":                {w("a", 0, 10, true), w("b", 5, 30, true), r(true, 15, 25, "a", "b"), r(true, 26, 29, "a")},
	} {
		if v, _, _, _, _ := (&keyHistory{ops: bad}).violations(final); len(v) == 0 {
			t.Errorf("%s: not found", name)
		}
	}
}
