package master

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/backup"
	"github.com/universe-orchestrator/universe/cluster"
	"github.com/universe-orchestrator/universe/cluster/ha"
	"github.com/universe-orchestrator/universe/cluster/hub"
	"github.com/universe-orchestrator/universe/console"
	"github.com/universe-orchestrator/universe/instance"
	"github.com/universe-orchestrator/universe/instance/runtime"
	"github.com/universe-orchestrator/universe/instance/runtime/docker"
	"github.com/universe-orchestrator/universe/instance/stats"
	"github.com/universe-orchestrator/universe/instance/template"
	"github.com/universe-orchestrator/universe/master/auth"
	"github.com/universe-orchestrator/universe/master/webui"
	"github.com/universe-orchestrator/universe/storage"
)

func init() {
	// gin's mode is process-global; the master never wants debug output.
	gin.SetMode(gin.ReleaseMode)
}

// Master is one running master node. Build it with New, start it with Open,
// stop it with Close. Stopped is closed when an operator asks it to stop.
type Master struct {
	cfg Config
	// ha is this master's Raft node in a cluster (nil alone), and
	// templateSync what carries templates' files between the masters.
	ha           *ha.Node
	templateSync atomic.Pointer[templateSync]
	// baseURL is where the master is reached: --public-url, else the
	// address it serves on (set by Open), as instances are told.
	baseURL string
	// cpuProfiling: a CPU profile of the master is being taken (one at a time).
	cpuProfiling sync.Mutex
	// ctxKeys are gin contexts' value maps, reused from request to
	// request (requestID): a map made per request was a tenth of the
	// middleware's time.
	ctxKeys     sync.Pool
	log         *slog.Logger
	db          *storage.DB
	keys        *auth.Keyring
	sessions    *auth.Sessions // the dashboard's sign-ins
	accessLog   *accessLog     // nil: the access log goes through log
	pages       *webui.Pages   // the dashboard's templates
	stats       *stats.Sampler // CPU and memory of local instances
	crossOrigin *http.CrossOriginProtection
	limiter     *auth.Limiter // PUBLIC keys
	instLimiter *auth.Limiter // instances' own keys
	limitHeader []string      // RateLimit-Limit value, built once
	throttle    *auth.Throttle
	commands    *console.Registry
	templates   *template.Store
	instances   *instance.Manager
	hub         *hub.Hub // agent nodes
	backups     *backup.Service
	sched       *scheduler
	scale       *scalerState
	ev          *eventState
	uploads     map[string]bool  // routes whose body limit is MaxUploadBytes (and may take longer)
	bodyLimits  map[string]int64 // routes with a body limit of their own
	metrics     *metrics
	engine      *gin.Engine
	srv         *http.Server
	ln          net.Listener
	startedAt   time.Time

	// ctx lives from Open to Close: background work and WebSocket sessions
	// end when it is cancelled.
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup // background goroutines (flusher, console)
	wsMu    sync.Mutex     // guards closing, and wsWG.Add against Close's Wait
	closing bool           // Close has begun: no new WebSocket sessions
	wsWG    sync.WaitGroup // WebSocket sessions

	stopOnce sync.Once
	stopped  chan struct{}
	// userCache keeps users' records and rights between requests;
	// signinUsers and signinAddrs throttle failed sign-ins (5 a minute per
	// user and per address).
	userCache                userCache
	signinUsers, signinAddrs *auth.Throttle
	hashing                  sync.Mutex // one password check at a time (verify)
	// haNode is m.ha for the leadership watcher, which may run before
	// openHA has set m.ha.
	haNode atomic.Pointer[ha.Node]
	// nodesReload folds the reloads of the NATS server's node keys that
	// the log asks for (nodesChanged).
	nodesReload chan struct{}
	closeOnce   sync.Once
	closeErr    error
}

