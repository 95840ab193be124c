package master

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
	"github.com/universe-orchestrator/universe/cluster/ha"
)

// Keys of values that handlers and middleware leave in the gin context.
const (
	ctxKey         = "universe.key"         // *auth.Key of the caller
	ctxSession     = "universe.session"     // true when a dashboard session's cookie authenticated the caller
	ctxRetryAfter  = "universe.retryAfter"  // int64 milliseconds, with ERATELIMITED
	ctxOutput      = "universe.output"      // []string, with a failed console command
	ctxAuditDetail = "universe.auditDetail" // string: what the audit entry of a change adds to method and path
	ctxAudited     = "universe.audited"     // bool: the handler wrote the audit entry itself
)

// statusByCode is the one mapping from error code to HTTP status; any
// other code (EINTERNAL, or one we forgot) is a 500.
var statusByCode = map[string]int{
	universe.EINVALID:          http.StatusBadRequest,
	universe.ENOTFOUND:         http.StatusNotFound,
	universe.ECONFLICT:         http.StatusConflict,
	universe.EUNAUTHORIZED:     http.StatusUnauthorized,
	universe.EFORBIDDEN:        http.StatusForbidden,
	universe.ERATELIMITED:      http.StatusTooManyRequests,
	universe.ETOOLARGE:         http.StatusRequestEntityTooLarge,
	universe.EUNSUPPORTED:      http.StatusUnsupportedMediaType,
	universe.EMETHODNOTALLOWED: http.StatusMethodNotAllowed,
	universe.EUNAVAILABLE:      http.StatusServiceUnavailable,
	universe.ETIMEOUT:          http.StatusRequestTimeout,
	universe.EUPGRADE:          http.StatusUpgradeRequired,
	universe.ENOSPACE:          http.StatusInsufficientStorage,
}

func statusOf(code string) int {
	if s, ok := statusByCode[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// renderErrors writes the last error a handler or middleware attached, if
// nothing was written yet. It is the only writer of failure responses.
func (m *Master) renderErrors(c *gin.Context) {
	c.Next()
	if len(c.Errors) == 0 || c.Writer.Written() {
		return
	}
	m.writeError(c, c.Errors.Last().Err)
}

// writeError writes err as {"error": ...} with the status of its code.
// Internal errors are logged with the request id and shown only as
// "internal error" plus that id.
func (m *Master) writeError(c *gin.Context, err error) {
	code := universe.ErrorCode(err)
	body := api.Error{Error: universe.ErrorMessage(err)}
	switch code {
	case universe.EINTERNAL:
		body.RequestID = requestIDOf(c)
		m.log.Error("request failed", "requestId", body.RequestID, "route", c.FullPath(), "err", err)
	case universe.EUNAUTHORIZED:
		if c.Writer.Header().Get("WWW-Authenticate") == "" {
			c.Header("WWW-Authenticate", `Bearer realm="universe"`)
		}
	case universe.ERATELIMITED:
		body.RetryAfterMs = c.GetInt64(ctxRetryAfter)
	case universe.EUNAVAILABLE:
		if errors.Is(err, ha.ErrNoLeader) || errors.Is(err, ha.ErrBusy) {
			body.RetryAfterMs = 500 // an election takes about that
		}
	case universe.ENOSPACE:
		m.log.Error("a write failed: the disk is full", "requestId", requestIDOf(c), "route", c.FullPath(), "err", err)
	}
	if out, ok := c.Get(ctxOutput); ok {
		body.Output = out.([]string)
	}
	closeUnread(c)
	c.AbortWithStatusJSON(statusOf(code), body)
}

// fail attaches err for renderErrors and stops the chain.
func fail(c *gin.Context, err error) {
	_ = c.Error(err)
	c.Abort()
}

// bindJSON decodes the request body into v: JSON only, one value, within the
// body limit. Errors: EUNSUPPORTED (Content-Type), ETOOLARGE, EINVALID.
func bindJSON(c *gin.Context, v any) error {
	if ct := c.GetHeader("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !(len(mt) > 5 && mt[len(mt)-5:] == "+json")) {
			return universe.Errorf(universe.EUNSUPPORTED, "Content-Type must be application/json")
		}
	}
	dec := json.NewDecoder(c.Request.Body)
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		var own *universe.Error
		if errors.As(err, &tooLarge) || errors.As(err, &own) {
			return jsonError(err)
		}
		return universe.Errorf(universe.EINVALID, "malformed JSON: more than one value in the body")
	}
	return nil
}

// bindJSONStrict is bindJSON refusing fields v does not have, naming every
// unknown one of the top level (a misspelt or unsupported option, such as
// "privileged", must not be dropped without a word). Errors: as bindJSON.
func bindJSONStrict(c *gin.Context, v any) error {
	var raw json.RawMessage
	if err := bindJSON(c, &raw); err != nil {
		return err
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(raw, &top) == nil {
		known := jsonFields(reflect.TypeOf(v).Elem())
		var unknown []string
		for k := range top {
			if !known[k] {
				unknown = append(unknown, strconv.Quote(k))
			}
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			if len(unknown) > 10 {
				unknown = append(unknown[:10], "…")
			}
			return universe.Errorf(universe.EINVALID, "unknown field %s: not a field of this object", strings.Join(unknown, ", "))
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return universe.Errorf(universe.EINVALID, "unknown field %s: not a field of this object", name)
		}
		return jsonError(err)
	}
	return nil
}

// jsonFields are the JSON names of struct type t's fields.
func jsonFields(t reflect.Type) map[string]bool {
	names := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-":
		case name != "":
			names[name] = true
		case f.IsExported():
			names[f.Name] = true
		}
	}
	return names
}

func jsonError(err error) error {
	var (
		tooLarge *http.MaxBytesError
		syntax   *json.SyntaxError
		typ      *json.UnmarshalTypeError
		own      *universe.Error
	)
	switch {
	case errors.As(err, &own): // from the body's reader (guardBody)
		return err
	case errors.As(err, &tooLarge):
		return universe.Errorf(universe.ETOOLARGE, "request body is larger than %d bytes", tooLarge.Limit)
	case errors.Is(err, io.EOF):
		return universe.Errorf(universe.EINVALID, "request body is empty; expected a JSON object")
	case errors.As(err, &syntax):
		return universe.Errorf(universe.EINVALID, "malformed JSON at byte %d", syntax.Offset)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return universe.Errorf(universe.EINVALID, "malformed JSON: expected a JSON object")
		}
		return universe.Errorf(universe.EINVALID, "malformed JSON: field %q must be %s", typ.Field, jsonKind(typ.Type.Kind().String()))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return universe.Errorf(universe.EINVALID, "malformed JSON: unexpected end of body")
	}
	return universe.Errorf(universe.EINVALID, "malformed JSON")
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	case "map", "struct":
		return "an object"
	}
	return fmt.Sprintf("a number (%s)", k)
}
