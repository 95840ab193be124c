package template

import (
	"archive/zip"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
)

// Export writes the template as a zip archive to w: every regular file and
// folder, with its mode; symbolic links are left out.
func (s *Store) Export(group, name string, w io.Writer) error {
	r, err := s.open(group, name)
	if err != nil {
		return err
	}
	defer r.Close()
	zw := zip.NewWriter(w)
	err = walkTree(r, func(p string, fi fs.FileInfo) error {
		h, err := zip.FileInfoHeader(fi)
		if err != nil {
			return err
		}
		h.Name = p
		if fi.IsDir() {
			h.Name += "/"
			_, err = zw.CreateHeader(h)
			return err
		}
		h.Method = zip.Deflate
		dst, err := zw.CreateHeader(h)
		if err != nil {
			return err
		}
		f, err := r.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(dst, f)
		return err
	})
	if err != nil {
		return fmt.Errorf("export template: %w", err)
	}
	return zw.Close()
}

// ImportLimits bound what one zip import may unpack.
type ImportLimits struct {
	MaxFiles int   // entries (files and folders), default 10,000
	MaxBytes int64 // total uncompressed bytes, default 512 MiB
	MaxRatio int64 // uncompressed/compressed, of the whole archive and of each entry above 1 MiB, default 100
}

func (l ImportLimits) withDefaults() ImportLimits {
	if l.MaxFiles <= 0 {
		l.MaxFiles = 10000
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = 512 << 20
	}
	if l.MaxRatio <= 0 {
		l.MaxRatio = 100
	}
	return l
}

// Import unpacks the zip archive in ra (size bytes) as template group/name.
// It unpacks into a staging folder first, so a bad archive changes nothing.
// An existing template is an ECONFLICT unless replace, which swaps it for
// the archive's content. Errors: EINVALID (names, paths, a broken archive),
// ETOOLARGE (limits), ECONFLICT.
func (s *Store) Import(group, name string, ra io.ReaderAt, size int64, lim ImportLimits, replace bool) (out api.TemplateImport, err error) {
	defer func() { s.changed(group, name, err) }()
	return s.importZip(group, name, ra, size, lim, replace)
}

