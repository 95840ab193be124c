package logs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/universe-orchestrator/universe/api"
)

// FileName is the current log file in a log folder; rotated files get .1,
// .2, ... (higher is older).
const FileName = "instance.log"

// rotator writes "<seq> <ts> <stream> <line>\n" records (lines hold no
// newline) to FileName and rotates it when it grows beyond max.
type rotator struct {
	dir   string
	max   int64
	count int
	f     *os.File
	w     *bufio.Writer
	size  int64
	buf   []byte

	// good is the size of the file up to the last record known to be on
	// it; the records after it (pending, numbered from..to) are in the
	// buffer or were written since the last flush.
	good     int64
	pending  int
	from, to uint64
}

// lostLines is the error of a write that failed: the records not known to
// be on the file were cut off (the file ends with a whole record) and are
// lost from it.
type lostLines struct {
	from, to uint64
	n        int
	cause    string
	err      error
}

func (e *lostLines) Error() string { return "write log file: " + e.err.Error() }
func (e *lostLines) Unwrap() error { return e.err }

// failed drops what was not written for good, puts the file back to its
// last whole record and returns the loss.
func (r *rotator) failed(err error) error {
	lost := &lostLines{from: r.from, to: r.to, n: r.pending, cause: "could not write it", err: err}
	if errors.Is(err, syscall.ENOSPC) {
		lost.cause = "no space left on the device"
	} else if errors.Is(err, syscall.EDQUOT) {
		lost.cause = "disk quota exceeded"
	}
	r.w.Reset(r.f)
	_ = r.f.Truncate(r.good)
	r.size, r.pending = r.good, 0
	return lost
}

// openRotator opens the log files of dir and returns the sequence number
// of their last record (0: none), reading only that record.
func openRotator(dir string, max int64, count int) (*rotator, uint64, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, 0, fmt.Errorf("create log dir: %w", err)
	}
	r := &rotator{dir: dir, max: max, count: count}
	var last uint64
	for i := 0; i < count && last == 0; i++ {
		if lines, _ := readTail(r.path(i), maxRecord); len(lines) > 0 {
			last = lines[len(lines)-1].Seq
		}
	}
	if err := r.open(); err != nil {
		return nil, 0, err
	}
	return r, last, nil
}

func (r *rotator) path(i int) string {
	if i == 0 {
		return filepath.Join(r.dir, FileName)
	}
	return filepath.Join(r.dir, FileName+"."+strconv.Itoa(i))
}

func (r *rotator) open() error {
	f, err := os.OpenFile(r.path(0), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open log file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("stat log file: %w", err)
	}
	r.f, r.size, r.good, r.pending = f, fi.Size(), fi.Size(), 0
	if r.w == nil {
		r.w = bufio.NewWriterSize(f, 8<<10) // flushed after every batch of lines
	} else {
		r.w.Reset(f)
	}
	return nil
}

func (r *rotator) write(ln api.LogLine) error {
	if r.f == nil {
		// A failed rotation left no file: try again, else the line is
		// lost from the file (it stays in memory).
		if err := r.open(); err != nil {
			return &lostLines{from: ln.Seq, to: ln.Seq, n: 1, cause: "the log file cannot be opened", err: err}
		}
	}
	b := r.buf[:0]
	b = strconv.AppendUint(b, ln.Seq, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, ln.TS, 10)
	b = append(b, ' ')
	b = append(b, ln.Stream...)
	b = append(b, ' ')
	b = append(b, ln.Line...)
	b = append(b, '\n')
	r.buf = b
	if r.pending == 0 {
		r.from = ln.Seq
	}
	r.pending++
	r.to = ln.Seq
	n, err := r.w.Write(b)
	r.size += int64(n)
	if err != nil {
		return r.failed(err)
	}
	if r.size >= r.max {
		return r.rotate()
	}
	return nil
}

func (r *rotator) rotate() error {
	if err := r.close(); err != nil {
		return err
	}
	for i := r.count - 1; i > 0; i-- {
		if err := os.Rename(r.path(i-1), r.path(i)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("rotate log file: %w", err)
		}
	}
	return r.open()
}

func (r *rotator) buffered() bool { return r.f != nil && r.w.Buffered() > 0 }

func (r *rotator) flush() error {
	if r.f == nil || r.w.Buffered() == 0 {
		return nil
	}
	if err := r.w.Flush(); err != nil {
		return r.failed(err)
	}
	r.good, r.pending = r.size, 0
	return nil
}

func (r *rotator) close() error {
	if r.f == nil {
		return nil
	}
	err := r.w.Flush()
	if err != nil {
		err = r.failed(err)
	}
	r.good, r.pending = r.size, 0
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	r.f = nil
	return err
}

// loadTail reads the newest lines of the files in dir, at most keep lines
// and about keepBytes of them, oldest first. It reads the files from their
// end, so a restart costs what is kept, not the size of the files. Damaged
// records are skipped.
func loadTail(dir string, count, keep, keepBytes int) []api.LogLine {
	r := &rotator{dir: dir}
	var chunks [][]api.LogLine
	have, haveBytes := 0, 0
	for i := 0; i < count && have < keep && haveBytes < keepBytes; i++ {
		lines, whole := readTail(r.path(i), int64(keepBytes-haveBytes)+maxRecord)
		if len(lines) > keep-have {
			lines = lines[len(lines)-(keep-have):]
		}
		chunks = append(chunks, lines)
		have += len(lines)
		for _, ln := range lines {
			haveBytes += lineCost(ln)
		}
		if !whole {
			break // the file held more than the budget
		}
	}
	var out []api.LogLine
	for i := len(chunks) - 1; i >= 0; i-- {
		out = append(out, chunks[i]...)
	}
	return out
}

// maxRecord bounds one record of the file (a line is split at 64 KiB).
const maxRecord = 64<<10 + 64

// readTail parses the records in the last n bytes of the file at path, and
// says whether that was the whole file.
func readTail(path string, n int64) (lines []api.LogLine, whole bool) {
	f, err := os.Open(path)
	if err != nil {
		return nil, true
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, true
	}
	off := max(fi.Size()-n, 0)
	data := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(data, off); err != nil && !errors.Is(err, io.EOF) {
		return nil, true
	}
	if off > 0 {
		// Begin at the first whole record.
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return nil, false
		}
		data = data[i+1:]
	}
	return parseRecords(data), off == 0
}

func parseRecords(data []byte) []api.LogLine { return appendRecords(nil, data) }
