package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/api/client"
)

// cliEnv is what every remote command gets.
type cliEnv struct {
	ctx    context.Context
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// command is one remote subcommand: its flags and what it does.
type command struct {
	usage string // "instance logs <id> [-f] [--lines N] [--since SEQ]"
	nargs [2]int // the positional arguments it takes: at least, at most (-1: any)
	run   func(r *remote, args []string) int
	// flags, for commands that have flags, defines them on fs and returns
	// the run function that reads them (instead of run).
	flags func(fs *flag.FlagSet) func(r *remote, args []string) int
}

// runRemote parses args for cmd, connects, and runs it.
func runRemote(e cliEnv, cmd *command, args []string) int {
	fs := flag.NewFlagSet("universe "+cmd.usage, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: universe %s\n\nFlags:\n", cmd.usage)
		fs.PrintDefaults()
	}
	conn := addConnFlags(fs)
	run := cmd.run
	if cmd.flags != nil {
		run = cmd.flags(fs)
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if len(pos) < cmd.nargs[0] || (cmd.nargs[1] >= 0 && len(pos) > cmd.nargs[1]) {
		fmt.Fprintf(e.stderr, "Usage: universe %s\n", cmd.usage)
		return exitUsage
	}
	r, code := connect(e.ctx, conn, e.getenv, e.stdin, e.stdout, e.stderr)
	if r == nil {
		return code
	}
	return run(r, pos)
}

// group is a command with subcommands ("instance list").
type group struct {
	name string
	subs map[string]*command
}

func (g group) run(e cliEnv, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, g.help()) // a usage error
		return exitUsage
	}
	if args[0] == "help" || args[0] == "--help" || args[0] == "-h" {
		fmt.Fprint(e.stdout, g.help()) // asked for, as --help of the whole
		return exitOK
	}
	cmd, ok := g.subs[args[0]]
	if !ok {
		fmt.Fprintf(e.stderr, "universe %s: unknown subcommand %q\n\n%s", g.name, args[0], g.help())
		return exitUsage
	}
	return runRemote(e, cmd, args[1:])
}

