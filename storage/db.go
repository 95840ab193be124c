package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	universe "github.com/universe-orchestrator/universe"
	bolt "go.etcd.io/bbolt"
	boltErrors "go.etcd.io/bbolt/errors"
)

// FileName is the name of the bbolt file inside the data directory.
const FileName = "universe.db"

var (
	bucketKeys           = []byte("keys")           // key id -> JSON KeyRecord
	bucketKeyLabels      = []byte("key_labels")     // label -> key id (unique labels)
	bucketAudit          = []byte("audit")          // big-endian seq -> JSON AuditEntry
	bucketConfigurations = []byte("configurations") // name -> JSON api.Configuration
	bucketInstances      = []byte("instances")      // id -> JSON api.InstanceInfo
	bucketMeta           = []byte("meta")           // bookkeeping: metaAuditBytes
	bucketNodes          = []byte("nodes")          // name -> JSON NodeRecord
	bucketSessions       = []byte("sessions")       // cookie hash -> JSON SessionRecord
	bucketUsers          = []byte("users")          // name -> JSON users.User
	bucketGrants         = []byte("grants")         // grant id -> JSON users.Grant
	bucketBackups        = []byte("backups")        // backup id -> JSON api.Backup
	bucketSchedules      = []byte("schedules")      // schedule id -> JSON api.Schedule
	bucketRuns           = []byte("schedule_runs")  // "<schedule>/<fire time ns, 20 digits>/<run id>" -> JSON api.ScheduleRun
	bucketWebhooks       = []byte("webhooks")       // webhook id -> JSON api.Webhook (with its secret)
	allBuckets           = [][]byte{bucketKeys, bucketKeyLabels, bucketAudit, bucketConfigurations, bucketInstances, bucketMeta, bucketNodes, bucketSessions, bucketUsers, bucketGrants, bucketBackups, bucketSchedules, bucketRuns, bucketWebhooks}
	defaultOpenTimeout   = 2 * time.Second
)

// ErrLocked is returned by Open when another process (normally a running
// master) holds the database file.
var ErrLocked = universe.Errorf(universe.EUNAVAILABLE,
	"the data directory is in use by a running master; use its console or the REST API instead")

// Options tune Open. The zero value is the production setting.
type Options struct {
	// Timeout bounds the wait for the file lock (default 2s).
	Timeout time.Duration
	// NoSync skips fsync on commit. Only for benchmarks that fill a db.
	NoSync bool
	// Derived says the database only ever holds what a Raft log rebuilds
	// (a master in a cluster: every write is a committed entry the FSM
	// applies, and the log and its snapshots are fsync'd): commits skip
	// fsync, which took one fsync'd commit of three off every write's
	// path. What such a commit wrote is lost only if the machine itself
	// stops (a process killed leaves it in the page cache). So a file
	// written that way is trusted again only after a clean close, or
	// while the machine has not restarted since (its boot id, kept in
	// <dir>/universe.db.sync); otherwise it is set aside (Rebuilt) and
	// the Raft snapshot and log fill a new one.
	Derived bool
}

// DB is the open bbolt database of one data directory.
type DB struct {
	bolt *bolt.DB
	path string
	// The audit log keeps auditLimit entries and auditBytes bytes of them
	// (oldest dropped first, once it is a hundredth over either bound).
	auditLimit   int
	auditBytes   int
	group        *groupCommit // key and audit writes
	rep          Replicator   // in a cluster: writes of replicated state go through it
	applied      []func(Command)
	appliedIndex atomic.Uint64 // the last command applied (ApplyCommands)
	appliedMu    sync.Mutex
	appliedWake  chan struct{} // closed (and dropped) when appliedIndex moves: WaitApplied
	wanted       wantedCache   // ListConfigurationsWanted
	derived      bool          // Options.Derived
	// Rebuilt names where a Derived file that could not be trusted was
	// set aside at Open ("": none).
	Rebuilt string
}

// Open creates dir (mode 0700) if needed and opens <dir>/universe.db (mode
// 0600), creating its buckets. It returns ErrLocked if another process holds
// the file after opts.Timeout.
func Open(dir string, opts Options) (*DB, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	path := filepath.Join(dir, FileName)
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = defaultOpenTimeout
	}
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, NoSync: opts.NoSync || opts.Derived})
	var rebuilt string
	if err == nil && opts.Derived {
		// Under the file's lock: was it left by a run whose unsynced
		// commits an OS restart may have dropped?
		if !derivedTrusted(dir) {
			rebuilt = path + ".untrusted"
			_ = b.Close()
			if err := os.Rename(path, rebuilt); err != nil {
				return nil, fmt.Errorf("set aside %s: %w", path, err)
			}
			b, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, NoSync: true})
		}
		if err == nil {
			if werr := writeSyncMarker(dir, "open"); werr != nil {
				_ = b.Close()
				return nil, werr
			}
		}
	}
	if errors.Is(err, boltErrors.ErrTimeout) {
		return nil, ErrLocked
	} else if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	// The file may predate us or have been created under a lax umask.
	if err := os.Chmod(path, 0o600); err != nil && !errors.Is(err, fs.ErrPermission) {
		_ = b.Close()
		return nil, fmt.Errorf("chmod db: %w", err)
	}
	if err := b.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("create buckets: %w", err)
	}
	db := &DB{bolt: b, path: path, auditLimit: 10000, auditBytes: 8 << 20, group: &groupCommit{db: b}, derived: opts.Derived, Rebuilt: rebuilt}
	db.appliedIndex.Store(db.storedIndex())
	return db, nil
}

// Path returns the path of the bbolt file.
func (db *DB) Path() string { return db.path }

// Close closes the file and releases its lock.
func (db *DB) Close() error {
	// Queued writes (PutInstanceQueued) first: an empty write that waits
	// is committed after them.
	_ = db.group.update(func(*bolt.Tx) error { return nil })
	if db.derived {
		if err := db.bolt.Sync(); err != nil {
			_ = db.bolt.Close()
			return fmt.Errorf("sync db: %w", err)
		}
	}
	if err := db.bolt.Close(); err != nil {
		return fmt.Errorf("close db: %w", err)
	}
	if db.derived {
		return writeSyncMarker(filepath.Dir(db.path), "clean")
	}
	return nil
}
