package storage

import (
	"encoding/json"
	"fmt"
	"sort"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	bolt "go.etcd.io/bbolt"
)

// Backups' records: replicated state (backup.put, backup.delete).

// PutBackup stores (creates or replaces) a backup's record.
func (db *DB) PutBackup(b api.Backup) error {
	return db.write(Command{Op: OpBackupPut, Backup: &b}, func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket(bucketBackups), b.ID, b)
	})
}

// DeleteBackup removes a backup's record (absent: no error).
func (db *DB) DeleteBackup(id string) error {
	return db.write(Command{Op: OpBackupDelete, ID: id}, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBackups).Delete([]byte(id))
	})
}

// GetBackup returns a backup's record. Errors: ENOTFOUND.
func (db *DB) GetBackup(id string) (api.Backup, error) {
	var b api.Backup
	err := db.bolt.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketBackups).Get([]byte(id))
		if v == nil {
			return universe.Errorf(universe.ENOTFOUND, "no backup %q", id)
		}
		if err := json.Unmarshal(v, &b); err != nil {
			return fmt.Errorf("decode backup %s: %w", id, err)
		}
		return nil
	})
	return b, err
}

// Backups lists the backups of one instance ("": of every instance),
// oldest first.
func (db *DB) Backups(instanceID string) ([]api.Backup, error) {
	out := []api.Backup{}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBackups).ForEach(func(k, v []byte) error {
			var b api.Backup
			if err := json.Unmarshal(v, &b); err != nil {
				return fmt.Errorf("decode backup %s: %w", k, err)
			}
			if instanceID == "" || b.InstanceID == instanceID {
				out = append(out, b)
			}
			return nil
		})
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, err
}
