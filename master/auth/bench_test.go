package auth_test

import (
	"fmt"
	"testing"
	"time"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/master/auth"
	"github.com/universe-orchestrator/universe/storage"
)

// BenchmarkAuthenticate: one SHA-256 and one map lookup, with 10,000 keys.
func BenchmarkAuthenticate(b *testing.B) {
	db, err := storage.Open(b.TempDir(), storage.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	r, _ := auth.OpenKeyring(db, nil)
	var token string
	for i := 0; i < 10000; i++ {
		_, t, err := r.Create(fmt.Sprintf("k%d", i), universe.ScopeAll, 0)
		if err != nil {
			b.Fatal(err)
		}
		token = t
	}
	bogus := auth.NewToken()
	b.Run("valid", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.Authenticate(token); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("valid-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_, _ = r.Authenticate(token)
			}
		})
	})
	b.Run("unknown", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.Authenticate(bogus); err != auth.ErrUnknown {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkLimiterAllow: one call against a key's sliding window.
func BenchmarkLimiterAllow(b *testing.B) {
	l := auth.NewLimiter(auth.Rate{Limit: 100, Window: time.Microsecond})
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			l.Allow("k", time.Now())
		}
	})
	b.Run("parallel-one-key", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				l.Allow("k", time.Now())
			}
		})
	})
}