// New opens the data directory (bbolt file, keyring) and builds the router.
// Nothing runs until Open. Errors: storage.ErrLocked if another master holds
// the data directory.
func New(cfg Config) (*Master, error) {
	// Earlier versions kept these in the working directory by default.
	if cfg.TemplatesDir == "" {
		cfg.TemplatesDir = moveLegacyDir(cfg.Logger, cfg.DataDir, "templates")
	}
	if cfg.ConfigDir == "" {
		cfg.ConfigDir = moveLegacyDir(cfg.Logger, cfg.DataDir, "configuration")
	}
	cfg = cfg.withDefaults()
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return nil, universe.Errorf(universe.EINVALID, "--tls-cert and --tls-key go together")
	}
	// In a cluster, the Raft log (fsync'd) is what keeps each write: the
	// state it is applied to commits without fsync (storage.Options.Derived).
	db, err := storage.Open(cfg.DataDir, storage.Options{Derived: cfg.HA.Enabled()})
	if err != nil {
		return nil, err
	}
	if db.Rebuilt != "" {
		cfg.Logger.Warn("the machine restarted since this master last wrote its state without a clean stop: that state is set aside, and the cluster's snapshot and log rebuild it", "setAside", db.Rebuilt)
	}
	keys, err := auth.OpenKeyring(db, cfg.Now)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	// The keyring follows what the replicated log applies (in a cluster,
	// other masters' writes too).
	db.OnApplied(func(cmd storage.Command) {
		if cmd.Op == storage.OpKeysTouch {
			keys.ObserveTouch(cmd.LastUsed)
			return
		}
		keys.Observe(cmd.Op, cmd.Key, cmd.ID)
	})
	m := &Master{
		cfg:         cfg,
		log:         cfg.Logger,
		db:          db,
		keys:        keys,
		limiter:     auth.NewLimiter(cfg.PublicRate),
		instLimiter: auth.NewLimiter(cfg.InstanceRate),
		throttle:    auth.NewThrottle(cfg.AuthFailureRate, 16384),
		stopped:     make(chan struct{}),
		nodesReload: make(chan struct{}, 1),
		signinUsers: auth.NewThrottle(auth.Rate{Limit: 5, Window: time.Minute}, 4096),
		signinAddrs: auth.NewThrottle(auth.Rate{Limit: 5, Window: time.Minute}, 4096),
	}
	m.limitHeader = headerNum(int64(cfg.PublicRate.Limit))
	if cfg.AccessLogOut != nil {
		m.accessLog = newAccessLog(cfg.AccessLogOut)
	}
	m.sessions, err = auth.OpenSessions(keys, db, cfg.Now)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	if !cfg.HA.Enabled() {
		// Sessions of gone keys and expired ones leave the store (in a
		// cluster the leader does it: the log is its one writer).
		if err := m.sessions.Purge(); err != nil {
			m.log.Warn("purge dashboard sessions", "err", err)
		}
		m.purgeLoginKeys("")
	}
	db.OnApplied(func(cmd storage.Command) {
		switch cmd.Op {
		case storage.OpSessionPut, storage.OpSessionDelete:
			m.sessions.Observe(cmd.Session, cmd.Hashes)
		case storage.OpRestore:
			m.sessions.ObserveRestore()
			if t := m.templateSync.Load(); t != nil {
				t.restored()
			}
		case storage.OpTemplateChanged:
			if t := m.templateSync.Load(); t != nil {
				t.observed(cmd)
			}
		}
		switch cmd.Op {
		case storage.OpNodeCreate, storage.OpNodePut, storage.OpNodeDelete, storage.OpRestore:
			m.nodesChanged() // the nodes' keys, on this master's server too
		case storage.OpUserCreate, storage.OpUserPut, storage.OpUserDelete, storage.OpGrantPut, storage.OpGrantDelete:
			m.usersChanged()
		case storage.OpWebhookPut, storage.OpWebhookDelete:
			m.reloadWebhooks()
		case storage.OpInstancePut:
			if cmd.Term == 0 && cmd.Instance != nil { // carried from a single master: the leader takes it
				go m.instances.Take(cmd.Instance.Info())
			}
		}
	})
	m.crossOrigin = http.NewCrossOriginProtection()
	keys.OnRevoke(m.limiter.Forget)
	keys.OnRevoke(m.instLimiter.Forget)
	if fi, err := os.Stat(cfg.DataDir); err == nil && fi.Mode().Perm()&0o077 != 0 {
		m.log.Warn("the data directory is open to other users; it holds secrets: chmod 700 it",
			"dir", cfg.DataDir, "mode", fi.Mode().Perm().String())
	}
	if cfg.HA.Enabled() {
		// In a cluster of masters, instances run on agent nodes, placed by
		// the leader (as Nomad's servers run no jobs): a master that dies
		// takes none with it, and any master can lead them all.
		cfg.NoLocalInstances, m.cfg.NoLocalInstances = true, true
	}
	if err := universe.ValidateName("node id", cfg.NodeID); err != nil {
		_ = db.Close()
		return nil, err
	}
	m.templates, err = template.Open(cfg.TemplatesDir)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.metrics = newMetrics(keys, cfg.Version)
	m.newEvents()
	if m.pages, err = webui.Parse(); err != nil {
		_ = db.Close()
		return nil, err
	}
	var clusterTLS *tls.Config
	if cfg.ClusterTLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.ClusterTLSCert, cfg.ClusterTLSKey)
		if err != nil {
			_ = m.templates.Close()
			_ = db.Close()
			return nil, universe.Errorf(universe.EINVALID, "load the cluster TLS certificate: %v", err)
		}
		clusterTLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	m.hub = hub.New(hub.Options{Store: db, Addr: cfg.ClusterAddr, Advertise: cfg.ClusterAdvertise, TLS: clusterTLS,
		NATSURL: cfg.NATSURL, NATSCreds: cfg.NATSCreds,
		Templates: m.templates, Version: cfg.Version, Logger: m.log, Now: cfg.Now,
		OnNodeChange: func(node string, reachable bool, lastHeard time.Time) {
			m.instances.NodeChanged(node, reachable, lastHeard)
			m.nodeEvent(node, reachable)
		},
		OnHealth: func(r cluster.HealthReport) { m.instances.NodeHealth(r.Instance, r.Epoch, r.Passing, r.Error, r.Fails) },
	})
	m.instances = instance.New(instance.Options{
		NodeID:    cfg.NodeID,
		DataDir:   cfg.DataDir,
		MasterURL: cfg.PublicURL,
		Templates: m.templates,
		Store:     db,
		Log:       cfg.InstanceLog,
		Logger:    m.log,
		Now:       cfg.Now,
		Hooks:     m.instanceHooks(),
		Keys:      keys,

		Supervisor:    cfg.Supervisor,
		KeepInstances: cfg.KeepInstances,
		NoResume:      cfg.NoResume,
		Restart:       cfg.RestartBackoff,
		Resync:        cfg.Resync,
		Cgroups:       cfg.CgroupParent,
		Reports:       cfg.Reports,
		Runtimes:      append(runtime.Builtin(), docker.New()),
		MountRoots:    cfg.DockerMountRoots,
		ExtraCaps:     cfg.DockerAllowCaps,
		Remote:        remote{m},
		Standby:       cfg.HA.Enabled(),
	})
	m.metrics.registerInstances(m.instances)
	m.metrics.registerNodes(m.nodes, m.hub.Relay)

	if err := m.instances.Open(); err != nil {
		_ = m.templates.Close()
		_ = db.Close()
		return nil, err
	}
	if err := m.openBackups(); err != nil {
		_ = m.templates.Close()
		_ = db.Close()
		return nil, err
	}
	m.newScheduler()
	m.newScaler()
	m.commands = console.NewRegistry()
	if err := m.commands.Register(
		console.HelpCommand(m.commands),
		console.StopCommand(m.requestStop),
		console.KeyCommands(keys, cfg.Now),
		m.userCommands(),
	); err != nil {
		_ = db.Close()
		return nil, err
	}
	if err := m.commands.Register(m.nodeCommands()...); err != nil {
		_ = db.Close()
		return nil, err
	}
	if err := m.commands.Register(m.dashboardCommands()...); err != nil {
		_ = db.Close()
		return nil, err
	}
	if err := m.commands.Register(m.instanceCommands()...); err != nil {
		_ = db.Close()
		return nil, err
	}
	m.engine, err = m.routes()
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	m.stats = stats.New(m.cfg.StatsInterval, m.statTargets)
	m.metrics.reg.MustRegister(newStatsCollector(m.stats, func(f func(id, config string, cpu float64, mem int64)) {
		m.hub.EachUsage(func(node, id string, cpu float64, mem int64) {
			if in, err := m.instances.Get(id); err == nil {
				if info := in.Info(); info.WrapperNodeID == node {
					f(id, info.ConfigurationName, cpu, mem)
				}
			}
		})
	}))
	return m, nil
}

