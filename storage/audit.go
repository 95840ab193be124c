package storage

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	universe "github.com/universe-orchestrator/universe"
	bolt "go.etcd.io/bbolt"
)

// metaAuditBytes holds the size of the audit bucket's values (uint64).
var metaAuditBytes = []byte("audit_bytes")

// AppendAudit stores e with the next sequence number and drops the oldest
// entries beyond the audit limits (entries and bytes), in one transaction.
func (db *DB) AppendAudit(e universe.AuditEntry) error {
	if db.rep != nil {
		return db.replicate(Command{Op: OpAudit, Audit: &e})
	}
	return db.group.update(func(tx *bolt.Tx) error { return db.appendAudit(tx, e) })
}

func (db *DB) appendAudit(tx *bolt.Tx, e universe.AuditEntry) error {
	size := auditSize(tx)
	b := tx.Bucket(bucketAudit)
	seq, err := b.NextSequence()
	if err != nil {
		return fmt.Errorf("audit sequence: %w", err)
	}
	e.Seq = seq
	v, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode audit entry: %w", err)
	}
	if err := b.Put(seqKey(seq), v); err != nil {
		return fmt.Errorf("put audit entry: %w", err)
	}
	size += uint64(len(v))
	// Entries are only ever removed from the front, so the keys are
	// contiguous and the count is seq-first+1: no bucket walk needed.
	// The front is trimmed once the log is a hundredth over a bound, down
	// to the bounds: trimming an entry at each append would rewrite the
	// log's first page (and the path to it) in every transaction.
	limit, bytes := uint64(db.auditLimit), uint64(db.auditBytes)
	c := b.Cursor()
	if k, _ := c.First(); k != nil && (seq-binary.BigEndian.Uint64(k)+1 > limit+limit/100 || size > bytes+bytes/100) {
		for k, old := c.First(); k != nil && binary.BigEndian.Uint64(k) != seq &&
			(seq-binary.BigEndian.Uint64(k)+1 > limit || size > bytes); k, old = c.First() {
			size -= uint64(len(old))
			if err := b.Delete(k); err != nil {
				return fmt.Errorf("trim audit: %w", err)
			}
		}
	}
	return tx.Bucket(bucketMeta).Put(metaAuditBytes, binary.BigEndian.AppendUint64(nil, size))
}

// auditSize is the size of the audit bucket's values: kept in the meta
// bucket, counted once for a database that predates it.
func auditSize(tx *bolt.Tx) uint64 {
	if v := tx.Bucket(bucketMeta).Get(metaAuditBytes); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	var n uint64
	_ = tx.Bucket(bucketAudit).ForEach(func(_, v []byte) error {
		n += uint64(len(v))
		return nil
	})
	return n
}

// ListAudit returns up to limit of the newest audit entries, newest first.
func (db *DB) ListAudit(limit int) ([]universe.AuditEntry, error) {
	var out []universe.AuditEntry
	err := db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			var e universe.AuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("decode audit entry: %w", err)
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

func seqKey(seq uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seq)
	return b[:]
}
