// Command universe is the Universe control plane's binary: the master
// (`universe master`), the command-line client of a master (`universe
// instance list`, ...; cli*.go), offline key management against a data
// directory (`universe key ... --data DIR`), and its version.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/console"
	"github.com/universe-orchestrator/universe/instance/runtime/docker"
	"github.com/universe-orchestrator/universe/instance/supervisor"
	"github.com/universe-orchestrator/universe/master"
	"github.com/universe-orchestrator/universe/master/auth"
	"github.com/universe-orchestrator/universe/storage"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = ""

func main() {
	supervisor.RunIfChild(docker.New()) // the master re-executes this binary as each instance's supervisor
	ctx, stop := signalContext()
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// signalContext ends on SIGINT or SIGTERM: the master stops gracefully.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

const usage = `Universe: a control plane for fleets of long-running processes.

Usage:
  universe master [flags]                      run the master (REST API on :7000)
  universe agent --master nats://HOST:PORT --data DIR
                                               run a node of the cluster (credential in
                                               UNIVERSE_NODE_KEY or --key-file)

  universe status                              ping the master, show its node
  universe auth status|verify                  who the token is, its rate-limit headroom
  universe key create|list|revoke              API keys (add --data DIR to work offline,
                                               on a data directory, with no master running)
  universe user create NAME [--admin] --data DIR
                                               a user, offline (the password from the terminal
                                               or stdin; the master's console: user create)
  universe user list|info|create|passwd|disable|enable|delete
                                               users, on a running master (admins)
  universe grant add|list|revoke               a member's rights on an instance or configuration
  universe login [NAME]                        sign in as a user: saves a key of theirs in the
                                               config file (0600) for the commands below
  universe instance list|create|info|start|stop|restart|kill|delete|exec|logs|files|stats|pprof
  universe config list|show|apply|delete
  universe node list|info|create|drain|undrain|revoke|delete
  universe cluster status|join|leave           the masters of a cluster (--ha-* flags of master)
  universe template list|push|pull|export|import|delete
  universe backup create|list|info|download|restore|delete|lock|unlock
  universe schedule list|create|info|enable|disable|run|runs|delete
  universe events [-f]                         the event log (follow it with -f)
  universe webhook create|list|delete|deliveries
  universe audit [--limit N]                   who changed what, newest first
  universe console                             the master's console, remotely
  universe completion bash|zsh|fish            shell completion
  universe version                             print the version

The remote commands reach UNIVERSE_URL (default http://localhost:7000) with
the token in UNIVERSE_TOKEN (or --token, or "token = ..." in
~/.config/universe/config, which must be 0600). They print tables, or JSON
with -o json. Exit codes: 0 ok, 1 error, 2 usage, 3 unauthorized, 4 rate
limited. Add --help to any command for its flags.
`

// run is main without the process: tests call it like main does.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	args = globalFlagsLast(args)
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "master":
		return runMaster(ctx, args[1:], getenv, stdin, stdout, stderr)
	case "agent":
		return runAgent(ctx, args[1:], getenv, stderr)
	case "version", "--version", "-version", "-v":
		if slices.Contains(args, "json") && (slices.Contains(args, "-o") || slices.Contains(args, "--o")) || slices.Contains(args, "-o=json") || slices.Contains(args, "--o=json") {
			b, _ := json.Marshal(map[string]string{"version": versionString()})
			fmt.Fprintln(stdout, string(b))
			return exitOK
		}
		fmt.Fprintln(stdout, "universe "+versionString())
		return exitOK
	case "help", "--help", "-help", "-h":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	if code, ok := runCLI(cliEnv{ctx: ctx, getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}, args); ok {
		return code
	}
	fmt.Fprintf(stderr, "universe: unknown command %q\n\n%s", args[0], usage)
	return exitUsage
}

