package auth

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	universe "github.com/universe-orchestrator/universe"
)

// Store is what the keyring needs of persistence; *storage.DB satisfies it.
type Store interface {
	// CreateKey stores a key and, when audit is not nil, the audit entry
	// of its creation, in one transaction.
	CreateKey(rec universe.KeyRecord, audit *universe.AuditEntry) error
	DeleteKey(id string) error
	ListKeys() ([]universe.KeyRecord, error)
	TouchKeys(map[string]time.Time) error
}

// Authentication failures. They are preallocated so that a failed lookup
// allocates nothing; all carry EUNAUTHORIZED and the same public message.
var (
	ErrMissing   = &universe.Error{Code: universe.EUNAUTHORIZED, Message: "Unauthorized"}
	ErrMalformed = &universe.Error{Code: universe.EUNAUTHORIZED, Message: "Unauthorized"}
	ErrUnknown   = &universe.Error{Code: universe.EUNAUTHORIZED, Message: "Unauthorized"}
	ErrExpired   = &universe.Error{Code: universe.EUNAUTHORIZED, Message: "Unauthorized"}
)

// FailureReason names an authentication failure for metrics and logs.
func FailureReason(err error) string {
	switch err {
	case ErrMissing:
		return "missing"
	case ErrMalformed:
		return "malformed"
	case ErrUnknown:
		return "unknown"
	case ErrExpired:
		return "expired"
	}
	return "other"
}

// Key is a live key of the keyring. Its fields never change after creation,
// except the last-used time; it is safe to share between goroutines.
type Key struct {
	rec       universe.KeyRecord // LastUsedAt of rec is the value at load time
	expiresAt int64              // unix nanos, 0 = never
	lastUsed  atomic.Int64       // unix nanos, 0 = never
	flushed   int64              // last value written to the store; guarded by Keyring.flushMu
	// revoked is cancelled when the key is revoked: a context, so that
	// what ends with the key registers a callback (context.AfterFunc)
	// rather than a goroutine waiting on a channel.
	revoked context.Context
	revoke  context.CancelFunc
}

// ID returns the key's public id.
func (k *Key) ID() string { return k.rec.ID }

// User returns the user who made the key ("" for none).
func (k *Key) User() string { return k.rec.User }

// Label returns the key's label.
func (k *Key) Label() string { return k.rec.Label }

// Scope returns the key's scope.
func (k *Key) Scope() universe.Scope { return k.rec.Scope }

// Instance returns the instance an INSTANCE key is bound to ("" otherwise).
func (k *Key) Instance() string { return k.rec.Instance }

// ExpiresAt returns the expiry, zero if the key does not expire.
func (k *Key) ExpiresAt() time.Time { return k.rec.ExpiresAt }

// Revoked returns a channel closed when the key is revoked.
func (k *Key) Revoked() <-chan struct{} { return k.revoked.Done() }

// RevokedContext is cancelled when the key is revoked.
func (k *Key) RevokedContext() context.Context { return k.revoked }

// Record returns a copy of the key's record with its current last-used time.
func (k *Key) Record() universe.KeyRecord {
	r := k.rec
	if n := k.lastUsed.Load(); n != 0 {
		r.LastUsedAt = time.Unix(0, n).UTC()
	}
	return r
}

// Keyring is the set of API keys, persisted in a Store and indexed in memory.
// Create it with OpenKeyring; run Run to persist last-used times in batches.
type Keyring struct {
	store Store
	now   func() time.Time

	writeMu sync.Mutex // serialises writers (store then memory)
	// creating holds the labels and ids of keys being created: Create
	// reserves them under writeMu, then stores without holding it, so
	// that concurrent creates share a commit.
	creating map[string]bool
	mu       sync.RWMutex
	byHash   map[[32]byte]*Key
	byID     map[string]*Key
	byLabel  map[string]*Key

	flushMu sync.Mutex

	onRevoke []func(id string) // set before use; called after a revocation
	onChange []func(rec universe.KeyRecord, created bool)
}

