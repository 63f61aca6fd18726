// Package revoke is the token revocation endpoint (RFC 7009). A client
// revokes its own tokens: JWTs by recording their jti until they expire,
// opaque tokens by marking their record, and a refresh token together with
// every token of its family (RFC 7009 §2.1).
package revoke

import (
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/keybridge/sts/internal/audit"
	"github.com/keybridge/sts/internal/clientauth"
	"github.com/keybridge/sts/internal/oauthhttp"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/token"
	"github.com/keybridge/sts/internal/tracing"
	"github.com/keybridge/sts/oauth"
)

// Endpoint answers revocation requests.
type Endpoint struct {
	Auth        *clientauth.Authenticator
	Tokens      *token.Service
	Store       store.Tokens
	Revocations store.Revocations
	Audit       *audit.Writer
	Log         *slog.Logger
}

// unsupported are the token types this server never issues and so cannot
// revoke (RFC 7009 §2.2.1), in their short and URN forms. Any other hint,
// known or not, only orders the search, which covers every type anyway
// (RFC 7009 §2.1), so it is not refused.
var unsupported = map[string]bool{
	"id_token": true, "saml1": true, "saml2": true,
	oauth.TokenTypeIDToken: true, oauth.TokenTypeSAML1: true, oauth.TokenTypeSAML2: true,
}

func (e *Endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ev := store.AuditRecord{Action: "token.revoke", RequestID: r.Header.Get("X-Request-Id"), Remote: r.RemoteAddr, TraceID: tracing.TraceID(r.Context())}
	err := e.handle(w, r, &ev)
	ev.Time = e.Tokens.Now()
	ev.Decision = store.DecisionGranted
	if err != nil {
		oe := oauth.AsError(err)
		ev.Decision, ev.Error, ev.Detail = store.DecisionRefused, string(oe.Code), oe.Error()
	}
	if aerr := e.Audit.Record(r.Context(), ev); aerr != nil {
		if r.Context().Err() != nil {
			return // the client left; the record is still written
		}
		if err == nil {
			err = aerr
		}
	}
	if err != nil {
		oauthhttp.WriteError(w, e.Log, err)
		return
	}
	// RFC 7009 §2.2: 200 whether or not the token was valid.
	oauthhttp.NoStore(w.Header())
	w.WriteHeader(http.StatusOK)
}

func (e *Endpoint) handle(w http.ResponseWriter, r *http.Request, ev *store.AuditRecord) error {
	form, c, cred, err := e.Auth.Request(w, r)
	ev.ClientID = cred.ID
	if err != nil {
		return err
	}
	ctx := r.Context()
	raw := form.Get("token")
	if raw == "" {
		return oauth.NewError(oauth.ErrInvalidRequest, "token is required")
	}
	// Key Bridge's Java client sends the hint as token_type; both names
	// are read.
	hint := form.Get("token_type_hint")
	if hint == "" {
		hint = form.Get("token_type")
	}
	if unsupported[oauth.NormalizeTokenType(hint)] {
		return oauth.NewError(oauth.ErrUnsupportedTokenType, "this server issues no %s and cannot revoke one", hint)
	}
	v, err := e.Tokens.Validate(ctx, raw)
	if err != nil {
		if token.IsInvalid(err) {
			return nil // invalid, expired or already revoked: nothing to do
		}
		return err
	}
	ev.JTI, ev.Subject = v.ID, v.Subject
	if v.ClientID != c.ID {
		// RFC 7009 §2.1: the token must have been issued to this client.
		return oauth.NewError(oauth.ErrUnauthorizedClient, "the token was not issued to this client")
	}
	now := e.Tokens.Now()
	switch {
	case v.Format == token.FormatJWT:
		return e.Revocations.RevokeJTI(ctx, v.ID, time.Unix(v.Expiry, 0), now)
	case v.Kind == store.TokenRefresh && v.Record.FamilyID != "":
		return e.Store.RevokeFamily(ctx, v.Record.FamilyID, now)
	default:
		err := e.Store.RevokeToken(ctx, v.Record.Hash, now)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	}
}
