// Package logs keeps the log of one instance: a ring of recent lines with
// sequence numbers, a rotating file, a per-instance line-rate throttle, and
// live subscribers fed through bounded buffers.
//
// A publisher never blocks on a subscriber: a subscriber whose buffer is
// full gets one gap event in place of the lines it missed, in order.
package logs

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/universe-orchestrator/universe/api"
)

// Options tune a Log. Zero values take the defaults.
type Options struct {
	RingLines  int   // lines kept in memory (default 10,000)
	RingBytes  int   // bytes of lines kept in memory (default 4 MiB; the newest line is always kept)
	FileBytes  int64 // rotate the file beyond this size (default 10 MiB)
	FileCount  int   // files kept, the current one included (default 3)
	LineRate   int   // stdout+stderr lines per second before dropping (default 10,000; <0 = unlimited)
	SubBuffer  int   // events a subscriber may have pending (default 4,096)
	SubBytes   int   // bytes of lines a subscriber may have pending (default 1 MiB)
	Now        func() time.Time
	OnLines    func(n int)               // lines accepted (any stream)
	OnDropped  func(cause string, n int) // lines dropped: "throttled" or "slow_client"
	OnWarnFile func(err error)           // the log file could not be written
	// FileSync writes every batch to the file at once instead of within
	// 100 ms: the supervisor's log, which others read while it runs.
	FileSync bool
	// MinNext is the lowest sequence number the next line may get (the
	// numbering of a log whose file was handed over).
	MinNext uint64
}

