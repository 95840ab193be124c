package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/term"

	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/api/client"
)

// userGroup is `universe user …` against a running master (an admin's
// key); `universe user create NAME --data DIR` is the offline first admin
// (runUserCommand).
var userGroup = group{name: "user", subs: map[string]*command{
	"list": {usage: "user list", nargs: [2]int{0, 0}, run: func(r *remote, _ []string) int {
		list, err := r.c.Users(r.ctx)
		return printList(r, list, err, []string{"NAME", "ROLE", "2FA", "DISABLED", "CREATED"}, func(u api.User) []string {
			return []string{u.Name, role(u.Admin), yesNo(u.TOTP), yesNo(u.Disabled), fmtTime(u.CreatedAt)}
		})
	}},
	"info": {usage: "user info <name>", nargs: [2]int{1, 1}, run: func(r *remote, a []string) int {
		u, err := r.c.User(r.ctx, a[0])
		if err != nil {
			return r.fail(err)
		}
		if r.json {
			r.printJSON(u)
			return exitOK
		}
		r.fields([][2]string{{"Name", u.Name}, {"Role", role(u.Admin)}, {"Two factors", yesNo(u.TOTP)}, {"Disabled", yesNo(u.Disabled)}, {"Created", fmtTime(u.CreatedAt)}})
		return exitOK
	}},
	"create": {usage: "user create <name> [--admin]   (the password from the terminal, or stdin's first line)", nargs: [2]int{1, 1},
		flags: func(fs *flag.FlagSet) func(*remote, []string) int {
			admin := fs.Bool("admin", false, "an admin (else a member, with the rights grants give)")
			return func(r *remote, a []string) int {
				pw, err := readPassword(r.stdin, r.stderr)
				if err != nil {
					fmt.Fprintln(r.stderr, "universe:", err)
					return exitUsage
				}
				u, err := r.c.CreateUser(r.ctx, api.UserCreate{Name: a[0], Password: pw, Admin: *admin})
				if err != nil {
					return r.fail(err)
				}
				if r.json {
					r.printJSON(u)
					return exitOK
				}
				fmt.Fprintf(r.stdout, "Created user %s (%s).\n", u.Name, role(u.Admin))
				return exitOK
			}
		}},
	"passwd": {usage: "user passwd <name>   (the new password from the terminal, or stdin's first line)", nargs: [2]int{1, 1}, run: func(r *remote, a []string) int {
		pw, err := readPassword(r.stdin, r.stderr)
		if err != nil {
			fmt.Fprintln(r.stderr, "universe:", err)
			return exitUsage
		}
		if _, err := r.c.PatchUser(r.ctx, a[0], api.UserPatch{Password: &pw}); err != nil {
			return r.fail(err)
		}
		fmt.Fprintf(r.stdout, "Password of %s changed; their sessions ended.\n", a[0])
		return exitOK
	}},
	"disable": {usage: "user disable <name>", nargs: [2]int{1, 1}, run: func(r *remote, a []string) int { return setDisabled(r, a[0], true) }},
	"enable":  {usage: "user enable <name>", nargs: [2]int{1, 1}, run: func(r *remote, a []string) int { return setDisabled(r, a[0], false) }},
	"delete": {usage: "user delete <name>", nargs: [2]int{1, 1}, run: func(r *remote, a []string) int {
		if err := r.c.DeleteUser(r.ctx, a[0]); err != nil {
			return r.fail(err)
		}
		fmt.Fprintf(r.stdout, "Deleted user %s, their grants and keys.\n", a[0])
		return exitOK
	}},
}}

func setDisabled(r *remote, name string, disabled bool) int {
	if _, err := r.c.PatchUser(r.ctx, name, api.UserPatch{Disabled: &disabled}); err != nil {
		return r.fail(err)
	}
	if disabled {
		fmt.Fprintf(r.stdout, "Disabled %s: their sessions, keys and sockets ended.\n", name)
	} else {
		fmt.Fprintf(r.stdout, "Enabled %s.\n", name)
	}
	return exitOK
}

