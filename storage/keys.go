package storage

import (
	"encoding/json"
	"fmt"
	"time"

	universe "github.com/universe-orchestrator/universe"
	bolt "go.etcd.io/bbolt"
)

// CreateKey stores k, and the audit entry of its creation when audit is not
// nil, in one transaction (committed together with writes that arrive at
// the same time). Returns ECONFLICT if its label or id is taken (labels and
// ids share one namespace so that "revoke <label|id>" is never ambiguous).
func (db *DB) CreateKey(k universe.KeyRecord, audit *universe.AuditEntry) error {
	if db.rep != nil {
		return db.replicate(Command{Op: OpKeyCreate, Key: &k, Audit: audit})
	}
	return db.createKey(k, audit)
}

func (db *DB) createKey(k universe.KeyRecord, audit *universe.AuditEntry) error {
	return db.group.update(func(tx *bolt.Tx) error { return db.createKeyTx(tx, k, audit) })
}

func (db *DB) createKeyTx(tx *bolt.Tx, k universe.KeyRecord, audit *universe.AuditEntry) error {
	{
		labels := tx.Bucket(bucketKeyLabels)
		keys := tx.Bucket(bucketKeys)
		if labels.Get([]byte(k.Label)) != nil || keys.Get([]byte(k.Label)) != nil {
			return universe.Errorf(universe.ECONFLICT, "a key labelled %q exists already", k.Label)
		}
		if keys.Get([]byte(k.ID)) != nil || labels.Get([]byte(k.ID)) != nil {
			return universe.Errorf(universe.ECONFLICT, "key id %q is taken", k.ID)
		}
		if err := labels.Put([]byte(k.Label), []byte(k.ID)); err != nil {
			return fmt.Errorf("put label: %w", err)
		}
		if err := putKey(tx, &k); err != nil {
			return err
		}
		if audit != nil {
			return db.appendAudit(tx, *audit)
		}
		return nil
	}
}

// DeleteKey removes the key with the given id. Returns ENOTFOUND if none.
func (db *DB) DeleteKey(id string) error {
	if db.rep != nil {
		return db.replicate(Command{Op: OpKeyDelete, ID: id})
	}
	return db.deleteKey(id)
}

func (db *DB) deleteKey(id string) error {
	return db.bolt.Update(func(tx *bolt.Tx) error { return deleteKeyTx(tx, id) })
}

func deleteKeyTx(tx *bolt.Tx, id string) error {
	k, err := getKey(tx, id)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucketKeyLabels).Delete([]byte(k.Label)); err != nil {
		return fmt.Errorf("delete label: %w", err)
	}
	if err := deleteSessionsOfKeyTx(tx, id); err != nil {
		return err
	}
	return tx.Bucket(bucketKeys).Delete([]byte(id))
}

// ListKeys returns every stored key, ordered by id.
func (db *DB) ListKeys() ([]universe.KeyRecord, error) {
	var out []universe.KeyRecord
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketKeys).ForEach(func(_, v []byte) error {
			var k universe.KeyRecord
			if err := json.Unmarshal(v, &k); err != nil {
				return fmt.Errorf("decode key: %w", err)
			}
			out = append(out, k)
			return nil
		})
	})
	return out, err
}

// TouchKeys records last-used times for many keys in one transaction. Ids
// that no longer exist are skipped (the key was revoked meanwhile).
func (db *DB) TouchKeys(lastUsed map[string]time.Time) error {
	if len(lastUsed) == 0 {
		return nil
	}
	if db.rep != nil {
		return db.replicate(Command{Op: OpKeysTouch, LastUsed: lastUsed})
	}
	return db.bolt.Update(func(tx *bolt.Tx) error { return touchKeysTx(tx, lastUsed) })
}

func touchKeysTx(tx *bolt.Tx, lastUsed map[string]time.Time) error {
	{
		for id, t := range lastUsed {
			k, err := getKey(tx, id)
			if universe.ErrorCode(err) == universe.ENOTFOUND {
				continue
			} else if err != nil {
				return err
			}
			if !t.After(k.LastUsedAt) {
				continue
			}
			k.LastUsedAt = t
			if err := putKey(tx, k); err != nil {
				return err
			}
		}
		return nil
	}
}

func getKey(tx *bolt.Tx, id string) (*universe.KeyRecord, error) {
	v := tx.Bucket(bucketKeys).Get([]byte(id))
	if v == nil {
		return nil, universe.Errorf(universe.ENOTFOUND, "no key %q", id)
	}
	var k universe.KeyRecord
	if err := json.Unmarshal(v, &k); err != nil {
		return nil, fmt.Errorf("decode key %s: %w", id, err)
	}
	return &k, nil
}

func putKey(tx *bolt.Tx, k *universe.KeyRecord) error {
	v, err := json.Marshal(k)
	if err != nil {
		return fmt.Errorf("encode key: %w", err)
	}
	if err := tx.Bucket(bucketKeys).Put([]byte(k.ID), v); err != nil {
		return fmt.Errorf("put key: %w", err)
	}
	return nil
}
