package master_test

import (
	"fmt"
	"os"
	"testing"
)

// TestMain runs the tests in a fresh working directory, so the relative
// defaults (./templates, ./configuration) never land in the source tree.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "universe-master-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := os.Chdir(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}
