package master

import (
	"fmt"
	"sort"
	"strings"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/cluster"
	"github.com/universe-orchestrator/universe/instance"
	"github.com/universe-orchestrator/universe/instance/supervisor"
)

// remote places instances on agent nodes and runs them there through the
// hub (instance.Remote).
type remote struct{ m *Master }

var _ instance.Remote = remote{}

// Place chooses the node of a new instance of cfg among those its
// configuration allows (its nodes, empty: every node, this master's own too
// unless --no-local-instances; and of those, the ones whose labels match
// every one of its nodeLabels) that are connected and not draining, have
// the capacity left (Fits) and a free port in both its range and the
// configuration's: the one with the fewest instances of the configuration,
// then the fewest in all. The local answer means this master's node (its
// port is allocated there).
func (r remote) Place(cfg api.Configuration, usage func(node string) instance.NodeUsage) (string, int, bool, error) {
	local := r.m.cfg.NodeID
	allowed := cfg.Nodes
	if len(allowed) == 0 {
		agents, err := r.m.hub.List()
		if err != nil {
			return "", 0, false, err
		}
		if len(agents) == 0 && !r.m.cfg.NoLocalInstances && len(cfg.NodeLabels) == 0 && r.m.cfg.LocalCapacity == (api.NodeCapacity{}) {
			return "", 0, true, nil // a lone master without limits: the common case
		}
		allowed = []string{local}
		for _, a := range agents {
			allowed = append(allowed, a.Name)
		}
	}
	type cand struct {
		name         string
		port         int
		ofCfg, total int
	}
	var cands []cand
	why := map[string]string{}
	for _, name := range allowed {
		n, err := r.node(name)
		if err != nil {
			why[name] = "unknown"
			continue
		}
		if k, ok := labelsMiss(n.Labels, cfg.NodeLabels); ok {
			why[name] = "label " + k + " does not match"
			continue
		}
		if n.Local && r.m.cfg.NoLocalInstances {
			why[name] = "takes no instances (--no-local-instances)"
			continue
		}
		switch n.State {
		case api.NodeOnline:
		case api.NodeDraining:
			why[name] = "draining"
			continue
		default:
			why[name] = strings.ToLower(n.State)
			continue
		}
		u := usage(name)
		if err := fits(n, cfg, u); err != nil {
			why[name] = err.Error()
			continue
		}
		if n.Local {
			cands = append(cands, cand{name: name, ofCfg: u.ByConfig[cfg.Name], total: u.Instances})
			continue
		}
		lo, hi := cfg.AvailablePorts.Min, cfg.AvailablePorts.Max
		if n.Ports.Min > 0 {
			lo, hi = max(lo, n.Ports.Min), min(hi, n.Ports.Max)
		}
		port := 0
		for p := lo; p <= hi; p++ {
			if !u.Ports[p] {
				port = p
				break
			}
		}
		if port == 0 {
			why[name] = "no free port"
			continue
		}
		cands = append(cands, cand{name: name, port: port, ofCfg: u.ByConfig[cfg.Name], total: u.Instances})
	}
	if len(cands) == 0 {
		reasons := make([]string, 0, len(why))
		for n, w := range why {
			reasons = append(reasons, n+": "+w)
		}
		sort.Strings(reasons)
		return "", 0, false, universe.Errorf(universe.EUNAVAILABLE, "no node can host an instance of %s (%s)", cfg.Name, strings.Join(reasons, "; "))
	}
	sort.SliceStable(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		if a.ofCfg != b.ofCfg {
			return a.ofCfg < b.ofCfg
		}
		return a.total < b.total
	})
	c := cands[0]
	return c.name, c.port, c.name == local, nil
}

// node is a node by name: this master's own or an agent.
func (r remote) node(name string) (api.ClusterNode, error) {
	if name == r.m.cfg.NodeID {
		return r.m.localNode(), nil
	}
	return r.m.hub.Get(name)
}

// Fits says whether an instance of cfg may start on node, beside what the
// node's other active instances reserve (u): every start asks, not only
// placement, so an instance that could not start at its creation cannot
// push its node past its capacity later. Errors: EUNAVAILABLE naming the
// resource that ran out.
func (r remote) Fits(node string, cfg api.Configuration, u instance.NodeUsage) error {
	n, err := r.node(node)
	if err != nil {
		return nil // an unknown node: the start says so
	}
	if err := fits(n, cfg, u); err != nil {
		return universe.Errorf(universe.EUNAVAILABLE, "node %s is %s", node, err.Error())
	}
	return nil
}

// fits checks a node's declared capacity (0: no limit) against what its
// active instances reserve plus cfg.
func fits(n api.ClusterNode, cfg api.Configuration, u instance.NodeUsage) error {
	if c := n.Capacity.RAMMB; c > 0 && u.RAMMB+cfg.RAMMB > c {
		return fmt.Errorf("full: ramMB %d of %d reserved, %s needs %d", u.RAMMB, c, cfg.Name, cfg.RAMMB)
	}
	if c := n.Capacity.CPU; c > 0 && u.CPU+cfg.CPU > c {
		return fmt.Errorf("full: cpu %d of %d reserved, %s needs %d", u.CPU, c, cfg.Name, cfg.CPU)
	}
	return nil
}

// labelsMiss names the first label of want that have lacks or holds with
// another value.
func labelsMiss(have, want map[string]string) (string, bool) {
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if v, ok := have[k]; !ok || v != want[k] {
			return k + "=" + want[k], true
		}
	}
	return "", false
}

func (r remote) Start(node string, epoch int64, spec supervisor.Spec, install instance.Install, sink supervisor.Sink) (instance.Process, error) {
	p, err := r.m.hub.Start(node, epoch, spec, &cluster.Install{Plan: install.Plan, Override: install.Override,
		Files: install.Files, Placeholders: install.Placeholders, RAMMB: install.RAMMB, CPU: install.CPU,
		Health: install.Health, Port: install.Port}, sink)
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (r remote) Adopt(node, id string, epoch int64, pid int, sink supervisor.Sink) instance.Process {
	return r.m.hub.Adopt(node, id, epoch, pid, sink)
}
