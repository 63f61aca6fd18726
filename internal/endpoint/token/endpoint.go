package token

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/keybridge/sts/dpop"
	"github.com/keybridge/sts/internal/audit"
	"github.com/keybridge/sts/internal/clientauth"
	"github.com/keybridge/sts/internal/clientcert"
	"github.com/keybridge/sts/internal/metrics"
	"github.com/keybridge/sts/internal/oauthhttp"
	"github.com/keybridge/sts/internal/policy"
	"github.com/keybridge/sts/internal/ratelimit"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/token"
	"github.com/keybridge/sts/internal/tracing"
	"github.com/keybridge/sts/oauth"
)

// Endpoint is the token endpoint.
type Endpoint struct {
	auth   *clientauth.Authenticator
	tokens *token.Service
	audit  *audit.Writer
	limits policy.Limits
	grants map[string]Grant
	fed    *Federation
	log    *slog.Logger
	now    func() time.Time
	// Proof of possession: DPoP proofs, their htu, server nonces, and
	// client certificates.
	dpop     *dpop.Verifier
	nonces   dpop.Nonces
	tokenURL string
	certs    *clientcert.Source
	metrics  *metrics.Metrics
	// Radio devices and domain proxies (device.go, batch.go).
	devices    DeviceTrust
	progs      devicePrograms
	batchLimit *ratelimit.Limiter
}

// Options are the endpoint's dependencies.
type Options struct {
	Auth   *clientauth.Authenticator
	Tokens *token.Service
	Audit  *audit.Writer
	Limits policy.Limits
	// Federation, when not nil, accepts trusted issuers' tokens and
	// enables the JWT bearer grant.
	Federation *Federation
	Logger     *slog.Logger
	Now        func() time.Time
	// DPoP verifies DPoP proofs (RFC 9449); its Nonces, when set, are
	// required in every proof. nil refuses requests with a DPoP header.
	DPoP *dpop.Verifier
	// TokenURL is the URL of this endpoint: the htu of DPoP proofs.
	TokenURL string
	// Certs finds the client certificate of a request, for
	// certificate-bound tokens (RFC 8705 §3); nil finds none.
	Certs *clientcert.Source
	// Metrics times the pipeline's steps (and traces them); nil: not
	// measured.
	Metrics *metrics.Metrics
	// Devices, when not nil, lets radio devices and domain proxies
	// obtain tokens with their certificates (issue 14).
	Devices DeviceTrust
	// BatchesPerMinute bounds each domain proxy's /token/batch requests
	// (zero: DefaultBatchesPerMinute).
	BatchesPerMinute int
}

// New returns the token endpoint.
func New(o Options) *Endpoint {
	e := &Endpoint{
		auth: o.Auth, tokens: o.Tokens, audit: o.Audit, limits: o.Limits, fed: o.Federation, log: o.Logger, now: o.Now,
		dpop: o.DPoP, tokenURL: o.TokenURL, certs: o.Certs, metrics: o.Metrics,
		devices: o.Devices, batchLimit: newBatchLimit(o.BatchesPerMinute, o.Now),
		grants: map[string]Grant{
			oauth.GrantTypeTokenExchange:     tokenExchange{tokens: o.Tokens, fed: o.Federation, issuer: o.Limits.Issuer, limits: o.Limits},
			oauth.GrantTypeClientCredentials: clientCredentials{},
			oauth.GrantTypeRefreshToken:      refreshGrant{tokens: o.Tokens, limits: o.Limits},
		},
	}
	if o.DPoP != nil {
		e.nonces = o.DPoP.Nonces
	}
	if o.Federation != nil {
		e.grants[oauth.GrantTypeJWTBearer] = jwtBearer{fed: o.Federation, issuer: o.Limits.Issuer, limits: o.Limits, now: o.Now}
	}
	return e
}

// GrantTypes lists the supported grant types, for metadata.
func GrantTypes() []string {
	return []string{oauth.GrantTypeTokenExchange, oauth.GrantTypeClientCredentials, oauth.GrantTypeRefreshToken, oauth.GrantTypeJWTBearer}
}

