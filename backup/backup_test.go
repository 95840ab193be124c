package backup_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/universe-orchestrator/universe/backup"
)

// entry describes one path of a tree as a restore must give it back.
type entry struct {
	Mode fs.FileMode
	Mod  time.Time
	Sum  string // files: SHA-256; links: their target
}

func describe(t *testing.T, dir string) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		e := entry{Mode: info.Mode()}
		switch {
		case info.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s := sha256.Sum256(b)
			e.Sum, e.Mod = hex.EncodeToString(s[:]), info.ModTime().Truncate(time.Second)
		case info.Mode()&fs.ModeSymlink != 0:
			e.Sum, _ = os.Readlink(p)
		case info.IsDir():
			e.Mod = info.ModTime().Truncate(time.Second)
		}
		out[rel] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func write(t *testing.T, dir, name, content string, mode fs.FileMode) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

// tree makes a folder with files, modes, links (one pointing out of the
// folder: kept as a link, not followed), a FIFO and ignored paths.
func tree(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "inst")
	write(t, dir, "server.properties", "motd=hi\n", 0o644)
	write(t, dir, "start.sh", "#!/bin/sh\necho hi\n", 0o755)
	write(t, dir, "world/level.dat", strings.Repeat("level", 10000), 0o600)
	write(t, dir, "world/region/r.0.0.mca", strings.Repeat("\x00\x01", 50000), 0o644)
	write(t, dir, "logs/latest.log", "noise", 0o644)
	write(t, dir, "logs/keep.log", "kept by negation", 0o644)
	write(t, dir, "cache/big.bin", "cached", 0o644)
	write(t, dir, backup.IgnoreFile, "logs/*\n!logs/keep.log\n", 0o644)
	if err := os.Symlink("world/level.dat", filepath.Join(dir, "level-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "outside")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "console.pipe"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(dir, "start.sh"), old, old); err != nil {
		t.Fatal(err)
	}
	return dir
}

func archive(t *testing.T, dir string, patterns ...string) ([]byte, backup.Stats) {
	t.Helper()
	ig, err := backup.NewIgnore(dir, patterns)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	st, err := backup.Archive(context.Background(), dir, &buf, ig)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(buf.Bytes())
	if hex.EncodeToString(s[:]) != st.SHA256 || int64(buf.Len()) != st.Bytes {
		t.Fatalf("stats say %d bytes %s; the stream was %d bytes %x", st.Bytes, st.SHA256, buf.Len(), s)
	}
	return buf.Bytes(), st
}

func opener(b []byte) backup.Opener {
	return func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}

func TestArchiveAndRestoreKeepEverything(t *testing.T) {
	src := tree(t)
	arch, st := archive(t, src, "cache/")
	if st.Skipped != 1 {
		t.Errorf("skipped %d entries, want 1 (the FIFO)", st.Skipped)
	}
	want := describe(t, src)
	for _, gone := range []string{"console.pipe", "logs/latest.log", "cache", "cache/big.bin"} {
		delete(want, gone)
	}
	dst := filepath.Join(t.TempDir(), "restored")
	n, err := backup.Restore(context.Background(), opener(arch), st.SHA256, dst, backup.RestoreOptions{Truncate: true})
	if err != nil {
		t.Fatal(err)
	}
	if n != st.Files {
		t.Errorf("restored %d entries, archived %d", n, st.Files)
	}
	got := describe(t, dst)
	if !equal(got, want) {
		t.Errorf("restored tree differs:\n got %v\nwant %v", got, want)
	}
	if l, _ := os.Readlink(filepath.Join(dst, "outside")); l != "/etc/passwd" {
		t.Errorf("link outside: %q", l)
	}
}

func equal(a, b map[string]entry) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || v.Mode != w.Mode || v.Sum != w.Sum || !v.Mod.Equal(w.Mod) {
			return false
		}
	}
	return true
}

func keys(m map[string]entry) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestRestoreTruncateAndOverlay(t *testing.T) {
	src := tree(t)
	arch, st := archive(t, src)
	for _, truncate := range []bool{true, false} {
		dst := filepath.Join(t.TempDir(), "inst")
		write(t, dst, "extra.txt", "made after the backup", 0o644)
		write(t, dst, "server.properties", "changed", 0o644)
		if _, err := backup.Restore(context.Background(), opener(arch), st.SHA256, dst, backup.RestoreOptions{Truncate: truncate}); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(filepath.Join(dst, "server.properties"))
		if string(b) != "motd=hi\n" {
			t.Errorf("truncate=%v: server.properties = %q", truncate, b)
		}
		_, err := os.Stat(filepath.Join(dst, "extra.txt"))
		if truncate != errors.Is(err, fs.ErrNotExist) {
			t.Errorf("truncate=%v: extra.txt there: %v", truncate, err == nil)
		}
		left, _ := filepath.Glob(filepath.Join(filepath.Dir(dst), ".inst.*"))
		if len(left) > 0 {
			t.Errorf("left behind: %v", left)
		}
	}
}

