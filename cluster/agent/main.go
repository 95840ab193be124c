package agent

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/universe-orchestrator/universe/backup"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// Exit codes of Main.
const (
	ExitOK      = 0
	ExitError   = 1
	ExitUsage   = 2
	ExitRevoked = 3
)

// Binary is the name of the agent-only binary (cmd/universe-agent): next
// to "universe", "universe agent" runs it instead, for an agent of a
// fraction of the memory.
const Binary = "universe-agent"

// Main is "universe agent": flags, the credential (UNIVERSE_NODE_KEY or a
// 0600 --key-file, never a flag: flags show in process listings), then
// Run. supervisor and full run the supervisors of the built-in runtimes
// and of the others (docker).
func Main(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, version string, supervisor, full []string) int {
	fs := flag.NewFlagSet("universe agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	masterURL := fs.String("master", getenv("UNIVERSE_NATS_URL"), "the master's node address, nats://HOST:PORT (or tls://); or the NATS cluster's URLs, comma-separated (env UNIVERSE_NATS_URL, preferred: flags show in process listings)")
	fs.StringVar(masterURL, "nats-url", *masterURL, "the same as --master")
	cgroups := fs.String("cgroup-parent", envOrDefault(getenv("UNIVERSE_CGROUP_PARENT"), "auto"), "cgroup v2 directory for instance cgroups (ramMB, cpu limits): auto, off, or a path (env UNIVERSE_CGROUP_PARENT)")
	natsCreds := fs.String("nats-creds", getenv("UNIVERSE_NATS_CREDS"), "a NATS .creds file for an operator's cluster (env UNIVERSE_NATS_CREDS)")
	def := getenv("UNIVERSE_DATA")
	if def == "" {
		def = "./data"
	}
	data := fs.String("data", def, "this node's data directory")
	keyFile := fs.String("key-file", "", "file holding the node credential (mode 0600); else env UNIVERSE_NODE_KEY")
	lvl := getenv("UNIVERSE_LOG_LEVEL")
	if lvl == "" {
		lvl = "info"
	}
	targetsFile := fs.String("backup-targets", getenv("UNIVERSE_BACKUP_TARGETS"), "JSON file of S3 backup targets this node uploads its instances' backups to itself, mode 0600, as the master's (env UNIVERSE_BACKUP_TARGETS)")
	logLevel := fs.String("log-level", lvl, "debug, info, warn or error (env UNIVERSE_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "universe agent: unexpected argument %q\n", fs.Arg(0))
		return ExitUsage
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "universe agent: --log-level: %v\n", err)
		return ExitUsage
	}
	if *masterURL == "" {
		fmt.Fprintln(stderr, "universe agent: --master nats://HOST:PORT is required (the join command of \"node create\" has it)")
		return ExitUsage
	}
	cred := getenv("UNIVERSE_NODE_KEY")
	if *keyFile != "" {
		st, err := os.Stat(*keyFile)
		if err != nil {
			fmt.Fprintf(stderr, "universe agent: --key-file: %v\n", err)
			return ExitUsage
		}
		if st.Mode().Perm()&0o077 != 0 {
			fmt.Fprintf(stderr, "universe agent: --key-file %s is readable by others (mode %o): chmod 600 it\n", *keyFile, st.Mode().Perm())
			return ExitUsage
		}
		b, err := os.ReadFile(*keyFile)
		if err != nil {
			fmt.Fprintf(stderr, "universe agent: --key-file: %v\n", err)
			return ExitUsage
		}
		cred = strings.TrimSpace(string(b))
	}
	if cred == "" {
		fmt.Fprintln(stderr, "universe agent: no node credential: set UNIVERSE_NODE_KEY or --key-file (never a flag: flags show in process listings)")
		return ExitUsage
	}
	var targets map[string]backup.Target
	if *targetsFile != "" {
		var err error
		if targets, err = backup.LoadTargets(*targetsFile); err != nil {
			fmt.Fprintln(stderr, "universe agent:", err)
			return ExitUsage
		}
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	err := Run(ctx, Options{Master: *masterURL, Credential: cred, NATSCreds: *natsCreds, CgroupParent: *cgroups, DataDir: *data, Version: version, Logger: log,
		Supervisor: supervisor, FullSupervisor: full, BackupTargets: targets})
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, ErrRevoked):
		fmt.Fprintln(stderr, "universe agent:", err)
		return ExitRevoked
	default:
		fmt.Fprintln(stderr, "universe agent:", err)
		return ExitError
	}
}

// Sibling returns the path of the executable called name next to this one,
// or "" when there is none.
func Sibling(name string) string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return ""
	}
	p := filepath.Join(filepath.Dir(exe), name)
	if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
		return p
	}
	return ""
}

// Self is this executable.
func Self() string {
	exe, err := os.Executable()
	if err != nil {
		return os.Args[0]
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return os.Args[0]
	}
	return exe
}

func envOrDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
