package master_test

import (
	"archive/zip"
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/universe-orchestrator/universe/api"
)

// File actions on an instance's folder, as a file manager needs them: a
// new folder, a rename or move, a zip unpacked (into a folder, nothing
// changed when an entry is in the way), none of them out of the folder.
func TestInstanceFileActions(t *testing.T) {
	e := newEnv(t, nil)
	e.putConfig("fm", map[string]any{"command": "exec sleep 60", "stopTimeoutSeconds": 1, "availablePorts": map[string]int{"min": 21740, "max": 21749}})
	in := e.create("fm")
	base := "/api/instances/" + in.ID + "/files/"
	act := func(p, body string, want int) string {
		t.Helper()
		r := e.do("POST", base+p, e.admin, body)
		b := readAll(r)
		if r.StatusCode != want {
			t.Fatalf("POST %s %s: %d %s (want %d)", p, body, r.StatusCode, b, want)
		}
		return b
	}
	act("world/region", `{"action":"mkdir"}`, 200)
	act("world/region", `{"action":"mkdir"}`, 409)
	if r := e.do("PUT", base+"world/level.dat", e.admin, "level"); r.StatusCode != 204 {
		t.Fatal(r.StatusCode)
	}
	act("world/level.dat", `{"action":"rename","to":"backup/level.old"}`, 200)
	if r := e.do("GET", base+"backup/level.old", e.admin, ""); r.StatusCode != 200 || readAll(r) != "level" {
		t.Fatal("the moved file is not at its new path")
	}
	act("backup", `{"action":"rename","to":"backup/inner"}`, 400)
	act("backup/level.old", `{"action":"rename","to":"../escape"}`, 400)
	act("nope", `{"action":"rename","to":"x"}`, 404)
	act("x", `{"action":"chmod"}`, 400)
	act("x", `{"action":"mkdir","mode":"777"}`, 400) // unknown field

	// A zip, unpacked into a folder; again, its entries are in the way.
	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	for name, body := range map[string]string{"plugins/a.jar": "jar", "config.yml": "x: 1\n"} {
		w, _ := zw.Create(name)
		_, _ = w.Write([]byte(body))
	}
	_ = zw.Close()
	if r := e.do("PUT", base+"upload.zip", e.admin, zb.String()); r.StatusCode != 204 {
		t.Fatal(r.StatusCode)
	}
	if out := act("upload.zip", `{"action":"unzip","to":"server"}`, 200); !strings.Contains(out, `"files":2`) {
		t.Fatalf("unzip: %s", out)
	}
	if r := e.do("GET", base+"server/plugins/a.jar", e.admin, ""); r.StatusCode != 200 || readAll(r) != "jar" {
		t.Fatal("the unzipped file is not there")
	}
	act("upload.zip", `{"action":"unzip","to":"server"}`, 409)
	act("backup/level.old", `{"action":"unzip"}`, 400) // not a zip
	dir, _ := e.m.Instances().WorkDir(in.ID)
	left, _ := filepath.Glob(filepath.Join(dir, ".universe-unzip-*"))
	if len(left) > 0 {
		t.Fatalf("staging folders left behind: %v", left)
	}
	if _, err := os.Stat(filepath.Join(dir, "server", "config.yml")); err != nil {
		t.Fatal(err)
	}
	list := decode[[]api.TemplateFile](t, e.do("GET", "/api/instances/"+in.ID+"/files", e.admin, ""))
	if len(list) == 0 {
		t.Fatal("empty listing")
	}
	if r := e.do("POST", base+"x", e.public, `{"action":"mkdir"}`); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("PUBLIC key: %d", r.StatusCode)
	}
}
