// Package runtime starts instance processes. A Runtime turns a Spec into a
// running Process whose output arrives line by line. Runtimes run inside an
// instance's supervisor (package supervisor), which logs the output; the
// master only asks whether a runtime is available here. The "process"
// runtime needs no other program; "tmux" and "screen" need theirs.
package runtime

import (
	"syscall"

	universe "github.com/universe-orchestrator/universe"
)

// MaxLine is the longest line handed out; longer lines are split into
// pieces of at most MaxLine bytes, each but the last ending in SplitMarker.
const MaxLine = 64 << 10

// SplitMarker ends every piece of a split line but the last.
const SplitMarker = " [line split: continues]"

// Spec is what to start.
type Spec struct {
	Dir     string   // working directory
	Command string   // run through /bin/sh -c
	Env     []string // the whole environment, KEY=value
	// Output receives the lines of stdout or stderr (without newlines), in
	// order per stream. It is called from the runtime's reader goroutines
	// and must not block for long: the process waits meanwhile.
	Output func(stream string, lines []string)
	// Admit, when set, is asked before the lines of each read are made
	// into strings: of n complete lines it returns how many may be kept
	// (the first ones); the rest are dropped without being copied (the
	// line-rate throttle, counted in the log).
	Admit func(n int) int
	// Name names the process for runtimes that show it (the tmux or screen
	// session), StateDir is a private directory for the runtime's files.
	Name     string
	StateDir string
	// CgroupFD, when > 0, is an open cgroup v2 directory the process starts
	// in (it is never moved in after it started). Cgroup is its path, for
	// runtimes whose process is not our child: they join it before the
	// command starts.
	CgroupFD int
	Cgroup   string
	// Subreaper says this process is the subreaper of what the command
	// spawns (Subreaper was called): the process runtime then kills every
	// descendant when the command ends, those that left its process group
	// too, and reaps the orphans re-parented here meanwhile.
	Subreaper bool
	// Container is what a container runtime ("docker") needs besides the
	// above; nil for the others.
	Container *ContainerSpec `json:"container,omitempty"`
}

// ContainerSpec describes an instance's container. Command, Env and Dir of
// the Spec apply inside it: Command (when not empty) is split into words
// as a shell would and replaces the image's command; Env is the whole
// environment; Dir is mounted at WorkDir, which is the working directory.
type ContainerSpec struct {
	Name        string            `json:"name"`   // the container's name
	Image       string            `json:"image"`  // the image reference
	Labels      map[string]string `json:"labels"` // labels of the container
	WorkDir     string            `json:"workDir"`
	User        string            `json:"user,omitempty"`
	Mounts      []Mount           `json:"mounts,omitempty"`
	NetworkMode string            `json:"networkMode,omitempty"`
	CapAdd      []string          `json:"capAdd,omitempty"` // every other capability is dropped
	PullPolicy  string            `json:"pullPolicy"`       // never, missing or always
	Ports       []Port            `json:"ports,omitempty"`  // published under the same number
	MemoryMB    int               `json:"memoryMB,omitempty"`
	CPU         int               `json:"cpu,omitempty"` // 100 = one core
	ExtraHosts  []string          `json:"extraHosts,omitempty"`
}

// Mount is a bind mount of a container.
type Mount struct {
	Host      string `json:"host"`
	Container string `json:"container"`
	ReadOnly  bool   `json:"readOnly,omitempty"`
}

// Port is a port published by a container.
type Port struct {
	Port     int    `json:"port"`
	Protocol string `json:"protocol"` // tcp or udp
}

// ExitReasoner is a Process that can say why it exited beyond its code
// (a container killed for its memory limit).
type ExitReasoner interface {
	ExitReason() string
}

// Process is a started process and everything it spawned.
type Process interface {
	// Pid is the process id of the process (the leader of its group).
	Pid() int
	// WriteLine writes line and a newline to its stdin. Errors: ECONFLICT
	// when it has exited or closed its input, EUNAVAILABLE when it has not
	// read its input for a while.
	WriteLine(line string) error
	// Signal sends sig to its whole process group.
	Signal(sig syscall.Signal) error
	// Done is closed when it has exited and its output has been read.
	Done() <-chan struct{}
	// ExitCode is its exit status after Done: the exit code, or 128+n when
	// killed by signal n.
	ExitCode() int
}

// Runtime starts processes of one kind.
type Runtime interface {
	// Name is the runtime key of configurations ("process").
	Name() string
	// Available says why the runtime cannot be used here (a missing
	// program), or nil.
	Available() error
	// Start starts spec. The process runs until it exits or is signalled.
	Start(spec Spec) (Process, error)
}

// Builtin returns every runtime this binary has.
func Builtin() []Runtime {
	return []Runtime{ProcessRuntime{}, NewTmux(), NewScreen()}
}

// ByName returns the built-in runtime called name. Errors: EINVALID.
func ByName(name string) (Runtime, error) {
	for _, r := range Builtin() {
		if r.Name() == name {
			return r, nil
		}
	}
	return nil, universe.Errorf(universe.EINVALID, "unknown runtime %q", name)
}
