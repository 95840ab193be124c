package master

import (
	"slices"
	"sort"
	"strings"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/instance"
	"github.com/universe-orchestrator/universe/instance/supervisor"
)

// remote places instances on agent nodes and runs them there through the
// hub (instance.Remote).
type remote struct{ m *Master }

var _ instance.Remote = remote{}

// Place puts an instance of cfg on an agent node when its configuration's
// nodes name agents and not this master's node; else here. Among the
// allowed agents that are connected and not draining, those with the
// capacity left (a node's declared ramMB and cpu minus what its active
// instances reserve; 0 declares no limit) and a free port in its range and
// the configuration's, the one with the fewest instances of the
// configuration, then the fewest in all, is chosen.
func (r remote) Place(cfg api.Configuration, usage func(node string) instance.NodeUsage) (string, int, bool, error) {
	if len(cfg.Nodes) == 0 || slices.Contains(cfg.Nodes, r.m.cfg.NodeID) {
		return "", 0, true, nil
	}
	type cand struct {
		name         string
		port         int
		ofCfg, total int
	}
	var cands []cand
	why := map[string]string{}
	for _, name := range cfg.Nodes {
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
	sort.Slice(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		if a.ofCfg != b.ofCfg {
			return a.ofCfg < b.ofCfg
		}
		if a.total != b.total {
			return a.total < b.total
		}
		return a.name < b.name
	})
	return cands[0].name, cands[0].port, false, nil
}

func (r remote) Start(node string, epoch int64, spec supervisor.Spec, sink supervisor.Sink) (instance.Process, error) {
	p, err := r.m.hub.Start(node, epoch, spec, sink)
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (r remote) Adopt(node, id string, epoch int64, pid int, sink supervisor.Sink) instance.Process {
	return r.m.hub.Adopt(node, id, epoch, pid, sink)
}