func (o Options) withDefaults() Options {
	if o.RingLines <= 0 {
		o.RingLines = 10000
	}
	if o.RingBytes <= 0 {
		o.RingBytes = 4 << 20
	}
	if o.SubBytes <= 0 {
		o.SubBytes = 1 << 20
	}
	if o.FileBytes <= 0 {
		o.FileBytes = 10 << 20
	}
	if o.FileCount <= 0 {
		o.FileCount = 3
	}
	if o.LineRate == 0 {
		o.LineRate = 10000
	}
	if o.SubBuffer <= 0 {
		o.SubBuffer = 4096
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.OnLines == nil {
		o.OnLines = func(int) {}
	}
	if o.OnDropped == nil {
		o.OnDropped = func(string, int) {}
	}
	if o.OnWarnFile == nil {
		o.OnWarnFile = func(error) {}
	}
	return o
}

// Log is the log of one instance. It is safe for concurrent use.
type Log struct {
	opt  Options
	mu   sync.Mutex
	ring ring
	next uint64 // seq of the next line; the first line is 1
	// published is the last seq subscribers were told about (as a line or
	// a gap): every method that numbers lines publishes before it returns.
	published uint64
	// unloaded is the last seq of the lines in the file that are not in
	// the ring yet (0: none): Open reads only the file's last record, and
	// the ring is filled from the file when it is first read.
	unloaded uint64
	subs     map[*Sub]struct{}
	file     *rotator
	dir      string
	done     bool

	// While another process (the instance's supervisor) owns the file, the
	// log is external: lines arrive numbered through Append, and system
	// lines go to forward (or wait in pending until it is set).
	external bool
	// mirror: lines arrive numbered through Append (from another node's
	// log) and this log writes them to its own file as well.
	mirror  bool
	forward func(line string)
	pending []string

	// throttle (token bucket over stdout+stderr lines)
	tokens     float64
	last       time.Time
	dropped    int
	dropReport time.Time   // when the unreported run of drops began
	dropTimer  *time.Timer // reports the run if the output stops
	flushTimer *time.Timer // flushes the file buffer

	// lines numbered but missing from the file (a write failed: a full
	// disk, say), not yet said in the log
	fileLost                 int
	fileLostFrom, fileLostTo uint64
	fileLostErr              string
}

// Open opens the log kept in dir (created if needed; "" keeps no file).
// Lines already in the file are loaded into the ring and numbering goes on
// after the last of them.
func Open(dir string, opt Options) (*Log, error) {
	opt = opt.withDefaults()
	l := &Log{opt: opt, next: 1, dir: dir, subs: map[*Sub]struct{}{}, tokens: float64(opt.LineRate), last: opt.Now(),
		ring: ring{maxLines: opt.RingLines, maxBytes: opt.RingBytes}}
	if dir != "" {
		f, last, err := openRotator(dir, opt.FileBytes, opt.FileCount)
		if err != nil {
			return nil, err
		}
		l.file = f
		if last > 0 {
			l.next, l.unloaded = last+1, last
		}
	}
	if l.next < opt.MinNext {
		l.next = opt.MinNext
	}
	l.published = l.next - 1
	return l, nil
}

// Handoff gives the file to another writer: the file is flushed and closed,
// and from now on lines arrive through Append and system lines go to the
// forwarder set by Forward. It returns the sequence number the other writer
// must continue with.
func (l *Log) Handoff() (next uint64, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.external {
		l.external = true
		if l.flushTimer != nil {
			l.flushTimer.Stop()
			l.flushTimer = nil
		}
		if l.file != nil {
			err = l.file.close()
		}
	}
	return l.next, err
}

// Mirror is Handoff for a log whose lines are numbered elsewhere (an
// instance on another node) but kept here too: lines arrive through
// Append and are written to this log's own file, system lines go to the
// forwarder. It returns the next sequence number.
func (l *Log) Mirror() (next uint64, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.external {
		l.external, l.mirror = true, true
	}
	return l.next, nil
}

// Forward sets where system lines go while the log is external; lines
// written before it was set are handed to f first. f must not block.
func (l *Log) Forward(f func(line string)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.external {
		return
	}
	l.forward = f
	for _, line := range l.pending {
		f(line)
	}
	l.pending = nil
}

// Takeback makes the log own its file again (the other writer has closed
// it). Lines before sequence number next that this log has not seen are
// read from the file first (next 0: the other writer's last line is not
// known, so the whole file is checked); system lines that could not be
// forwarded are written.
func (l *Log) Takeback(next uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.external {
		return nil
	}
	if l.dir != "" && (next == 0 || next > l.next) {
		l.catchUpLocked(next)
		l.publish()
	}
	mirrored := l.mirror
	l.external, l.mirror, l.forward = false, false, nil
	var err error
	if l.file != nil && !mirrored {
		err = l.file.open()
	}
	pending := l.pending
	l.pending = nil
	for _, line := range pending {
		l.systemLocked(line)
	}
	return err
}

// External says whether another writer owns the file.
func (l *Log) External() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.external
}

// Append adds lines numbered by the writer that owns the file. Lines this
// log has already are skipped; lines it missed are read from the file (or
// given to subscribers as a gap if the file lacks them).
func (l *Log) Append(lines []api.LogLine) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done || len(lines) == 0 {
		return
	}
	n := 0
	for _, ln := range lines {
		if ln.Seq < l.next {
			continue
		}
		if ln.Seq > l.next {
			l.catchUpLocked(ln.Seq)
		}
		l.next = ln.Seq + 1
		l.push(ln)
		if l.mirror && l.file != nil {
			l.fileFailed(l.file.write(ln))
		}
		n++
	}
	l.publish()
	l.opt.OnLines(n)
}

// CatchUp reads from the file the lines before seq to that this log has not
// seen (the other writer wrote them while nobody listened).
func (l *Log) CatchUp(to uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done || to <= l.next {
		return
	}
	l.catchUpLocked(to)
	l.publish()
}

