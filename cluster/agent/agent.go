// Package agent is a node's side of the cluster: "universe agent" connects
// to the master's NATS server with its node credential, sends a heartbeat
// every second, and reconnects forever with backoff, until the master
// revokes it (then Run returns ErrRevoked and the process exits non-zero
// instead of retrying).
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/universe-orchestrator/universe/backup"
	"github.com/universe-orchestrator/universe/cluster"
)

// isRefusal says whether err is the server refusing the credential.
func isRefusal(err error) bool {
	return err != nil && (errors.Is(err, nats.ErrAuthorization) || strings.Contains(strings.ToLower(err.Error()), "authorization violation"))
}

// authGrace is how long the agent goes on trying after its credential was
// refused before it takes itself for revoked (or never valid).
const authGrace = 3 * time.Second

// ErrRevoked is Run's error when the master revoked this node (or refuses
// its credential).
var ErrRevoked = errors.New("this node was revoked by the master (or its credential is not the master's): not retrying")

// Options configure an agent.
type Options struct {
	Master     string // nats://host:port (a comma-separated list is tried in turn; user:password@ allowed)
	Credential string // unvn_...
	// NATSCreds is a .creds file for an operator's NATS cluster. With it,
	// or with user:password@ in Master, the agent signs in to NATS with
	// those; otherwise with the credential's nkey (the embedded server, or
	// a cluster whose configuration has the node's nkey user).
	NATSCreds string
	// CgroupParent is where instances' cgroups go (cgroup v2): "auto"
	// (below the agent's own cgroup), "off", or a directory, as the
	// master's --cgroup-parent.
	CgroupParent string
	DataDir      string
	Version      string
	Logger       *slog.Logger
	// Heartbeat is the period of heartbeats (default 1 s).
	Heartbeat time.Duration
	// MaxBackoff caps the wait between reconnection attempts (default 5 s).
	MaxBackoff time.Duration
	// BackupTargets are the S3 targets this node uploads its instances'
	// backups to itself (backup.LoadTargets); a backup to another target
	// is carried to the master.
	BackupTargets map[string]backup.Target
	// Supervisor runs the supervisors of the built-in runtimes, and
	// FullSupervisor those of the others (docker), to which "supervise
	// <dir>" is appended (default: this executable).
	Supervisor, FullSupervisor []string
}

