package storage

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/universe-orchestrator/universe/api"
)

// A Derived database (a cluster master's, rebuilt from the Raft log) is
// trusted after a clean close, after its process died during this boot,
// and when it was never written without fsync; a file left open by a
// boot that is gone is set aside, not trusted.
func TestDerivedTrustsOnlyWhatTheMachineKept(t *testing.T) {
	if bootID() == "" {
		t.Skip("no boot id on this machine")
	}
	dir := t.TempDir()
	marker := filepath.Join(dir, syncMarker)
	open := func() *DB {
		t.Helper()
		db, err := Open(dir, Options{Derived: true})
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	has := func(db *DB) bool {
		t.Helper()
		_, err := db.GetConfiguration("a")
		return err == nil
	}

	// Written with fsync first (a single master's data): no marker.
	plain, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.PutConfiguration(api.Configuration{Name: "a", Command: "true"}); err != nil {
		t.Fatal(err)
	}
	_ = plain.Close()
	db := open()
	if db.Rebuilt != "" || !has(db) {
		t.Fatalf("a file written with fsync was not trusted (rebuilt %q)", db.Rebuilt)
	}
	if b, _ := os.ReadFile(marker); string(b) != bootID()+" open\n" {
		t.Fatalf("marker while open: %q", b)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(marker); !strings.HasSuffix(string(b), " clean\n") {
		t.Fatalf("marker after a clean close: %q", b)
	}
	db = open()
	if db.Rebuilt != "" || !has(db) {
		t.Fatal("not trusted after a clean close")
	}
	_ = db.Close()

	// Killed during this boot: what it wrote is in the page cache.
	_ = os.WriteFile(marker, []byte(bootID()+" open\n"), 0o600)
	db = open()
	if db.Rebuilt != "" || !has(db) {
		t.Fatal("not trusted after its process died during this boot")
	}
	_ = db.Close()

	// Left open by another boot: set aside, started empty.
	_ = os.WriteFile(marker, []byte("another-boot open\n"), 0o600)
	db = open()
	defer db.Close()
	if db.Rebuilt == "" || has(db) {
		t.Fatalf("a file left open by another boot was trusted (rebuilt %q)", db.Rebuilt)
	}
	if _, err := os.Stat(db.Rebuilt); err != nil {
		t.Fatalf("the file set aside is not there: %v", err)
	}
}
