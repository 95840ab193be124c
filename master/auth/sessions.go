package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"sync"
	"sync/atomic"
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

	// Writes the replicated log applied (in a cluster, other masters'
	// too), taken into live under mu at the next use: Observe cannot take
	// mu, which a write of this master holds while it waits for the log.
	pendMu     sync.Mutex
	pending    []sessionChange
	hasPending atomic.Bool
}

type sessionChange struct {
	put     *storage.SessionRecord
	delete  []string
	revoked string // a key revoked: its sessions end
	reload  bool   // the store was replaced whole (a snapshot)
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
	t := now().UnixMilli()
	for _, r := range recs {
		if _, err := keys.ByID(r.KeyID); err == nil && r.ExpiresAt > t {
			s.live[r.Hash] = r
		}
	}
	keys.OnRevoke(s.keyRevoked)
	return s, nil
}

// Purge deletes from the store the sessions whose key is gone or that
// expired (a master alone at its start; in a cluster, the leader).
func (s *Sessions) Purge() error {
	recs, err := s.store.ListSessions()
	if err != nil {
		return err
	}
	var drop []string
	t := s.now().UnixMilli()
	for _, r := range recs {
		if _, err := s.keys.ByID(r.KeyID); err != nil || r.ExpiresAt <= t {
			drop = append(drop, r.Hash)
		}
	}
	return s.store.DeleteSessions(drop...)
}

// Observe follows a write of sessions the replicated log applied: a
// session made on another master signs in here too, one ended there ends
// here.
func (s *Sessions) Observe(put *storage.SessionRecord, deleted []string) {
	s.observe(sessionChange{put: put, delete: deleted})
}

// ObserveRestore follows a snapshot that replaced the state whole.
func (s *Sessions) ObserveRestore() { s.observe(sessionChange{reload: true}) }

func (s *Sessions) observe(c sessionChange) {
	s.pendMu.Lock()
	s.pending = append(s.pending, c)
	s.hasPending.Store(true)
	s.pendMu.Unlock()
}

// takeChangesLocked applies what Observe queued. Caller holds mu.
func (s *Sessions) takeChangesLocked() {
	if !s.hasPending.Load() {
		return
	}
	s.pendMu.Lock()
	changes := s.pending
	s.pending = nil
	s.hasPending.Store(false)
	s.pendMu.Unlock()
	now := s.now()
	for _, c := range changes {
		if c.reload {
			if recs, err := s.store.ListSessions(); err == nil {
				s.live = map[string]storage.SessionRecord{}
				for _, r := range recs {
					if _, err := s.keys.ByID(r.KeyID); err == nil && r.ExpiresAt > now.UnixMilli() {
						s.live[r.Hash] = r
					}
				}
			}
		}
		if c.put != nil {
			if _, err := s.keys.ByID(c.put.KeyID); err == nil && c.put.ExpiresAt > now.UnixMilli() {
				s.live[c.put.Hash] = *c.put
			}
		}
		for _, h := range c.delete {
			if _, ok := s.live[h]; ok {
				delete(s.live, h)
				s.tombLocked(h, EndedSignedOut, now)
			}
		}
		if c.revoked != "" {
			for h, r := range s.live {
				if r.KeyID == c.revoked {
					delete(s.live, h)
					s.tombLocked(h, EndedRevoked, now)
				}
			}
			for h, l := range s.links {
				if l.keyID == c.revoked {
					delete(s.links, h)
				}
			}
		}
	}
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
	if k.Scope() != universe.ScopeAll && (k.Scope() != universe.ScopeMember || k.User() == "") {
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
	s.takeChangesLocked()
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
	s.takeChangesLocked()
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
	s.takeChangesLocked()
	if _, ok := s.live[h]; !ok {
		return
	}
	delete(s.live, h)
	s.tombLocked(h, reason, s.now())
	_ = s.store.DeleteSessions(h) // a leftover is dropped at the next start: its key check still holds
}

// keyRevoked ends the key's sessions; the store dropped them with the key
// (in the key's own transaction: on every master). It is queued like an
// observed change, since it may run while the log applies a command that
// a write of this master, holding mu, waits for.
func (s *Sessions) keyRevoked(id string) {
	s.pendMu.Lock()
	s.pending = append(s.pending, sessionChange{revoked: id})
	s.hasPending.Store(true)
	s.pendMu.Unlock()
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
	s.takeChangesLocked()
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
	s.takeChangesLocked()
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
	s.takeChangesLocked()
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