func role(admin bool) string {
	if admin {
		return "admin"
	}
	return "member"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// grantGroup is `universe grant add|list|revoke`.
var grantGroup = group{name: "grant", subs: map[string]*command{
	"add": {usage: "grant add <user> (--instance ID | --configuration NAME) <permission,permission,…>", nargs: [2]int{2, 2},
		flags: func(fs *flag.FlagSet) func(*remote, []string) int {
			inst := fs.String("instance", "", "on this instance")
			cfg := fs.String("configuration", "", "on this configuration (its instances, present and future)")
			return func(r *remote, a []string) int {
				if (*inst == "") == (*cfg == "") {
					fmt.Fprintln(r.stderr, "universe: grant add needs --instance ID or --configuration NAME (one of them)")
					return exitUsage
				}
				g, err := r.c.CreateGrant(r.ctx, a[0], api.GrantCreate{InstanceID: *inst, Configuration: *cfg, Permissions: strings.Split(a[1], ",")})
				if err != nil {
					return r.fail(err)
				}
				if r.json {
					r.printJSON(g)
					return exitOK
				}
				fmt.Fprintf(r.stdout, "Granted %s to %s on %s (grant %s).\n", strings.Join(g.Permissions, ", "), a[0], grantOn(g), g.ID)
				return exitOK
			}
		}},
	"list": {usage: "grant list <user>", nargs: [2]int{1, 1}, run: func(r *remote, a []string) int {
		list, err := r.c.Grants(r.ctx, a[0])
		return printList(r, list, err, []string{"ID", "ON", "PERMISSIONS", "BY", "CREATED"}, func(g api.Grant) []string {
			return []string{g.ID, grantOn(g), strings.Join(g.Permissions, ","), g.By, fmtTime(g.CreatedAt)}
		})
	}},
	"revoke": {usage: "grant revoke <user> <grant-id>", nargs: [2]int{2, 2}, run: func(r *remote, a []string) int {
		if err := r.c.DeleteGrant(r.ctx, a[0], a[1]); err != nil {
			return r.fail(err)
		}
		fmt.Fprintf(r.stdout, "Revoked grant %s of %s: their sessions and sockets that relied on it ended.\n", a[1], a[0])
		return exitOK
	}},
}}

func grantOn(g api.Grant) string {
	if g.InstanceID != "" {
		return "instance " + g.InstanceID
	}
	return "configuration " + g.Configuration
}

// runLogin is `universe login [NAME] [--url URL] [--config FILE] [--label L]`:
// it signs in as a user (the password, then the code of their second
// factor if they have one, asked on the terminal, or stdin's first two
// lines), makes a key of theirs and saves the URL and the key in the
// config file (0600), for every later command.
func runLogin(e cliEnv, args []string) int {
	fs := flag.NewFlagSet("universe login", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	base := fs.String("url", "", "the master's URL (env UNIVERSE_URL; default the config file's, else "+client.DefaultURL+")")
	cfgPath := fs.String("config", "", "config file to write (default ~/.config/universe/config)")
	label := fs.String("label", "", "the new key's label (default cli-<host>-<random>)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if len(pos) > 1 {
		fmt.Fprintln(e.stderr, "usage: universe login [NAME] [--url URL] [--config FILE] [--label LABEL]")
		return exitUsage
	}
	path := *cfgPath
	if path == "" {
		path = configPath(e.getenv)
	}
	if path == "" {
		fmt.Fprintln(e.stderr, "universe: no config file: set HOME or give --config")
		return exitUsage
	}
	old, err := readConfig(path, false)
	if err != nil {
		fmt.Fprintln(e.stderr, "universe:", err)
		return exitError
	}
	url := *base
	if url == "" {
		url = e.getenv("UNIVERSE_URL")
	}
	if url == "" {
		url = old.url
	}
	c, err := client.New(url, "", client.WithUserAgent("universe-cli/"+versionString()))
	if err != nil {
		fmt.Fprintln(e.stderr, "universe:", err)
		return exitUsage
	}
	in := newLineReader(e.stdin)
	name := ""
	if len(pos) == 1 {
		name = pos[0]
	} else if name, err = in.ask(e.stderr, "Name: ", false); err != nil || name == "" {
		fmt.Fprintln(e.stderr, "universe: a user name is needed")
		return exitUsage
	}
	pw, err := in.ask(e.stderr, "Password: ", true)
	if err != nil || pw == "" {
		fmt.Fprintln(e.stderr, "universe: no password (the terminal, or stdin's first line)")
		return exitUsage
	}
	code, _ := in.ask(e.stderr, "Code (empty without two factors): ", true)
	if *label == "" {
		host, _ := os.Hostname()
		b := make([]byte, 3)
		_, _ = rand.Read(b)
		*label = "cli-" + sanitizeLabel(host) + "-" + hex.EncodeToString(b)
	}
	k, err := c.Login(e.ctx, api.Login{Name: name, Password: pw, Code: code}, api.UserKeyCreate{Label: *label})
	if err != nil {
		fmt.Fprintln(e.stderr, "universe: sign-in failed:", err)
		if client.StatusOf(err) == 401 {
			return exitUnauthorized
		}
		return exitError
	}
	if err := writeConfig(path, cliConfig{url: c.URL(), token: k.Token}); err != nil {
		fmt.Fprintln(e.stderr, "universe: the key was made but not saved:", err)
		return exitError
	}
	fmt.Fprintf(e.stdout, "Signed in to %s as %s; key %s (%s) saved in %s.\n", c.URL(), name, k.Label, k.Scope, path)
	return exitOK
}

// sanitizeLabel keeps what a key's label may hold.
func sanitizeLabel(s string) string {
	s = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_' {
			return r
		}
		return -1
	}, s)
	if len(s) > 32 {
		s = s[:32]
	}
	if s == "" {
		s = "host"
	}
	return s
}

// writeConfig writes the config file (0600, its folder 0700), replacing
// it whole.
func writeConfig(path string, cfg cliConfig) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".config-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return err
	}
	if _, err := fmt.Fprintf(tmp, "# written by universe login\nurl = %s\ntoken = %s\n", cfg.url, cfg.token); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// lineReader asks on a terminal (secrets not echoed), or reads the next
// line of a pipe.
type lineReader struct {
	f  *os.File // a terminal, or nil
	br *bufio.Reader
}

func newLineReader(in io.Reader) *lineReader {
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return &lineReader{f: f}
	}
	return &lineReader{br: bufio.NewReader(io.LimitReader(in, 16<<10))}
}

func (l *lineReader) ask(prompt io.Writer, q string, secret bool) (string, error) {
	if l.f != nil {
		fmt.Fprint(prompt, q)
		if secret {
			b, err := term.ReadPassword(int(l.f.Fd()))
			fmt.Fprintln(prompt)
			return strings.TrimSpace(string(b)), err
		}
		line, err := bufio.NewReader(l.f).ReadString('\n')
		return strings.TrimSpace(line), err
	}
	line, err := l.br.ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}
