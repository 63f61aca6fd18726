package token

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keybridge/sts/internal/celpolicy"
	"github.com/keybridge/sts/internal/federation"
	"github.com/keybridge/sts/internal/policy"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/token"
	"github.com/keybridge/sts/internal/trust"
	"github.com/keybridge/sts/oauth"
)

// Federation lets the token endpoint accept the tokens of trusted issuers
// as subject and actor tokens (RFC 8693) and as JWT bearer assertions
// (RFC 7523), and apply the operator's CEL rules. Without it the endpoint
// accepts only its own tokens.
type Federation struct {
	Registry *trust.Registry
	Fetcher  *federation.Fetcher
	// JTIs makes each JWT bearer assertion single-use across instances.
	JTIs store.UsedJTIs
	// AssertionAudiences: a JWT bearer assertion must name one of them,
	// this server's issuer or its token endpoint (RFC 7523 §3).
	AssertionAudiences []string
}

func (f *Federation) registry() *trust.Registry {
	if f == nil {
		return nil
	}
	return f.Registry
}

// presented is a validated subject or actor token, this server's own or a
// trusted issuer's.
type presented struct {
	party policy.Party
	// local is this server's token; nil for an upstream token.
	local *token.Validated
	// up and issuer are the upstream token and the issuer that vouched
	// for it; nil for this server's tokens.
	up     *federation.Verified
	issuer *trust.Issuer
	// upSubject is the upstream token's own sub.
	upSubject string
	expires   time.Time
	// claims is what CEL rules see of the token (built on demand for
	// local tokens).
	claims map[string]any
}

// issuerURL is the issuer that vouched for the token, for the rules.
func (p *presented) issuerURL(self string) string {
	if p == nil {
		return ""
	}
	if p.up != nil {
		return p.up.Issuer.Issuer
	}
	return self
}

// ruleClaims returns the claims the CEL rules see.
func (p *presented) ruleClaims() map[string]any {
	if p == nil {
		return nil
	}
	if p.claims == nil && p.local != nil {
		b, _ := json.Marshal(&p.local.Claims)
		_ = json.Unmarshal(b, &p.claims)
	}
	return p.claims
}

// federationError turns a verification failure into the OAuth error of
// the grant (code): the reason is shown, the cause kept for the audit.
func federationError(code oauth.ErrorCode, param string, err error) error {
	var fe *federation.Error
	if errors.As(err, &fe) {
		return oauth.NewError(code, "%s: %s", param, fe.Reason).WithCause(fe.Cause)
	}
	return err // not a verdict on the token: a server error
}

// upstream validates raw as a token of a trusted issuer, when it is one:
// a JWT whose iss names a trusted issuer, or an opaque token that an
// issuer the client may present introspects as active. ok is false when
// the token is for this server to validate.
func (f *Federation) upstream(ctx context.Context, c *store.Client, self, param, raw string, check federation.Check, code oauth.ErrorCode, tr *Trace) (p *presented, ok bool, err error) {
	if f == nil {
		return nil, false, nil
	}
	iss, isJWT := federation.PeekIssuer(raw)
	switch {
	case isJWT && iss == self:
		return nil, false, nil
	case isJWT:
		is := f.Registry.LookupFresh(ctx, iss)
		if is == nil {
			tr.add(param, "refused", "issuer %q is not trusted", clip(iss))
			return nil, true, oauth.NewError(code, "%s: issuer %q is not trusted by this server", param, clip(iss))
		}
		if err := f.usable(c, is, param, code, tr); err != nil {
			return nil, true, err
		}
		v, err := f.Fetcher.VerifyJWT(ctx, is.TrustedIssuer, raw, check)
		if err != nil {
			tr.add(param, "refused", "%v", err)
			return nil, true, federationError(code, param, err)
		}
		src := v.KeySource
		if src == federation.KeySourceStatic {
			src = "the issuer's stored JWKS"
		}
		tr.add(param, "ok", "verified as a token of trusted issuer %q (%s) with key %q (%s) from %s",
			is.Name, is.Issuer, v.KeyID, v.Algorithm, src)
		tr.claims(param, v.Claims)
		if err := unbound(v, param, code, tr); err != nil {
			return nil, true, err
		}
		return newPresented(is, v), true, nil
	case strings.HasPrefix(raw, token.PrefixAccess), strings.HasPrefix(raw, token.PrefixRefresh):
		// This server's prefix; another Key Bridge STS uses it too, so
		// introspect only when this server does not know the token.
		return nil, false, nil
	}
	return f.introspect(ctx, c, param, raw, check, code, tr)
}

