package master

import (
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
// configuration's nodes allow (empty: every node, this master's own too
// unless --no-local-instances) that are connected and not draining, have
// the capacity left (a node's declared ramMB and cpu minus what its active
// instances reserve; 0 declares no limit; this master's own node declares
// none) and a free port in both its range and the configuration's: the one
// with the fewest instances of the configuration, then the fewest in all.
// The local answer means this master's node (its port is allocated there).
func (r remote) Place(cfg api.Configuration, usage func(node string) instance.NodeUsage) (string, int, bool, error) {
	local := r.m.cfg.NodeID
	allowed := cfg.Nodes
	if len(allowed) == 0 {
		agents, err := r.m.hub.List()
		if err != nil {
			return "", 0, false, err
		}
		if len(agents) == 0 && !r.m.cfg.NoLocalInstances {
			return "", 0, true, nil // a lone master: the common case
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
		if name == local {
			if r.m.cfg.NoLocalInstances {
				why[name] = "takes no instances (--no-local-instances)"
				continue
			}
			u := usage(name)
			cands = append(cands, cand{name: name, ofCfg: u.ByConfig[cfg.Name], total: u.Instances})
			continue
		}
		n, err := r.m.hub.Get(name)
		if err != nil {
			why[name] = "unknown"
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
		if (n.Capacity.RAMMB > 0 && u.RAMMB+cfg.RAMMB > n.Capacity.RAMMB) || (n.Capacity.CPU > 0 && u.CPU+cfg.CPU > n.Capacity.CPU) {
			why[name] = "full"
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

func (r remote) Start(node string, epoch int64, spec supervisor.Spec, install instance.Install, sink supervisor.Sink) (instance.Process, error) {
	p, err := r.m.hub.Start(node, epoch, spec, &cluster.Install{Plan: install.Plan, Override: install.Override,
		Files: install.Files, Placeholders: install.Placeholders, RAMMB: install.RAMMB, CPU: install.CPU}, sink)
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (r remote) Adopt(node, id string, epoch int64, pid int, sink supervisor.Sink) instance.Process {
	return r.m.hub.Adopt(node, id, epoch, pid, sink)
}
