package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/universe-orchestrator/universe/api"
)

// backupGroup is `universe backup create|list|info|download|restore|delete|lock|unlock`.
var backupGroup = group{name: "backup", subs: map[string]*command{
	"create": {usage: "backup create <instance> [--name NAME] [--ignore PATTERN,...] [--no-wait]", nargs: [2]int{1, 1},
		flags: func(fs *flag.FlagSet) func(*remote, []string) int {
			name := fs.String("name", "", "the backup's name (at most 64 bytes)")
			ignore := fs.String("ignore", "", "gitignore patterns to leave out, comma-separated")
			noWait := fs.Bool("no-wait", false, "return once the backup is under way")
			return func(r *remote, a []string) int {
				req := api.BackupRequest{Name: *name}
				if *ignore != "" {
					req.Ignore = strings.Split(*ignore, ",")
				}
				b, err := r.c.CreateBackup(r.ctx, a[0], req)
				if err != nil {
					return r.fail(err)
				}
				if !*noWait {
					p := r.progress()
					for b.State == api.BackupPending || b.State == api.BackupRunning {
						p.show("backup %s of %s: %s", b.ID, a[0], b.State)
						select {
						case <-r.ctx.Done():
							p.done()
							return r.fail(r.ctx.Err())
						case <-time.After(250 * time.Millisecond):
						}
						if b, err = r.c.Backup(r.ctx, b.ID); err != nil {
							p.done()
							return r.fail(err)
						}
					}
					p.done()
				}
				if r.json {
					r.printJSON(b)
				} else {
					backupFields(r, b)
				}
				if b.State == api.BackupFailed {
					return exitError
				}
				return exitOK
			}
		}},
	"list": {usage: "backup list <instance> | backup list --configuration NAME", nargs: [2]int{0, 1},
		flags: func(fs *flag.FlagSet) func(*remote, []string) int {
			cfg := fs.String("configuration", "", "the backups of this configuration's instances")
			return func(r *remote, a []string) int {
				var list []api.Backup
				var err error
				switch {
				case *cfg != "" && len(a) == 0:
					list, err = r.c.ConfigurationBackups(r.ctx, *cfg)
				case *cfg == "" && len(a) == 1:
					list, err = r.c.Backups(r.ctx, a[0])
				default:
					fmt.Fprintln(r.stderr, "universe: name an instance, or --configuration")
					return exitUsage
				}
				return printList(r, list, err, []string{"ID", "INSTANCE", "NAME", "STATE", "SIZE", "FILES", "LOCKED", "CREATED", "BY"}, func(b api.Backup) []string {
					return []string{b.ID, b.InstanceID, b.Name, r.state(b.State), fmtSize(b.SizeBytes), strconv.Itoa(b.Files),
						strconv.FormatBool(b.Locked), b.CreatedAt.UTC().Format("2006-01-02 15:04:05Z"), b.By}
				})
			}
		}},
	"info": {usage: "backup info <backup>", nargs: [2]int{1, 1}, run: func(r *remote, a []string) int {
		b, err := r.c.Backup(r.ctx, a[0])
		if err != nil {
			return r.fail(err)
		}
		if r.json {
			r.printJSON(b)
		} else {
			backupFields(r, b)
		}
		return exitOK
	}},
	"download": {usage: "backup download <backup> [-f file.tar.zst]", nargs: [2]int{1, 1},
		flags: func(fs *flag.FlagSet) func(*remote, []string) int {
			out := fs.String("f", "", "the file to write (default <backup>.tar.zst; - for stdout)")
			return func(r *remote, a []string) int {
				path := *out
				if path == "" {
					path = a[0] + ".tar.zst"
				}
				var w io.Writer = r.stdout
				var f *os.File
				if path != "-" {
					var err error
					if f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); err != nil {
						fmt.Fprintln(r.stderr, "universe:", err)
						return exitError
					}
					w = f
				}
				n, err := r.c.DownloadBackup(r.ctx, a[0], w)
				if f != nil {
					if cerr := f.Close(); err == nil {
						err = cerr
					}
					if err != nil {
						_ = os.Remove(path)
					}
				}
				if err != nil {
					return r.fail(err)
				}
				if f != nil && !r.json {
					fmt.Fprintf(r.stdout, "Wrote %s (%s, SHA-256 checked).\n", path, fmtSize(n))
				}
				return exitOK
			}
		}},
	"restore": {usage: "backup restore <backup> [--truncate]", nargs: [2]int{1, 1},
		flags: func(fs *flag.FlagSet) func(*remote, []string) int {
			truncate := fs.Bool("truncate", false, "delete what the backup does not hold (default: lay it over the folder)")
			return func(r *remote, a []string) int {
				b, err := r.c.RestoreBackup(r.ctx, a[0], *truncate)
				if err != nil {
					return r.fail(err)
				}
				if r.json {
					r.printJSON(b)
				} else {
					fmt.Fprintf(r.stdout, "Restoring %s into %s: the instance's log says when it is done.\n", a[0], b.InstanceID)
				}
				return exitOK
			}
		}},
	"delete": {usage: "backup delete <backup>", nargs: [2]int{1, 1}, run: func(r *remote, a []string) int {
		if err := r.c.DeleteBackup(r.ctx, a[0]); err != nil {
			return r.fail(err)
		}
		if !r.json {
			fmt.Fprintf(r.stdout, "Deleted %s.\n", a[0])
		}
		return exitOK
	}},
	"lock":   backupLock(true),
	"unlock": backupLock(false),
}}

func backupLock(locked bool) *command {
	verb := map[bool]string{true: "lock", false: "unlock"}[locked]
	return &command{usage: "backup " + verb + " <backup>", nargs: [2]int{1, 1}, run: func(r *remote, a []string) int {
		b, err := r.c.LockBackup(r.ctx, a[0], locked)
		if err != nil {
			return r.fail(err)
		}
		if r.json {
			r.printJSON(b)
		} else {
			fmt.Fprintf(r.stdout, "%s %sed.\n", b.ID, verb)
		}
		return exitOK
	}}
}

func backupFields(r *remote, b api.Backup) {
	done := "-"
	if b.CompletedAt != nil {
		done = b.CompletedAt.UTC().Format("2006-01-02 15:04:05Z")
	}
	kv := [][2]string{{"ID", b.ID}, {"Instance", b.InstanceID}, {"Configuration", b.Configuration}, {"Name", b.Name},
		{"Target", b.Target}, {"State", r.state(b.State)}}
	if b.Reason != "" {
		kv = append(kv, [2]string{"Reason", b.Reason})
	}
	kv = append(kv, [][2]string{{"Size", fmtSize(b.SizeBytes)}, {"Entries", strconv.Itoa(b.Files)}, {"SHA-256", orDash(b.SHA256)},
		{"Locked", strconv.FormatBool(b.Locked)}, {"Created", b.CreatedAt.UTC().Format("2006-01-02 15:04:05Z")}, {"Completed", done}, {"By", b.By}}...)
	r.fields(kv)
}

// fmtSize is a byte count for people.
func fmtSize(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
