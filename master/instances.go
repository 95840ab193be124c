package master

import (
	"bufio"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"sync"

	"github.com/gin-gonic/gin"
	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/instance"
)

// maxLogLines bounds ?lines= of the logs endpoint and the live-log.
const maxLogLines = 10000

func (m *Master) handleInstanceList(c *gin.Context) {
	f := instance.Filter{State: c.Query("state"), Configuration: c.Query("configuration")}
	if f.State != "" && !instance.State(f.State).Valid() {
		fail(c, universe.Errorf(universe.EINVALID, "state must be one of CREATING, ONLINE, OFFLINE, STOPPED"))
		return
	}
	list := m.instances.List(f)
	if r := callerRights(c); r != nil { // a member sees what it may read
		list = slices.DeleteFunc(list, func(in api.InstanceInfo) bool {
			return !r.Allowed("instance.read", in.ID, in.ConfigurationName)
		})
	}
	writeJSONArray(c, list)
}

// writeJSONArray streams list as a JSON array, an element at a time
// through a small buffer, instead of building the whole body first: what
// an answer of 10,000 instances costs the master is the list, not the list
// and its body.
func writeJSONArray[T any](c *gin.Context, list []T) {
	c.Header("Content-Type", "application/json; charset=utf-8")
	c.Status(http.StatusOK)
	w := bufio.NewWriterSize(c.Writer, 32<<10)
	enc := json.NewEncoder(w) // one buffer for every element (each ends with a newline: JSON whitespace)
	var scratch []byte        // for the types that append their own JSON
	_ = w.WriteByte('[')
	for i := range list {
		if i > 0 {
			_ = w.WriteByte(',')
		}
		if a, ok := any(&list[i]).(jsonAppender); ok {
			scratch = a.AppendJSON(scratch[:0])
			if _, err := w.Write(scratch); err != nil {
				return // the client went away
			}
		} else if err := enc.Encode(&list[i]); err != nil {
			return // the client went away (the types always encode)
		}
	}
	_ = w.WriteByte(']')
	_ = w.Flush()
}

// jsonAppender is a type that appends its JSON by hand, byte for byte what
// encoding/json gives (api.InstanceInfo): the answers asked for most.
type jsonAppender interface{ AppendJSON([]byte) []byte }

// jsonBuffers are the buffers answerJSON appends answers into.
var jsonBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// answerJSON answers 200 with v's JSON, appended by hand into a pooled
// buffer: what c.JSON sends, without encoding/json's reflection.
func answerJSON(c *gin.Context, v jsonAppender) {
	bp := jsonBuffers.Get().(*[]byte)
	b := v.AppendJSON((*bp)[:0])
	c.Data(http.StatusOK, "application/json; charset=utf-8", b)
	if cap(b) <= 64<<10 {
		*bp = b
		jsonBuffers.Put(bp)
	}
}

func (m *Master) handleInstanceCreate(c *gin.Context) {
	var req api.InstanceCreateRequest
	if err := bindJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	if req.ConfigurationName == "" {
		req.ConfigurationName = req.Name // a whole Configuration, as the original's clients send it
	}
	if req.ConfigurationName == "" {
		fail(c, universe.Errorf(universe.EINVALID, "configurationName is required"))
		return
	}
	c.Set(ctxAuditDetail, "configuration="+req.ConfigurationName)
	if r := callerRights(c); r != nil && !r.Allowed("instance.create", "", req.ConfigurationName) {
		fail(c, needs("instance.create", "configuration "+req.ConfigurationName))
		return
	}
	info, err := m.instances.Create(req.ConfigurationName, callerKey(c).Label())
	if info.ID != "" {
		c.Set(ctxAuditDetail, "configuration="+req.ConfigurationName+" id="+info.ID)
	}
	if err != nil {
		fail(c, err)
		return
	}
	c.Header("Location", "/api/instances/"+info.ID)
	c.JSON(http.StatusCreated, info)
}

// instanceOf finds the instance of the :id parameter, or fails with 404.
func (m *Master) instanceOf(c *gin.Context) *instance.Instance {
	in, err := m.instances.Get(c.Param("id"))
	if err != nil {
		fail(c, err)
		return nil
	}
	return in
}

// handleInstanceStop is POST /api/instances/{id}/stop, which the original's
// clients call: lifecycle stop, with an empty body.
func (m *Master) handleInstanceStop(c *gin.Context) { m.lifecycle(c, "stop") }