func TestTamperedArchiveWritesNothing(t *testing.T) {
	src := tree(t)
	arch, st := archive(t, src)
	bad := bytes.Clone(arch)
	bad[len(bad)/2] ^= 0xff
	dst := filepath.Join(t.TempDir(), "inst")
	write(t, dst, "mine.txt", "mine", 0o644)
	before := describe(t, dst)
	_, err := backup.Restore(context.Background(), opener(bad), st.SHA256, dst, backup.RestoreOptions{Truncate: true})
	if !errors.Is(err, backup.ErrChecksum) {
		t.Fatalf("restore of a tampered archive: %v, want the checksum refusal", err)
	}
	if after := describe(t, dst); !equal(before, after) {
		t.Errorf("the folder changed: %v -> %v", keys(before), keys(after))
	}
	// Changed between the check and the unpacking: refused as well.
	reads := 0
	flip := func(context.Context) (io.ReadCloser, error) {
		reads++
		if reads == 1 {
			return io.NopCloser(bytes.NewReader(arch)), nil
		}
		return io.NopCloser(bytes.NewReader(bad)), nil
	}
	if _, err := backup.Restore(context.Background(), flip, st.SHA256, dst, backup.RestoreOptions{Truncate: true}); err == nil {
		t.Fatal("an archive changed after its check was restored")
	}
	if after := describe(t, dst); !equal(before, after) {
		t.Errorf("the folder changed: %v -> %v", keys(before), keys(after))
	}
}

// craft makes a zstd tar of the given headers (content "x" for files).
func craft(t *testing.T, hdrs ...*tar.Header) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	enc, _ := zstd.NewWriter(&buf)
	tw := tar.NewWriter(enc)
	for _, h := range hdrs {
		if h.Typeflag == tar.TypeReg {
			h.Size = 1
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			_, _ = tw.Write([]byte("x"))
		}
	}
	_ = tw.Close()
	_ = enc.Close()
	s := sha256.Sum256(buf.Bytes())
	return buf.Bytes(), hex.EncodeToString(s[:])
}

func TestNoEntryWritesOutsideTheFolder(t *testing.T) {
	cases := map[string][]*tar.Header{
		"dot-dot":       {{Name: "../escaped", Typeflag: tar.TypeReg}},
		"deep dot-dot":  {{Name: "a/../../escaped", Typeflag: tar.TypeReg}},
		"absolute":      {{Name: "/tmp/escaped", Typeflag: tar.TypeReg}},
		"through link":  {{Name: "l", Typeflag: tar.TypeSymlink, Linkname: ".."}, {Name: "l/escaped", Typeflag: tar.TypeReg}},
		"through abs":   {{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "/tmp"}, {Name: "l/escaped", Typeflag: tar.TypeReg}},
		"link then dir": {{Name: "d", Typeflag: tar.TypeSymlink, Linkname: "../"}, {Name: "d/sub/", Typeflag: tar.TypeDir}, {Name: "d/sub/escaped", Typeflag: tar.TypeReg}},
	}
	for name, hdrs := range cases {
		t.Run(name, func(t *testing.T) {
			base := t.TempDir()
			dst := filepath.Join(base, "inst")
			write(t, dst, "mine.txt", "mine", 0o644)
			before := describe(t, dst)
			arch, sum := craft(t, append([]*tar.Header{{Name: "ok.txt", Typeflag: tar.TypeReg}}, hdrs...)...)
			_, err := backup.Restore(context.Background(), opener(arch), sum, dst, backup.RestoreOptions{Truncate: true})
			if err == nil {
				t.Fatal("restored an archive with an escaping entry")
			}
			for _, p := range []string{filepath.Join(base, "escaped"), "/tmp/escaped"} {
				if _, err := os.Lstat(p); err == nil {
					t.Errorf("%s written", p)
				}
			}
			if after := describe(t, dst); !equal(before, after) {
				t.Errorf("the folder changed: %v -> %v", keys(before), keys(after))
			}
		})
	}
}

func TestIgnoreFileMustBeRegular(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, backup.IgnoreFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := backup.NewIgnore(dir); err == nil {
		t.Error("a .universeignore link was followed")
	}
}

func TestLocalTargetLeavesNoPartialFile(t *testing.T) {
	dir := t.TempDir()
	l := backup.Local{Dir: dir}
	boom := errors.New("the archive failed")
	err := l.Put(context.Background(), backup.Key("i1", "b1"), io.MultiReader(strings.NewReader("part"), errReader{boom}))
	if !errors.Is(err, boom) {
		t.Fatalf("put: %v", err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "i1", "*"))
	if len(left) != 0 {
		t.Errorf("left: %v", left)
	}
	if err := l.Put(context.Background(), "../x", strings.NewReader("x")); err == nil {
		t.Error("a key outside the folder was taken")
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// Sweep removes the partial archives left by backups that stopped, not
// those of backups under way.
func TestSweepKeepsBackupsUnderWay(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"i1/dead.tar.zst.partial", "i1/live.tar.zst.partial", "i1/done.tar.zst"} {
		write(t, dir, f, "x", 0o600)
	}
	if n := (backup.Local{Dir: dir}).Sweep(map[string]bool{"live": true}); n != 1 {
		t.Errorf("swept %d", n)
	}
	for f, want := range map[string]bool{"i1/dead.tar.zst.partial": false, "i1/live.tar.zst.partial": true, "i1/done.tar.zst": true} {
		if _, err := os.Stat(filepath.Join(dir, f)); (err == nil) != want {
			t.Errorf("%s there: %v, want %v", f, err == nil, want)
		}
	}
}
