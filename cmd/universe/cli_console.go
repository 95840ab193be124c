package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/chzyer/readline"
)

// consoleCommand is "universe console": the master's console over WS
// /api/console. On a terminal it has readline history and completion of
// the command words (learnt from the master's help); otherwise it runs
// the lines of stdin one by one, failing on the first failed command.
var consoleCommand = &command{usage: "console", nargs: [2]int{0, 0}, run: func(r *remote, _ []string) int {
	k, err := r.c.Console(r.ctx)
	if err != nil {
		return r.fail(err)
	}
	defer k.Close()
	print := func(l string) { fmt.Fprintln(r.stdout, l) }
	in, isFile := r.stdin.(*os.File)
	if !isFile || !isTerminal(in) {
		sc := bufio.NewScanner(r.stdin)
		sc.Buffer(make([]byte, 64<<10), 64<<10)
		n := 0
		for sc.Scan() {
			n++
			line := strings.TrimSpace(sc.Text())
			if line == "" {
				continue
			}
			if err := k.Run(line, print); err != nil {
				code := r.fail(err)
				// Fail fast, as a script wants, but say where and what was
				// left undone.
				fmt.Fprintf(r.stderr, "universe: stopped at line %d (%s); the lines after it were not run\n", n, line)
				return code
			}
		}
		return exitOK
	}
	// Completion from the master's own help: the leading words of each
	// usage line.
	var help []string
	_ = k.Run("help", func(l string) { help = append(help, l) })
	history := ""
	if p := configPath(os.Getenv); p != "" {
		history = filepath.Join(filepath.Dir(p), "console_history")
		_ = os.MkdirAll(filepath.Dir(history), 0o700)
		if f, err := os.OpenFile(history, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600); err == nil {
			_ = f.Close()
		}
	}
	rl, err := readline.NewEx(&readline.Config{Prompt: "universe@" + hostOf(r.c.URL()) + "> ", HistoryFile: history,
		AutoComplete: completerFromHelp(help), InterruptPrompt: "^C", Stdin: in, Stdout: r.stdout})
	if err != nil {
		fmt.Fprintln(r.stderr, "universe:", err)
		return exitError
	}
	defer rl.Close()
	fmt.Fprintln(r.stdout, "Connected to "+r.c.URL()+". Type help for the commands, Ctrl-D to leave.")
	for {
		line, err := rl.Readline()
		if errors.Is(err, readline.ErrInterrupt) {
			continue
		} else if err != nil {
			return exitOK // Ctrl-D
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		if err := k.Run(line, func(l string) { fmt.Fprintln(rl.Stdout(), l) }); err != nil {
			if code := r.fail(err); code != exitError {
				return code
			}
			if errors.Is(err, io.EOF) || r.ctx.Err() != nil {
				return exitError
			}
		}
	}
}}

func hostOf(u string) string {
	u = strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://")
	if i := strings.IndexByte(u, '/'); i >= 0 {
		u = u[:i]
	}
	return u
}

// completerFromHelp builds a completion tree from help lines such as
// "  instance list [--state S]   list instances".
func completerFromHelp(help []string) *readline.PrefixCompleter {
	type node struct {
		kids  map[string]*node
		order []string
	}
	root := &node{kids: map[string]*node{}}
	for _, l := range help {
		n := root
		usage, _, _ := strings.Cut(strings.TrimSpace(l), "  ") // the summary follows two spaces
		for _, w := range strings.Fields(usage) {
			if w == "" || !isWord(w) {
				break
			}
			if n.kids[w] == nil {
				n.kids[w] = &node{kids: map[string]*node{}}
				n.order = append(n.order, w)
			}
			n = n.kids[w]
		}
	}
	var build func(n *node) []readline.PrefixCompleterInterface
	build = func(n *node) []readline.PrefixCompleterInterface {
		var out []readline.PrefixCompleterInterface
		for _, w := range n.order {
			out = append(out, readline.PcItem(w, build(n.kids[w])...))
		}
		return out
	}
	delete(root.kids, "Commands:")
	return readline.NewPrefixCompleter(build(root)...)
}

// isWord: a command word, not a placeholder, option or summary text.
func isWord(w string) bool {
	for _, c := range w {
		if !(c >= 'a' && c <= 'z' || c == '-') {
			return false
		}
	}
	return true
}