// introspect asks the issuers whose tokens this client may present
// (RFC 7662), in name order, about an opaque access token; each answer is
// cached by the token's hash. ok is false when no issuer could be asked.
func (f *Federation) introspect(ctx context.Context, c *store.Client, param, raw string, check federation.Check, code oauth.ErrorCode, tr *Trace) (p *presented, ok bool, err error) {
	if f == nil || check.TokenType != oauth.TokenTypeAccessToken {
		return nil, false, nil
	}
	// An opaque token names no issuer, and sending it to an issuer that
	// did not issue it hands a live bearer token to a third party (which
	// could replay it where it is valid). So it is sent only when exactly
	// one trusted issuer could have issued it: the one introspecting
	// issuer whose access tokens this client may present.
	var cands []*trust.Issuer
	for _, is := range f.Registry.Introspectors(c.ID) {
		if hasType(is, check.TokenType) {
			cands = append(cands, is)
		}
	}
	switch len(cands) {
	case 0:
		return nil, false, nil
	case 1:
	default:
		names := make([]string, len(cands))
		for i, is := range cands {
			names[i] = is.Name
		}
		tr.add(param, "refused", "an opaque token could be of any of the trusted issuers %s; it is sent to none", strings.Join(names, ", "))
		return nil, true, oauth.NewError(code, "%s: an opaque token is accepted only when one trusted issuer with introspection serves this client; %d do", param, len(cands))
	}
	is := cands[0]
	v, err := f.Fetcher.Introspect(ctx, is.TrustedIssuer, raw)
	if err != nil {
		tr.add(param, "refused", "issuer %q: %v", is.Name, err)
		return nil, true, federationError(code, param, err)
	}
	tr.add(param, "ok", "introspected as active by trusted issuer %q at %s", is.Name, is.IntrospectionEndpoint)
	if err := unbound(v, param, code, tr); err != nil {
		return nil, true, err
	}
	return newPresented(is, v), true, nil
}

// unbound refuses an upstream token bound to a key (cnf, RFC 7800: DPoP
// RFC 9449 §6, mutual TLS RFC 8705 §3; an introspection answer carries it
// the same way). This server's own bound tokens are exchanged only with
// proof of their key and bound again (binding.go); an upstream binding is
// not checked here yet, and exchanging the token would issue a bearer
// token and so drop the binding that keeps a stolen copy useless (SPEC §7).
func unbound(v *federation.Verified, param string, code oauth.ErrorCode, tr *Trace) error {
	if _, ok := v.Claims["cnf"]; !ok {
		return nil
	}
	tr.add(param, "refused", "the token is sender-constrained (cnf)")
	return oauth.NewError(code, "%s is sender-constrained (cnf) and cannot be exchanged", param)
}

// clip shortens what a caller wrote before it goes into an error
// description and the audit record.
func clip(s string) string {
	const max = 200
	if len(s) <= max {
		return s
	}
	return strings.ToValidUTF8(s[:max], "") + "…"
}

func hasType(is *trust.Issuer, typ string) bool {
	for _, t := range is.TokenTypes {
		if t == typ {
			return true
		}
	}
	return false
}

// usable checks that the issuer may vouch for this client's request now.
func (f *Federation) usable(c *store.Client, is *trust.Issuer, param string, code oauth.ErrorCode, tr *Trace) error {
	switch {
	case !is.Enabled:
		tr.add(param, "refused", "trusted issuer %q is disabled", is.Name)
		return oauth.NewError(code, "%s: issuer %q is disabled", param, is.Issuer)
	case is.Err != nil:
		tr.add(param, "refused", "trusted issuer %q has rules that do not compile: %v", is.Name, is.Err)
		return oauth.NewError(code, "%s: issuer %q cannot be used: its rules are invalid", param, is.Issuer).WithCause(is.Err)
	case !is.MayPresent(c.ID):
		tr.add(param, "refused", "client %q is not among the clients of trusted issuer %q (%s)", c.ID, is.Name, strings.Join(is.Clients, ", "))
		return oauth.NewError(code, "%s: this client may not present tokens of issuer %q", param, is.Issuer)
	}
	tr.add(param, "ok", "trusted issuer %q (%s) is enabled and client %q may present its tokens", is.Name, is.Issuer, c.ID)
	return nil
}

func newPresented(is *trust.Issuer, v *federation.Verified) *presented {
	return &presented{
		party: policy.Party{
			Subject: v.Subject, Issuer: v.Issuer.Issuer,
			Act: upstreamChain(v.Act, v.Issuer.Issuer), MayAct: v.MayAct,
		},
		up: v, issuer: is, upSubject: v.Subject, expires: v.Expiry, claims: v.Claims,
	}
}

