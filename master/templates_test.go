package master_test

import (
	"archive/zip"
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/master"
)

// raw sends a request with a raw (unnormalised) path and a binary body.
func (e *env) raw(method, rawPath string, body []byte) *http.Response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+"/", bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.URL.Opaque = rawPath // sent as is: no cleaning, no re-encoding
	req.Header.Set("Authorization", "Bearer "+e.admin)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestTemplateFiles(t *testing.T) {
	var tplDir string
	e := newEnv(t, func(c *master.Config) { tplDir = c.TemplatesDir })
	base := "/api/templates/lobby/base"
	if resp := e.do("POST", base, e.admin, ""); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d", resp.StatusCode)
	}
	if resp := e.do("POST", base, e.admin, ""); resp.StatusCode != http.StatusConflict {
		t.Fatalf("second create: %d", resp.StatusCode)
	}
	binary := []byte{0, 1, 2, 0xff, 0xfe, '\n', 0}
	if resp := e.raw("POST", base+"/files/plugins/data.bin", binary); resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %d %s", resp.StatusCode, readAll(resp))
	}
	if resp := e.raw("POST", base+"/files/plugins/data.bin", []byte("x")); resp.StatusCode != http.StatusConflict {
		t.Fatalf("POST over a file: %d, want 409", resp.StatusCode)
	}
	resp := e.raw("GET", base+"/files/plugins/data.bin", nil)
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !bytes.Equal(got, binary) {
		t.Fatalf("download: %d %v", resp.StatusCode, got)
	}
	for _, m := range []string{"PUT", "PATCH"} {
		if resp := e.raw(m, base+"/files/plugins/data.bin", []byte(m)); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("%s: %d", m, resp.StatusCode)
		}
		resp := e.raw("GET", base+"/files/plugins/data.bin", nil)
		if b, _ := io.ReadAll(resp.Body); string(b) != m {
			t.Fatalf("after %s: %q", m, b)
		}
	}
	files := decode[[]api.TemplateFile](t, e.do("GET", base+"/files", e.admin, ""))
	if len(files) != 2 || files[0].Path != "plugins" || !files[0].Dir || files[1].Path != "plugins/data.bin" || files[1].Size != 5 || files[1].Mode != "0644" {
		t.Fatalf("files %+v", files)
	}
	if resp := e.raw("DELETE", base+"/files/plugins/data.bin", nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete file: %d", resp.StatusCode)
	}
	if resp := e.raw("GET", base+"/files/plugins/data.bin", nil); resp.StatusCode != 404 {
		t.Fatalf("deleted file: %d", resp.StatusCode)
	}
	if resp := e.raw("GET", "/api/templates/lobby/nope/files", nil); resp.StatusCode != 404 {
		t.Fatalf("unknown template: %d", resp.StatusCode)
	}

	// A secret beside the templates folder, and a symbolic link to it.
	secret := filepath.Join(filepath.Dir(tplDir), filepath.Base(tplDir)+"-secret.txt")
	if err := os.WriteFile(secret, []byte("TOP-SECRET-CONTENT"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(secret) })
	if err := os.Symlink(secret, filepath.Join(tplDir, "lobby", "base", "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Dir(tplDir), filepath.Join(tplDir, "lobby", "base", "up")); err != nil {
		t.Fatal(err)
	}
	escapes := []struct{ name, method, path string }{
		{"dot dot", "GET", base + "/files/../../../etc/passwd"},
		{"dot dot write", "PUT", base + "/files/../escape.txt"},
		{"dot dot inside", "GET", base + "/files/a/../../x"},
		{"encoded dot dot", "GET", base + "/files/%2e%2e/%2e%2e/etc/passwd"},
		{"encoded slash", "GET", base + "/files/..%2f..%2fetc%2fpasswd"},
		{"encoded slash write", "PUT", base + "/files/a%2Fb"},
		{"encoded backslash", "GET", base + "/files/..%5c..%5cx"},
		{"NUL", "PUT", base + "/files/a%00b"},
		{"absolute", "GET", base + "/files//etc/passwd"},
		{"dot segment", "PUT", base + "/files/./a"},
		{"empty segment", "PUT", base + "/files/a//b"},
		{"symlink read", "GET", base + "/files/link"},
		{"symlink write", "PUT", base + "/files/link"},
		{"through a symlinked folder", "GET", base + "/files/up/" + filepath.Base(tplDir) + "-secret.txt"},
		{"write through a symlinked folder", "PUT", base + "/files/up/planted.txt"},
		{"delete through a symlink", "DELETE", base + "/files/link"},
		{"dot dot group", "GET", "/api/templates/%2e%2e/base/files"},
		{"upper-case group", "POST", "/api/templates/Lobby/base"},
	}
	for _, tc := range escapes {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.raw(tc.method, tc.path, []byte("planted"))
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("%s %s: %d, want 400: %s", tc.method, tc.path, resp.StatusCode, readAll(resp))
			}
			if strings.Contains(readAll(resp), "TOP-SECRET") {
				t.Fatal("the secret leaked")
			}
		})
	}
	if b, _ := os.ReadFile(secret); string(b) != "TOP-SECRET-CONTENT" {
		t.Fatalf("the secret was overwritten: %q", b)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(tplDir), "planted.txt")); err == nil {
		t.Fatal("a file was planted outside the templates folder")
	}
}

func zipOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write([]byte(body))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestTemplateExportImport(t *testing.T) {
	e := newEnv(t, func(c *master.Config) {
		c.ImportLimits.MaxFiles = 20
		c.ImportLimits.MaxBytes = 8 << 20
	})
	e.do("POST", "/api/templates/lobby/base", e.admin, "")
	e.raw("PUT", "/api/templates/lobby/base/files/server.properties", []byte("port=%PORT%\n"))
	e.raw("PUT", "/api/templates/lobby/base/files/plugins/a.jar", []byte{0xca, 0xfe})
	resp := e.raw("GET", "/api/templates/lobby/base/export", nil)
	archive, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/zip" {
		t.Fatalf("export: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if resp := e.raw("POST", "/api/templates/lobby/copy/import", archive); resp.StatusCode != http.StatusCreated {
		t.Fatalf("import: %d %s", resp.StatusCode, readAll(resp))
	}
	resp = e.raw("GET", "/api/templates/lobby/copy/files/plugins/a.jar", nil)
	if b, _ := io.ReadAll(resp.Body); !bytes.Equal(b, []byte{0xca, 0xfe}) {
		t.Fatalf("round trip: %v", b)
	}
	if resp := e.raw("POST", "/api/templates/lobby/copy/import", archive); resp.StatusCode != http.StatusConflict {
		t.Fatalf("import over a template: %d, want 409", resp.StatusCode)
	}
	if resp := e.raw("POST", "/api/templates/lobby/copy/import?replace=true", zipOf(t, map[string]string{"only.txt": "1"})); resp.StatusCode != http.StatusCreated {
		t.Fatalf("replace: %d", resp.StatusCode)
	}
	if files := decode[[]api.TemplateFile](t, e.do("GET", "/api/templates/lobby/copy/files", e.admin, "")); len(files) != 1 {
		t.Fatalf("after replace %+v", files)
	}

	many := map[string]string{}
	for i := 0; i < 21; i++ {
		many[strings.Repeat("f", i+1)] = "x"
	}
	bomb := zipOf(t, map[string]string{"zeros": strings.Repeat("\x00", 4<<20)})
	bad := []struct {
		name   string
		body   []byte
		status int
	}{
		{"not a zip", []byte("hello"), 400},
		{"escaping entry", zipOf(t, map[string]string{"../evil.txt": "x"}), 400},
		{"absolute entry", zipOf(t, map[string]string{"/etc/evil": "x"}), 400},
		{"backslash entry", zipOf(t, map[string]string{`..\evil`: "x"}), 400},
		{"too many entries", zipOf(t, many), 413},
		{"compression bomb", bomb, 413},
		{"too large", zipOf(t, map[string]string{"a": strings.Repeat("ab", 3<<20), "b": strings.Repeat("cd", 3<<20)}), 413},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.raw("POST", "/api/templates/lobby/bad/import", tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("%d, want %d: %s", resp.StatusCode, tc.status, readAll(resp))
			}
			if resp := e.raw("GET", "/api/templates/lobby/bad", nil); resp.StatusCode != 404 {
				t.Fatalf("a failed import left a template behind: %d", resp.StatusCode)
			}
		})
	}
}
