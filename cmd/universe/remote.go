package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/universe-orchestrator/universe/api/client"
)

// Exit codes of commands that talk to a master (besides exitOK, exitError
// and exitUsage).
const (
	exitUnauthorized = 3
	exitRateLimited  = 4
)

// remote is what every command that talks to a master shares: the client,
// the output mode and the streams.
type remote struct {
	ctx    context.Context
	c      *client.Client
	json   bool // -o json
	color  bool // colour: on a terminal, unless NO_COLOR
	tty    bool // stderr is a terminal: progress may be shown
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// connFlags are the flags of every remote command.
type connFlags struct {
	url, token, output, config string
}

func addConnFlags(fs *flag.FlagSet) *connFlags {
	f := &connFlags{}
	fs.StringVar(&f.url, "url", "", "the master's URL (env UNIVERSE_URL; default "+client.DefaultURL+")")
	fs.StringVar(&f.token, "token", "", "API token; prefer env UNIVERSE_TOKEN: flags show up in process listings")
	fs.StringVar(&f.output, "o", "table", "output: table or json")
	fs.StringVar(&f.config, "config", "", "config file (default ~/.config/universe/config, must be 0600)")
	return f
}

// cliConfig is the config file: "url = ..." and "token = ..." lines.
type cliConfig struct {
	url, token string
}

// configPath is the default config file.
func configPath(getenv func(string) string) string {
	if d := getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "universe", "config")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".config", "universe", "config")
	}
	return ""
}

// readConfig reads the config file at path; a missing file is no error
// unless explicit. A file others may read is refused: it holds a token.
func readConfig(path string, explicit bool) (cliConfig, error) {
	var cfg cliConfig
	if path == "" {
		return cfg, nil
	}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && !explicit {
			return cfg, nil
		}
		return cfg, fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return cfg, fmt.Errorf("config file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return cfg, fmt.Errorf("config file %s is readable by others (mode %#o): it holds a token, so it must be 0600 (chmod 600 %s)", path, st.Mode().Perm(), path)
	}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return cfg, fmt.Errorf("config file %s line %d: want key = value", path, n)
		}
		switch strings.TrimSpace(k) {
		case "url":
			cfg.url = strings.TrimSpace(v)
		case "token":
			cfg.token = strings.TrimSpace(v)
		default:
			return cfg, fmt.Errorf("config file %s line %d: unknown key %q (known: url, token)", path, n, strings.TrimSpace(k))
		}
	}
	return cfg, sc.Err()
}

// connect builds the remote of a command from its flags, the environment
// and the config file. It writes why it cannot to stderr and returns the
// exit code.
func connect(ctx context.Context, f *connFlags, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) (*remote, int) {
	path, explicit := f.config, f.config != ""
	if !explicit {
		path = configPath(getenv)
	}
	cfg, err := readConfig(path, explicit)
	if err != nil {
		fmt.Fprintln(stderr, "universe:", err)
		return nil, exitError
	}
	token := getenv("UNIVERSE_TOKEN")
	if f.token != "" {
		fmt.Fprintln(stderr, "universe: warning: --token shows up in process listings and shell history; prefer UNIVERSE_TOKEN or the config file")
		token = f.token
	}
	if token == "" {
		token = cfg.token
	}
	base := f.url
	if base == "" {
		base = getenv("UNIVERSE_URL")
	}
	if base == "" {
		base = cfg.url
	}
	c, err := client.New(base, token, client.WithUserAgent("universe-cli/"+versionString()))
	if err != nil {
		fmt.Fprintln(stderr, "universe:", err)
		return nil, exitUsage
	}
	switch f.output {
	case "table", "json":
	default:
		fmt.Fprintf(stderr, "universe: -o %q: want table or json\n", f.output)
		return nil, exitUsage
	}
	r := &remote{ctx: ctx, c: c, json: f.output == "json", stdin: stdin, stdout: stdout, stderr: stderr}
	r.color = isTerminal(stdout) && getenv("NO_COLOR") == "" && getenv("TERM") != "dumb"
	r.tty = isTerminal(stderr)
	return r, exitOK
}

