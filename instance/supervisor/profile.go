package supervisor

import (
	"bytes"
	"runtime/pprof"
	"sync"
	"time"

	universe "github.com/universe-orchestrator/universe"
)

// Profiles are the names of the Go profiles a supervisor serves: "profile"
// is its CPU profile over some seconds, the others are runtime/pprof's
// named profiles at the moment they are asked for. Every one is the gzipped
// protobuf `go tool pprof` reads.
var Profiles = []string{"profile", "heap", "allocs", "goroutine", "threadcreate", "block", "mutex"}

// MaxProfileSeconds bounds a CPU profile's duration.
const MaxProfileSeconds = 60

// maxProfile bounds a profile's size: a supervisor's are kilobytes; this
// also keeps one within a NATS message from an agent node.
const maxProfile = 512 << 10

// cpuProfiling allows one CPU profile at a time (the runtime allows one).
var cpuProfiling sync.Mutex

// ValidProfile checks a profile request: a known name, and for "profile"
// 1 to MaxProfileSeconds seconds. Errors: ENOTFOUND, EINVALID.
func ValidProfile(name string, seconds int) error {
	known := false
	for _, p := range Profiles {
		known = known || p == name
	}
	switch {
	case !known:
		return universe.Errorf(universe.ENOTFOUND, "no profile %q (one of profile, heap, allocs, goroutine, threadcreate, block, mutex)", name)
	case name == "profile" && (seconds < 1 || seconds > MaxProfileSeconds):
		return universe.Errorf(universe.EINVALID, "seconds must be 1 to %d", MaxProfileSeconds)
	}
	return nil
}

// writeProfile takes profile name of this process.
func writeProfile(name string, seconds int) ([]byte, error) {
	if err := ValidProfile(name, seconds); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if name == "profile" {
		if !cpuProfiling.TryLock() {
			return nil, universe.Errorf(universe.ECONFLICT, "a CPU profile of this supervisor is being taken")
		}
		defer cpuProfiling.Unlock()
		if err := pprof.StartCPUProfile(&buf); err != nil {
			return nil, universe.Errorf(universe.ECONFLICT, "a CPU profile of this supervisor is being taken")
		}
		time.Sleep(time.Duration(seconds) * time.Second)
		pprof.StopCPUProfile()
	} else if err := pprof.Lookup(name).WriteTo(&buf, 0); err != nil {
		return nil, universe.Errorf(universe.EINTERNAL, "profile %s: %v", name, err)
	}
	if buf.Len() > maxProfile {
		return nil, universe.Errorf(universe.EINTERNAL, "the %s profile is %d bytes, over the %d a supervisor sends", name, buf.Len(), maxProfile)
	}
	return buf.Bytes(), nil
}
