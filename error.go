package universe

import (
	"errors"
	"fmt"
	"syscall"
)

// Error codes. One code per kind of failure a caller can act on; the master
// maps each to exactly one HTTP status in one place (master/errors.go).
const (
	EINVALID          = "invalid"           // the request is malformed or breaks a rule: 400
	ENOTFOUND         = "not_found"         // the thing named does not exist: 404
	ECONFLICT         = "conflict"          // the thing exists already or is in the way: 409
	EUNAUTHORIZED     = "unauthorized"      // missing, unknown, expired or revoked token: 401
	EFORBIDDEN        = "forbidden"         // the caller may not do this at all (e.g. IP not allowed): 403
	ERATELIMITED      = "rate_limited"      // too many calls; retry later: 429
	ETOOLARGE         = "too_large"         // the request body is over the limit: 413
	EUNSUPPORTED      = "unsupported_media" // wrong Content-Type: 415
	EMETHODNOTALLOWED = "method_not_allowed"
	ETIMEOUT          = "timeout"              // the client sent its request body too slowly: 408
	EUPGRADE          = "upgrade_required"     // a WebSocket endpoint called without an upgrade: 426
	EUNAVAILABLE      = "unavailable"          // the service cannot do it now (shutting down, db busy): 503
	ENOSPACE          = "insufficient_storage" // the disk is full (ENOSPC, EDQUOT) and nothing was written: 507
	EINTERNAL         = "internal"             // a bug or an infrastructure failure; details are logged, not shown: 500
)

// Error is the one error type of the domain: a code callers switch on and a
// message written for people. Infrastructure errors are wrapped with
// fmt.Errorf("...: %w") and surface to clients as EINTERNAL without text.
type Error struct {
	Code    string
	Message string
}

// Error implements the error interface.
func (e *Error) Error() string {
	return fmt.Sprintf("universe error: code=%s message=%s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the *Error in err's chain, EINTERNAL for any
// other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	} else if diskFull(err) {
		return ENOSPACE
	}
	return EINTERNAL
}

// diskFull says whether err is a write refused for want of space (a full
// disk or quota). Every write of the master is all or nothing (a bbolt
// transaction, a file written beside its target and renamed), so such an
// error means nothing was written, and the caller may say so.
func diskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// DiskFullMessage is what a client is told of a write refused for space.
const DiskFullMessage = "the disk of the master's data is full: nothing was written; free space and try again"

// ErrorMessage returns the human message of the *Error in err's chain, and
// "internal error" for any other non-nil error, so that no internal detail
// reaches a client.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	} else if diskFull(err) {
		return DiskFullMessage
	}
	return "internal error"
}
