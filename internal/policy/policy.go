package policy

import (
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
)

// Subject is what the grant established about whose token is issued.
type Subject struct {
	// ID is the sub of the issued token.
	ID string
	// Act is the act claim of the issued token (nil for none).
	Act *oauth.Actor
	// Scopes bounds the issued scope; nil means no bound beyond the
	// client's allowed scopes (client_credentials).
	Scopes []string
	// ExpiresAt caps the issued token's expiry; zero for no cap.
	ExpiresAt time.Time
	// Audience, when non-nil, fixes the audiences the token may have
	// (a refresh token keeps the audience it was issued for).
	Audience []string
	// Federated: another issuer vouched for the subject. No refresh
	// token is issued for it: the upstream token's own lifetime and
	// revocation bound what is derived from it, and a refresh token
	// would outlive both (SPEC §3 "Trust and policy").
	Federated bool
}

// Request is the part of a token request the policy reads.
type Request struct {
	GrantType string
	// Scope is the requested scope; nil when the parameter was absent.
	Scope []string
	// Targets are the requested audience and resource values.
	Targets []string
	// RequestedTokenType is the trimmed requested_token_type, or "".
	RequestedTokenType string
}

// Limits are the server-wide settings the policy applies.
type Limits struct {
	Issuer          string
	AccessTokenTTL  time.Duration // default lifetime of access tokens
	RefreshTokenTTL time.Duration // default lifetime of refresh tokens
	MaxTokenTTL     time.Duration // no signed token lives longer
	// MaxActDepth caps the depth of act chains on every path (zero:
	// DefaultMaxActDepth).
	MaxActDepth int
}

// ActDepth returns the cap on act chains.
func (l Limits) ActDepth() int {
	if l.MaxActDepth <= 0 {
		return DefaultMaxActDepth
	}
	return l.MaxActDepth
}

// Decision is what will be issued.
type Decision struct {
	// IssuedTokenType is the RFC 8693 token type URN of the issued token.
	IssuedTokenType string
	// Format is store.TokenFormatJWT or store.TokenFormatOpaque.
	Format   string
	Scope    []string
	Audience []string
	IssuedAt time.Time
	Expiry   time.Time
	// ScopeChanged reports that the issued scope differs from the
	// requested one, so the response must name it (RFC 6749 §5.1).
	ScopeChanged bool
	// Refresh asks for a refresh token alongside the access token, expiring
	// at RefreshExpiry.
	Refresh       bool
	RefreshExpiry time.Time
}

// Supported requested_token_type values, as listed in error messages and
// metadata.
var RequestedTokenTypes = []string{oauth.TokenTypeAccessToken, oauth.TokenTypeJWT, oauth.TokenTypeRefreshToken}

// Decide applies the rules to one request.
func Decide(c *store.Client, s Subject, r Request, l Limits, now time.Time) (Decision, *oauth.Error) {
	d := Decision{IssuedAt: now.Truncate(time.Second)}
	if err := decideType(c, s, r, &d); err != nil {
		return d, err
	}
	if err := decideScope(c, s, r, &d); err != nil {
		return d, err
	}
	if err := decideAudience(c, s, r, l, &d); err != nil {
		return d, err
	}
	return d, decideExpiry(c, s, l, &d)
}