// ServeHTTP runs the pipeline and writes the answer.
func (e *Endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ev := store.AuditRecord{Action: "token", RequestID: r.Header.Get("X-Request-Id"), Remote: r.RemoteAddr, TraceID: tracing.TraceID(r.Context())}
	resp, err := e.handle(w, r, &ev)
	ev.Time = e.now()
	if err != nil {
		oe := oauth.AsError(err)
		ev.Decision, ev.Error, ev.Detail = store.DecisionRefused, string(oe.Code), oe.Error()
	} else {
		ev.Decision = store.DecisionGranted
	}
	// Nothing is answered before its audit record is committed (or, for
	// the repeat of a refusal, counted in its coalesced record).
	actx, step := e.metrics.StartStep(r.Context(), metrics.StepAudit)
	aerr := e.audit.Record(actx, ev)
	step.End(aerr)
	if aerr != nil {
		if r.Context().Err() != nil {
			return // the client left; the record is still written
		}
		if err == nil {
			err = oauth.NewError(oauth.ErrServerError, "internal error").WithCause(aerr)
		}
	}
	if err != nil {
		oauthhttp.WriteError(w, e.log, err)
		return
	}
	e.log.Debug("token issued", "client_id", ev.ClientID, "jti", ev.JTI, "grant", ev.Action, "trace_id", ev.TraceID)
	oauthhttp.WriteJSON(w, http.StatusOK, resp)
}

func (e *Endpoint) handle(w http.ResponseWriter, r *http.Request, ev *store.AuditRecord) (*oauth.TokenResponse, error) {
	ctx := r.Context()
	form, perr := oauthhttp.ParseForm(w, r)
	if perr == nil && isDeviceRequest(r, form) {
		// A radio device, by its certificate alone (device.go): one
		// step, its certificate's verification and the token's
		// signature.
		metrics.NoteGrant(w, form.Get("grant_type"))
		_, step := e.metrics.StartStep(ctx, metrics.StepValidateSubject)
		resp, err := e.device(w, r, form, ev)
		step.End(err)
		return resp, err
	}
	// 1. Parse and 2. authenticate (failures bounded per source and
	// client id), with the proof of possession.
	sctx, step := e.metrics.StartStep(ctx, metrics.StepAuthenticate)
	ar := r
	if sctx != ctx {
		ar = r.WithContext(sctx) // traced: the step's span is the parent
	}
	req, c, err := e.authenticate(w, ar, form, perr, ev)
	if err != nil {
		step.End(err)
		return nil, err
	}
	// 3. Grant, and 4. the grant's own part: the subject (and actor)
	// validated.
	sctx, step = step.Next(ctx, metrics.StepValidateSubject)
	b, err := e.resolve(sctx, c, req)
	if err != nil {
		step.End(err)
		return nil, err
	}
	ev.Subject = b.ID
	if b.Act != nil {
		ev.Actor = b.Act.Subject
	}
	if b.Via != "" {
		ev.Detail = "subject vouched for by " + b.Via
	}
	// 5. Policy.
	_, step = step.Next(ctx, metrics.StepPolicy)
	d, oe := e.decide(c, req, b)
	if oe != nil {
		step.End(oe)
		return nil, oe
	}
	ev.Audience = d.Audience
	// 6. Mint.
	sctx, step = step.Next(ctx, metrics.StepSign)
	resp, err := e.issue(sctx, c, req, b, &d, ev)
	step.End(err)
	return resp, err
}

// resolve runs the grant's own part, for a grant type the client may use.
func (e *Endpoint) resolve(ctx context.Context, c *store.Client, req *Request) (*Basis, error) {
	g, ok := e.grants[req.GrantType]
	if !ok {
		return nil, oauth.NewError(oauth.ErrUnsupportedGrantType, "grant_type %q is not supported", req.GrantType)
	}
	if !slices.Contains(c.GrantTypes, req.GrantType) {
		return nil, oauth.NewError(oauth.ErrUnauthorizedClient, "this client may not use grant_type %s", req.GrantType)
	}
	return g.Resolve(ctx, c, req)
}

// authenticate parses the request, authenticates its client and checks
// its proof of possession.
func (e *Endpoint) authenticate(w http.ResponseWriter, r *http.Request, form url.Values, perr *oauth.Error, ev *store.AuditRecord) (*Request, *store.Client, error) {
	c, cred, err := e.auth.RequestForm(w, r, form, perr)
	gt := form.Get("grant_type")
	if gt != "" {
		ev.Action = "token." + shortGrant(gt)
	}
	metrics.NoteGrant(w, gt)
	ev.ClientID = cred.ID
	if err != nil {
		return nil, nil, err
	}
	req, oe := ParseRequest(form)
	if oe != nil {
		return nil, nil, oe
	}
	// Proof of possession, on every grant: a DPoP proof, the client
	// certificate, and the client's binding settings.
	if req.pos, err = e.prove(w, r, c); err != nil {
		return nil, nil, err
	}
	return req, c, nil
}

