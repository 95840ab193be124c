package storage

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	universe "github.com/universe-orchestrator/universe"
	bolt "go.etcd.io/bbolt"
)

// BenchmarkCreateKey is a key creation's transaction (key, label, audit
// entry) against raw bbolt writing three records of the same sizes in
// three buckets, each one fsync'd Update on the same disk.
func BenchmarkCreateKey(b *testing.B) {
	b.Run("storage", func(b *testing.B) {
		db, err := Open(b.TempDir(), Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			k := universe.KeyRecord{ID: fmt.Sprintf("k%09d", i*7919%1000003), Label: "bench-" + strconv.Itoa(i), Scope: universe.ScopePublic,
				Hash: [32]byte{1, 2, 3}, CreatedAt: time.Now()}
			a := universe.AuditEntry{Time: time.Now(), KeyID: "kadmin", Source: "rest", Command: "POST /api/keys label=" + k.Label + " scope=PUBLIC", Result: "ok"}
			if err := db.CreateKey(k, &a); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("raw", func(b *testing.B) {
		db, err := bolt.Open(filepath.Join(b.TempDir(), "raw.db"), 0o600, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		key, label, audit := bytes.Repeat([]byte("k"), 250), bytes.Repeat([]byte("i"), 10), bytes.Repeat([]byte("a"), 150)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			err := db.Update(func(tx *bolt.Tx) error {
				for j, v := range [][]byte{key, label, audit} {
					bk, err := tx.CreateBucketIfNotExists([]byte{'b', byte(j)})
					if err != nil {
						return err
					}
					k := []byte(fmt.Sprintf("%016d", i))
					if j == 0 {
						k = []byte(strconv.Itoa(i * 7919 % 1000003))
					}
					if err := bk.Put(k, v); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}