// handleInstanceProperties answers what the instance reported about itself
// beyond its state.
func (m *Master) handleInstanceProperties(c *gin.Context) {
	if in := m.instanceOf(c); in != nil {
		p := in.Info().Properties
		if p == nil {
			p = map[string]any{}
		}
		c.JSON(http.StatusOK, p)
	}
}

func (m *Master) handleInstanceGet(c *gin.Context) {
	if in := m.instanceOf(c); in != nil {
		info := in.Info()
		answerJSON(c, &info)
	}
}

func (m *Master) handleInstanceDelete(c *gin.Context) {
	if err := m.instances.Delete(c.Param("id"), callerKey(c).Label()); err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (m *Master) handleInstanceLifecycle(c *gin.Context) { m.lifecycle(c, c.Query("target")) }

// lifecycle starts, stops, restarts or kills the instance of :id: 202 when
// it goes on in the background, 200 when there is nothing to do.
func (m *Master) lifecycle(c *gin.Context, target string) {
	in := m.instanceOf(c)
	if in == nil {
		return
	}
	by := callerKey(c).Label()
	switch target {
	case "start", "stop", "restart", "kill":
		c.Set(ctxAuditDetail, "action="+target) // the path alone does not say which
		if err := m.mayOnInstance(c, "power."+target, in.ID()); err != nil {
			fail(c, err)
			return
		}
	}
	var (
		accepted bool
		err      error
	)
	switch target {
	case "start":
		accepted, err = in.Start(by)
	case "stop":
		accepted, err = in.Stop(by)
	case "restart":
		accepted, err = true, in.Restart(by)
	case "kill":
		if in.Running() { // as stop: nothing to do when it does not run
			accepted, err = true, in.Kill(by)
		}
	default:
		err = universe.Errorf(universe.EINVALID, "target must be start, stop, restart or kill")
	}
	if err != nil {
		fail(c, err)
		return
	}
	status := http.StatusOK
	if accepted {
		status = http.StatusAccepted
	}
	c.JSON(status, api.LifecycleResponse{InstanceID: in.ID(), Target: target, Accepted: accepted, Instance: in.Info()})
}

func (m *Master) handleInstanceExecute(c *gin.Context) {
	in := m.instanceOf(c)
	if in == nil {
		return
	}
	var req api.ExecuteRequest
	if err := bindJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	c.Set(ctxAuditDetail, "command="+req.Command)
	if err := in.Execute(req.Command); err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (m *Master) handleInstanceState(c *gin.Context) {
	in := m.instanceOf(c)
	if in == nil {
		return
	}
	var req api.StateReport
	if err := bindJSON(c, &req); err != nil {
		fail(c, err)
		return
	}
	info, err := in.ReportState(req)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, info)
}

// linesParam reads ?lines= (1..10000, default 100). Errors: EINVALID.
func linesParam(c *gin.Context) (int, error) {
	s, ok := c.GetQuery("lines")
	if !ok {
		return 100, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxLogLines {
		return 0, universe.Errorf(universe.EINVALID, "lines must be a number from 1 to %d", maxLogLines)
	}
	return n, nil
}

// handleInstanceLogs answers the newest lines of the log, bounded by
// ?lines= and by MaxLogResponseBytes: the original's text lines, or with
// ?format=entries the lines with their numbers (never both).
func (m *Master) handleInstanceLogs(c *gin.Context) {
	in := m.instanceOf(c)
	if in == nil {
		return
	}
	n, err := linesParam(c)
	if err != nil {
		fail(c, err)
		return
	}
	format := c.DefaultQuery("format", "lines")
	if format != "lines" && format != "entries" {
		fail(c, universe.Errorf(universe.EINVALID, "format must be lines or entries"))
		return
	}
	lines, total, omitted := in.Log().Last(n, m.cfg.MaxLogResponseBytes)
	if format == "entries" {
		c.JSON(http.StatusOK, api.LogEntries{InstanceID: in.ID(), Entries: lines, TotalLines: total, RequestedLines: n, OmittedLines: omitted})
		return
	}
	out := api.Logs{InstanceID: in.ID(), Lines: make([]string, len(lines)), TotalLines: total, RequestedLines: n, OmittedLines: omitted}
	for i, l := range lines {
		out.Lines[i] = l.Line
	}
	c.JSON(http.StatusOK, out)
}
