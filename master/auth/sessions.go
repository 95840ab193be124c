package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"sync"
	"time"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/storage"
)

// Dashboard sessions: a browser cannot send an Authorization header on a
// WebSocket, so signing in to the dashboard with an ALL key makes a
// session instead, carried in a cookie. Only the SHA-256 of the cookie is
// stored; the session acts as its key, so revoking or expiring the key ends
// it at once.
const (
	SessionLifetime = 12 * time.Hour
	LinkLifetime    = 5 * time.Minute
	sessionsPerKey  = 16   // the oldest is ended beyond this
	maxSessions     = 4096 // in all
	maxTombstones   = 4096 // why a recent session ended
	maxLinks        = 64
	tombstoneTTL    = time.Hour
)

// LinkPrefix starts every one-time sign-in code, so that logs and the
// audit can mask them as they mask tokens.
const LinkPrefix = "uil_"

// Why a session cookie no longer signs in: shown on the sign-in page.
const (
	EndedRevoked   = "revoked"
	EndedExpired   = "expired"
	EndedSignedOut = "signed-out"
	EndedUnknown   = "unknown"
)

// SessionStore is what sessions need of persistence; *storage.DB has it.
type SessionStore interface {
	PutSession(storage.SessionRecord) error
	DeleteSessions(hashes ...string) error
	ListSessions() ([]storage.SessionRecord, error)
}

type tombstone struct {
	reason string
	until  time.Time
}

type link struct {
	keyID   string
	expires time.Time
}

// Sessions holds the dashboard's sessions and one-time sign-in links.
type Sessions struct {
	keys  *Keyring
	store SessionStore
	now   func() time.Time

	mu    sync.Mutex
	live  map[string]storage.SessionRecord // by hash
	ended map[string]tombstone             // by hash
	links map[string]link                  // by hash
}

// OpenSessions loads the stored sessions, dropping those whose key is gone
// or that expired, and ends a key's sessions when it is revoked.
func OpenSessions(keys *Keyring, store SessionStore, now func() time.Time) (*Sessions, error) {
	s := &Sessions{keys: keys, store: store, now: now,
		live: map[string]storage.SessionRecord{}, ended: map[string]tombstone{}, links: map[string]link{}}
	recs, err := store.ListSessions()
	if err != nil {
		return nil, err
	}
	var drop []string
	t := now().UnixMilli()
	for _, r := range recs {
		if _, err := keys.ByID(r.KeyID); err != nil || r.ExpiresAt <= t {
			drop = append(drop, r.Hash)
			continue
		}
		s.live[r.Hash] = r
	}
	if err := store.DeleteSessions(drop...); err != nil {
		return nil, err
	}
	keys.OnRevoke(s.keyRevoked)
	return s, nil
}

func randomSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func hashSecret(v string) string {
	h := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// Create signs key k in: it returns the cookie value, which is not kept.
// Only ALL keys may use the dashboard.
func (s *Sessions) Create(k *Key) (string, error) {
	if k.Scope() != universe.ScopeAll {
		return "", universe.Errorf(universe.EFORBIDDEN, "the dashboard needs a key of scope ALL")
	}
	now := s.now()
	exp := now.Add(SessionLifetime)
	if e := k.ExpiresAt(); !e.IsZero() && e.Before(exp) {
		exp = e
	}
	cookie := randomSecret()
	rec := storage.SessionRecord{Hash: hashSecret(cookie), KeyID: k.ID(), CreatedAt: now.UnixMilli(), ExpiresAt: exp.UnixMilli()}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked(now)
	// Bound the sessions of one key (its oldest ends) and in all: a key
	// never pushes out another key's sessions; at the global cap a new
	// sign-in is refused instead.
	var mine []storage.SessionRecord
	for _, r := range s.live {
		if r.KeyID == k.ID() {
			mine = append(mine, r)
		}
	}
	var drop []string
	for len(mine) >= sessionsPerKey {
		oldest := 0
		for i, r := range mine {
			if r.CreatedAt < mine[oldest].CreatedAt {
				oldest = i
			}
		}
		h := mine[oldest].Hash
		drop = append(drop, h)
		mine = append(mine[:oldest], mine[oldest+1:]...)
	}
	if len(s.live)-len(drop) >= maxSessions {
		return "", universe.Errorf(universe.EUNAVAILABLE, "the master has its maximum of %d dashboard sessions; sign out elsewhere or wait until some expire", maxSessions)
	}
	for _, h := range drop {
		delete(s.live, h)
		s.tombLocked(h, EndedExpired, now)
	}
	if err := s.store.DeleteSessions(drop...); err != nil {
		return "", err
	}
	if err := s.store.PutSession(rec); err != nil {
		return "", err
	}
	s.live[rec.Hash] = rec
	return cookie, nil
}

// Authenticate returns the key of the session whose cookie is v, or why
// there is none (EndedRevoked, EndedExpired, EndedSignedOut, EndedUnknown).
func (s *Sessions) Authenticate(v string) (*Key, string) {
	if v == "" || len(v) > 128 {
		return nil, EndedUnknown
	}
	h := hashSecret(v)
	now := s.now()
	s.mu.Lock()
	rec, ok := s.live[h]
	if !ok {
		t, ok := s.ended[h]
		s.mu.Unlock()
		if ok && now.Before(t.until) {
			return nil, t.reason
		}
		return nil, EndedUnknown
	}
	s.mu.Unlock()
	k, err := s.keys.ByID(rec.KeyID)
	if err != nil {
		s.end(h, EndedRevoked)
		return nil, EndedRevoked
	}
	if now.UnixMilli() >= rec.ExpiresAt || (!k.ExpiresAt().IsZero() && !now.Before(k.ExpiresAt())) {
		s.end(h, EndedExpired)
		return nil, EndedExpired
	}
	return k, ""
}

// End signs the session of cookie v out.
func (s *Sessions) End(v string) {
	if v != "" && len(v) <= 128 {
		s.end(hashSecret(v), EndedSignedOut)
	}
}

func (s *Sessions) end(h, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.live[h]; !ok {
		return
	}
	delete(s.live, h)
	s.tombLocked(h, reason, s.now())
	_ = s.store.DeleteSessions(h) // a leftover is dropped at the next start: its key check still holds
}

func (s *Sessions) keyRevoked(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var drop []string
	for h, r := range s.live {
		if r.KeyID == id {
			drop = append(drop, h)
			delete(s.live, h)
			s.tombLocked(h, EndedRevoked, s.now())
		}
	}
	for h, l := range s.links {
		if l.keyID == id {
			delete(s.links, h)
		}
	}
	_ = s.store.DeleteSessions(drop...)
}

func (s *Sessions) tombLocked(h, reason string, now time.Time) {
	if len(s.ended) >= maxTombstones {
		s.sweepLocked(now)
		for k := range s.ended { // still full: forget any one
			if len(s.ended) < maxTombstones {
				break
			}
			delete(s.ended, k)
		}
	}
	s.ended[h] = tombstone{reason: reason, until: now.Add(tombstoneTTL)}
}

// sweepLocked forgets tombstones and links past their time.
func (s *Sessions) sweepLocked(now time.Time) {
	for h, t := range s.ended {
		if !now.Before(t.until) {
			delete(s.ended, h)
		}
	}
	for h, l := range s.links {
		if !now.Before(l.expires) {
			delete(s.links, h)
		}
	}
}

// Count returns the number of live sessions.
func (s *Sessions) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.live)
}

// CreateLink returns a one-time sign-in code for key k, valid for
// LinkLifetime. Only its hash is kept, in memory.
func (s *Sessions) CreateLink(k *Key) (string, error) {
	if k.Scope() != universe.ScopeAll {
		return "", universe.Errorf(universe.EFORBIDDEN, "the dashboard needs a key of scope ALL")
	}
	now := s.now()
	code := LinkPrefix + randomSecret()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked(now)
	if len(s.links) >= maxLinks {
		return "", universe.Errorf(universe.ERATELIMITED, "too many open sign-in links; wait until some expire (%s)", LinkLifetime)
	}
	s.links[hashSecret(code)] = link{keyID: k.ID(), expires: now.Add(LinkLifetime)}
	return code, nil
}

// ConsumeLink signs in with a one-time code: it can be used once, before it
// expires. It returns the new session's cookie.
func (s *Sessions) ConsumeLink(code string) (string, error) {
	bad := universe.Errorf(universe.EUNAUTHORIZED, "this sign-in link is not valid: it was used already, expired, or never existed")
	if code == "" || len(code) > 128 {
		return "", bad
	}
	h := hashSecret(code)
	s.mu.Lock()
	l, ok := s.links[h]
	delete(s.links, h)
	s.mu.Unlock()
	if !ok || !s.now().Before(l.expires) {
		return "", bad
	}
	k, err := s.keys.ByID(l.keyID)
	if err != nil {
		return "", bad
	}
	return s.Create(k)
}