// OnRevoke registers f to be called with the id of every key revoked from
// now on. Register before the keyring is shared.
func (r *Keyring) OnRevoke(f func(id string)) { r.onRevoke = append(r.onRevoke, f) }

// OnChange registers f to be told of every key created (created true) or
// revoked here, with its record (instances' keys included). Set before
// use; f must not block.
func (r *Keyring) OnChange(f func(rec universe.KeyRecord, created bool)) {
	r.onChange = append(r.onChange, f)
}

// OpenKeyring loads every key of store into memory. now is the clock (nil:
// time.Now).
func OpenKeyring(store Store, now func() time.Time) (*Keyring, error) {
	if now == nil {
		now = time.Now
	}
	recs, err := store.ListKeys()
	if err != nil {
		return nil, fmt.Errorf("load keys: %w", err)
	}
	r := &Keyring{
		store:   store,
		now:     now,
		byHash:  make(map[[32]byte]*Key, len(recs)),
		byID:    make(map[string]*Key, len(recs)),
		byLabel: make(map[string]*Key, len(recs)),
	}
	for _, rec := range recs {
		r.insert(newKey(rec))
	}
	return r, nil
}

func newKey(rec universe.KeyRecord) *Key {
	k := &Key{rec: rec}
	k.revoked, k.revoke = context.WithCancel(context.Background())
	if !rec.ExpiresAt.IsZero() {
		k.expiresAt = rec.ExpiresAt.UnixNano()
	}
	if !rec.LastUsedAt.IsZero() {
		k.lastUsed.Store(rec.LastUsedAt.UnixNano())
		k.flushed = rec.LastUsedAt.UnixNano()
	}
	return k
}

func (r *Keyring) insert(k *Key) {
	r.byHash[k.rec.Hash] = k
	r.byID[k.rec.ID] = k
	r.byLabel[k.rec.Label] = k
}

// Create makes a key and returns it with its token, which exists nowhere
// else: it is not stored and cannot be shown again. expiresIn <= 0 means
// never. The key is durable in the store before Create returns.
// Errors: EINVALID (label, scope), ECONFLICT (label taken).
func (r *Keyring) Create(label string, scope universe.Scope, expiresIn time.Duration) (*Key, string, error) {
	return r.CreateAudited(label, scope, expiresIn, nil)
}

// CreateAudited is Create that stores audit (completed with the new key's
// id and label by the caller's func) in the same transaction as the key:
// the key exists if and only if its audit entry does.
func (r *Keyring) CreateAudited(label string, scope universe.Scope, expiresIn time.Duration, audit func(universe.KeyRecord) universe.AuditEntry) (*Key, string, error) {
	if _, err := universe.ParseScope(string(scope)); err != nil {
		return nil, "", err
	}
	return r.create(label, scope, expiresIn, audit, nil)
}

// UserKey is what a user's key carries beyond Create's: its user, the
// permissions it is narrowed to (nil: all of the user's), and whether a
// sign-in made it for a dashboard session.
type UserKey struct {
	User        string
	Permissions []string
	Login       bool
}

// CreateForUser makes a key of a user: scope ALL for an admin's (not
// narrowed), MEMBER otherwise. Errors: as Create.
func (r *Keyring) CreateForUser(label string, scope universe.Scope, expiresIn time.Duration, u UserKey, audit func(universe.KeyRecord) universe.AuditEntry) (*Key, string, error) {
	if u.User == "" || (scope != universe.ScopeAll && scope != universe.ScopeMember) {
		return nil, "", universe.Errorf(universe.EINVALID, "a user's key is of scope ALL or MEMBER")
	}
	return r.create(label, scope, expiresIn, audit, func(rec *universe.KeyRecord) {
		rec.User, rec.Permissions, rec.Login = u.User, u.Permissions, u.Login
	})
}

