// Command universe-supervisor runs one instance's supervisor; the master
// starts it as "universe-supervisor supervise <state dir>" when it lies
// next to the master's binary (else the master runs its own binary in the
// same mode). It links only the supervisor, the runtimes and the log, so
// that the one process per instance stays small.
package main

import (
	"fmt"
	"os"

	"github.com/universe-orchestrator/universe/instance/supervisor"
)

func main() {
	supervisor.RunIfChild()
	fmt.Fprintln(os.Stderr, "universe-supervisor is started by the universe master, not by hand")
	os.Exit(2)
}