// upstreamChain returns a copy of an upstream act chain in which each
// layer without iss names the upstream issuer: its subjects are that
// issuer's, not this server's (RFC 8693 §4.1).
func upstreamChain(a *oauth.Actor, iss string) *oauth.Actor {
	if a == nil {
		return nil
	}
	n := *a
	if n.Issuer == "" {
		n.Issuer = iss
	}
	n.Actor = upstreamChain(a.Actor, iss)
	return &n
}

// ruling is what the CEL rules decided for a request.
type ruling struct {
	scopes []string // nil: no scope rule
	claims map[string]any
}

// evalRules applies, in order, the rules of the subject token's issuer
// (whose subject rule names the issued subject), those of the actor
// token's issuer (its condition), and the client's. A false condition or
// an evaluation error refuses the request with code.
func evalRules(reg *trust.Registry, c *store.Client, self string, r *Request, subject, actor *presented, code oauth.ErrorCode, tr *Trace) (*ruling, error) {
	var clientProg *celpolicy.Program
	if reg != nil {
		var err error
		if clientProg, err = reg.ClientProgram(c); err != nil {
			tr.add("client rules", "refused", "%v", err)
			return nil, oauth.NewError(code, "the rules of this client are invalid").WithCause(err)
		}
	}
	if subject.up == nil && clientProg == nil && (actor == nil || actor.up == nil) {
		return &ruling{}, nil
	}
	in := &celpolicy.Input{
		Subject: subject.ruleClaims(), SubjectIssuer: subject.issuerURL(self),
		Actor: actor.ruleClaims(), ActorIssuer: actor.issuerURL(self),
		Client:  celpolicy.Client{ID: c.ID, Account: c.AccountID, Name: c.Name},
		Request: celpolicy.Request{Audiences: r.Audience, Resources: r.Resource, Scope: r.Scope},
	}
	out := &ruling{}
	apply := func(owner string, prog *celpolicy.Program, in *celpolicy.Input) (celpolicy.Result, error) {
		res, err := prog.Eval(in, tr != nil)
		for _, s := range res.Steps {
			tr.rule(owner, s)
		}
		// With a trace, the steps above say which rule failed and why.
		if err != nil {
			return res, oauth.NewError(code, "the rules of %s could not be evaluated for this request", owner).WithCause(err)
		}
		if !res.Allowed {
			return res, oauth.NewError(code, "the condition of %s is not met", owner).WithCause(fmt.Errorf("condition %q is false", res.Denied))
		}
		return res, nil
	}
	if subject.up != nil {
		is := subject.issuer
		var res celpolicy.Result
		if is.Program != nil {
			var err error
			if res, err = apply(fmt.Sprintf("issuer %q", is.Name), is.Program, in); err != nil {
				return nil, err
			}
		}
		mapped := res.Subject
		if mapped == "" {
			mapped = subject.upSubject
		}
		subject.party.Subject = is.SubjectPrefix + mapped
		tr.add("subject", "ok", "upstream sub %q is issued as %q (prefix %q)", subject.upSubject, subject.party.Subject, is.SubjectPrefix)
		out.scopes, out.claims = res.Scopes, res.Claims
	}
	if actor != nil && actor.up != nil {
		// The actor's issuer names the actor and must accept it; its
		// scope and claim rules are for the subjects it vouches for.
		is := actor.issuer
		ain := *in
		ain.Subject, ain.SubjectIssuer = actor.ruleClaims(), is.Issuer
		ain.Actor, ain.ActorIssuer = nil, ""
		res, err := apply(fmt.Sprintf("issuer %q", is.Name), is.Program, &ain)
		if err != nil {
			return nil, err
		}
		mapped := res.Subject
		if mapped == "" {
			mapped = actor.upSubject
		}
		actor.party.Subject = is.SubjectPrefix + mapped
		tr.add("actor", "ok", "upstream actor sub %q is mapped to %q", actor.upSubject, actor.party.Subject)
	}
	if clientProg != nil {
		res, err := apply(fmt.Sprintf("client %q", c.ID), clientProg, in)
		if err != nil {
			return nil, err
		}
		if res.Scopes != nil {
			if out.scopes == nil {
				out.scopes = res.Scopes
			} else {
				out.scopes = intersect(out.scopes, res.Scopes)
			}
		}
		for k, v := range res.Claims {
			if out.claims == nil {
				out.claims = map[string]any{}
			}
			out.claims[k] = v // the client's rule refines the issuer's
		}
	}
	return out, nil
}

