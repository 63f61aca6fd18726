package token

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/keybridge/sts/internal/federation"
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
	// SubID names the issuer that vouched for the subject when it is not
	// this server (RFC 9493 "sub_id").
	SubID *oauth.SubjectID
	// Claims are computed by the operator's CEL claim rules.
	Claims map[string]any
	// Via names the trusted issuer that vouched, for the audit record.
	Via string
	// Cnf is the binding of the presented token the issued ones derive
	// from, proven by the request; the issued tokens keep it (SPEC §7).
	Cnf *oauth.Confirmation
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
type tokenExchange struct {
	tokens *token.Service
	fed    *Federation
	issuer string
	limits policy.Limits
}

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
		return oauth.NewError(oauth.ErrInvalidRequest, "%s: an id_token is accepted only from a trusted issuer (sts issuer add), and this one's issuer is not trusted", param)
	case oauth.TokenTypeSAML1, oauth.TokenTypeSAML2:
		return oauth.NewError(oauth.ErrInvalidRequest, "%s: SAML assertions are not supported", param)
	}
	return oauth.NewError(oauth.ErrInvalidRequest, "%s %q is not supported; supported: %s, %s, %s", param, typ,
		oauth.TokenTypeAccessToken, oauth.TokenTypeJWT, oauth.TokenTypeRefreshToken)
}

// present validates one presented token against its declared type: a
// trusted issuer's (Federation), or this server's own.
func (g tokenExchange) present(ctx context.Context, c *store.Client, param, raw, typ string, tr *Trace) (*presented, error) {
	switch typ {
	case oauth.TokenTypeSAML1, oauth.TokenTypeSAML2:
		return nil, checkType(param+"_type", typ)
	}
	if typ == oauth.TokenTypeIDToken || typ == oauth.TokenTypeJWT || typ == oauth.TokenTypeAccessToken {
		p, ok, err := g.fed.upstream(ctx, c, g.issuer, param, raw, federation.Check{TokenType: typ, Caller: c.ID}, oauth.ErrInvalidRequest, tr)
		if ok || err != nil {
			if p != nil {
				p.party.MayAct = localMayAct(p.party.MayAct, g.issuer)
			}
			return p, err
		}
	}
	v, err := g.validate(ctx, c, param, raw, typ)
	if errors.Is(err, token.ErrUnknown) && strings.HasPrefix(raw, token.PrefixAccess) {
		// Another Key Bridge STS's opaque token, perhaps.
		p, ok, ierr := g.fed.introspect(ctx, c, param, raw, federation.Check{TokenType: typ}, oauth.ErrInvalidRequest, tr)
		if ok || ierr != nil {
			if p != nil {
				p.party.MayAct = localMayAct(p.party.MayAct, g.issuer)
			}
			return p, ierr
		}
	}
	if err != nil {
		tr.add(param, "refused", "%v", err)
		return nil, err
	}
	tr.add(param, "ok", "a token of this server: sub %q, issued to client %q", v.Subject, v.ClientID)
	tr.claims(param, &v.Claims)
	return &presented{
		party:     policy.Party{Subject: v.Subject, ClientID: v.ClientID, Audience: v.Audience, Act: v.Act, MayAct: localMayAct(v.MayAct, g.issuer)},
		local:     v,
		upSubject: v.Subject,
		expires:   time.Unix(v.Expiry, 0),
	}, nil
}

// localMayAct reads a may_act naming this server's issuer as one naming
// no issuer: the party is this server's, whoever issued the token that
// carries it (RFC 8693 §4.4).
func localMayAct(m *oauth.Actor, self string) *oauth.Actor {
	if m == nil || m.Issuer != self {
		return m
	}
	n := *m
	n.Issuer = ""
	return &n
}

// validate checks one of this server's tokens against its declared type.
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
	tr := r.trace
	subP, err := g.present(ctx, c, "subject_token", r.SubjectToken, r.SubjectTokenType, tr)
	if err != nil {
		return nil, err
	}
	// A sender-constrained token is exchanged only by a request proving
	// its key, and what is issued is bound again (SPEC §7): never a
	// bearer token made of a bound one.
	var cnf *oauth.Confirmation
	if subP.local != nil {
		if cnf, err = r.pos.bound("subject_token", subP.local.Cnf, oauth.ErrInvalidRequest, tr); err != nil {
			return nil, err
		}
	}
	if subP.local != nil {
		// Who may present this server's own tokens; a trusted issuer's
		// tokens are for the clients the operator named (Federation).
		if oe := policy.MayExchange(c, subP.party); oe != nil {
			tr.add("subject_token", "refused", "%s", oe.Description)
			return nil, oe
		}
	}
	var actP *presented
	if r.ActorToken != "" {
		if r.ActorTokenType == oauth.TokenTypeRefreshToken {
			return nil, oauth.NewError(oauth.ErrInvalidRequest, "actor_token_type refresh_token is not accepted")
		}
		if actP, err = g.present(ctx, c, "actor_token", r.ActorToken, r.ActorTokenType, tr); err != nil {
			return nil, err
		}
		// A local actor token has no may_act of its own to honour.
		actP.party.MayAct = nil
		if actP.local != nil {
			actCnf, err := r.pos.bound("actor_token", actP.local.Cnf, oauth.ErrInvalidRequest, tr)
			if err != nil {
				return nil, err
			}
			if cnf == nil {
				cnf = actCnf
			}
		}
	}
	rules, err := evalRules(g.fed.registry(), c, g.issuer, r, subP, actP, oauth.ErrInvalidRequest, tr)
	if err != nil {
		return nil, err
	}
	var actor *policy.Party
	if actP != nil {
		// Whose the actor token may be (the calling client's own, about
		// itself) is a delegation rule: policy.Delegation.
		actor = &actP.party
	}
	act, oe := policy.Delegation(c, subP.party, actor, g.limits.ActDepth())
	if oe != nil {
		tr.add("delegation", "refused", "%s", oe.Description)
		return nil, oe
	}
	tr.delegation(act)
	if subP.up != nil {
		fb := federatedBasis(subP, act, rules)
		fb.Cnf = cnf // a local actor token's binding
		return fb, nil
	}
	sub := subP.local
	b := &Basis{Subject: policy.Subject{
		ID:        sub.Subject,
		Act:       act,
		Scopes:    strings.Fields(sub.Scope),
		ExpiresAt: time.Unix(sub.Expiry, 0),
		// A token of this server about a subject another issuer vouched
		// for (sub_id) is still about an upstream subject: exchanging it
		// again gives no refresh token either (SPEC §3).
		Federated: sub.SubID != nil,
	}, SubID: sub.SubID, Claims: rules.claims, Cnf: cnf}
	if rules.scopes != nil {
		b.Scopes = intersect(b.Scopes, rules.scopes)
	}
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
type refreshGrant struct {
	tokens *token.Service
	limits policy.Limits
}

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
	// A bound refresh token is used only with its key (RFC 9449 §5).
	cnf, err := r.pos.bound("refresh_token", rec.Cnf, oauth.ErrInvalidGrant, r.trace)
	if err != nil {
		return nil, err
	}
	// The client's current rules, not those of the day the refresh token
	// was issued: if impersonation was withdrawn, the client is in act.
	act, oe := policy.Delegation(c, policy.Party{Subject: rec.Subject, ClientID: rec.ClientID, Act: v.Act}, nil, g.limits.ActDepth())
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
		Cnf:        cnf,
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
