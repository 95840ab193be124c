package master

import (
	"github.com/universe-orchestrator/universe/api"
	"io"

	"github.com/universe-orchestrator/universe/console"
	"log/slog"
	"net/netip"
	"path/filepath"
	"time"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/instance"
	"github.com/universe-orchestrator/universe/instance/logs"
	"github.com/universe-orchestrator/universe/instance/template"
	"github.com/universe-orchestrator/universe/master/auth"
)

// Config is everything the master needs; cmd/universe fills it from flags
// and the environment. DefaultConfig gives the production defaults.
type Config struct {
	Addr            string         // listen address, default ":7000"
	DataDir         string         // bbolt file and console history live here, default "./data"
	AllowCIDRs      []netip.Prefix // clients allowed; empty = everyone
	TrustedProxies  []netip.Prefix // proxies whose X-Forwarded-For is believed; empty = none
	PublicRate      auth.Rate      // calls per window for PUBLIC keys (default 100/60s)
	InstanceRate    auth.Rate      // calls per window for each instance's own key (default 20/1s)
	AuthFailureRate auth.Rate      // failed authentications per client address (default 20/1s)
	TLSCert, TLSKey string         // serve HTTPS when both are set
	ShutdownTimeout time.Duration  // bound on finishing in-flight requests (default 10s)
	FlushInterval   time.Duration  // how often last-used times are persisted (default 30s)
	WSPingInterval  time.Duration  // WebSocket keepalive pings (default 30s)
	MaxBodyBytes    int64          // request body limit (default 1 MiB)
	StatsInterval   time.Duration  // how often instances' CPU and memory are sampled (default 5s)
	BodyTimeout     time.Duration  // a request body must arrive within this (default 30s)
	UploadMinRate   int64          // on upload routes each this many bytes add 1s to BodyTimeout (default 64 KiB)
	AccessLog       bool           // log one line per request (default true)
	// AccessLogOut, when set, receives the access log's lines directly
	// (in Logger's text format, formatted by hand: cheaper than slog's
	// handler); it must be where Logger writes. Nil: through Logger.
	AccessLogOut io.Writer
	Version      string
	Logger       *slog.Logger // nil: discard

	NodeID         string // stable id of this node (default "node-1")
	TemplatesDir   string // template trees <group>/<name>/ (default <DataDir>/templates)
	ConfigDir      string // where "config reload" imports *.json from (default <DataDir>/configuration)
	PublicURL      string // the master's URL as instances see it (default http://127.0.0.1:<port>)
	MaxUploadBytes int64  // body limit of template file uploads and imports (default 256 MiB)
	MaxReportBytes int64  // body limit of an instance's state report (default 16 KiB)
	// MaxLogResponseBytes bounds the log lines of one answer (logs
	// endpoint, console "instance logs"; default 4 MiB).
	MaxLogResponseBytes int
	Reports             instance.ReportLimits // properties an instance may keep (64, names 64 B, values 1 KiB)
	ImportLimits        template.ImportLimits // limits of one zip import
	InstanceLog         logs.Options          // ring size, file rotation, line rate of instance logs
	// KeepInstances leaves instances running when the master stops, for
	// the next master to adopt (default: stop them gracefully).
	KeepInstances bool
	// NoResume keeps the instances that the last graceful stop of the
	// master stopped STOPPED (default: they start again at Open).
	NoResume bool
	// CgroupParent is where instance cgroups go: "auto" (default), "off",
	// or a cgroup v2 directory.
	CgroupParent string
	// ClusterAddr is where agent nodes connect (NATS; default ":7001"). It
	// listens only while a node is registered. ClusterAdvertise is the
	// host:port put in join commands (default: the public URL's host and
	// ClusterAddr's port). ClusterTLSCert/Key serve it with TLS.
	ClusterAddr string
	// HA makes the master one of a Raft cluster of masters.
	HA HAConfig
	// NoLocalInstances places no instance on the master's own node.
	NoLocalInstances bool
	// BackupDir is the local backup target's folder (default
	// <DataDir>/backups); BackupTargets a JSON file of S3 targets (mode
	// 0600), see backup.LoadTargets.
	BackupDir, BackupTargets string
	// WebhooksAllowPrivate lets webhooks reach loopback, private and
	// link-local addresses (refused by default: no SSRF into the
	// master's own network).
	WebhooksAllowPrivate bool
	// LocalCapacity is what the master's own node offers its instances
	// (ramMB, cpu; 0: no limit), enforced at every start as an agent
	// node's declared capacity is.
	LocalCapacity    api.NodeCapacity
	ClusterAdvertise string
	ClusterTLSCert   string
	ClusterTLSKey    string
	// NATSURL, when set, is an operator's NATS cluster (comma-separated
	// URLs; user:password@ allowed) the nodes and the master use instead of
	// the embedded server: no node port is opened. NATSCreds is a .creds
	// file for it. See hub.Options.
	NATSURL, NATSCreds string
	// DockerMountRoots are the host folders under which docker
	// configurations may bind-mount extra paths (none: no extra mount).
	DockerMountRoots []string
	// DockerAllowCaps are capabilities beyond Docker's default set that
	// docker configurations may add (--docker-allow-cap).
	DockerAllowCaps []string
	// Supervisor is the binary run as each instance's supervisor (default:
	// this executable); RestartBackoff and Resync tune supervision.
	Supervisor     []string
	RestartBackoff instance.Backoff
	Resync         time.Duration

	// Console, when set, is read as the master's terminal console (readline
	// when it is a terminal, lines otherwise); output goes to ConsoleOut.
	Console    io.Reader
	ConsoleOut io.Writer
	// ConsoleLog, when set, is the sink Logger writes to: the console
	// sends it through its prompt while the prompt is shown.
	ConsoleLog *console.LogSink

	Now func() time.Time // the clock; nil: time.Now
	// ScalingWarmUp: how long the scaler waits for reports after it
	// starts leading before it scales (0: scaling.WarmUp, 10 s).
	ScalingWarmUp time.Duration
}