func (r *Keyring) create(label string, scope universe.Scope, expiresIn time.Duration, audit func(universe.KeyRecord) universe.AuditEntry, with func(*universe.KeyRecord)) (*Key, string, error) {
	if err := universe.ValidateLabel(label); err != nil {
		return nil, "", err
	}
	if expiresIn < 0 {
		return nil, "", universe.Errorf(universe.EINVALID, "expiry must be positive")
	}
	r.writeMu.Lock()
	r.mu.RLock()
	_, labelTaken := r.byLabel[label]
	_, labelIsID := r.byID[label]
	r.mu.RUnlock()
	if labelTaken || labelIsID || r.creating[label] {
		r.writeMu.Unlock()
		return nil, "", universe.Errorf(universe.ECONFLICT, "a key labelled %q exists already", label)
	}
	id := r.reservedID()
	r.reserveLocked(label)
	r.writeMu.Unlock()
	defer r.release(id, label)
	token := NewToken()
	now := r.now().UTC()
	rec := universe.KeyRecord{ID: id, Label: label, Scope: scope, Hash: HashToken(token), CreatedAt: now}
	if expiresIn > 0 {
		rec.ExpiresAt = now.Add(expiresIn)
	}
	if with != nil {
		with(&rec)
	}
	var entry *universe.AuditEntry
	if audit != nil {
		e := audit(rec)
		entry = &e
	}
	if err := r.store.CreateKey(rec, entry); err != nil {
		return nil, "", err
	}
	r.writeMu.Lock() // in memory before the reservation goes (the deferred func)
	r.mu.Lock()
	k := r.insertOnce(newKey(rec))
	r.mu.Unlock()
	r.writeMu.Unlock()
	for _, f := range r.onChange {
		f(rec, true)
	}
	return k, token, nil
}

// IssueInstanceKey revokes the key of instance id, if any, and creates a
// new ScopeInstance key bound to it; the token is returned, never stored.
func (r *Keyring) IssueInstanceKey(id string) (string, error) {
	r.RevokeInstanceKeys(id)
	// The id and label are reserved, not held under writeMu while they
	// are written: instances starting together have their keys committed
	// together (a start waited for every other start's fsync before).
	r.writeMu.Lock()
	kid := r.reservedID()
	label := "instance." + id + "." + kid
	r.reserveLocked(label)
	r.writeMu.Unlock()
	defer r.release(kid, label)
	token := NewToken()
	rec := universe.KeyRecord{ID: kid, Label: label, Scope: universe.ScopeInstance,
		Hash: HashToken(token), CreatedAt: r.now().UTC(), Instance: id}
	if err := r.store.CreateKey(rec, nil); err != nil {
		return "", err
	}
	r.writeMu.Lock() // in memory before the reservation goes (the deferred func)
	r.mu.Lock()
	r.insertOnce(newKey(rec))
	r.mu.Unlock()
	r.writeMu.Unlock()
	return token, nil
}

// RevokeInstanceKeys revokes every key bound to instance id.
func (r *Keyring) RevokeInstanceKeys(id string) {
	r.mu.RLock()
	var ids []string
	for kid, k := range r.byID {
		if k.rec.Scope == universe.ScopeInstance && k.rec.Instance == id {
			ids = append(ids, kid)
		}
	}
	r.mu.RUnlock()
	for _, kid := range ids {
		_, _ = r.Revoke(kid)
	}
}

// reservedID returns a fresh id no other write has reserved, reserved
// now for the caller's write (release drops it). Caller holds writeMu.
func (r *Keyring) reservedID() string {
	id := r.freshID()
	for r.creating[id] {
		id = r.freshID()
	}
	r.reserveLocked(id)
	return id
}

// reserveLocked marks names (a key's id or label) as being written: no
// other create takes them meanwhile. Caller holds writeMu.
func (r *Keyring) reserveLocked(names ...string) {
	if r.creating == nil {
		r.creating = map[string]bool{}
	}
	for _, n := range names {
		r.creating[n] = true
	}
}

// release drops the reservations of names.
func (r *Keyring) release(names ...string) {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	for _, n := range names {
		delete(r.creating, n)
	}
}

// freshID returns an id used neither as an id nor as a label. Caller holds writeMu.
func (r *Keyring) freshID() string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for {
		id := newKeyID()
		_, a := r.byID[id]
		_, b := r.byLabel[id]
		if !a && !b {
			return id
		}
	}
}

