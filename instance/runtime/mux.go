package runtime

import (
	universe "github.com/universe-orchestrator/universe"
)

// muxRuntime runs the command inside a terminal multiplexer session (tmux or
// screen), so that operators can attach to it.
type muxRuntime struct {
	name string
}

// NewTmux returns the tmux runtime.
func NewTmux() Runtime { return &muxRuntime{name: "tmux"} }

// NewScreen returns the screen runtime.
func NewScreen() Runtime { return &muxRuntime{name: "screen"} }

func (r *muxRuntime) Name() string { return r.name }

func (r *muxRuntime) Available() error {
	return universe.Errorf(universe.EINVALID, "runtime %s is not supported yet", r.name)
}

func (r *muxRuntime) Start(spec Spec) (Process, error) {
	return nil, r.Available()
}
