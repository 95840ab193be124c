// Package universe holds the domain vocabulary shared by every part of the
// Universe control plane: the error type with its codes, and the key (API
// token) record with its scopes. It imports nothing of the project, so every
// other package may import it. The technology packages (storage, console,
// instance) and the master build on these types; the wire types clients see
// live in package api.
package universe
