package template_test

import (
	"archive/zip"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/instance/template"
)

// newStore makes a store with templates given as "group/name" -> files.
func newStore(t testing.TB, trees map[string]map[string]string) *template.Store {
	t.Helper()
	s, err := template.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for gn, files := range trees {
		g, n, _ := strings.Cut(gn, "/")
		if err := s.Create(g, n); err != nil {
			t.Fatal(err)
		}
		for p, body := range files {
			if _, err := s.WriteFile(g, n, p, strings.NewReader(body), true); err != nil {
				t.Fatal(err)
			}
		}
	}
	return s
}

func TestInstallOrder(t *testing.T) {
	s := newStore(t, map[string]map[string]string{
		"base/common": {"a.txt": "common", "b.txt": "common"},
		"base/extra":  {"a.txt": "extra", "c.txt": "extra"},
		"maps/one":    {"map.txt": "one"},
		"maps/two":    {"map.txt": "two"},
		"mode/high":   {"a.txt": "high"},
	})
	first := func(int) int { return 0 }
	last := func(n int) int { return n - 1 }
	tpl := func(g, n string, prio int) api.Template { return api.Template{Group: g, Name: n, Priority: prio} }
	cases := []struct {
		name string
		cfg  api.TemplateInstallationConfig
		pick func(int) int
		want map[string]string
	}{
		{"allOf, keep present: highest priority wins",
			api.TemplateInstallationConfig{AllOf: []api.Template{tpl("base", "common", 1), tpl("base", "extra", 5)}},
			first, map[string]string{"a.txt": "extra", "b.txt": "common", "c.txt": "extra"}},
		{"allOf, override: highest priority still wins",
			api.TemplateInstallationConfig{AllOf: []api.Template{tpl("base", "extra", 5), tpl("base", "common", 1)}, OnTemplatePasteOverridePresentFiles: true},
			first, map[string]string{"a.txt": "extra", "b.txt": "common", "c.txt": "extra"}},
		{"equal priority, keep present: first listed wins",
			api.TemplateInstallationConfig{AllOf: []api.Template{tpl("base", "common", 0), tpl("base", "extra", 0)}},
			first, map[string]string{"a.txt": "common", "b.txt": "common", "c.txt": "extra"}},
		{"equal priority, override: last listed wins",
			api.TemplateInstallationConfig{AllOf: []api.Template{tpl("base", "common", 0), tpl("base", "extra", 0)}, OnTemplatePasteOverridePresentFiles: true},
			first, map[string]string{"a.txt": "extra", "b.txt": "common", "c.txt": "extra"}},
		{"allInGroups copies every template of the group",
			api.TemplateInstallationConfig{AllInGroups: []string{"base"}},
			first, map[string]string{"a.txt": "common", "b.txt": "common", "c.txt": "extra"}},
		{"oneOf picks one",
			api.TemplateInstallationConfig{OneOf: []api.Template{tpl("maps", "one", 0), tpl("maps", "two", 0)}},
			last, map[string]string{"map.txt": "two"}},
		{"oneInGroups picks one per group",
			api.TemplateInstallationConfig{OneInGroups: []string{"maps"}},
			first, map[string]string{"map.txt": "one"}},
		{"all four together",
			api.TemplateInstallationConfig{AllOf: []api.Template{tpl("mode", "high", 10)}, AllInGroups: []string{"base"},
				OneOf: []api.Template{tpl("maps", "two", 0)}},
			first, map[string]string{"a.txt": "high", "b.txt": "common", "c.txt": "extra", "map.txt": "two"}},
		{"nothing", api.TemplateInstallationConfig{}, first, map[string]string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := s.Plan(tc.cfg, tc.pick)
			if err != nil {
				t.Fatal(err)
			}
			dst := t.TempDir()
			if _, err := s.Install(dst, plan, tc.cfg.OnTemplatePasteOverridePresentFiles); err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			_ = filepath.Walk(dst, func(p string, fi os.FileInfo, err error) error {
				if err == nil && fi.Mode().IsRegular() {
					b, _ := os.ReadFile(p)
					rel, _ := filepath.Rel(dst, p)
					got[rel] = string(b)
				}
				return nil
			})
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
	for _, bad := range []api.TemplateInstallationConfig{
		{AllOf: []api.Template{{Group: "base", Name: "missing"}}},
		{OneInGroups: []string{"empty"}},
	} {
		if _, err := s.Plan(bad, first); universe.ErrorCode(err) != universe.ENOTFOUND {
			t.Errorf("plan %+v: %v, want not found", bad, err)
		}
	}
}

func TestCleanPath(t *testing.T) {
	ok := []string{"a", "a/b.txt", "plugins/x.jar", "a..b", ".hidden", "dir/.env"}
	bad := []string{"", "/a", "..", "../a", "a/../b", "a/..", ".", "./a", "a/./b", "a//b", "a/", "a\\b", "a\x00b", "a\nb", strings.Repeat("a", 1025)}
	for _, p := range ok {
		if got, err := template.CleanPath(p); err != nil || got != p {
			t.Errorf("CleanPath(%q) = %q, %v", p, got, err)
		}
	}
	for _, p := range bad {
		if _, err := template.CleanPath(p); universe.ErrorCode(err) != universe.EINVALID {
			t.Errorf("CleanPath(%q) = %v, want invalid", p, err)
		}
	}
}

// FuzzCleanPath: whatever a client sends, an accepted path stays inside.
func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{"a/b", "../x", "a/../../b", "/etc", "a\\..\\b", "%2e%2e", "a\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got, err := template.CleanPath(p)
		if err != nil {
			return
		}
		root := "/r/o/o/t"
		full := filepath.Join(root, filepath.FromSlash(got))
		if !strings.HasPrefix(full, root+"/") {
			t.Fatalf("%q accepted as %q, which leaves the root: %s", p, got, full)
		}
		for _, seg := range strings.Split(got, "/") {
			if seg == ".." || seg == "." || seg == "" {
				t.Fatalf("%q accepted with segment %q", p, seg)
			}
		}
	})
}

