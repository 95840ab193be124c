// Package backup makes and restores backups of instances' working
// directories: a tar stream compressed with zstd, written as it is read
// (never the whole archive in memory, never a second copy on disk), kept on
// a target (a local folder or an S3-compatible store), checked by its
// SHA-256 before a restore writes anything. It knows nothing of HTTP: the
// master's handlers and the agent call it.
package backup

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"

	"github.com/klauspost/compress/zstd"
)

// IgnoreFile is the name of the file in an instance's folder whose
// gitignore patterns leave paths out of its backups.
const IgnoreFile = ".universeignore"

// Stats describe an archive written.
type Stats struct {
	Files   int    // entries archived (files, folders, links)
	Skipped int    // FIFOs, sockets and devices left out
	Changed int    // files whose size changed while they were read
	Bytes   int64  // size of the compressed archive
	SHA256  string // hex digest of the compressed archive
}

// Archive writes the tree under dir to w as tar compressed with zstd.
// Modes, modification times and symbolic links (as links, never followed)
// are kept; FIFOs, sockets and devices are skipped and counted; paths that
// ignore matches are left out. Files are opened only as regular files
// inside dir (a link swapped in meanwhile is not followed out of it).
func Archive(ctx context.Context, dir string, w io.Writer, ignore *Ignore) (Stats, error) {
	return archive(ctx, dir, w, ignore, true)
}

// ArchiveTo is Archive without the digest and size (Stats.Bytes and
// SHA256 left empty): for a caller that measures the stream itself.
func ArchiveTo(ctx context.Context, dir string, w io.Writer, ignore *Ignore) (Stats, error) {
	return archive(ctx, dir, w, ignore, false)
}

func archive(ctx context.Context, dir string, w io.Writer, ignore *Ignore, hash bool) (Stats, error) {
	var st Stats
	root, err := os.OpenRoot(dir)
	if err != nil {
		return st, fmt.Errorf("open instance folder: %w", err)
	}
	defer root.Close()

	var sum *asyncHash
	cw := &countingWriter{w: w}
	if hash {
		sum = newAsyncHash()
		cw.w = io.MultiWriter(w, sum)
	}
	enc, err := zstd.NewWriter(cw, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(2), zstd.WithWindowSize(1<<20))
	if err != nil {
		return st, fmt.Errorf("zstd: %w", err)
	}
	tw := tar.NewWriter(enc)
	buf := make([]byte, 256<<10)
	type pendingDir struct {
		p    string
		info fs.FileInfo
	}
	var pending []pendingDir
	walkErr := fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		// Folders still pending that p is not inside of held nothing kept.
		for len(pending) > 0 && !strings.HasPrefix(p, pending[len(pending)-1].p+"/") {
			pending = pending[:len(pending)-1]
		}
		matched, walk := ignore.match(p, d.IsDir())
		if matched && !walk {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // gone since the folder was listed
		} else if err != nil {
			return err
		}
		if matched { // a folder left out that may hold paths kept
			pending = append(pending, pendingDir{p, info})
			return nil
		}
		for _, pd := range pending {
			if err := st.add(root, tw, pd.p, pd.info, buf); err != nil {
				return err
			}
		}
		pending = pending[:0]
		return st.add(root, tw, p, info, buf)
	})
	if walkErr != nil {
		_ = enc.Close()
		sum.Sum()
		return st, walkErr
	}
	if err := tw.Close(); err != nil {
		sum.Sum()
		return st, fmt.Errorf("write archive: %w", err)
	}
	if err := enc.Close(); err != nil {
		sum.Sum()
		return st, fmt.Errorf("write archive: %w", err)
	}
	st.Bytes = cw.n
	st.SHA256 = sum.Sum()
	return st, nil
}