// Revoke deletes the key with the given id or label. From the moment it
// returns, the token no longer authenticates and the key's Revoked channel is
// closed. Errors: ENOTFOUND.
func (r *Keyring) Revoke(labelOrID string) (universe.KeyRecord, error) {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	r.mu.RLock()
	k, ok := r.byID[labelOrID]
	if !ok {
		k, ok = r.byLabel[labelOrID]
	}
	r.mu.RUnlock()
	if !ok {
		return universe.KeyRecord{}, universe.Errorf(universe.ENOTFOUND, "no key with label or id %q", labelOrID)
	}
	if err := r.store.DeleteKey(k.rec.ID); err != nil {
		return universe.KeyRecord{}, err
	}
	r.forget(k.rec.ID) // (in a cluster, the applied command may have done it already)
	return k.Record(), nil
}

// forget removes key id from memory, cancels it and tells the revocation
// hooks, once.
func (r *Keyring) forget(id string) {
	r.mu.Lock()
	k, ok := r.byID[id]
	if ok {
		delete(r.byHash, k.rec.Hash)
		delete(r.byID, k.rec.ID)
		delete(r.byLabel, k.rec.Label)
	}
	r.mu.Unlock()
	if !ok {
		return
	}
	k.revoke()
	for _, f := range r.onRevoke {
		f(k.rec.ID)
	}
	for _, f := range r.onChange {
		f(k.rec, false)
	}
}

// insertOnce inserts k unless a key of its id is there already (put there
// by Observe); it returns the key in memory. Caller holds mu.
func (r *Keyring) insertOnce(k *Key) *Key {
	if have, ok := r.byID[k.rec.ID]; ok {
		return have
	}
	r.insert(k)
	return k
}

// Observe follows a write of keys that the replicated log applied (in a
// cluster, other masters' writes too): a key made is put in memory, a key
// deleted is revoked here as well, and a restored snapshot reloads all.
// It takes only the memory lock: it runs while a write of this keyring
// waits for the same command.
func (r *Keyring) Observe(op string, rec *universe.KeyRecord, id string) {
	r.observe(op, rec, id, nil)
}

// ObserveTouch follows last-used times another master stored: a key's is
// moved forward, never back.
func (r *Keyring) ObserveTouch(lastUsed map[string]time.Time) {
	r.observe("keys.touch", nil, "", lastUsed)
}

func (r *Keyring) observe(op string, rec *universe.KeyRecord, id string, lastUsed map[string]time.Time) {
	switch op {
	case "keys.touch":
		r.mu.RLock()
		defer r.mu.RUnlock()
		for id, t := range lastUsed {
			if k, ok := r.byID[id]; ok {
				for n := t.UnixNano(); ; {
					cur := k.lastUsed.Load()
					if cur >= n || k.lastUsed.CompareAndSwap(cur, n) {
						break
					}
				}
			}
		}
	case "key.create":
		if rec != nil {
			r.mu.Lock()
			r.insertOnce(newKey(*rec))
			r.mu.Unlock()
		}
	case "key.delete":
		r.forget(id)
	case "restore":
		recs, err := r.store.ListKeys()
		if err != nil {
			return
		}
		keep := map[string]bool{}
		for _, rec := range recs {
			keep[rec.ID] = true
			r.mu.Lock()
			r.insertOnce(newKey(rec))
			r.mu.Unlock()
		}
		r.mu.RLock()
		var gone []string
		for id := range r.byID {
			if !keep[id] {
				gone = append(gone, id)
			}
		}
		r.mu.RUnlock()
		for _, id := range gone {
			r.forget(id)
		}
	}
}

// Authenticate returns the live key whose token is token. It does no I/O and
// no allocation. Errors (preallocated, all EUNAUTHORIZED): ErrMissing,
// ErrMalformed, ErrUnknown (never issued or revoked), ErrExpired.
func (r *Keyring) Authenticate(token string) (*Key, error) {
	return r.AuthenticateAt(token, r.now())
}