func (g group) help() string {
	var names []string
	for n := range g.subs {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("Usage:\n")
	for _, n := range names {
		b.WriteString("  universe " + g.subs[n].usage + "\n")
	}
	b.WriteString("\nEvery one takes --url, --token, -o table|json and --config; add --help for its own flags.\n")
	return b.String()
}

// printList prints list: JSON with -o json, else a table of row(item)
// under headers. It returns the exit code (err, if any, goes to fail).
func printList[T any](r *remote, list []T, err error, headers []string, row func(T) []string) int {
	if err != nil {
		return r.fail(err)
	}
	if r.json {
		r.printJSON(list)
		return exitOK
	}
	rows := make([][]string, 0, len(list))
	for _, v := range list {
		rows = append(rows, row(v))
	}
	r.table(headers, rows)
	return exitOK
}

// statusCommand: ping and node.
var statusCommand = &command{usage: "status", nargs: [2]int{0, 0}, run: func(r *remote, _ []string) int {
	start := time.Now()
	if _, err := r.c.Ping(r.ctx); err != nil {
		return r.fail(err)
	}
	rtt := time.Since(start)
	node, err := r.c.Node(r.ctx)
	if err != nil {
		return r.fail(err)
	}
	if r.json {
		r.printJSON(struct {
			URL    string   `json:"url"`
			PingMs float64  `json:"pingMs"`
			Node   api.Node `json:"node"`
		}{r.c.URL(), float64(rtt.Microseconds()) / 1000, node})
		return exitOK
	}
	var states []string
	for _, s := range []string{"ONLINE", "CREATING", "OFFLINE", "STOPPED"} {
		states = append(states, fmt.Sprintf("%d %s", node.Instances.ByState[s], r.state(s)))
	}
	limits := "enforced"
	if !node.Limits.Enforced {
		limits = "not enforced: " + node.Limits.Reason
	}
	r.fields([][2]string{{"Master", r.c.URL() + " (ping " + rtt.Round(10*time.Microsecond).String() + ")"},
		{"Version", node.Version}, {"Node", node.NodeID},
		{"Uptime", (time.Duration(node.UptimeMs) * time.Millisecond).Round(time.Second).String()},
		{"Instances", fmt.Sprintf("%d (%s)", node.Instances.Total, strings.Join(states, ", "))},
		{"Limits", limits}})
	return exitOK
}}

func authFields(r *remote, a api.Auth) {
	kv := [][2]string{{"Key", a.Label + " (" + a.ID + ")"}, {"Scope", a.Scope}}
	if a.ExpiresAt != 0 {
		kv = append(kv, [2]string{"Expires", fmtTime(a.ExpiresAt)})
	}
	if rl := a.RateLimit; rl != nil {
		kv = append(kv, [2]string{"Rate limit", fmt.Sprintf("%d of %d calls left in this %s window, full again in %s",
			rl.Remaining, rl.Limit, time.Duration(rl.WindowMs)*time.Millisecond, (time.Duration(rl.ResetMs) * time.Millisecond).Round(time.Millisecond))})
	} else {
		kv = append(kv, [2]string{"Rate limit", "none (ALL keys are never limited)"})
	}
	r.fields(kv)
}

var authGroup = group{name: "auth", subs: map[string]*command{
	"status": {usage: "auth status", nargs: [2]int{0, 0}, run: func(r *remote, _ []string) int {
		a, err := r.c.Auth(r.ctx)
		if err != nil {
			return r.fail(err)
		}
		if r.json {
			r.printJSON(a)
		} else {
			authFields(r, a)
		}
		return exitOK
	}},
	"verify": {usage: "auth verify", nargs: [2]int{0, 0}, run: func(r *remote, _ []string) int {
		a, err := r.c.VerifyAuth(r.ctx)
		if err != nil {
			return r.fail(err)
		}
		if r.json {
			r.printJSON(a)
		} else {
			fmt.Fprintf(r.stdout, "valid: %s (%s)\n", a.Label, a.Scope)
		}
		return exitOK
	}},
}}

var keyGroup = group{name: "key", subs: map[string]*command{
	"create": {usage: "key create <label> <ALL|PUBLIC> [--expires 30d]", nargs: [2]int{2, 2},
		flags: func(fs *flag.FlagSet) func(*remote, []string) int {
			expires := fs.String("expires", "", "lifetime such as 30d, 12h or 90m; empty = never expires")
			return func(r *remote, a []string) int { return keyCreate(r, a, *expires) }
		}},
	"list": {usage: "key list", nargs: [2]int{0, 0}, run: func(r *remote, _ []string) int {
		keys, err := r.c.Keys(r.ctx)
		// Operators' keys first; the INSTANCE keys (one per instance)
		// after them.
		sort.SliceStable(keys, func(i, j int) bool { return keys[i].Instance == "" && keys[j].Instance != "" })
		return printList(r, keys, err, []string{"ID", "LABEL", "SCOPE", "CREATED", "LAST USED", "EXPIRES", "INSTANCE"}, func(k api.Key) []string {
			exp := fmtTime(k.ExpiresAt)
			if k.Expired {
				exp += " (expired)"
			}
			return []string{k.ID, k.Label, k.Scope, fmtTime(k.CreatedAt), fmtTime(k.LastUsedAt), exp, k.Instance}
		})
	}},
	"revoke": {usage: "key revoke <label|id>", nargs: [2]int{1, 1}, run: func(r *remote, a []string) int {
		if err := r.c.RevokeKey(r.ctx, a[0]); err != nil {
			return r.fail(err)
		}
		if !r.json {
			fmt.Fprintf(r.stdout, "Revoked %s.\n", a[0])
		}
		return exitOK
	}},
}}

func keyCreate(r *remote, a []string, expires string) int {
	k, err := r.c.CreateKey(r.ctx, api.KeyCreateRequest{Label: a[0], Scope: strings.ToUpper(a[1]), ExpiresIn: expires})
	if err != nil {
		return r.fail(err)
	}
	if r.json {
		r.printJSON(k)
		return exitOK
	}
	// The console's words.
	fmt.Fprintf(r.stdout, "Created key %q (id %s, scope %s, expires %s).\nToken (shown only now; store it safely): %s\n", k.Label, k.ID, k.Scope, fmtTime(k.ExpiresAt), k.Token)
	return exitOK
}

// runKeyCommand is "universe key ...": offline against a data directory
// with --data (as before a master runs), else remote through the API.
func runKeyCommand(e cliEnv, args []string) int {
	for _, a := range args {
		if a == "--data" || a == "-data" || strings.HasPrefix(a, "--data=") || strings.HasPrefix(a, "-data=") {
			return runKey(e.ctx, args, e.getenv, e.stdout, e.stderr)
		}
	}
	if len(args) > 0 && args[0] == "delete" {
		args = append([]string{"revoke"}, args[1:]...) // the console's word
	}
	return keyGroup.run(e, args)
}

func instanceRow(r *remote, in api.InstanceInfo) []string {
	pid := "-"
	if in.ProcessPid != nil {
		pid = strconv.FormatInt(*in.ProcessPid, 10)
	}
	return []string{in.ID, in.ConfigurationName, r.state(in.State), playersOf(in), in.WrapperNodeID, in.HostAddress + ":" + strconv.Itoa(in.AllocatedPort), pid, in.Runtime, strconv.Itoa(in.Restarts), in.Reason}
}

var instanceHeaders = []string{"ID", "CONFIGURATION", "STATE", "PLAYERS", "NODE", "ADDRESS", "PID", "RUNTIME", "RESTARTS", "REASON"}

// playersOf is the PLAYERS column: players/max, and what keeps it from
// taking more (draining, full, failing its health check).
func playersOf(in api.InstanceInfo) string {
	s := strconv.Itoa(in.Players)
	if in.MaxPlayers > 0 {
		s += "/" + strconv.Itoa(in.MaxPlayers)
	}
	switch {
	case in.Draining:
		s += " draining"
	case in.Health == api.HealthFailing:
		s += " unhealthy"
	case in.State == "ONLINE" && !in.Joinable && in.MaxPlayers > 0 && in.Players > 0:
		s += " full"
	}
	return s
}

func (r *remote) instanceInfo(in api.InstanceInfo) {
	if r.json {
		r.printJSON(in)
		return
	}
	pid := "-"
	if in.ProcessPid != nil {
		pid = strconv.FormatInt(*in.ProcessPid, 10)
	}
	exit := "-"
	if in.ExitCode != nil {
		exit = strconv.Itoa(*in.ExitCode)
	}
	kv := [][2]string{{"ID", in.ID}, {"Configuration", in.ConfigurationName}, {"State", r.state(in.State)},
		{"Address", in.HostAddress + ":" + strconv.Itoa(in.AllocatedPort)}, {"Pid", pid}, {"Runtime", in.Runtime},
		{"Node", in.WrapperNodeID}, {"Created", fmtTime(in.CreatedAt)}, {"Started", fmtTime(in.StartedAt)},
		{"Last heartbeat", fmtAgo(in.LastHeartbeat)}, {"Exit code", exit}, {"Restarts", strconv.Itoa(in.Restarts)}}
	if in.Reason != "" {
		kv = append(kv, [2]string{"Reason", in.Reason})
	}
	kv = append(kv, [2]string{"Players", playersOf(in)}, [2]string{"Joinable", yesNo(in.Joinable)})
	if in.Health != "" {
		h := in.Health
		if in.HealthError != "" {
			h += " (" + in.HealthError + ")"
		}
		kv = append(kv, [2]string{"Health", h})
	}
	if in.NextRestartAt != 0 {
		kv = append(kv, [2]string{"Next restart", fmtTime(in.NextRestartAt)})
	}
	if in.LimitsEnforced || in.LimitsReason != "" {
		l := fmt.Sprintf("%d MB RAM, cpu %d: enforced", in.AllocatedRAMMB, in.AllocatedCPU)
		if !in.LimitsEnforced {
			l = fmt.Sprintf("%d MB RAM, cpu %d: not enforced (%s)", in.AllocatedRAMMB, in.AllocatedCPU, in.LimitsReason)
		}
		kv = append(kv, [2]string{"Limits", l})
	}
	r.fields(kv)
}

// instanceCreate makes one instance (shown in full) or amount of them
// (listed), as the console's "instance create <config> <amount>".
func instanceCreate(r *remote, a []string) int {
	n := 1
	if len(a) == 2 {
		v, err := strconv.Atoi(a[1])
		if err != nil || v < 1 || v > 100 {
			fmt.Fprintln(r.stderr, "universe: amount must be a number from 1 to 100")
			return exitUsage
		}
		n = v
	}
	var made []api.InstanceInfo
	for i := 0; i < n; i++ {
		in, err := r.c.CreateInstance(r.ctx, a[0])
		if err != nil {
			if len(made) > 0 {
				printList(r, made, nil, instanceHeaders, func(in api.InstanceInfo) []string { return instanceRow(r, in) })
			}
			return r.fail(err)
		}
		made = append(made, in)
	}
	// As start does: an instance that ends OFFLINE is a failure (exit 1),
	// saying why.
	code := exitOK
	if n == 1 {
		r.instanceInfo(made[0])
	} else {
		code = printList(r, made, nil, instanceHeaders, func(in api.InstanceInfo) []string { return instanceRow(r, in) })
	}
	for _, in := range made {
		if in.State == "OFFLINE" {
			fmt.Fprintf(r.stderr, "universe: %s did not start: %s\n", in.ID, in.Reason)
			code = exitError
		}
	}
	return code
}

// auditCommand: the newest audit entries.
var auditCommand = &command{usage: "audit [--limit N]", nargs: [2]int{0, 0},
	flags: func(fs *flag.FlagSet) func(*remote, []string) int {
		limit := fs.Int("limit", 50, "how many of the newest entries (1-1000)")
		return func(r *remote, _ []string) int {
			list, err := r.c.Audit(r.ctx, *limit)
			return printList(r, list, err, []string{"SEQ", "TIME", "KEY", "SOURCE", "COMMAND", "RESULT"}, func(e api.AuditEntry) []string {
				res := e.Result
				if e.Error != "" {
					res += ": " + e.Error
				}
				return []string{strconv.FormatUint(e.Seq, 10), e.Time.UTC().Format(time.RFC3339), e.KeyID, e.Source, e.Command, res}
			})
		}
	}}

// lifecycle runs start, stop or restart and, unless --no-wait, waits for
// the state it leads to, showing progress on a terminal.
func lifecycle(target string) *command {
	return &command{usage: "instance " + target + " <id> [--no-wait] [--timeout 5m]", nargs: [2]int{1, 1},
		flags: func(fs *flag.FlagSet) func(*remote, []string) int {
			noWait := fs.Bool("no-wait", false, "return once the master accepted it")
			timeout := fs.Duration("timeout", 5*time.Minute, "how long to wait for the instance")
			return func(r *remote, a []string) int { return runLifecycle(r, target, a[0], *noWait, *timeout) }
		}}
}

func runLifecycle(r *remote, target, id string, noWait bool, timeout time.Duration) int {
	res, err := r.c.Lifecycle(r.ctx, id, target)
	if err != nil {
		return r.fail(err)
	}
	info := res.Instance
	if res.Accepted && !noWait {
		ctx, cancel := context.WithTimeout(r.ctx, timeout)
		defer cancel()
		p := r.progress()
		info, err = r.c.WaitState(ctx, id, func(i api.InstanceInfo) {
			if i.Transition != "" {
				p.show("%s %s: %s (%s)", target, id, i.State, i.Transition)
			} else {
				p.show("%s %s: %s", target, id, i.State)
			}
		}, "ONLINE", "OFFLINE", "STOPPED")
		p.done()
		if err != nil {
			return r.fail(err)
		}
	}
	r.instanceInfo(info)
	// What the action led to, not only that it was accepted.
	stopping := target == "stop" || target == "kill"
	if ok := noWait || (!stopping && info.State == "ONLINE") || (stopping && info.State != "ONLINE"); !ok {
		fmt.Fprintf(r.stderr, "universe: %s %s failed: it is %s (%s)\n", target, id, info.State, info.Reason)
		return exitError
	}
	return exitOK
}

var instanceGroup = group{name: "instance", subs: map[string]*command{
	"list": {usage: "instance list [--state S] [--configuration NAME] [-q]", nargs: [2]int{0, 0},
		flags: func(fs *flag.FlagSet) func(*remote, []string) int {
			var f client.InstanceFilter
			fs.StringVar(&f.State, "state", "", "only instances in this state")
			fs.StringVar(&f.Configuration, "configuration", "", "only instances of this configuration")
			quiet := fs.Bool("q", false, "only the ids, one a line (for scripts)")
			return func(r *remote, _ []string) int {
				f.State = strings.ToUpper(f.State) // --state online
				return instanceList(r, f, *quiet)
			}
		}},
	"create": {usage: "instance create <configuration> [amount]", nargs: [2]int{1, 2}, run: instanceCreate},
	"info": {usage: "instance info <id>", nargs: [2]int{1, 1}, run: func(r *remote, a []string) int {
		in, err := r.c.Instance(r.ctx, a[0])
		if err != nil {
			return r.fail(err)
		}
		r.instanceInfo(in)
		return exitOK
	}},
	"start": lifecycle("start"),
	"stop":  lifecycle("stop"),
	"drain": {usage: "instance drain <id> [--deadline 10m]", nargs: [2]int{1, 1},
		flags: func(fs *flag.FlagSet) func(*remote, []string) int {
			deadline := fs.String("deadline", "", "stop it then at the latest, even with players (such as 10m or 1h); default: once empty")
			return func(r *remote, a []string) int {
				secs := 0
				if *deadline != "" {
					d, err := universe.ParseDuration(*deadline)
					if err != nil || d <= 0 {
						fmt.Fprintln(r.stderr, "universe: --deadline: a duration such as 10m or 1h")
						return exitUsage
					}
					secs = int(d.Seconds())
				}
				in, err := r.c.Drain(r.ctx, a[0], secs)
				if err != nil {
					return r.fail(err)
				}
				if r.json {
					r.printJSON(in)
					return exitOK
				}
				fmt.Fprintf(r.stdout, "Draining %s (%s players): no new players; stopped once empty", in.ID, playersOf(in))
				if in.DrainDeadline > 0 {
					fmt.Fprintf(r.stdout, " or at %s", fmtTime(in.DrainDeadline))
				}
				fmt.Fprintln(r.stdout, ".")
				return exitOK
			}
		}},
	"restart": lifecycle("restart"),
	"kill":    lifecycle("kill"),
	"delete": {usage: "instance delete <id>", nargs: [2]int{1, 1}, run: func(r *remote, a []string) int {
		p := r.progress()
		p.show("deleting %s", a[0])
		err := r.c.DeleteInstance(r.ctx, a[0])
		p.done()
		if err != nil {
			return r.fail(err)
		}
		if !r.json {
			fmt.Fprintf(r.stdout, "Deleted %s.\n", a[0])
		}
		return exitOK
	}},
	"exec": {usage: "instance exec <id> <line...>", nargs: [2]int{2, -1}, run: func(r *remote, a []string) int {
		if err := r.c.Execute(r.ctx, a[0], strings.Join(a[1:], " ")); err != nil {
			return r.fail(err)
		}
		return exitOK
	}},
	"files": {usage: "instance files ls <id> [folder] | get <id> <path> [local file] | put <id> <path> <local file> | rm <id> <path> | mkdir <id> <folder> | mv <id> <from> <to> | unzip <id> <zip> [folder]", nargs: [2]int{2, 4}, run: instanceFiles},
	"stats": {usage: "instance stats <id>", nargs: [2]int{1, 1}, run: func(r *remote, a []string) int {
		s, err := r.c.InstanceStats(r.ctx, a[0])
		if err != nil {
			return r.fail(err)
		}
		if r.json {
			r.printJSON(s)
			return exitOK
		}
		if s.Current == nil {
			fmt.Fprintf(r.stdout, "%s: no samples (it does not run, or runs on an agent node)\n", a[0])
			return exitOK
		}
		fmt.Fprintf(r.stdout, "CPU:     %.2f cores (%.1f s in all)\nMemory:  %.1f MiB\nSamples: %d over the last %s\n",
			s.Current.CPU, s.CPUSecondsTotal, float64(s.Current.MemoryBytes)/(1<<20), len(s.Samples),
			time.Duration(int64(len(s.Samples))*s.IntervalMs)*time.Millisecond)
		return exitOK
	}},
	"pprof": {usage: "instance pprof <id> <profile|heap|allocs|goroutine|threadcreate|block|mutex> <local file> [--seconds N]", nargs: [2]int{3, 3},
		flags: func(fs *flag.FlagSet) func(*remote, []string) int {
			seconds := fs.Int("seconds", 0, "the CPU profile's duration (default 30)")
			return func(r *remote, a []string) int { return instancePprof(r, a, *seconds) }
		}},
	"logs": {usage: "instance logs <id> [-f] [--lines N] [--since SEQ] [--timestamps]", nargs: [2]int{1, 1},
		flags: func(fs *flag.FlagSet) func(*remote, []string) int {
			var o logsOptions
			fs.BoolVar(&o.follow, "f", false, "follow: stream new lines, reconnecting by itself, until the instance is deleted")
			fs.IntVar(&o.lines, "lines", 0, "how many of the last lines (default 100)")
			fs.StringVar(&o.since, "since", "", "only lines after this sequence number")
			fs.BoolVar(&o.timestamps, "timestamps", false, "each line with its time (RFC 3339, UTC)")
			return func(r *remote, a []string) int { return instanceLogs(r, a[0], o) }
		}},
}}

// instancePprof saves a Go profile of an instance's supervisor (for go
// tool pprof) into a local file; nothing is written when it fails.
func instancePprof(r *remote, a []string, seconds int) int {
	var buf bytes.Buffer
	if err := r.c.InstanceProfile(r.ctx, a[0], a[1], seconds, &buf); err != nil {
		return r.fail(err)
	}
	if err := os.WriteFile(a[2], buf.Bytes(), 0o644); err != nil {
		fmt.Fprintln(r.stderr, "universe:", err)
		return exitError
	}
	if !r.json {
		fmt.Fprintf(r.stdout, "Saved the %s profile of %s's supervisor (%d bytes) to %s: go tool pprof %s\n", a[1], a[0], buf.Len(), a[2], a[2])
	}
	return exitOK
}

func instanceList(r *remote, f client.InstanceFilter, quiet bool) int {
	list, err := r.c.Instances(r.ctx, f)
	if quiet && err == nil && !r.json {
		for _, in := range list {
			fmt.Fprintln(r.stdout, in.ID)
		}
		return exitOK
	}
	return printList(r, list, err, instanceHeaders, func(in api.InstanceInfo) []string { return instanceRow(r, in) })
}

type logsOptions struct {
	follow     bool
	lines      int
	since      string
	timestamps bool
}

func instanceLogs(r *remote, id string, o logsOptions) int {
	logsFollow, logsLines, logsSince := o.follow, o.lines, o.since // the flags
	var since uint64
	hasSince := logsSince != ""
	if hasSince {
		n, err := strconv.ParseUint(logsSince, 10, 64)
		if err != nil {
			fmt.Fprintln(r.stderr, "universe: --since wants a sequence number")
			return exitUsage
		}
		since = n
	}
	print := func(l api.LogLine) {
		if r.json {
			b, _ := json.Marshal(l)
			fmt.Fprintln(r.stdout, string(b))
			return
		}
		prefix := ""
		if o.timestamps {
			prefix = time.UnixMilli(l.TS).UTC().Format("2006-01-02T15:04:05.000Z") + " "
		}
		if l.Stream == "system" {
			// The master's own lines, told apart from the program's.
			fmt.Fprintln(r.stdout, prefix+r.paint("[universe] ", "2")+l.Line)
			return
		}
		fmt.Fprintln(r.stdout, prefix+l.Line)
	}
	if !logsFollow {
		n := logsLines
		if hasSince && n == 0 {
			n = 10000
		}
		logs, err := r.c.Logs(r.ctx, id, n)
		if err != nil {
			return r.fail(err)
		}
		for _, l := range logs.Entries {
			if !hasSince || l.Seq > since {
				print(l)
			}
		}
		return exitOK
	}
	opt := client.FollowOptions{LiveLogOptions: client.LiveLogOptions{Since: since, HasSince: hasSince, Lines: logsLines},
		OnReconnect: func(err error, attempt int) {
			fmt.Fprintf(r.stderr, "universe: live-log interrupted (%v); reconnecting (attempt %d)\n", err, attempt)
		},
		OnReconnected: func(after uint64) {
			fmt.Fprintf(r.stderr, "universe: reconnected; resuming after line %d (nothing lost or repeated)\n", after)
		}}
	err := r.c.Follow(r.ctx, id, opt, func(f api.LiveLogFrame) error {
		switch f.Type {
		case "":
			print(api.LogLine{Seq: f.Seq, TS: f.TS, Stream: f.Stream, Line: f.Line})
		case api.FrameGap:
			fmt.Fprintf(r.stderr, "universe: lines %d to %d were not delivered\n", f.From, f.To)
		}
		return nil
	})
	switch {
	case errors.Is(err, client.ErrLogEnded):
		fmt.Fprintf(r.stderr, "universe: instance %s was deleted\n", id)
		return exitOK
	case errors.Is(err, context.Canceled) && r.ctx.Err() != nil:
		return exitOK // interrupted by the user
	case err != nil:
		return r.fail(err)
	}
	return exitOK
}

var configGroup = group{name: "config", subs: map[string]*command{
	"scaling": {usage: "config scaling <name>", nargs: [2]int{1, 1}, run: func(r *remote, a []string) int {
		st, err := r.c.Scaling(r.ctx, a[0])
		if err != nil {
			return r.fail(err)
		}
		if r.json {
			r.printJSON(st)
			return exitOK
		}
		fmt.Fprintf(r.stdout, "%s: desired %d, actual %d, joinable %d\n\n", a[0], st.Desired, st.Actual, st.Joinable)
		rows := make([][]string, 0, len(st.Decisions))
		for _, d := range st.Decisions {
			rows = append(rows, []string{d.Time.UTC().Format("2006-01-02 15:04:05Z"), d.Action, d.InstanceID, d.Reason})
		}
		r.table([]string{"TIME", "ACTION", "INSTANCE", "REASON"}, rows)
		return exitOK
	}},
	"list": {usage: "config list", nargs: [2]int{0, 0}, run: func(r *remote, _ []string) int {
		list, err := r.c.Configurations(r.ctx)
		return printList(r, list, err, []string{"NAME", "RUNTIME", "PORTS", "MIN/MAX", "RESTART", "COMMAND"}, func(c api.Configuration) []string {
			return []string{c.Name, c.Runtime, fmt.Sprintf("%d-%d", c.AvailablePorts.Min, c.AvailablePorts.Max),
				fmt.Sprintf("%d/%d", c.MinimumServiceCount, c.MaximumServiceCount), c.RestartPolicy, c.Command}
		})
	}},
	"show": {usage: "config show <name>", nargs: [2]int{1, 1}, run: func(r *remote, a []string) int {
		c, err := r.c.Configuration(r.ctx, a[0])
		if err != nil {
			return r.fail(err)
		}
		r.printJSON(c) // a configuration reads best as the JSON it is written in
		return exitOK
	}},
	"apply": {usage: "config apply -f <file.json|-> [name]", nargs: [2]int{0, 1},
		flags: func(fs *flag.FlagSet) func(*remote, []string) int {
			file := fs.String("f", "", "the configuration's JSON file (- for stdin)")
			return func(r *remote, a []string) int { return configApply(r, a, *file) }
		}},
	"delete": {usage: "config delete <name> [--force]", nargs: [2]int{1, 1},
		flags: func(fs *flag.FlagSet) func(*remote, []string) int {
			force := fs.Bool("force", false, "delete its instances too")
			return func(r *remote, a []string) int { return configDelete(r, a[0], *force) }
		}},
}}

func configDelete(r *remote, name string, force bool) int {
	left, _ := r.c.Instances(r.ctx, client.InstanceFilter{Configuration: name})
	if err := r.c.DeleteConfiguration(r.ctx, name, force); err != nil {
		return r.fail(err)
	}
	if !r.json {
		fmt.Fprintf(r.stdout, "Deleted configuration %s.\n", name)
	}
	if running := 0; !force {
		for _, in := range left {
			if in.State == "ONLINE" || in.State == "CREATING" {
				running++
			}
		}
		if running > 0 {
			fmt.Fprintf(r.stderr, "warning: %d instance(s) of %s keep running; each is deleted when it stops and cannot be restarted (--force deletes them now)\n", running, name)
		}
	}
	return exitOK
}

// configApply PUTs a configuration file. Its name is the argument, else
// its "name" field, else the file's name without .json.
func configApply(r *remote, a []string, applyFile string) int {
	if applyFile == "" {
		fmt.Fprintln(r.stderr, "Usage: universe config apply -f <file.json|-> [name]")
		return exitUsage
	}
	var (
		b   []byte
		err error
	)
	if applyFile == "-" {
		b, err = io.ReadAll(io.LimitReader(r.stdin, 8<<20))
	} else {
		b, err = os.ReadFile(applyFile)
	}
	if err != nil {
		fmt.Fprintln(r.stderr, "universe:", err)
		return exitError
	}
	var head struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		fmt.Fprintf(r.stderr, "universe: %s is not a JSON object: %v\n", applyFile, err)
		return exitUsage
	}
	name := head.Name
	if len(a) == 1 {
		name = a[0]
	}
	if name == "" && applyFile != "-" {
		name = strings.TrimSuffix(baseName(applyFile), ".json")
	}
	if name == "" {
		fmt.Fprintln(r.stderr, "universe: name the configuration: an argument or a \"name\" field")
		return exitUsage
	}
	if err := r.c.PutConfiguration(r.ctx, name, json.RawMessage(b)); err != nil {
		return r.fail(err)
	}
	if !r.json {
		fmt.Fprintf(r.stdout, "Applied configuration %s.\n", name)
	}
	return exitOK
}

