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
	if !pprofByHeader(c) {
		return
	}
	name := strings.TrimPrefix(c.Param("name"), "/")
	switch name {
	case "":
		pprof.Index(c.Writer, c.Request)
	case "profile":
		// One CPU profile at a time: a second is a conflict, not the
		// 500 net/http/pprof answers.
		if !m.cpuProfiling.TryLock() {
			fail(c, universe.Errorf(universe.ECONFLICT, "a CPU profile of the master is being taken"))
			return
		}
		defer m.cpuProfiling.Unlock()
		if s := c.Query("seconds"); s != "" {
			if n, err := strconv.Atoi(s); err != nil || n < 1 || n > 300 {
				fail(c, universe.Errorf(universe.EINVALID, "seconds must be a whole number from 1 to 300"))
				return
			}
		}
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
	if !pprofByHeader(c) {
		return
	}
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

// pprofByHeader refuses profiles to a dashboard session's cookie: a page of
// the same site could make a browser fetch them. Profiles are for clients
// that send their key (Authorization), as the CLI does.
func pprofByHeader(c *gin.Context) bool {
	if c.GetBool(ctxSession) {
		fail(c, universe.Errorf(universe.EFORBIDDEN, "profiles are served to an Authorization header only, not to a dashboard session"))
		return false
	}
	return true
}
