package storage

import (
	"testing"
	"time"
)

// TestWaitAppliedIsWokenByTheApply: a waiter returns when the index it
// waits for is applied, woken by it, and reports a timeout otherwise.
func TestWaitAppliedIsWokenByTheApply(t *testing.T) {
	db, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	start := db.AppliedIndex()
	done := make(chan bool, 1)
	go func() { done <- db.WaitApplied(start+3, time.Minute) }()
	for i := uint64(1); i <= 3; i++ {
		time.Sleep(5 * time.Millisecond)
		db.setApplied(start + i)
	}
	select {
	case ok := <-done:
		if !ok {
			t.Fatal("WaitApplied said the index was not applied")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("WaitApplied was not woken by the apply")
	}
	if db.WaitApplied(start+10, 10*time.Millisecond) {
		t.Fatal("WaitApplied said an index not applied was")
	}
	if !db.WaitApplied(start+2, 0) {
		t.Fatal("an index applied before the wait was not seen")
	}
}
