// Package storage persists Universe's state in one bbolt file
// (<data>/universe.db). It knows bbolt and JSON encoding, nothing of HTTP or
// of the master; the consumers (the keyring, the audit log) define the small
// interfaces they need and *DB satisfies them.
//
// Every method is one bbolt transaction; private helpers take the *bbolt.Tx;
// values are copied out before a transaction ends.
package storage
