package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/cluster/agent"
)

var nodeGroup = group{name: "node", subs: map[string]*command{
	"list": {usage: "node list", nargs: [2]int{0, 0}, run: func(r *remote, _ []string) int {
		nodes, err := r.c.Nodes(r.ctx)
		return printList(r, nodes, err, []string{"NAME", "STATE", "LOCAL", "ADDRESS", "HEARTBEAT", "RAM MB", "CPU", "INSTANCES"}, func(n api.ClusterNode) []string {
			hb := fmtAgo(n.LastHeartbeat)
			if n.Local {
				hb = "-"
			}
			return []string{n.Name, r.state(n.State), strconv.FormatBool(n.Local), orDash(n.Address), hb,
				strconv.Itoa(n.Capacity.RAMMB), strconv.Itoa(n.Capacity.CPU), strconv.Itoa(n.InstanceCount)}
		})
	}},
	"info": {usage: "node info <name>", nargs: [2]int{1, 1}, run: func(r *remote, a []string) int {
		n, err := r.c.ClusterNode(r.ctx, a[0])
		if err != nil {
			return r.fail(err)
		}
		if r.json {
			r.printJSON(n)
			return exitOK
		}
		r.fields([][2]string{{"Name", n.Name}, {"State", r.state(n.State)}, {"Local", strconv.FormatBool(n.Local)},
			{"Address", orDash(n.Address)}, {"Version", orDash(n.Version)}, {"Last heartbeat", fmtAgo(n.LastHeartbeat)},
			{"Capacity", fmt.Sprintf("%d MB RAM, cpu %d", n.Capacity.RAMMB, n.Capacity.CPU)},
			{"Reserved", fmt.Sprintf("%d MB RAM, cpu %d", n.Resources.UsedRAMMB, n.Resources.UsedCPU)},
			{"Instances", strings.Join(n.Instances, " ")}})
		return exitOK
	}},
	"create": {usage: "node create <name> [--ram MB] [--cpu N] [--ports MIN-MAX] [--labels k=v,...]", nargs: [2]int{1, 1},
		flags: func(fs *flag.FlagSet) func(*remote, []string) int {
			ram := fs.Int("ram", 0, "memory the node offers, MB")
			cpu := fs.Int("cpu", 0, "CPU the node offers (100 = one core)")
			ports := fs.String("ports", "", "the node's port range MIN-MAX")
			labels := fs.String("labels", "", "labels k=v,...")
			return func(r *remote, a []string) int {
				req := api.NodeCreateRequest{Name: a[0], RAMMB: *ram, CPU: *cpu}
				if *ports != "" {
					lo, hi, ok := strings.Cut(*ports, "-")
					min, err1 := strconv.Atoi(lo)
					max, err2 := strconv.Atoi(hi)
					if !ok || err1 != nil || err2 != nil {
						fmt.Fprintln(r.stderr, "universe: --ports: want MIN-MAX")
						return exitUsage
					}
					req.Ports = &api.Ports{Min: min, Max: max}
				}
				if *labels != "" {
					req.Labels = map[string]string{}
					for _, kv := range strings.Split(*labels, ",") {
						k, v, ok := strings.Cut(kv, "=")
						if !ok {
							fmt.Fprintln(r.stderr, "universe: --labels: want k=v,...")
							return exitUsage
						}
						req.Labels[k] = v
					}
				}
				n, err := r.c.CreateNode(r.ctx, req)
				if err != nil {
					return r.fail(err)
				}
				if r.json {
					r.printJSON(n)
					return exitOK
				}
				fmt.Fprintf(r.stdout, "Created node %s. Its credential is shown only now; on the node's machine run:\n%s\n", n.Name, n.JoinCommand)
				if n.Warning != "" {
					fmt.Fprintf(r.stderr, "warning: %s\n", n.Warning)
				}
				if n.NATSAuthorization != "" {
					fmt.Fprintf(r.stdout, "Add this user to the authorization of your NATS servers (its permissions are the node's own subjects):\n%s\n", n.NATSAuthorization)
				}
				return exitOK
			}
		}},
	"drain":   {usage: "node drain <name>", nargs: [2]int{1, 1}, run: func(r *remote, a []string) int { return nodeDrain(r, a[0], true) }},
	"undrain": {usage: "node undrain <name>", nargs: [2]int{1, 1}, run: func(r *remote, a []string) int { return nodeDrain(r, a[0], false) }},
	"delete": {usage: "node delete <name>", nargs: [2]int{1, 1}, run: func(r *remote, a []string) int {
		if err := r.c.DeleteNode(r.ctx, a[0]); err != nil {
			return r.fail(err)
		}
		if !r.json {
			fmt.Fprintf(r.stdout, "Deleted node %s.\n", a[0])
		}
		return exitOK
	}},
	"revoke": {usage: "node revoke <name>", nargs: [2]int{1, 1}, run: func(r *remote, a []string) int {
		if err := r.c.RevokeNode(r.ctx, a[0]); err != nil {
			return r.fail(err)
		}
		if !r.json {
			fmt.Fprintf(r.stdout, "Revoked node %s.\n", a[0])
		}
		return exitOK
	}},
}}

func nodeDrain(r *remote, name string, draining bool) int {
	n, err := r.c.SetNodeDraining(r.ctx, name, draining)
	if err != nil {
		return r.fail(err)
	}
	if r.json {
		r.printJSON(n)
	} else {
		fmt.Fprintf(r.stdout, "Node %s is %s.\n", n.Name, n.State)
	}
	return exitOK
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// runAgent is "universe agent": the agent-only binary when it lies next
// to this one (a fraction of the memory), else this binary.
func runAgent(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	if slim := agent.Sibling(agent.Binary); slim != "" && getenv("UNIVERSE_AGENT_IN_PROCESS") == "" {
		// The credential goes in the environment, as it came.
		err := syscall.Exec(slim, append([]string{agent.Binary, "agent"}, args...), os.Environ())
		fmt.Fprintf(stderr, "universe agent: run %s: %v\n", slim, err)
		return exitError
	}
	// Supervisors: the supervisor-only binary where there is one, as the
	// master's (agent.Options.Supervisor left empty); docker's, this one.
	return agent.Main(ctx, args, getenv, stderr, versionString(), nil, []string{agent.Self()})
}
