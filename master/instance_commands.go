package master

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/console"
	"github.com/universe-orchestrator/universe/instance"
)

// by names the caller of a console command in instance logs.
func by(ctx context.Context) string {
	c := console.CallerFrom(ctx)
	if c.Label != "" {
		return c.Label
	}
	return "console"
}

// instanceCommands are the "config", "template" and "instance" commands.
// They live here because they drive the instance manager, which the master
// owns; their grammar is the original Universe's.
func (m *Master) instanceCommands() []*console.Command {
	return []*console.Command{m.configCommand(), m.templateCommand(), m.instanceCommand()}
}

func (m *Master) configCommand() *console.Command {
	list := &console.Command{Name: "list", Usage: "config list", Summary: "list configurations",
		Run: func(_ context.Context, args []string, w console.Writer) error {
			cfgs, err := m.db.ListConfigurations()
			if err != nil {
				return err
			}
			if len(cfgs) == 0 {
				w.WriteLine("No configurations. Create one with: config create <name> <runtime> <command...>")
				return nil
			}
			rows := [][]string{}
			for _, c := range cfgs {
				c = instance.Normalize(c)
				rows = append(rows, []string{c.Name, c.Runtime, strconv.FormatBool(c.Static),
					fmt.Sprintf("%d-%d", c.AvailablePorts.Min, c.AvailablePorts.Max), strconv.Itoa(len(m.instances.Live(c.Name))), c.Command})
			}
			console.Table(w, []string{"NAME", "RUNTIME", "STATIC", "PORTS", "LIVE", "COMMAND"}, rows)
			return nil
		}}
	show := &console.Command{Name: "show", Usage: "config show <name>", Summary: "show a configuration as JSON",
		Run: func(_ context.Context, args []string, w console.Writer) error {
			if len(args) != 1 {
				return console.ErrUsage
			}
			c, err := m.db.GetConfiguration(args[0])
			if err != nil {
				return err
			}
			writeJSON(w, instance.Normalize(c))
			return nil
		}}
	create := &console.Command{Name: "create", Usage: "config create <name> <runtime> <command...>",
		Summary: "create a configuration with the defaults",
		Run: func(_ context.Context, args []string, w console.Writer) error {
			if len(args) < 3 {
				return console.ErrUsage
			}
			if _, err := m.db.GetConfiguration(args[0]); err == nil {
				return universe.Errorf(universe.ECONFLICT, "configuration %s exists already", args[0])
			}
			c := api.Configuration{Name: args[0], Runtime: args[1], Command: strings.Join(args[2:], " ")}
			if err := m.putConfiguration(c); err != nil {
				return err
			}
			w.WriteLine("Created configuration " + args[0] + ".")
			return nil
		}}
	del := &console.Command{Name: "delete", Usage: "config delete <name> [--force]",
		Summary: "delete a configuration (--force stops its live instances)",
		Run: func(ctx context.Context, args []string, w console.Writer) error {
			force := false
			var pos []string
			for _, a := range args {
				if a == "--force" {
					force = true
				} else {
					pos = append(pos, a)
				}
			}
			if len(pos) != 1 {
				return console.ErrUsage
			}
			if err := m.deleteConfiguration(pos[0], force, by(ctx)); err != nil {
				return err
			}
			w.WriteLine("Deleted configuration " + pos[0] + ".")
			return nil
		}}
	reload := &console.Command{Name: "reload", Usage: "config reload",
		Summary: "import " + filepath.Join(m.cfg.ConfigDir, "*.json") + " into the store",
		Run: func(_ context.Context, args []string, w console.Writer) error {
			if len(args) != 0 {
				return console.ErrUsage
			}
			return m.reloadConfigurations(w)
		}}
	return &console.Command{Name: "config", Usage: "config", Summary: "manage configurations",
		Sub: []*console.Command{list, show, create, del, reload}}
}

// reloadConfigurations imports every *.json file of ConfigDir (the
// original's layout); a file's name gives the configuration's name when it
// has none. Bad files are reported and skipped.
func (m *Master) reloadConfigurations(w console.Writer) error {
	files, err := filepath.Glob(filepath.Join(m.cfg.ConfigDir, "*.json"))
	if err != nil {
		return universe.Errorf(universe.EINVALID, "bad configuration folder")
	}
	sort.Strings(files)
	if len(files) == 0 {
		w.WriteLine("No *.json files in " + m.cfg.ConfigDir + ".")
		return nil
	}
	ok, bad := 0, 0
	for _, f := range files {
		base := filepath.Base(f)
		data, err := os.ReadFile(f)
		if err != nil {
			w.WriteLine(base + ": cannot be read")
			bad++
			continue
		}
		var c api.Configuration
		if err := json.Unmarshal(data, &c); err != nil {
			w.WriteLine(base + ": " + universe.ErrorMessage(jsonError(err)))
			bad++
			continue
		}
		if c.Name == "" {
			c.Name = strings.TrimSuffix(base, ".json")
		}
		if err := m.putConfiguration(c); err != nil {
			w.WriteLine(base + ": " + universe.ErrorMessage(err))
			bad++
			continue
		}
		w.WriteLine(base + ": imported as " + c.Name)
		ok++
	}
	w.WriteLine(fmt.Sprintf("Imported %d configurations, %d failed.", ok, bad))
	if bad > 0 {
		return universe.Errorf(universe.EINVALID, "%d configuration files could not be imported", bad)
	}
	return nil
}