// catchUpLocked pushes lines next..to-1 from the file into the ring (to 0:
// every newer line of the file). Lines the file lacks are a hole in the
// numbering, which publish turns into a gap. It does not publish. Caller
// holds mu.
func (l *Log) catchUpLocked(to uint64) {
	if l.dir != "" {
		// What the ring can hold, no more: older lines would only be
		// pushed out again (subscribers get a gap for them).
		from := l.next
		if to > from+uint64(l.opt.RingLines) {
			from = to - uint64(l.opt.RingLines)
		}
		for _, ln := range readRange(l.dir, l.opt.FileCount, from, to, l.opt.RingBytes, true) {
			if ln.Seq < l.next {
				continue
			}
			l.push(ln)
			l.next = ln.Seq + 1
		}
	}
	if to > l.next {
		l.next = to
	}
}

// push stores one line in the ring. Caller holds mu (or owns l).
func (l *Log) push(ln api.LogLine) { l.ring.push(ln) }

// loadLocked fills the ring with the newest lines of the file that are not
// in it yet, older than those it has. Caller holds mu.
func (l *Log) loadLocked() {
	if l.unloaded == 0 {
		return
	}
	old := loadTail(l.dir, l.opt.FileCount, l.opt.RingLines, l.opt.RingBytes)
	newer := make([]api.LogLine, 0, l.ring.len())
	for i := 0; i < l.ring.len(); i++ {
		newer = append(newer, l.ring.at(i))
	}
	l.ring = ring{maxLines: l.opt.RingLines, maxBytes: l.opt.RingBytes}
	for _, ln := range old {
		if ln.Seq <= l.unloaded {
			l.ring.push(ln)
		}
	}
	for _, ln := range newer {
		l.ring.push(ln)
	}
	l.unloaded = 0
}

// Write appends lines of one stream (stdout or stderr), subject to the line
// rate: lines over it are dropped and reported by a system line. It never
// blocks on subscribers.
func (l *Log) Write(stream string, lines []string) {
	if len(lines) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return
	}
	now := l.opt.Now()
	l.writeLocked(stream, lines[:l.admitLocked(len(lines), now)], now)
}

// Admit takes n lines through the line-rate throttle before they are
// written: it returns how many may be kept (the first ones), and counts the
// rest as dropped, to be reported like any throttled line. The kept ones
// go to WriteAdmitted. A reader asks before it makes strings of its
// lines, so that dropping costs no copy.
func (l *Log) Admit(n int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return 0
	}
	return l.admitLocked(n, l.opt.Now())
}

// WriteAdmitted appends lines that Admit let through.
func (l *Log) WriteAdmitted(stream string, lines []string) {
	if len(lines) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return
	}
	l.writeLocked(stream, lines, l.opt.Now())
}

// admitLocked is the token bucket over stdout+stderr lines. Caller holds mu.
func (l *Log) admitLocked(n int, now time.Time) int {
	if l.opt.LineRate <= 0 || n == 0 {
		return n
	}
	l.refill(now)
	k := n
	if float64(k) > l.tokens {
		k = int(l.tokens)
	}
	l.tokens -= float64(k)
	if d := n - k; d > 0 {
		if l.dropped == 0 {
			// first drop of a run: say so within a second, also if the
			// output stops
			l.dropTimer = time.AfterFunc(time.Second, l.Flush)
			l.dropReport = now
		}
		l.dropped += d
		l.opt.OnDropped("throttled", d)
	}
	return k
}

// writeLocked numbers and stores admitted lines. Caller holds mu.
func (l *Log) writeLocked(stream string, lines []string, now time.Time) {
	ts := now.UnixMilli()
	for _, s := range lines {
		l.appendLocked(api.LogLine{Seq: l.next, TS: ts, Stream: stream, Line: s})
	}
	if l.dropped > 0 && now.Sub(l.dropReport) >= time.Second {
		l.reportDropped(ts)
	}
	l.publish()
	l.opt.OnLines(len(lines))
}

func (l *Log) refill(now time.Time) {
	el := now.Sub(l.last).Seconds()
	l.last = now
	if el <= 0 {
		return
	}
	l.tokens += el * float64(l.opt.LineRate)
	if max := float64(l.opt.LineRate); l.tokens > max {
		l.tokens = max
	}
}

