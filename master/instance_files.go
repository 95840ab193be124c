package master

import (
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/instance/files"
)

// instanceDir is the working directory of the :id instance.
func (m *Master) instanceDir(c *gin.Context) (files.Dir, error) {
	p, err := m.instances.WorkDir(c.Param("id"))
	return files.Dir{Path: p}, err
}

// handleInstanceFiles lists the files of an instance: the whole tree, or
// one folder with ?path= (and ?recursive=false). At most files.MaxEntries
// entries; X-Universe-Truncated: true says there are more.
func (m *Master) handleInstanceFiles(c *gin.Context) {
	d, err := m.instanceDir(c)
	if err != nil {
		fail(c, err)
		return
	}
	recursive := true
	if v, ok := c.GetQuery("recursive"); ok {
		if recursive, err = strconv.ParseBool(v); err != nil {
			fail(c, universe.Errorf(universe.EINVALID, "recursive must be true or false"))
			return
		}
	}
	list, truncated, err := d.List(c.Query("path"), recursive)
	if err != nil {
		fail(c, err)
		return
	}
	if truncated {
		c.Header("X-Universe-Truncated", "true")
	}
	c.JSON(http.StatusOK, list)
}

func (m *Master) handleInstanceFileGet(c *gin.Context) {
	p, err := filePath(c)
	if err != nil {
		fail(c, err)
		return
	}
	d, err := m.instanceDir(c)
	if err != nil {
		fail(c, err)
		return
	}
	f, fi, err := d.Open(p)
	if err != nil {
		fail(c, err)
		return
	}
	defer f.Close()
	c.DataFromReader(http.StatusOK, fi.Size(), "application/octet-stream", f, nil)
}

// handleInstanceFilePut creates or replaces one file; the body is its
// content, any bytes, up to MaxUploadBytes.
func (m *Master) handleInstanceFilePut(c *gin.Context) {
	p, err := filePath(c)
	if err != nil {
		fail(c, err)
		return
	}
	d, err := m.instanceDir(c)
	if err != nil {
		fail(c, err)
		return
	}
	c.Set(ctxAuditDetail, "path="+p)
	if _, err := d.Write(p, c.Request.Body); err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (m *Master) handleInstanceFileDelete(c *gin.Context) {
	p, err := filePath(c)
	if err != nil {
		fail(c, err)
		return
	}
	d, err := m.instanceDir(c)
	if err != nil {
		fail(c, err)
		return
	}
	c.Set(ctxAuditDetail, "path="+p)
	if err := d.Remove(p); err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// handleInstanceStats answers the CPU and memory samples of an instance.
func (m *Master) handleInstanceStats(c *gin.Context) {
	in := m.instanceOf(c)
	if in == nil {
		return
	}
	s, _ := m.stats.Get(in.ID())
	c.JSON(http.StatusOK, s)
}
