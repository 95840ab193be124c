package storage

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/master/users"
	bolt "go.etcd.io/bbolt"
)

// Replicator carries a write to every master of a cluster (cluster/ha):
// Apply returns once cmd is committed by a quorum and applied on this
// master by ApplyCommand, with ApplyCommand's error.
type Replicator interface {
	Apply(cmd []byte) error
	// LeaderTerm is the term this master leads in (0: it does not lead).
	LeaderTerm() uint64
	// ApplyHere is Apply for leader-only writes: applied only if this
	// master leads (never handed to another), else ErrNoLeader's kind
	// (EUNAVAILABLE).
	ApplyHere(cmd []byte) error
}

// Command is one replicated write.
type Command struct {
	Op     string               `json:"op"`
	Key    *universe.KeyRecord  `json:"key,omitempty"`
	Audit  *universe.AuditEntry `json:"audit,omitempty"`
	ID     string               `json:"id,omitempty"`
	Config *api.Configuration   `json:"config,omitempty"`
	Name   string               `json:"name,omitempty"`
	// From: template.changed: the master whose template folder has the
	// template's new content (its HA address), Name the template.
	From string `json:"from,omitempty"`
	// Session and Hashes: dashboard sessions put and deleted.
	Session *SessionRecord `json:"session,omitempty"`
	Hashes  []string       `json:"hashes,omitempty"`
	// LastUsed: keys' last-used times (key id to time).
	LastUsed map[string]time.Time `json:"lastUsed,omitempty"`
	// Node: node.create and node.put.
	Node *NodeRecord `json:"node,omitempty"`
	// Instance: instance.put (instance.delete names it by ID).
	Instance *storedInstance `json:"instance,omitempty"`
	// User and Grant: users' records and grants.
	User  *users.User  `json:"user,omitempty"`
	Grant *users.Grant `json:"grant,omitempty"`
	// Backup: backup.put (backup.delete names it by ID).
	Backup *api.Backup `json:"backup,omitempty"`
	// Schedule and Run: schedules and their runs.
	Schedule *api.Schedule    `json:"schedule,omitempty"`
	Run      *api.ScheduleRun `json:"run,omitempty"`
	Webhook  *api.Webhook     `json:"webhook,omitempty"`
	// Step: user.factor, a TOTP code's time step (ID: a recovery code's
	// hash instead).
	Step uint64 `json:"step,omitempty"`
	// Term fences the leader-only writes (instance records): the term
	// its master led in when it wrote. A command whose entry the log
	// holds under a later term came from a leader that was deposed
	// meanwhile, and is refused.
	Term uint64 `json:"term,omitempty"`
}

// Replicated operations. The state they write (keys, configurations, the
// audit log) lives in the replicated buckets.
const (
	OpKeyCreate       = "key.create"
	OpKeyDelete       = "key.delete"
	OpConfigPut       = "config.put"
	OpConfigDelete    = "config.delete"
	OpAudit           = "audit.append"
	OpKeysTouch       = "keys.touch"
	OpTemplateChanged = "template.changed"
	OpSessionPut      = "session.put"
	OpSessionDelete   = "session.delete"
	OpNodeCreate      = "node.create"
	OpNodePut         = "node.put"
	OpNodeDelete      = "node.delete"
	OpInstancePut     = "instance.put"
	OpInstanceDelete  = "instance.delete"
	OpUserCreate      = "user.create"
	OpUserPut         = "user.put"
	OpUserDelete      = "user.delete"
	OpGrantPut        = "grant.put"
	OpGrantDelete     = "grant.delete"
	OpUserFactor      = "user.factor"
	OpBackupPut       = "backup.put"
	OpBackupDelete    = "backup.delete"
	OpSchedulePut     = "schedule.put"
	OpScheduleDelete  = "schedule.delete"
	OpRunCreate       = "run.create"
	OpRunPut          = "run.put"
	OpWebhookPut      = "webhook.put"
	OpWebhookDelete   = "webhook.delete"
)

// replicatedBuckets are written only through commands in a cluster, and
// make up its snapshots.
var replicatedBuckets = [][]byte{bucketKeys, bucketKeyLabels, bucketAudit, bucketConfigurations, bucketMeta, bucketSessions, bucketNodes, bucketInstances, bucketUsers, bucketGrants, bucketBackups, bucketSchedules, bucketRuns, bucketWebhooks}

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