// globalFlagsLast moves the remote commands' connection flags given before
// the command ("universe --token X status") behind it, where each command
// parses them (its flags may come anywhere after it).
func globalFlagsLast(args []string) []string {
	var lead []string
	i := 0
	for i < len(args) {
		a := args[i]
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || !(name == "token" || name == "url" || name == "o" || name == "config") {
			break
		}
		lead = append(lead, a)
		i++
		if !hasValue && i < len(args) {
			lead = append(lead, args[i])
			i++
		}
	}
	if len(lead) == 0 || i == len(args) {
		return args
	}
	return append(append([]string{}, args[i:]...), lead...)
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// logLevelFlag defines --log-level (env UNIVERSE_LOG_LEVEL).
func logLevelFlag(fs *flag.FlagSet, getenv func(string) string) *string {
	return fs.String("log-level", envOr(getenv, "UNIVERSE_LOG_LEVEL", "info"), "debug, info, warn or error (env UNIVERSE_LOG_LEVEL)")
}

// parseFlags parses args into fs; ok is false when the command must end
// with code (--help: 0; a bad flag: usage).
func parseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if _, err := parseInterleaved(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	return 0, true
}

// parseLevel parses a --log-level value, saying what is wrong on stderr.
func parseLevel(s, cmd string, stderr io.Writer) (slog.Level, bool) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(s)); err != nil {
		fmt.Fprintf(stderr, "%s: --log-level: %v\n", cmd, err)
		return level, false
	}
	return level, true
}

// envOr returns the environment variable name, or def when it is unset.
func envOr(getenv func(string) string, name, def string) string {
	if v := getenv(name); v != "" {
		return v
	}
	return def
}

