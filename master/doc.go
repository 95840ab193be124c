// Package master is the Universe master process: it wires the key store,
// the keyring, the console registry and the HTTP server together, and owns
// their start and stop. The HTTP side lives here too: the gin router
// (routes.go, the one place routes are registered), the middleware chain
// (request id, access log, metrics, error rendering, recovery, allow-list,
// body limit, authentication, rate limit, scope), the handlers, and the
// WebSocket endpoints.
//
// Handlers never choose a failure status: they attach a *universe.Error with
// c.Error and return; renderErrors (errors.go) maps its code to the status
// and writes {"error": ...}.
package master