// isTerminal says whether w is a terminal.
func isTerminal(w any) bool {
	f, ok := w.(interface{ Fd() uintptr })
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// fail reports err and returns the exit code: 3 for a refused key, 4 for a
// rate limit (with the delay), 1 otherwise.
func (r *remote) fail(err error) int {
	var e *client.Error
	if errors.As(err, &e) {
		switch e.Status {
		case http.StatusUnauthorized, http.StatusForbidden:
			if e.InsufficientScope {
				fmt.Fprintln(r.stderr, "universe: unauthorized: the key is valid but lacks the ALL scope this command needs")
				return exitUnauthorized
			}
			if e.Status == http.StatusForbidden { // a valid key without the right
				fmt.Fprintf(r.stderr, "universe: not allowed: %s\n", e.Message)
				return exitUnauthorized
			}
			fmt.Fprintf(r.stderr, "universe: unauthorized: the master refused the token (%s)\n", e.Message)
			if e.Status == http.StatusUnauthorized {
				fmt.Fprintln(r.stderr, "universe: set UNIVERSE_TOKEN (or token = ... in the config file) to a valid key")
			}
			return exitUnauthorized
		case http.StatusTooManyRequests:
			msg, _, _ := strings.Cut(e.Message, " Retry after") // the delay is said once, below
			fmt.Fprintf(r.stderr, "universe: rate limited: %s retry in %s\n", msg, e.RetryAfter.Round(time.Millisecond))
			return exitRateLimited
		}
		for _, l := range e.Output {
			fmt.Fprintln(r.stderr, l)
		}
	}
	if errors.Is(err, context.Canceled) {
		return exitError
	}
	fmt.Fprintln(r.stderr, "universe:", err)
	return exitError
}

// printJSON writes v indented.
func (r *remote) printJSON(v any) {
	enc := json.NewEncoder(r.stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// table writes rows under headers, aligned.
func (r *remote) table(headers []string, rows [][]string) {
	tw := tabwriter.NewWriter(r.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(headers, "\t"))
	for _, row := range rows {
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	_ = tw.Flush()
}

// fields writes "key: value" lines, aligned.
func (r *remote) fields(kv [][2]string) {
	tw := tabwriter.NewWriter(r.stdout, 0, 0, 1, ' ', 0)
	for _, p := range kv {
		fmt.Fprintf(tw, "%s:\t%s\n", p[0], p[1])
	}
	_ = tw.Flush()
}

// state colours an instance state on a terminal. (Colour codes would break
// tabwriter's widths, so they are added around padded text.)
func (r *remote) state(s string) string {
	if !r.color {
		return s
	}
	code := map[string]string{"ONLINE": "32", "CREATING": "33", "OFFLINE": "31", "STOPPED": "90"}[s]
	if code == "" {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

// paint wraps s in the SGR code on a terminal (plain text elsewhere).
func (r *remote) paint(s, code string) string {
	if !r.color {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

// progress shows a one-line status on a terminal's stderr; done ends it.
type progress struct {
	r     *remote
	start time.Time
	shown bool
}

func (r *remote) progress() *progress { return &progress{r: r, start: time.Now()} }

func (p *progress) show(format string, args ...any) {
	if !p.r.tty {
		return
	}
	fmt.Fprintf(p.r.stderr, "\r\x1b[K"+format+" (%ds)", append(args, int(time.Since(p.start).Seconds()))...)
	p.shown = true
}

func (p *progress) done() {
	if p.shown {
		fmt.Fprint(p.r.stderr, "\r\x1b[K")
	}
}

// fmtTime formats epoch milliseconds for people ("-" for 0).
// fmtTime formats epoch milliseconds as the console does (UTC, with Z).
func fmtTime(ms int64) string {
	if ms == 0 {
		return "never"
	}
	return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05Z")
}

// fmtAgo formats the time since epoch milliseconds.
func fmtAgo(ms int64) string {
	if ms == 0 {
		return "-"
	}
	return time.Since(time.UnixMilli(ms)).Round(time.Second).String() + " ago"
}