// replicateAsLeader sends a leader-only write (an instance record): stamped
// with the term this master leads in, applied only here. Errors:
// EUNAVAILABLE when this master does not lead.
func (db *DB) replicateAsLeader(cmd Command) error {
	cmd.Term = db.rep.LeaderTerm()
	if cmd.Term == 0 {
		return universe.Errorf(universe.EUNAVAILABLE, "this master does not lead its cluster: it writes no instance record")
	}
	b, err := json.Marshal(cmd)
	if err != nil {
		return fmt.Errorf("encode command: %w", err)
	}
	return db.rep.ApplyHere(b)
}

// Entry is one committed command, its log index and the term the log
// holds it under.
type Entry struct {
	Index uint64
	Term  uint64
	Data  []byte
}

// ApplyCommand applies the committed command at log index: ApplyCommands
// of one.
func (db *DB) ApplyCommand(index uint64, b []byte) error {
	return db.ApplyCommands([]Entry{{Index: index, Data: b}})[0]
}

// ApplyCommands applies committed commands in log order, in one
// transaction (one fsync for a batch: the group commit of the cluster).
// Each command's index is stored with it, and a command at or below the
// stored index is skipped: a master that restarts replays its log over a
// state that already holds it. A command that breaks a rule (a label
// taken) is refused alike everywhere, and that error is its write's
// answer; a failure of the disk fails the whole batch, its index unstored.
func (db *DB) ApplyCommands(entries []Entry) []error {
	out := make([]error, len(entries))
	var newLast uint64
	cmds := make([]Command, len(entries))
	applied := make([]bool, len(entries))
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		var last uint64
		if v := meta.Get(metaRaftIndex); len(v) == 8 {
			last = binary.BigEndian.Uint64(v)
		}
		for i, e := range entries {
			out[i], applied[i] = nil, false
			if e.Index <= last {
				continue // held already (a replay)
			}
			last = e.Index
			if err := json.Unmarshal(e.Data, &cmds[i]); err != nil {
				out[i] = fmt.Errorf("decode command: %w", err)
				continue
			}
			var refused error
			if cmds[i].Term != 0 && cmds[i].Term < e.Term {
				refused = universe.Errorf(universe.ECONFLICT, "written by a master that led in term %d, deposed since (term %d)", cmds[i].Term, e.Term)
			} else {
				refused = db.applyTx(tx, cmds[i])
			}
			if refused != nil && universe.ErrorCode(refused) == universe.EINTERNAL && !errors.Is(refused, errBadCommand) {
				return refused // the disk's fault: none of the batch is applied
			}
			out[i], applied[i] = refused, refused == nil
		}
		newLast = last
		return meta.Put(metaRaftIndex, binary.BigEndian.AppendUint64(nil, last))
	})
	if err != nil {
		for i := range out {
			out[i] = err
		}
		return out
	}
	defer db.setApplied(newLast) // after the observers: what it says is seen in memory too
	for i := range entries {
		if applied[i] {
			for _, f := range db.applied {
				f(cmds[i])
			}
		}
	}
	return out
}

// errBadCommand marks a command that cannot be applied anywhere.
var errBadCommand = errors.New("bad command")

