package storage

import (
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
	return db.bolt.Update(func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket(bucketSessions), s.Hash, s)
	})
}

// DeleteSessions removes the sessions with the given hashes; absent ones
// are no error.
func (db *DB) DeleteSessions(hashes ...string) error {
	if len(hashes) == 0 {
		return nil
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSessions)
		for _, h := range hashes {
			if err := b.Delete([]byte(h)); err != nil {
				return err
			}
		}
		return nil
	})
}

// ListSessions returns every stored session.
func (db *DB) ListSessions() ([]SessionRecord, error) {
	return listJSON[SessionRecord](db, bucketSessions)
}
