// Package hub is the master's side of the cluster: an embedded NATS server
// that agent nodes connect to, each with a credential whose public key the
// master registered and whose permissions allow only that node's subjects
// (package cluster), and the registry of nodes in bbolt with what the
// master observes of them (heartbeats, the address they connect from).
//
// The server listens only while at least one node is registered and not
// revoked. Revoking a node tells it so, then removes its key from the
// server's configuration (a reload), which closes its connection at once.
package hub

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/cluster"
	"github.com/universe-orchestrator/universe/storage"
)

// OnlineWithin is how recent a heartbeat must be for a node to be ONLINE
// (agents send one a second).
const OnlineWithin = 3 * time.Second

// Store is the part of the database the hub uses.
type Store interface {
	CreateNode(n storage.NodeRecord) error
	UpdateNode(name string, f func(*storage.NodeRecord) error) (storage.NodeRecord, error)
	GetNode(name string) (storage.NodeRecord, error)
	ListNodes() ([]storage.NodeRecord, error)
	DeleteNode(name string) error
}

// Options configure a Hub.
type Options struct {
	Store Store
	// Addr is where agents connect (host:port; default ":7001").
	Addr string
	// Advertise is the host:port agents are told to connect to (default:
	// the public URL's host and Addr's port).
	Advertise string
	TLS       *tls.Config // nil: plain TCP
	Templates Templates   // served to nodes (nil: none)
	// OnNodeChange is told when a node becomes reachable (ONLINE or
	// DRAINING) or unreachable, with when the master last heard from it.
	OnNodeChange func(node string, reachable bool, lastHeard time.Time)
	// OnHealth is told of a node's health check verdict about one of the
	// instances the master placed there (its node and epoch checked).
	OnHealth func(cluster.HealthReport)
	// NATSURL, when set, is an operator's NATS cluster (comma-separated
	// URLs, user:password@ allowed) used instead of the embedded server:
	// the master then opens no port of its own, and the nodes' permissions
	// are that cluster's own authorization (see ServerAuthSnippet).
	// NATSCreds is a .creds file to connect with.
	NATSURL, NATSCreds string
	// In a cluster of masters: RouteAddr is where this master's server
	// takes the routes of the others' (host:port), Routes their route
	// addresses, RouteTLS the masters' mutual TLS, ServerName this
	// master's (unique in the cluster). Agents then reach the leader
	// through whichever master they are connected to.
	RouteAddr  string
	Routes     []string
	RouteTLS   *tls.Config
	ServerName string
	// Term is the term this master leads in (0: it does not lead), sent
	// with every order to a node (cluster.TermHeader); nil: a master
	// alone, no term.
	Term    func() uint64
	Version string
	Logger  *slog.Logger
	Now     func() time.Time
}

// Hub runs the embedded server and tracks the nodes. Start it with Open,
// stop it with Close.
type Hub struct {
	opt Options
	log *slog.Logger

	mu        sync.Mutex
	srv       *server.Server
	nc        *nats.Conn
	masterKP  nkeys.KeyPair
	seen      map[string]*observed                        // by node name
	conns     map[string]string                           // public key → address of its connection, from the server
	procs     map[string]*Proc                            // instances' processes on nodes, by node/id
	reachable map[string]bool                             // by node, as last told to OnNodeChange
	usage     map[string]map[string]cluster.InstanceUsage // by node and instance: its last usage report
	closed    bool
	stop      chan struct{} // ends watchConns
	watching  sync.WaitGroup

	statMu sync.Mutex
	relay  map[string]*RelayStat // by node

	follower bool   // in a cluster, another master leads: no resync of nodes
	opened   bool   // Open ran: a reload before it waits for it
	loaded   string // the server's node keys and routes (serverConf) as last loaded
}

