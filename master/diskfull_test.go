package master_test

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/universe-orchestrator/universe/master"
)

// fullDisk mounts a small tmpfs for a test (root only) and returns it with
// a function that fills it to the last byte and one that frees it again.
func fullDisk(t *testing.T, size int) (dir string, fill, free func()) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("a full file system needs root (mount -t tmpfs)")
	}
	dir = t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.Itoa(size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	filler := filepath.Join(dir, "filler")
	fill = func() {
		f, err := os.OpenFile(filler, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		buf := make([]byte, 4096)
		for {
			if _, err := f.Write(buf); err != nil {
				break
			}
		}
		for _, n := range []int{512, 64, 1} {
			for {
				if _, err := f.Write(buf[:n]); err != nil {
					break
				}
			}
		}
	}
	free = func() { _ = os.Remove(filler) }
	return dir, fill, free
}

// A write on a full disk answers 507 saying so, never 500; nothing is half
// written: once there is room again, the same writes succeed and what
// failed is not there.
func TestFullDiskAnswers507(t *testing.T) {
	dir, fill, free := fullDisk(t, 4<<20)
	e := newEnv(t, func(c *master.Config) {
		c.DataDir = filepath.Join(dir, "data")
		c.TemplatesDir = filepath.Join(dir, "templates")
	})
	if r := e.do("POST", "/api/templates/lobby/base", e.admin, ""); r.StatusCode != http.StatusCreated {
		t.Fatalf("create a template: %d %s", r.StatusCode, readAll(r))
	}
	e.putConfig("small", map[string]any{"command": "exec sleep 60", "stopTimeoutSeconds": 1, "availablePorts": map[string]int{"min": 21660, "max": 21669}})
	fill()
	big := strings.Repeat("x", 64<<10)
	writes := []struct{ method, path, body string }{
		{"PUT", "/api/templates/lobby/base/files/big.txt", big},
		{"PUT", "/api/configurations/full", `{"command":"true","properties":{"pad":"` + big + `"}}`},
		{"POST", "/api/keys", `{"label":"full-1","scope":"PUBLIC"}`},
		{"POST", "/api/instances", `{"configurationName":"small"}`},
	}
	for _, w := range writes {
		got := 0
		// bbolt may still have free pages in its file: write until the
		// disk says no (bounded).
		for i := 0; i < 10; i++ {
			body := w.body
			if w.method == "POST" {
				body = strings.Replace(body, "full-1", "full-"+strconv.Itoa(i), 1)
			}
			r := e.do(w.method, w.path, e.admin, body)
			got = r.StatusCode
			msg := readAll(r)
			if got == http.StatusInternalServerError {
				t.Fatalf("%s %s on a full disk: 500 %s", w.method, w.path, msg)
			}
			if got == http.StatusInsufficientStorage {
				if !strings.Contains(msg, "disk") || !strings.Contains(msg, "nothing was written") {
					t.Fatalf("%s %s: 507 %s", w.method, w.path, msg)
				}
				break
			}
		}
		if got != http.StatusInsufficientStorage {
			t.Fatalf("%s %s never answered 507 on a full disk (last %d)", w.method, w.path, got)
		}
	}
	// Nothing half written: the template file is absent, not truncated.
	if r := e.do("GET", "/api/templates/lobby/base/files/big.txt", e.admin, ""); r.StatusCode != http.StatusNotFound {
		t.Fatalf("the file whose write failed: %d", r.StatusCode)
	}
	free()
	for _, w := range writes[:2] {
		if r := e.do(w.method, w.path, e.admin, w.body); r.StatusCode/100 != 2 {
			t.Fatalf("%s %s with room again: %d %s", w.method, w.path, r.StatusCode, readAll(r))
		}
	}
	if r := e.do("GET", "/api/templates/lobby/base/files/big.txt", e.admin, ""); r.StatusCode != http.StatusOK || !bytes.Equal([]byte(readAll(r)), []byte(big)) {
		t.Fatal("the file written with room again is not whole")
	}
}