// applyTx applies one command within tx; its error is the command's own
// refusal (or a failure of the disk).
func (db *DB) applyTx(tx *bolt.Tx, cmd Command) error {
	switch cmd.Op {
	case OpKeyCreate:
		if cmd.Key == nil {
			return fmt.Errorf("%w: key.create without a key", errBadCommand)
		}
		return db.createKeyTx(tx, *cmd.Key, cmd.Audit)
	case OpKeyDelete:
		return deleteKeyTx(tx, cmd.ID)
	case OpConfigPut:
		if cmd.Config == nil {
			return fmt.Errorf("%w: config.put without a configuration", errBadCommand)
		}
		if err := putConfigurationTx(tx, *cmd.Config); err != nil {
			return err
		}
		if cmd.Audit != nil {
			return db.appendAudit(tx, *cmd.Audit)
		}
		return nil
	case OpConfigDelete:
		return deleteConfigurationTx(tx, cmd.Name)
	case OpAudit:
		if cmd.Audit == nil {
			return fmt.Errorf("%w: audit.append without an entry", errBadCommand)
		}
		return db.appendAudit(tx, *cmd.Audit)
	case OpKeysTouch:
		return touchKeysTx(tx, cmd.LastUsed)
	case OpTemplateChanged:
		return nil // the files are not in bbolt: the masters fetch them (OnApplied)
	case OpSessionPut:
		if cmd.Session == nil {
			return fmt.Errorf("%w: session.put without a session", errBadCommand)
		}
		return putSessionTx(tx, *cmd.Session)
	case OpSessionDelete:
		return deleteSessionsTx(tx, cmd.Hashes)
	case OpNodeCreate, OpNodePut:
		if cmd.Node == nil {
			return fmt.Errorf("%w: %s without a node", errBadCommand, cmd.Op)
		}
		if cmd.Op == OpNodeCreate {
			return createNodeTx(tx, *cmd.Node)
		}
		return putNodeTx(tx, *cmd.Node)
	case OpNodeDelete:
		return deleteNodeTx(tx, cmd.Name)
	case OpInstancePut:
		if cmd.Instance == nil {
			return fmt.Errorf("%w: instance.put without an instance", errBadCommand)
		}
		return putInstanceTx(tx, *cmd.Instance)
	case OpInstanceDelete:
		return tx.Bucket(bucketInstances).Delete([]byte(cmd.ID))
	case OpUserCreate, OpUserPut:
		if cmd.User == nil {
			return fmt.Errorf("%w: %s without a user", errBadCommand, cmd.Op)
		}
		if cmd.Op == OpUserCreate {
			return createUserTx(tx, *cmd.User)
		}
		return putUserTx(tx, *cmd.User)
	case OpUserDelete:
		return deleteUserTx(tx, cmd.Name)
	case OpGrantPut:
		if cmd.Grant == nil {
			return fmt.Errorf("%w: grant.put without a grant", errBadCommand)
		}
		return putGrantTx(tx, *cmd.Grant)
	case OpGrantDelete:
		return deleteGrantTx(tx, cmd.Name, cmd.ID)
	case OpUserFactor:
		return takeFactorTx(tx, cmd.Name, cmd.Step, cmd.ID)
	case OpBackupPut:
		if cmd.Backup == nil {
			return fmt.Errorf("%w: backup.put without a backup", errBadCommand)
		}
		return putJSON(tx.Bucket(bucketBackups), cmd.Backup.ID, *cmd.Backup)
	case OpBackupDelete:
		return tx.Bucket(bucketBackups).Delete([]byte(cmd.ID))
	case OpSchedulePut:
		if cmd.Schedule == nil {
			return fmt.Errorf("%w: schedule.put without a schedule", errBadCommand)
		}
		return putJSON(tx.Bucket(bucketSchedules), cmd.Schedule.ID, *cmd.Schedule)
	case OpScheduleDelete:
		return deleteScheduleTx(tx, cmd.ID)
	case OpWebhookPut:
		if cmd.Webhook == nil {
			return fmt.Errorf("%w: webhook.put without a webhook", errBadCommand)
		}
		return putJSON(tx.Bucket(bucketWebhooks), cmd.Webhook.ID, *cmd.Webhook)
	case OpWebhookDelete:
		return deleteWebhookTx(tx, cmd.ID)
	case OpRunCreate, OpRunPut:
		if cmd.Run == nil {
			return fmt.Errorf("%w: %s without a run", errBadCommand, cmd.Op)
		}
		if cmd.Op == OpRunCreate {
			return createRunTx(tx, *cmd.Run)
		}
		return putRunTx(tx, *cmd.Run)
	}
	return fmt.Errorf("%w: unknown command %q", errBadCommand, cmd.Op)
}

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
	db.setApplied(db.storedIndex())
	return nil
}

// setApplied records index as applied and wakes the WaitApplied callers.
func (db *DB) setApplied(index uint64) {
	db.appliedIndex.Store(index)
	db.appliedMu.Lock()
	if db.appliedWake != nil {
		close(db.appliedWake)
		db.appliedWake = nil
	}
	db.appliedMu.Unlock()
}

// WaitApplied returns once index is applied here (AppliedIndex), woken by
// the apply itself, or after d; it says whether index is applied.
func (db *DB) WaitApplied(index uint64, d time.Duration) bool {
	var timer *time.Timer
	for {
		db.appliedMu.Lock()
		if db.appliedWake == nil {
			db.appliedWake = make(chan struct{})
		}
		wake := db.appliedWake
		db.appliedMu.Unlock()
		if db.AppliedIndex() >= index { // after taking wake: no apply between is missed
			return true
		}
		if timer == nil {
			timer = time.NewTimer(d)
			defer timer.Stop()
		}
		select {
		case <-wake:
		case <-timer.C:
			return db.AppliedIndex() >= index
		}
	}
}

// AppliedIndex is the log index of the last command applied here, its
// effects visible in memory (the observers have run): what a master
// waits for before it answers a write another master committed.
func (db *DB) AppliedIndex() uint64 { return db.appliedIndex.Load() }

// storedIndex reads the applied index bbolt holds.
func (db *DB) storedIndex() uint64 {
	var n uint64
	_ = db.bolt.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(metaRaftIndex); len(v) == 8 {
			n = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	return n
}

// OpRestore tells observers that the replicated state was replaced whole.
const OpRestore = "restore"
