package master_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/universe-orchestrator/universe/instance/runtime/docker"
	"github.com/universe-orchestrator/universe/instance/supervisor"
)

// TestMain runs the tests in a fresh working directory, so the relative
// defaults (./templates, ./configuration) never land in the source tree.
func TestMain(m *testing.M) {
	supervisor.RunIfChild(docker.New()) // instances' supervisors are this test binary
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
	if code == 0 && !reportUndocumented() {
		code = 1
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}