// AuthenticateAt is Authenticate at the given time (callers that already
// read the clock for the request save a read).
func (r *Keyring) AuthenticateAt(token string, at time.Time) (*Key, error) {
	if token == "" {
		return nil, ErrMissing
	}
	if !wellFormed(token) {
		return nil, ErrMalformed
	}
	h := HashToken(token)
	r.mu.RLock()
	k := r.byHash[h]
	r.mu.RUnlock()
	if k == nil {
		return nil, ErrUnknown
	}
	now := at.UnixNano()
	if k.expiresAt != 0 && now >= k.expiresAt {
		return nil, ErrExpired
	}
	// Write the shared word only when it moves by a second: keeps the cache
	// line quiet under load, and last-used needs no finer grain.
	if now-k.lastUsed.Load() >= int64(time.Second) {
		k.lastUsed.Store(now)
	}
	return k, nil
}

// ByID returns the live key with the given id. Errors: ENOTFOUND.
func (r *Keyring) ByID(id string) (*Key, error) {
	r.mu.RLock()
	k, ok := r.byID[id]
	r.mu.RUnlock()
	if !ok {
		return nil, universe.Errorf(universe.ENOTFOUND, "no key with id %q", id)
	}
	return k, nil
}

// Get returns the live key with the given id or label. Errors: ENOTFOUND.
func (r *Keyring) Get(labelOrID string) (*Key, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if k, ok := r.byID[labelOrID]; ok {
		return k, nil
	}
	if k, ok := r.byLabel[labelOrID]; ok {
		return k, nil
	}
	return nil, universe.Errorf(universe.ENOTFOUND, "no key with label or id %q", labelOrID)
}

// List returns every key's record (with current last-used time), oldest first.
func (r *Keyring) List() []universe.KeyRecord {
	r.mu.RLock()
	out := make([]universe.KeyRecord, 0, len(r.byID))
	for _, k := range r.byID {
		out = append(out, k.Record())
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Count returns the number of keys with the given scope.
func (r *Keyring) Count(scope universe.Scope) int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	n := 0
	for _, k := range r.byID {
		if k.rec.Scope == scope {
			n++
		}
	}
	return n
}

// Flush writes the last-used times that changed since the previous flush, in
// one store transaction.
func (r *Keyring) Flush() error {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	changed := map[string]time.Time{}
	var keys []*Key
	r.mu.RLock()
	for id, k := range r.byID {
		if n := k.lastUsed.Load(); n > k.flushed {
			changed[id] = time.Unix(0, n).UTC()
			keys = append(keys, k)
		}
	}
	r.mu.RUnlock()
	if len(changed) == 0 {
		return nil
	}
	if err := r.store.TouchKeys(changed); err != nil {
		return fmt.Errorf("persist last-used times: %w", err)
	}
	for _, k := range keys {
		k.flushed = changed[k.rec.ID].UnixNano()
	}
	return nil
}

// Run flushes last-used times every interval until ctx is done, then once
// more. Flush errors go to onError (which may be nil).
func (r *Keyring) Run(ctx context.Context, interval time.Duration, onError func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := r.Flush(); err != nil && onError != nil {
				onError(err)
			}
			return
		case <-t.C:
			if err := r.Flush(); err != nil && onError != nil {
				onError(err)
			}
		}
	}
}

// CreateKey is Create returning the key's record (console.Keys).
func (r *Keyring) CreateKey(label string, scope universe.Scope, expiresIn time.Duration) (universe.KeyRecord, string, error) {
	k, token, err := r.Create(label, scope, expiresIn)
	if err != nil {
		return universe.KeyRecord{}, "", err
	}
	return k.Record(), token, nil
}

// ListKeys is List (console.Keys).
func (r *Keyring) ListKeys() []universe.KeyRecord { return r.List() }

// RevokeKey is Revoke (console.Keys).
func (r *Keyring) RevokeKey(labelOrID string) (universe.KeyRecord, error) { return r.Revoke(labelOrID) }