// moveLegacyDir moves ./<name>, where earlier versions kept it by default,
// into the data directory when the data directory has none yet, and
// returns the folder to use ("" for the default). When the move fails (it
// may cross file systems), the old folder stays in use and the log says to
// move it.
func moveLegacyDir(log *slog.Logger, dataDir, name string) string {
	if dataDir == "" {
		dataDir = DefaultConfig().DataDir
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	old, dst := name, filepath.Join(dataDir, name)
	if fi, err := os.Lstat(old); err != nil || !fi.IsDir() {
		return ""
	}
	if a, err1 := filepath.Abs(old); err1 == nil {
		if b, err2 := filepath.Abs(dst); err2 == nil && a == b {
			return ""
		}
	}
	if _, err := os.Lstat(dst); err == nil {
		log.Warn("an old folder is left in the working directory; the one in the data directory is used", "old", old, "used", dst)
		return ""
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return old
	}
	if err := os.Rename(old, dst); err != nil {
		log.Warn("could not move a folder into the data directory, so it is used where it is; move it by hand", "from", old, "to", dst, "err", err)
		return old
	}
	log.Info("moved a folder into the data directory", "from", old, "to", dst)
	return ""
}

// Commands returns the console registry, for later subsystems to register
// their commands in (before Open).
func (m *Master) Commands() *console.Registry { return m.commands }

// Handler returns the HTTP handler of the master (for tests and benchmarks).
func (m *Master) Handler() http.Handler { return m.engine }

// Instances returns the instance manager.
func (m *Master) Instances() *instance.Manager { return m.instances }

// Keyring returns the master's keyring.
func (m *Master) Keyring() *auth.Keyring { return m.keys }

// Open listens on the configured address (a busy port fails here), then
// serves in the background, persists last-used times and, if configured,
// runs the terminal console.
func (m *Master) Open() error {
	ln, err := net.Listen("tcp", m.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", m.cfg.Addr, err)
	}
	m.ln = ln
	m.startedAt = m.cfg.Now()
	m.baseURL = strings.TrimSuffix(m.cfg.PublicURL, "/")
	if m.cfg.PublicURL == "" {
		scheme := "http"
		if m.cfg.TLSCert != "" {
			scheme = "https"
		}
		port := ln.Addr().(*net.TCPAddr).Port
		m.baseURL = fmt.Sprintf("%s://127.0.0.1:%d", scheme, port)
		m.instances.SetMasterURL(m.baseURL)
	}
	if m.cfg.HA.Enabled() {
		if err := m.openHA(); err != nil {
			_ = ln.Close()
			return err
		}
	}
	m.srv = &http.Server{
		Handler:           m.engine,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return m.ctx },
	}
	if m.cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(m.cfg.TLSCert, m.cfg.TLSKey)
		if err != nil {
			_ = ln.Close()
			return universe.Errorf(universe.EINVALID, "load TLS certificate: %v", err)
		}
		m.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	// Decided before Serve starts: Serve itself writes srv.TLSConfig (HTTP/2).
	useTLS := m.srv.TLSConfig != nil
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		var err error
		if useTLS {
			err = m.srv.ServeTLS(ln, "", "")
		} else {
			err = m.srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("http server stopped", "err", err)
		}
	}()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.stats.Run(m.ctx)
	}()
	if !m.cfg.HA.Enabled() {
		m.startScheduler() // in a cluster, the leader runs it (onLeader)
		m.startScaler()
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.keys.Run(m.ctx, m.cfg.FlushInterval, func(err error) { m.log.Error("key store", "err", err) })
	}()
	if m.cfg.Console != nil {
		t := &console.Terminal{
			Registry:    m.commands,
			In:          m.cfg.Console,
			Out:         m.cfg.ConsoleOut,
			HistoryFile: filepath.Join(m.cfg.DataDir, "console_history"),
			Logger:      m.log,
			Log:         m.cfg.ConsoleLog,
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			if err := t.Run(m.ctx); err != nil {
				m.log.Error("console", "err", err)
			}
		}()
	}
	if err := m.hub.Open(); err != nil {
		m.log.Error("cluster server: agent nodes cannot connect", "err", err)
	}
	m.log.Info("master listening", "addr", ln.Addr().String(), "tls", useTLS, "version", m.cfg.Version)
	if m.keys.Count(universe.ScopeAll) == 0 {
		m.log.Warn("no ALL key exists yet: make the first with \"key create admin ALL\" on this console, " +
			"or with \"universe key create admin ALL --data " + m.cfg.DataDir + "\" while no master runs")
	}
	return nil
}

