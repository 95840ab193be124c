package template_test

import (
	"archive/zip"
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/instance/template"
)

type entry struct {
	name string
	data []byte
}

func zipOf(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: zip.Deflate})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestImportRefuses(t *testing.T) {
	zeros := make([]byte, 1<<20)
	many := make([]entry, 200)
	for i := range many {
		many[i] = entry{name: "z/" + strings.Repeat("a", 1+i%50) + string(rune('a'+i%26)) + string(rune('a'+i/26)), data: zeros}
	}
	for _, tc := range []struct {
		name    string
		archive []byte
		code    string
	}{
		{"many small entries of zeros", zipOf(t, many...), universe.ETOOLARGE},
		{"one entry of zeros", zipOf(t, entry{"z", make([]byte, 8<<20)}), universe.ETOOLARGE},
		{"a duplicated entry", zipOf(t, entry{"a.txt", []byte("1")}, entry{"a.txt", []byte("2")}), universe.EINVALID},
		{"a duplicated entry, spelt otherwise", zipOf(t, entry{"d/a.txt", []byte("1")}, entry{"d//a.txt", []byte("2")}), universe.EINVALID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t, nil)
			_, err := s.Import("g", "n", bytes.NewReader(tc.archive), int64(len(tc.archive)), template.ImportLimits{}, false)
			if universe.ErrorCode(err) != tc.code {
				t.Fatalf("import: %v, want %s", err, tc.code)
			}
			if _, err := s.Get("g", "n"); universe.ErrorCode(err) != universe.ENOTFOUND {
				t.Errorf("a refused import left a template: %v", err)
			}
		})
	}
	// The same archives below the ratio are fine.
	s := newStore(t, nil)
	ok := zipOf(t, entry{"a.txt", []byte("1")}, entry{"d/b.txt", []byte("2")})
	res, err := s.Import("g", "n", bytes.NewReader(ok), int64(len(ok)), template.ImportLimits{}, false)
	if err != nil || res.Files != 2 {
		t.Fatalf("import: %+v %v", res, err)
	}
}

// An import that fills the disk is the server's failure (the disk is full:
// 507), not the archive's.
func TestImportOnFullDisk(t *testing.T) {
	dir := smallDisk(t, 1<<20)
	s, err := template.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	data := make([]byte, 2<<20)
	for i := range data {
		data[i] = byte(i*7 + i/251) // barely compressible
	}
	archive := zipOf(t, entry{"big.bin", data})
	_, err = s.Import("g", "n", bytes.NewReader(archive), int64(len(archive)), template.ImportLimits{}, false)
	if universe.ErrorCode(err) != universe.ENOSPACE || universe.ErrorMessage(err) != universe.DiskFullMessage {
		t.Fatalf("import on a full disk: %v (%s), want the disk-full error", err, universe.ErrorCode(err))
	}
}

// smallDisk mounts a tmpfs of size bytes for the test (root only).
func smallDisk(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a small file system needs root (mount -t tmpfs)")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.Itoa(size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}