func (l *Log) reportDropped(ts int64) {
	l.appendLocked(api.LogLine{Seq: l.next, TS: ts, Stream: api.StreamSystem,
		Line: "output throttled: " + strconv.Itoa(l.dropped) + " lines dropped (limit " + strconv.Itoa(l.opt.LineRate) + " lines/s)"})
	l.dropped = 0
	if l.dropTimer != nil {
		l.dropTimer.Stop()
		l.dropTimer = nil
	}
}

// System appends a system line (lifecycle events); never throttled. While
// the log is external the line goes to the file's owner.
func (l *Log) System(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return
	}
	line = strings.ReplaceAll(line, "\n", " ")
	if l.external {
		if l.forward != nil {
			l.forward(line)
		} else {
			l.pending = append(l.pending, line)
		}
		return
	}
	l.systemLocked(line)
}

func (l *Log) systemLocked(line string) {
	ts := l.opt.Now().UnixMilli()
	if l.dropped > 0 {
		l.reportDropped(ts)
	}
	l.appendLocked(api.LogLine{Seq: l.next, TS: ts, Stream: api.StreamSystem, Line: line})
	l.publish()
	l.opt.OnLines(1)
}

// Flush reports lines dropped by the throttle that were not reported yet
// (the output stopped while dropping) and flushes the file.
func (l *Log) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return
	}
	if l.dropped > 0 {
		l.reportDropped(l.opt.Now().UnixMilli())
		l.publish()
	}
	l.flushLocked()
}

func (l *Log) appendLocked(ln api.LogLine) {
	l.next++
	l.push(ln)
	if l.file != nil && !l.external {
		l.fileFailed(l.file.write(ln))
	}
}

// flushLocked writes the file buffer out; once the file takes lines again
// after some were lost, the log says how many and why. Caller holds mu.
func (l *Log) flushLocked() {
	if l.file == nil || (l.external && !l.mirror) {
		return
	}
	if l.fileFailed(l.file.flush()) || l.fileLost == 0 {
		return
	}
	msg := strconv.Itoa(l.fileLost) + " lines (" + strconv.FormatUint(l.fileLostFrom, 10) + " to " +
		strconv.FormatUint(l.fileLostTo, 10) + ") are missing from the log file: " + l.fileLostErr
	l.fileLost = 0
	l.appendLocked(api.LogLine{Seq: l.next, TS: l.opt.Now().UnixMilli(), Stream: api.StreamSystem, Line: msg})
	l.fileFailed(l.file.flush())
}

// fileFailed accounts for a failed write of the file (the lines it lost
// are remembered for the report) and says whether there was one.
func (l *Log) fileFailed(err error) bool {
	if err == nil {
		return false
	}
	l.opt.OnWarnFile(err)
	var lf *lostLines
	if errors.As(err, &lf) && lf.n > 0 {
		if l.fileLost == 0 {
			l.fileLostFrom = lf.from
		}
		l.fileLost += lf.n
		l.fileLostTo = lf.to
		l.fileLostErr = lf.cause
	}
	return true
}

// fileFlushDelay bounds how long a line may wait in the file buffer. One
// write per batch of output would cost a syscall per line under a
// line-at-a-time writer; the live-log does not wait for the file.
const fileFlushDelay = 100 * time.Millisecond

// publish hands every line numbered since the last publish to the
// subscribers: the lines still in the ring, and a gap for any that are not
// (lost from the file, or pushed out of the ring by a batch larger than
// it). It schedules a flush of the file. Caller holds mu.
func (l *Log) publish() {
	if l.file != nil && (!l.external || l.mirror) && l.file.buffered() {
		if l.opt.FileSync {
			l.flushLocked()
		} else if l.flushTimer == nil {
			l.flushTimer = time.AfterFunc(fileFlushDelay, l.flushFile)
		}
	}
	last := l.next - 1
	if last <= l.published {
		return
	}
	if len(l.subs) > 0 {
		start := l.ring.after(l.published)
		for s := range l.subs {
			if d := s.offer(l, l.published, start, last); d > 0 {
				l.opt.OnDropped("slow_client", d)
			}
		}
	}
	l.published = last
}

