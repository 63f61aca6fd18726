package resource

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/keybridge/sts/oauth"
)

type claimsKey struct{}

// ClaimsFromContext returns the claims that [Verifier.Middleware] verified
// for the request whose context is ctx.
func ClaimsFromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok
}

// Middleware returns a handler that serves a request with next only when it
// carries a valid bearer token (RFC 6750 §2.1, in the Authorization header)
// whose scope holds every one of requiredScopes. next finds the claims with
// [ClaimsFromContext].
//
// Refusals follow RFC 6750 §3 (https://www.rfc-editor.org/rfc/rfc6750#section-3):
//   - no token: 401 and WWW-Authenticate: Bearer, without an error code
//     (§3.1);
//   - a malformed Authorization header: 400 and error="invalid_request";
//   - an invalid, expired or revoked token, or one for another audience:
//     401 and error="invalid_token";
//   - a valid token without a required scope: 403 and
//     error="insufficient_scope" with the scope attribute.
//
// When the token cannot be checked because the issuer's keys or its
// introspection endpoint are unreachable, the answer is 503, so that the
// caller does not throw away a token that may be valid.
func (v *Verifier) Middleware(next http.Handler, requiredScopes ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := bearerToken(r)
		if !ok {
			v.challenge(w, http.StatusBadRequest, oauth.ErrInvalidRequest, "malformed Authorization header", nil)
			return
		}
		if tok == "" {
			v.challenge(w, http.StatusUnauthorized, "", "", nil)
			return
		}
		c, err := v.Verify(r.Context(), tok)
		if errors.Is(err, ErrUnavailable) {
			v.log.Warn("token not verified", "err", err)
			w.Header().Set("Retry-After", "5")
			http.Error(w, "token verification temporarily unavailable", http.StatusServiceUnavailable)
			return
		}
		if err != nil {
			v.log.Debug("token refused", "err", err)
			v.challenge(w, http.StatusUnauthorized, oauth.ErrInvalidToken, describe(err), nil)
			return
		}
		for _, s := range requiredScopes {
			if !c.HasScope(s) {
				v.log.Debug("insufficient scope", "jti", c.ID, "need", s)
				v.challenge(w, http.StatusForbidden, oauth.ErrInsufficientScope,
					"the token lacks a required scope", requiredScopes)
				return
			}
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), claimsKey{}, c)))
	})
}

// bearerToken extracts the token of an "Authorization: Bearer" header. It
// returns "", true when the request has no Authorization header, and
// false when the header is present but unusable.
func bearerToken(r *http.Request) (string, bool) {
	hs := r.Header.Values("Authorization")
	if len(hs) == 0 {
		return "", true
	}
	if len(hs) > 1 {
		return "", false
	}
	scheme, tok, ok := strings.Cut(hs[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		// Another scheme (Basic, DPoP, ...) carries no bearer token: it is
		// treated like no credentials at all, with a Bearer challenge.
		return "", ok
	}
	tok = strings.TrimLeft(tok, " ")
	if !isToken68(tok) {
		return "", false
	}
	return tok, true
}

// isToken68 checks the b64token syntax of RFC 6750 §2.1.
func isToken68(s string) bool {
	if s == "" {
		return false
	}
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/') {
			break
		}
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

// challenge writes a refusal with its WWW-Authenticate header. Every
// description is a constant of this package: nothing from the request is
// echoed into a header.
func (v *Verifier) challenge(w http.ResponseWriter, status int, code oauth.ErrorCode, desc string, scopes []string) {
	var b strings.Builder
	b.WriteString("Bearer")
	sep := " "
	attr := func(name, val string) {
		b.WriteString(sep + name + `="` + val + `"`)
		sep = ", "
	}
	if v.cfg.Realm != "" {
		attr("realm", quoteSafe(v.cfg.Realm))
	}
	if code != "" {
		attr("error", string(code))
		if desc != "" {
			attr("error_description", desc)
		}
	}
	if len(scopes) > 0 {
		attr("scope", quoteSafe(strings.Join(scopes, " ")))
	}
	h := w.Header()
	h.Set("WWW-Authenticate", b.String())
	h.Set("Cache-Control", "no-store")
	if code == "" {
		w.WriteHeader(status)
		return
	}
	h.Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(oauth.Error{Code: code, Description: desc})
}

// quoteSafe drops the characters a quoted-string cannot hold unescaped.
func quoteSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < 0x20 || r > 0x7e {
			return -1
		}
		return r
	}, s)
}

// describe is the error_description of a refusal: the text of the
// package's error the cause wraps (RFC 6750 §3: "human-readable ... not
// meant to be displayed to end users").
func describe(err error) string {
	for _, e := range []error{ErrMalformed, ErrAlgorithm, ErrType, ErrUnknownKey, ErrSignature,
		ErrMissingClaim, ErrIssuer, ErrAudience, ErrExpired, ErrNotYetValid, ErrInactive} {
		if errors.Is(err, e) {
			return strings.TrimPrefix(e.Error(), "resource: ")
		}
	}
	return "invalid token"
}
