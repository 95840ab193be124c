package backup

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/klauspost/compress/zstd"
)

// ErrChecksum: the archive on its target is not the one recorded.
var ErrChecksum = errors.New("the archive does not match its SHA-256: it changed on its target; nothing was restored")

// Opener opens the archive from its start (a restore reads it twice: once
// to check it, once to unpack it).
type Opener func(ctx context.Context) (io.ReadCloser, error)

// RestoreOptions steer Restore.
type RestoreOptions struct {
	// Truncate: the folder holds only what the archive holds afterwards;
	// otherwise the archive is laid over what is there.
	Truncate bool
	// BeforeSwap is called when the new folder is ready, just before it
	// takes the old one's place; an error aborts the restore (the
	// instance started meanwhile).
	BeforeSwap func() error
}

// Restore puts the archive (SHA-256 sha, hex) into dir. The archive is
// checked against sha before anything is written; it is unpacked into a
// folder beside dir and swapped in, so a failed or interrupted restore
// leaves dir as it was. No entry writes outside that folder: names are
// relative and clean, and every write goes through an os.Root, which no
// link leads out of. It returns the entries written.
func Restore(ctx context.Context, open Opener, sha string, dir string, opt RestoreOptions) (int, error) {
	if err := verify(ctx, open, sha); err != nil {
		return 0, err
	}
	parent, base := filepath.Dir(dir), filepath.Base(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return 0, fmt.Errorf("restore: %w", err)
	}
	proot, err := os.OpenRoot(parent)
	if err != nil {
		return 0, fmt.Errorf("restore: %w", err)
	}
	defer proot.Close()
	tmp := "." + base + ".restore-" + randHex()
	if err := proot.Mkdir(tmp, 0o755); err != nil {
		return 0, fmt.Errorf("restore: %w", err)
	}
	done := false
	defer func() {
		if !done {
			_ = proot.RemoveAll(tmp)
		}
	}()
	_, statErr := proot.Lstat(base)
	exists := statErr == nil
	if exists && !opt.Truncate {
		if err := linkTree(ctx, proot, base, tmp); err != nil {
			return 0, fmt.Errorf("restore: keep the folder's files: %w", err)
		}
	}
	troot, err := proot.OpenRoot(tmp)
	if err != nil {
		return 0, fmt.Errorf("restore: %w", err)
	}
	n, err := unpack(ctx, open, sha, troot)
	troot.Close()
	if err != nil {
		return n, err
	}
	if opt.BeforeSwap != nil {
		if err := opt.BeforeSwap(); err != nil {
			return n, err
		}
	}
	old := "." + base + ".old-" + randHex()
	if exists {
		if err := proot.Rename(base, old); err != nil {
			return n, fmt.Errorf("restore: set the old folder aside: %w", err)
		}
	}
	if err := proot.Rename(tmp, base); err != nil {
		if exists {
			_ = proot.Rename(old, base)
		}
		return n, fmt.Errorf("restore: put the new folder in place: %w", err)
	}
	done = true
	if exists {
		_ = proot.RemoveAll(old)
	}
	return n, nil
}

// verify reads the whole archive and compares its digest with sha.
func verify(ctx context.Context, open Opener, sha string) error {
	rc, err := open(ctx)
	if err != nil {
		return err
	}
	defer rc.Close()
	h := NewHashingReader(rc)
	if _, err := io.Copy(io.Discard, ctxReader{ctx, h}); err != nil {
		return fmt.Errorf("read the archive: %w", err)
	}
	if h.Sum() != sha {
		return ErrChecksum
	}
	return nil
}

// linkTree fills dst with hard links to src's files (and copies of its
// folders and links): the old files stay untouched, since unpacking
// replaces a file rather than writing into it.
func linkTree(ctx context.Context, root *os.Root, src, dst string) error {
	sroot, err := root.OpenRoot(src)
	if err != nil {
		return err
	}
	defer sroot.Close()
	return fs.WalkDir(sroot.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		to := path.Join(dst, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch m := info.Mode(); {
		case m.IsDir():
			return root.Mkdir(to, m.Perm())
		case m.IsRegular():
			return root.Link(path.Join(src, p), to)
		case m&fs.ModeSymlink != 0:
			l, err := sroot.Readlink(p)
			if err != nil {
				return err
			}
			return root.Symlink(l, to)
		}
		return nil // FIFOs, sockets, devices are not kept
	})
}