// add writes one entry.
func (st *Stats) add(root *os.Root, tw *tar.Writer, p string, info fs.FileInfo, buf []byte) error {
	mode := info.Mode()
	var link string
	switch {
	case mode.IsRegular(), mode.IsDir():
	case mode&fs.ModeSymlink != 0:
		l, err := root.Readlink(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		} else if err != nil {
			return fmt.Errorf("read link %s: %w", p, err)
		}
		link = l
	default: // FIFOs, sockets, devices
		st.Skipped++
		return nil
	}
	var f *os.File
	if mode.IsRegular() {
		// O_NOFOLLOW and O_NONBLOCK: a link or a FIFO swapped in since
		// the listing is neither followed nor waited on.
		var err error
		f, err = root.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		} else if err != nil {
			if errors.Is(err, syscall.ELOOP) {
				return nil // replaced by a link meanwhile
			}
			return fmt.Errorf("open %s: %w", p, err)
		}
		defer f.Close()
		if info, err = f.Stat(); err != nil {
			return fmt.Errorf("stat %s: %w", p, err)
		}
		if !info.Mode().IsRegular() {
			st.Skipped++
			return nil
		}
	}
	hdr, err := tar.FileInfoHeader(info, link)
	if err != nil {
		return fmt.Errorf("archive %s: %w", p, err)
	}
	hdr.Name = p
	if info.IsDir() {
		hdr.Name += "/"
	}
	hdr.Uname, hdr.Gname = "", ""
	hdr.Format = tar.FormatPAX
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	st.Files++
	if f == nil {
		return nil
	}
	n, err := io.CopyBuffer(tw, io.LimitReader(onlyReader{f}, hdr.Size), buf)
	if err != nil && !isReadErr(err, f) {
		return fmt.Errorf("write archive: %w", err)
	}
	if n < hdr.Size || err != nil { // shrank while read: pad to the size announced
		st.Changed++
		if _, err := io.CopyN(tw, zeros{}, hdr.Size-n); err != nil {
			return fmt.Errorf("write archive: %w", err)
		}
	} else if more, _ := f.Read(buf[:1]); more > 0 {
		st.Changed++ // grew while read: the archive holds its first size
	}
	return nil
}

// isReadErr tells a failure reading the file (the archive holds zeros in
// its place) from one writing the archive.
func isReadErr(err error, f *os.File) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && pe.Path == f.Name()
}

// onlyReader hides WriterTo/ReaderFrom so that io.CopyBuffer uses buf.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// asyncHash hashes what is written to it on a goroutine of its own (the
// SHA-256 of the archive would otherwise be a sixth of the time on the
// archive's path): each write is copied into one of a few buffers, which
// the hasher hands back.
type asyncHash struct {
	ch   chan []byte
	free chan []byte
	made int // buffers made, at most hashBuffers
	done chan string
}

const hashBuffers = 8

func newAsyncHash() *asyncHash {
	a := &asyncHash{ch: make(chan []byte, hashBuffers), free: make(chan []byte, hashBuffers), done: make(chan string, 1)}
	go func() {
		h := sha256.New()
		for b := range a.ch {
			h.Write(b)
			a.free <- b[:0]
		}
		a.done <- hex.EncodeToString(h.Sum(nil))
	}()
	return a
}

func (a *asyncHash) Write(p []byte) (int, error) {
	var b []byte
	select {
	case b = <-a.free:
	default:
		if a.made < hashBuffers {
			a.made++
			b = make([]byte, 0, max(len(p), 256<<10))
		} else {
			b = <-a.free
		}
	}
	a.ch <- append(b, p...)
	return len(p), nil
}

// Sum ends the hashing and returns the hex digest; call it once (nil:
// "").
func (a *asyncHash) Sum() string {
	if a == nil {
		return ""
	}
	close(a.ch)
	return <-a.done
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// HashingReader hashes what is read through it.
type HashingReader struct {
	R   io.Reader
	h   hash.Hash
	N   int64
	err error
}

// NewHashingReader reads r, hashing it with SHA-256.
func NewHashingReader(r io.Reader) *HashingReader { return &HashingReader{R: r, h: sha256.New()} }

func (h *HashingReader) Read(p []byte) (int, error) {
	n, err := h.R.Read(p)
	h.h.Write(p[:n])
	h.N += int64(n)
	return n, err
}

// Sum is the hex digest of what was read so far.
func (h *HashingReader) Sum() string { return hex.EncodeToString(h.h.Sum(nil)) }

// cleanName checks an archive entry's name: relative, inside the folder.
func cleanName(name string) (string, error) {
	if name == "" || path.IsAbs(name) || len(name) > 4096 {
		return "", fmt.Errorf("entry %q: not a relative path", name)
	}
	c := path.Clean(name)
	if c == "." {
		return c, nil
	}
	if c == ".." || len(c) > 2 && c[:3] == "../" {
		return "", fmt.Errorf("entry %q: outside the folder", name)
	}
	return c, nil
}