// FuzzImport: any archive either imports inside the template or fails
// cleanly; nothing lands outside.
func FuzzImport(f *testing.F) {
	for _, files := range []map[string]string{
		{"a.txt": "x"}, {"../evil": "x"}, {"d/": "", "d/e": "y"}, {"/abs": "z"},
	} {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		for n, b := range files {
			w, _ := zw.Create(n)
			_, _ = w.Write([]byte(b))
		}
		_ = zw.Close()
		f.Add(buf.Bytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		outer := t.TempDir()
		dir := filepath.Join(outer, "templates")
		s, err := template.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		_, err = s.Import("g", "n", bytes.NewReader(data), int64(len(data)), template.ImportLimits{MaxFiles: 50, MaxBytes: 1 << 20}, false)
		if err != nil {
			if c := universe.ErrorCode(err); c != universe.EINVALID && c != universe.ETOOLARGE {
				t.Fatalf("unexpected error %v", err)
			}
		}
		ents, _ := os.ReadDir(outer)
		if len(ents) != 1 {
			t.Fatalf("something landed outside the templates folder: %v", ents)
		}
	})
}

// BenchmarkInstall100 installs a template of 100 files in 10 folders
// (4 KiB each) into a new folder per round.
func BenchmarkInstall100(b *testing.B) {
	files := map[string]string{}
	for i := 0; i < 100; i++ {
		files[fmt.Sprintf("dir%d/file%d.txt", i%10, i)] = strings.Repeat("x", 4096)
	}
	s := newStore(b, map[string]map[string]string{"g/t": files})
	dst := b.TempDir()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Install(filepath.Join(dst, strconv.Itoa(i)), []api.Template{{Group: "g", Name: "t"}}, false); err != nil {
			b.Fatal(err)
		}
	}
}

// TestInstallNeverFollowsLinks: a link in a template is skipped; in the
// destination (a folder an instance controls) a link where a file goes is
// kept as it is, or refused when files are overwritten, and a link where a
// folder goes is refused: nothing is written through one.
func TestInstallNeverFollowsLinks(t *testing.T) {
	s := newStore(t, map[string]map[string]string{"g/t": {"a.txt": "a", "sub/b.txt": "b", "c.txt": "c"}})
	outside := t.TempDir()
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(s.Dir(), "g", "t", "link")); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	n, err := s.Install(dst, []api.Template{{Group: "g", Name: "t"}}, false)
	if err != nil || n != 3 {
		t.Fatalf("install: %d files, %v", n, err)
	}
	if _, err := os.Lstat(filepath.Join(dst, "link")); !os.IsNotExist(err) {
		t.Fatalf("a link of the template was copied: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "sub", "b.txt")); string(b) != "b" {
		t.Fatalf("sub/b.txt: %q", b)
	}

	// The instance's links, where a file and where a folder go.
	dst = t.TempDir()
	if err := os.Symlink(filepath.Join(outside, "a.txt"), filepath.Join(dst, "a.txt")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Install(dst, []api.Template{{Group: "g", Name: "t"}}, false); err != nil {
		t.Fatalf("install beside a link: %v", err)
	}
	if _, err := s.Install(dst, []api.Template{{Group: "g", Name: "t"}}, true); err == nil {
		t.Fatal("overwriting through a link was not refused")
	}
	if err := os.RemoveAll(filepath.Join(dst, "sub")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dst, "sub")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Install(dst, []api.Template{{Group: "g", Name: "t"}}, true); err == nil {
		t.Fatal("a link where a folder goes was not refused")
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("written outside through a link: %v", ents)
	}
}
