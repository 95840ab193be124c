package logs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

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
}

func openRotator(dir string, max int64, count, keep int) (*rotator, []api.LogLine, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("create log dir: %w", err)
	}
	old := loadTail(dir, count, keep)
	r := &rotator{dir: dir, max: max, count: count}
	if err := r.open(); err != nil {
		return nil, nil, err
	}
	return r, old, nil
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
	r.f, r.size = f, fi.Size()
	if r.w == nil {
		r.w = bufio.NewWriterSize(f, 8<<10) // flushed after every batch of lines
	} else {
		r.w.Reset(f)
	}
	return nil
}

func (r *rotator) write(ln api.LogLine) error {
	if r.f == nil {
		return nil // a failed rotation left no file; lines stay in memory
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
	n, err := r.w.Write(b)
	r.size += int64(n)
	if err != nil {
		return fmt.Errorf("write log file: %w", err)
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
		return fmt.Errorf("write log file: %w", err)
	}
	return nil
}

func (r *rotator) close() error {
	if r.f == nil {
		return nil
	}
	err := r.w.Flush()
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	r.f = nil
	if err != nil {
		return fmt.Errorf("close log file: %w", err)
	}
	return nil
}

// loadTail reads the newest keep lines of the files in dir, oldest first.
// Damaged records are skipped.
func loadTail(dir string, count, keep int) []api.LogLine {
	r := &rotator{dir: dir}
	var chunks [][]api.LogLine
	have := 0
	for i := 0; i < count && have < keep; i++ {
		data, err := os.ReadFile(r.path(i))
		if err != nil {
			continue
		}
		lines := parseRecords(data)
		chunks = append(chunks, lines)
		have += len(lines)
	}
	var out []api.LogLine
	for i := len(chunks) - 1; i >= 0; i-- {
		out = append(out, chunks[i]...)
	}
	if len(out) > keep {
		out = out[len(out)-keep:]
	}
	return out
}

// readSince returns the lines of the files in dir numbered from on, oldest
// first (older files are read only while the newer ones start after from).
func readSince(dir string, count int, from uint64) []api.LogLine {
	r := &rotator{dir: dir}
	var chunks [][]api.LogLine
	for i := 0; i < count; i++ {
		data, err := os.ReadFile(r.path(i))
		if err != nil {
			continue
		}
		lines := parseRecords(data)
		chunks = append(chunks, lines)
		if len(lines) > 0 && lines[0].Seq <= from {
			break
		}
	}
	var out []api.LogLine
	for i := len(chunks) - 1; i >= 0; i-- {
		for _, ln := range chunks[i] {
			if ln.Seq >= from {
				out = append(out, ln)
			}
		}
	}
	return out
}

func parseRecords(data []byte) []api.LogLine {
	var out []api.LogLine
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break // a torn last record
		}
		rec := data[:i]
		data = data[i+1:]
		f := bytes.SplitN(rec, []byte{' '}, 4)
		if len(f) != 4 {
			continue
		}
		seq, err1 := strconv.ParseUint(string(f[0]), 10, 64)
		ts, err2 := strconv.ParseInt(string(f[1]), 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, api.LogLine{Seq: seq, TS: ts, Stream: string(f[2]), Line: string(f[3])})
	}
	return out
}
