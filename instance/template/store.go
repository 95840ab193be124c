package template

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"syscall"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
)

// Store is the template folder: <dir>/<group>/<name>/ file trees. It is safe
// for concurrent use; writes to one store are serialised.
type Store struct {
	dir  string
	root *os.Root
	mu   sync.Mutex // serialises writes (create-if-absent, import swaps)

	onChange []func(group, name string) // set before use
}

// OnChange registers f to be told, after the fact and outside the store's
// locks, of every template a write changed (made, deleted, a file written
// or removed, an import). Register before the store is shared.
func (s *Store) OnChange(f func(group, name string)) { s.onChange = append(s.onChange, f) }

// changed tells the OnChange hooks when err is nil.
func (s *Store) changed(group, name string, err error) {
	if err != nil {
		return
	}
	for _, f := range s.onChange {
		f(group, name)
	}
}

// Open opens (and creates, mode 0755) the template folder dir. Close it
// with Close.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create templates dir: %w", err)
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open templates dir: %w", err)
	}
	return &Store{dir: dir, root: r}, nil
}

// Close releases the folder.
func (s *Store) Close() error { return s.root.Close() }

// Dir returns the template folder.
func (s *Store) Dir() string { return s.dir }

var errNoTemplate = func(group, name string) error {
	return universe.Errorf(universe.ENOTFOUND, "no template %s/%s", group, name)
}

// open opens the root of one template. Errors: EINVALID (names), ENOTFOUND,
// EINVALID if the template folder is a symbolic link.
func (s *Store) open(group, name string) (*os.Root, error) {
	if err := ValidTemplate(group, name); err != nil {
		return nil, err
	}
	for _, p := range []string{group, group + "/" + name} {
		fi, err := s.root.Lstat(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, errNoTemplate(group, name)
			}
			return nil, fmt.Errorf("stat template: %w", err)
		}
		if !fi.IsDir() {
			return nil, universe.Errorf(universe.EINVALID, "template %s/%s is not a folder", group, name)
		}
	}
	r, err := s.root.OpenRoot(group + "/" + name)
	if err != nil {
		return nil, fmt.Errorf("open template: %w", err)
	}
	return r, nil
}

// Exists says whether the template group/name exists.
func (s *Store) Exists(group, name string) bool {
	r, err := s.open(group, name)
	if err != nil {
		return false
	}
	_ = r.Close()
	return true
}

// List returns every template, ordered by group and name.
func (s *Store) List() ([]api.TemplateInfo, error) {
	names, err := s.Names()
	if err != nil {
		return nil, err
	}
	out := []api.TemplateInfo{}
	for _, n := range names {
		info, err := s.Get(n.Group, n.Name)
		if err != nil {
			continue // deleted meanwhile
		}
		out = append(out, info)
	}
	return out, nil
}

// Names lists the templates, group and name, sorted: List without
// reading what is in them.
func (s *Store) Names() ([]api.Template, error) {
	groups, err := s.Groups()
	if err != nil {
		return nil, err
	}
	out := []api.Template{}
	for _, g := range groups {
		names, err := s.InGroup(g)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			out = append(out, api.Template{Group: g, Name: n})
		}
	}
	return out, nil
}

// Groups returns the template groups (folders with a valid name).
func (s *Store) Groups() ([]string, error) { return s.subdirs(".") }

// InGroup returns the names of the templates of group, sorted; an unknown
// group has none.
func (s *Store) InGroup(group string) ([]string, error) {
	if err := universe.ValidateName("template group", group); err != nil {
		return nil, err
	}
	return s.subdirs(group)
}

