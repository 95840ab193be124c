package storage

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	bolt "go.etcd.io/bbolt"
)

// Replicator carries a write to every master of a cluster (cluster/ha):
// Apply returns once cmd is committed by a quorum and applied on this
// master by ApplyCommand, with ApplyCommand's error.
type Replicator interface {
	Apply(cmd []byte) error
}

// Command is one replicated write.
type Command struct {
	Op     string               `json:"op"`
	Key    *universe.KeyRecord  `json:"key,omitempty"`
	Audit  *universe.AuditEntry `json:"audit,omitempty"`
	ID     string               `json:"id,omitempty"`
	Config *api.Configuration   `json:"config,omitempty"`
	Name   string               `json:"name,omitempty"`
}

// Replicated operations. The state they write (keys, configurations, the
// audit log) lives in the replicated buckets.
const (
	OpKeyCreate    = "key.create"
	OpKeyDelete    = "key.delete"
	OpConfigPut    = "config.put"
	OpConfigDelete = "config.delete"
	OpAudit        = "audit.append"
)

// replicatedBuckets are written only through commands in a cluster, and
// make up its snapshots.
var replicatedBuckets = [][]byte{bucketKeys, bucketKeyLabels, bucketAudit, bucketConfigurations, bucketMeta}

// SetReplicator makes every write of replicated state a command through r
// (set before the database is shared); nil: writes are local.
func (db *DB) SetReplicator(r Replicator) { db.rep = r }

// OnApplied registers f to be told of every command applied (by the FSM),
// after its transaction committed: caches of replicated state (the
// keyring) follow what other masters wrote. Register before use.
func (db *DB) OnApplied(f func(Command)) { db.applied = append(db.applied, f) }

// replicate sends cmd through the replicator.
func (db *DB) replicate(cmd Command) error {
	b, err := json.Marshal(cmd)
	if err != nil {
		return fmt.Errorf("encode command: %w", err)
	}
	return db.rep.Apply(b)
}

// ApplyCommand applies the committed command at log index (the FSM calls
// it, on every master, in log order). The index is stored in the same
// transaction, and a command at or below the stored index is skipped: a
// master that restarts replays its log over a state that already holds
// it. A command that breaks a rule (a label taken) is refused alike
// everywhere, and that error is the write's answer.
func (db *DB) ApplyCommand(index uint64, b []byte) error {
	var cmd Command
	if err := json.Unmarshal(b, &cmd); err != nil {
		return fmt.Errorf("decode command: %w", err)
	}
	var refused error
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(metaRaftIndex); len(v) == 8 && binary.BigEndian.Uint64(v) >= index {
			refused = errApplied
			return nil
		}
		if err := meta.Put(metaRaftIndex, binary.BigEndian.AppendUint64(nil, index)); err != nil {
			return err
		}
		// The command's own failure is its answer; the index is kept all
		// the same (in a nested transaction's stead, the op checks before
		// it writes).
		switch cmd.Op {
		case OpKeyCreate:
			if cmd.Key == nil {
				refused = errors.New("key.create without a key")
				return nil
			}
			refused = db.createKeyTx(tx, *cmd.Key, cmd.Audit)
		case OpKeyDelete:
			refused = deleteKeyTx(tx, cmd.ID)
		case OpConfigPut:
			if cmd.Config == nil {
				refused = errors.New("config.put without a configuration")
				return nil
			}
			refused = putConfigurationTx(tx, *cmd.Config)
		case OpConfigDelete:
			refused = deleteConfigurationTx(tx, cmd.Name)
		case OpAudit:
			if cmd.Audit == nil {
				refused = errors.New("audit.append without an entry")
				return nil
			}
			refused = db.appendAudit(tx, *cmd.Audit)
		default:
			refused = fmt.Errorf("unknown command %q", cmd.Op)
		}
		if refused != nil && universe.ErrorCode(refused) == universe.EINTERNAL {
			return refused // the disk's fault: nothing of it, the index neither
		}
		return nil
	})
	if err != nil {
		return err
	}
	if refused == errApplied {
		return nil
	}
	if refused == nil {
		for _, f := range db.applied {
			f(cmd)
		}
	}
	return refused
}

// errApplied marks a command the state already holds (a replay).
var errApplied = errors.New("applied already")

// metaRaftIndex holds the index of the last command applied (uint64).
var metaRaftIndex = []byte("raft_index")

// Snapshot writes the replicated state (a consistent bbolt copy) to w.
func (db *DB) Snapshot(w io.Writer) error {
	return db.bolt.View(func(tx *bolt.Tx) error {
		_, err := tx.WriteTo(w)
		return err
	})
}

// Restore replaces the replicated buckets with those of a snapshot, in one
// transaction; then tells the observers to reload (a Command with Op
// "restore").
func (db *DB) Restore(r io.Reader) error {
	tmp, err := os.CreateTemp(filepath.Dir(db.path), ".restore-*")
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, r); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("restore: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	src, err := bolt.Open(tmp.Name(), 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("restore: open snapshot: %w", err)
	}
	defer src.Close()
	err = src.View(func(from *bolt.Tx) error {
		return db.bolt.Update(func(to *bolt.Tx) error {
			for _, name := range replicatedBuckets {
				if err := to.DeleteBucket(name); err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
					return err
				}
				dst, err := to.CreateBucket(name)
				if err != nil {
					return err
				}
				sb := from.Bucket(name)
				if sb == nil {
					continue
				}
				if err := dst.SetSequence(sb.Sequence()); err != nil {
					return err
				}
				if err := sb.ForEach(func(k, v []byte) error { return dst.Put(k, v) }); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	for _, f := range db.applied {
		f(Command{Op: OpRestore})
	}
	return nil
}

// OpRestore tells observers that the replicated state was replaced whole.
const OpRestore = "restore"