// serverConf is what a reload may change of the server's options: the
// users with their permissions, and the routes.
func serverConf(o *server.Options) string {
	var b strings.Builder
	for _, u := range o.Nkeys {
		b.WriteString(u.Nkey)
		if u.Permissions != nil && u.Permissions.Publish != nil {
			b.WriteString(strings.Join(u.Permissions.Publish.Allow, ","))
		}
		b.WriteByte(';')
	}
	for _, r := range o.Routes {
		b.WriteString(r.String())
		b.WriteByte(';')
	}
	return b.String()
}

// clustered says whether this master's server is routed to other masters'.
func (h *Hub) clustered() bool { return h.opt.RouteAddr != "" && !h.External() }

// order is a message to a node: in a cluster, stamped with the term this
// master leads in.
func (h *Hub) order(subject string, data []byte) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = data
	if h.opt.Term != nil {
		m.Header.Set(cluster.TermHeader, strconv.FormatUint(h.opt.Term(), 10))
	}
	return m
}

// Clustered makes the hub one of a cluster of masters (before Open):
// its server, named name, takes the other masters' routes at routeAddr
// and routes to theirs over mutual TLS (none with an external cluster:
// routeAddr ""), and its orders to nodes carry term's answer.
func (h *Hub) Clustered(name, routeAddr string, routes []string, routeTLS *tls.Config, term func() uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.opt.ServerName, h.opt.RouteAddr, h.opt.Routes, h.opt.RouteTLS, h.opt.Term = name, routeAddr, routes, routeTLS, term
}

// Routes are the other masters' route addresses the server has.
func (h *Hub) Routes() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.opt.Routes)
}

// SetRoutes changes the other masters' route addresses (the cluster's
// membership changed) and gives them to the server.
func (h *Hub) SetRoutes(routes []string) error {
	h.mu.Lock()
	h.opt.Routes = slices.Clone(routes)
	h.mu.Unlock()
	return h.reload()
}

// Reload gives the server the nodes' keys as the store holds them now (a
// change another master made, which the log applied here).
func (h *Hub) Reload() error { return h.reload() }

// SetLeader tells the hub whether this master leads its cluster. Only the
// leader resyncs nodes (tells them which instances it has there, which
// stops the others): gaining the leadership, it resyncs every node it
// hears from. A master alone leads.
func (h *Hub) SetLeader(leader bool) {
	h.mu.Lock()
	h.follower = !leader
	var start []string
	if leader && h.nc != nil {
		for node, o := range h.seen {
			if o.known && !o.resyncing {
				o.resyncing = true
				start = append(start, node)
			} else if o.resyncing {
				o.resyncAgain = true
			}
		}
	}
	// The new leader's instances learn the nodes' reachability as this hub
	// sees it now (what it saw as a follower was told to no instance): an
	// unreachable node's loss is counted from when it was last heard, or
	// from now; a node back since its instances' records were written
	// shows them ONLINE again.
	type seenNode struct {
		node  string
		up    bool
		heard time.Time
	}
	var nodes []seenNode
	if leader {
		for node, up := range h.reachable {
			var heard time.Time
			if o := h.seen[node]; o != nil {
				heard = o.lastHeartbeat
			}
			nodes = append(nodes, seenNode{node, up, heard})
		}
	}
	h.mu.Unlock()
	for _, node := range start {
		go h.resync(node, h.seenOf(node))
	}
	if h.opt.OnNodeChange != nil {
		for _, n := range nodes {
			h.opt.OnNodeChange(n.node, n.up, n.heard)
		}
	}
}

func (h *Hub) seenOf(node string) *observed {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seen[node]
}

// observed is what the master saw of a node itself.
type observed struct {
	known         bool // heard since it (re)connected
	lastHeartbeat time.Time
	version       string
	address       string
	seq           uint64
	boot          string
	// resyncing: a resync of the node runs (one at a time); resyncAgain:
	// it was asked for again meanwhile.
	resyncing, resyncAgain bool
}