func (s *Store) importZip(group, name string, ra io.ReaderAt, size int64, lim ImportLimits, replace bool) (api.TemplateImport, error) {
	out := api.TemplateImport{Group: group, Name: name}
	if err := ValidTemplate(group, name); err != nil {
		return out, err
	}
	zr, err := zip.NewReader(ra, size)
	if err != nil {
		return out, universe.Errorf(universe.EINVALID, "the body is not a zip archive")
	}
	if err := CheckArchive(zr, size, lim); err != nil {
		return out, err
	}
	if err := s.root.Mkdir(group, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return out, fmt.Errorf("create template group: %w", err)
	}
	staging := group + "/.import-" + randomHex()
	if err := s.root.Mkdir(staging, 0o755); err != nil {
		return out, fmt.Errorf("create staging folder: %w", err)
	}
	defer func() { _ = s.root.RemoveAll(staging) }()
	st, err := s.root.OpenRoot(staging)
	if err != nil {
		return out, fmt.Errorf("open staging folder: %w", err)
	}
	defer st.Close()
	if out.Files, out.Size, err = Unpack(st, zr, lim); err != nil {
		return out, err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	target := group + "/" + name
	if _, err := s.root.Lstat(target); err == nil {
		if !replace {
			return out, universe.Errorf(universe.ECONFLICT, "template %s/%s exists already; import it with replace (CLI: --replace; API: ?replace=true) to swap its content", group, name)
		}
		old := group + "/.old-" + randomHex()
		if err := s.root.Rename(target, old); err != nil {
			return out, fmt.Errorf("move old template aside: %w", err)
		}
		if err := s.root.Rename(staging, target); err != nil {
			_ = s.root.Rename(old, target)
			return out, fmt.Errorf("move imported template in: %w", err)
		}
		_ = s.root.RemoveAll(old)
		return out, nil
	}
	if err := s.root.Rename(staging, target); err != nil {
		return out, fmt.Errorf("move imported template in: %w", err)
	}
	return out, nil
}

// CheckArchive checks a zip archive of size bytes against lim before
// anything is written: entry count, names, declared sizes and compression
// ratios (zip bombs). Errors: EINVALID, ETOOLARGE.
func CheckArchive(zr *zip.Reader, size int64, lim ImportLimits) error {
	lim = lim.withDefaults()
	if len(zr.File) > lim.MaxFiles {
		return universe.Errorf(universe.ETOOLARGE, "the archive has %d entries; at most %d are allowed", len(zr.File), lim.MaxFiles)
	}
	// Check every name and the declared sizes before writing anything.
	var declared uint64
	seen := make(map[string]bool, len(zr.File))
	for _, f := range zr.File {
		p, err := entryPath(f)
		if err != nil {
			return err
		}
		if p != "" && seen[p] {
			return universe.Errorf(universe.EINVALID, "the archive holds %q more than once", p)
		}
		seen[p] = true
		declared += f.UncompressedSize64
		if declared > uint64(lim.MaxBytes) {
			return universe.Errorf(universe.ETOOLARGE, "the archive unpacks to more than %d bytes", lim.MaxBytes)
		}
		if f.UncompressedSize64 > 1<<20 && (f.CompressedSize64 == 0 || f.UncompressedSize64/f.CompressedSize64 > uint64(lim.MaxRatio)) {
			return universe.Errorf(universe.ETOOLARGE, "entry %q is compressed more than %d:1", f.Name, lim.MaxRatio)
		}
	}
	// Many small entries of zeros compress as well as one large one.
	if declared > 1<<20 && (size <= 0 || declared/uint64(size) > uint64(lim.MaxRatio)) {
		return universe.Errorf(universe.ETOOLARGE, "the archive is compressed more than %d:1", lim.MaxRatio)
	}

	return nil
}

// Unpack writes the entries of a checked archive under st: folders and
// regular files only (links and devices are left out), each read at most
// to what lim still allows whatever its header claims. Errors: EINVALID
// and ETOOLARGE for the archive's faults, others for the disk's.
func Unpack(st *os.Root, zr *zip.Reader, lim ImportLimits) (files int, total int64, err error) {
	lim = lim.withDefaults()
	for _, f := range zr.File {
		p, err := entryPath(f)
		if err != nil {
			return files, total, err // CheckArchive says so first
		}
		if p == "" {
			continue
		}
		if f.FileInfo().IsDir() {
			if err := st.MkdirAll(p, 0o755); err != nil {
				return files, total, universe.Errorf(universe.EINVALID, "entry %q cannot be unpacked", f.Name)
			}
			continue
		}
		if !f.Mode().IsRegular() {
			continue // symbolic links and devices are not unpacked
		}
		if dir := path.Dir(p); dir != "." {
			if err := st.MkdirAll(dir, 0o755); err != nil {
				return files, total, universe.Errorf(universe.EINVALID, "entry %q cannot be unpacked", f.Name)
			}
		}
		n, err := unpack(st, p, f, lim.MaxBytes-total)
		if err != nil {
			return files, total, err
		}
		total += n
		files++
	}
	return files, total, nil
}

// entryPath checks a zip entry's name; folders come back without their
// trailing slash ("" for the archive's root).
func entryPath(f *zip.File) (string, error) {
	n := f.Name
	if f.FileInfo().IsDir() && len(n) > 0 && n[len(n)-1] == '/' {
		n = n[:len(n)-1]
	}
	if n == "" || n == "." {
		return "", nil
	}
	p, err := CleanPath(n)
	if err != nil {
		return "", universe.Errorf(universe.EINVALID, "archive entry %q: %s", f.Name, universe.ErrorMessage(err))
	}
	return p, nil
}

// unpack writes one entry, reading at most room bytes whatever its header
// claims.
func unpack(st *os.Root, p string, f *zip.File, room int64) (int64, error) {
	rc, err := f.Open()
	if err != nil {
		return 0, universe.Errorf(universe.EINVALID, "entry %q cannot be read", f.Name)
	}
	defer rc.Close()
	mode := f.Mode().Perm() | 0o600
	w, err := st.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return 0, universe.Errorf(universe.EINVALID, "entry %q cannot be unpacked", f.Name)
	}
	defer w.Close()
	dst := &writeErr{w: w}
	n, err := io.Copy(dst, io.LimitReader(rc, room+1))
	if n > room {
		return n, universe.Errorf(universe.ETOOLARGE, "the archive unpacks to more bytes than allowed")
	}
	if dst.err != nil {
		// Our disk, not the archive (a full disk, say): a server error.
		return n, fmt.Errorf("unpack %s: %w", p, dst.err)
	}
	if err != nil {
		return n, universe.Errorf(universe.EINVALID, "entry %q is damaged", f.Name)
	}
	if uint64(n) != f.UncompressedSize64 {
		return n, universe.Errorf(universe.EINVALID, "entry %q is not the size its header says", f.Name)
	}
	return n, nil
}

// writeErr remembers the error of its writer, so that a failed copy can
// tell the archive's fault from the disk's.
type writeErr struct {
	w   io.Writer
	err error
}

func (w *writeErr) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if err != nil {
		w.err = err
	}
	return n, err
}

func randomHex() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
