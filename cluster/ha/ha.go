// Package ha replicates the master's state over Raft (hashicorp/raft, its
// log and stable store in raft-boltdb): three or five masters, any of
// them answers, the leader alone writes, and bbolt on every master is
// written only by applying committed entries (storage.DB.ApplyCommand, the
// FSM). Masters talk mutual TLS whose CA derives from a shared secret; one
// port carries Raft and HTTP (a follower forwarding a write to the leader,
// a master asking another for its status), told apart by the first byte.
package ha

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/storage"
)

// Options configure a master's part in a cluster.
type Options struct {
	// ID is how this master finds itself in Peers (default: Advertise).
	ID string
	// Bind is where it listens (--ha-addr); Advertise where the others
	// reach it (default: Bind).
	Bind, Advertise string
	// Peers are the advertised addresses of every master, its own among
	// them; the same list on every master of a new cluster.
	Peers []string
	// Join: this master joins a running cluster (cluster join adds it)
	// instead of forming one from Peers.
	Join bool
	// Secret is the shared secret (the 0600 --ha-secret-file's content).
	Secret []byte
	// Dir holds the Raft log and snapshots (<data>/raft).
	Dir string
	// Store is the state the log is applied to.
	Store *storage.DB
	// APIURL is this master's REST API, as clients reach it.
	APIURL string
	// Handler serves what other masters forward (the master's router).
	Handler http.Handler
	// TemplateZip writes template group/name as a zip archive (what
	// another master fetches after a change here). Errors: ENOTFOUND.
	TemplateZip func(w io.Writer, group, name string) error
	// Templates lists this master's templates as group/name.
	Templates func() ([]string, error)
	// NATSURL is where agents reach this master's NATS server (nil:
	// nowhere), shown in its status.
	NATSURL func() string
	// OnLeader is told when this master becomes the leader (true) and
	// when it stops being it (false): leader-only work starts and stops.
	OnLeader func(bool)
	Logger   *slog.Logger
	// TrailingLogs is how many entries a snapshot leaves in the log
	// (default raft's, 10,240); tests make it small to force a snapshot
	// install.
	TrailingLogs uint64
}

// Node is this master in the cluster.
type Node struct {
	opt      Options
	r        *raft.Raft
	mux      *mux
	client   *tls.Config
	logStore *raftboltdb.BoltStore
	http     *http.Server
	forward  *http.Client
	propose  *proposer
	leader   atomic.Bool
	// acked is the highest index the leader had applied when it answered
	// a write this master forwarded: what this master's own reads wait
	// for (WaitAcked).
	acked atomic.Uint64
	// readTerm is the term in which this master, leading, committed a
	// barrier: from then on it has applied all its predecessors
	// committed (ConsistentRead).
	readTerm atomic.Uint64
	// Changes counts leadership changes seen here; CommitSeconds is told
	// how long each Apply took to commit (metrics).
	Changes       atomic.Int64
	CommitSeconds func(float64)
	closeOnce     sync.Once
	done          chan struct{}
	wg            sync.WaitGroup
}

// ErrNoLeader is an Apply without a leader to take it.
var ErrNoLeader = universe.Errorf(universe.EUNAVAILABLE, "the cluster has no leader at the moment (an election is under way, or too few masters are reachable); try again shortly")

