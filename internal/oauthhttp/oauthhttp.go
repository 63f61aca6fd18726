// Package oauthhttp reads OAuth form requests and writes OAuth JSON answers:
// the one place where request bodies are size-limited and parsed, where
// repeated parameters are refused, and where errors become HTTP responses
// (RFC 6749 §5.2) with the no-store headers every token-bearing answer needs.
package oauthhttp

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
)

// MaxBodyBytes bounds a form request body.
const MaxBodyBytes = 64 << 10

// Realm is the realm of WWW-Authenticate challenges.
const Realm = "Key Bridge STS"

// singleValued are the parameters this server reads that must not repeat
// (RFC 6749 §3.2: "Request and response parameters MUST NOT be included
// more than once"). resource and audience may repeat (RFC 8693 §2.1);
// unknown parameters are ignored, repeated or not (RFC 6749 §3.1).
var singleValued = map[string]bool{
	"grant_type": true, "scope": true, "client_id": true, "client_secret": true,
	"subject_token": true, "subject_token_type": true, "actor_token": true,
	"actor_token_type": true, "requested_token_type": true, "refresh_token": true,
	"token": true, "token_type_hint": true, "token_type": true,
}

// SingleValued reports whether parameter name may appear only once.
func SingleValued(name string) bool { return singleValued[name] }

// ParseForm checks that r is a POST of application/x-www-form-urlencoded no
// larger than MaxBodyBytes and parses its body. A repeated OAuth parameter
// is invalid_request, and so is a name or value that is not UTF-8 text or
// holds NUL (see [store.ValidText]). Parameters sent without a value are
// removed, as if omitted (RFC 6749 §3.1). Query-string parameters are
// never read.
func ParseForm(w http.ResponseWriter, r *http.Request) (url.Values, *oauth.Error) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return nil, oauth.NewError(oauth.ErrInvalidRequest, "the method must be POST").WithStatus(http.StatusMethodNotAllowed)
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, oauth.NewError(oauth.ErrInvalidRequest, "the body must be application/x-www-form-urlencoded")
	}
	if r.ContentLength > MaxBodyBytes {
		return nil, oauth.NewError(oauth.ErrInvalidRequest, "the request body is too large").WithStatus(http.StatusRequestEntityTooLarge)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, oauth.NewError(oauth.ErrInvalidRequest, "the request body is too large").WithStatus(http.StatusRequestEntityTooLarge)
		}
		return nil, oauth.NewError(oauth.ErrInvalidRequest, "cannot read the request body").WithCause(err)
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, oauth.NewError(oauth.ErrInvalidRequest, "the body is not valid form encoding").WithCause(err)
	}
	// RFC 6749 Appendix A: every parameter is Unicode text; a byte that
	// is not UTF-8, or NUL, names nothing stored (PostgreSQL refuses it
	// even in a lookup), so the request is malformed.
	if k, bad := store.NonText(form); bad {
		if !store.ValidText(k) {
			return nil, oauth.NewError(oauth.ErrInvalidRequest, "a parameter name is not UTF-8 text, or holds NUL")
		}
		return nil, oauth.NewError(oauth.ErrInvalidRequest, "parameter %s is not UTF-8 text, or holds NUL", k)
	}
	for k, vs := range form {
		kept := vs[:0]
		for _, v := range vs {
			if v != "" {
				kept = append(kept, v)
			}
		}
		switch {
		case len(kept) == 0:
			delete(form, k)
		case len(kept) > 1 && singleValued[k]:
			return nil, oauth.NewError(oauth.ErrInvalidRequest, "parameter %s is repeated", k)
		default:
			form[k] = kept
		}
	}
	return form, nil
}

// NoStore sets the headers that keep a response out of every cache
// (RFC 6749 §5.1, RFC 8693 §2.2.1).
func NoStore(h http.Header) {
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
}

// WriteJSON writes v as a JSON response with the no-store headers.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"server_error"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	NoStore(h)
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// WriteError renders err as an OAuth error response: an *oauth.Error as it
// is, anything else as server_error with its cause logged, never sent.
// invalid_client carries a Basic challenge (RFC 6749 §5.2), invalid_token a
// Bearer challenge with the error code (RFC 6750 §3). Every refusal is
// logged at debug level with the cause the client is not told (which part
// of a credential was wrong, why a token is invalid), under the request id
// the server's middleware put on the response.
func WriteError(w http.ResponseWriter, log *slog.Logger, err error) {
	oe := oauth.AsError(err)
	status := oe.HTTPStatus()
	if n, ok := w.(ErrorNoter); ok {
		n.NoteOAuthError(oe.Code)
	}
	if log != nil {
		if status >= 500 {
			log.Error("request failed", "err", err, "request_id", w.Header().Get("X-Request-Id"))
		} else if log.Enabled(context.Background(), slog.LevelDebug) {
			attrs := []any{"error", string(oe.Code), "description", oe.Description, "status", status, "request_id", w.Header().Get("X-Request-Id")}
			if cause := errors.Unwrap(oe); cause != nil {
				attrs = append(attrs, "cause", cause.Error())
			}
			log.Debug("request refused", attrs...)
		}
	}
	switch oe.Code {
	case oauth.ErrInvalidClient:
		w.Header().Set("WWW-Authenticate", `Basic realm="`+Realm+`"`)
	case oauth.ErrInvalidToken:
		w.Header().Set("WWW-Authenticate", BearerChallenge(oe.Code, oe.Description))
	}
	WriteJSON(w, status, oe)
}

// ErrorNoter is a ResponseWriter that wants to know the OAuth error code
// of the answer written to it (the server's metrics middleware).
type ErrorNoter interface {
	NoteOAuthError(code oauth.ErrorCode)
}

// BearerChallenge is the WWW-Authenticate value of a refused bearer token
// (RFC 6750 §3): the realm, and the error code and description when code is
// not empty. RFC 6750 §3 allows only %x20-21 / %x23-5B / %x5D-7E in
// error_description and has no escaping, so other characters are dropped
// rather than escaped.
func BearerChallenge(code oauth.ErrorCode, description string) string {
	v := `Bearer realm="` + Realm + `"`
	if code == "" {
		return v
	}
	v += `, error="` + challengeSafe(string(code)) + `"`
	if d := challengeSafe(description); d != "" {
		v += `, error_description="` + d + `"`
	}
	return v
}

// challengeSafe keeps the characters RFC 6750 §3 allows in a quoted
// attribute value.
func challengeSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < 0x20 || r > 0x7e {
			return -1
		}
		return r
	}, s)
}
