package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/universe-orchestrator/universe/api/client"
)

// The words of the command line, for shell completion.
func completionTree() map[string][]string {
	tree := map[string][]string{
		"":           {"master", "agent", "status", "auth", "login", "key", "user", "grant", "instance", "config", "node", "cluster", "template", "backup", "schedule", "webhook", "events", "audit", "console", "completion", "version", "help"},
		"completion": {"bash", "zsh", "fish"},
	}
	for _, g := range []group{authGroup, keyGroup, instanceGroup, configGroup, templateGroup, nodeGroup, clusterGroup, backupGroup, scheduleGroup, webhookGroup, userGroup, grantGroup} {
		for n := range g.subs {
			tree[g.name] = append(tree[g.name], n)
		}
		sort.Strings(tree[g.name])
	}
	return tree
}

// runCompletion prints a completion script for bash, zsh or fish.
func runCompletion(e cliEnv, args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(e.stderr, "Usage: universe completion bash|zsh|fish\n\n  bash: source <(universe completion bash)\n  zsh:  source <(universe completion zsh)\n  fish: universe completion fish | source")
		return exitUsage
	}
	tree := completionTree()
	switch args[0] {
	case "bash", "zsh":
		var b strings.Builder
		if args[0] == "zsh" {
			b.WriteString("autoload -U +X bashcompinit && bashcompinit\n")
		}
		b.WriteString("_universe() {\n  local cur=${COMP_WORDS[COMP_CWORD]} words\n  case $COMP_CWORD in\n")
		fmt.Fprintf(&b, "    1) words=%q ;;\n", strings.Join(tree[""], " "))
		b.WriteString("    2) case ${COMP_WORDS[1]} in\n")
		for _, k := range sortedKeys(tree) {
			if k != "" {
				fmt.Fprintf(&b, "         %s) words=%q ;;\n", k, strings.Join(tree[k], " "))
			}
		}
		b.WriteString("       esac ;;\n")
		// The third word names something the master has: ask it.
		b.WriteString("    3) case \"${COMP_WORDS[1]} ${COMP_WORDS[2]}\" in\n")
		for _, k := range sortedKeys(dynamicCompletions) {
			fmt.Fprintf(&b, "         %q) words=$(universe __complete %s 2>/dev/null) ;;\n", k, dynamicCompletions[k])
		}
		b.WriteString("       esac ;;\n")
		// instance files <verb> <id>
		b.WriteString("    4) case \"${COMP_WORDS[1]} ${COMP_WORDS[2]}\" in\n         \"instance files\") words=$(universe __complete instances 2>/dev/null) ;;\n       esac ;;\n")
		b.WriteString("  esac\n  COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n}\ncomplete -o default -F _universe universe\n")
		fmt.Fprint(e.stdout, b.String())
	case "fish":
		fmt.Fprintf(e.stdout, "complete -c universe -f -n __fish_use_subcommand -a %q\n", strings.Join(tree[""], " "))
		for _, k := range sortedKeys(dynamicCompletions) {
			g, sub, _ := strings.Cut(k, " ")
			fmt.Fprintf(e.stdout, "complete -c universe -f -n '__fish_seen_subcommand_from %s; and __fish_seen_subcommand_from %s' -a '(universe __complete %s 2>/dev/null)'\n", g, sub, dynamicCompletions[k])
		}
		for _, k := range sortedKeys(tree) {
			if k != "" {
				fmt.Fprintf(e.stdout, "complete -c universe -f -n '__fish_seen_subcommand_from %s' -a %q\n", k, strings.Join(tree[k], " "))
			}
		}
	default:
		fmt.Fprintf(e.stderr, "universe: completion for %q: want bash, zsh or fish\n", args[0])
		return exitUsage
	}
	return exitOK
}

// dynamicCompletions: after these two words comes a name the master knows.
var dynamicCompletions = map[string]string{
	"instance info": "instances", "instance start": "instances", "instance stop": "instances", "instance restart": "instances",
	"instance kill": "instances", "instance delete": "instances", "instance exec": "instances", "instance logs": "instances",
	"instance create": "configurations", "config show": "configurations", "config delete": "configurations",
	"template pull": "templates", "template export": "templates", "template delete": "templates",
	"instance stats": "instances", "instance pprof": "instances", "instance files": "files",
	"node info": "nodes", "node drain": "nodes", "node undrain": "nodes", "node revoke": "nodes", "node delete": "nodes",
	"key revoke": "keys",
}

// runComplete prints the names of one kind the master has, one a line,
// for the completion scripts; it prints nothing when the master cannot be
// asked (no token, not running), quickly.
func runComplete(e cliEnv, args []string) int {
	if len(args) != 1 {
		return exitUsage
	}
	if args[0] == "files" { // the verbs of "instance files" (the id follows them): no master to ask
		fmt.Fprintln(e.stdout, strings.Join([]string{"ls", "get", "put", "rm", "mkdir", "mv", "unzip"}, "\n"))
		return exitOK
	}
	r, code := connect(e.ctx, &connFlags{output: "table"}, e.getenv, e.stdin, e.stdout, io.Discard)
	if r == nil {
		return code
	}
	ctx, cancel := context.WithTimeout(e.ctx, 2*time.Second)
	defer cancel()
	var names []string
	switch args[0] {
	case "instances":
		list, _ := r.c.Instances(ctx, client.InstanceFilter{})
		for _, in := range list {
			names = append(names, in.ID)
		}
	case "configurations":
		list, _ := r.c.Configurations(ctx)
		for _, c := range list {
			names = append(names, c.Name)
		}
	case "templates":
		list, _ := r.c.Templates(ctx)
		for _, t := range list {
			names = append(names, t.Group+"/"+t.Name)
		}
	case "keys":
		list, _ := r.c.Keys(ctx)
		for _, k := range list {
			names = append(names, k.Label)
		}
	case "nodes":
		list, _ := r.c.Nodes(ctx)
		for _, n := range list {
			names = append(names, n.Name)
		}
	default:
		return exitUsage
	}
	for _, n := range names {
		fmt.Fprintln(e.stdout, n)
	}
	return exitOK
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
