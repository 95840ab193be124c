package master

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/cluster/ha"
	"github.com/universe-orchestrator/universe/instance/template"
	"github.com/universe-orchestrator/universe/master/users"
	"github.com/universe-orchestrator/universe/storage"
)

// HAConfig makes the master one of a Raft cluster of masters (--ha-*).
type HAConfig struct {
	Addr, Advertise, ID string
	Peers               []string
	SecretFile          string
	// Join: join a running cluster ("cluster join" on it adds this
	// master) instead of forming one from Peers.
	Join bool
	// BootstrapFromSingle lets a single master's data (configurations,
	// keys) become the new cluster's first state.
	BootstrapFromSingle bool
}

// Enabled says whether the master runs in a cluster.
func (c HAConfig) Enabled() bool { return c.Addr != "" }

// readSecret reads the shared secret: a file of mode 0600 (or stricter).
func readSecret(path string) ([]byte, error) {
	if path == "" {
		return nil, universe.Errorf(universe.EINVALID, "--ha-secret-file is required with --ha-addr")
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, universe.Errorf(universe.EINVALID, "--ha-secret-file: %v", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, universe.Errorf(universe.EINVALID, "--ha-secret-file %s is readable by others (mode %o): chmod 600 it", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, universe.Errorf(universe.EINVALID, "--ha-secret-file: %v", err)
	}
	b = []byte(strings.TrimSpace(string(b)))
	if len(b) < 16 {
		return nil, universe.Errorf(universe.EINVALID, "--ha-secret-file holds fewer than 16 bytes: make a long random secret (say, openssl rand -hex 32)")
	}
	return b, nil
}

// seedFile keeps, across a crash, the state this master had before it
// joined its cluster, until the cluster has taken it.
const seedFile = "seed.json"

// seed is a master's state from before its cluster: its keys and
// configurations.
type seed struct {
	Keys      []universe.KeyRecord `json:"keys"`
	Configs   []api.Configuration  `json:"configurations"`
	Nodes     []storage.NodeRecord `json:"nodes,omitempty"`
	Users     []users.User         `json:"users,omitempty"`
	Instances []api.InstanceInfo   `json:"instances,omitempty"`
}

// prepareSeed runs at a data directory's first start in a cluster (no
// Raft state yet): what the master had on its own (keys made offline
// with "key create --data", a single master's configurations with
// --ha-bootstrap-from-single) is kept in <raft>/seed.json, and given to
// the cluster as commands once it has a leader (submitSeed). A single
// master's configurations without --ha-bootstrap-from-single are refused:
// they would be dropped or doubled without a word.
func (m *Master) prepareSeed(raftDir string) error {
	if _, err := os.Stat(filepath.Join(raftDir, "raft.db")); err == nil {
		return nil // not the first start
	}
	if _, err := os.Stat(filepath.Join(raftDir, seedFile)); err == nil {
		return nil // kept from a start that did not finish
	}
	keys, err := m.db.ListKeys()
	if err != nil {
		return err
	}
	cfgs, err := m.db.ListConfigurations()
	if err != nil {
		return err
	}
	nodes, err := m.db.ListNodes()
	if err != nil {
		return err
	}
	insts, err := m.db.ListInstances()
	if err != nil {
		return err
	}
	us, err := m.db.ListUsers() // made offline like the first key: carried in like it
	if err != nil {
		return err
	}
	if (len(cfgs) > 0 || len(nodes) > 0 || len(insts) > 0) && !m.cfg.HA.BootstrapFromSingle {
		return universe.Errorf(universe.EINVALID, "this data directory holds a single master's configurations, nodes or instances: start it with --ha-bootstrap-from-single to carry them into the new cluster")
	}
	for _, in := range insts {
		if in.WrapperNodeID == "" || in.WrapperNodeID == m.cfg.NodeID {
			return universe.Errorf(universe.ECONFLICT, "instance %s runs on this master's own node; in a cluster the masters run no instances (agent nodes do): delete it, or move its configuration to an agent node, before --ha-bootstrap-from-single", in.ID)
		}
	}
	if len(keys) == 0 && len(cfgs) == 0 && len(nodes) == 0 && len(insts) == 0 && len(us) == 0 {
		return nil
	}
	if err := os.MkdirAll(raftDir, 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(seed{Keys: keys, Configs: cfgs, Nodes: nodes, Instances: insts, Users: us})
	if err != nil {
		return err
	}
	tmp := filepath.Join(raftDir, seedFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(raftDir, seedFile))
}

// submitSeed gives the kept state to the cluster, once a leader takes
// commands; it retries until it went through or the master stops.
// Commands the cluster already holds (the same key from another member)
// are refused by the FSM alike everywhere and skipped here.
func (m *Master) submitSeed(raftDir string) {
	path := filepath.Join(raftDir, seedFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	var s seed
	if err := json.Unmarshal(b, &s); err != nil {
		m.log.Error("the kept state of this master is unreadable", "file", path, "err", err)
		return
	}
	var cmds []storage.Command
	for _, k := range s.Keys {
		k := k
		cmds = append(cmds, storage.Command{Op: storage.OpKeyCreate, Key: &k})
	}
	for _, c := range s.Configs {
		c := c
		cmds = append(cmds, storage.Command{Op: storage.OpConfigPut, Config: &c})
	}
	for _, n := range s.Nodes {
		n := n
		cmds = append(cmds, storage.Command{Op: storage.OpNodeCreate, Node: &n})
	}
	for _, in := range s.Instances {
		cmds = append(cmds, storage.InstancePut(in))
	}
	for _, u := range s.Users {
		u := u
		cmds = append(cmds, storage.Command{Op: storage.OpUserCreate, User: &u})
	}
	for _, cmd := range cmds {
		b, _ := json.Marshal(cmd)
		for {
			err := m.ha.Apply(b)
			if err == nil || universe.ErrorCode(err) == universe.ECONFLICT {
				break
			}
			select {
			case <-m.ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	// Its templates too: announced, the other masters fetch them.
	if ts := m.templateSync.Load(); ts != nil {
		names, _ := m.templateNames()
		for _, key := range names {
			g, n, _ := strings.Cut(key, "/")
			ts.announce(g, n)
		}
	}
	_ = os.Remove(path)
	m.log.Info("this master's state from before the cluster was carried into it", "keys", len(s.Keys), "configurations", len(s.Configs),
		"nodes", len(s.Nodes), "instances", len(s.Instances))
}

// openHA starts this master's Raft node (Open, once the API listens).
func (m *Master) openHA() error {
	secret, err := readSecret(m.cfg.HA.SecretFile)
	if err != nil {
		return err
	}
	raftDir := filepath.Join(m.cfg.DataDir, "raft")
	if err := m.prepareSeed(raftDir); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(raftDir, seedFile)); err == nil {
		// What the master had is now the cluster's to hand out: the
		// replicated state here is what the log applies.
		empty, err := emptySnapshot(m.cfg.DataDir)
		if err != nil {
			return err
		}
		err = m.db.Restore(empty)
		_ = empty.Close()
		if err != nil {
			return err
		}
	}
	m.instances.SetLeader(false) // until this master is elected
	m.hub.SetLeader(false)
	// Before the node starts: the log it replays may announce templates.
	self := m.cfg.HA.Advertise
	if self == "" {
		self = m.cfg.HA.Addr
	}
	ts := &templateSync{m: m, self: self, gen: map[string]uint64{}, locks: map[string]*sync.Mutex{}, syncing: map[string]bool{}}
	m.templateSync.Store(ts)
	// The hub is a member of the masters' NATS cluster before anything
	// the log applies (nodes) can start its server; its orders carry the
	// term this master leads in.
	var running atomic.Pointer[ha.Node]
	term := func() uint64 {
		if n := running.Load(); n != nil {
			return n.LeaderTerm()
		}
		return 0
	}
	routeAddr := ""
	if !m.hub.External() {
		var routes []string
		if routeAddr, routes, err = natsRoutes(m.cfg.HA.Addr, m.cfg.HA.Peers, self, m.cfg.HA.ID); err != nil {
			return err
		}
		routeTLS, err := ha.RouteTLS(secret)
		if err != nil {
			return err
		}
		m.hub.Clustered("universe-"+strings.NewReplacer(":", "-", ".", "-", "[", "", "]", "").Replace(self), routeAddr, routes, routeTLS, term)
	} else {
		m.hub.Clustered("", "", nil, nil, term)
	}
	node, err := ha.Open(ha.Options{
		ID: m.cfg.HA.ID, Bind: m.cfg.HA.Addr, Advertise: m.cfg.HA.Advertise, Peers: m.cfg.HA.Peers, Join: m.cfg.HA.Join,
		Secret: secret, Dir: raftDir, Store: m.db, APIURL: m.baseURL, Handler: m.engine,
		OnLeader: m.onLeader, Logger: m.log.With("part", "ha"),
		NATSURL: func() string {
			if m.hub.External() {
				return ""
			}
			return m.hub.JoinURL(m.publicHost())
		},
		TemplateZip: func(w io.Writer, group, name string) error { return m.templates.Export(group, name, w) },
		Templates:   m.templateNames,
	})
	if err != nil {
		return err
	}
	m.ha = node
	m.db.SetReplicator(node)
	running.Store(node)
	m.haNode.Store(node)
	if routeAddr != "" {
		m.wg.Add(1)
		go func() { defer m.wg.Done(); m.followMembership(routeAddr) }()
	}
	ts.node.Store(node)
	m.templates.OnChange(ts.announce)
	m.metrics.registerHA(node)
	m.wg.Add(1)
	go func() { defer m.wg.Done(); m.submitSeed(raftDir) }()
	return nil
}

// natsRoutes are where this master's NATS server takes the other masters'
// routes (listen), and theirs: the port after each one's HA port, on its
// host.
func natsRoutes(addr string, peers []string, self, id string) (listen string, routes []string, err error) {
	next := func(addr string) (string, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return "", universe.Errorf(universe.EINVALID, "%q is not HOST:PORT", addr)
		}
		p, err := strconv.Atoi(port)
		if err != nil || p <= 0 || p >= 65535 {
			return "", universe.Errorf(universe.EINVALID, "%q: its port must be below 65535 (the next one carries the masters' NATS routes)", addr)
		}
		return net.JoinHostPort(host, strconv.Itoa(p+1)), nil
	}
	if listen, err = next(addr); err != nil {
		return "", nil, err
	}
	for _, p := range peers {
		if p == self || p == id {
			continue
		}
		r, err := next(p)
		if err != nil {
			return "", nil, err
		}
		routes = append(routes, r)
	}
	sort.Strings(routes)
	return listen, routes, nil
}

// followMembership keeps this master's NATS routes to the masters the
// Raft configuration lists (one added with "cluster join", one that
// left), checked every few seconds.
func (m *Master) followMembership(listen string) {
	t := time.NewTicker(3 * time.Second)
	defer t.Stop()
	var last []string
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		}
		_, routes, err := natsRoutes(listen, m.ha.Peers(), "", "")
		if err != nil || len(routes) == 0 || slices.Equal(routes, last) {
			continue
		}
		if last != nil || !slices.Equal(routes, m.hub.Routes()) {
			if err := m.hub.SetRoutes(routes); err != nil {
				m.log.Warn("cluster server: routes to the masters", "err", err)
				continue
			}
		}
		last = routes
	}
}

// nodesChanged follows a change of the nodes the log applied: this
// master's NATS server takes the nodes' keys as they are now (not on the
// log's goroutine; changes that come together make one reload).
func (m *Master) nodesChanged() {
	select {
	case m.nodesReload <- struct{}{}:
	default:
		return
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		<-m.nodesReload
		if err := m.hub.Reload(); err != nil {
			m.log.Warn("cluster server: take the nodes' keys", "err", err)
		}
	}()
}

// onLeader starts and stops the leader-only work: the instances (loaded,
// and adopted on their nodes, once this master's state holds all that its
// predecessors committed), the nodes' resyncs.
func (m *Master) onLeader(leader bool) {
	if !leader {
		m.stopScheduler()
		m.stopScaler()
		m.hub.SetLeader(false)
		m.instances.SetLeader(false)
		return
	}
	if node := m.haNode.Load(); node != nil {
		if err := node.Barrier(10 * time.Second); err != nil {
			m.log.Warn("raft barrier before leading", "err", err)
		}
	}
	m.ev.log.Advance(m.eventClock())
	m.instances.SetLeader(true)
	m.hub.SetLeader(true)
	if leader {
		// (On the leadership watcher's goroutine, which ha.Node.Close
		// waits for before the store closes.)
		if err := m.sessions.Purge(); err != nil {
			m.log.Warn("purge dashboard sessions", "err", err)
		}
		m.purgeLoginKeys("")
		m.startScheduler()
		m.startScaler()
		// Backups the previous leader was taking are lost with it.
		if n, err := m.backups.Recover(); err != nil {
			m.log.Warn("backups under way under the previous leader", "err", err)
		} else if n > 0 {
			m.log.Warn("backups under way under the previous leader are FAILED", "count", n)
		}
	}
}

// emptySnapshot is a snapshot of an empty state (a fresh bbolt file with
// the buckets), to clear this master's replicated buckets before the log
// fills them.
func emptySnapshot(dataDir string) (*os.File, error) {
	dir, err := os.MkdirTemp(dataDir, ".empty-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	db, err := storage.Open(dir, storage.Options{})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	f, err := os.CreateTemp(dataDir, ".empty-snap-")
	if err != nil {
		return nil, err
	}
	_ = os.Remove(f.Name()) // open: readable until closed
	if err := db.Snapshot(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	_, err = f.Seek(0, 0)
	return f, err
}

// forwardWrites sends what reaches a follower to the leader, and answers
// as the leader answers: every change (any method but GET and HEAD), and
// every read of what the leader alone holds in memory (instances, nodes'
// observed states, the dashboard's pages, WebSockets), streamed through.
// Reads of the replicated state (keys, configurations, templates, audit)
// are served here, unless ?consistent=true (which the leader serves once
// ha.Node.ConsistentRead says its state is current). Without a leader:
// 503 with retryAfterMs. The leader serves a forwarded request as its own
// (it came over the masters' mutual TLS: the client's address is the one
// the follower saw).
func (m *Master) forwardWrites(c *gin.Context) {
	if m.ha == nil {
		c.Next()
		return
	}
	r := c.Request
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	if m.ha.IsLeader() {
		if read && c.Query("consistent") == "true" {
			// Linearizable: what any master acknowledged before this
			// read began is in what it reads.
			if err := m.ha.ConsistentRead(5 * time.Second); err != nil {
				fail(c, err)
				return
			}
		}
		c.Next()
		return
	}
	if read && c.Query("consistent") != "true" && servedHere(r.URL.Path) {
		if readsState(r.URL.Path) {
			m.ha.WaitAcked() // what this master answered as written is read here
		}
		c.Next()
		return
	}
	m.toLeader(c)
}

// toLeader answers c with the leader's answer (a follower's request); no
// leader: 503 with retryAfterMs.
func (m *Master) toLeader(c *gin.Context) {
	r := c.Request
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	if _, hop := ha.ForwardedClient(r); hop {
		// Forwarded to this master as the leader, which it no longer is:
		// no second hop (two masters could pass it back and forth).
		fail(c, ha.ErrNoLeader)
		return
	}
	r.Header.Set("X-Universe-Client", m.clientAddr(c).String())
	if read || isUpgrade(r) {
		if m.ha.Proxy(c.Writer, r) {
			c.Abort()
			return
		}
	} else if m.ha.Forward(c.Writer, r) {
		c.Abort()
		return
	}
	fail(c, ha.ErrNoLeader)
}

// readsState says whether a read served here reads the replicated state
// (a key authenticates it, if nothing else): what waits for the writes
// this master answered. Health checks, metrics and static files do not
// wait for a follower that is catching up.
func readsState(path string) bool {
	switch {
	case path == "/api/ping", path == "/api/metrics", strings.HasPrefix(path, "/ui/assets/"):
		return false
	}
	return true
}

// servedHere says whether a follower answers a read of path itself: what
// is not the API or the dashboard, and the replicated state's reads.
func servedHere(path string) bool {
	switch {
	case strings.HasPrefix(path, "/ui/assets/"):
		return true
	case strings.HasPrefix(path, "/ui/"):
		return false // pages show instances and nodes: the leader's
	case !strings.HasPrefix(path, "/api/"):
		return true
	}
	for _, p := range []string{"/api/ping", "/api/metrics", "/api/cluster/masters", "/api/keys", "/api/configurations",
		"/api/templates", "/api/audit", "/api/openapi.json", "/api/auth", "/api/node",
		"/api/debug/pprof"} { // a profile is of this process
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}

// handleMasters answers GET /api/cluster/masters.
func (m *Master) handleMasters(c *gin.Context) {
	if m.ha == nil {
		c.JSON(http.StatusOK, []ha.Master{{ID: m.cfg.NodeID, APIURL: m.baseURL, Leader: true, State: "leader"}})
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), 3*time.Second)
	defer cancel()
	c.JSON(http.StatusOK, m.ha.Masters(ctx))
}

// handleMasterJoin adds a master: POST /api/cluster/masters
// {"address", "id"} (id defaults to the address). It runs on the leader
// (a follower forwarded the request).
func (m *Master) handleMasterJoin(c *gin.Context) {
	var req api.MasterJoin
	if err := bindJSONStrict(c, &req); err != nil {
		fail(c, err)
		return
	}
	if m.ha == nil {
		fail(c, universe.Errorf(universe.ECONFLICT, "this master runs alone (no --ha-addr): there is no cluster to join"))
		return
	}
	if _, _, err := net.SplitHostPort(req.Address); err != nil || req.Address == "" {
		fail(c, universe.Errorf(universe.EINVALID, "address must be HOST:PORT, the new master's --ha-advertise"))
		return
	}
	if req.ID == "" {
		req.ID = req.Address
	}
	c.Set(ctxAuditDetail, "id="+req.ID+" address="+req.Address)
	if err := m.ha.AddVoter(req.ID, req.Address); err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// handleMasterLeave removes a master: DELETE /api/cluster/masters/{id}.
func (m *Master) handleMasterLeave(c *gin.Context) {
	if m.ha == nil {
		fail(c, universe.Errorf(universe.ECONFLICT, "this master runs alone (no --ha-addr)"))
		return
	}
	if err := m.ha.RemoveServer(c.Param("id")); err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// mastersCommand is "cluster masters" on the console.
func (m *Master) mastersLines() []string {
	if m.ha == nil {
		return []string{"This master runs alone (no --ha-addr)."}
	}
	ctx, cancel := context.WithTimeout(m.ctx, 3*time.Second)
	defer cancel()
	var out []string
	for _, s := range m.ha.Masters(ctx) {
		out = append(out, fmt.Sprintf("%-22s %-11s term %-4d applied %-7d api %s", s.ID, s.State, s.Term, s.AppliedIndex, s.APIURL))
	}
	return out
}

// templateSync carries templates' files between the masters of a
// cluster: a master whose template changed announces it (a command, so
// every master learns of it in log order), and every other master fetches
// the template from it as a zip and imports it in place of its own (a
// template the announcer no longer has is deleted). Fetches of one
// template run one at a time, and one overtaken by a later announcement
// is dropped.
type templateSync struct {
	m       *Master
	self    string                  // this master's advertised HA address
	node    atomic.Pointer[ha.Node] // set once the node runs
	mu      sync.Mutex
	gen     map[string]uint64      // by template: the last announcement seen
	locks   map[string]*sync.Mutex // by template: one fetch at a time
	syncing map[string]bool        // templates being written by a fetch (not announced again)
	seq     uint64
}

// templateNames lists this master's templates as group/name.
func (m *Master) templateNames() ([]string, error) {
	list, err := m.templates.List()
	if err != nil {
		return nil, err
	}
	out := make([]string, len(list))
	for i, t := range list {
		out[i] = t.Group + "/" + t.Name
	}
	return out, nil
}

// restored follows a snapshot this master installed: the announcements
// the snapshot covers were never seen here, so every template is taken
// again from the leader, and those it lacks go.
func (t *templateSync) restored() {
	go func() {
		ctx, cancel := context.WithTimeout(t.m.ctx, time.Minute)
		defer cancel()
		node := t.node.Load()
		for node == nil && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
			node = t.node.Load()
		}
		if node == nil {
			return
		}
		var leader api.Master
		for ctx.Err() == nil {
			l, ok := node.Leader(ctx)
			if ok && l.RaftAddress != t.self {
				leader = l
				break
			}
			if ok {
				return // this master leads: its templates are the cluster's
			}
			time.Sleep(100 * time.Millisecond)
		}
		theirs, err := node.TemplatesOf(ctx, leader.RaftAddress)
		if err != nil {
			t.m.log.Warn("list the leader's templates after a snapshot", "err", err)
			return
		}
		mine, _ := t.m.templateNames()
		keep := map[string]bool{}
		for _, key := range theirs {
			keep[key] = true
			t.observed(storage.Command{Op: storage.OpTemplateChanged, Name: key, From: leader.RaftAddress})
		}
		for _, key := range mine {
			if !keep[key] {
				t.observed(storage.Command{Op: storage.OpTemplateChanged, Name: key, From: leader.RaftAddress}) // 404 there: deleted here
			}
		}
	}()
}

// maxTemplateFetch bounds a template carried between masters.
const maxTemplateFetch = 512 << 20

// announce tells the cluster that this master's copy of group/name
// changed (template.Store.OnChange).
func (t *templateSync) announce(group, name string) {
	key := group + "/" + name
	t.mu.Lock()
	quiet := t.syncing[key]
	t.mu.Unlock()
	if quiet {
		return // the write of a fetch: the template came from another master
	}
	node := t.node.Load()
	if node == nil {
		return
	}
	b, _ := json.Marshal(storage.Command{Op: storage.OpTemplateChanged, Name: key, From: t.self})
	if err := node.Apply(b); err != nil {
		t.m.log.Warn("announce a template change to the cluster", "template", key, "err", err)
	}
}

// observed follows an announcement the log applied (on every master).
func (t *templateSync) observed(cmd storage.Command) {
	if cmd.From == t.self {
		return // ours
	}
	group, name, ok := strings.Cut(cmd.Name, "/")
	if !ok {
		return
	}
	t.mu.Lock()
	t.seq++
	gen := t.seq
	t.gen[cmd.Name] = gen
	lock := t.locks[cmd.Name]
	if lock == nil {
		lock = &sync.Mutex{}
		t.locks[cmd.Name] = lock
	}
	t.mu.Unlock()
	go t.fetch(group, name, cmd.From, gen, lock) // never in the log's goroutine
}

func (t *templateSync) fetch(group, name, from string, gen uint64, lock *sync.Mutex) {
	key := group + "/" + name
	lock.Lock()
	defer lock.Unlock()
	current := func() bool {
		t.mu.Lock()
		defer t.mu.Unlock()
		return t.gen[key] == gen
	}
	if !current() {
		return // a later announcement follows
	}
	f, err := os.CreateTemp(t.m.cfg.DataDir, ".template-fetch-")
	if err != nil {
		t.m.log.Warn("fetch a template", "template", key, "err", err)
		return
	}
	defer os.Remove(f.Name())
	defer f.Close()
	ctx, cancel := context.WithTimeout(t.m.ctx, 5*time.Minute)
	defer cancel()
	node := t.node.Load()
	for node == nil && ctx.Err() == nil { // announced while the node was starting
		time.Sleep(10 * time.Millisecond)
		node = t.node.Load()
	}
	if node == nil {
		return
	}
	found, err := node.FetchTemplate(ctx, from, group, name, f, maxTemplateFetch)
	if err != nil {
		// The master that announced it is gone: any other that has the
		// template since has it as well; ask the leader.
		if l, ok := node.Leader(ctx); ok && l.RaftAddress != from && l.RaftAddress != t.self {
			_, _ = f.Seek(0, io.SeekStart)
			_ = f.Truncate(0)
			found, err = node.FetchTemplate(ctx, l.RaftAddress, group, name, f, maxTemplateFetch)
		}
	}
	if err != nil {
		t.m.log.Warn("fetch a template from another master", "template", key, "from", from, "err", err)
		return
	}
	if !current() {
		return
	}
	t.mu.Lock()
	t.syncing[key] = true
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		delete(t.syncing, key)
		t.mu.Unlock()
	}()
	if !found {
		if err := t.m.templates.Delete(group, name); err != nil && universe.ErrorCode(err) != universe.ENOTFOUND {
			t.m.log.Warn("delete a template another master deleted", "template", key, "err", err)
		}
		return
	}
	size, _ := f.Seek(0, io.SeekEnd)
	if _, err := t.m.templates.Import(group, name, f, size, template.ImportLimits{MaxBytes: maxTemplateFetch}, true); err != nil {
		t.m.log.Warn("import a template fetched from another master", "template", key, "err", err)
	}
}
