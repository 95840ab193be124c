package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

// readmeCommand is one shell command of a README example and what the
// README shows it prints (the "# ..." lines right under it).
type readmeCommand struct {
	line   int
	text   string
	expect []string
}

// readmeBlock is one ```sh block; skip is the reason given in a
// "<!-- readme-test: skip: ... -->" line right above it.
type readmeBlock struct {
	line     int
	skip     string
	commands []readmeCommand
}

func readmeBlocks(t *testing.T, path string) []readmeBlock {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		blocks  []readmeBlock
		cur     *readmeBlock
		skip    string
		pending *readmeCommand // a command whose continuation lines are still coming
		last    *readmeCommand // the command the next "# " lines belong to
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		raw := sc.Text()
		line := strings.TrimSpace(raw)
		if cur == nil {
			switch {
			case strings.HasPrefix(line, "<!-- readme-test: skip:"):
				skip = strings.TrimSuffix(strings.TrimPrefix(line, "<!-- readme-test: skip:"), "-->")
			case line == "```sh":
				blocks = append(blocks, readmeBlock{line: n, skip: strings.TrimSpace(skip)})
				cur, skip, last = &blocks[len(blocks)-1], "", nil
			case line != "":
				skip = ""
			}
			continue
		}
		if line == "```" {
			// A command still open at the block's end (a quote left
			// open, in a comment too) would swallow the blocks after it.
			if pending != nil && cur.skip == "" {
				t.Fatalf("README line %d: the command never ends (a quote left open?)", pending.line)
			}
			if cur.skip == "" && len(cur.commands) == 0 {
				t.Fatalf("README line %d: a block without a command", cur.line)
			}
			cur, pending = nil, nil
			continue
		}
		if cur.skip != "" {
			continue // not run: not parsed
		}
		if pending != nil {
			pending.text += "\n" + raw
			if !continues(pending.text) {
				cur.commands = append(cur.commands, *pending)
				last, pending = &cur.commands[len(cur.commands)-1], nil
			}
			continue
		}
		switch {
		case line == "":
			last = nil
		case strings.HasPrefix(line, "#"):
			if last != nil {
				last.expect = append(last.expect, strings.TrimSpace(strings.TrimPrefix(line, "#")))
			}
		default:
			c := readmeCommand{line: n, text: line}
			if continues(c.text) {
				pending = &c
				continue
			}
			cur.commands = append(cur.commands, c)
			last = &cur.commands[len(cur.commands)-1]
		}
	}
	return blocks
}

// continues says whether a command goes on on the next line: a trailing
// backslash, or a single quote still open.
func continues(s string) bool {
	return strings.HasSuffix(s, "\\") || strings.Count(s, "'")%2 == 1
}

var (
	jsonKey  = regexp.MustCompile(`"([A-Za-z]+)":`)
	httpLine = regexp.MustCompile(`^HTTP/1\.1 (\d{3})`)
	header   = regexp.MustCompile(`^([A-Z][A-Za-z-]+): `)
	digits   = regexp.MustCompile(`[0-9]+`)
)

// checkExpect holds out against what the README shows: the status line,
// header names, the keys of JSON (values vary: ids, times), and other
// text with any number in place of each number.
func checkExpect(out string, expect []string) string {
	for _, e := range expect {
		switch {
		case httpLine.MatchString(e):
			want := httpLine.FindStringSubmatch(e)[1]
			if m := httpLine.FindStringSubmatch(out); m == nil || m[1] != want {
				return "status " + want
			}
		case header.MatchString(e):
			name := header.FindStringSubmatch(e)[1]
			if !strings.Contains(strings.ToLower(out), "\n"+strings.ToLower(name)+":") {
				return "header " + name
			}
		case strings.HasPrefix(e, "{") || strings.HasPrefix(e, "["):
			for _, k := range jsonKey.FindAllStringSubmatch(e, -1) {
				if !strings.Contains(out, `"`+k[1]+`":`) {
					return "field " + k[1]
				}
			}
		default:
			re := digits.ReplaceAllString(regexp.QuoteMeta(e), `[0-9]+`)
			if !regexp.MustCompile(re).MatchString(out) {
				return "text " + e
			}
		}
	}
	return ""
}

