package master

import (
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/instance/template"
)

func (m *Master) handleTemplateList(c *gin.Context) {
	list, err := m.templates.List()
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, list)
}

// handleTemplateSync is POST /api/templates/sync of the original's clients:
// it distributes the templates to the nodes. With one node (this master)
// they are where instances are made already.
// handleTemplateSync asks every connected agent node to fetch the
// templates it lacks now (they also do at every connection).
func (m *Master) handleTemplateSync(c *gin.Context) {
	n := m.hub.SyncTemplates()
	msg := "sync asked of " + strconv.Itoa(n) + " connected nodes"
	if n == 0 {
		msg = "no node is connected: the templates are on this master"
	}
	c.JSON(http.StatusOK, api.TemplateSync{Message: msg, Nodes: n})
}

func (m *Master) handleTemplateGet(c *gin.Context) {
	info, err := m.templates.Get(c.Param("group"), c.Param("name"))
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, info)
}

func (m *Master) handleTemplateCreate(c *gin.Context) {
	g, n := c.Param("group"), c.Param("name")
	if err := m.templates.Create(g, n); err != nil {
		fail(c, err)
		return
	}
	info, err := m.templates.Get(g, n)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, info)
}

func (m *Master) handleTemplateDelete(c *gin.Context) {
	if err := m.templates.Delete(c.Param("group"), c.Param("name")); err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (m *Master) handleTemplateFiles(c *gin.Context) {
	files, err := m.templates.Files(c.Param("group"), c.Param("name"))
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, files)
}

// filePath returns the {path...} parameter. Encoded separators (%2F, %5C)
// and NUL (%00) are refused before anything else: a path is its segments as
// sent.
func filePath(c *gin.Context) (string, error) {
	raw := strings.ToLower(c.Request.URL.RawPath)
	if strings.Contains(raw, "%2f") || strings.Contains(raw, "%5c") || strings.Contains(raw, "%00") {
		return "", universe.Errorf(universe.EINVALID, "path may not contain encoded separators or NUL")
	}
	return strings.TrimPrefix(c.Param("path"), "/"), nil
}

func (m *Master) handleTemplateFileGet(c *gin.Context) {
	p, err := filePath(c)
	if err != nil {
		fail(c, err)
		return
	}
	f, fi, err := m.templates.OpenFile(c.Param("group"), c.Param("name"), p)
	if err != nil {
		fail(c, err)
		return
	}
	defer f.Close()
	c.DataFromReader(http.StatusOK, fi.Size(), "application/octet-stream", f, nil)
}

// handleTemplateFileWrite serves POST (create; 409 if present), PUT and
// PATCH (create or overwrite). The body is the file's content, any bytes.
func (m *Master) handleTemplateFileWrite(c *gin.Context) {
	p, err := filePath(c)
	if err != nil {
		fail(c, err)
		return
	}
	create := c.Request.Method == http.MethodPost
	if _, err := m.templates.WriteFile(c.Param("group"), c.Param("name"), p, c.Request.Body, create); err != nil {
		fail(c, err)
		return
	}
	if create {
		c.Status(http.StatusCreated)
		return
	}
	c.Status(http.StatusNoContent)
}

func (m *Master) handleTemplateFileDelete(c *gin.Context) {
	p, err := filePath(c)
	if err != nil {
		fail(c, err)
		return
	}
	if err := m.templates.RemoveFile(c.Param("group"), c.Param("name"), p); err != nil {
		fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (m *Master) handleTemplateExport(c *gin.Context) {
	g, n := c.Param("group"), c.Param("name")
	if !m.templates.Exists(g, n) {
		// The answer must come before the zip's headers: a bad name is 400,
		// a missing template 404.
		if err := template.ValidTemplate(g, n); err != nil {
			fail(c, err)
			return
		}
		fail(c, universe.Errorf(universe.ENOTFOUND, "no template %s/%s", g, n))
		return
	}
	c.Header("Content-Type", "application/zip")
	c.Header("Content-Disposition", `attachment; filename="`+g+"-"+n+`.zip"`)
	c.Status(http.StatusOK)
	if err := m.templates.Export(g, n, c.Writer); err != nil {
		// Headers are out; the client sees a truncated archive.
		m.log.Error("template export", "template", g+"/"+n, "err", err)
	}
}

func (m *Master) handleTemplateImport(c *gin.Context) {
	g, n := c.Param("group"), c.Param("name")
	tmp, err := os.CreateTemp("", "universe-import-*.zip")
	if err != nil {
		fail(c, err)
		return
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	size, err := io.Copy(tmp, c.Request.Body)
	if err != nil {
		fail(c, err)
		return
	}
	res, err := m.templates.Import(g, n, tmp, size, m.cfg.ImportLimits, c.Query("replace") == "true")
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, res)
}