// unpack writes the archive's entries into root and checks the digest of
// what it read again (the archive may have changed since verify).
func unpack(ctx context.Context, open Opener, sha string, root *os.Root) (int, error) {
	rc, err := open(ctx)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	h := NewHashingReader(ctxReader{ctx, rc})
	dec, err := zstd.NewReader(h, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(64<<20))
	if err != nil {
		return 0, fmt.Errorf("restore: %w", err)
	}
	defer dec.Close()
	tr := tar.NewReader(dec)
	type dirTime struct {
		name string
		mod  time.Time
	}
	var dirs []dirTime
	buf := make([]byte, 256<<10)
	n := 0
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return n, fmt.Errorf("restore: read the archive: %w", err)
		}
		name, err := cleanName(hdr.Name)
		if err != nil {
			return n, fmt.Errorf("restore: %w", err)
		}
		if name == "." {
			continue
		}
		if err := root.MkdirAll(path.Dir(name), 0o755); err != nil {
			return n, fmt.Errorf("restore %s: %w", name, err)
		}
		mode := fs.FileMode(hdr.Mode).Perm()
		switch hdr.Typeflag {
		case tar.TypeDir:
			if st, err := root.Lstat(name); err == nil && !st.IsDir() {
				if err := root.Remove(name); err != nil {
					return n, fmt.Errorf("restore %s: %w", name, err)
				}
			}
			if err := root.Mkdir(name, mode|0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				return n, fmt.Errorf("restore %s: %w", name, err)
			}
			if err := root.Chmod(name, mode); err != nil {
				return n, fmt.Errorf("restore %s: %w", name, err)
			}
			dirs = append(dirs, dirTime{name, hdr.ModTime})
		case tar.TypeReg:
			if err := removeFile(root, name); err != nil {
				return n, fmt.Errorf("restore %s: %w", name, err)
			}
			f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
			if err != nil {
				return n, fmt.Errorf("restore %s: %w", name, err)
			}
			_, err = io.CopyBuffer(onlyWriter{f}, io.LimitReader(tr, hdr.Size), buf)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return n, fmt.Errorf("restore %s: %w", name, err)
			}
			if err := root.Chmod(name, mode); err != nil {
				return n, fmt.Errorf("restore %s: %w", name, err)
			}
			if err := root.Chtimes(name, hdr.ModTime, hdr.ModTime); err != nil {
				return n, fmt.Errorf("restore %s: %w", name, err)
			}
		case tar.TypeSymlink:
			if err := removeFile(root, name); err != nil {
				return n, fmt.Errorf("restore %s: %w", name, err)
			}
			if err := root.Symlink(hdr.Linkname, name); err != nil {
				return n, fmt.Errorf("restore %s: %w", name, err)
			}
		default:
			continue // hard links and special files: never written by Archive
		}
		n++
	}
	// The rest of the stream (tar's end, zstd's) counts in the digest.
	if _, err := io.Copy(io.Discard, h); err != nil {
		return n, fmt.Errorf("restore: read the archive: %w", err)
	}
	if h.Sum() != sha {
		return n, ErrChecksum
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		_ = root.Chtimes(dirs[i].name, dirs[i].mod, dirs[i].mod)
	}
	return n, nil
}

// removeFile removes name unless it is a folder (or absent).
func removeFile(root *os.Root, name string) error {
	st, err := root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.IsDir() {
		return root.RemoveAll(name)
	}
	return root.Remove(name)
}

type onlyWriter struct{ w io.Writer }

func (o onlyWriter) Write(p []byte) (int, error) { return o.w.Write(p) }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func randHex() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