func baseName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// runCLI dispatches the remote commands; ok is false when args[0] is not
// one of them.
func runCLI(e cliEnv, args []string) (code int, ok bool) {
	switch args[0] {
	case "status":
		return runRemote(e, statusCommand, args[1:]), true
	case "auth":
		return authGroup.run(e, args[1:]), true
	case "key":
		return runKeyCommand(e, args[1:]), true
	case "user":
		if offlineUserCreate(args[1:]) {
			return runUserCommand(e, args[1:]), true
		}
		return userGroup.run(e, args[1:]), true
	case "grant":
		return grantGroup.run(e, args[1:]), true
	case "login":
		return runLogin(e, args[1:]), true
	case "instance":
		return instanceGroup.run(e, args[1:]), true
	case "config":
		return configGroup.run(e, args[1:]), true
	case "node":
		if len(args) > 1 && args[1] == "delete" {
			args = append([]string{"node", "revoke"}, args[2:]...) // the console's alias
		}
		return nodeGroup.run(e, args[1:]), true
	case "template":
		return templateGroup.run(e, args[1:]), true
	case "backup":
		return backupGroup.run(e, args[1:]), true
	case "schedule":
		return scheduleGroup.run(e, args[1:]), true
	case "webhook":
		return webhookGroup.run(e, args[1:]), true
	case "events":
		return runRemote(e, eventsCommand, args[1:]), true
	case "cluster":
		return clusterGroup.run(e, args[1:]), true
	case "console":
		return runRemote(e, consoleCommand, args[1:]), true
	case "audit":
		return runRemote(e, auditCommand, args[1:]), true
	case "completion":
		return runCompletion(e, args[1:]), true
	case "__complete": // for the completion scripts
		return runComplete(e, args[1:]), true
	}
	return 0, false
}

