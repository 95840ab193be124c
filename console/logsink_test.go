package console

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// slowWriter records each Write and takes a while over it, so that Writes
// made meanwhile pile up behind it.
type slowWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
}

func (w *slowWriter) Write(p []byte) (int, error) {
	time.Sleep(200 * time.Microsecond)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes++
	return w.buf.Write(p)
}

// TestLogSinkGathersLinesWhole: lines written from many goroutines while a
// write is under way arrive whole, each once, each goroutine's in its
// order, in fewer writes than lines; a swap of the target in the middle
// loses nothing, and Flush returns once all is written.
func TestLogSinkGathersLinesWhole(t *testing.T) {
	first, second := &slowWriter{}, &slowWriter{}
	s := NewLogSink(first)
	const goroutines, lines = 16, 500
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < lines; i++ {
				line := fmt.Sprintf("g=%d i=%d %s\n", g, i, strings.Repeat("x", i%300))
				if n, err := s.Write([]byte(line)); n != len(line) || err != nil {
					t.Errorf("Write: %d, %v", n, err)
				}
			}
		}()
	}
	time.Sleep(5 * time.Millisecond)
	if prev := s.set(second); prev != first {
		t.Fatal("set returned another target")
	}
	wg.Wait()
	s.Flush()
	first.mu.Lock()
	second.mu.Lock()
	defer first.mu.Unlock()
	defer second.mu.Unlock()
	got := first.buf.String() + second.buf.String()
	next := make([]int, goroutines)
	count := 0
	for _, line := range strings.Split(strings.TrimSuffix(got, "\n"), "\n") {
		var g, i int
		if _, err := fmt.Sscanf(line, "g=%d i=%d", &g, &i); err != nil {
			t.Fatalf("a line not whole: %q", line)
		}
		if want := fmt.Sprintf("g=%d i=%d %s", g, i, strings.Repeat("x", i%300)); line != want {
			t.Fatalf("a line not whole: %q", line)
		}
		if i != next[g] {
			t.Fatalf("goroutine %d: line %d after %d", g, i, next[g]-1)
		}
		next[g]++
		count++
	}
	if count != goroutines*lines {
		t.Fatalf("%d lines, want %d", count, goroutines*lines)
	}
	if w := first.writes + second.writes; w >= count {
		t.Fatalf("%d writes for %d lines: nothing gathered", w, count)
	}
	t.Logf("%d lines in %d writes", count, first.writes+second.writes)
}
