package token

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/keybridge/sts/internal/policy"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/token"
	"github.com/keybridge/sts/oauth"
)

// Basis is what a grant establishes: whose token is issued and within which
// bounds, plus what the pipeline must do for the grant.
type Basis struct {
	policy.Subject
	// RotateFrom is the hash of a refresh token the issuance consumes.
	RotateFrom []byte
	// FamilyID of the refresh family the issued tokens join, if any.
	FamilyID string
}

// Grant is one grant type's own part of the pipeline.
type Grant interface {
	// Resolve validates the grant-specific parameters and returns the basis
	// of the issued token, or an *oauth.Error.
	Resolve(ctx context.Context, c *store.Client, r *Request) (*Basis, error)
}

// clientCredentials: the client obtains a token for itself (RFC 6749 §4.4).
type clientCredentials struct{}

func (clientCredentials) Resolve(_ context.Context, c *store.Client, _ *Request) (*Basis, error) {
	return &Basis{Subject: policy.Subject{ID: c.ID}}, nil
}

// tokenExchange is RFC 8693 §2.
type tokenExchange struct{ tokens *token.Service }

// invalidToken is the answer for a subject or actor token that is invalid
// or unacceptable (RFC 8693 §2.2.2); the reason is a hidden cause.
func invalidToken(param string, cause error) error {
	if cause != nil && !token.IsInvalid(cause) {
		return cause // the store failed: a server error, not a bad token
	}
	return oauth.NewError(oauth.ErrInvalidRequest, "%s is invalid, expired or revoked", param).WithCause(cause)
}

// checkType refuses token types this server cannot accept, with a message
// that says why.
func checkType(param, typ string) *oauth.Error {
	switch typ {
	case oauth.TokenTypeAccessToken, oauth.TokenTypeJWT, oauth.TokenTypeRefreshToken:
		return nil
	case oauth.TokenTypeIDToken:
		return oauth.NewError(oauth.ErrInvalidRequest, "%s: id_token is accepted only from a trusted OpenID Connect issuer, and none is configured", param)
	case oauth.TokenTypeSAML1, oauth.TokenTypeSAML2:
		return oauth.NewError(oauth.ErrInvalidRequest, "%s: SAML assertions are not supported", param)
	}
	return oauth.NewError(oauth.ErrInvalidRequest, "%s %q is not supported; supported: %s, %s, %s", param, typ,
		oauth.TokenTypeAccessToken, oauth.TokenTypeJWT, oauth.TokenTypeRefreshToken)
}

// validate checks one presented token against its declared type.
func (g tokenExchange) validate(ctx context.Context, c *store.Client, param, raw, typ string) (*token.Validated, error) {
	if err := checkType(param+"_type", typ); err != nil {
		return nil, err
	}
	v, err := g.tokens.Validate(ctx, raw)
	if err != nil {
		return nil, invalidToken(param, err)
	}
	switch typ {
	case oauth.TokenTypeJWT:
		if v.Format != token.FormatJWT {
			return nil, invalidToken(param, fmt.Errorf("%w: declared jwt, is opaque", token.ErrMalformed))
		}
	case oauth.TokenTypeAccessToken:
		if v.Kind != store.TokenAccess {
			return nil, invalidToken(param, fmt.Errorf("%w: declared access_token, is a refresh token", token.ErrMalformed))
		}
	case oauth.TokenTypeRefreshToken:
		// Using a refresh token, by any path, needs the refresh grant.
		if !slices.Contains(c.GrantTypes, oauth.GrantTypeRefreshToken) {
			return nil, oauth.NewError(oauth.ErrUnauthorizedClient, "this client may not use refresh tokens")
		}
		// A refresh token is bound to the client it was issued to
		// (RFC 6749 §10.4).
		if v.Kind != store.TokenRefresh || v.ClientID != c.ID {
			return nil, invalidToken(param, fmt.Errorf("%w: not a refresh token of this client", token.ErrUnknown))
		}
	}
	if len(v.Cnf) > 0 {
		// Dropping a sender constraint would turn a bound token into a
		// bearer one; refuse instead (SPEC §7).
		return nil, oauth.NewError(oauth.ErrInvalidRequest, "%s is sender-constrained (cnf) and cannot be exchanged", param)
	}
	return v, nil
}

