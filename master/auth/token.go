package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
)

// TokenPrefix starts every token, so that leaked tokens are recognisable by
// secret scanners and by our own masking of audit output.
const TokenPrefix = "unv_"

// tokenBytes is the entropy of a token: 256 bits.
const tokenBytes = 32

// maxTokenLen bounds what we hash: longer input is malformed without work.
const maxTokenLen = 128

// NewToken returns a fresh token: TokenPrefix and 43 URL-safe characters
// carrying 256 bits from crypto/rand.
func NewToken() string {
	var b [tokenBytes]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// HashToken returns the SHA-256 of token, the only form in which it is stored.
func HashToken(token string) [32]byte {
	if len(token) > maxTokenLen {
		return sha256.Sum256([]byte(token)) // never truncate; only the fast path is bounded
	}
	// Copy into a stack buffer: hashing []byte(token) would allocate.
	var buf [maxTokenLen]byte
	n := copy(buf[:], token)
	return sha256.Sum256(buf[:n])
}

// wellFormed reports whether s looks like a token we could have issued:
// the prefix, then only URL-safe base64 characters, within length bounds.
func wellFormed(s string) bool {
	if len(s) < len(TokenPrefix)+43 || len(s) > maxTokenLen || s[:len(TokenPrefix)] != TokenPrefix {
		return false
	}
	for i := len(TokenPrefix); i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

const idAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// newKeyID returns a short public key id: "k" and 9 characters of [a-z0-9].
func newKeyID() string {
	var b [9]byte
	_, _ = rand.Read(b[:])
	out := []byte{'k'}
	for _, x := range b {
		out = append(out, idAlphabet[int(x)%len(idAlphabet)])
	}
	return string(out)
}