// instanceFiles is `instance files ls|get|put|rm`.
func instanceFiles(r *remote, a []string) int {
	verb, id, rest := a[0], a[1], a[2:]
	switch {
	case verb == "ls" && len(rest) <= 1:
		dir := ""
		if len(rest) == 1 {
			dir = rest[0]
		}
		list, err := r.c.InstanceFiles(r.ctx, id, dir)
		return printList(r, list, err, []string{"PATH", "BYTES", "MODE", "MODIFIED"}, func(f api.TemplateFile) []string {
			p := f.Path
			if f.Dir {
				p += "/"
			}
			return []string{p, strconv.FormatInt(f.Size, 10), f.Mode, time.UnixMilli(f.ModTime).Format(time.DateTime)}
		})
	case verb == "get" && (len(rest) == 1 || len(rest) == 2):
		out := io.Writer(r.stdout)
		if len(rest) == 2 && rest[1] != "-" {
			f, err := os.OpenFile(rest[1], os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
			if err != nil {
				fmt.Fprintln(r.stderr, "universe:", err)
				return exitError
			}
			defer f.Close()
			out = f
		}
		if err := r.c.InstanceFile(r.ctx, id, rest[0], out); err != nil {
			return r.fail(err)
		}
		return exitOK
	case verb == "put" && len(rest) == 2:
		f, err := os.Open(rest[1])
		if err != nil {
			fmt.Fprintln(r.stderr, "universe:", err)
			return exitError
		}
		defer f.Close()
		if err := r.c.WriteInstanceFile(r.ctx, id, rest[0], f); err != nil {
			return r.fail(err)
		}
		if !r.json {
			fmt.Fprintf(r.stdout, "Wrote %s of %s.\n", rest[0], id)
		}
		return exitOK
	case verb == "mkdir" && len(rest) == 1, verb == "mv" && len(rest) == 2, verb == "unzip" && (len(rest) == 1 || len(rest) == 2):
		action := map[string]string{"mkdir": "mkdir", "mv": "rename", "unzip": "unzip"}[verb]
		to := ""
		if len(rest) == 2 {
			to = rest[1]
		}
		out, err := r.c.InstanceFileAction(r.ctx, id, rest[0], action, to)
		if err != nil {
			return r.fail(err)
		}
		switch {
		case r.json:
			r.printJSON(out)
		case verb == "mkdir":
			fmt.Fprintf(r.stdout, "Made folder %s of %s.\n", rest[0], id)
		case verb == "mv":
			fmt.Fprintf(r.stdout, "Moved %s to %s.\n", rest[0], to)
		default:
			fmt.Fprintf(r.stdout, "Unpacked %d files (%d bytes) of %s.\n", out.Files, out.Size, rest[0])
		}
		return exitOK
	case verb == "rm" && len(rest) == 1:
		if err := r.c.DeleteInstanceFile(r.ctx, id, rest[0]); err != nil {
			return r.fail(err)
		}
		if !r.json {
			fmt.Fprintf(r.stdout, "Deleted %s of %s.\n", rest[0], id)
		}
		return exitOK
	}
	fmt.Fprintln(r.stderr, "usage: universe instance files ls <id> [folder] | get <id> <path> [local file] | put <id> <path> <local file> | rm <id> <path> | mkdir <id> <folder> | mv <id> <from> <to> | unzip <id> <zip> [folder]")
	return exitUsage
}

// clusterGroup is "universe cluster ...": the masters of a cluster.
var clusterGroup = group{name: "cluster", subs: map[string]*command{
	"join": {usage: "cluster join <host:port> [--id ID]", nargs: [2]int{1, 1},
		flags: func(fs *flag.FlagSet) func(*remote, []string) int {
			id := fs.String("id", "", "the new master's --ha-id, when not its address")
			return func(r *remote, a []string) int {
				if err := r.c.JoinMaster(r.ctx, a[0], *id); err != nil {
					return r.fail(err)
				}
				if !r.json {
					fmt.Fprintf(r.stdout, "Master %s joined the cluster.\n", a[0])
				}
				return exitOK
			}
		}},
	"leave": {usage: "cluster leave <id>", nargs: [2]int{1, 1}, run: func(r *remote, a []string) int {
		if err := r.c.LeaveMaster(r.ctx, a[0]); err != nil {
			return r.fail(err)
		}
		if !r.json {
			fmt.Fprintf(r.stdout, "Master %s left the cluster.\n", a[0])
		}
		return exitOK
	}},
	"status": {usage: "cluster status", nargs: [2]int{0, 0}, run: func(r *remote, _ []string) int {
		list, err := r.c.Masters(r.ctx)
		return printList(r, list, err, []string{"ID", "STATE", "LEADER", "TERM", "APPLIED", "LAST CONTACT", "API"}, func(m api.Master) []string {
			return []string{m.ID, m.State, strconv.FormatBool(m.Leader), strconv.FormatUint(m.Term, 10), strconv.FormatUint(m.AppliedIndex, 10),
				strconv.FormatInt(m.LastContactMs, 10) + " ms", m.APIURL}
		})
	}},
}}