// Open starts this master's Raft node: a new cluster's first start forms
// it from Peers (every master bootstraps the same configuration, and one
// election decides).
func Open(opt Options) (*Node, error) {
	if opt.Advertise == "" {
		opt.Advertise = opt.Bind
	}
	if opt.ID == "" {
		opt.ID = opt.Advertise
	}
	if !opt.Join && !slices.Contains(opt.Peers, opt.ID) {
		return nil, fmt.Errorf("--ha-peers does not list this master (%s); list every master's advertised address, this one's too", opt.ID)
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	server, client, err := tlsConfigs(opt.Secret)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opt.Dir, 0o700); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", opt.Bind)
	if err != nil {
		return nil, fmt.Errorf("listen on --ha-addr %s: %w", opt.Bind, err)
	}
	adv, err := net.ResolveTCPAddr("tcp", opt.Advertise)
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("--ha-advertise %s: %w", opt.Advertise, err)
	}
	n := &Node{opt: opt, client: client, done: make(chan struct{})}
	n.mux = newMux(ln, server)
	hlog := hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: slogWriter{opt.Logger}})
	transport := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  &streamLayer{subListener: n.mux.raft, conf: client, adv: adv},
		MaxPool: 3, Timeout: 5 * time.Second, Logger: hlog,
	})
	// The log's free pages are not written at every append (bbolt scans
	// the file for them when it opens it): an append writes less. As in
	// Consul's and Nomad's raft_boltdb no_freelist_sync.
	logStore, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(opt.Dir, "raft.db"),
		BoltOptions: &bbolt.Options{Timeout: 5 * time.Second, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType}})
	if err != nil {
		n.mux.close()
		return nil, fmt.Errorf("open the Raft log: %w", err)
	}
	n.logStore = logStore
	snaps, err := raft.NewFileSnapshotStoreWithLogger(opt.Dir, 2, hlog)
	if err != nil {
		n.closeStores()
		return nil, err
	}
	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(opt.ID)
	conf.Logger = hlog
	conf.HeartbeatTimeout = 500 * time.Millisecond
	conf.ElectionTimeout = 500 * time.Millisecond
	conf.LeaderLeaseTimeout = 250 * time.Millisecond
	conf.CommitTimeout = 5 * time.Millisecond
	conf.SnapshotThreshold = 8192
	conf.BatchApplyCh = true // concurrent writes share a log append (group commit)
	// A master that was down catches up 512 entries an append, not 64: a
	// leader handing over (SIGTERM) right after another master restarted
	// waited for it to store its backlog 64 at a time, each append an
	// fsync (pauses of 0.5-1.2 s measured with bench/ha, all writes
	// waiting on the slow member of the new majority).
	conf.MaxAppendEntries = 512
	if opt.TrailingLogs > 0 {
		conf.TrailingLogs = opt.TrailingLogs
	}
	had, err := raft.HasExistingState(logStore, logStore, snaps)
	if err != nil {
		n.closeStores()
		return nil, err
	}
	// The newest entries stay in memory: replication and the FSM read them
	// from there, not from bbolt (Nomad and Consul keep 512 the same way).
	logs, err := raft.NewLogCache(512, logStore)
	if err != nil {
		n.closeStores()
		return nil, err
	}
	r, err := raft.NewRaft(conf, &fsm{db: opt.Store}, logs, logStore, snaps, transport)
	if err != nil {
		n.closeStores()
		return nil, err
	}
	n.r = r
	n.propose = newProposer(r, n.done)
	if !had && !opt.Join {
		var servers []raft.Server
		for _, p := range opt.Peers {
			servers = append(servers, raft.Server{ID: raft.ServerID(p), Address: raft.ServerAddress(p), Suffrage: raft.Voter})
		}
		if err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			_ = n.Close()
			return nil, fmt.Errorf("form the cluster: %w", err)
		}
	}
	n.http = &http.Server{Handler: n.routes(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	n.wg.Add(2)
	go func() { defer n.wg.Done(); _ = n.http.Serve(n.mux.http) }()
	go func() { defer n.wg.Done(); n.watchLeadership() }()
	n.forward = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			addr, _ := n.r.LeaderWithID()
			if addr == "" {
				return nil, ErrNoLeader
			}
			return dial(string(addr), n.client, muxHTTP, 5*time.Second)
		},
		MaxIdleConnsPerHost: 8, IdleConnTimeout: 30 * time.Second,
	}, Timeout: 30 * time.Second,
		// The leader's redirect is the client's to follow (a sign-in's 303
		// carries its cookie).
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return n, nil
}

// watchLeadership tells OnLeader when this master gains or loses the
// leadership.
func (n *Node) watchLeadership() {
	ch := n.r.LeaderCh()
	for {
		select {
		case <-n.done:
			return
		case isLeader := <-ch:
			n.leader.Store(isLeader)
			n.Changes.Add(1)
			n.opt.Logger.Info("raft leadership", "leader", isLeader, "term", n.r.CurrentTerm())
			if n.opt.OnLeader != nil {
				n.opt.OnLeader(isLeader)
			}
		}
	}
}