// writeJSON writes v as indented JSON, a line at a time.
func writeJSON(w console.Writer, v any) {
	b, _ := json.MarshalIndent(v, "", "  ")
	for _, l := range strings.Split(string(b), "\n") {
		w.WriteLine(l)
	}
}

func splitTemplate(s string) (string, string, error) {
	g, n, ok := strings.Cut(s, "/")
	if !ok {
		return "", "", console.ErrUsage
	}
	return g, n, nil
}

func (m *Master) templateCommand() *console.Command {
	list := &console.Command{Name: "list", Usage: "template list", Summary: "list templates",
		Run: func(_ context.Context, args []string, w console.Writer) error {
			ts, err := m.templates.List()
			if err != nil {
				return err
			}
			if len(ts) == 0 {
				w.WriteLine("No templates in " + m.templates.Dir() + ".")
				return nil
			}
			rows := [][]string{}
			for _, t := range ts {
				rows = append(rows, []string{t.Group + "/" + t.Name, strconv.Itoa(t.Files), strconv.FormatInt(t.Size, 10)})
			}
			console.Table(w, []string{"TEMPLATE", "FILES", "BYTES"}, rows)
			return nil
		}}
	// onTemplate builds a command that does fn to the template named by
	// its one argument and says what it did.
	onTemplate := func(name, summary, did string, fn func(group, name string) error) *console.Command {
		return &console.Command{Name: name, Usage: "template " + name + " <group>/<name>", Summary: summary,
			Run: func(_ context.Context, args []string, w console.Writer) error {
				if len(args) != 1 {
					return console.ErrUsage
				}
				g, n, err := splitTemplate(args[0])
				if err != nil {
					return err
				}
				if err := fn(g, n); err != nil {
					return err
				}
				w.WriteLine(did + " template " + g + "/" + n + ".")
				return nil
			}}
	}
	create := onTemplate("create", "create an empty template", "Created", m.templates.Create)
	del := onTemplate("delete", "delete a template and its files", "Deleted", m.templates.Delete)
	return &console.Command{Name: "template", Usage: "template", Summary: "manage templates",
		Sub: []*console.Command{list, create, del}}
}

func pidText(p *int64) string {
	if p == nil {
		return "-"
	}
	return strconv.FormatInt(*p, 10)
}

// instanceIDs are the ids the console's completion offers (at most 1000).
func (m *Master) instanceIDs() []string {
	var ids []string
	for _, in := range m.instances.List(instance.Filter{}) {
		if len(ids) == 1000 {
			break
		}
		ids = append(ids, in.ID)
	}
	return ids
}

