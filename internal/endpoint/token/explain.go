package token

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/keybridge/sts/internal/celpolicy"
	"github.com/keybridge/sts/internal/policy"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/token"
	"github.com/keybridge/sts/oauth"
)

// Step is one decision of the pipeline, as Explain reports it.
type Step struct {
	// Step names what was decided: "subject_token", `issuer "k8s"`,
	// "delegation", "policy", ...
	Step string `json:"step"`
	// Outcome is "ok", "refused" or "info".
	Outcome string `json:"outcome"`
	Detail  string `json:"detail"`
	// Rule and Value are set for a CEL rule: its expression and value.
	Rule  string `json:"rule,omitempty"`
	Value any    `json:"value,omitempty"`
}

// Trace collects the steps of one explained request. A nil *Trace records
// nothing, so the hot path pays one comparison per step.
type Trace struct {
	Steps []Step
}

func (t *Trace) add(step, outcome, format string, args ...any) {
	if t == nil {
		return
	}
	t.Steps = append(t.Steps, Step{Step: step, Outcome: outcome, Detail: fmt.Sprintf(format, args...)})
}

func (t *Trace) rule(owner string, s celpolicy.Step) {
	if t == nil {
		return
	}
	st := Step{Step: owner + " " + s.Rule, Outcome: "ok", Rule: s.Expr, Value: s.Value, Detail: "evaluated"}
	if s.Err != "" {
		st.Outcome, st.Detail = "refused", s.Err
	} else if s.Rule == "condition" && s.Value == false {
		st.Outcome, st.Detail = "refused", "the condition is false"
	}
	t.Steps = append(t.Steps, st)
}

// claims records the claims a token presented, which the rules read.
func (t *Trace) claims(param string, claims any) {
	if t == nil {
		return
	}
	b, _ := json.Marshal(claims)
	const max = 2000
	s := string(b)
	if len(s) > max {
		s = strings.ToValidUTF8(s[:max], "") + "…"
	}
	t.Steps = append(t.Steps, Step{Step: param, Outcome: "info", Detail: "claims: " + s})
}

func (t *Trace) delegation(act *oauth.Actor) {
	if t == nil {
		return
	}
	if act == nil {
		t.add("delegation", "ok", "no act claim (the subject acts for itself, or the client impersonates)")
		return
	}
	var hops []string
	for _, a := range act.Chain() {
		h := a.Subject
		if a.Issuer != "" {
			h += " (iss " + a.Issuer + ")"
		}
		hops = append(hops, h)
	}
	t.add("delegation", "ok", "act chain, most recent first: %s", strings.Join(hops, " ← "))
}

// Explanation is what Explain found: every step, and either what would be
// issued or the error the client would get.
type Explanation struct {
	Client  string       `json:"client_id"`
	Steps   []Step       `json:"steps"`
	Granted bool         `json:"granted"`
	Error   *oauth.Error `json:"error,omitempty"`
	// Issued is the token that would be issued (its claims, unsigned).
	Issued map[string]any `json:"would_issue,omitempty"`
}

// Explain runs the pipeline's decisions for a token request of client c
// (already authenticated by the caller's own means: an operator names the
// client) and reports each one, issuing, storing and consuming nothing. It
// takes the token exchange and JWT bearer grants.
func (e *Endpoint) Explain(ctx context.Context, c *store.Client, form url.Values) *Explanation {
	x := &Explanation{Client: c.ID}
	tr := &Trace{}
	fail := func(err error) *Explanation {
		x.Steps, x.Error = tr.Steps, oauth.AsError(err)
		return x
	}
	req, oe := ParseRequest(form)
	if oe != nil {
		return fail(oe)
	}
	req.trace = tr
	switch req.GrantType {
	case oauth.GrantTypeTokenExchange, oauth.GrantTypeJWTBearer:
	default:
		return fail(oauth.NewError(oauth.ErrUnsupportedGrantType, "explain takes the token exchange and JWT bearer grants"))
	}
	if req.SubjectTokenType == oauth.TokenTypeRefreshToken || req.ActorTokenType == oauth.TokenTypeRefreshToken ||
		strings.HasPrefix(req.SubjectToken, token.PrefixRefresh) || strings.HasPrefix(req.ActorToken, token.PrefixRefresh) {
		// Validating a refresh token can revoke its family (a replay,
		// RFC 9700 §4.14.2), whatever type the request declares for it:
		// validation looks the token up before it compares types.
		return fail(oauth.NewError(oauth.ErrInvalidRequest, "explain does not take refresh tokens"))
	}
	if c.Status != store.ClientActive {
		tr.add("client", "refused", "client %q is %s", c.ID, c.Status)
		return fail(oauth.NewError(oauth.ErrInvalidClient, "client %q is %s", c.ID, c.Status))
	}
	tr.add("client", "ok", "client %q (%s) is active; grants: %s", c.ID, c.Name, strings.Join(c.GrantTypes, ", "))
	g, ok := e.grants[req.GrantType]
	if !ok {
		return fail(oauth.NewError(oauth.ErrUnsupportedGrantType, "grant_type %q is not enabled on this server", req.GrantType))
	}
	if !slices.Contains(c.GrantTypes, req.GrantType) {
		tr.add("grant", "refused", "client %q may not use grant_type %s", c.ID, req.GrantType)
		return fail(oauth.NewError(oauth.ErrUnauthorizedClient, "this client may not use grant_type %s", req.GrantType))
	}
	b, err := g.Resolve(ctx, c, req)
	if err != nil {
		return fail(err)
	}
	d, oe := e.decide(c, req, b)
	if oe != nil {
		tr.add("policy", "refused", "%s", oe.Description)
		return fail(oe)
	}
	tr.add("policy", "ok", "token type %s, audience %s, scope %q, expires %s",
		d.IssuedTokenType, strings.Join(d.Audience, " "), strings.Join(d.Scope, " "), d.Expiry.UTC().Format(time.RFC3339))
	claims := map[string]any{
		"iss": e.limits.Issuer, "sub": b.ID, "aud": d.Audience, "client_id": c.ID,
		"iat": d.IssuedAt.Unix(), "exp": d.Expiry.Unix(),
	}
	if len(d.Scope) > 0 {
		claims["scope"] = strings.Join(d.Scope, " ")
	}
	if b.Act != nil {
		claims["act"] = b.Act
	}
	if b.SubID != nil {
		claims["sub_id"] = b.SubID
	}
	for k, v := range b.Claims {
		claims[k] = v
	}
	x.Steps, x.Granted, x.Issued = tr.Steps, true, claims
	return x
}

// decide is pipeline step 5, shared by the token endpoint and Explain.
func (e *Endpoint) decide(c *store.Client, req *Request, b *Basis) (policy.Decision, *oauth.Error) {
	preq := policy.Request{GrantType: req.GrantType, Scope: req.Scope, Targets: req.Targets()}
	if req.GrantType == oauth.GrantTypeTokenExchange {
		preq.RequestedTokenType = req.RequestedTokenType
	}
	return policy.Decide(c, b.Subject, preq, e.limits, e.now())
}
