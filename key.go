package universe

import (
	"time"
)

// Scope is the permission level of a key.
type Scope string

const (
	// ScopeAll is full admin access to every endpoint; never rate limited.
	ScopeAll Scope = "ALL"
	// ScopePublic is read-only access to the public endpoints; rate limited.
	ScopePublic Scope = "PUBLIC"
	// ScopeInstance is the key of one instance, given to its process as
	// UNIVERSE_API_KEY: it may read that instance and report its state,
	// nothing else. Only the master issues these.
	ScopeInstance Scope = "INSTANCE"
	// ScopeMember is the key of a user who is not an admin (or an admin's
	// key narrowed to some permissions): it may do what its user's grants
	// allow, no more. Only users make such keys (POST /api/me/keys, and a
	// sign-in's session).
	ScopeMember Scope = "MEMBER"
)

// ParseScope returns the scope named by s (exact, upper case as the console
// grammar writes it; lower case is accepted too) or an EINVALID error.
func ParseScope(s string) (Scope, error) {
	switch s {
	case "ALL", "all":
		return ScopeAll, nil
	case "PUBLIC", "public":
		return ScopePublic, nil
	}
	return "", Errorf(EINVALID, "scope must be ALL or PUBLIC")
}

// KeyRecord is a stored API key. It never holds the token itself: only the
// SHA-256 hash of it, from which the token cannot be recovered.
type KeyRecord struct {
	ID         string    `json:"id"`
	Label      string    `json:"label"`
	Scope      Scope     `json:"scope"`
	Hash       [32]byte  `json:"hash"`
	CreatedAt  time.Time `json:"createdAt"`
	LastUsedAt time.Time `json:"lastUsedAt,omitzero"`
	ExpiresAt  time.Time `json:"expiresAt,omitzero"`
	Instance   string    `json:"instance,omitempty"` // ScopeInstance: the instance it is bound to
	// User: a key a user made (scope ALL): it carries that user's rights,
	// narrowed to Permissions when they are set, and dies with its user.
	User        string   `json:"user,omitempty"`
	Permissions []string `json:"permissions,omitempty"`
	// Login: made by a user's sign-in for a dashboard session (not listed
	// among the user's keys; it goes with the session).
	Login bool `json:"login,omitempty"`
}

// Expired reports whether the key has an expiry that is not after now.
func (k *KeyRecord) Expired(now time.Time) bool {
	return !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt)
}

// ValidateLabel returns an EINVALID error unless label is 1–64 characters of
// [A-Za-z0-9._-]. (By hand, not a regexp: this package is in every
// supervisor, which would otherwise link and compile one at its start.)
func ValidateLabel(label string) error {
	ok := len(label) >= 1 && len(label) <= 64
	for i := 0; ok && i < len(label); i++ {
		c := label[i]
		ok = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
	}
	if !ok {
		return Errorf(EINVALID, "label must be 1-64 characters of A-Z a-z 0-9 . _ -")
	}
	return nil
}