func (m *Master) instanceCommand() *console.Command {
	one := func(name, usage, summary string, run func(ctx context.Context, in *instance.Instance, rest []string, w console.Writer) error) *console.Command {
		return &console.Command{Name: name, Usage: usage, Summary: summary, Args: m.instanceIDs,
			Run: func(ctx context.Context, args []string, w console.Writer) error {
				if len(args) < 1 {
					return console.ErrUsage
				}
				in, err := m.instances.Get(args[0])
				if err != nil {
					return err
				}
				return run(ctx, in, args[1:], w)
			}}
	}
	state := func(in *instance.Instance, w console.Writer) {
		info := in.Info()
		line := fmt.Sprintf("Instance %s is %s", info.ID, info.State)
		if info.Reason != "" {
			line += " (" + info.Reason + ")"
		}
		w.WriteLine(line + ".")
	}
	list := &console.Command{Name: "list", Usage: "instance list", Summary: "list instances",
		Run: func(_ context.Context, args []string, w console.Writer) error {
			all := m.instances.List(instance.Filter{})
			if len(all) == 0 {
				w.WriteLine("No instances. Create one with: instance create <config> [amount]")
				return nil
			}
			rows := [][]string{}
			for _, i := range all {
				rows = append(rows, []string{i.ID, i.ConfigurationName, i.State, i.HostAddress + ":" + strconv.Itoa(i.AllocatedPort), pidText(i.ProcessPid), i.Reason})
			}
			console.Table(w, []string{"ID", "CONFIGURATION", "STATE", "ADDRESS", "PID", "REASON"}, rows)
			return nil
		}}
	create := &console.Command{Name: "create", Usage: "instance create <config> [amount]", Summary: "create and start instances",
		Run: func(ctx context.Context, args []string, w console.Writer) error {
			if len(args) < 1 || len(args) > 2 {
				return console.ErrUsage
			}
			n := 1
			if len(args) == 2 {
				v, err := strconv.Atoi(args[1])
				if err != nil || v < 1 || v > 100 {
					return universe.Errorf(universe.EINVALID, "amount must be a number from 1 to 100")
				}
				n = v
			}
			for i := 0; i < n; i++ {
				info, err := m.instances.Create(args[0], by(ctx))
				if err != nil {
					return err
				}
				line := fmt.Sprintf("Created instance %s on port %d: %s", info.ID, info.AllocatedPort, info.State)
				if info.Reason != "" {
					line += " (" + info.Reason + ")"
				}
				w.WriteLine(line + ".")
			}
			return nil
		}}
	// action is a lifecycle command: it waits for the action's end and
	// says the state it left the instance in.
	action := func(name, summary string, act func(in *instance.Instance, by string) error) *console.Command {
		return one(name, "instance "+name+" <id>", summary,
			func(ctx context.Context, in *instance.Instance, rest []string, w console.Writer) error {
				if len(rest) != 0 {
					return console.ErrUsage
				}
				if err := act(in, by(ctx)); err != nil {
					return err
				}
				state(in, w)
				return nil
			})
	}
	stop := action("stop", "stop an instance gracefully and wait for it",
		func(in *instance.Instance, by string) error { in.StopWait(by); return nil })
	start := action("start", "start a stopped instance", (*instance.Instance).StartWait)
	restart := action("restart", "stop and start an instance (same id and files)", (*instance.Instance).RestartWait)
	kill := one("kill", "instance kill <id>", "kill an instance's processes at once (SIGKILL)",
		func(ctx context.Context, in *instance.Instance, rest []string, w console.Writer) error {
			if len(rest) != 0 {
				return console.ErrUsage
			}
			if err := in.Kill(by(ctx)); err != nil {
				return err
			}
			w.WriteLine("Killed instance " + in.ID() + ".")
			return nil
		})
	info := one("info", "instance info <id>", "show an instance as JSON",
		func(_ context.Context, in *instance.Instance, rest []string, w console.Writer) error {
			if len(rest) != 0 {
				return console.ErrUsage
			}
			writeJSON(w, in.Info())
			return nil
		})
	execute := one("execute", "instance execute <id> <command...>", "send one line to an instance's stdin",
		func(_ context.Context, in *instance.Instance, rest []string, w console.Writer) error {
			if len(rest) == 0 {
				return console.ErrUsage
			}
			if err := in.Execute(strings.Join(rest, " ")); err != nil {
				return err
			}
			w.WriteLine("Sent to " + in.ID() + ".")
			return nil
		})
	logsCmd := one("logs", "instance logs <id> [lines]", "show the last lines of an instance's log (default 100)",
		func(_ context.Context, in *instance.Instance, rest []string, w console.Writer) error {
			n := 100
			if len(rest) > 1 {
				return console.ErrUsage
			}
			if len(rest) == 1 {
				v, err := strconv.Atoi(rest[0])
				if err != nil || v < 1 || v > maxLogLines {
					return universe.Errorf(universe.EINVALID, "lines must be a number from 1 to %d", maxLogLines)
				}
				n = v
			}
			lines, _, omitted := in.Log().Last(n, m.cfg.MaxLogResponseBytes)
			if omitted > 0 {
				w.WriteLine(fmt.Sprintf("(%d older lines left out: the answer is limited to %d bytes)", omitted, m.cfg.MaxLogResponseBytes))
			}
			for _, l := range lines {
				w.WriteLine(l.Line)
			}
			return nil
		})
	del := one("delete", "instance delete <id>", "stop an instance and delete it with its files",
		func(ctx context.Context, in *instance.Instance, rest []string, w console.Writer) error {
			if len(rest) != 0 {
				return console.ErrUsage
			}
			if err := m.instances.Delete(in.ID(), by(ctx)); err != nil {
				return err
			}
			w.WriteLine("Deleted instance " + in.ID() + ".")
			return nil
		})
	return &console.Command{Name: "instance", Usage: "instance", Summary: "manage instances",
		Sub: []*console.Command{list, create, start, stop, kill, restart, info, execute, logsCmd, del}}
}