// AppliedIndex is the index of the last command applied here, its
// effects visible (raft's own counts what it handed to the FSM).
func (n *Node) AppliedIndex() uint64 { return n.opt.Store.AppliedIndex() }

// IsLeader says whether this master leads now.
func (n *Node) IsLeader() bool { return n.r.State() == raft.Leader }

// Term is the current Raft term.
func (n *Node) Term() uint64 { return n.r.CurrentTerm() }

// LeaderTerm is the term this master leads in, 0 when it does not lead
// (storage.Replicator): what fences its leader-only writes and its orders
// to nodes.
func (n *Node) LeaderTerm() uint64 {
	if !n.IsLeader() {
		return 0
	}
	return n.r.CurrentTerm()
}

// ApplyHere applies cmd only if this master leads (storage.Replicator):
// a leader-only write is never handed to another master. Errors: the
// FSM's, ErrNoLeader.
func (n *Node) ApplyHere(cmd []byte) error {
	if !n.IsLeader() {
		return ErrNoLeader
	}
	start := time.Now()
	defer func() {
		if n.CommitSeconds != nil {
			n.CommitSeconds(time.Since(start).Seconds())
		}
	}()
	return n.applyLocal(cmd)
}

// ConsistentRead readies this master for a linearizable read of its state
// (?consistent=true), the way Consul's consistent reads are made:
//   - it leads, and has committed an entry of its own term (a barrier,
//     once a term), so that it has applied everything its predecessors
//     committed (a new leader's commit index trails theirs until then);
//   - a quorum still follows it now (VerifyLeader): no newer leader can
//     have answered a write it has not seen.
//
// A write this master answered was applied before the answer; so the state
// read after ConsistentRead holds every write acknowledged anywhere before
// the read began. Errors: ErrNoLeader.
func (n *Node) ConsistentRead(timeout time.Duration) error {
	if !n.IsLeader() {
		return ErrNoLeader
	}
	if term := n.r.CurrentTerm(); n.readTerm.Load() != term {
		if err := n.r.Barrier(timeout).Error(); err != nil {
			return raftError(err)
		}
		n.readTerm.Store(term) // (leadership lost meanwhile fails the barrier)
	}
	if err := n.r.VerifyLeader().Error(); err != nil {
		return raftError(err)
	}
	return nil
}

// Barrier returns once every entry committed before it is applied here:
// a new leader's state holds all that its predecessors committed before
// its leader-only work reads it.
func (n *Node) Barrier(timeout time.Duration) error { return n.r.Barrier(timeout).Error() }

// RouteTLS is the mutual TLS of the masters (the shared secret's CA), for
// the routes between their NATS servers: one configuration that both
// accepts and dials.
func RouteTLS(secret []byte) (*tls.Config, error) {
	server, client, err := tlsConfigs(secret)
	if err != nil {
		return nil, err
	}
	c := server.Clone()
	c.RootCAs = client.RootCAs
	c.ServerName = client.ServerName
	return c, nil
}

// Apply replicates cmd (storage.Replicator): on the leader it is committed
// and applied here; a follower hands it to the leader, which answers once
// it is committed. Errors: the FSM's (the write's own answer), ErrNoLeader.
func (n *Node) Apply(cmd []byte) error {
	start := time.Now()
	defer func() {
		if n.CommitSeconds != nil {
			n.CommitSeconds(time.Since(start).Seconds())
		}
	}()
	if n.IsLeader() {
		return n.applyLocal(cmd)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://leader/ha/apply", bytes.NewReader(cmd))
	resp, err := n.forward.Do(req)
	if err != nil {
		return ErrNoLeader
	}
	defer resp.Body.Close()
	var out applyReply
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&out); err != nil {
		return ErrNoLeader
	}
	if out.Code == universe.EUNAVAILABLE {
		return ErrNoLeader // the leader lost its quorum meanwhile
	}
	if out.Code != "" {
		return universe.Errorf(out.Code, "%s", out.Message)
	}
	// Committed on the leader: wait until this master has applied it too,
	// so what a client reads here after the answer includes it.
	n.waitApplied(out.Index, 5*time.Second)
	return nil
}

// noteAcked raises acked to index.
func (n *Node) noteAcked(index uint64) {
	for {
		cur := n.acked.Load()
		if index <= cur || n.acked.CompareAndSwap(cur, index) {
			return
		}
	}
}

