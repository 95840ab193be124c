package master

import (
	"context"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/cluster"
	"github.com/universe-orchestrator/universe/console"
	"github.com/universe-orchestrator/universe/instance"
)

// The cluster's nodes: the master's own (local) and the agents of the hub.

// localNode describes the master's own node.
func (m *Master) localNode() api.ClusterNode {
	return api.ClusterNode{ID: m.cfg.NodeID, Name: m.cfg.NodeID, Address: m.publicHost(), State: api.NodeOnline, Local: true,
		LastHeartbeat: m.cfg.Now().UnixMilli(), Version: m.cfg.Version, Labels: map[string]string{},
		Capacity: m.cfg.LocalCapacity}
}

// withInstances adds to each node its instances (their count, what the
// active ones reserve, and with ids their ids).
func (m *Master) withInstances(nodes []api.ClusterNode, ids bool) {
	at := map[string]*api.ClusterNode{}
	for i := range nodes {
		at[nodes[i].Name] = &nodes[i]
		if ids {
			nodes[i].Instances = []string{}
		}
	}
	for _, info := range m.instances.List(instance.Filter{}) {
		n := at[info.WrapperNodeID]
		if n == nil {
			continue
		}
		n.InstanceCount++
		if ids {
			n.Instances = append(n.Instances, info.ID)
		}
		if info.State == "ONLINE" || info.State == "CREATING" {
			n.Resources.UsedRAMMB += info.AllocatedRAMMB
			n.Resources.UsedCPU += info.AllocatedCPU
		}
	}
}

// publicHost is the master's host as others reach it.
func (m *Master) publicHost() string {
	if u, err := url.Parse(m.cfg.PublicURL); err == nil && u.Hostname() != "" {
		return u.Hostname()
	}
	return "127.0.0.1"
}

// nodes lists every node: the master's first, then the agents by name.
func (m *Master) nodes() ([]api.ClusterNode, error) {
	agents, err := m.hub.List()
	if err != nil {
		return nil, err
	}
	nodes := append([]api.ClusterNode{m.localNode()}, agents...)
	m.withInstances(nodes, false)
	return nodes, nil
}

// node describes one node, with the ids of its instances.
func (m *Master) node(name string) (api.ClusterNode, error) {
	var n api.ClusterNode
	if name == m.cfg.NodeID {
		n = m.localNode()
	} else {
		var err error
		if n, err = m.hub.Get(name); err != nil {
			return n, err
		}
	}
	one := []api.ClusterNode{n}
	m.withInstances(one, true)
	return one[0], nil
}

// createNode registers an agent node; the credential is in the join
// command, shown once.
func (m *Master) createNode(req api.NodeCreateRequest) (api.NodeCreated, error) {
	if req.Name == m.cfg.NodeID {
		return api.NodeCreated{}, universe.Errorf(universe.ECONFLICT, "%s is the master's own node", req.Name)
	}
	n, cred, err := m.hub.Create(req)
	if err != nil {
		return api.NodeCreated{}, err
	}
	if m.hub.External() {
		// The operator's cluster: the node signs in with its nkey, which
		// their servers' authorization must list with its permissions.
		_, kp, _ := cluster.ParseCredential(cred)
		pub, _ := kp.PublicKey()
		join := "UNIVERSE_NODE_KEY=" + cred + " UNIVERSE_NATS_URL=" + m.hub.JoinURL("") + " universe agent --data ./" + req.Name
		return api.NodeCreated{ClusterNode: n, Key: cred, JoinCommand: join, NATSAuthorization: cluster.ServerAuthSnippet(req.Name, pub)}, nil
	}
	joinURL := m.hub.JoinURL(m.publicHost())
	join := "UNIVERSE_NODE_KEY=" + cred + " universe agent --master " + m.natsURLs(joinURL) + " --data ./" + req.Name
	out := api.NodeCreated{ClusterNode: n, Key: cred, JoinCommand: join}
	if u, err := url.Parse(joinURL); err == nil {
		if ip, err := netip.ParseAddr(u.Hostname()); (err == nil && ip.IsLoopback()) || u.Hostname() == "localhost" {
			out.Warning = "the join command names " + u.Host + ", which only this machine reaches: for a node on another machine start the master with --public-url https://HOST:PORT (or --cluster-advertise HOST:PORT) and create the node again"
		}
	}
	return out, nil
}

// natsURLs is the agents' --master: this master's NATS URL, and in a
// cluster every other master's after it (the agent connects to any, and
// reconnects to another when it goes).
func (m *Master) natsURLs(own string) string {
	if m.ha == nil {
		return own
	}
	ctx, cancel := context.WithTimeout(m.ctx, 3*time.Second)
	defer cancel()
	urls := []string{own}
	for _, ms := range m.ha.Masters(ctx) {
		if ms.NATSURL != "" && !slices.Contains(urls, ms.NATSURL) {
			urls = append(urls, ms.NATSURL)
		}
	}
	return strings.Join(urls, ",")
}

func (m *Master) handleNodeList(c *gin.Context) {
	nodes, err := m.nodes()
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, nodes)
}

