package console

import (
	"context"
	"fmt"
)

// HelpCommand lists every command of r with its usage.
func HelpCommand(r *Registry) *Command {
	return &Command{
		Name: "help", Usage: "help", Summary: "list the commands",
		Run: func(_ context.Context, args []string, w Writer) error {
			if len(args) > 0 {
				return ErrUsage
			}
			w.WriteLine("Commands:")
			for _, c := range r.Leaves() {
				w.WriteLine(fmt.Sprintf("  %-52s %s", c.Usage, c.Summary))
			}
			return nil
		},
	}
}

// StopCommand stops the master by calling stop (which must not block).
func StopCommand(stop func()) *Command {
	return &Command{
		Name: "stop", Aliases: []string{"exit"}, Usage: "stop", Summary: "stop the master (alias: exit)",
		Run: func(_ context.Context, args []string, w Writer) error {
			if len(args) > 0 {
				return ErrUsage
			}
			w.WriteLine("Stopping the master.")
			stop()
			return nil
		},
	}
}
