package oauth

import (
	"errors"
	"fmt"
	"net/http"
)

// ErrorCode is an OAuth 2.0 error code as registered in the "OAuth Extensions
// Error Registry" (RFC 6749 §11.4).
type ErrorCode string

// Error codes of the token endpoint (RFC 6749 §5.2, RFC 8693 §2.2.2), of
// revocation (RFC 7009 §2.2.1) and of bearer-token use (RFC 6750 §3.1).
const (
	ErrInvalidRequest       ErrorCode = "invalid_request"
	ErrInvalidClient        ErrorCode = "invalid_client"
	ErrInvalidGrant         ErrorCode = "invalid_grant"
	ErrUnauthorizedClient   ErrorCode = "unauthorized_client"
	ErrUnsupportedGrantType ErrorCode = "unsupported_grant_type"
	ErrInvalidScope         ErrorCode = "invalid_scope"
	ErrInvalidTarget        ErrorCode = "invalid_target"
	ErrUnsupportedTokenType ErrorCode = "unsupported_token_type"
	ErrInvalidToken         ErrorCode = "invalid_token"
	ErrInsufficientScope    ErrorCode = "insufficient_scope"
	ErrServerError          ErrorCode = "server_error"
	ErrTemporarilyUnavail   ErrorCode = "temporarily_unavailable"
	// ErrAccessDenied: the server refuses the request although it is
	// authenticated (RFC 6749 §4.1.2.1), e.g. an RFC 7592 update of a
	// client whose account is suspended.
	ErrAccessDenied ErrorCode = "access_denied"
)

// Error codes of dynamic client registration (RFC 7591 §3.2.2), also used
// by its management protocol (RFC 7592 §2.2).
const (
	// ErrInvalidClientMetadata: the value of one of the client metadata
	// fields is invalid and the server has rejected the request.
	ErrInvalidClientMetadata ErrorCode = "invalid_client_metadata"
	// ErrInvalidSoftwareStatement: the software statement presented is
	// invalid (malformed, badly signed or expired).
	ErrInvalidSoftwareStatement ErrorCode = "invalid_software_statement"
	// ErrUnapprovedSoftwareStatement: the software statement presented is
	// not approved for use by this server (its issuer is not trusted).
	ErrUnapprovedSoftwareStatement ErrorCode = "unapproved_software_statement"
)

// Error is an OAuth error response (RFC 6749 §5.2). Code and Description are
// what the client sees; Status is the HTTP status code; the cause, if any, is
// for logs only and never sent.
type Error struct {
	Code        ErrorCode `json:"error"`
	Description string    `json:"error_description,omitempty"`
	// Status is the HTTP status code of the response; zero means the default
	// for the code (see [Error.HTTPStatus]).
	Status int `json:"-"`
	cause  error
}

// NewError returns a fresh error with the given code and description.
func NewError(code ErrorCode, format string, args ...any) *Error {
	if len(args) > 0 {
		format = fmt.Sprintf(format, args...)
	}
	return &Error{Code: code, Description: format}
}

// Error implements the error interface.
func (e *Error) Error() string {
	s := string(e.Code)
	if e.Description != "" {
		s += ": " + e.Description
	}
	if e.cause != nil {
		s += " (" + e.cause.Error() + ")"
	}
	return s
}

// Unwrap returns the hidden cause.
func (e *Error) Unwrap() error { return e.cause }

// WithCause returns a copy of e carrying cause for logs; the cause is never
// part of the response.
func (e *Error) WithCause(cause error) *Error {
	c := *e
	c.cause = cause
	return &c
}

// WithStatus returns a copy of e answered with the HTTP status code s.
func (e *Error) WithStatus(s int) *Error {
	c := *e
	c.Status = s
	return &c
}

// Is reports whether target is an *Error with the same code, so that
// errors.Is(err, &oauth.Error{Code: oauth.ErrInvalidTarget}) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// HTTPStatus is the status code of the response: Status when set, else 401
// for invalid_client and invalid_token, 403 for insufficient_scope, 500 for
// server_error, 503 for temporarily_unavailable, and 400 otherwise
// (RFC 6749 §5.2, RFC 6750 §3.1).
func (e *Error) HTTPStatus() int {
	if e.Status != 0 {
		return e.Status
	}
	switch e.Code {
	case ErrInvalidClient, ErrInvalidToken:
		return http.StatusUnauthorized
	case ErrInsufficientScope:
		return http.StatusForbidden
	case ErrServerError:
		return http.StatusInternalServerError
	case ErrTemporarilyUnavail:
		return http.StatusServiceUnavailable
	}
	return http.StatusBadRequest
}

// AsError converts any error into an *Error: an *Error in err's chain is
// returned as is; anything else becomes server_error carrying err as its
// hidden cause.
func AsError(err error) *Error {
	var oe *Error
	if errors.As(err, &oe) {
		return oe
	}
	return NewError(ErrServerError, "internal error").WithCause(err)
}
