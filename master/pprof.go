package master

import (
	"net/http/pprof"
	"strings"

	"github.com/gin-gonic/gin"
	universe "github.com/universe-orchestrator/universe"
)

// handlePprof serves Go's profiles of the master (ALL keys only), as
// net/http/pprof does under /debug/pprof/: the index, profile (CPU, with
// ?seconds=), trace, symbol and every named profile (heap, goroutine,
// allocs, block, mutex, threadcreate). The command line is not served: it
// is no business of a client's.
func (m *Master) handlePprof(c *gin.Context) {
	name := strings.TrimPrefix(c.Param("name"), "/")
	switch name {
	case "":
		pprof.Index(c.Writer, c.Request)
	case "profile":
		pprof.Profile(c.Writer, c.Request)
	case "trace":
		pprof.Trace(c.Writer, c.Request)
	case "symbol":
		pprof.Symbol(c.Writer, c.Request)
	case "heap", "goroutine", "allocs", "block", "mutex", "threadcreate":
		pprof.Handler(name).ServeHTTP(c.Writer, c.Request)
	default:
		fail(c, universe.Errorf(universe.ENOTFOUND, "no profile %q", name))
	}
}
