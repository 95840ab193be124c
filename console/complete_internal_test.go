package console

import (
	"context"
	"strings"
	"testing"
)

// The terminal completes the values of a command's first argument (ids)
// from its Args, asked at completion time.
func TestTerminalCompletesArguments(t *testing.T) {
	r := NewRegistry()
	ids := []string{"abc123"}
	info := &Command{Name: "info", Usage: "instance info <id>", Args: func() []string { return ids },
		Run: func(context.Context, []string, Writer) error { return nil }}
	r.Register(&Command{Name: "instance", Usage: "instance", Sub: []*Command{info}})
	c := (&Terminal{Registry: r}).completer()
	line := []rune("instance info ab")
	got, _ := c.Do(line, len(line))
	var s []string
	for _, g := range got {
		s = append(s, string(g))
	}
	if strings.Join(s, ",") != "c123 " {
		t.Fatalf("completions of %q: %q", string(line), s)
	}
	ids = append(ids, "abd999") // asked again at the next completion
	got, _ = c.Do(line, len(line))
	if len(got) != 2 {
		t.Fatalf("the ids are not asked at completion time: %q", got)
	}
}