// Every example of the README runs as written against a real master, and
// prints what the README says it prints. A block that cannot run here says
// why in a marker above it.
func TestREADMEExamples(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries and runs a master: not with -short")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed (CI installs it)")
	}
	_, self, _, _ := runtime.Caller(0) // the tests may run in another directory
	root := filepath.Join(filepath.Dir(self), "..", "..")
	blocks := readmeBlocks(t, filepath.Join(root, "README.md"))
	if len(blocks) < 5 {
		t.Fatalf("found %d examples in the README", len(blocks))
	}
	bin, gobin, work, home := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	for _, c := range [][]string{{"go", "build", "-o", filepath.Join(bin, "universe"), "./cmd/universe"},
		{"go", "build", "-o", filepath.Join(bin, "universe-supervisor"), "./cmd/universe-supervisor"}} {
		cmd := exec.Command(c[0], c[1:]...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", c, err, out)
		}
	}
	dir := t.TempDir()
	_, out, _ := cli(t, "key", "create", "admin", "ALL", "--data", dir)
	admin := tokenRE.FindString(out)
	_, out, _ = cli(t, "key", "create", "viewer", "PUBLIC", "--data", dir)
	public := tokenRE.FindString(out)
	// Three PUBLIC calls a minute, so that the README's 429 example (its
	// fourth PUBLIC call) shows a 429.
	cm := startChildMaster(t, dir, freePort(t), "--public-rate-limit", "3/60s")
	addr := strings.TrimPrefix(cm.base, "http://")
	// HOME is a fresh one (no CLI config file); Go's caches stay where
	// they are.
	goenv, err := exec.Command("go", "env", "GOCACHE", "GOMODCACHE", "GOPATH").Output()
	if err != nil {
		t.Fatal(err)
	}
	ge := strings.Fields(string(goenv))
	env := append(os.Environ(), "GOCACHE="+ge[0], "GOMODCACHE="+ge[1], "GOPATH="+ge[2],
		"PATH="+gobin+":"+bin+":"+os.Getenv("PATH"), "GOBIN="+gobin, "HOME="+home,
		"TOKEN="+admin, "PUB="+public, "UNIVERSE_URL="+cm.base, "UNIVERSE_TOKEN="+admin)
	ran := 0
	for _, b := range blocks {
		if b.skip != "" {
			t.Logf("README line %d: not run: %s", b.line, b.skip)
			continue
		}
		for _, c := range b.commands {
			text := strings.ReplaceAll(c.text, "localhost:7000", addr)
			text = strings.ReplaceAll(text, "go run ./cmd/universe", "universe")
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			cmd := exec.CommandContext(ctx, "sh", "-c", text)
			cmd.Env, cmd.Dir = env, work
			if strings.HasPrefix(text, "go ") {
				cmd.Dir = root
			}
			start := time.Now()
			got, err := cmd.CombinedOutput()
			cancel()
			if d := time.Since(start); d > 5*time.Second {
				t.Logf("README line %d took %s", c.line, d.Round(time.Millisecond))
			}
			if err != nil {
				t.Fatalf("README line %d: %s\n%v\n%s", c.line, c.text, err, got)
			}
			// What is printed may take a moment (an instance's first line).
			for deadline := time.Now().Add(10 * time.Second); checkExpect(string(got), c.expect) != "" && time.Now().Before(deadline); {
				time.Sleep(100 * time.Millisecond)
				if strings.Contains(text, "instance logs") {
					cmd := exec.Command("sh", "-c", text)
					cmd.Env, cmd.Dir = env, work
					got, _ = cmd.CombinedOutput()
				} else {
					break
				}
			}
			if miss := checkExpect(string(got), c.expect); miss != "" {
				t.Errorf("README line %d: %s\nprints %q\nwhich lacks the %s the README shows", c.line, c.text, got, miss)
			}
			ran++
		}
	}
	t.Logf("%d README commands ran", ran)
	if ran < 15 {
		t.Fatalf("only %d README commands ran", ran)
	}
}