// WaitAcked returns once this master has applied every write it has
// answered as forwarded (or after 2 s: a master cut off from the leader
// serves what it has): what a read served here waits for, so that a
// client reads its own writes on the master it wrote through. At once
// when nothing is pending.
func (n *Node) WaitAcked() {
	if want := n.acked.Load(); n.AppliedIndex() < want {
		n.waitApplied(want, 2*time.Second)
	}
}

// waitApplied returns once this master has applied index (or after d).
func (n *Node) waitApplied(index uint64, d time.Duration) {
	n.opt.Store.WaitApplied(index, d) // woken by the apply, not polled
}

// applyLocal appends cmd to this master's log (as the leader) and waits
// for its commit and its application.
func (n *Node) applyLocal(cmd []byte) error {
	_, resp, err := n.propose.apply(cmd)
	if err != nil {
		return raftError(err)
	}
	if err, ok := resp.(error); ok && err != nil {
		return err
	}
	return nil
}

// raftError is what raft's refusal of a command means to the writer:
// ErrNoLeader (503, try again shortly) when this master does not lead, or
// no longer, or is handing the leadership over or stopping; ErrBusy (503)
// when raft could not even queue it in time; anything else is raft's own
// failure.
func raftError(err error) error {
	for _, e := range []error{raft.ErrNotLeader, raft.ErrLeadershipLost, raft.ErrLeadershipTransferInProgress, raft.ErrRaftShutdown} {
		if errors.Is(err, e) {
			return ErrNoLeader
		}
	}
	if errors.Is(err, raft.ErrEnqueueTimeout) {
		return ErrBusy
	}
	return fmt.Errorf("raft apply: %w", err)
}

// ErrBusy: raft did not take a command in time (its queue was full that
// long): the client may try again shortly.
var ErrBusy = universe.Errorf(universe.EUNAVAILABLE, "the cluster is too busy to take this now; try again shortly")

