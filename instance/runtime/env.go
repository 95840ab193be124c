package runtime

import (
	"os"
	"strings"
)

// DefaultPath is the PATH of children when the parent has none.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// safeVars are the parent's variables a supervisor and an instance may
// see: where programs are, who and where they run, the locale, and how to
// reach the local Docker Engine and multiplexers (paths, never secrets).
// Everything else of the parent's (a node's credential, NATS passwords,
// UNIVERSE_TOKEN, cloud keys) stays with it.
var safeVars = map[string]bool{
	"PATH": true, "HOME": true, "USER": true, "LOGNAME": true, "SHELL": true,
	"LANG": true, "LANGUAGE": true, "TZ": true, "TERM": true, "TMPDIR": true,
	"DOCKER_HOST": true, "DOCKER_API_VERSION": true, "DOCKER_CERT_PATH": true, "DOCKER_TLS_VERIFY": true,
	"TMUX_TMPDIR": true, "SCREENDIR": true,
	"GOCOVERDIR": true, // coverage of tests that run this binary as a supervisor
}

// BaseEnv is the environment built for a supervisor or an instance from
// this process's own: only the variables in safeVars and the locale
// (LC_*), with a PATH even when this process has none. It never copies the
// whole environment.
func BaseEnv() []string {
	return baseEnv(os.Environ())
}

func baseEnv(parent []string) []string {
	env := make([]string, 0, 16)
	path := false
	for _, kv := range parent {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || !(safeVars[k] || strings.HasPrefix(k, "LC_")) {
			continue
		}
		path = path || k == "PATH"
		env = append(env, kv)
	}
	if !path {
		env = append(env, "PATH="+DefaultPath)
	}
	return env
}

// MergeEnv is base with over's variables added, a variable of over
// replacing base's of the same name (each name once: a shell that execs
// with duplicates may take either).
func MergeEnv(base, over []string) []string {
	set := make(map[string]bool, len(over))
	for _, kv := range over {
		k, _, _ := strings.Cut(kv, "=")
		set[k] = true
	}
	env := make([]string, 0, len(base)+len(over))
	for _, kv := range base {
		if k, _, _ := strings.Cut(kv, "="); !set[k] {
			env = append(env, kv)
		}
	}
	return append(env, over...)
}
