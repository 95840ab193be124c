package instance

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	goruntime "runtime"
	"runtime/debug"
	"strings"
	"time"
)

// goRunExe matches the paths "go run" gives the binary it builds and runs:
// since Go 1.24 it keeps it in the build cache, $GOCACHE/xx/<hash>-d/<name>;
// before, $WORK/bNNN/exe/<name>, $WORK a go-build directory under TMPDIR.
var goRunExe = regexp.MustCompile(`(/[0-9a-f]{2}/[0-9a-f]{64}-d|/go-build[0-9]+/b[0-9]+/exe)/[^/]+$`)

// buildTimeout bounds building the supervisor from source: with the build
// cache "go run" has just filled, it is a link of a few packages.
const buildTimeout = time.Minute

// FromSource builds the small supervisor binary (SupervisorBinary) into
// dir when this executable is one "go run" built, so that supervisors stay
// small in that layout too: the whole universe binary, run as a
// supervisor, carries every package's start-up (NATS, the Docker client,
// S3, Raft) into each of them. It returns the binary's path, or "" and why
// not: not run by "go run", no Go command, or a build that failed (the
// caller then runs its own binary as the supervisor, as before).
//
// The build runs in the working directory (where "go run ./cmd/universe"
// is typed), of the package beside this one's main package, with only the
// Go toolchain's variables of this process's environment; it replaces an
// earlier build atomically, so supervisors still running one keep it.
func FromSource(dir string) (string, error) {
	exe := selfBinary()
	if !goRunExe.MatchString(filepath.ToSlash(exe)) {
		return "", fmt.Errorf("not started by go run")
	}
	info, ok := debug.ReadBuildInfo()
	if !ok || info.Main.Path == "" || !strings.HasPrefix(info.Path, info.Main.Path) {
		return "", fmt.Errorf("no module information in this binary")
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		goCmd = filepath.Join(goruntime.GOROOT(), "bin", "go")
		if st, err := os.Stat(goCmd); err != nil || !st.Mode().IsRegular() {
			return "", fmt.Errorf("no go command on PATH")
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(dir, SupervisorBinary)
	tmp := out + ".new"
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, goCmd, "build", "-o", tmp, info.Main.Path+"/cmd/"+SupervisorBinary)
	cmd.Env = goEnv(os.Environ())
	if b, err := cmd.CombinedOutput(); err != nil {
		_ = os.Remove(tmp)
		msg := strings.TrimSpace(string(b))
		if len(msg) > 300 {
			msg = msg[:300] + "…"
		}
		return "", fmt.Errorf("go build %s/cmd/%s: %v: %s", info.Main.Path, SupervisorBinary, err, msg)
	}
	if err := os.Rename(tmp, out); err != nil {
		_ = os.Remove(tmp)
		return "", err
	}
	return out, nil
}

// goVars are the variables of this process's environment a build may
// see: the go command's own and where it finds things. Nothing else of the
// master's environment reaches the build.
var goVars = map[string]bool{"PATH": true, "HOME": true, "TMPDIR": true, "XDG_CACHE_HOME": true,
	"XDG_CONFIG_HOME": true, "CC": true, "CXX": true, "CGO_ENABLED": true, "CGO_CFLAGS": true, "CGO_LDFLAGS": true,
	"GOROOT": true, "GOPATH": true, "GOCACHE": true, "GOMODCACHE": true, "GOFLAGS": true, "GOPROXY": true,
	"GOPRIVATE": true, "GONOPROXY": true, "GONOSUMDB": true, "GOSUMDB": true, "GOTOOLCHAIN": true,
	"GOENV": true, "GOINSECURE": true, "GOVCS": true, "GOEXPERIMENT": true, "GOAMD64": true, "GOARM64": true,
	"GOTMPDIR": true, "GOWORK": true, "GOTELEMETRY": true, "GOTELEMETRYDIR": true, "GOOS": true, "GOARCH": true}

func goEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		if k, _, ok := strings.Cut(kv, "="); ok && goVars[k] {
			out = append(out, kv)
		}
	}
	return out
}
