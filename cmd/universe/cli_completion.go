package main

import (
	"fmt"
	"sort"
	"strings"
)

// The words of the command line, for shell completion.
func completionTree() map[string][]string {
	tree := map[string][]string{
		"":           {"master", "status", "auth", "key", "instance", "config", "template", "console", "completion", "version", "help"},
		"completion": {"bash", "zsh", "fish"},
	}
	for _, g := range []group{authGroup, keyGroup, instanceGroup, configGroup, templateGroup} {
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
		b.WriteString("       esac ;;\n  esac\n  COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n}\ncomplete -o default -F _universe universe\n")
		fmt.Fprint(e.stdout, b.String())
	case "fish":
		fmt.Fprintf(e.stdout, "complete -c universe -f -n __fish_use_subcommand -a %q\n", strings.Join(tree[""], " "))
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

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
