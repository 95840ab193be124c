// Package auth holds the master's credential machinery, free of HTTP:
//
//   - Keyring: API keys with an in-memory index kept exactly in sync with
//     the store (every write goes store-first, then memory, under one writer
//     lock), so that authenticating a request costs one SHA-256 and one map
//     lookup and never touches the disk. Misses are never cached, so memory
//     does not grow with bogus tokens. Revocation closes the key's Revoked
//     channel, which live WebSocket sessions watch.
//   - Limiter: an exact sliding-window rate limiter per key.
//   - Throttle: a bounded per-address budget for failed authentications.
package auth
