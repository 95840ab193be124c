package master

import (
	"net/http"
	"net/http/pprof"
	"strconv"
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

// handleInstancePprof serves Go profiles of an instance's supervisor (ALL
// keys only), wherever it runs: the master asks its supervisor, or its
// node, which asks its supervisor. ?seconds= sets the CPU profile's
// duration (default 30, as net/http/pprof's).
func (m *Master) handleInstancePprof(c *gin.Context) {
	in := m.instanceOf(c)
	if in == nil {
		return
	}
	name := c.Param("name")
	seconds := 0
	if name == "profile" {
		seconds = 30
		if s := c.Query("seconds"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				fail(c, universe.Errorf(universe.EINVALID, "seconds must be a whole number"))
				return
			}
			seconds = n
		}
	}
	b, err := in.Profile(name, seconds)
	if err != nil {
		fail(c, err)
		return
	}
	c.Header("Content-Disposition", `attachment; filename="supervisor-`+in.Info().ID+`-`+name+`.pb.gz"`)
	c.Data(http.StatusOK, "application/octet-stream", b)
}