func (s *Store) subdirs(dir string) ([]string, error) {
	f, err := s.root.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("read templates: %w", err)
	}
	defer f.Close()
	ents, err := f.ReadDir(-1)
	if err != nil {
		return nil, fmt.Errorf("read templates: %w", err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && universe.ValidateName("", e.Name()) == nil {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// Get describes one template. Errors: EINVALID, ENOTFOUND.
func (s *Store) Get(group, name string) (api.TemplateInfo, error) {
	files, err := s.Files(group, name)
	if err != nil {
		return api.TemplateInfo{}, err
	}
	info := api.TemplateInfo{Group: group, Name: name, Storage: "local"}
	for _, f := range files {
		if !f.Dir {
			info.Files++
			info.Size += f.Size
		}
	}
	return info, nil
}

// Create makes an empty template. Errors: EINVALID, ECONFLICT if it exists.
func (s *Store) Create(group, name string) (err error) {
	if err := ValidTemplate(group, name); err != nil {
		return err
	}
	defer func() { s.changed(group, name, err) }() // after the unlock
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.root.Mkdir(group, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create template group: %w", err)
	}
	if err := s.root.Mkdir(group+"/"+name, 0o755); errors.Is(err, fs.ErrExist) {
		return universe.Errorf(universe.ECONFLICT, "template %s/%s exists already", group, name)
	} else if err != nil {
		return fmt.Errorf("create template: %w", err)
	}
	return nil
}

// Delete removes a template and its files. Errors: EINVALID, ENOTFOUND.
func (s *Store) Delete(group, name string) (err error) {
	r, err := s.open(group, name)
	if err != nil {
		return err
	}
	_ = r.Close()
	defer func() { s.changed(group, name, err) }() // after the unlock
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.root.RemoveAll(group + "/" + name); err != nil {
		return fmt.Errorf("delete template: %w", err)
	}
	return nil
}

// Files lists the files and folders of a template (symbolic links are
// left out), ordered by path.
func (s *Store) Files(group, name string) ([]api.TemplateFile, error) {
	r, err := s.open(group, name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	out := []api.TemplateFile{}
	err = walkTree(r, func(p string, fi fs.FileInfo) error {
		out = append(out, api.TemplateFile{
			Path: p, Size: sizeOf(fi), Mode: fmt.Sprintf("%04o", fi.Mode().Perm()),
			Dir: fi.IsDir(), ModTime: fi.ModTime().UnixMilli(),
		})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list template files: %w", err)
	}
	return out, nil
}

// walkTree calls fn for every folder and regular file under r, parents
// first, in lexical order. Symbolic links and other special files are
// skipped, and so are entries removed during the walk.
func walkTree(r *os.Root, fn func(p string, fi fs.FileInfo) error) error {
	return fs.WalkDir(r.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == "." || !(d.IsDir() || d.Type().IsRegular()) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		return fn(p, fi)
	})
}

func sizeOf(fi fs.FileInfo) int64 {
	if fi.IsDir() {
		return 0
	}
	return fi.Size()
}

// CheckPath refuses a path through a symbolic link or a non-folder.
func CheckPath(r *os.Root, p string) error {
	parts := strings.Split(p, "/")
	for i := range parts {
		sub := strings.Join(parts[:i+1], "/")
		fi, err := r.Lstat(sub)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // the rest does not exist yet
		} else if err != nil {
			return universe.Errorf(universe.EINVALID, "path %q cannot be used", p)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return universe.Errorf(universe.EINVALID, "path %q goes through a symbolic link", p)
		}
		if i < len(parts)-1 && !fi.IsDir() {
			return universe.Errorf(universe.EINVALID, "%q is a file, not a folder", sub)
		}
	}
	return nil
}

// OpenFile opens one regular file of a template for reading. The caller
// closes it. Errors: EINVALID (path), ENOTFOUND.
func (s *Store) OpenFile(group, name, p string) (*os.File, fs.FileInfo, error) {
	p, err := CleanPath(p)
	if err != nil {
		return nil, nil, err
	}
	r, err := s.open(group, name)
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	return OpenRegular(r, p, " in template "+group+"/"+name)
}

// OpenRegular opens the regular file at the clean path p under r for
// reading, refusing symbolic links on the way; where ends the not-found
// message. Errors: EINVALID, ENOTFOUND.
func OpenRegular(r *os.Root, p, where string) (*os.File, fs.FileInfo, error) {
	if err := CheckPath(r, p); err != nil {
		return nil, nil, err
	}
	// The type is checked before the open, and the open never blocks: a
	// FIFO (or a device) put there by whoever controls the folder would
	// hang the open of a reader, and a goroutine and thread with it.
	before, err := r.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, universe.Errorf(universe.ENOTFOUND, "no file %q%s", p, where)
	} else if err != nil {
		return nil, nil, universe.Errorf(universe.EINVALID, "file %q cannot be read", p)
	}
	if err := Usable(before); err != nil {
		return nil, nil, universe.Errorf(universe.EINVALID, "%q %s", p, err.Error())
	}
	f, err := r.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW|syscall.O_NOCTTY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, universe.Errorf(universe.ENOTFOUND, "no file %q%s", p, where)
	} else if err != nil {
		return nil, nil, universe.Errorf(universe.EINVALID, "file %q cannot be read", p)
	}
	// What was opened is what was checked (not swapped meanwhile).
	fi, err := f.Stat()
	if err != nil || !os.SameFile(before, fi) || Usable(fi) != nil {
		_ = f.Close()
		return nil, nil, universe.Errorf(universe.EINVALID, "%q is not a regular file", p)
	}
	return f, fi, nil
}

// Usable says why a file found in a folder that others control (an
// instance's) is not served: anything but a regular file (FIFOs, sockets,
// devices, links), and a regular file with more than one hard link, which
// may be a file from outside the folder linked in (like a symbolic link).
func Usable(fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return errors.New("is not a regular file")
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
		return errors.New("has other hard links: not served, as a symbolic link is not")
	}
	return nil
}