func decideType(c *store.Client, s Subject, r Request, d *Decision) *oauth.Error {
	switch r.RequestedTokenType {
	case "", oauth.TokenTypeAccessToken:
		d.IssuedTokenType = oauth.TokenTypeAccessToken
		d.Format = c.TokenFormat
		if d.Format == "" {
			d.Format = store.TokenFormatJWT
		}
		if d.Format == store.TokenFormatJWT && r.RequestedTokenType == "" {
			// The seed's answer: an access token that is a JWT.
			d.IssuedTokenType = oauth.TokenTypeJWT
		}
	case oauth.TokenTypeJWT:
		d.IssuedTokenType, d.Format = oauth.TokenTypeJWT, store.TokenFormatJWT
	case oauth.TokenTypeRefreshToken:
		if s.Federated {
			return oauth.NewError(oauth.ErrInvalidRequest, "a token from another issuer cannot be exchanged for a refresh token")
		}
		if !slices.Contains(c.GrantTypes, oauth.GrantTypeRefreshToken) {
			return oauth.NewError(oauth.ErrInvalidRequest, "this client may not receive refresh tokens")
		}
		d.IssuedTokenType, d.Format = oauth.TokenTypeRefreshToken, store.TokenFormatOpaque
	default:
		return oauth.NewError(oauth.ErrInvalidRequest, "unsupported requested_token_type %q; supported: %s",
			r.RequestedTokenType, strings.Join(RequestedTokenTypes, ", "))
	}
	// RFC 8693 §2.2.1 allows a refresh token beside the issued token; this
	// server gives one on exchange to clients allowed the refresh grant.
	// The refresh grant always rotates its refresh token (RFC 9700
	// §4.14.2), and so does the exchange of a refresh token: the one
	// beside the issued token is then the presented one's successor.
	d.Refresh = !s.Federated && r.GrantType == oauth.GrantTypeRefreshToken ||
		(r.GrantType == oauth.GrantTypeTokenExchange && !s.Federated &&
			d.IssuedTokenType != oauth.TokenTypeRefreshToken &&
			slices.Contains(c.GrantTypes, oauth.GrantTypeRefreshToken))
	return nil
}

func decideScope(c *store.Client, s Subject, r Request, d *Decision) *oauth.Error {
	available := c.Scopes
	if s.Scopes != nil {
		available = intersect(s.Scopes, c.Scopes)
	}
	if r.Scope == nil {
		d.Scope = available
		d.ScopeChanged = len(available) > 0
		return nil
	}
	for _, sc := range r.Scope {
		if !slices.Contains(available, sc) {
			return oauth.NewError(oauth.ErrInvalidScope, "scope %q is not available to this client for this subject", sc)
		}
	}
	d.Scope = r.Scope
	return nil
}

func decideAudience(c *store.Client, s Subject, r Request, l Limits, d *Decision) *oauth.Error {
	for _, t := range r.Targets {
		if !slices.Contains(c.Audiences, t) || (s.Audience != nil && !slices.Contains(s.Audience, t)) {
			return oauth.NewError(oauth.ErrInvalidTarget, "this client may not obtain a token for %q", t)
		}
	}
	switch {
	case len(r.Targets) > 0:
		d.Audience = r.Targets
	case s.Audience != nil:
		// A refresh token's audience, as far as the client may still
		// obtain it: an audience an operator withdrew is not renewed.
		allowed := c.Audiences
		if len(allowed) == 0 {
			allowed = []string{l.Issuer}
		}
		d.Audience = intersect(s.Audience, allowed)
		if len(d.Audience) == 0 {
			return oauth.NewError(oauth.ErrInvalidTarget, "this client may no longer obtain a token for the audience of its refresh token")
		}
	case len(c.Audiences) == 1:
		d.Audience = c.Audiences
	case len(c.Audiences) == 0:
		// A client with no targets gets tokens for this server only, e.g.
		// to present later as subject tokens.
		d.Audience = []string{l.Issuer}
	default:
		return oauth.NewError(oauth.ErrInvalidTarget, "name an audience or resource: this client may obtain tokens for several")
	}
	return nil
}

