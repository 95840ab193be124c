package template

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path"
	"sort"

	"golang.org/x/sys/unix"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
)

// Plan resolves an installation config to the templates to copy, in copy
// order: allOf, every template of each allInGroups group, one of oneOf, one
// template of each oneInGroups group (pick(n) chooses an index below n).
// They are ordered by descending priority when present files are kept
// (the first copy of a file wins), by ascending priority when they are
// overwritten (the last copy wins); either way the highest priority wins.
// Ties keep their listed order. Errors: ENOTFOUND for a missing template or
// an empty oneInGroups group, EINVALID for bad names.
func (s *Store) Plan(c api.TemplateInstallationConfig, pick func(n int) int) ([]api.Template, error) {
	plan := append([]api.Template(nil), c.AllOf...)
	for _, g := range c.AllInGroups {
		names, err := s.InGroup(g)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			plan = append(plan, api.Template{Group: g, Name: n})
		}
	}
	if len(c.OneOf) > 0 {
		plan = append(plan, c.OneOf[pick(len(c.OneOf))])
	}
	for _, g := range c.OneInGroups {
		names, err := s.InGroup(g)
		if err != nil {
			return nil, err
		}
		if len(names) == 0 {
			return nil, universe.Errorf(universe.ENOTFOUND, "template group %q has no templates", g)
		}
		plan = append(plan, api.Template{Group: g, Name: names[pick(len(names))]})
	}
	for _, t := range plan {
		if !s.Exists(t.Group, t.Name) {
			return nil, universe.Errorf(universe.ENOTFOUND, "template %s/%s does not exist", t.Group, t.Name)
		}
	}
	sort.SliceStable(plan, func(i, j int) bool {
		if c.OnTemplatePasteOverridePresentFiles {
			return plan[i].Priority < plan[j].Priority
		}
		return plan[i].Priority > plan[j].Priority
	})
	return plan, nil
}

// Install copies the templates of plan, in order, into the folder dst
// (created if needed). With override, later copies overwrite files;
// without, a file that is present is kept. Symbolic links in templates are
// skipped. It returns the number of files written.
func (s *Store) Install(dst string, plan []api.Template, override bool) (int, error) {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return 0, fmt.Errorf("create working dir: %w", err)
	}
	out, err := os.OpenRoot(dst)
	if err != nil {
		return 0, fmt.Errorf("open working dir: %w", err)
	}
	defer out.Close()
	written := 0
	for _, t := range plan {
		src, err := s.open(t.Group, t.Name)
		if err != nil {
			return written, err
		}
		n, err := copyTree(src, out, override)
		_ = src.Close()
		written += n
		if err != nil {
			return written, fmt.Errorf("install template %s/%s: %w", t.Group, t.Name, err)
		}
	}
	return written, nil
}

// copyTree copies the folders and regular files of src into dst, parents
// first, in lexical order; symbolic links and special files are skipped,
// and so are entries removed meanwhile. It works on folder descriptors, a
// name at a time (openat with O_NOFOLLOW), so that a file costs an open of
// each side, its copy and two closes: neither side's paths are walked again
// per file, and nothing is followed out of either tree (dst may hold what
// an instance made: a link where a folder or file should be is an error,
// never followed).
func copyTree(src, dst *os.Root, override bool) (int, error) {
	sd, err := src.Open(".")
	if err != nil {
		return 0, err
	}
	defer sd.Close()
	dd, err := dst.Open(".")
	if err != nil {
		return 0, err
	}
	defer dd.Close()
	c := &treeCopy{override: override}
	err = c.dir(int(sd.Fd()), int(dd.Fd()), ".")
	return c.n, err
}

type treeCopy struct {
	override bool
	n        int    // files written
	buf      []byte // for a copy copy_file_range cannot do
}

const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

// dir copies the entries of the folder sfd into the folder dfd; rel is
// their path, for errors.
func (c *treeCopy) dir(sfd, dfd int, rel string) error {
	ents, err := readDir(sfd)
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	for _, e := range ents {
		p := path.Join(rel, e.name)
		switch e.typ {
		case unix.DT_DIR:
			if err := unix.Mkdirat(dfd, e.name, 0o755); err != nil && err != unix.EEXIST {
				return fmt.Errorf("%s: %w", p, err)
			}
			s, err := unix.Openat(sfd, e.name, dirFlags, 0)
			if err == unix.ENOENT {
				continue // removed meanwhile
			} else if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			d, err := unix.Openat(dfd, e.name, dirFlags, 0)
			if err != nil {
				_ = unix.Close(s)
				return fmt.Errorf("%s: %w", p, err)
			}
			err = c.dir(s, d, p)
			_ = unix.Close(s)
			_ = unix.Close(d)
			if err != nil {
				return err
			}
		case unix.DT_REG:
			if err := c.file(sfd, dfd, e.name, p); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *treeCopy) file(sfd, dfd int, name, p string) error {
	r, err := unix.Openat(sfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err == unix.ENOENT {
		return nil // removed meanwhile
	} else if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	defer unix.Close(r)
	var st unix.Stat_t
	if err := unix.Fstat(r, &st); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil // replaced meanwhile by something else
	}
	flags := unix.O_WRONLY | unix.O_CREAT | unix.O_TRUNC | unix.O_NOFOLLOW | unix.O_CLOEXEC
	if !c.override {
		flags = unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
	}
	w, err := unix.Openat(dfd, name, flags, st.Mode&0o777)
	if err == unix.EEXIST {
		return nil // present files are kept
	} else if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	err = c.copy(w, r)
	if cerr := unix.Close(w); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	c.n++
	return nil
}

// copy copies r to w, to its end: in the kernel (copy_file_range) where it
// can, else through a buffer.
func (c *treeCopy) copy(w, r int) error {
	for done := 0; ; {
		n, err := unix.CopyFileRange(r, nil, w, nil, 1<<30, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			if done == 0 && (err == unix.EXDEV || err == unix.ENOSYS || err == unix.EINVAL || err == unix.EOPNOTSUPP) {
				return c.readWrite(w, r)
			}
			return err
		}
		if n == 0 {
			return nil
		}
		done += n
	}
}

func (c *treeCopy) readWrite(w, r int) error {
	if c.buf == nil {
		c.buf = make([]byte, 64<<10)
	}
	for {
		n, err := unix.Read(r, c.buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		for b := c.buf[:n]; len(b) > 0; {
			m, err := unix.Write(w, b)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return err
			}
			b = b[m:]
		}
	}
}

type dirent struct {
	name string
	typ  uint8
}

// readDir lists the folder fd (from its start), sorted by name; an entry
// whose type the file system does not say is asked for (fstatat, without
// following a link).
func readDir(fd int) ([]dirent, error) {
	if _, err := unix.Seek(fd, 0, 0); err != nil {
		return nil, err
	}
	var (
		out []dirent
		buf = make([]byte, 16<<10)
	)
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			break
		}
		for b := buf[:n]; len(b) > 0; {
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			typ := b[18]
			name := b[19:reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			b = b[reclen:]
			if s := string(name); s != "." && s != ".." {
				if typ == unix.DT_UNKNOWN {
					var st unix.Stat_t
					if unix.Fstatat(fd, s, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
						continue
					}
					switch st.Mode & unix.S_IFMT {
					case unix.S_IFDIR:
						typ = unix.DT_DIR
					case unix.S_IFREG:
						typ = unix.DT_REG
					}
				}
				out = append(out, dirent{s, typ})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}