func (l *Log) flushFile() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushTimer = nil
	if l.done {
		return
	}
	l.flushLocked()
	l.publish() // a report of lost lines is a line too
}

// Last returns the newest lines, at most n of them and at most maxBytes in
// all (at least one), the number of lines ever written, and how many of
// the n lines the ring holds were left out for maxBytes.
func (l *Log) Last(n, maxBytes int) (lines []api.LogLine, total uint64, omitted int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.loadLocked()
	start := l.ring.tail(n, maxBytes)
	out := make([]api.LogLine, 0, l.ring.len()-start)
	for i := start; i < l.ring.len(); i++ {
		out = append(out, l.ring.at(i))
	}
	return out, l.next - 1, min(n, l.ring.len()) - len(out)
}

// Read returns the lines numbered from to to-1, oldest first and about
// maxBytes at most (at least one line): from the ring while it still holds
// from, else from the files. It is how a reader that fell behind (a gap)
// gets the lines it missed. Lines neither has (rotated away, lost from the
// file) are left out: the caller reports them as a gap.
func (l *Log) Read(from, to uint64, maxBytes int) []api.LogLine {
	l.mu.Lock()
	l.loadLocked()
	// From the ring while it holds from itself, up to the first hole in
	// its numbering (a catch-up loads only the newest lines: what lies in
	// a hole is in the files).
	if n := l.ring.len(); n > 0 && l.ring.at(0).Seq <= from {
		if i := l.ring.after(from - 1); i < n && l.ring.at(i).Seq == from {
			var out []api.LogLine
			size := 0
			for ; i < n; i++ {
				ln := l.ring.at(i)
				size += lineCost(ln)
				if ln.Seq >= to || (size > maxBytes && len(out) > 0) || (len(out) > 0 && ln.Seq != out[len(out)-1].Seq+1) {
					break
				}
				out = append(out, ln)
			}
			l.mu.Unlock()
			return out
		}
	}
	l.flushLocked() // the file holds every line written so far
	l.publish()
	dir, count := l.dir, l.opt.FileCount
	l.mu.Unlock()
	if dir == "" {
		return nil
	}
	// A rotation renames the files one at a time: a read that falls
	// between two renames misses a file. It is tried again.
	var out []api.LogLine
	for try := 0; try < 4; try++ {
		if out = readRange(dir, count, from, to, maxBytes, false); len(out) > 0 && out[0].Seq == from {
			break
		}
		time.Sleep(time.Duration(try+1) * time.Millisecond)
	}
	return out
}

// Total returns the number of lines ever written (the last sequence number).
func (l *Log) Total() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.next - 1
}

// State hands a state change to every subscriber. State events are never
// dropped.
func (l *Log) State(info api.InstanceInfo) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for s := range l.subs {
		c := info
		s.push(Event{Kind: KindState, Info: &c})
	}
}

// Close ends the log: subscribers get final (a last state event, when not
// nil) and then the end of their stream; the file is flushed and closed.
// Lines written after Close are ignored.
func (l *Log) Close(final *api.InstanceInfo) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return nil
	}
	l.done = true
	if l.dropTimer != nil {
		l.dropTimer.Stop()
	}
	if l.flushTimer != nil {
		l.flushTimer.Stop()
	}
	for s := range l.subs {
		if final != nil {
			s.push(Event{Kind: KindState, Info: final, Final: true})
		}
		s.end()
	}
	l.subs = map[*Sub]struct{}{}
	if l.file != nil && (!l.external || l.mirror) {
		l.flushLocked()
		return l.file.close()
	}
	return nil
}
