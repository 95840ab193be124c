package supervisor

import (
	"os"
	"path/filepath"
	"testing"
)

// A supervisor that exits removes its socket, but not the one a newer
// supervisor of the same state directory has bound there meanwhile.
func TestRemoveSocketLeavesASuccessorsSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, SocketName)
	old, err := listen(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	next, err := listen(dir) // the successor: removes the old file, binds its own
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	old.removeSocket()
	_ = old.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("the successor's socket is gone: %v", err)
	}
	c, err := dial(dir, 0)
	if err != nil {
		t.Fatalf("the successor is unreachable: %v", err)
	}
	_ = c.Close()
	next.removeSocket()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Fatalf("its own socket stays: %v", err)
	}
}
