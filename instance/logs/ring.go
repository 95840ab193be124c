package logs

import (
	"sort"

	"github.com/universe-orchestrator/universe/api"
)

// lineCost is what a line costs in memory, counted against byte limits:
// its text plus the record around it.
func lineCost(ln api.LogLine) int { return len(ln.Line) + len(ln.Stream) + 48 }

// ring keeps the newest lines, bounded both in lines and in bytes: a line
// beyond either bound pushes the oldest out (the newest line is always
// kept). Sequence numbers only grow along the ring, with holes where lines
// were lost.
type ring struct {
	buf      []api.LogLine // circular once it has reached maxLines
	head     int           // index of the oldest line
	n        int
	bytes    int
	maxLines int
	maxBytes int
}

func (r *ring) len() int { return r.n }

// at returns the i-th oldest line.
func (r *ring) at(i int) api.LogLine { return r.buf[(r.head+i)%len(r.buf)] }

func (r *ring) push(ln api.LogLine) {
	if r.n == len(r.buf) {
		if len(r.buf) < r.maxLines {
			r.grow()
		} else {
			r.dropOldest()
		}
	}
	r.buf[(r.head+r.n)%len(r.buf)] = ln
	r.n++
	r.bytes += lineCost(ln)
	for r.bytes > r.maxBytes && r.n > 1 {
		r.dropOldest()
	}
}

func (r *ring) grow() {
	size := min(r.maxLines, max(64, 2*len(r.buf)))
	nb := make([]api.LogLine, size)
	for i := 0; i < r.n; i++ {
		nb[i] = r.at(i)
	}
	r.buf, r.head = nb, 0
}

func (r *ring) dropOldest() {
	r.bytes -= lineCost(r.buf[r.head])
	r.buf[r.head] = api.LogLine{} // let the text go
	r.head = (r.head + 1) % len(r.buf)
	r.n--
}

// after returns the index of the first line numbered above seq (len when
// there is none).
func (r *ring) after(seq uint64) int {
	return sort.Search(r.n, func(i int) bool { return r.at(i).Seq > seq })
}

// tail returns the index from which the newest lines, at most n of them and
// at most maxBytes in all (at least one line), run to the end.
func (r *ring) tail(n, maxBytes int) int {
	start, size := r.n, 0
	for start > 0 && r.n-start < n {
		c := lineCost(r.at(start - 1))
		if size+c > maxBytes && start < r.n {
			break
		}
		size += c
		start--
	}
	return start
}
