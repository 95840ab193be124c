// Command universe-agent is "universe agent" alone: a node of the cluster,
// in a binary that links only the agent, the supervisor and the built-in
// runtimes (10 MiB of RSS idle against 21 for the whole universe binary).
// "universe agent" runs it when it lies next to it. The supervisors of
// its instances run universe-supervisor when it lies next to it (else
// this binary), and those of docker instances run "universe" (next to
// it), which links the Docker client.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/universe-orchestrator/universe/cluster/agent"
	"github.com/universe-orchestrator/universe/instance/supervisor"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	supervisor.RunIfChild()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	full := []string{agent.Self()}
	if u := agent.Sibling("universe"); u != "" {
		full = []string{u}
	}
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "agent" {
		args = args[1:] // "universe-agent agent ...", as "universe agent ..." execs it
	}
	code := agent.Main(ctx, args, os.Getenv, os.Stderr, version, nil, full)
	stop()
	os.Exit(code)
}
