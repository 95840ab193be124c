// Package api is Universe's wire contract: the JSON types the master sends
// and accepts, with the field names of the original Universe so its clients
// keep working. It depends on the standard library only, so third parties
// (plugins, dashboards, our CLI) can import it without pulling in the master.
package api
