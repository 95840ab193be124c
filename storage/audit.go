package storage

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	universe "github.com/universe-orchestrator/universe"
	bolt "go.etcd.io/bbolt"
)

// AppendAudit stores e with the next sequence number and drops the oldest
// entries beyond the audit limit, in one transaction.
func (db *DB) AppendAudit(e universe.AuditEntry) error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
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
		// Entries are only ever removed from the front, so the keys are
		// contiguous and the count is seq-first+1: no bucket walk needed.
		c := b.Cursor()
		for k, _ := c.First(); k != nil && seq-binary.BigEndian.Uint64(k)+1 > uint64(db.auditLimit); k, _ = c.First() {
			if err := b.Delete(k); err != nil {
				return fmt.Errorf("trim audit: %w", err)
			}
		}
		return nil
	})
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