func (e *Endpoint) issue(ctx context.Context, c *store.Client, req *Request, b *Basis, d *policy.Decision, ev *store.AuditRecord) (*oauth.TokenResponse, error) {
	rec := store.TokenRecord{
		ClientID: c.ID,
		Subject:  b.ID,
		Scope:    strings.Join(d.Scope, " "),
		Audience: d.Audience,
		Actor:    actorJSON(b.Act),
		FamilyID: b.FamilyID,
		IssuedAt: d.IssuedAt,
	}
	resp := &oauth.TokenResponse{TokenType: oauth.TokenTypeBearer}
	// Everything issued is bound to the same key: access and refresh
	// tokens (RFC 9449 §5, RFC 8705 §3).
	var cnfJSON []byte
	cnf := req.pos.issuedBinding(c, b.Cnf)
	if cnf != nil {
		cnfJSON, _ = json.Marshal(cnf)
		rec.Cnf = cnfJSON
		if cnf.JKT != "" {
			resp.TokenType = oauth.TokenTypeDPoP
		}
	}
	if req.GrantType == oauth.GrantTypeTokenExchange {
		resp.IssuedTokenType = d.IssuedTokenType
	}
	if d.ScopeChanged {
		resp.Scope = rec.Scope
	}
	// The refresh token first: a refresh grant, or an exchange of a
	// refresh token, must consume the presented token before anything is
	// issued, so a replay issues nothing.
	expiry := d.Expiry
	if d.Refresh || d.IssuedTokenType == oauth.TokenTypeRefreshToken {
		newFamily := rec.FamilyID == ""
		if newFamily {
			rec.FamilyID = token.NewID()
		}
		rt := rec
		rt.Kind, rt.JTI = store.TokenRefresh, token.NewID()
		rt.ExpiresAt = d.RefreshExpiry
		if d.IssuedTokenType == oauth.TokenTypeRefreshToken {
			rt.ExpiresAt = d.Expiry
		}
		tok, err := e.tokens.IssueRefresh(ctx, &rt, b.RotateFrom)
		if errors.Is(err, store.ErrTokenReplayed) || errors.Is(err, store.ErrTokenInactive) || errors.Is(err, store.ErrNotFound) {
			return nil, oauth.NewError(oauth.ErrInvalidGrant, "the refresh token is invalid, expired or revoked").WithCause(err)
		}
		if err != nil {
			return nil, err
		}
		if d.IssuedTokenType == oauth.TokenTypeRefreshToken {
			// RFC 8693 §2.2.1: not an access token, so token_type N_A.
			resp.AccessToken, resp.TokenType = tok, oauth.TokenTypeNA
			resp.ExpiresIn = int64(d.Expiry.Sub(d.IssuedAt) / time.Second)
			ev.JTI = rt.JTI
			return resp, nil
		}
		resp.RefreshToken = tok
		// The access token joins the new family: it must not outlive the
		// family's stored tokens, for the family's revocation lasts until
		// the last of them expires (store.Tokens.RevokeFamily). A token
		// of an existing family is capped already by the family token
		// it came from.
		if newFamily && expiry.After(rt.ExpiresAt) {
			expiry = rt.ExpiresAt
		}
	}
	rec.JTI = token.NewID()
	rec.ExpiresAt = expiry
	ev.JTI = rec.JTI
	resp.ExpiresIn = int64(expiry.Sub(d.IssuedAt) / time.Second)
	if d.Format == store.TokenFormatOpaque {
		rec.Kind = store.TokenAccess
		tok, err := e.tokens.IssueOpaque(ctx, &rec)
		if err != nil {
			return nil, err
		}
		resp.AccessToken = tok
		return resp, nil
	}
	tok, err := e.tokens.SignJWT(&token.Claims{
		Issuer:    e.limits.Issuer,
		Subject:   rec.Subject,
		Audience:  rec.Audience,
		Expiry:    rec.ExpiresAt.Unix(),
		IssuedAt:  rec.IssuedAt.Unix(),
		NotBefore: rec.IssuedAt.Unix(),
		ID:        rec.JTI,
		ClientID:  c.ID,
		Scope:     rec.Scope,
		Act:       b.Act,
		FamilyID:  rec.FamilyID,
		SubID:     b.SubID,
		Extra:     b.Claims,
		Cnf:       cnfJSON,
	}, oauth.JWTTypeAccessToken)
	if err != nil {
		return nil, err
	}
	resp.AccessToken = tok
	return resp, nil
}

func shortGrant(gt string) string {
	switch gt {
	case oauth.GrantTypeTokenExchange:
		return "exchange"
	case oauth.GrantTypeClientCredentials, oauth.GrantTypeRefreshToken:
		return gt
	case oauth.GrantTypeJWTBearer:
		return "jwt_bearer"
	}
	return "unsupported"
}
