// Package introspect is the token introspection endpoint (RFC 7662): an
// authenticated client entitled to a token (policy.MayIntrospect) asks
// whether it is active and learns its claims, including act, scope and
// client_id; any other client is told it is inactive.
package introspect

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"

	"github.com/keybridge/sts/internal/audit"
	"github.com/keybridge/sts/internal/clientauth"
	"github.com/keybridge/sts/internal/oauthhttp"
	"github.com/keybridge/sts/internal/policy"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/token"
	"github.com/keybridge/sts/internal/tracing"
	"github.com/keybridge/sts/oauth"
)

// Endpoint answers introspection requests.
type Endpoint struct {
	Auth   *clientauth.Authenticator
	Tokens *token.Service
	Log    *slog.Logger
	Audit  *audit.Writer
}

func (e *Endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	form, c, cred, err := e.Auth.Request(w, r)
	if err != nil {
		// Every request refused before its client is known is audited
		// (coalesced when repeated).
		oe := oauth.AsError(err)
		_ = e.Audit.Record(r.Context(), store.AuditRecord{
			Time: e.Tokens.Now(), Action: "token.introspect", Decision: store.DecisionRefused,
			ClientID: cred.ID, Error: string(oe.Code), Detail: oe.Error(), RequestID: r.Header.Get("X-Request-Id"), Remote: r.RemoteAddr,
			TraceID: tracing.TraceID(r.Context()),
		})
		oauthhttp.WriteError(w, e.Log, err)
		return
	}
	raw := form.Get("token")
	if raw == "" {
		oauthhttp.WriteError(w, e.Log, oauth.NewError(oauth.ErrInvalidRequest, "token is required"))
		return
	}
	// The hint (token_type_hint) is only an optimisation (RFC 7662 §2.1);
	// every token is looked up the same way here, so it is not needed.
	v, err := e.Tokens.Validate(r.Context(), raw)
	if err != nil {
		if !token.IsInvalid(err) {
			oauthhttp.WriteError(w, e.Log, err)
			return
		}
		// RFC 7662 §2.2: an invalid, expired or revoked token is inactive,
		// with no other member.
		oauthhttp.WriteJSON(w, http.StatusOK, oauth.IntrospectionResponse{Active: false})
		return
	}
	t := policy.Party{Subject: v.Subject, ClientID: v.ClientID, Audience: v.Audience}
	if !policy.MayIntrospect(c, t, v.Kind == store.TokenRefresh) {
		// RFC 7662 §2.2, §4: a client not entitled to the token (neither
		// its client, nor an audience, nor a resource server an operator
		// trusts with every token) learns nothing, not even that it is
		// active. The refusal is audited; the answer is the same as for
		// an invalid token.
		_ = e.Audit.Record(r.Context(), store.AuditRecord{
			Time: e.Tokens.Now(), Action: "token.introspect", Decision: store.DecisionRefused,
			ClientID: c.ID, JTI: v.ID, Detail: "not entitled to this token (neither its client nor its audience): answered inactive",
			RequestID: r.Header.Get("X-Request-Id"), Remote: r.RemoteAddr, TraceID: tracing.TraceID(r.Context()),
		})
		oauthhttp.WriteJSON(w, http.StatusOK, oauth.IntrospectionResponse{Active: false})
		return
	}
	if len(v.Cnf) > 0 && confirmation(v.Cnf) == nil {
		// A binding the resource server could not be told of must not
		// make a bearer token of a bound one.
		oauthhttp.WriteJSON(w, http.StatusOK, oauth.IntrospectionResponse{Active: false})
		return
	}
	oauthhttp.WriteJSON(w, http.StatusOK, Response(v))
}

// Response is the introspection answer for a valid token.
func Response(v *token.Validated) oauth.IntrospectionResponse {
	resp := oauth.IntrospectionResponse{
		Active:    true,
		Scope:     v.Scope,
		ClientID:  v.ClientID,
		TokenType: oauth.TokenTypeBearer,
		Exp:       v.Expiry,
		Iat:       v.IssuedAt,
		Nbf:       v.NotBefore,
		Sub:       v.Subject,
		Aud:       v.Audience,
		Iss:       v.Issuer,
		Jti:       v.ID,
		Act:       v.Act,
		MayAct:    v.MayAct,
	}
	if cnf := confirmation(v.Cnf); cnf != nil {
		// RFC 8705 §3.2, RFC 9449 §6.2: the binding, for the resource
		// server to check; a DPoP-bound access token is of type DPoP.
		resp.Cnf = cnf
		if cnf.JKT != "" && v.Kind == store.TokenAccess {
			resp.TokenType = oauth.TokenTypeDPoP
		}
	}
	switch {
	case v.Kind == store.TokenRefresh:
		resp.TokenType = oauth.TokenTypeNA
		resp.IssuedTokenType = oauth.TokenTypeRefreshToken
	case v.Format == token.FormatJWT:
		resp.IssuedTokenType = oauth.TokenTypeJWT
	default:
		resp.IssuedTokenType = oauth.TokenTypeAccessToken
	}
	resp.Scope = strings.TrimSpace(resp.Scope)
	return resp
}

// confirmation reads a token's cnf; nil for none. This server writes only
// jkt and x5t#S256, so anything else is not its own and is left out.
func confirmation(raw []byte) *oauth.Confirmation {
	if len(raw) == 0 {
		return nil
	}
	var c oauth.Confirmation
	if json.Unmarshal(raw, &c) != nil || c.IsZero() {
		return nil
	}
	return &c
}