func intersect(a, b []string) []string {
	out := []string{}
	for _, x := range a {
		for _, y := range b {
			if x == y {
				out = append(out, x)
				break
			}
		}
	}
	return out
}

// jwtBearer is the JWT bearer grant (RFC 7523 §2.1): a JWT of a trusted
// issuer, naming this server as its audience, is the authorization grant.
// It is how another domain's STS hands identity over (identity chaining).
type jwtBearer struct {
	fed    *Federation
	issuer string
	limits policy.Limits
	now    func() time.Time
}

// MaxAssertionLifetime bounds how far in the future a JWT bearer
// assertion may expire.
const MaxAssertionLifetime = 24 * time.Hour

func (g jwtBearer) Resolve(ctx context.Context, c *store.Client, r *Request) (*Basis, error) {
	const code = oauth.ErrInvalidGrant // RFC 7523 §3.1
	if r.Assertion == "" {
		return nil, oauth.NewError(oauth.ErrInvalidRequest, "assertion is required")
	}
	tr := r.trace
	p, ok, err := g.fed.upstream(ctx, c, g.issuer, "assertion", r.Assertion, federation.Check{Audiences: g.fed.AssertionAudiences, Caller: c.ID}, code, tr)
	if err != nil {
		return nil, err
	}
	if !ok || p.up == nil || p.up.Via != federation.ViaJWKS {
		tr.add("assertion", "refused", "not a JWT of a trusted issuer")
		return nil, oauth.NewError(code, "assertion must be a JWT of a trusted issuer; this server's own tokens are exchanged with the token exchange grant")
	}
	p.party.MayAct = localMayAct(p.party.MayAct, g.issuer)
	// RFC 7523 §3 item 7: each assertion is used once, on every instance.
	jti, _ := p.claims["jti"].(string)
	if jti == "" {
		tr.add("assertion", "refused", "no jti: this server accepts each assertion once and needs its jti")
		return nil, oauth.NewError(code, "assertion: a jti claim is required")
	}
	if !store.ValidText(jti) {
		// Kept in the database, which refuses NUL (PostgreSQL).
		tr.add("assertion", "refused", "its jti holds NUL")
		return nil, oauth.NewError(code, "assertion: its jti holds NUL")
	}
	// Its jti is kept until it expires (plus the leeway): an assertion
	// is meant to be short lived (RFC 7523 §3 item 4), and one valid for
	// longer would hold storage for that long.
	if p.expires.After(g.now().Add(MaxAssertionLifetime)) {
		tr.add("assertion", "refused", "expires %s, more than %s from now", p.expires.UTC().Format(time.RFC3339), MaxAssertionLifetime)
		return nil, oauth.NewError(code, "assertion: it expires more than %s from now; JWT bearer assertions must be short-lived", MaxAssertionLifetime)
	}
	if tr == nil {
		// Kept past exp by the issuer's leeway, for as long as the
		// assertion is accepted (federation.Fetcher.VerifyJWT).
		if err := g.fed.JTIs.ConsumeJTI(ctx, p.up.Issuer.Issuer, jti, p.expires.Add(p.up.Issuer.Leeway)); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return nil, oauth.NewError(code, "assertion: this assertion was already used")
			}
			return nil, err
		}
	} else {
		tr.add("assertion", "info", "jti %q would be consumed (single use)", jti)
	}
	rules, err := evalRules(g.fed.Registry, c, g.issuer, r, p, nil, code, tr)
	if err != nil {
		return nil, err
	}
	act, oe := policy.Delegation(c, p.party, nil, g.limits.ActDepth())
	if oe != nil {
		oe.Code = code
		tr.add("delegation", "refused", "%s", oe.Description)
		return nil, oe
	}
	tr.delegation(act)
	return federatedBasis(p, act, rules), nil
}

// federatedBasis is the basis of a token for a subject another issuer
// vouched for.
func federatedBasis(p *presented, act *oauth.Actor, rules *ruling) *Basis {
	return &Basis{
		Subject: policy.Subject{
			ID: p.party.Subject, Act: act, Scopes: rules.scopes, ExpiresAt: p.expires, Federated: true,
		},
		SubID:  &oauth.SubjectID{Format: oauth.SubjectIDFormatIssSub, Issuer: p.up.Issuer.Issuer, Subject: p.upSubject},
		Claims: rules.claims,
		Via:    fmt.Sprintf("issuer %s", p.issuer.Name),
	}
}