// New builds a hub; nothing listens until Open finds a node (or a node is
// created).
func New(opt Options) *Hub {
	if opt.Addr == "" {
		opt.Addr = ":7001"
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Hub{opt: opt, log: opt.Logger, seen: map[string]*observed{}, procs: map[string]*Proc{}, stop: make(chan struct{})}
}

// Open starts the server when a node is registered.
func (h *Hub) Open() error {
	h.mu.Lock()
	h.opened = true
	h.mu.Unlock()
	nodes, err := h.opt.Store.ListNodes()
	if err != nil {
		return err
	}
	if h.External() || h.clustered() {
		// An external cluster; or routes to the other masters, which
		// agents may reach this one through.
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.startLocked(nodes)
	}
	for _, n := range nodes {
		if !n.Revoked {
			h.mu.Lock()
			defer h.mu.Unlock()
			return h.startLocked(nodes)
		}
	}
	return nil
}

// Close stops the server (agents reconnect to the next master).
func (h *Hub) Close() {
	h.mu.Lock()
	if !h.closed {
		close(h.stop)
	}
	h.closed = true
	h.mu.Unlock()
	h.watching.Wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.nc != nil {
		h.nc.Close()
		h.nc = nil
	}
	if h.srv != nil {
		h.srv.Shutdown()
		h.srv.WaitForShutdown()
		h.srv = nil
	}
}

// External says whether the hub uses an operator's NATS cluster rather
// than its embedded server.
func (h *Hub) External() bool { return h.opt.NATSURL != "" }

// Listening returns the address the server listens on ("" when it does
// not).
func (h *Hub) Listening() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.srv == nil {
		return ""
	}
	if a := h.srv.Addr(); a != nil {
		return a.String()
	}
	return ""
}

// splitAddr parses a listen address (host:port; no host: every
// interface, port 0: a random one).
func splitAddr(addr string) (string, int, error) {
	host, portS, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, universe.Errorf(universe.EINVALID, "cluster address %q: %v", addr, err)
	}
	port, err := strconv.Atoi(portS)
	if err != nil {
		return "", 0, universe.Errorf(universe.EINVALID, "cluster address %q: bad port", addr)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

func (h *Hub) serverOptions(nodes []storage.NodeRecord) (*server.Options, error) {
	host, port, err := splitAddr(h.opt.Addr)
	if err != nil {
		return nil, err
	}
	masterPub, _ := h.masterKP.PublicKey()
	users := []*server.NkeyUser{{Nkey: masterPub}} // the master: every subject
	for _, n := range nodes {
		if n.Revoked {
			continue
		}
		users = append(users, &server.NkeyUser{Nkey: n.PublicKey, Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: cluster.PublishAllowed(n.Name)},
			Subscribe: &server.SubjectPermission{Allow: cluster.SubscribeAllowed(n.Name)},
			// It may answer the master's requests, and nothing more.
			Response: &server.ResponsePermission{MaxMsgs: 1, Expires: time.Minute},
		}})
	}
	name := h.opt.ServerName
	if name == "" {
		name = "universe-master"
	}
	o := &server.Options{
		ServerName:      name,
		Host:            host,
		Port:            port,
		Nkeys:           users,
		NoLog:           true,
		NoSigs:          true,
		NoSystemAccount: true, // no $SYS account, its internal clients and event timers: nothing here uses them
		MaxPayload:      1 << 20,
		PingInterval:    time.Second, // a dead agent is noticed within seconds,
		MaxPingsOut:     3,           // not after NATS's default of minutes
		WriteDeadline:   5 * time.Second,
		AuthTimeout:     2,
	}
	if h.opt.TLS != nil {
		o.TLSConfig, o.TLS, o.TLSTimeout = h.opt.TLS, true, 2
	}
	if h.clustered() {
		rhost, rport, err := splitAddr(h.opt.RouteAddr)
		if err != nil {
			return nil, err
		}
		o.Cluster = server.ClusterOpts{Name: "universe", Host: rhost, Port: rport, TLSConfig: h.opt.RouteTLS, TLSTimeout: 2,
			NoAdvertise: false, ConnectRetries: -1}
		for _, r := range h.opt.Routes {
			u, err := url.Parse("nats-route://" + r)
			if err != nil {
				return nil, universe.Errorf(universe.EINVALID, "route %q: %v", r, err)
			}
			o.Routes = append(o.Routes, u)
		}
	}
	return o, nil
}