// Addr returns the address the master listens on (after Open).
func (m *Master) Addr() string { return m.ln.Addr().String() }

// Stopped is closed when an operator asked the master to stop (the console's
// stop command). The owner then calls Close.
func (m *Master) Stopped() <-chan struct{} { return m.stopped }

func (m *Master) requestStop() { m.stopOnce.Do(func() { close(m.stopped) }) }

// Close stops the master gracefully: it stops accepting connections, lets
// in-flight requests finish (within ShutdownTimeout), closes WebSockets with
// a normal close, persists last-used times and closes the database.
func (m *Master) Close() error {
	m.closeOnce.Do(func() {
		m.log.Info("master stopping")
		if m.ha != nil {
			m.ha.HandOver() // writes pause only while another master takes over
		}
		m.wsMu.Lock()
		m.closing = true // from here no session is added to wsWG
		m.wsMu.Unlock()
		m.cancel() // WebSocket sessions close normally; console and flusher end
		if m.srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), m.cfg.ShutdownTimeout)
			if err := m.srv.Shutdown(ctx); err != nil {
				m.log.Warn("in-flight requests cut off at shutdown timeout", "err", err)
				_ = m.srv.Close()
			}
			cancel()
		}
		waitTimeout(&m.wsWG, m.cfg.ShutdownTimeout)
		m.stopScheduler()
		m.stopScaler()
		m.wg.Wait()
		m.ev.hooks.Close()
		m.backups.Close() // a backup cut short is FAILED ("the master stopped")
		// Instances stop gracefully, each within its stop timeout. Their
		// supervisors go once the rest is closed too.
		defer m.instances.ReleaseSupervisors()
		start := time.Now()
		if err := m.instances.Shutdown(); err != nil {
			m.closeErr = err
		}
		m.log.Info("instances stopped", "duration", time.Since(start).Round(time.Millisecond))
		m.hub.Close()
		if m.ha != nil {
			_ = m.ha.Close()
		}
		_ = m.templates.Close()
		if err := m.keys.Flush(); err != nil {
			m.closeErr = err
		}
		if err := m.db.Close(); err != nil && m.closeErr == nil {
			m.closeErr = err
		}
		m.log.Info("master stopped")
	})
	return m.closeErr
}

// addSession registers a WebSocket session with Close, unless Close has
// begun (then it returns false and the session must not start).
func (m *Master) addSession() bool {
	m.wsMu.Lock()
	defer m.wsMu.Unlock()
	if m.closing {
		return false
	}
	m.wsWG.Add(1)
	return true
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}

// Config returns the master's configuration (defaults filled in).
func (m *Master) Config() Config { return m.cfg }

// statTargets lists the running instances on this machine for the stats
// sampler. Instances on agent nodes are not sampled here: their pids are
// another machine's.
func (m *Master) statTargets() []stats.Target {
	var out []stats.Target
	for _, in := range m.instances.List(instance.Filter{}) {
		if in.ProcessPid != nil && m.instances.Local(in) {
			out = append(out, stats.Target{ID: in.ID, Configuration: in.ConfigurationName, PID: int(*in.ProcessPid)})
		}
	}
	return out
}