func runMaster(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	def := master.DefaultConfig()
	fs := flag.NewFlagSet("universe master", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", envOr(getenv, "UNIVERSE_ADDR", def.Addr), "listen address (env UNIVERSE_ADDR)")
	data := fs.String("data", envOr(getenv, "UNIVERSE_DATA", def.DataDir), "data directory: bbolt file, console history (env UNIVERSE_DATA)")
	allow := fs.String("allow-cidr", getenv("UNIVERSE_ALLOW_CIDR"), "comma-separated networks allowed to connect; empty = all (env UNIVERSE_ALLOW_CIDR)")
	proxies := fs.String("trusted-proxies", getenv("UNIVERSE_TRUSTED_PROXIES"), "comma-separated proxy IPs/CIDRs whose X-Forwarded-For is honoured (env UNIVERSE_TRUSTED_PROXIES)")
	pubRate := fs.String("public-rate-limit", envOr(getenv, "UNIVERSE_PUBLIC_RATE_LIMIT", def.PublicRate.String()), "calls per window for each PUBLIC key (env UNIVERSE_PUBLIC_RATE_LIMIT)")
	failRate := fs.String("auth-failure-limit", envOr(getenv, "UNIVERSE_AUTH_FAILURE_LIMIT", def.AuthFailureRate.String()), "failed authentications per client address (env UNIVERSE_AUTH_FAILURE_LIMIT)")
	cert := fs.String("tls-cert", getenv("UNIVERSE_TLS_CERT"), "TLS certificate file (env UNIVERSE_TLS_CERT)")
	key := fs.String("tls-key", getenv("UNIVERSE_TLS_KEY"), "TLS key file (env UNIVERSE_TLS_KEY)")
	shutdown := fs.Duration("shutdown-timeout", def.ShutdownTimeout, "bound on finishing in-flight requests at shutdown")
	noConsole := fs.Bool("no-console", false, "do not read console commands from stdin")
	accessLog := fs.Bool("access-log", true, "log one line per request")
	nodeID := fs.String("node-id", envOr(getenv, "UNIVERSE_NODE_ID", def.NodeID), "stable id of this node, in every instance's wrapperNodeId (env UNIVERSE_NODE_ID)")
	backupDir := fs.String("backup-dir", envOr(getenv, "UNIVERSE_BACKUP_DIR", ""), "the local backup target's folder; default <data>/backups (env UNIVERSE_BACKUP_DIR)")
	backupTargets := fs.String("backup-targets", envOr(getenv, "UNIVERSE_BACKUP_TARGETS", ""), "JSON file of S3 backup targets, mode 0600 (env UNIVERSE_BACKUP_TARGETS)")
	webhooksPrivate := fs.Bool("webhooks-allow-private", envOr(getenv, "UNIVERSE_WEBHOOKS_ALLOW_PRIVATE", "") == "true", "let webhooks reach loopback, private and link-local addresses (env UNIVERSE_WEBHOOKS_ALLOW_PRIVATE=true)")
	templates := fs.String("templates", envOr(getenv, "UNIVERSE_TEMPLATES", def.TemplatesDir), "template folder: <group>/<name>/ trees; default <data>/templates (env UNIVERSE_TEMPLATES)")
	configDir := fs.String("configurations", envOr(getenv, "UNIVERSE_CONFIGURATIONS", def.ConfigDir), "folder that 'config reload' imports *.json from; default <data>/configuration (env UNIVERSE_CONFIGURATIONS)")
	publicURL := fs.String("public-url", getenv("UNIVERSE_PUBLIC_URL"), "the master's URL as instances reach it; default http://127.0.0.1:<port> (env UNIVERSE_PUBLIC_URL)")
	noResume := fs.Bool("no-resume", envOr(getenv, "UNIVERSE_NO_RESUME", "") == "true", "do not start again, at start, the instances the last graceful stop of the master stopped (env UNIVERSE_NO_RESUME=true)")
	keep := fs.Bool("keep-instances", envOr(getenv, "UNIVERSE_KEEP_INSTANCES", "") == "true", "leave instances running when the master stops, for the next master to adopt (env UNIVERSE_KEEP_INSTANCES=true)")
	mountRoots := fs.String("docker-mount-root", envOr(getenv, "UNIVERSE_DOCKER_MOUNT_ROOT", ""), "comma-separated host folders under which docker configurations may bind-mount paths (dockerOptions.mounts; default none) (env UNIVERSE_DOCKER_MOUNT_ROOT)")
	allowCaps := fs.String("docker-allow-cap", envOr(getenv, "UNIVERSE_DOCKER_ALLOW_CAPS", ""), "capabilities beyond Docker's default set that docker configurations may add, comma-separated, e.g. SYS_PTRACE (env UNIVERSE_DOCKER_ALLOW_CAPS)")
	cgroups := fs.String("cgroup-parent", envOr(getenv, "UNIVERSE_CGROUP_PARENT", def.CgroupParent), "cgroup v2 directory for instance cgroups (ramMB, cpu limits): auto, off, or a path (env UNIVERSE_CGROUP_PARENT)")
	haAddr := fs.String("ha-addr", envOr(getenv, "UNIVERSE_HA_ADDR", ""), "HOST:PORT this master listens on for the other masters (Raft, mutual TLS); enables a cluster of masters (env UNIVERSE_HA_ADDR)")
	haPeers := fs.String("ha-peers", envOr(getenv, "UNIVERSE_HA_PEERS", ""), "every master's advertised HOST:PORT, this one's too, comma-separated; the same on every master (env UNIVERSE_HA_PEERS)")
	haSecret := fs.String("ha-secret-file", envOr(getenv, "UNIVERSE_HA_SECRET_FILE", ""), "file (mode 0600) holding the secret the masters share (env UNIVERSE_HA_SECRET_FILE)")
	haAdv := fs.String("ha-advertise", envOr(getenv, "UNIVERSE_HA_ADVERTISE", ""), "HOST:PORT the other masters reach this one at (default: --ha-addr) (env UNIVERSE_HA_ADVERTISE)")
	haID := fs.String("ha-id", envOr(getenv, "UNIVERSE_HA_ID", ""), "this master's entry in --ha-peers (default: --ha-advertise) (env UNIVERSE_HA_ID)")
	haJoin := fs.Bool("ha-join", envOr(getenv, "UNIVERSE_HA_JOIN", "") == "true", "join a running cluster (then run \"universe cluster join HOST:PORT\" against it) instead of forming one from --ha-peers (env UNIVERSE_HA_JOIN=true)")
	haSingle := fs.Bool("ha-bootstrap-from-single", envOr(getenv, "UNIVERSE_HA_BOOTSTRAP_FROM_SINGLE", "") == "true", "carry this data directory's single-master state into the new cluster (env UNIVERSE_HA_BOOTSTRAP_FROM_SINGLE=true)")
	nodeRAM := fs.Int("node-ram", envInt(getenv, "UNIVERSE_NODE_RAM"), "RAM in MB the master's own node offers its instances (ramMB of configurations); 0 = no limit (env UNIVERSE_NODE_RAM)")
	nodeCPU := fs.Int("node-cpu", envInt(getenv, "UNIVERSE_NODE_CPU"), "CPU the master's own node offers its instances, 100 = one core; 0 = no limit (env UNIVERSE_NODE_CPU)")
	noLocal := fs.Bool("no-local-instances", envOr(getenv, "UNIVERSE_NO_LOCAL_INSTANCES", "") == "true", "place no instance on the master's own node, only on agents (env UNIVERSE_NO_LOCAL_INSTANCES=true)")
	clusterAddr := fs.String("cluster-addr", envOr(getenv, "UNIVERSE_CLUSTER_ADDR", def.ClusterAddr), "where agent nodes connect (NATS); it listens only while a node is registered (env UNIVERSE_CLUSTER_ADDR)")
	clusterAdv := fs.String("cluster-advertise", getenv("UNIVERSE_CLUSTER_ADVERTISE"), "host:port put in nodes' join commands; default the public URL's host and --cluster-addr's port (env UNIVERSE_CLUSTER_ADVERTISE)")
	clusterCert := fs.String("cluster-tls-cert", getenv("UNIVERSE_CLUSTER_TLS_CERT"), "TLS certificate of the node port (env UNIVERSE_CLUSTER_TLS_CERT)")
	clusterKey := fs.String("cluster-tls-key", getenv("UNIVERSE_CLUSTER_TLS_KEY"), "TLS key of the node port (env UNIVERSE_CLUSTER_TLS_KEY)")
	natsURL := fs.String("nats-url", getenv("UNIVERSE_NATS_URL"), "an operator's NATS cluster for the nodes instead of the embedded server: comma-separated URLs, user:password@ allowed (env UNIVERSE_NATS_URL, preferred: flags show in process listings)")
	natsCreds := fs.String("nats-creds", getenv("UNIVERSE_NATS_CREDS"), "a .creds file to connect to that cluster with (env UNIVERSE_NATS_CREDS)")
	lineRate := fs.Int("log-line-rate", 10000, "stdout+stderr lines per second kept per instance; more are dropped and reported; -1 = no limit")
	logLevel := logLevelFlag(fs, getenv)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	level, ok := parseLevel(*logLevel, "universe", stderr)
	if !ok {
		return exitUsage
	}
	cfg := def
	cfg.Addr, cfg.DataDir, cfg.TLSCert, cfg.TLSKey = *addr, *data, *cert, *key
	cfg.ShutdownTimeout, cfg.AccessLog, cfg.Version = *shutdown, *accessLog, versionString()
	logOut := console.NewLogSink(stderr)
	defer logOut.Flush() // lines another goroutine's write still carries
	// Everything this command writes to stderr from here on goes through
	// the sink: in order with the log, and never beside its writer.
	stderr = logOut
	cfg.Logger = slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level}))
	cfg.AccessLogOut = logOut // the same sink, the same format, formatted by hand
	cfg.ConsoleLog = logOut
	cfg.NodeID, cfg.TemplatesDir, cfg.ConfigDir, cfg.PublicURL = *nodeID, *templates, *configDir, *publicURL
	cfg.InstanceLog.LineRate = *lineRate
	cfg.KeepInstances, cfg.CgroupParent, cfg.NoResume = *keep, *cgroups, *noResume
	cfg.ClusterAddr, cfg.ClusterAdvertise, cfg.ClusterTLSCert, cfg.ClusterTLSKey = *clusterAddr, *clusterAdv, *clusterCert, *clusterKey
	cfg.NoLocalInstances = *noLocal
	cfg.BackupDir, cfg.BackupTargets = *backupDir, *backupTargets
	cfg.WebhooksAllowPrivate = *webhooksPrivate
	cfg.HA = master.HAConfig{Addr: *haAddr, Advertise: *haAdv, ID: *haID, SecretFile: *haSecret, Peers: splitList(*haPeers), BootstrapFromSingle: *haSingle, Join: *haJoin}
	if cfg.HA.Addr == "" && (len(cfg.HA.Peers) > 0 || cfg.HA.SecretFile != "") {
		fmt.Fprintln(stderr, "universe: --ha-peers and --ha-secret-file go with --ha-addr")
		return exitUsage
	}
	if cfg.HA.Addr != "" && len(cfg.HA.Peers) == 0 && !cfg.HA.Join {
		fmt.Fprintln(stderr, "universe: --ha-addr needs --ha-peers (every master's address, this one's too)")
		return exitUsage
	}
	if *nodeRAM < 0 || *nodeCPU < 0 {
		fmt.Fprintln(stderr, "universe: --node-ram and --node-cpu take 0 (no limit) or more")
		return exitUsage
	}
	cfg.LocalCapacity = api.NodeCapacity{RAMMB: *nodeRAM, CPU: *nodeCPU}
	cfg.NATSURL, cfg.NATSCreds = *natsURL, *natsCreds
	for _, c := range strings.Split(*allowCaps, ",") {
		if c = strings.ToUpper(strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(c)), "CAP_")); c != "" {
			cfg.DockerAllowCaps = append(cfg.DockerAllowCaps, c)
		}
	}
	for _, r := range strings.Split(*mountRoots, ",") {
		if r = strings.TrimSpace(r); r != "" {
			cfg.DockerMountRoots = append(cfg.DockerMountRoots, filepath.Clean(r))
		}
	}
	var err error
	if cfg.AllowCIDRs, err = master.ParsePrefixes(splitList(*allow)); err != nil {
		fmt.Fprintf(stderr, "universe: --allow-cidr: %s\n", universe.ErrorMessage(err))
		return exitUsage
	}
	if cfg.TrustedProxies, err = master.ParsePrefixes(splitList(*proxies)); err != nil {
		fmt.Fprintf(stderr, "universe: --trusted-proxies: %s\n", universe.ErrorMessage(err))
		return exitUsage
	}
	if cfg.PublicRate, err = auth.ParseRate(*pubRate); err != nil {
		fmt.Fprintf(stderr, "universe: --public-rate-limit: %v\n", err)
		return exitUsage
	}
	if cfg.AuthFailureRate, err = auth.ParseRate(*failRate); err != nil {
		fmt.Fprintf(stderr, "universe: --auth-failure-limit: %v\n", err)
		return exitUsage
	}
	if !*noConsole {
		cfg.Console, cfg.ConsoleOut = stdin, stdout
	}

	m, err := master.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "universe: %s\n", universe.ErrorMessage(err))
		cfg.Logger.Debug("start failed", "err", err)
		return exitError
	}
	if err := m.Open(); err != nil {
		_ = m.Close()
		fmt.Fprintf(stderr, "universe: %v\n", err)
		return exitError
	}
	select {
	case <-ctx.Done():
	case <-m.Stopped():
	}
	if err := m.Close(); err != nil {
		fmt.Fprintf(stderr, "universe: stop: %v\n", err)
		return exitError
	}
	return exitOK
}

