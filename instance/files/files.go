// Package files reads and writes the files of an instance's working
// directory for the REST API and the dashboard, with the containment rules
// of template files: clean relative paths only (no "..", no absolute
// paths), no symbolic link on the way (os.Root refuses escapes too), size
// limits on what is listed and read.
package files

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
	"sort"
	"strconv"
	"strings"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/instance/template"
)

// MaxEntries bounds a listing.
const MaxEntries = 10000

// Dir is an instance's working directory.
type Dir struct{ Path string }

func (d Dir) open() (*os.Root, error) {
	r, err := os.OpenRoot(d.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, universe.Errorf(universe.ENOTFOUND, "the instance has no files yet")
	}
	return r, err
}

// clean checks p; "" is the directory itself.
func clean(p string) (string, error) {
	if p == "" || p == "." {
		return ".", nil
	}
	return template.CleanPath(p)
}

// openChecked cleans each path in place (the template's rules), opens the
// folder, and checks that no path goes through a symbolic link. The caller
// closes the root.
func (d Dir) openChecked(paths ...*string) (*os.Root, error) {
	for _, p := range paths {
		c, err := template.CleanPath(*p)
		if err != nil {
			return nil, err
		}
		*p = c
	}
	r, err := d.open()
	if err != nil {
		return nil, err
	}
	for _, p := range paths {
		if err := template.CheckPath(r, *p); err != nil {
			_ = r.Close()
			return nil, err
		}
	}
	return r, nil
}

// List returns the entries under dir (the whole tree when recursive), in
// path order, at most MaxEntries; truncated says whether more exist.
func (d Dir) List(dir string, recursive bool) (out []api.TemplateFile, truncated bool, err error) {
	dir, err = clean(dir)
	if err != nil {
		return nil, false, err
	}
	r, err := d.open()
	if err != nil {
		return nil, false, err
	}
	defer r.Close()
	if dir != "." {
		if err := template.CheckPath(r, dir); err != nil {
			return nil, false, err
		}
		fi, err := r.Lstat(dir)
		if err != nil {
			return nil, false, universe.Errorf(universe.ENOTFOUND, "no folder %q", dir)
		}
		if !fi.IsDir() {
			return nil, false, universe.Errorf(universe.EINVALID, "%q is a file, not a folder", dir)
		}
	}
	out = []api.TemplateFile{}
	errFull := errors.New("full")
	err = fs.WalkDir(r.FS(), dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable: left out
		}
		if p == dir {
			return nil
		}
		if !(e.IsDir() || e.Type().IsRegular()) {
			return nil // symbolic links and special files are not shown
		}
		fi, err := e.Info()
		if err != nil {
			return nil
		}
		if len(out) == MaxEntries {
			truncated = true
			return errFull
		}
		f := api.TemplateFile{Path: p, Mode: fmt.Sprintf("%04o", fi.Mode().Perm()), Dir: fi.IsDir(), ModTime: fi.ModTime().UnixMilli()}
		if !fi.IsDir() {
			f.Size = fi.Size()
		}
		// What the list shows can be read, written and deleted by its
		// path, or is marked: a name the API cannot carry (and all below
		// it), a file linked in from elsewhere.
		_, bad := template.CleanPath(p)
		switch {
		case bad != nil:
			f.Path = strconv.QuoteToASCII(p)
			f.Path = f.Path[1 : len(f.Path)-1]
			f.Unusable = "its name has control characters: rename it from inside the instance"
		case !fi.IsDir():
			if err := template.Usable(fi); err != nil {
				f.Unusable = err.Error()
			}
		}
		out = append(out, f)
		if e.IsDir() && (!recursive || bad != nil) {
			return fs.SkipDir
		}
		return nil
	})
	if err != nil && err != errFull {
		return nil, false, err
	}
	if !recursive {
		sort.SliceStable(out, func(i, j int) bool { // folders first
			if out[i].Dir != out[j].Dir {
				return out[i].Dir
			}
			return out[i].Path < out[j].Path
		})
	}
	return out, truncated, nil
}

// Open opens one regular file for reading. Errors: EINVALID, ENOTFOUND.
func (d Dir) Open(p string) (*os.File, fs.FileInfo, error) {
	p, err := template.CleanPath(p)
	if err != nil {
		return nil, nil, err
	}
	r, err := d.open()
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	return template.OpenRegular(r, p, "")
}

// Write replaces (or creates) file p with src, creating its folders. The
// body goes to a temporary file beside it first: a failed upload leaves the
// old content. Errors: EINVALID; src's errors as they are.
func (d Dir) Write(p string, src io.Reader) (int64, error) {
	r, err := d.openChecked(&p)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	if fi, err := r.Lstat(p); err == nil && !fi.Mode().IsRegular() {
		return 0, universe.Errorf(universe.EINVALID, "%q is not a regular file", p)
	}
	dir := path.Dir(p)
	if dir != "." {
		if err := r.MkdirAll(dir, 0o755); err != nil {
			return 0, universe.Errorf(universe.EINVALID, "cannot create folder %q", dir)
		}
	}
	var rb [8]byte
	_, _ = rand.Read(rb[:])
	tmp := path.Join(dir, ".universe-upload-"+hex.EncodeToString(rb[:]))
	f, err := r.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", p, err)
	}
	n, err := io.Copy(f, src)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		_ = r.Remove(tmp)
		return 0, err
	}
	if err := r.Rename(tmp, p); err != nil {
		_ = r.Remove(tmp)
		return 0, fmt.Errorf("rename %s: %w", p, err)
	}
	return n, nil
}