func decideExpiry(c *store.Client, s Subject, l Limits, d *Decision) *oauth.Error {
	ttl := c.AccessTokenTTL
	if ttl <= 0 {
		ttl = l.AccessTokenTTL
	}
	if l.MaxTokenTTL > 0 && ttl > l.MaxTokenTTL {
		ttl = l.MaxTokenTTL
	}
	rttl := c.RefreshTokenTTL
	if rttl <= 0 {
		rttl = l.RefreshTokenTTL
	}
	if d.IssuedTokenType == oauth.TokenTypeRefreshToken {
		ttl = rttl
	}
	d.Expiry = d.IssuedAt.Add(ttl)
	d.RefreshExpiry = d.IssuedAt.Add(rttl)
	if !s.ExpiresAt.IsZero() {
		// No issued token outlives the one it came from.
		if d.Expiry.After(s.ExpiresAt) {
			d.Expiry = s.ExpiresAt
		}
		if d.RefreshExpiry.After(s.ExpiresAt) {
			d.RefreshExpiry = s.ExpiresAt
		}
	}
	if !d.Expiry.After(d.IssuedAt) {
		return oauth.NewError(oauth.ErrInvalidRequest, "the subject token expires too soon to be exchanged")
	}
	return nil
}

func intersect(a, b []string) []string {
	out := []string{}
	for _, x := range a {
		if slices.Contains(b, x) && !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

// Party is a subject or actor as the delegation rules see it.
type Party struct {
	Subject  string
	ClientID string       // the client a token was issued to
	Audience []string     // the token's aud
	Act      *oauth.Actor // the token's existing act chain
	MayAct   *oauth.Actor // the token's may_act claim
	// Issuer is the trusted issuer that vouched for the token; "" for
	// this server's own tokens.
	Issuer string
}

// DefaultMaxActDepth bounds delegation chains so that a token cannot grow
// without limit through repeated exchanges (--max-act-depth).
const DefaultMaxActDepth = 5

// Addressed reports whether a token issued to the client issuedTo for the
// audiences aud is the business of client c: c is the client it was issued
// to, or one of its audiences names c, by client id or by a resource c
// serves as a resource server (store.Client.Resources). A token is meant
// for its audience (RFC 7519 §4.1.3); nobody else has a reason to hold it.
func Addressed(c *store.Client, issuedTo string, aud []string) bool {
	if issuedTo == c.ID {
		return true
	}
	for _, a := range aud {
		if a == c.ID || slices.Contains(c.Resources, a) {
			return true
		}
	}
	return false
}

// MayExchange decides whether c may present subject as its subject token:
// only a token issued to c or addressed to c (see [Addressed]) — the token
// a caller presented to c as a resource server — unless an operator lets c
// exchange any subject token (store.Client.ExchangeAny). Otherwise any
// client that came by a token, wherever it was meant to go, could turn it
// into one for its own audiences. RFC 8693 §2.2.2: invalid_request.
func MayExchange(c *store.Client, subject Party) *oauth.Error {
	if c.ExchangeAny || Addressed(c, subject.ClientID, subject.Audience) {
		return nil
	}
	return oauth.NewError(oauth.ErrInvalidRequest,
		"subject_token is not addressed to this client: it was issued to another client and its audience names neither this client nor a resource it serves")
}

// MayIntrospect decides whether c is entitled to learn about a token by
// introspection (RFC 7662 §2.1, §4): an access token's own client, its
// audiences (see [Addressed]), and clients an operator marks as resource
// servers of every token (store.Client.IntrospectAny); a refresh token
// only its own client, since nobody else is ever presented one (RFC 6749
// §10.4). Everyone else is answered as for an inactive token (§2.2).
func MayIntrospect(c *store.Client, t Party, refresh bool) bool {
	if refresh {
		return t.ClientID == c.ID
	}
	return c.IntrospectAny || Addressed(c, t.ClientID, t.Audience)
}

// Delegation decides the act claim of an exchanged token (RFC 8693 §1.1,
// §4.1, §4.4):
//   - with an actor token, the actor acts for the subject: act is the
//     actor, with the actor token's own act chain nested inside it and the
//     subject token's act chain inside that (the least recent innermost).
//     Unless c may impersonate, the actor token must be c's own token about
//     c itself (sub and client_id both c): a client names only itself as
//     the actor, never a party whose token it came by;
//   - without one, a client exchanging its own token keeps the chain as is;
//     a client allowed to impersonate gets a token without itself in act;
//     any other client becomes the actor.
//
// When the subject token carries may_act, the acting party (the actor, or
// the client when there is no actor token) must be the one it names; a
// may_act that names an issuer (RFC 8693 §4.4) names a party of that
// issuer. An actor token from a trusted issuer represents the calling
// client only when its subject is mapped to the client's id. No chain
// longer than maxDepth is issued.
func Delegation(c *store.Client, subject Party, actor *Party, maxDepth int) (*oauth.Actor, *oauth.Error) {
	var act *oauth.Actor
	acting := &oauth.Actor{Subject: c.ID, ClientID: c.ID}
	switch {
	case actor != nil:
		if !c.AllowImpersonation {
			if actor.Subject != c.ID {
				return nil, oauth.NewError(oauth.ErrInvalidRequest, "actor_token must represent the calling client: its subject is another party")
			}
			if actor.Issuer == "" && actor.ClientID != c.ID {
				return nil, oauth.NewError(oauth.ErrInvalidRequest, "actor_token must be a token issued to the calling client")
			}
		}
		if 1+actor.Act.Depth()+subject.Act.Depth() > maxDepth {
			return nil, oauth.NewError(oauth.ErrInvalidRequest, "the delegation chain is too long")
		}
		acting = &oauth.Actor{Subject: actor.Subject, Issuer: actor.Issuer}
		if actor.ClientID != "" && actor.ClientID != actor.Subject {
			acting.ClientID = actor.ClientID
		}
		act = &oauth.Actor{Subject: acting.Subject, Issuer: acting.Issuer, ClientID: acting.ClientID, Actor: nestChain(actor.Act, subject.Act)}
	case subject.Subject == c.ID, c.AllowImpersonation:
		act = subject.Act
	default:
		act = &oauth.Actor{Subject: c.ID, ClientID: c.ID, Actor: subject.Act}
	}
	// The party that acted last acting again is not a new hop: a client
	// exchanging a token it already acts in keeps the chain as it is.
	if prev := subject.Act; prev != nil && act != prev && act.Actor == prev && sameParty(prev, act) {
		act = prev
	}
	if m := subject.MayAct; m != nil && subject.Subject != acting.Subject {
		if m.Subject != acting.Subject || m.Issuer != acting.Issuer || (m.ClientID != "" && m.ClientID != clientOf(acting)) {
			return nil, oauth.NewError(oauth.ErrInvalidRequest, "the subject token does not allow this party to act for it (may_act)")
		}
	}
	if act.Depth() > maxDepth {
		return nil, oauth.NewError(oauth.ErrInvalidRequest, "the delegation chain is too long")
	}
	return act, nil
}

// sameParty compares two act layers; a layer without client_id is the
// party's own client (the client_id written only when it differs).
func sameParty(a, b *oauth.Actor) bool {
	return a.Subject == b.Subject && a.Issuer == b.Issuer && clientOf(a) == clientOf(b)
}

func clientOf(a *oauth.Actor) string {
	if a.ClientID == "" {
		return a.Subject
	}
	return a.ClientID
}

// nestChain returns a copy of chain a with chain b nested at its innermost
// end; the tokens' own claims are left untouched.
func nestChain(a, b *oauth.Actor) *oauth.Actor {
	if a == nil {
		return b
	}
	n := *a
	n.Actor = nestChain(a.Actor, b)
	return &n
}

// ValidTarget reports whether a resource value is an absolute URI without a
// fragment (RFC 8693 §2.1, RFC 8707 §2).
func ValidTarget(resource string) bool {
	u, err := url.Parse(resource)
	return err == nil && u.IsAbs() && u.Fragment == "" && !strings.Contains(resource, "#")
}
