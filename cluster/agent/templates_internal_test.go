package agent

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Callers of a coalesced run that arrive while one is under way share the
// next run, never the one under way (it may have read the master's
// templates before their file was written), and get its error.
func TestCoalescedRunsBeganAfterTheCall(t *testing.T) {
	c := &coalesced{}
	c.cond = sync.NewCond(&c.mu)
	var runs atomic.Int64
	release := make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- c.do(func() error {
			runs.Add(1)
			<-release // the first run holds until the others have called
			return errors.New("run 1")
		})
	}()
	waitFor := func(what string, cond func() bool) {
		for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("waited 30 s for %s", what)
			}
		}
	}
	waitFor("the first run", func() bool { return runs.Load() > 0 })
	const late = 8
	var wg sync.WaitGroup
	errs := make(chan error, late)
	for range late {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- c.do(func() error {
				n := runs.Add(1)
				return errors.New("run " + string(rune('0'+n)))
			})
		}()
	}
	waitFor("every late caller waiting for the first run to end", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.waiting == late
	})
	close(release)
	if err := <-first; err == nil || err.Error() != "run 1" {
		t.Fatalf("the first caller got %v, want its own run's error", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err == nil || err.Error() == "run 1" {
			t.Fatalf("a caller that came during run 1 got %v: a run that began before it called", err)
		}
	}
	if n := runs.Load(); n != 2 {
		t.Fatalf("%d runs for 1 + %d callers, want 2: those who called during the first share the second", n, late)
	}
}
