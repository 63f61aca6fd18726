package resource

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/keybridge/sts/dpop"
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
// carries a valid access token (RFC 6750 §2.1, in the Authorization
// header), with proof of its key when it is sender-constrained (see
// [Verifier.VerifyRequest]), whose scope holds every one of requiredScopes. next finds the claims with
// [ClaimsFromContext].
//
// Refusals follow RFC 6750 §3 (https://www.rfc-editor.org/rfc/rfc6750#section-3):
//   - no token: 401 and WWW-Authenticate: Bearer, without an error code
//     (§3.1);
//   - a malformed Authorization header: 400 and error="invalid_request";
//   - an invalid, expired or revoked token, or one for another audience:
//     401 and error="invalid_token";
//   - a valid token without a required scope: 403 and
//     error="insufficient_scope" with the scope attribute;
//   - a certificate-bound token without its certificate: 401 and Bearer
//     error="invalid_token" (RFC 8705 §3);
//   - with the DPoP scheme, or a DPoP-bound token sent as Bearer: 401 and
//     WWW-Authenticate: DPoP with error="invalid_token",
//     "invalid_dpop_proof" or "use_dpop_nonce" (with a DPoP-Nonce header)
//     and the accepted algs (RFC 9449 §7.1).
//
// A request without a token gets both challenges, Bearer and DPoP.
//
// When the token cannot be checked because the issuer's keys or its
// introspection endpoint are unreachable, the answer is 503, so that the
// caller does not throw away a token that may be valid.
func (v *Verifier) Middleware(next http.Handler, requiredScopes ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, _, _ := authorization(r)
		c, err := v.VerifyRequest(r)
		switch {
		case err == nil:
		case errors.Is(err, errMalformedAuth):
			v.challenge(w, http.StatusBadRequest, oauth.ErrInvalidRequest, "malformed Authorization header", nil)
			return
		case errors.Is(err, errNoToken):
			v.challenge(w, http.StatusUnauthorized, "", "", nil)
			return
		case errors.Is(err, ErrUnavailable):
			v.log.Warn("token not verified", "err", err)
			w.Header().Set("Retry-After", "5")
			http.Error(w, "token verification temporarily unavailable", http.StatusServiceUnavailable)
			return
		case errors.Is(err, ErrDPoPNonce):
			v.log.Debug("DPoP nonce required", "err", err)
			v.challengeDPoP(w, dpop.CodeUseNonce, describeBinding(err))
			return
		case errors.Is(err, ErrDPoPProof):
			v.log.Debug("DPoP proof refused", "err", err)
			v.challengeDPoP(w, dpop.CodeInvalidProof, describeBinding(err))
			return
		case scheme == schemeDPoP || errors.Is(err, ErrBound):
			// A DPoP request, or a DPoP-bound token sent as Bearer: the
			// DPoP scheme is the one to retry with (RFC 9449 §7.1, §7.2).
			v.log.Debug("token refused", "err", err)
			v.challengeDPoP(w, string(oauth.ErrInvalidToken), describeBinding(err))
			return
		default:
			v.log.Debug("token refused", "err", err)
			v.challenge(w, http.StatusUnauthorized, oauth.ErrInvalidToken, describeBinding(err), nil)
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
	if code == "" && status == http.StatusUnauthorized {
		// No token: both schemes are offered (RFC 9449 §7.1).
		h.Add("WWW-Authenticate", `DPoP algs="`+v.bind.algs+`"`)
	}
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