// startLocked starts the server with nodes' keys and connects the master
// (or, with an external cluster, only connects).
func (h *Hub) startLocked(nodes []storage.NodeRecord) error {
	if h.srv != nil || h.nc != nil || h.closed {
		return nil
	}
	if h.External() {
		return h.connectExternalLocked()
	}
	if h.masterKP == nil {
		kp, err := nkeys.CreateUser()
		if err != nil {
			return err
		}
		h.masterKP = kp
	}
	o, err := h.serverOptions(nodes)
	if err != nil {
		return err
	}
	srv, err := server.NewServer(o)
	if err != nil {
		return fmt.Errorf("cluster server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return fmt.Errorf("cluster server: not listening on %s", h.opt.Addr)
	}
	pub, _ := h.masterKP.PublicKey()
	nc, err := nats.Connect("", nats.InProcessServer(srv), nats.Name("universe-master"),
		nats.Nkey(pub, h.masterKP.Sign), nats.MaxReconnects(-1))
	if err != nil {
		srv.Shutdown()
		return fmt.Errorf("cluster server: connect: %w", err)
	}
	if err := h.serve(nc); err != nil {
		nc.Close()
		srv.Shutdown()
		return err
	}
	h.srv, h.nc = srv, nc
	h.loaded = serverConf(o)
	h.log.Info("cluster server listening", "addr", srv.Addr().String())
	h.watching.Add(1)
	go h.watchConns(srv)
	return nil
}

// serve subscribes the master's side of the protocol on nc.
func (h *Hub) serve(nc *nats.Conn) error {
	if _, err := nc.Subscribe(cluster.FromAll("hb"), h.heartbeat); err != nil {
		return err
	}
	if _, err := nc.Subscribe(cluster.FromAll("usage"), h.usageReport); err != nil {
		return err
	}
	if err := h.serveInstances(nc); err != nil {
		return err
	}
	if err := h.serveTemplates(nc); err != nil {
		return err
	}
	// The server holds the subscriptions before the hub counts as up: a
	// node's first request is not refused for want of a responder (seen
	// in CI: "no responders" to a node connecting at once).
	if nc.IsConnected() {
		_ = nc.FlushTimeout(5 * time.Second)
	}
	return nil
}

// connectExternalLocked connects the master to the operator's cluster. It
// retries in the background (the master starts while the cluster is
// down) and reconnects forever, to whichever server of the list answers.
func (h *Hub) connectExternalLocked() error {
	safe := cluster.RedactURLs(h.opt.NATSURL)
	opts := []nats.Option{nats.Name("universe-master"), nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond), nats.PingInterval(time.Second), nats.MaxPingsOutstanding(3),
		nats.Timeout(5 * time.Second),
		nats.ConnectHandler(func(c *nats.Conn) { h.log.Info("connected to the NATS cluster", "url", c.ConnectedUrlRedacted()) }),
		nats.ReconnectHandler(func(c *nats.Conn) { h.log.Info("reconnected to the NATS cluster", "url", c.ConnectedUrlRedacted()) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				h.log.Warn("disconnected from the NATS cluster", "err", err)
			}
		}),
	}
	if h.opt.NATSCreds != "" {
		opts = append(opts, nats.UserCredentials(h.opt.NATSCreds))
	}
	nc, err := nats.Connect(h.opt.NATSURL, opts...)
	if err != nil {
		return fmt.Errorf("connect to the NATS cluster %s: %w", safe, err)
	}
	if err := h.serve(nc); err != nil {
		nc.Close()
		return err
	}
	h.nc = nc
	h.log.Info("using an external NATS cluster for the nodes", "urls", safe)
	h.watching.Add(1)
	go h.watchConns(nil) // no server to ask who is connected: reachability is the heartbeats'
	return nil
}

