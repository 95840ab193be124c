package supervisor

import (
	"os/exec"

	"github.com/universe-orchestrator/universe/instance/runtime"
)

// reap collects the exit of a supervisor the master started, without a
// thread of its own (runtime.WaitPoll): cmd.Wait would park an OS thread
// in waitid for as long as the supervisor runs (one per instance). The
// pipes os/exec would close in Wait are closed by the caller. The caller
// must not use cmd.Process once reap runs: it is released.
func reap(cmd *exec.Cmd) {
	_, _ = runtime.WaitPoll(cmd.Process)
}
