// Package users holds the people who use a master, beside the keys of
// package auth: a user has a name, a password (argon2id), an optional
// second factor (TOTP, with single-use recovery codes), and rights. An
// admin may do everything an ALL key may; a member holds grants: a set of
// permissions on an instance, or on a configuration (its instances present
// and future). There is no HTTP here: master's handlers use it.
package users

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
)

// User is a user's record (stored in bbolt, replicated in a cluster).
type User struct {
	Name         string `json:"name"`
	PasswordHash string `json:"passwordHash"` // Hash's encoding, parameters included
	Admin        bool   `json:"admin"`
	Disabled     bool   `json:"disabled,omitempty"`
	// TOTPSecret is the second factor's secret once confirmed;
	// TOTPPending one shown for enrolment and not yet confirmed.
	TOTPSecret  string `json:"totpSecret,omitempty"`
	TOTPPending string `json:"totpPending,omitempty"`
	// TOTPLastStep is the time step of the last code taken: a code is
	// taken once (one of the same step or an earlier one is refused).
	TOTPLastStep uint64 `json:"totpLastStep,omitempty"`
	// RecoveryHashes are the SHA-256 hashes (hex) of the unused
	// single-use recovery codes.
	RecoveryHashes []string `json:"recoveryHashes,omitempty"`
	CreatedAt      int64    `json:"createdAt"`
	// Generation counts the changes that end the user's sessions and
	// keys' sockets (password, disabled, grants).
	Generation uint64 `json:"generation,omitempty"`
}

// Grant is a set of permissions of a member on one instance or one
// configuration (the wire's api.Grant, stored as it is).
type Grant = api.Grant

// Permissions a grant may hold, named area.action.
var Permissions = []string{
	"instance.read", "console.read", "console.write",
	"power.start", "power.stop", "power.restart", "power.kill",
	"file.list", "file.read", "file.write", "file.delete",
	"backup.read", "backup.create", "backup.restore", "backup.download", "backup.delete",
	"schedule.read", "schedule.write",
	"config.read", "config.write", "template.read", "template.write",
	"instance.create", "instance.delete", "stats.read", "audit.read",
	"user.grant",
}

// ValidPermission says whether p names a permission.
func ValidPermission(p string) bool { return slices.Contains(Permissions, p) }

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$`)

// ValidateName checks a user's name (as a label). Errors: EINVALID.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return universe.Errorf(universe.EINVALID, "name: %q is not a user name (letters, digits, '.', '_', '-', 1 to 64, starting with a letter or digit)", name)
	}
	return nil
}

// MinPassword is the shortest password taken.
const MinPassword = 10

// ValidatePassword refuses a weak password: shorter than MinPassword, or
// the user's name. Errors: EINVALID.
func ValidatePassword(name, password string) error {
	if len([]rune(password)) < MinPassword {
		return universe.Errorf(universe.EINVALID, "password: at least %d characters", MinPassword)
	}
	if strings.EqualFold(strings.TrimSpace(password), name) {
		return universe.Errorf(universe.EINVALID, "password: not the user's name")
	}
	if len(password) > 1024 {
		return universe.Errorf(universe.EINVALID, "password: at most 1024 bytes")
	}
	return nil
}

// Params are argon2id's parameters. Default takes 50 ms or more per hash
// on this project's 2-core machines (BenchmarkHash).
type Params struct {
	Time    uint32
	MemKiB  uint32
	Threads uint8
}

// Default is the parameters new hashes are made with.
var Default = Params{Time: 3, MemKiB: 64 << 10, Threads: 1}

// Hash returns password's argon2id hash with its parameters and salt:
// $argon2id$v=19$m=<KiB>,t=<time>,p=<threads>$<salt>$<hash>.
func Hash(password string, p Params) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	sum := argon2.IDKey([]byte(password), salt, p.Time, p.MemKiB, p.Threads, 32)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemKiB, p.Time, p.Threads,
		enc.EncodeToString(salt), enc.EncodeToString(sum)), nil
}

// Verify says whether password matches the encoded hash (in constant time
// for the comparison; a malformed hash matches nothing).
func Verify(encoded, password string) bool {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return false
	}
	var p Params
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemKiB, &p.Time, &p.Threads); err != nil ||
		p.Time == 0 || p.Time > 16 || p.MemKiB < 8 || p.MemKiB > 1<<20 || p.Threads == 0 {
		return false
	}
	enc := base64.RawStdEncoding
	salt, err1 := enc.DecodeString(parts[4])
	want, err2 := enc.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.MemKiB, p.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// DummyHash is compared against when a sign-in names no user, so that the
// answer takes as long as for a user (and says nothing of who exists).
// Made at the first such sign-in, not at start: every process of the
// binary (each instance's supervisor too) would pay 64 MiB and a tenth of
// a second for it.
var DummyHash = sync.OnceValue(func() string {
	h, _ := Hash("not a password of anyone", Default)
	return h
})

// NewPassword returns a generated password (shown once).
func NewPassword() string {
	b := make([]byte, 15)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// NewRecoveryCodes returns n single-use recovery codes and their hashes.
func NewRecoveryCodes(n int) (codes, hashes []string) {
	for range n {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		c := hex.EncodeToString(b)
		c = c[:4] + "-" + c[4:8] + "-" + c[8:12] + "-" + c[12:]
		codes = append(codes, c)
		hashes = append(hashes, RecoveryHash(c))
	}
	return codes, hashes
}

// RecoveryHash is how a recovery code is kept (SHA-256: the codes carry 64
// random bits each).
func RecoveryHash(code string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(code))))
	return hex.EncodeToString(sum[:])
}

// NewGrantID returns a new grant id.
func NewGrantID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "g" + hex.EncodeToString(b)
}

// New makes a user's record: name and password checked, the password
// hashed. Errors: EINVALID.
func New(name, password string, admin bool, now time.Time) (User, error) {
	if err := ValidateName(name); err != nil {
		return User{}, err
	}
	if err := ValidatePassword(name, password); err != nil {
		return User{}, err
	}
	hash, err := Hash(password, Default)
	if err != nil {
		return User{}, err
	}
	return User{Name: name, PasswordHash: hash, Admin: admin, CreatedAt: now.UnixMilli()}, nil
}