func (g tokenExchange) Resolve(ctx context.Context, c *store.Client, r *Request) (*Basis, error) {
	switch {
	case r.SubjectToken == "":
		return nil, oauth.NewError(oauth.ErrInvalidRequest, "subject_token is required")
	case r.SubjectTokenType == "":
		return nil, oauth.NewError(oauth.ErrInvalidRequest, "subject_token_type is required")
	case r.ActorToken != "" && r.ActorTokenType == "":
		return nil, oauth.NewError(oauth.ErrInvalidRequest, "actor_token_type is required with actor_token")
	case r.ActorToken == "" && r.ActorTokenType != "":
		return nil, oauth.NewError(oauth.ErrInvalidRequest, "actor_token_type must not be sent without actor_token")
	}
	sub, err := g.validate(ctx, c, "subject_token", r.SubjectToken, r.SubjectTokenType)
	if err != nil {
		return nil, err
	}
	subject := policy.Party{Subject: sub.Subject, ClientID: sub.ClientID, Audience: sub.Audience, Act: sub.Act, MayAct: sub.MayAct}
	if oe := policy.MayExchange(c, subject); oe != nil {
		return nil, oe
	}
	var actor *policy.Party
	if r.ActorToken != "" {
		if r.ActorTokenType == oauth.TokenTypeRefreshToken {
			return nil, oauth.NewError(oauth.ErrInvalidRequest, "actor_token_type refresh_token is not accepted")
		}
		a, err := g.validate(ctx, c, "actor_token", r.ActorToken, r.ActorTokenType)
		if err != nil {
			return nil, err
		}
		// Whose the actor token may be (the calling client's own, about
		// itself) is a delegation rule: policy.Delegation.
		actor = &policy.Party{Subject: a.Subject, ClientID: a.ClientID, Audience: a.Audience, Act: a.Act}
	}
	act, oe := policy.Delegation(c, subject, actor)
	if oe != nil {
		return nil, oe
	}
	b := &Basis{Subject: policy.Subject{
		ID:        sub.Subject,
		Act:       act,
		Scopes:    strings.Fields(sub.Scope),
		ExpiresAt: time.Unix(sub.Expiry, 0),
	}}
	// What is derived from a token of a refresh family (a refresh token,
	// or an access token of either format issued in the family) joins the
	// family, so that revoking the family (RFC 7009 §2.1), or replaying
	// one of its refresh tokens (RFC 9700 §4.14.2), revokes it too. It
	// never outlives the token it came from (policy), so the family's
	// revocation outlasts it. The family is the subject token's: the
	// issued token is the subject's, and holds one family. Another client
	// deriving from it starts a child family: revoking the parent revokes
	// the child, but the child's client revoking (or replaying) its own
	// refresh token does not revoke the parent's (review of issue 8).
	b.FamilyID = sub.FamilyID
	if sub.ClientID != c.ID {
		b.FamilyID = token.ChildFamily(sub.FamilyID)
	}
	if sub.Kind == store.TokenRefresh {
		// A token made from a refresh token keeps its audience (SPEC §7).
		b.Audience = sub.Record.Audience
		// A refresh token presented by any path is spent: exchanged, for
		// whatever token type, it is consumed, its successor in the
		// family is issued (as the issued token, or beside it), and
		// presenting it again is a replay (RFC 9700 §4.14.2).
		b.RotateFrom = sub.Record.Hash
	}
	return b, nil
}

// refreshGrant is RFC 6749 §6, with rotation: each refresh token is used
// once; its replay revokes the family.
type refreshGrant struct{ tokens *token.Service }

func (g refreshGrant) Resolve(ctx context.Context, c *store.Client, r *Request) (*Basis, error) {
	if r.RefreshToken == "" {
		return nil, oauth.NewError(oauth.ErrInvalidRequest, "refresh_token is required")
	}
	// A used refresh token presented again is refused, and Validate
	// revokes its family (RFC 9700 §4.14.2).
	v, err := g.tokens.Validate(ctx, r.RefreshToken)
	if err == nil && (v.Kind != store.TokenRefresh || v.ClientID != c.ID) {
		err = token.ErrUnknown
	}
	if err != nil {
		if !token.IsInvalid(err) {
			return nil, err
		}
		return nil, oauth.NewError(oauth.ErrInvalidGrant, "the refresh token is invalid, expired or revoked").WithCause(err)
	}
	rec := v.Record
	// The client's current rules, not those of the day the refresh token
	// was issued: if impersonation was withdrawn, the client is in act.
	act, oe := policy.Delegation(c, policy.Party{Subject: rec.Subject, ClientID: rec.ClientID, Act: v.Act}, nil)
	if oe != nil {
		return nil, oe
	}
	b := &Basis{
		Subject: policy.Subject{
			ID:        rec.Subject,
			Act:       act,
			Scopes:    strings.Fields(rec.Scope),
			ExpiresAt: rec.ExpiresAt,
			Audience:  rec.Audience,
		},
		RotateFrom: rec.Hash,
		FamilyID:   rec.FamilyID,
	}
	if b.Audience == nil {
		b.Audience = []string{}
	}
	return b, nil
}

func actorJSON(a *oauth.Actor) []byte {
	if a == nil {
		return nil
	}
	b, _ := json.Marshal(a)
	return b
}
