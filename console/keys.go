package console

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	universe "github.com/universe-orchestrator/universe"
)

// Keys is what the key commands need: the master's keyring satisfies it.
type Keys interface {
	// CreateKey makes a key; the token is returned this once.
	CreateKey(label string, scope universe.Scope, expiresIn time.Duration) (universe.KeyRecord, string, error)
	ListKeys() []universe.KeyRecord
	RevokeKey(labelOrID string) (universe.KeyRecord, error)
}

// KeyCommands returns the "key" command group over keys; now is the clock.
func KeyCommands(keys Keys, now func() time.Time) *Command {
	create := &Command{
		Name: "create", Usage: "key create <label> <ALL|PUBLIC> [--expires 30d]",
		Summary: "create an API key; its token is shown once",
		Run: func(_ context.Context, args []string, w Writer) error {
			pos, expires, err := expiresFlag(args)
			if err != nil {
				return err
			}
			if len(pos) != 2 {
				return ErrUsage
			}
			scope, err := universe.ParseScope(pos[1])
			if err != nil {
				return err
			}
			rec, token, err := keys.CreateKey(pos[0], scope, expires)
			if err != nil {
				return err
			}
			w.WriteLine(fmt.Sprintf("Created key %q (id %s, scope %s, expires %s).", rec.Label, rec.ID, rec.Scope, when(rec.ExpiresAt, "never")))
			w.WriteLine("Token (shown only now; store it safely): " + token)
			return nil
		},
	}
	list := &Command{
		Name: "list", Usage: "key list", Summary: "list API keys (never their tokens)",
		Run: func(_ context.Context, args []string, w Writer) error {
			if len(args) > 0 {
				return ErrUsage
			}
			recs := keys.ListKeys()
			if len(recs) == 0 {
				w.WriteLine("No keys. Create one with: key create <label> <ALL|PUBLIC>")
				return nil
			}
			var buf bytes.Buffer
			tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tLABEL\tSCOPE\tCREATED\tLAST USED\tEXPIRES")
			t := now()
			for _, r := range recs {
				exp := when(r.ExpiresAt, "never")
				if r.Expired(t) {
					exp += " (expired)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Label, r.Scope, when(r.CreatedAt, "-"), when(r.LastUsedAt, "never"), exp)
			}
			_ = tw.Flush()
			for _, l := range strings.Split(strings.TrimRight(buf.String(), "\n"), "\n") {
				w.WriteLine(strings.TrimRight(l, " "))
			}
			return nil
		},
	}
	revoke := &Command{
		Name: "revoke", Aliases: []string{"delete"}, Usage: "key revoke <label|id>",
		Summary: "revoke a key at once (alias: key delete)",
		Run: func(_ context.Context, args []string, w Writer) error {
			if len(args) != 1 {
				return ErrUsage
			}
			rec, err := keys.RevokeKey(args[0])
			if err != nil {
				return err
			}
			w.WriteLine(fmt.Sprintf("Revoked key %q (id %s); its token no longer works.", rec.Label, rec.ID))
			return nil
		},
	}
	return &Command{Name: "key", Usage: "key", Summary: "manage API keys", Sub: []*Command{create, list, revoke}}
}

// expiresFlag takes "--expires D" / "--expires=D" out of args.
func expiresFlag(args []string) (pos []string, d time.Duration, err error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		var v string
		switch {
		case a == "--expires" || a == "-expires":
			if i+1 >= len(args) {
				return nil, 0, ErrUsage
			}
			i++
			v = args[i]
		case strings.HasPrefix(a, "--expires="):
			v = strings.TrimPrefix(a, "--expires=")
		case strings.HasPrefix(a, "-"):
			return nil, 0, ErrUsage
		default:
			pos = append(pos, a)
			continue
		}
		if d, err = universe.ParseDuration(v); err != nil {
			return nil, 0, err
		}
	}
	return pos, d, nil
}

func when(t time.Time, zero string) string {
	if t.IsZero() {
		return zero
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}