// WriteFile writes one file of a template from src, creating its folders.
// The file is replaced atomically: a failed write leaves the old content.
// With create, an existing file is an ECONFLICT. Errors: EINVALID (path),
// ENOTFOUND (template), ECONFLICT; src's errors are returned as they are.
func (s *Store) WriteFile(group, name, p string, src io.Reader, create bool) (n int64, err error) {
	defer func() { s.changed(group, name, err) }()
	return s.writeFile(group, name, p, src, create)
}

func (s *Store) writeFile(group, name, p string, src io.Reader, create bool) (int64, error) {
	p, err := CleanPath(p)
	if err != nil {
		return 0, err
	}
	r, err := s.open(group, name)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	// Refuse early what would be refused anyway, before the body is read.
	if err := s.checkWrite(r, p, create); err != nil {
		return 0, err
	}
	// The body is read outside the lock, into a file beside the template
	// (in its group folder, which listings skip): a slow upload holds no
	// other write up.
	tmp := group + "/.upload-" + randomHex()
	f, err := s.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", p, err)
	}
	n, err := io.Copy(f, src)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("write %s: %w", p, cerr)
	}
	defer s.root.Remove(tmp) // after a successful rename there is nothing left to remove
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkWrite(r, p, create); err != nil {
		return 0, err
	}
	if dir := path.Dir(p); dir != "." {
		if err := r.MkdirAll(dir, 0o755); err != nil {
			return 0, universe.Errorf(universe.EINVALID, "cannot create folder %q", dir)
		}
	}
	if err := s.root.Rename(tmp, group+"/"+name+"/"+p); err != nil {
		return 0, fmt.Errorf("rename %s: %w", p, err)
	}
	return n, nil
}

// checkWrite says whether p of the template r may be written: no symbolic
// link on the way, not a folder, absent when create is set.
func (s *Store) checkWrite(r *os.Root, p string, create bool) error {
	if err := CheckPath(r, p); err != nil {
		return err
	}
	if fi, err := r.Lstat(p); err == nil {
		if create {
			return universe.Errorf(universe.ECONFLICT, "file %q exists already; use PUT or PATCH to overwrite it", p)
		}
		if !fi.Mode().IsRegular() {
			return universe.Errorf(universe.EINVALID, "%q is not a regular file", p)
		}
	}
	return nil
}

// RemoveFile deletes one file (or an empty folder) of a template. Errors:
// EINVALID, ENOTFOUND, ECONFLICT for a folder that is not empty.
func (s *Store) RemoveFile(group, name, p string) (err error) {
	p, err = CleanPath(p)
	if err != nil {
		return err
	}
	r, err := s.open(group, name)
	if err != nil {
		return err
	}
	defer r.Close()
	defer func() { s.changed(group, name, err) }() // after the unlock
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := CheckPath(r, p); err != nil {
		return err
	}
	if _, err := r.Lstat(p); errors.Is(err, fs.ErrNotExist) {
		return universe.Errorf(universe.ENOTFOUND, "no file %q in template %s/%s", p, group, name)
	}
	if err := r.Remove(p); err != nil {
		return universe.Errorf(universe.ECONFLICT, "%q cannot be removed (a folder must be empty)", p)
	}
	return nil
}
