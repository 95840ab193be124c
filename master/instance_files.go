package master

import (
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/instance/files"
	"github.com/universe-orchestrator/universe/instance/template"
)

// instFiles are an instance's files: in its folder on this machine
// (files.Dir), or on its node, through the node (hub.NodeFiles). The same
// path rules hold on both sides.
type instFiles interface {
	List(dir string, recursive bool) ([]api.TemplateFile, bool, error)
	Stream(p string, start func(size int64), w io.Writer) error
	Write(p string, r io.Reader) (int64, error)
	Remove(p string) error
	Mkdir(p string) error
	Rename(from, to string) error
	Unzip(p, dest string) (api.TemplateImport, error)
}

// localFiles adds Stream to files.Dir.
type localFiles struct{ files.Dir }

// Unzip unpacks within the import limits of templates.
func (l localFiles) Unzip(p, dest string) (api.TemplateImport, error) {
	return l.Dir.Unzip(p, dest, template.ImportLimits{})
}

func (l localFiles) Stream(p string, start func(int64), w io.Writer) error {
	f, fi, err := l.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	start(fi.Size())
	_, err = io.Copy(w, f)
	return err
}

// filesOf returns the files of instance id, wherever it runs. Errors:
// ENOTFOUND.
func (m *Master) filesOf(id string) (instFiles, error) {
	in, err := m.instances.Get(id)
	if err != nil {
		return nil, err
	}
	info := in.Info()
	if !m.instances.Local(info) {
		return m.hub.Files(info.WrapperNodeID, id), nil
	}
	p, err := m.instances.WorkDir(id)
	return localFiles{files.Dir{Path: p}}, err
}

// statsOf returns the CPU and memory samples of an instance: sampled
// here, or asked of its node.
func (m *Master) statsOf(info api.InstanceInfo) (api.InstanceStats, error) {
	if !m.instances.Local(info) {
		return m.hub.Stats(info.WrapperNodeID, info.ID)
	}
	s, _ := m.stats.GetNow(info.ID)
	return s, nil
}

// errTooBig ends a read that passed its limit.
var errTooBig = errors.New("too big")

// readSmall reads file p if it is at most limit bytes; size is its size
// either way.
func readSmall(f instFiles, p string, limit int64) (data []byte, size int64, err error) {
	var buf []byte
	err = f.Stream(p, func(n int64) { size = n }, writerFunc(func(b []byte) (int, error) {
		if size > limit || int64(len(buf)+len(b)) > limit {
			return 0, errTooBig
		}
		buf = append(buf, b...)
		return len(b), nil
	}))
	return buf, size, err
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// handleInstanceFiles lists the files of an instance: the whole tree, or
// one folder with ?path= (and ?recursive=false). At most files.MaxEntries
// entries; X-Universe-Truncated: true says there are more.
func (m *Master) handleInstanceFiles(c *gin.Context) {
	recursive := true
	if v, ok := c.GetQuery("recursive"); ok {
		var err error
		if recursive, err = strconv.ParseBool(v); err != nil {
			fail(c, universe.Errorf(universe.EINVALID, "recursive must be true or false"))
			return
		}
	}
	f, err := m.filesOf(c.Param("id"))
	if err != nil {
		fail(c, err)
		return
	}
	if p := c.Query("path"); p != "" {
		if _, err := template.CleanPath(p); err != nil {
			fail(c, err)
			return
		}
	}
	list, truncated, err := f.List(c.Query("path"), recursive)
	if err != nil {
		fail(c, err)
		return
	}
	if truncated {
		c.Header("X-Universe-Truncated", "true")
	}
	c.JSON(http.StatusOK, list)
}

// instanceFile resolves the :id instance's files and the {path...}
// parameter (checked here before anything goes to a node).
func (m *Master) instanceFile(c *gin.Context) (instFiles, string, bool) {
	p, err := filePath(c)
	if err == nil {
		_, err = template.CleanPath(p)
	}
	if err != nil {
		fail(c, err)
		return nil, "", false
	}
	f, err := m.filesOf(c.Param("id"))
	if err != nil {
		fail(c, err)
		return nil, "", false
	}
	return f, p, true
}

func (m *Master) handleInstanceFileGet(c *gin.Context) {
	f, p, ok := m.instanceFile(c)
	if !ok {
		return
	}
	started := false
	err := f.Stream(p, func(size int64) {
		started = true
		c.Header("Content-Type", "application/octet-stream")
		c.Header("Content-Length", strconv.FormatInt(size, 10))
		c.Status(http.StatusOK)
		c.Writer.WriteHeaderNow()
	}, c.Writer)
	if err != nil && !started {
		fail(c, err)
	} else if err != nil {
		m.log.Warn("instance file read broke off", "instance", c.Param("id"), "err", err) // the client sees a short body
	}
}

// handleInstanceFilePut creates or replaces one file; the body is its
// content, any bytes, up to MaxUploadBytes.
func (m *Master) handleInstanceFilePut(c *gin.Context) {
	f, p, ok := m.instanceFile(c)
	if !ok {
		return
	}
	c.Set(ctxAuditDetail, "path="+p)
	if _, err := f.Write(p, c.Request.Body); err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (m *Master) handleInstanceFileDelete(c *gin.Context) {
	f, p, ok := m.instanceFile(c)
	if !ok {
		return
	}
	c.Set(ctxAuditDetail, "path="+p)
	if err := f.Remove(p); err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// handleInstanceFileAction creates a folder, renames or moves, or unzips
// (POST .../files/{path} with {"action": "mkdir"|"rename"|"unzip", "to"}).
func (m *Master) handleInstanceFileAction(c *gin.Context) {
	f, p, ok := m.instanceFile(c)
	if !ok {
		return
	}
	var req api.FileAction
	if err := bindJSONStrict(c, &req); err != nil {
		fail(c, err)
		return
	}
	c.Set(ctxAuditDetail, req.Action+" path="+p+" to="+req.To)
	var err error
	switch req.Action {
	case "mkdir":
		err = f.Mkdir(p)
	case "rename":
		err = f.Rename(p, req.To)
	case "unzip":
		var out api.TemplateImport
		if out, err = f.Unzip(p, req.To); err == nil {
			c.JSON(http.StatusOK, api.FileActionResult{Files: out.Files, Size: out.Size})
			return
		}
	default:
		err = universe.Errorf(universe.EINVALID, "action must be mkdir, rename or unzip")
	}
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, api.FileActionResult{})
}

// handleInstanceStats answers the CPU and memory samples of an instance.
func (m *Master) handleInstanceStats(c *gin.Context) {
	in := m.instanceOf(c)
	if in == nil {
		return
	}
	s, err := m.statsOf(in.Info())
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, s)
}
