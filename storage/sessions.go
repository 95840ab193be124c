package storage

import (
	"encoding/json"

	bolt "go.etcd.io/bbolt"
)

// SessionRecord is a dashboard sign-in. Only the hash of its cookie is
// kept, so a copy of the database signs nobody in.
type SessionRecord struct {
	Hash      string `json:"hash"`  // hex SHA-256 of the cookie value
	KeyID     string `json:"keyId"` // the key it acts as
	CreatedAt int64  `json:"createdAt"`
	ExpiresAt int64  `json:"expiresAt"` // epoch milliseconds
}

// PutSession stores (or replaces) a session.
func (db *DB) PutSession(s SessionRecord) error {
	if db.rep != nil {
		return db.replicate(Command{Op: OpSessionPut, Session: &s})
	}
	return db.bolt.Update(func(tx *bolt.Tx) error { return putSessionTx(tx, s) })
}

func putSessionTx(tx *bolt.Tx, s SessionRecord) error {
	return putJSON(tx.Bucket(bucketSessions), s.Hash, s)
}

// DeleteSessions removes the sessions with the given hashes; absent ones
// are no error.
func (db *DB) DeleteSessions(hashes ...string) error {
	if len(hashes) == 0 {
		return nil
	}
	if db.rep != nil {
		return db.replicate(Command{Op: OpSessionDelete, Hashes: hashes})
	}
	return db.bolt.Update(func(tx *bolt.Tx) error { return deleteSessionsTx(tx, hashes) })
}

func deleteSessionsTx(tx *bolt.Tx, hashes []string) error {
	b := tx.Bucket(bucketSessions)
	for _, h := range hashes {
		if err := b.Delete([]byte(h)); err != nil {
			return err
		}
	}
	return nil
}

// deleteSessionsOfKeyTx removes the sessions of key id (it was revoked):
// in the key's own transaction, so that no master keeps them.
func deleteSessionsOfKeyTx(tx *bolt.Tx, id string) error {
	b := tx.Bucket(bucketSessions)
	var drop [][]byte
	err := b.ForEach(func(k, v []byte) error {
		var s SessionRecord
		if json.Unmarshal(v, &s) == nil && s.KeyID == id {
			drop = append(drop, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range drop {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// ListSessions returns every stored session.
func (db *DB) ListSessions() ([]SessionRecord, error) {
	return listJSON[SessionRecord](db, bucketSessions)
}
