package main

import (
	"archive/zip"
	"bytes"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/universe-orchestrator/universe/api"
)

// splitTemplate splits "group/name".
func splitTemplate(r *remote, s string) (group, name string, ok bool) {
	group, name, ok = strings.Cut(s, "/")
	if !ok || group == "" || name == "" || strings.Contains(name, "/") {
		fmt.Fprintf(r.stderr, "universe: %q: want <group>/<name>\n", s)
		return "", "", false
	}
	return group, name, true
}

var templateGroup = group{name: "template", subs: map[string]*command{
	"list": {usage: "template list", nargs: [2]int{0, 0}, run: func(r *remote, _ []string) int {
		list, err := r.c.Templates(r.ctx)
		return printList(r, list, err, []string{"TEMPLATE", "FILES", "BYTES"}, func(t api.TemplateInfo) []string {
			return []string{t.Group + "/" + t.Name, fmt.Sprint(t.Files), fmt.Sprint(t.Size)}
		})
	}},
	"push": {usage: "template push <dir> <group>/<name>", nargs: [2]int{2, 2}, run: templatePush},
	"delete": {usage: "template delete <group>/<name>", nargs: [2]int{1, 1}, run: func(r *remote, a []string) int {
		group, name, ok := splitTemplate(r, a[0])
		if !ok {
			return exitUsage
		}
		if err := r.c.DeleteTemplate(r.ctx, group, name); err != nil {
			return r.fail(err)
		}
		if !r.json {
			fmt.Fprintf(r.stdout, "Deleted template %s/%s.\n", group, name)
		}
		return exitOK
	}},
	"pull": {usage: "template pull <group>/<name> <dir>", nargs: [2]int{2, 2}, run: templatePull},
	"export": {usage: "template export <group>/<name> [-f file.zip]", nargs: [2]int{1, 1},
		flags: func(fs *flag.FlagSet) func(*remote, []string) int {
			out := fs.String("f", "", "the zip file to write (default <group>-<name>.zip; - for stdout)")
			return func(r *remote, a []string) int { return templateExport(r, a[0], *out) }
		}},
	"import": {usage: "template import <group>/<name> <file.zip> [--replace]", nargs: [2]int{2, 2},
		flags: func(fs *flag.FlagSet) func(*remote, []string) int {
			replace := fs.Bool("replace", false, "empty an existing template first")
			return func(r *remote, a []string) int { return templateImport(r, a[0], a[1], *replace) }
		}},
}}

// templatePush makes the template exactly the folder's content: the
// folder is zipped and imported with replace, one request.
func templatePush(r *remote, a []string) int {
	group, name, ok := splitTemplate(r, a[1])
	if !ok {
		return exitUsage
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	root := a[0]
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			_, err = zw.Create(rel + "/")
			return err
		}
		if !info.Mode().IsRegular() {
			return nil // links and devices are not template files
		}
		h, err := zip.FileInfoHeader(info)
		if err != nil {
			return err
		}
		h.Name, h.Method = rel, zip.Deflate
		w, err := zw.CreateHeader(h)
		if err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(w, f)
		return err
	})
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		fmt.Fprintln(r.stderr, "universe:", err)
		return exitError
	}
	res, err := r.c.ImportTemplate(r.ctx, group, name, &buf, true)
	if err != nil {
		return r.fail(err)
	}
	if r.json {
		r.printJSON(res)
	} else {
		fmt.Fprintf(r.stdout, "Pushed %s to %s/%s: %d files, %d bytes.\n", root, res.Group, res.Name, res.Files, res.Size)
	}
	return exitOK
}

// templatePull writes the template's files into dir (created if needed).
// Paths from the zip are checked to stay inside dir.
func templatePull(r *remote, a []string) int {
	group, name, ok := splitTemplate(r, a[0])
	if !ok {
		return exitUsage
	}
	var buf bytes.Buffer
	if err := r.c.ExportTemplate(r.ctx, group, name, &buf); err != nil {
		return r.fail(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		fmt.Fprintln(r.stderr, "universe: the master sent an unreadable zip:", err)
		return exitError
	}
	if err := os.MkdirAll(a[1], 0o755); err != nil {
		fmt.Fprintln(r.stderr, "universe:", err)
		return exitError
	}
	root, err := os.OpenRoot(a[1]) // no path may leave the folder
	if err != nil {
		fmt.Fprintln(r.stderr, "universe:", err)
		return exitError
	}
	defer root.Close()
	files := 0
	for _, f := range zr.File {
		if err := extract(root, f); err != nil {
			fmt.Fprintf(r.stderr, "universe: %s: %v\n", f.Name, err)
			return exitError
		}
		if !strings.HasSuffix(f.Name, "/") {
			files++
		}
	}
	if !r.json {
		fmt.Fprintf(r.stdout, "Pulled %s/%s into %s: %d files.\n", group, name, a[1], files)
	}
	return exitOK
}

func extract(root *os.Root, f *zip.File) error {
	name := strings.TrimSuffix(f.Name, "/")
	if strings.HasSuffix(f.Name, "/") {
		return mkdirAllRoot(root, name)
	}
	if dir := filepath.Dir(name); dir != "." {
		if err := mkdirAllRoot(root, dir); err != nil {
			return err
		}
	}
	rc, err := f.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	mode := f.Mode().Perm() & 0o755
	if mode == 0 {
		mode = 0o644
	}
	out, err := root.OpenFile(name, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, rc); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

func mkdirAllRoot(root *os.Root, dir string) error {
	p := ""
	for _, s := range strings.Split(filepath.ToSlash(dir), "/") {
		p = filepath.Join(p, s)
		if err := root.Mkdir(p, 0o755); err != nil && !os.IsExist(err) {
			return err
		}
	}
	return nil
}

func templateExport(r *remote, ref, out string) int {
	group, name, ok := splitTemplate(r, ref)
	if !ok {
		return exitUsage
	}
	if out == "" {
		out = group + "-" + name + ".zip"
	}
	var w io.Writer = r.stdout
	var f *os.File
	if out != "-" {
		var err error
		if f, err = os.Create(out); err != nil {
			fmt.Fprintln(r.stderr, "universe:", err)
			return exitError
		}
		w = f
	}
	err := r.c.ExportTemplate(r.ctx, group, name, w)
	if f != nil {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = os.Remove(out)
		}
	}
	if err != nil {
		return r.fail(err)
	}
	if f != nil && !r.json {
		fmt.Fprintf(r.stderr, "Exported %s/%s to %s.\n", group, name, out)
	}
	return exitOK
}

func templateImport(r *remote, ref, file string, replace bool) int {
	group, name, ok := splitTemplate(r, ref)
	if !ok {
		return exitUsage
	}
	f, err := os.Open(file)
	if err != nil {
		fmt.Fprintln(r.stderr, "universe:", err)
		return exitError
	}
	defer f.Close()
	res, err := r.c.ImportTemplate(r.ctx, group, name, f, replace)
	if err != nil {
		return r.fail(err)
	}
	if r.json {
		r.printJSON(res)
	} else {
		fmt.Fprintf(r.stdout, "Imported %s into %s/%s: %d files, %d bytes.\n", file, res.Group, res.Name, res.Files, res.Size)
	}
	return exitOK
}