func (m *Master) handleNodeGet(c *gin.Context) {
	n, err := m.node(c.Param("name"))
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, n)
}

func (m *Master) handleNodeCreate(c *gin.Context) {
	var req api.NodeCreateRequest
	if err := bindJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	c.Set(ctxAuditDetail, "name="+req.Name)
	out, err := m.createNode(req)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, out)
}

func (m *Master) handleNodePatch(c *gin.Context) {
	var req api.NodePatch
	if err := bindJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	if req.Draining == nil {
		fail(c, universe.Errorf(universe.EINVALID, "draining (true or false) is required"))
		return
	}
	name := c.Param("name")
	if name == m.cfg.NodeID {
		fail(c, universe.Errorf(universe.ECONFLICT, "the master's own node cannot be drained (start it with --no-local-instances)"))
		return
	}
	c.Set(ctxAuditDetail, "draining="+strconv.FormatBool(*req.Draining))
	n, err := m.hub.SetDraining(name, *req.Draining)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, n)
}

func (m *Master) handleNodeRevoke(c *gin.Context) {
	name := c.Param("name")
	if name == m.cfg.NodeID {
		fail(c, universe.Errorf(universe.ECONFLICT, "the master's own node cannot be revoked"))
		return
	}
	do := m.hub.Revoke
	if c.Query("forget") == "true" {
		do = m.hub.Delete // revoked, and gone from the list
	}
	if err := do(name); err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// nodeCommands are "node ..." and the original's "cluster status|nodes".
func (m *Master) nodeCommands() []*console.Command {
	list := func(_ context.Context, _ []string, w console.Writer) error {
		nodes, err := m.nodes()
		if err != nil {
			return err
		}
		rows := [][]string{}
		for _, n := range nodes {
			hb := "-"
			if n.LastHeartbeat > 0 && !n.Local {
				hb = m.cfg.Now().Sub(unixMilli(n.LastHeartbeat)).Round(100*time.Millisecond).String() + " ago"
			}
			rows = append(rows, []string{n.Name, n.State, strconv.FormatBool(n.Local), orDash(n.Address), hb,
				strconv.Itoa(n.Capacity.RAMMB), strconv.Itoa(n.Capacity.CPU), strconv.Itoa(n.InstanceCount), labelsText(n.Labels)})
		}
		console.Table(w, []string{"NAME", "STATE", "LOCAL", "ADDRESS", "HEARTBEAT", "RAM MB", "CPU", "INSTANCES", "LABELS"}, rows)
		return nil
	}
	create := &console.Command{Name: "create", Usage: "node create <name> [--ram MB] [--cpu N] [--ports MIN-MAX] [--labels k=v,...]",
		Summary: "register an agent node; prints its join command once",
		Run: func(_ context.Context, args []string, w console.Writer) error {
			req, err := parseNodeCreate(args)
			if err != nil {
				return err
			}
			out, err := m.createNode(req)
			if err != nil {
				return err
			}
			w.WriteLine("Created node " + out.Name + ". Its credential is shown only now; on the node's machine run:")
			w.WriteLine(out.JoinCommand)
			if out.Warning != "" {
				w.WriteLine("Warning: " + out.Warning)
			}
			if out.NATSAuthorization != "" {
				w.WriteLine("Add this user to the authorization of your NATS servers (its permissions are the node's own subjects):")
				w.WriteLine(out.NATSAuthorization)
			}
			return nil
		}}
	one := func(usage, summary string, run func(name string, w console.Writer) error) *console.Command {
		name, _, _ := strings.Cut(strings.TrimPrefix(usage, "node "), " ")
		return &console.Command{Name: name, Usage: usage, Summary: summary,
			Run: func(_ context.Context, args []string, w console.Writer) error {
				if len(args) != 1 {
					return console.ErrUsage
				}
				return run(args[0], w)
			}}
	}
	// info and resources name a node, or without a name the master's own
	// (the original's grammar).
	mineOr := func(args []string) (api.ClusterNode, error) {
		switch len(args) {
		case 0:
			return m.node(m.cfg.NodeID)
		case 1:
			return m.node(args[0])
		}
		return api.ClusterNode{}, console.ErrUsage
	}
	info := &console.Command{Name: "info", Usage: "node info [name]", Summary: "show a node (the master's own without a name) as JSON",
		Run: func(_ context.Context, args []string, w console.Writer) error {
			n, err := mineOr(args)
			if err != nil {
				return err
			}
			writeJSON(w, n)
			return nil
		}}
	resources := &console.Command{Name: "resources", Usage: "node resources [name]", Summary: "a node's capacity and what its instances reserve (the master's own without a name)",
		Run: func(_ context.Context, args []string, w console.Writer) error {
			n, err := mineOr(args)
			if err != nil {
				return err
			}
			limit := func(v int, unit string) string {
				if v == 0 {
					return "no limit"
				}
				return strconv.Itoa(v) + unit
			}
			console.Table(w, []string{"NODE", "RAM RESERVED", "RAM CAPACITY", "CPU RESERVED", "CPU CAPACITY", "INSTANCES"}, [][]string{{
				n.Name, strconv.Itoa(n.Resources.UsedRAMMB) + " MB", limit(n.Capacity.RAMMB, " MB"),
				strconv.Itoa(n.Resources.UsedCPU), limit(n.Capacity.CPU, ""), strconv.Itoa(n.InstanceCount)}})
			return nil
		}}
	drain := one("node drain <name>", "place no new instance on the node", func(name string, w console.Writer) error {
		if _, err := m.hub.SetDraining(name, true); err != nil {
			return err
		}
		w.WriteLine("Node " + name + " is draining.")
		return nil
	})
	undrain := one("node undrain <name>", "let instances be placed on the node again", func(name string, w console.Writer) error {
		if _, err := m.hub.SetDraining(name, false); err != nil {
			return err
		}
		w.WriteLine("Node " + name + " takes instances again.")
		return nil
	})
	revoke := one("node revoke <name>", "revoke the node's credential and disconnect it", func(name string, w console.Writer) error {
		if name == m.cfg.NodeID {
			return universe.Errorf(universe.ECONFLICT, "the master's own node cannot be revoked")
		}
		if err := m.hub.Revoke(name); err != nil {
			return err
		}
		w.WriteLine("Revoked node " + name + ".")
		return nil
	})
	del := one("node delete <name>", "revoke the node (if it is not yet) and remove it from the list", func(name string, w console.Writer) error {
		if name == m.cfg.NodeID {
			return universe.Errorf(universe.ECONFLICT, "the master's own node cannot be deleted")
		}
		if err := m.hub.Delete(name); err != nil {
			return err
		}
		w.WriteLine("Deleted node " + name + ".")
		return nil
	})
	node := &console.Command{Name: "node", Usage: "node <list|info|resources|create|drain|undrain|revoke|delete>", Summary: "the cluster's nodes",
		Sub: []*console.Command{
			{Name: "list", Usage: "node list", Summary: "list the nodes", Run: list},
			info, resources, create, drain, undrain, revoke, del,
		}}
	cl := &console.Command{Name: "cluster", Usage: "cluster <status|nodes>", Summary: "the cluster (the original's commands)",
		Sub: []*console.Command{
			{Name: "nodes", Usage: "cluster nodes", Summary: "list the nodes", Run: list},
			{Name: "status", Usage: "cluster status", Summary: "count the nodes by state", Run: func(_ context.Context, _ []string, w console.Writer) error {
				nodes, err := m.nodes()
				if err != nil {
					return err
				}
				by := map[string]int{}
				for _, n := range nodes {
					by[n.State]++
				}
				states := make([]string, 0, len(by))
				for s, k := range by {
					states = append(states, s+" "+strconv.Itoa(k))
				}
				sort.Strings(states)
				addr := m.hub.Listening()
				switch {
				case m.hub.External():
					addr = "none: the nodes use the NATS cluster " + m.hub.JoinURL("")
				case addr == "":
					addr = "not listening (no node registered)"
				}
				w.WriteLine("Nodes: " + strconv.Itoa(len(nodes)) + " (" + strings.Join(states, ", ") + "); node port: " + addr)
				return nil
			}},
		}}
	return []*console.Command{node, cl}
}

// parseNodeCreate parses "name [--ram MB] [--cpu N] [--ports MIN-MAX]
// [--labels k=v,...]".
func parseNodeCreate(args []string) (api.NodeCreateRequest, error) {
	if len(args) < 1 || strings.HasPrefix(args[0], "--") {
		return api.NodeCreateRequest{}, console.ErrUsage
	}
	req := api.NodeCreateRequest{Name: args[0]}
	for i := 1; i < len(args); i += 2 {
		if i+1 >= len(args) {
			return req, console.ErrUsage
		}
		v := args[i+1]
		var err error
		switch args[i] {
		case "--ram":
			req.RAMMB, err = strconv.Atoi(v)
		case "--cpu":
			req.CPU, err = strconv.Atoi(v)
		case "--ports":
			lo, hi, ok := strings.Cut(v, "-")
			p := api.Ports{}
			if p.Min, err = strconv.Atoi(lo); err == nil && ok {
				p.Max, err = strconv.Atoi(hi)
			} else if !ok {
				err = universe.Errorf(universe.EINVALID, "--ports: want MIN-MAX")
			}
			req.Ports = &p
		case "--labels":
			req.Labels = map[string]string{}
			for _, kv := range strings.Split(v, ",") {
				k, val, ok := strings.Cut(kv, "=")
				if !ok {
					return req, universe.Errorf(universe.EINVALID, "--labels: want k=v,...")
				}
				req.Labels[k] = val
			}
		default:
			return req, console.ErrUsage
		}
		if err != nil {
			return req, universe.Errorf(universe.EINVALID, "%s: %v", args[i], universe.ErrorMessage(err))
		}
	}
	return req, nil
}

func labelsText(l map[string]string) string {
	if len(l) == 0 {
		return "-"
	}
	kv := make([]string, 0, len(l))
	for k, v := range l {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func unixMilli(ms int64) time.Time { return time.UnixMilli(ms) }
