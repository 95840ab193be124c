package template

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"

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

func copyTree(src, dst *os.Root, override bool) (int, error) {
	n := 0
	err := walkTree(src, func(p string, fi fs.FileInfo) error {
		if fi.IsDir() {
			if err := dst.Mkdir(p, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
			return nil
		}
		flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
		if !override {
			flags = os.O_WRONLY | os.O_CREATE | os.O_EXCL
		}
		w, err := dst.OpenFile(p, flags, fi.Mode().Perm())
		if errors.Is(err, fs.ErrExist) {
			return nil // present files are kept
		} else if err != nil {
			return err
		}
		r, err := src.Open(p)
		if err != nil {
			_ = w.Close()
			return err
		}
		_, err = io.Copy(w, r)
		_ = r.Close()
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		n++
		return err
	})
	return n, err
}