// Run runs the agent until ctx ends (nil) or the node is revoked
// (ErrRevoked).
func Run(ctx context.Context, opt Options) error {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Heartbeat <= 0 {
		opt.Heartbeat = time.Second
	}
	if opt.MaxBackoff <= 0 {
		opt.MaxBackoff = 5 * time.Second
	}
	node, kp, err := cluster.ParseCredential(opt.Credential)
	if err != nil {
		return err
	}
	if opt.DataDir == "" {
		opt.DataDir = "data"
	}
	// Every path below is made from the data directory, and supervisors
	// run in the instances' folders: a relative one (the join line's
	// "--data ./game-1") would be resolved again from there.
	if opt.DataDir, err = filepath.Abs(opt.DataDir); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := os.MkdirAll(opt.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	pub, _ := kp.PublicKey()
	log := opt.Logger.With("node", node)
	revoked := make(chan string, 1)
	say := func(why string) {
		select {
		case revoked <- why:
		default:
		}
	}
	// Templates: synced at the start, after every reconnection and when
	// the master asks; one sync at a time, requests meanwhile coalesced.
	syncWanted := make(chan struct{}, 1)
	wantSync := func() {
		select {
		case syncWanted <- struct{}{}:
		default:
		}
	}
	// A revoked node is told so at once ("revoked"). A refusal of its
	// credential means the same when it lasts: one alone may be a
	// connection made while the master's server reloaded its keys (another
	// node was added), so the agent gives up only when it is still not
	// connected authGrace after a refusal. (The NATS client reports only
	// some of the refusals it meets while reconnecting: the time is what
	// counts, not their number.)
	var refusedAt atomic.Int64 // unix ns of the first refusal since the last connection
	authFailed := func(err error) bool {
		if !isRefusal(err) {
			return false
		}
		refusedAt.CompareAndSwap(0, time.Now().UnixNano())
		return true
	}
	auth := nats.Nkey(pub, kp.Sign)
	switch {
	case opt.NATSCreds != "":
		auth = nats.UserCredentials(opt.NATSCreds)
	case cluster.HasUserInfo(opt.Master):
		auth = func(*nats.Options) error { return nil } // the URL's user:password
	}
	nc, err := nats.Connect(opt.Master,
		nats.Name("universe-agent-"+node),
		auth,
		nats.CustomInboxPrefix(cluster.Inbox(node)),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1), // forever: NATS gives up after 60 tries by default
		nats.CustomReconnectDelay(func(attempts int) time.Duration {
			d := min(time.Duration(1<<min(attempts, 10))*100*time.Millisecond, opt.MaxBackoff)
			return d/2 + rand.N(d/2+1)
		}),
		nats.PingInterval(time.Second), // a dead master is noticed in seconds,
		nats.MaxPingsOutstanding(3),    // not after NATS's default of minutes
		nats.Timeout(5*time.Second),
		nats.IgnoreAuthErrorAbort(), // we decide when to give up (above), not the client
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if !authFailed(err) {
				log.Warn("cluster connection", "err", err)
			}
		}),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) { authFailed(err) }),
		nats.ConnectHandler(func(*nats.Conn) { refusedAt.Store(0); wantSync() }), // a first connection made late
		nats.ReconnectHandler(func(c *nats.Conn) {
			refusedAt.Store(0)
			log.Info("reconnected to the master", "url", c.ConnectedUrlRedacted())
			wantSync()
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("disconnected from the master", "err", err)
			}
		}),
	)
	if err != nil {
		return fmt.Errorf("connect to the master: %w", err)
	}
	defer nc.Close() // last: after the sync has ended
	if _, err := nc.Subscribe(cluster.To(node, "revoked"), func(m *nats.Msg) {
		var r cluster.Revoked
		_ = json.Unmarshal(m.Data, &r)
		say(r.Reason)
	}); err != nil {
		return err
	}
	if _, err := nc.Subscribe(cluster.To(node, "tpl.sync"), func(*nats.Msg) { wantSync() }); err != nil {
		return err
	}
	syncDone := make(chan struct{})
	defer func() { <-syncDone }()
	syncCtx, stopSync := context.WithCancel(ctx)
	defer stopSync()
	go func() {
		defer close(syncDone)
		for {
			select {
			case <-syncCtx.Done():
				return
			case <-syncWanted:
			}
			if syncCtx.Err() != nil {
				return // both were ready: ending wins
			}
			if !nc.IsConnected() {
				continue // the reconnection asks again
			}
			st, err := SyncTemplates(syncCtx, nc, node, opt.DataDir)
			switch {
			case err != nil:
				log.Warn("template sync", "err", err)
			case st.FirstError != nil:
				log.Warn("template sync", "err", st.FirstError, "installed", st.Installed, "files", st.Blobs)
			default:
				log.Info("templates synced", "templates", st.Templates, "installed", st.Installed, "removed", st.Removed, "files", st.Blobs, "bytes", st.BlobBytes)
			}
		}
	}()
	if nc.IsConnected() {
		wantSync()
	}
	runCtx, stopRuns := context.WithCancel(context.Background())
	defer stopRuns()
	r, err := newRunner(runCtx, nc, node, opt.DataDir, log, opt.Supervisor, opt.FullSupervisor, opt.CgroupParent)
	if err != nil {
		return err
	}
	r.targets = opt.BackupTargets
	log.Info("agent started", "master", cluster.RedactURLs(opt.Master))
	t := time.NewTicker(opt.Heartbeat)
	defer t.Stop()
	var seq uint64
	boot := randomSuffix()
	beat := func() {
		seq++
		b, _ := json.Marshal(cluster.Heartbeat{Version: opt.Version, Seq: seq, Boot: boot, Time: time.Now().UnixMilli()})
		_ = nc.Publish(cluster.From(node, "hb"), b) // buffered while disconnected
	}
	if nc.IsConnected() {
		beat()
	}
	for {
		select {
		case <-ctx.Done():
			r.detachAll() // the instances run on; the next agent adopts them
			return nil
		case why := <-revoked:
			log.Error("revoked", "reason", why)
			r.killAll()
			return fmt.Errorf("%w (%s)", ErrRevoked, why)
		case <-t.C:
			if nc.IsConnected() {
				refusedAt.Store(0)
				beat()
			} else if at := refusedAt.Load(); at != 0 && time.Since(time.Unix(0, at)) > authGrace && isRefusal(nc.LastError()) {
				say("the master refuses this node's credential")
			}
		}
	}
}