// ConnPoll is how often the hub asks the server which nodes are
// connected: a node whose connection closed (its process died, its host
// rebooted) is DISCONNECTED within it, without waiting for heartbeats to
// stop (those tell a silent partition, within OnlineWithin).
const ConnPoll = 200 * time.Millisecond

func (h *Hub) watchConns(srv *server.Server) {
	defer h.watching.Done()
	t := time.NewTicker(ConnPoll)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		if srv == nil || h.clustered() {
			// An external cluster, or one routed to other masters' servers
			// (a node may be connected to any): reachability is the
			// heartbeats'.
			h.checkNodes()
			continue
		}
		cz, err := srv.Connz(&server.ConnzOptions{Username: true, Limit: 100000})
		if err != nil {
			continue
		}
		conns := make(map[string]string, len(cz.Conns))
		for _, c := range cz.Conns {
			conns[c.AuthorizedUser] = c.IP
		}
		h.mu.Lock()
		h.conns = conns
		h.mu.Unlock()
		h.checkNodes()
	}
}

// checkNodes tells OnNodeChange of every node whose reachability changed.
func (h *Hub) checkNodes() {
	if h.opt.OnNodeChange == nil {
		return
	}
	recs, err := h.opt.Store.ListNodes()
	if err != nil {
		return
	}
	type change struct {
		node  string
		up    bool
		heard time.Time
	}
	var changes []change
	h.mu.Lock()
	if h.reachable == nil {
		h.reachable = map[string]bool{}
	}
	for _, r := range recs {
		_, connected := h.conns[r.PublicKey]
		connected = connected || h.conns == nil // no server to ask (external cluster, or not polled yet)
		o := h.seen[r.Name]
		var heard time.Time
		if o != nil {
			heard = o.lastHeartbeat
		}
		up := !r.Revoked && connected && o != nil && h.opt.Now().Sub(heard) <= OnlineWithin
		if was, known := h.reachable[r.Name]; !known || was != up {
			h.reachable[r.Name] = up
			if known || !up {
				changes = append(changes, change{r.Name, up, heard})
			}
		}
	}
	h.mu.Unlock()
	for _, c := range changes {
		h.opt.OnNodeChange(c.node, c.up, c.heard)
	}
}

// heartbeat records a node's heartbeat: the node is the subject's (the
// server let only that node publish there), the address the server's.
func (h *Hub) heartbeat(m *nats.Msg) {
	node := cluster.NodeOf(m.Subject)
	var hb cluster.Heartbeat
	if json.Unmarshal(m.Data, &hb) != nil {
		return
	}
	// Only registered nodes that are not revoked count. (The embedded
	// server lets no one else publish there; an external cluster's
	// authorization is the operator's.)
	if rec, err := h.opt.Store.GetNode(node); err != nil || rec.Revoked {
		return
	}
	h.mu.Lock()
	o := h.seen[node]
	if o == nil {
		o = &observed{}
		h.seen[node] = o
	}
	// A new agent (another boot), or one heard again after a silence.
	fresh := !o.known || hb.Boot != o.boot || hb.Seq <= o.seq || h.opt.Now().Sub(o.lastHeartbeat) > OnlineWithin
	o.known = true
	o.lastHeartbeat, o.version, o.seq, o.boot = h.opt.Now(), truncate(hb.Version, 64), hb.Seq, truncate(hb.Boot, 32)
	nc := h.nc
	start := fresh && nc != nil && !o.resyncing && !h.follower
	if fresh && o.resyncing && !h.follower {
		o.resyncAgain = true
	}
	o.resyncing = o.resyncing || start
	h.mu.Unlock()
	if start {
		go h.resync(node, o)
	}
}

// usageReport keeps a node's latest CPU and memory figures of its
// instances: only those the master placed on that node (the node is the
// subject's; what it says of others' instances is dropped), replaced
// whole by the next report, so what it keeps is bounded by the master's
// own records.
func (h *Hub) usageReport(m *nats.Msg) {
	node := cluster.NodeOf(m.Subject)
	var u cluster.Usage
	if json.Unmarshal(m.Data, &u) != nil || len(u.Instances) > cluster.MaxUsage {
		return
	}
	keep := make(map[string]cluster.InstanceUsage, len(u.Instances))
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, iu := range u.Instances {
		if _, ours := h.procs[procKey(node, iu.ID)]; ours && iu.CPUSeconds >= 0 && iu.MemoryBytes >= 0 {
			keep[iu.ID] = iu
		}
	}
	if h.usage == nil {
		h.usage = map[string]map[string]cluster.InstanceUsage{}
	}
	h.usage[node] = keep
}

