package master

import (
	"errors"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/gin-gonic/gin"
	universe "github.com/universe-orchestrator/universe"
)

// ctxBody is the gin context key of the request's *guardedBody.
const ctxBody = "universe.body"

// guardBody bounds every request body in bytes and in time, before anything
// reads it:
//   - more than MaxBodyBytes (MaxUploadBytes on upload routes, less on
//     some: bodyLimits) is 413, by
//     Content-Length at once or while reading;
//   - the whole body must arrive within BodyTimeout; on upload routes each
//     UploadMinRate bytes received extend that by one second, so an upload
//     that keeps the rate never times out and a trickle always does. Past
//     the deadline the read fails, the answer is 408 and the connection
//     closes.
//
// A request that fails before its body was read (401, 429, 413, ...) is
// answered at once and its connection closed without waiting for the body
// (see closeUnread).
func (m *Master) guardBody(c *gin.Context) {
	r := c.Request
	if r.Body == nil || r.Body == http.NoBody || (r.ContentLength == 0 && len(r.TransferEncoding) == 0) {
		c.Next()
		return
	}
	limit := m.cfg.MaxBodyBytes
	upload := m.uploads[c.FullPath()] && !(c.Request.Method == http.MethodPost && c.FullPath() == instanceFilesRoute) // a POST there is a small JSON action
	if upload {
		limit = m.cfg.MaxUploadBytes
	} else if l, ok := m.bodyLimits[c.FullPath()]; ok {
		limit = l
	}
	b := &guardedBody{
		rc:    http.NewResponseController(c.Writer),
		start: time.Now(),
		base:  m.cfg.BodyTimeout,
	}
	if upload {
		b.perSecond = m.cfg.UploadMinRate
	}
	c.Set(ctxBody, b)
	if r.ContentLength > limit {
		fail(c, universe.Errorf(universe.ETOOLARGE, "request body is larger than %d bytes", limit))
		return
	}
	b.r = http.MaxBytesReader(c.Writer, r.Body, limit)
	b.deadline = b.start.Add(b.base)
	_ = b.rc.SetReadDeadline(b.deadline)
	r.Body = b
	c.Next()
}

// guardedBody is a request body with a read deadline that a fast upload
// pushes out, and read errors in the domain's terms: ETIMEOUT past the
// deadline, EINVALID when the client broke off, ETOOLARGE over the limit.
type guardedBody struct {
	r         io.ReadCloser
	rc        *http.ResponseController
	start     time.Time
	base      time.Duration
	perSecond int64 // bytes that buy one more second (0: none)
	deadline  time.Time
	n         int64
	eof       bool
}

func (b *guardedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += int64(n)
	if b.perSecond > 0 && n > 0 {
		d := b.start.Add(b.base + time.Duration(b.n/b.perSecond)*time.Second)
		if d.Sub(b.deadline) >= time.Second {
			b.deadline = d
			_ = b.rc.SetReadDeadline(d)
		}
	}
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		b.eof = true
		// The server reads on in the background to notice a client that
		// leaves; that read must not inherit the body's deadline.
		_ = b.rc.SetReadDeadline(time.Time{})
	default:
		err = bodyReadError(err)
	}
	return n, err
}

func (b *guardedBody) Close() error { return b.r.Close() }

// bodyReadError says what went wrong reading a request body.
func bodyReadError(err error) error {
	var tooLarge *http.MaxBytesError
	var ue *universe.Error
	switch {
	case errors.As(err, &ue):
		return err
	case errors.As(err, &tooLarge):
		return universe.Errorf(universe.ETOOLARGE, "request body is larger than %d bytes", tooLarge.Limit)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return universe.Errorf(universe.ETIMEOUT, "the request body did not arrive in time")
	}
	return universe.Errorf(universe.EINVALID, "the request body ended early")
}

// closeUnread makes the answer to a request whose body was not read to its
// end the last on its connection, and stops the server from reading the
// rest (Go's server would otherwise read up to 256 KiB more of it, at the
// client's pace).
func closeUnread(c *gin.Context) {
	v, ok := c.Get(ctxBody)
	if !ok {
		return
	}
	b := v.(*guardedBody)
	if b.eof {
		return
	}
	c.Header("Connection", "close")
	_ = b.rc.SetReadDeadline(time.Now())
}
