// Package domain holds arrears' domain types and the interfaces the domain
// needs. It is pure Go: no I/O, no clocks, no randomness that is not passed in.
package domain

import (
	"errors"
	"fmt"
	"strings"
)

// Error codes: the small, closed set every error in arrears maps to. The HTTP
// layer translates them to problem types in one place.
const (
	EINVALID      = "invalid"
	ENOTFOUND     = "not_found"
	ECONFLICT     = "conflict"
	EFORBIDDEN    = "forbidden"
	EUNAUTHORIZED = "unauthorized"
	ERATELIMITED  = "rate_limited"
	EUNAVAILABLE  = "unavailable" // temporarily: try again later
	EINTERNAL     = "internal"
)

// FieldError names one invalid field of an input.
type FieldError struct {
	Field string `json:"field"`
	Error string `json:"error"`
}

// Error is arrears' one error type: a code, a human message, optional field
// errors for validation, and an optional wrapped cause.
type Error struct {
	Code    string
	Message string
	Fields  []FieldError
	// Reason is an optional stable, machine-readable refinement of Code
	// (e.g. "read_only_key", "idempotency_key_reused"), shown to API clients.
	Reason string
	Err    error
}

// Error implements the error interface.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Code)
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	for _, f := range e.Fields {
		fmt.Fprintf(&b, "; %s: %s", f.Field, f.Error)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the wrapped cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid returns an EINVALID error listing field errors.
func Invalid(message string, fields ...FieldError) *Error {
	return &Error{Code: EINVALID, Message: message, Fields: fields}
}

// ErrorCode returns the code of the first *Error (or VersionConflictError) in
// err's chain, EINTERNAL for any other non-nil error and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var vc *VersionConflictError
	if errors.As(err, &vc) {
		return ECONFLICT
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the human message of the first *Error in err's chain,
// or a generic message for internal errors (whose details must not leak).
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var vc *VersionConflictError
	if errors.As(err, &vc) {
		return vc.Error()
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// VersionConflictError is returned when an append's expected stream version
// does not match the stream's head: another writer got there first.
type VersionConflictError struct {
	TenantID        string
	StreamID        string
	ExpectedVersion int64
}

// Error implements the error interface.
func (e *VersionConflictError) Error() string {
	return fmt.Sprintf("stream %s changed concurrently (expected version %d)", e.StreamID, e.ExpectedVersion)
}