// runKey manages keys directly in a data directory, for when no master
// runs (e.g. to bootstrap the first admin key of a headless install). It
// runs the same commands as the console, so the rules are the same.
func runKey(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	dir := envOr(getenv, "UNIVERSE_DATA", master.DefaultConfig().DataDir)
	var rest []string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--data" || a == "-data":
			if i+1 >= len(args) {
				fmt.Fprintln(stderr, "universe: --data needs a directory")
				return exitUsage
			}
			i++
			dir = args[i]
		case strings.HasPrefix(a, "--data="):
			dir = strings.TrimPrefix(a, "--data=")
		default:
			rest = append(rest, a)
		}
	}
	if len(rest) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	db, err := storage.Open(dir, storage.Options{Timeout: 1500 * time.Millisecond})
	if err != nil {
		fmt.Fprintf(stderr, "universe: %s (%s)\n", universe.ErrorMessage(err), dir)
		return exitError
	}
	defer db.Close()
	keys, err := auth.OpenKeyring(db, nil)
	if err != nil {
		fmt.Fprintln(stderr, "universe: could not read the key store")
		return exitError
	}
	reg := console.NewRegistry()
	_ = reg.Register(console.KeyCommands(keys, time.Now))
	out := console.Lines{}
	ctx = console.WithCaller(ctx, console.Caller{Source: "cli"})
	err = reg.ExecuteArgs(ctx, append([]string{"key"}, rest...), &out)
	for _, l := range out {
		fmt.Fprintln(stdout, l)
	}
	if err != nil {
		fmt.Fprintln(stderr, "universe: "+universe.ErrorMessage(err))
		if universe.ErrorCode(err) == universe.EINVALID {
			return exitUsage
		}
		return exitError
	}
	return exitOK
}

// parseInterleaved parses flags that may come before, between or after the
// positional arguments, and returns the positionals.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// envInt is the integer in variable k, or 0 when it is unset or not one
// (the flag's parse then says so for a bad flag value only).
func envInt(getenv func(string) string, k string) int {
	n, _ := strconv.Atoi(getenv(k))
	return n
}
