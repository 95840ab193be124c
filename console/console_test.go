package console_test

import (
	"context"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/console"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		bad  bool
	}{
		{"", nil, false},
		{"   ", nil, false},
		{"key list", []string{"key", "list"}, false},
		{"  key   create\tx ALL ", []string{"key", "create", "x", "ALL"}, false},
		{`execute abc "say hello world"`, []string{"execute", "abc", "say hello world"}, false},
		{`a 'b "c" d'`, []string{"a", `b "c" d`}, false},
		{`a b\ c`, []string{"a", "b c"}, false},
		{`a ""`, []string{"a", ""}, false},
		{`a "open`, nil, true},
		{`a \`, nil, true},
		{"a \x1b[31m", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := console.Split(tt.in)
			if (err != nil) != tt.bad || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Split(%q) = %q, %v", tt.in, got, err)
			}
		})
	}
}

// fakeKeys is an in-memory console.Keys for grammar tests; the real keyring
// is tested in master/auth and end to end.
type fakeKeys struct{ created []string }

func (f *fakeKeys) CreateKey(label string, scope universe.Scope, exp time.Duration) (universe.KeyRecord, string, error) {
	f.created = append(f.created, label+" "+string(scope)+" "+exp.String())
	return universe.KeyRecord{ID: "k1", Label: label, Scope: scope}, "unv_TOKEN", nil
}
func (f *fakeKeys) ListKeys() []universe.KeyRecord { return nil }
func (f *fakeKeys) RevokeKey(ref string) (universe.KeyRecord, error) {
	return universe.KeyRecord{}, universe.Errorf(universe.ENOTFOUND, "no key with label or id %q", ref)
}

func TestExecute(t *testing.T) {
	keys := &fakeKeys{}
	stopped := false
	r := console.NewRegistry()
	if err := r.Register(console.HelpCommand(r), console.StopCommand(func() { stopped = true }), console.KeyCommands(keys, time.Now)); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(&console.Command{Name: "exit"}); err == nil {
		t.Fatal("duplicate name accepted")
	}
	tests := []struct {
		line   string
		code   string
		output string // substring of the output or the error message
	}{
		{"", "", ""},
		{"help", "", "key create <label> <ALL|PUBLIC> [--expires 30d]"},
		{"help me", universe.EINVALID, "usage: help"},
		{"nope", universe.EINVALID, `unknown command "nope"`},
		{"key", universe.EINVALID, "usage: key create"},
		{"key burn", universe.EINVALID, `unknown subcommand "burn"`},
		{"key create", universe.EINVALID, "usage: key create <label> <ALL|PUBLIC>"},
		{"key create a b c", universe.EINVALID, "usage: key create"},
		{"key create a ROOT", universe.EINVALID, "ALL or PUBLIC"},
		{"key create a ALL --expires", universe.EINVALID, "usage: key create"},
		{"key create a ALL --expires never", universe.EINVALID, "invalid duration"},
		{"key create a ALL --bogus", universe.EINVALID, "usage: key create"},
		{"key create ci PUBLIC --expires 30d", "", "Token (shown only now"},
		{"key create ci2 ALL --expires=2w", "", "Created key"},
		{"key list", "", "No keys"},
		{"key list extra", universe.EINVALID, "usage: key list"},
		{"key revoke", universe.EINVALID, "usage: key revoke <label|id>"},
		{"key delete ghost", universe.ENOTFOUND, "no key"},
		{"exit", "", "Stopping"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			var out console.Lines
			err := r.Execute(context.Background(), tt.line, &out)
			if got := universe.ErrorCode(err); got != tt.code {
				t.Fatalf("code %q (%v), want %q", got, err, tt.code)
			}
			text := strings.Join(out, "\n") + universe.ErrorMessage(err)
			if !strings.Contains(text, tt.output) {
				t.Fatalf("output %q lacks %q", text, tt.output)
			}
		})
	}
	if want := []string{"ci PUBLIC 720h0m0s", "ci2 ALL 336h0m0s"}; !reflect.DeepEqual(keys.created, want) {
		t.Fatalf("created %q", keys.created)
	}
	if !stopped {
		t.Fatal("exit did not stop")
	}
}

func TestTerminalPlainLines(t *testing.T) {
	r := console.NewRegistry()
	_ = r.Register(console.HelpCommand(r), console.KeyCommands(&fakeKeys{}, time.Now))
	pr, pw := io.Pipe()
	var out strings.Builder
	term := &console.Terminal{Registry: r, In: pr, Out: &out}
	done := make(chan error, 1)
	go func() { done <- term.Run(context.Background()) }()
	_, _ = io.WriteString(pw, "help\nkey create x ALL\nbogus\n")
	_ = pw.Close() // EOF ends the console, nothing else
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("console did not end at EOF")
	}
	for _, want := range []string{"Commands:", `Created key "x"`, `error: unknown command "bogus"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