type applyReply struct {
	Index   uint64 `json:"index"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// Forward sends an API request to the leader and copies its answer to w.
// false: there is no leader to send it to.
func (n *Node) Forward(w http.ResponseWriter, r *http.Request) bool {
	out, err := http.NewRequestWithContext(r.Context(), r.Method, "http://leader"+r.URL.RequestURI(), r.Body)
	if err != nil {
		return false
	}
	out.Header = r.Header.Clone()
	out.Host = r.Host // the client's: the leader checks origins against it
	out.Header.Set("X-Universe-Forwarded-By", n.opt.ID)
	out.ContentLength = r.ContentLength
	resp, err := n.forward.Do(out)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		// Read your writes here too: every read this master serves after
		// this answer waits until it has applied what the leader had when
		// it answered (WaitAcked). The answer itself does not wait: the
		// write is committed, and a client that only writes is not held
		// up by this master's catching up.
		want, err := strconv.ParseUint(resp.Header.Get(appliedHeader), 10, 64)
		if err != nil { // a leader of an older version: ask it
			if addr, _ := n.r.LeaderWithID(); addr != "" {
				if l, err := n.info(r.Context(), string(addr)); err == nil {
					want = l.AppliedIndex
				}
			}
		}
		resp.Header.Del(appliedHeader)
		n.noteAcked(want)
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
	return true
}

// Proxy sends a request to the leader as it is, and streams the answer:
// a read of what the leader holds (its instances), a WebSocket (upgraded
// through), a page. false: there is no leader to send it to.
func (n *Node) Proxy(w http.ResponseWriter, r *http.Request) bool {
	addr, _ := n.r.LeaderWithID()
	if addr == "" {
		return false
	}
	ok := true
	rp := &httputil.ReverseProxy{
		Transport: n.forward.Transport,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", "leader"
			pr.Out.Host = pr.In.Host // the client's: the leader checks origins against it
			pr.Out.Header.Set("X-Universe-Forwarded-By", n.opt.ID)
		},
		FlushInterval: -1, // live logs and events as they come
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			ok = false
			n.opt.Logger.Warn("forward a request to the leader", "err", err)
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}
	rp.ServeHTTP(w, r)
	return ok
}

// routes serve the other masters: forwarded API requests, forwarded
// commands, and this master's status.
func (n *Node) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /ha/apply", func(w http.ResponseWriter, r *http.Request) {
		cmd, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
		var out applyReply
		if err == nil {
			if !n.IsLeader() {
				err = ErrNoLeader
			} else {
				var resp any
				if out.Index, resp, err = n.propose.apply(cmd); err != nil {
					err = raftError(err) // a transfer under way: the follower says 503, not 500
				} else if e, ok := resp.(error); ok {
					err = e
				}
			}
		}
		if err != nil {
			out.Code, out.Message = universe.ErrorCode(err), universe.ErrorMessage(err)
		}
		_ = json.NewEncoder(w).Encode(out)
	})
	mux.HandleFunc("GET /ha/templates/{group}/{name}", func(w http.ResponseWriter, r *http.Request) {
		if n.opt.TemplateZip == nil {
			http.NotFound(w, r)
			return
		}
		// Streamed, not built in memory (a template may be large); a
		// template that is not there is found out before the first byte.
		sw := &startedWriter{w: w}
		w.Header().Set("Content-Type", "application/zip")
		if err := n.opt.TemplateZip(sw, r.PathValue("group"), r.PathValue("name")); err != nil && !sw.started {
			if universe.ErrorCode(err) == universe.ENOTFOUND {
				http.NotFound(w, r)
				return
			}
			http.Error(w, "export failed", http.StatusInternalServerError)
		} // a failure after the first byte cuts the body: the fetcher's import refuses it
	})
	mux.HandleFunc("GET /ha/templates", func(w http.ResponseWriter, r *http.Request) {
		if n.opt.Templates == nil {
			http.NotFound(w, r)
			return
		}
		list, err := n.opt.Templates()
		if err != nil {
			http.Error(w, "list failed", http.StatusInternalServerError)
			return
		}
		_ = json.NewEncoder(w).Encode(list)
	})
	mux.HandleFunc("GET /ha/info", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(n.self())
	})
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a, err := netip.ParseAddr(r.Header.Get("X-Universe-Client")); err == nil {
			r = r.WithContext(context.WithValue(r.Context(), forwardedKey{}, a))
		}
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			n.opt.Handler.ServeHTTP(w, r)
			return
		}
		// A write: its answer says what this master had applied when it
		// answered, so the forwarding master waits for that much without
		// asking again.
		n.opt.Handler.ServeHTTP(&appliedWriter{ResponseWriter: w, n: n}, r)
	}))
	return mux
}

// appliedHeader carries, on the answer to a forwarded write, the leader's
// applied index when it answered.
const appliedHeader = "X-Universe-Applied-Index"

// appliedWriter sets appliedHeader as the answer's status is written.
type appliedWriter struct {
	http.ResponseWriter
	n       *Node
	written bool
}

func (a *appliedWriter) WriteHeader(code int) {
	if !a.written {
		a.written = true
		a.Header().Set(appliedHeader, strconv.FormatUint(a.n.AppliedIndex(), 10))
	}
	a.ResponseWriter.WriteHeader(code)
}

func (a *appliedWriter) Write(b []byte) (int, error) {
	if !a.written {
		a.WriteHeader(http.StatusOK)
	}
	return a.ResponseWriter.Write(b)
}

func (a *appliedWriter) Flush() {
	if f, ok := a.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (a *appliedWriter) Unwrap() http.ResponseWriter { return a.ResponseWriter }

type forwardedKey struct{}

// ForwardedClient is the client address of a request another master
// forwarded (it came over the masters' mutual TLS, whose peers are
// trusted to say so); false for any other request.
func ForwardedClient(r *http.Request) (netip.Addr, bool) {
	a, ok := r.Context().Value(forwardedKey{}).(netip.Addr)
	return a, ok
}

// Master is one master as GET /api/cluster/masters shows it.
type Master = api.Master

func (n *Node) self() Master {
	st := n.r.State()
	m := Master{ID: n.opt.ID, RaftAddress: n.opt.Advertise, APIURL: n.opt.APIURL, Leader: st == raft.Leader,
		Term: n.r.CurrentTerm(), AppliedIndex: n.AppliedIndex(), State: stateName(st)}
	if n.opt.NATSURL != nil {
		m.NATSURL = n.opt.NATSURL()
	}
	if st != raft.Leader {
		if lc := n.r.LastContact(); !lc.IsZero() {
			m.LastContactMs = time.Since(lc).Milliseconds()
		}
	}
	return m
}

func stateName(s raft.RaftState) string {
	switch s {
	case raft.Leader:
		return "leader"
	case raft.Candidate:
		return "candidate"
	default:
		return "follower"
	}
}

// Masters asks every master of the configuration for its status (1 s
// each, at once); one that does not answer is "unreachable".
// Peers are the Raft addresses of the cluster's other masters, as its
// configuration has them now.
func (n *Node) Peers() []string {
	f := n.r.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	var out []string
	for _, s := range f.Configuration().Servers {
		if string(s.ID) != n.opt.ID {
			out = append(out, string(s.Address))
		}
	}
	return out
}

func (n *Node) Masters(ctx context.Context) []Master {
	f := n.r.GetConfiguration()
	if f.Error() != nil {
		return []Master{n.self()}
	}
	servers := f.Configuration().Servers
	out := make([]Master, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		if string(s.ID) == n.opt.ID {
			out[i] = n.self()
			continue
		}
		out[i] = Master{ID: string(s.ID), RaftAddress: string(s.Address), State: "unreachable"}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if m, err := n.info(ctx, string(s.Address)); err == nil {
				out[i] = m
			}
		}()
	}
	wg.Wait()
	return out
}

// info asks the master at addr for its status.
func (n *Node) info(ctx context.Context, addr string) (Master, error) {
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{
		DialContext: func(context.Context, string, string) (net.Conn, error) {
			return dial(addr, n.client, muxHTTP, time.Second)
		},
	}}
	defer c.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://master/ha/info", nil)
	resp, err := c.Do(req)
	if err != nil {
		return Master{}, err
	}
	defer resp.Body.Close()
	var m Master
	err = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&m)
	return m, err
}

// Advertise is the address the other masters reach this one at.
func (n *Node) Advertise() string { return n.opt.Advertise }

// FetchTemplate asks the master at addr for template group/name as a zip
// archive, written to w (at most max bytes). found is false when that
// master has no such template (it was deleted).
func (n *Node) FetchTemplate(ctx context.Context, addr, group, name string, w io.Writer, max int64) (found bool, err error) {
	c := &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{
		DialContext: func(context.Context, string, string) (net.Conn, error) {
			return dial(addr, n.client, muxHTTP, 5*time.Second)
		},
	}}
	defer c.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://master/ha/templates/"+url.PathEscape(group)+"/"+url.PathEscape(name), nil)
	resp, err := c.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return false, nil
	default:
		return false, fmt.Errorf("master %s answered %d", addr, resp.StatusCode)
	}
	m, err := io.Copy(w, io.LimitReader(resp.Body, max+1))
	if err == nil && m > max {
		err = fmt.Errorf("template %s/%s is over %d bytes", group, name, max)
	}
	return true, err
}

// TemplatesOf lists the templates of the master at addr (group/name).
func (n *Node) TemplatesOf(ctx context.Context, addr string) ([]string, error) {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(context.Context, string, string) (net.Conn, error) {
			return dial(addr, n.client, muxHTTP, 5*time.Second)
		},
	}}
	defer c.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://master/ha/templates", nil)
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("master %s answered %d", addr, resp.StatusCode)
	}
	var list []string
	err = json.NewDecoder(io.LimitReader(resp.Body, 8<<20)).Decode(&list)
	return list, err
}

// Leader returns the leader's status (its API URL for clients), and
// whether there is one this master can reach.
func (n *Node) Leader(ctx context.Context) (Master, bool) {
	if n.IsLeader() {
		return n.self(), true
	}
	addr, _ := n.r.LeaderWithID()
	if addr == "" {
		return Master{}, false
	}
	m, err := n.info(ctx, string(addr))
	return m, err == nil
}

// AddVoter makes the master id at addr a voting member (the leader only;
// a follower's call is forwarded with the request that asked).
func (n *Node) AddVoter(id, addr string) error {
	if !n.IsLeader() {
		return ErrNoLeader
	}
	if err := n.r.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, 30*time.Second).Error(); err != nil {
		return universe.Errorf(universe.EUNAVAILABLE, "add %s: %v", id, err)
	}
	return nil
}

// RemoveServer takes master id out of the cluster (the leader only).
// Errors: ENOTFOUND for an id that is not a member.
func (n *Node) RemoveServer(id string) error {
	if !n.IsLeader() {
		return ErrNoLeader
	}
	f := n.r.GetConfiguration()
	if err := f.Error(); err != nil {
		return ErrNoLeader
	}
	found := false
	for _, s := range f.Configuration().Servers {
		found = found || string(s.ID) == id
	}
	if !found {
		return universe.Errorf(universe.ENOTFOUND, "no master %q in the cluster", id)
	}
	if err := n.r.RemoveServer(raft.ServerID(id), 0, 30*time.Second).Error(); err != nil {
		return universe.Errorf(universe.EUNAVAILABLE, "remove %s: %v", id, err)
	}
	return nil
}

// Snapshot takes a snapshot now (and compacts the log behind it).
func (n *Node) Snapshot() error { return n.r.Snapshot().Error() }

// HandOver gives the leadership to another master before this one stops
// (a graceful stop), once the others have caught up (awaitFollowers), so
// writes pause only for the transfer.
func (n *Node) HandOver() {
	if n.IsLeader() {
		n.awaitFollowers(3 * time.Second)
		if err := n.r.LeadershipTransfer().Error(); err != nil {
			n.opt.Logger.Warn("hand the leadership over", "err", err)
		}
	}
}

// awaitFollowers waits, at most d, until every other master that answers
// has applied what this one had applied when it was called: once this
// master has left, the new majority has no backlog to store before it
// can commit again. A master that was restarted a moment ago may be
// thousands of entries behind (raft retries a member that was down only
// after a backoff of up to seconds); handing over then paused every write
// until it had caught up (0.5-1.2 s measured with bench/ha). Writes go on
// here meanwhile. A master that does not answer is not waited for.
func (n *Node) awaitFollowers(d time.Duration) {
	target := n.AppliedIndex()
	deadline := time.Now().Add(d)
	for {
		behind := false
		for _, addr := range n.Peers() {
			ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
			m, err := n.info(ctx, addr)
			cancel()
			if err == nil && m.AppliedIndex < target {
				behind = true
			}
		}
		if !behind || time.Now().After(deadline) {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// Close leaves the cluster's work (not its membership): Raft stops, the
// port closes.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		close(n.done)
		if n.http != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = n.http.Shutdown(ctx)
			cancel()
		}
		if n.r != nil {
			_ = n.r.Shutdown().Error()
		}
		n.closeStores()
		n.wg.Wait()
	})
	return nil
}

func (n *Node) closeStores() {
	n.mux.close()
	if n.logStore != nil {
		_ = n.logStore.Close()
	}
}

// fsm applies committed commands to the state store.
type fsm struct{ db *storage.DB }

func (f *fsm) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies the commands of a batch of committed entries in one
// transaction (raft.BatchingFSM): one fsync for all the writes that
// arrived together.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	var entries []storage.Entry
	var at []int
	for i, l := range logs {
		if l.Type == raft.LogCommand {
			entries = append(entries, storage.Entry{Index: l.Index, Term: l.Term, Data: l.Data})
			at = append(at, i)
		}
	}
	if len(entries) == 0 {
		return out
	}
	for k, err := range f.db.ApplyCommands(entries) {
		if err != nil {
			out[at[k]] = err
		}
	}
	return out
}

func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	var buf bytes.Buffer
	if err := f.db.Snapshot(&buf); err != nil {
		return nil, err
	}
	return snapshot(buf.Bytes()), nil
}

func (f *fsm) Restore(r io.ReadCloser) error {
	defer r.Close()
	return f.db.Restore(r)
}

type snapshot []byte

func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (snapshot) Release() {}

// slogWriter feeds hclog's lines into the master's log.
type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.log.Warn("raft", "msg", string(bytes.TrimSpace(p)))
	return len(p), nil
}

// startedWriter says whether anything was written through it.
type startedWriter struct {
	w       io.Writer
	started bool
}

func (s *startedWriter) Write(p []byte) (int, error) {
	s.started = s.started || len(p) > 0
	return s.w.Write(p)
}