// Remove deletes file p, or folder p with everything in it. Errors:
// EINVALID, ENOTFOUND.
func (d Dir) Remove(p string) error {
	r, err := d.openChecked(&p)
	if err != nil {
		return err
	}
	defer r.Close()
	if _, err := r.Lstat(p); errors.Is(err, fs.ErrNotExist) {
		return universe.Errorf(universe.ENOTFOUND, "no file %q", p)
	}
	if err := r.RemoveAll(p); err != nil {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	return nil
}

// Mkdir creates folder p (and its parents). Errors: EINVALID; ECONFLICT
// when something is there already.
func (d Dir) Mkdir(p string) error {
	r, err := d.openChecked(&p)
	if err != nil {
		return err
	}
	defer r.Close()
	if _, err := r.Lstat(p); err == nil {
		return universe.Errorf(universe.ECONFLICT, "%q exists already", p)
	}
	if err := r.MkdirAll(p, 0o755); err != nil {
		return fmt.Errorf("create folder %s: %w", p, err)
	}
	return nil
}

// Rename moves file or folder from to to (creating to's folders). Neither
// may go through a symbolic link; to must not exist. Errors: EINVALID,
// ENOTFOUND, ECONFLICT.
func (d Dir) Rename(from, to string) error {
	r, err := d.openChecked(&from, &to)
	if err != nil {
		return err
	}
	defer r.Close()
	if to == from || strings.HasPrefix(to, from+"/") {
		return universe.Errorf(universe.EINVALID, "%q cannot be moved into itself", from)
	}
	fi, err := r.Lstat(from)
	if err != nil {
		return universe.Errorf(universe.ENOTFOUND, "no file %q", from)
	}
	if !fi.IsDir() {
		if err := template.Usable(fi); err != nil {
			return universe.Errorf(universe.EINVALID, "%q %s", from, err.Error())
		}
	}
	if _, err := r.Lstat(to); err == nil {
		return universe.Errorf(universe.ECONFLICT, "%q exists already", to)
	}
	if dir := path.Dir(to); dir != "." {
		if err := r.MkdirAll(dir, 0o755); err != nil {
			return universe.Errorf(universe.EINVALID, "cannot create folder %q", dir)
		}
	}
	if err := r.Rename(from, to); err != nil {
		return fmt.Errorf("rename %s: %w", from, err)
	}
	return nil
}

// Unzip unpacks the zip archive at p (a regular file of the folder) into
// folder dest ("" or "." for the top), within lim: into a staging folder
// first, then each top entry into place, so a bad archive, or one whose
// entries are in the way of files already there (ECONFLICT), changes
// nothing. Errors: EINVALID, ENOTFOUND, ETOOLARGE, ECONFLICT.
func (d Dir) Unzip(p, dest string, lim template.ImportLimits) (api.TemplateImport, error) {
	var out api.TemplateImport
	p, err := template.CleanPath(p)
	if err != nil {
		return out, err
	}
	if dest, err = clean(dest); err != nil {
		return out, err
	}
	r, err := d.open()
	if err != nil {
		return out, err
	}
	defer r.Close()
	f, fi, err := template.OpenRegular(r, p, "")
	if err != nil {
		return out, err
	}
	defer f.Close()
	zr, err := zip.NewReader(f, fi.Size())
	if err != nil {
		return out, universe.Errorf(universe.EINVALID, "%q is not a zip archive", p)
	}
	if err := template.CheckArchive(zr, fi.Size(), lim); err != nil {
		return out, err
	}
	if dest != "." {
		if err := template.CheckPath(r, dest); err != nil {
			return out, err
		}
		if err := r.MkdirAll(dest, 0o755); err != nil {
			return out, universe.Errorf(universe.EINVALID, "cannot create folder %q", dest)
		}
	}
	var rb [8]byte
	_, _ = rand.Read(rb[:])
	staging := ".universe-unzip-" + hex.EncodeToString(rb[:])
	if err := r.Mkdir(staging, 0o700); err != nil {
		return out, fmt.Errorf("create staging folder: %w", err)
	}
	defer func() { _ = r.RemoveAll(staging) }()
	st, err := r.OpenRoot(staging)
	if err != nil {
		return out, fmt.Errorf("open staging folder: %w", err)
	}
	defer st.Close()
	if out.Files, out.Size, err = template.Unpack(st, zr, lim); err != nil {
		return out, err
	}
	tops, err := fs.ReadDir(st.FS(), ".")
	if err != nil {
		return out, fmt.Errorf("read staging folder: %w", err)
	}
	for _, e := range tops {
		if _, err := r.Lstat(path.Join(dest, e.Name())); err == nil {
			return out, universe.Errorf(universe.ECONFLICT, "%q is in the way: move or delete it first", path.Join(dest, e.Name()))
		}
	}
	for _, e := range tops {
		if err := r.Rename(path.Join(staging, e.Name()), path.Join(dest, e.Name())); err != nil {
			return out, fmt.Errorf("move %s into place: %w", e.Name(), err)
		}
	}
	return out, nil
}
