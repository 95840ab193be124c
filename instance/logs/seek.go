package logs

import (
	"bytes"
	"errors"
	"io"
	"os"

	"github.com/universe-orchestrator/universe/api"
)

// Reading a range of lines from the files without parsing them whole: the
// records of a file are in sequence order, so the first record numbered
// seq or later is found by a binary search over byte offsets (a few small
// reads), and only the records of the range are read and parsed.

// logFile is one open log file for reading.
type logFile struct {
	f    *os.File
	size int64
	buf  []byte
}

func openLogFile(path string) (*logFile, bool) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, false
	}
	return &logFile{f: f, size: fi.Size(), buf: make([]byte, 4096)}, true
}

func (lf *logFile) close() { _ = lf.f.Close() }

// recordAt returns the offset of the first record that starts at off or
// later (size when none does).
func (lf *logFile) recordAt(off int64) int64 {
	if off <= 0 {
		return 0
	}
	pos := off - 1 // a record starts after a newline
	for pos < lf.size {
		n, err := lf.f.ReadAt(lf.buf, pos)
		if i := bytes.IndexByte(lf.buf[:n], '\n'); i >= 0 {
			return pos + int64(i) + 1
		}
		if n == 0 || (err != nil && !errors.Is(err, io.EOF)) {
			break
		}
		pos += int64(n)
	}
	return lf.size
}

// seqAt parses the sequence number of the record starting at off; ok is
// false for a damaged record.
func (lf *logFile) seqAt(off int64) (seq uint64, next int64, ok bool) {
	n, err := lf.f.ReadAt(lf.buf, off)
	if n == 0 && err != nil {
		return 0, lf.size, false
	}
	b := lf.buf[:n]
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		seq = seq*10 + uint64(b[i]-'0')
	}
	ok = i > 0 && i < len(b) && b[i] == ' '
	if j := bytes.IndexByte(b, '\n'); j >= 0 {
		return seq, off + int64(j) + 1, ok
	}
	return seq, lf.recordAt(off + 1), ok
}

// seek returns the offset of the first record numbered seq or later (size
// when there is none). Damaged records count as older.
func (lf *logFile) seek(seq uint64) int64 {
	// lo <= answer <= hi throughout.
	lo, hi := int64(0), lf.size
	for hi-lo > 8192 {
		mid := lo + (hi-lo)/2
		p := lf.recordAt(mid)
		if p >= hi {
			break // no record starts in [mid, hi): scan from lo
		}
		s, next, ok := lf.seqAt(p)
		if ok && s >= seq {
			hi = p
		} else {
			lo = next
		}
	}
	for p := lf.recordAt(lo); p < hi; {
		s, next, ok := lf.seqAt(p)
		if ok && s >= seq {
			return p
		}
		p = next
	}
	return hi
}

// firstSeq is the number of the file's first whole record (0: none).
func (lf *logFile) firstSeq() uint64 {
	for p := int64(0); p < lf.size; {
		s, next, ok := lf.seqAt(p)
		if ok {
			return s
		}
		p = next
	}
	return 0
}

// read returns the bytes [from, to) of the file.
func (lf *logFile) read(from, to int64) []byte {
	if to <= from {
		return nil
	}
	data := make([]byte, to-from)
	n, err := lf.f.ReadAt(data, from)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil
	}
	return data[:n]
}

// readRange returns the lines of the files in dir numbered from to to-1
// (to 0: no upper bound), oldest first, about maxBytes of records at most:
// the newest of them when newest is set (what a ring keeps), else the
// oldest (what a reader going forward takes next). Lines the files lack
// are simply absent: the caller sees the hole in the numbering.
func readRange(dir string, count int, from, to uint64, maxBytes int, newest bool) []api.LogLine {
	r := &rotator{dir: dir}
	type part struct {
		lf     *logFile
		lo, hi int64
	}
	var parts []part // newest file first
	defer func() {
		for _, p := range parts {
			p.lf.close()
		}
	}()
	for i := 0; i < count; i++ {
		lf, ok := openLogFile(r.path(i))
		if !ok {
			if i == 0 {
				continue // no current file yet; older ones may exist
			}
			break
		}
		lo, hi := lf.seek(from), lf.size
		if to != 0 {
			hi = lf.seek(to)
		}
		parts = append(parts, part{lf, lo, hi})
		if lo > 0 {
			break // this file goes back far enough
		}
		if first := lf.firstSeq(); first != 0 && first <= from {
			break
		}
	}
	var chunks [][]byte
	budget := int64(maxBytes)
	if newest {
		for _, p := range parts {
			if budget <= 0 {
				break
			}
			lo := p.lo
			if p.hi-lo > budget {
				lo = p.lf.recordAt(p.hi - budget)
			}
			chunks = append(chunks, p.lf.read(lo, p.hi))
			budget -= p.hi - lo
		}
		// oldest first
		for i, j := 0, len(chunks)-1; i < j; i, j = i+1, j-1 {
			chunks[i], chunks[j] = chunks[j], chunks[i]
		}
	} else {
		for i := len(parts) - 1; i >= 0 && budget > 0; i-- {
			p := parts[i]
			if p.hi-p.lo <= budget {
				chunks = append(chunks, p.lf.read(p.lo, p.hi))
				budget -= p.hi - p.lo
				continue
			}
			// The whole records within the budget; one at least.
			data := p.lf.read(p.lo, p.lo+budget)
			if cut := bytes.LastIndexByte(data, '\n'); cut >= 0 {
				data = data[:cut+1]
			} else {
				data = p.lf.read(p.lo, p.lf.recordAt(p.lo+1))
			}
			chunks = append(chunks, data)
			break
		}
	}
	var out []api.LogLine
	for _, c := range chunks {
		out = appendRecords(out, c)
	}
	// A damaged record can hide a line of another range: keep the range.
	kept := out[:0]
	for _, ln := range out {
		if ln.Seq >= from && (to == 0 || ln.Seq < to) {
			kept = append(kept, ln)
		}
	}
	return kept
}

// appendRecords parses the whole records of data, without splitting them
// into slices first; the stream names are shared constants.
func appendRecords(out []api.LogLine, data []byte) []api.LogLine {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break // a torn last record
		}
		rec := data[:i]
		data = data[i+1:]
		seq, rest, ok := parseUint(rec)
		if !ok {
			continue
		}
		ts, rest, ok := parseUint(rest)
		if !ok {
			continue
		}
		sp := bytes.IndexByte(rest, ' ')
		if sp < 0 {
			continue
		}
		stream := streamName(rest[:sp])
		if stream == "" {
			continue // not a record this package wrote: damaged
		}
		out = append(out, api.LogLine{Seq: seq, TS: int64(ts), Stream: stream, Line: string(rest[sp+1:])})
	}
	return out
}

// parseUint parses the digits before the first space of b and returns what
// follows that space.
func parseUint(b []byte) (v uint64, rest []byte, ok bool) {
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		if i == 19 {
			return 0, nil, false // beyond what the file ever holds
		}
		v = v*10 + uint64(b[i]-'0')
	}
	if i == 0 || i == len(b) || b[i] != ' ' {
		return 0, nil, false
	}
	return v, b[i+1:], true
}

func streamName(b []byte) string {
	switch string(b) { // no allocation: the compiler compares in place
	case api.StreamStdout:
		return api.StreamStdout
	case api.StreamStderr:
		return api.StreamStderr
	case api.StreamSystem:
		return api.StreamSystem
	}
	return ""
}
