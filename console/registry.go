package console

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"

	universe "github.com/universe-orchestrator/universe"
)

// Writer receives a command's output, one line at a time (no newline).
type Writer interface {
	WriteLine(line string)
}

// Lines is a Writer that collects lines.
type Lines []string

// WriteLine appends line.
func (l *Lines) WriteLine(line string) { *l = append(*l, line) }

// Command is one command of the grammar. A command either runs (Run) or
// groups subcommands (Sub); Execute picks the deepest match of the words.
type Command struct {
	Name    string
	Aliases []string
	// Usage is the whole grammar of the command, e.g.
	// "key create <label> <ALL|PUBLIC> [--expires 30d]".
	Usage   string
	Summary string
	Sub     []*Command
	// Run gets the words after the command's own name(s).
	Run func(ctx context.Context, args []string, w Writer) error
	// Args, when set, offers the terminal's completion the values of the
	// command's first argument (instance ids, say), asked when completing.
	Args func() []string
}

// ErrUsage, returned by a Run func, makes Execute answer with the usage of
// the command that ran.
var ErrUsage = errors.New("usage")

// Registry is a set of top-level commands.
type Registry struct {
	cmds   []*Command
	byName map[string]*Command
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{byName: map[string]*Command{}} }

// Register adds commands. It returns an error if a name or alias is taken.
func (r *Registry) Register(cmds ...*Command) error {
	for _, c := range cmds {
		for _, n := range append([]string{c.Name}, c.Aliases...) {
			if _, ok := r.byName[n]; ok {
				return fmt.Errorf("console: command %q registered twice", n)
			}
			r.byName[n] = c
		}
		r.cmds = append(r.cmds, c)
	}
	return nil
}

// Commands returns the top-level commands in registration order.
func (r *Registry) Commands() []*Command { return r.cmds }

// Execute runs one command line and writes its output to w. An empty line
// does nothing. Errors: EINVALID for an unknown command or a usage error
// (the message says the right usage); otherwise whatever the command returns.
func (r *Registry) Execute(ctx context.Context, line string, w Writer) error {
	words, err := Split(line)
	if err != nil {
		return err
	}
	return r.ExecuteArgs(ctx, words, w)
}

// ExecuteArgs is Execute for a line already split into words.
func (r *Registry) ExecuteArgs(ctx context.Context, words []string, w Writer) error {
	if len(words) == 0 {
		return nil
	}
	cmd, ok := r.byName[words[0]]
	if !ok {
		return universe.Errorf(universe.EINVALID, "unknown command %q; type help for the list", words[0])
	}
	args := words[1:]
	for len(cmd.Sub) > 0 {
		if len(args) == 0 {
			return usageOf(cmd)
		}
		sub := find(cmd.Sub, args[0])
		if sub == nil {
			return universe.Errorf(universe.EINVALID, "unknown subcommand %q of %s; usage:\n%s", args[0], cmd.Name, usageText(cmd))
		}
		cmd, args = sub, args[1:]
	}
	if cmd.Run == nil {
		return usageOf(cmd)
	}
	if err := cmd.Run(ctx, args, w); errors.Is(err, ErrUsage) {
		return usageOf(cmd)
	} else if err != nil {
		return err
	}
	return nil
}

func find(cmds []*Command, name string) *Command {
	for _, c := range cmds {
		if c.Name == name {
			return c
		}
		for _, a := range c.Aliases {
			if a == name {
				return c
			}
		}
	}
	return nil
}

func usageOf(c *Command) error {
	return universe.Errorf(universe.EINVALID, "usage: %s", usageText(c))
}

// usageText is the usage of c, or of all of its leaves, one per line.
func usageText(c *Command) string {
	if len(c.Sub) == 0 {
		return c.Usage
	}
	var lines []string
	for _, s := range c.Sub {
		lines = append(lines, usageText(s))
	}
	return strings.Join(lines, "\n")
}

// Leaves returns every runnable command under the registry with its
// full usage, sorted by usage (used by help and completion).
func (r *Registry) Leaves() []*Command {
	var out []*Command
	var walk func(c *Command)
	walk = func(c *Command) {
		if len(c.Sub) == 0 {
			out = append(out, c)
			return
		}
		for _, s := range c.Sub {
			walk(s)
		}
	}
	for _, c := range r.cmds {
		walk(c)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Usage < out[j].Usage })
	return out
}

// Split breaks a command line into words at white space. Double or single
// quotes group words ("a b" is one word); a backslash escapes the next
// character. Errors: EINVALID for an unterminated quote or a control
// character.
func Split(line string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	escaped := false
	for _, r := range line {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case r == '\\' && quote != '\'':
			escaped, inWord = true, true
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t' || r == '\r' || r == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case r < 0x20 || r == 0x7f:
			return nil, universe.Errorf(universe.EINVALID, "control character in command line")
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 || escaped {
		return nil, universe.Errorf(universe.EINVALID, "unterminated quote or escape in command line")
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// callerKey is the context key of the Caller.
type callerKey struct{}

// Caller says who runs a command: a key (REST, WebSocket) or the terminal.
type Caller struct {
	KeyID  string // "" for the master's terminal and the offline CLI
	Label  string
	Source string // "terminal", "rest", "websocket", "cli"
}

// WithCaller returns ctx carrying c.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the Caller in ctx, or a terminal caller.
func CallerFrom(ctx context.Context) Caller {
	if c, ok := ctx.Value(callerKey{}).(Caller); ok {
		return c
	}
	return Caller{Source: "terminal"}
}

// Table writes rows under header as aligned columns, one line each.
func Table(w Writer, header []string, rows [][]string) {
	var buf strings.Builder
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	_ = tw.Flush()
	for _, l := range strings.Split(strings.TrimRight(buf.String(), "\n"), "\n") {
		w.WriteLine(strings.TrimRight(l, " "))
	}
}