// DefaultConfig returns the production defaults.
func DefaultConfig() Config {
	return Config{
		Addr:                ":7000",
		DataDir:             "./data",
		PublicRate:          auth.Rate{Limit: 100, Window: 60 * time.Second},
		InstanceRate:        auth.Rate{Limit: 20, Window: time.Second},
		AuthFailureRate:     auth.Rate{Limit: 20, Window: time.Second},
		ShutdownTimeout:     10 * time.Second,
		FlushInterval:       30 * time.Second,
		WSPingInterval:      30 * time.Second,
		MaxBodyBytes:        1 << 20,
		BodyTimeout:         30 * time.Second,
		UploadMinRate:       64 << 10,
		AccessLog:           true,
		Version:             "dev",
		NodeID:              "node-1",
		MaxUploadBytes:      256 << 20,
		MaxReportBytes:      16 << 10,
		MaxLogResponseBytes: 4 << 20,
		CgroupParent:        "auto",
		ClusterAddr:         ":7001",
	}
}

// withDefaults fills zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Addr == "" {
		c.Addr = d.Addr
	}
	if c.DataDir == "" {
		c.DataDir = d.DataDir
	}
	if c.PublicRate.Limit == 0 {
		c.PublicRate = d.PublicRate
	}
	if c.InstanceRate.Limit == 0 {
		c.InstanceRate = d.InstanceRate
	}
	if c.MaxLogResponseBytes == 0 {
		c.MaxLogResponseBytes = d.MaxLogResponseBytes
	}
	if c.MaxReportBytes == 0 {
		c.MaxReportBytes = d.MaxReportBytes
	}
	if c.AuthFailureRate.Limit == 0 {
		c.AuthFailureRate = d.AuthFailureRate
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = d.ShutdownTimeout
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = d.FlushInterval
	}
	if c.WSPingInterval == 0 {
		c.WSPingInterval = d.WSPingInterval
	}
	if c.StatsInterval == 0 {
		c.StatsInterval = 5 * time.Second
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = d.MaxBodyBytes
	}
	if c.BodyTimeout == 0 {
		c.BodyTimeout = d.BodyTimeout
	}
	if c.UploadMinRate == 0 {
		c.UploadMinRate = d.UploadMinRate
	}
	if c.NodeID == "" {
		c.NodeID = d.NodeID
	}
	if c.TemplatesDir == "" {
		c.TemplatesDir = filepath.Join(c.DataDir, "templates")
	}
	if c.ConfigDir == "" {
		c.ConfigDir = filepath.Join(c.DataDir, "configuration")
	}
	if c.BackupDir == "" {
		c.BackupDir = filepath.Join(c.DataDir, "backups")
	}
	if c.MaxUploadBytes == 0 {
		c.MaxUploadBytes = d.MaxUploadBytes
	}
	if c.Version == "" {
		c.Version = d.Version
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// ParsePrefixes reads addresses or CIDRs ("10.0.0.0/8", "192.0.2.7",
// "2001:db8::/32"); a single address becomes a one-address prefix. It is how
// --allow-cidr and --trusted-proxies are read. Errors: EINVALID.
func ParsePrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, universe.Errorf(universe.EINVALID, "%q is not an address or CIDR", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