// EachUsage calls f for every instance on an agent node with the figures
// its node last reported, while the master has it there.
func (h *Hub) EachUsage(f func(node, id string, cpuSeconds float64, memoryBytes int64)) {
	h.mu.Lock()
	var all []struct {
		node string
		u    cluster.InstanceUsage
	}
	for node, m := range h.usage {
		for id, u := range m {
			if _, ours := h.procs[procKey(node, id)]; ours {
				all = append(all, struct {
					node string
					u    cluster.InstanceUsage
				}{node, u})
			}
		}
	}
	h.mu.Unlock()
	for _, a := range all {
		f(a.node, a.u.ID, a.u.CPUSeconds, a.u.MemoryBytes)
	}
}

// resyncEvery is the shortest time between two resyncs of one node.
const resyncEvery = time.Second

// resync runs after a node (re)connected or its agent restarted: it stops
// what it runs that the master replaced meanwhile, and its instances' lines
// go on from where the master has them. One resync of a node runs at a
// time, at most one a second: what asks for more meanwhile (a stream of
// heartbeats, each with a new boot) is folded into the next, so whatever a
// node sends, it costs the master one goroutine and a bounded rate of
// requests.
func (h *Hub) resync(node string, o *observed) {
	for {
		began := time.Now()
		h.mu.Lock()
		srv, nc := h.srv, h.nc
		if nc == nil || h.follower {
			o.resyncing, o.resyncAgain = false, false
			h.mu.Unlock()
			return
		}
		h.mu.Unlock()
		if srv != nil {
			h.refreshAddress(srv, node)
		}
		h.expect(node)
		h.reattach(node)
		if d := resyncEvery - time.Since(began); d > 0 {
			select {
			case <-time.After(d):
			case <-h.stop:
			}
		}
		h.mu.Lock()
		if !o.resyncAgain || h.nc == nil {
			o.resyncing, o.resyncAgain = false, false
			h.mu.Unlock()
			return
		}
		o.resyncAgain = false
		h.mu.Unlock()
	}
}

// expect tells node which instances the master has there.
func (h *Hub) expect(node string) {
	exp := cluster.Expected{Instances: map[string]int64{}}
	h.mu.Lock()
	for _, p := range h.procs {
		if p.node == node {
			exp.Instances[p.id] = p.epoch
		}
	}
	nc := h.nc
	h.mu.Unlock()
	var rep cluster.Reply
	if err := h.request(nc, cluster.To(node, "inst.expect"), exp, &rep, requestTimeout); err != nil {
		h.log.Warn("tell a node its instances", "node", node, "err", err)
	}
}

// reattach asks node again for the lines of each of its instances.
func (h *Hub) reattach(node string) {
	h.mu.Lock()
	var ps []*Proc
	for _, p := range h.procs {
		if p.node == node {
			ps = append(ps, p)
		}
	}
	h.mu.Unlock()
	for _, p := range ps {
		p.mu.Lock()
		begun := p.begun
		p.mu.Unlock()
		if begun {
			go p.attach()
		}
	}
}

// refreshAddress asks the server where node's connection comes from.
func (h *Hub) refreshAddress(srv *server.Server, node string) {
	rec, err := h.opt.Store.GetNode(node)
	if err != nil {
		return
	}
	cz, err := srv.Connz(&server.ConnzOptions{Username: true, Limit: 100000})
	if err != nil {
		return
	}
	for _, c := range cz.Conns {
		if c.AuthorizedUser == rec.PublicKey {
			h.mu.Lock()
			if o := h.seen[node]; o != nil {
				o.address = c.IP
			}
			h.mu.Unlock()
			return
		}
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Create registers a node and returns it with its credential (shown once;
// only its public key is kept). The server starts if it did not run.
// Errors: EINVALID, ECONFLICT.
func (h *Hub) Create(req api.NodeCreateRequest) (api.ClusterNode, string, error) {
	if !cluster.ValidName(req.Name) {
		return api.ClusterNode{}, "", universe.Errorf(universe.EINVALID, "name: %q is not a node name (lower-case letters, digits and dashes, 1 to 32)", req.Name)
	}
	if req.RAMMB < 0 || req.CPU < 0 {
		return api.ClusterNode{}, "", universe.Errorf(universe.EINVALID, "ramMB and cpu must not be negative")
	}
	rec := storage.NodeRecord{Name: req.Name, Capacity: api.NodeCapacity{RAMMB: req.RAMMB, CPU: req.CPU}, Labels: req.Labels, CreatedAt: h.opt.Now().UnixMilli()}
	if req.Ports != nil {
		p := *req.Ports
		if p.Min < 1 || p.Max > 65535 || p.Min > p.Max {
			return api.ClusterNode{}, "", universe.Errorf(universe.EINVALID, "ports: need 1 <= min <= max <= 65535")
		}
		rec.Ports = p
	}
	for k, v := range req.Labels {
		if k == "" || len(k) > 64 || len(v) > 256 {
			return api.ClusterNode{}, "", universe.Errorf(universe.EINVALID, "labels: %q is not a label", k)
		}
	}
	cred, pub, err := cluster.NewCredential(req.Name)
	if err != nil {
		return api.ClusterNode{}, "", err
	}
	rec.PublicKey = pub
	if err := h.opt.Store.CreateNode(rec); err != nil {
		return api.ClusterNode{}, "", err
	}
	if err := h.reload(); err != nil {
		return api.ClusterNode{}, "", err
	}
	return h.describe(rec), cred, nil
}

// reload gives the server the current set of node keys (starting it when
// it did not run).
func (h *Hub) reload() error {
	nodes, err := h.opt.Store.ListNodes()
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.opened {
		return nil // Open starts it with the nodes as they are then
	}
	if h.External() {
		return h.startLocked(nodes) // the cluster's authorization is the operator's
	}
	if h.srv == nil {
		return h.startLocked(nodes)
	}
	o, err := h.serverOptions(nodes)
	if err != nil {
		return err
	}
	// Only a change is reloaded: a reload forgets the replies the nodes
	// may still send (the server's record of requests it delivered), so a
	// request in flight at a needless reload would go unanswered.
	conf := serverConf(o)
	if conf == h.loaded {
		return nil
	}
	h.loaded = conf
	if err := h.srv.ReloadOptions(o); err != nil {
		return fmt.Errorf("cluster server: reload: %w", err)
	}
	return nil
}

// SetDraining marks a node draining (no new instances go there) or not.
// Errors: ENOTFOUND, ECONFLICT (revoked).
func (h *Hub) SetDraining(name string, draining bool) (api.ClusterNode, error) {
	rec, err := h.opt.Store.UpdateNode(name, func(n *storage.NodeRecord) error {
		if n.Revoked {
			return universe.Errorf(universe.ECONFLICT, "node %s is revoked", name)
		}
		n.Draining = draining
		return nil
	})
	if err != nil {
		return api.ClusterNode{}, err
	}
	return h.describe(rec), nil
}

// Revoke revokes a node: it is told so, and its connection is closed by
// the server as its key leaves the configuration. Errors: ENOTFOUND.
func (h *Hub) Revoke(name string) error {
	rec, err := h.opt.Store.UpdateNode(name, func(n *storage.NodeRecord) error {
		if !n.Revoked {
			n.Revoked, n.RevokedAt = true, h.opt.Now().UnixMilli()
		}
		return nil
	})
	if err != nil {
		return err
	}
	h.mu.Lock()
	nc := h.nc
	h.mu.Unlock()
	if nc != nil {
		b, _ := json.Marshal(cluster.Revoked{Reason: "revoked by the master"})
		_ = nc.PublishMsg(h.order(cluster.To(rec.Name, "revoked"), b))
		_ = nc.FlushTimeout(500 * time.Millisecond)
	}
	h.loseNode(rec.Name, "lost: its node "+rec.Name+" was revoked")
	return h.reload()
}

// Delete revokes node name (if it is not yet) and forgets it: it is no
// longer listed and its name may be used again. Errors: ENOTFOUND.
func (h *Hub) Delete(name string) error {
	rec, err := h.opt.Store.GetNode(name)
	if err != nil {
		return err
	}
	if !rec.Revoked {
		if err := h.Revoke(name); err != nil {
			return err
		}
	}
	if err := h.opt.Store.DeleteNode(name); err != nil {
		return err
	}
	h.mu.Lock()
	delete(h.seen, name)
	delete(h.reachable, name)
	h.mu.Unlock()
	h.statMu.Lock()
	delete(h.relay, name)
	h.statMu.Unlock()
	return nil
}

// Get describes one node. Errors: ENOTFOUND.
func (h *Hub) Get(name string) (api.ClusterNode, error) {
	rec, err := h.opt.Store.GetNode(name)
	if err != nil {
		return api.ClusterNode{}, err
	}
	return h.describe(rec), nil
}

// List describes every registered node, ordered by name.
func (h *Hub) List() ([]api.ClusterNode, error) {
	recs, err := h.opt.Store.ListNodes()
	if err != nil {
		return nil, err
	}
	out := make([]api.ClusterNode, 0, len(recs))
	for _, r := range recs {
		out = append(out, h.describe(r))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// describe is a node as the API shows it: its record and what the master
// observed of it.
func (h *Hub) describe(r storage.NodeRecord) api.ClusterNode {
	n := api.ClusterNode{ID: r.Name, Name: r.Name, Capacity: r.Capacity, Ports: r.Ports, Labels: r.Labels, State: api.NodeDisconnected}
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	h.mu.Lock()
	o := h.seen[r.Name]
	var beat time.Time
	if o != nil {
		n.Address, n.Version, beat = o.address, o.version, o.lastHeartbeat
		if !beat.IsZero() {
			n.LastHeartbeat = beat.UnixMilli()
		}
	}
	// Not connected as the server last saw it: disconnected, whatever the
	// last heartbeat (a connection seen after it counts once it beats).
	_, connected := h.conns[r.PublicKey]
	if h.conns == nil {
		connected = true // not polled yet
	}
	h.mu.Unlock()
	switch {
	case r.Revoked:
		n.State = api.NodeRevoked
	case o != nil && connected && h.opt.Now().Sub(beat) <= OnlineWithin:
		n.State = api.NodeOnline
		if r.Draining {
			n.State = api.NodeDraining
		}
	}
	return n
}

// JoinURL is the URL agents are told to connect to: with an external
// cluster, its URLs without the master's own user:password.
func (h *Hub) JoinURL(publicHost string) string {
	if h.External() {
		return stripUserInfo(h.opt.NATSURL)
	}
	adv := h.opt.Advertise
	if adv == "" {
		_, port, _ := net.SplitHostPort(h.opt.Addr)
		if l := h.Listening(); l != "" {
			_, port, _ = net.SplitHostPort(l)
		}
		adv = net.JoinHostPort(publicHost, port)
	}
	if h.opt.TLS != nil {
		return "tls://" + adv
	}
	return "nats://" + adv
}

// stripUserInfo removes user:password@ from each URL of a list.
func stripUserInfo(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		scheme, rest, ok := strings.Cut(p, "://")
		if !ok {
			scheme, rest = "", p
		}
		if at := strings.LastIndexByte(rest, '@'); at >= 0 {
			rest = rest[at+1:]
		}
		if scheme != "" {
			rest = scheme + "://" + rest
		}
		parts[i] = rest
	}
	return strings.Join(parts, ",")
}
