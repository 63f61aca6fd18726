package token

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keybridge/sts/dpop"
	"github.com/keybridge/sts/internal/celpolicy"
	"github.com/keybridge/sts/internal/clientcert"
	"github.com/keybridge/sts/internal/devicecert"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/token"
	"github.com/keybridge/sts/oauth"
)

// Radio devices (issue 14): a device authenticates by its certificate
// alone, with no registered client, and obtains a token bound to it; a
// domain proxy obtains tokens for the devices it speaks for (batch.go).

// TokenTypeMTLS is the subject_token_type of a device's exchange: the
// subject is the certificate of the mutual TLS connection (the value
// Google STS uses).
const TokenTypeMTLS = oauth.TokenTypeMTLS

// MaxDeviceChain bounds a device's subject_token (the base64url of its
// DER chain), before it is decoded: a leaf and two CA certificates of
// RSA-4096 fit easily.
const MaxDeviceChain = 16 << 10

// DeviceClaim is the private claim of a device's token: who the device
// is, as its certificate says ({"fcc_id", "serial", "role", "profile"}).
const DeviceClaim = "device"

// DeviceTrust is what the device paths need of the device trust profiles
// and the domain proxies' delegations; devices.Service implements it.
type DeviceTrust interface {
	// Trust returns the compiled enabled profiles.
	Trust(ctx context.Context) (*devicecert.Trust, error)
	// Delegated reports, for each device in order, whether proxy may
	// speak for it.
	Delegated(ctx context.Context, proxy string, devs []store.DeviceRef) ([]bool, error)
}

// isDeviceRequest reports whether a token request is a device's: a token
// exchange of the connection's certificate, with no client credentials.
// A client that authenticates goes the usual way.
func isDeviceRequest(r *http.Request, form url.Values) bool {
	if form.Get("grant_type") != oauth.GrantTypeTokenExchange ||
		oauth.NormalizeTokenType(form.Get("subject_token_type")) != TokenTypeMTLS {
		return false
	}
	return r.Header.Get("Authorization") == "" && !form.Has("client_id") && !form.Has("client_secret") &&
		!form.Has("client_assertion") && !form.Has("client_assertion_type")
}

// ParseDeviceChain decodes a device's subject_token: the base64url
// (padding optional) of the concatenated DER certificates of its chain,
// leaf first (devicecert.ParseChain: at most devicecert.MaxChain
// certificates), at most MaxDeviceChain characters.
func ParseDeviceChain(s string) ([]*x509.Certificate, error) {
	if len(s) > MaxDeviceChain {
		return nil, fmt.Errorf("longer than %d characters", MaxDeviceChain)
	}
	der, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, errors.New("not base64url")
	}
	certs, err := devicecert.ParseChain(der)
	if r, ok := devicecert.AsRefusal(err); ok {
		return nil, errors.New(r.Msg)
	}
	return certs, err
}

// EncodeDeviceChain is the subject_token of a device presenting chain
// (leaf first).
func EncodeDeviceChain(chain []*x509.Certificate) string {
	var b []byte
	for _, c := range chain {
		b = append(b, c.Raw...)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// certDetail names a certificate in audit records: thumbprint, serial
// number and issuer. The thumbprint comes first and the others are
// clipped: audit details are cut at audit.MaxDetail bytes, and a rogue
// certificate's long issuer name must not push its thumbprint out.
func certDetail(c *x509.Certificate) string {
	return fmt.Sprintf("certificate x5t#S256=%s serial=%s issuer=%q", clientcert.Thumbprint(c), clipTo(c.SerialNumber.Text(16), 64), clipTo(c.Issuer.String(), 128))
}

// clipTo caps s at max bytes, marking the cut.
func clipTo(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return strings.ToValidUTF8(s[:max], "") + "…"
}

// refused is the answer to a certificate the trust refused: code, with
// the refusal's message, and its cause for the audit.
func refused(code oauth.ErrorCode, what string, err error) error {
	ref, ok := devicecert.AsRefusal(err)
	if !ok {
		return err // a server error
	}
	// The message may quote the certificates' names: clipped, so that the
	// audited cause and certificate (withCert) stay within the record.
	return oauth.NewError(code, "%s is not trusted: %s", what, clipTo(ref.Msg, 160)).WithCause(errors.New("cause=" + ref.Cause))
}

// withCert adds the certificate (and its profile, if known) to the
// audited cause of a refusal.
func withCert(err error, leaf *x509.Certificate, profile string) error {
	oe, ok := err.(*oauth.Error)
	if !ok || leaf == nil || oe.Code == oauth.ErrServerError {
		return err
	}
	d := certDetail(leaf)
	if profile != "" {
		d += " profile=" + profile
	}
	if c := errors.Unwrap(oe); c != nil {
		d = c.Error() + "; " + d
	}
	return oe.WithCause(errors.New(d))
}

// device handles a device's token request; its refusals count against
// the source's failure budget, as failed client authentications do.
func (e *Endpoint) device(w http.ResponseWriter, r *http.Request, form url.Values, ev *store.AuditRecord) (*oauth.TokenResponse, error) {
	ev.Action = "token.device"
	var seen deviceSeen
	resp, err := e.deviceExchange(r, form, ev, &seen)
	if err != nil {
		err, _ = e.auth.Failed(w, r, "", withCert(err, seen.leaf, seen.profile))
	}
	return resp, err
}

// deviceSeen is what a refused device request showed of itself, for the
// audit record.
type deviceSeen struct {
	leaf    *x509.Certificate
	profile string
}

func (e *Endpoint) deviceExchange(r *http.Request, form url.Values, ev *store.AuditRecord, seen *deviceSeen) (*oauth.TokenResponse, error) {
	ctx := r.Context()
	req, oe := ParseRequest(form)
	if oe != nil {
		return nil, oe
	}
	switch {
	case e.devices == nil:
		return nil, oauth.NewError(oauth.ErrInvalidRequest, "subject_token_type %s: this server has no device trust", TokenTypeMTLS)
	case req.ActorToken != "" || req.ActorTokenType != "":
		return nil, oauth.NewError(oauth.ErrInvalidRequest, "a device's exchange takes no actor_token")
	case len(r.Header.Values(dpop.Header)) > 0:
		return nil, oauth.NewError(oauth.ErrInvalidRequest, "a device's token is bound to its certificate: send no DPoP proof")
	}
	switch req.RequestedTokenType {
	case "", oauth.TokenTypeAccessToken, oauth.TokenTypeJWT:
	default:
		return nil, oauth.NewError(oauth.ErrInvalidRequest, "a device obtains access tokens only (requested_token_type %s or %s)", oauth.TokenTypeAccessToken, oauth.TokenTypeJWT)
	}
	hs, err := e.certs.Chain(r)
	if err != nil {
		return nil, oauth.NewError(oauth.ErrInvalidRequest, "the forwarded client certificate cannot be read").WithCause(err)
	}
	if len(hs) == 0 {
		return nil, oauth.NewError(oauth.ErrInvalidRequest, "a device authenticates with its certificate: send the request over mutual TLS with the device's certificate")
	}
	seen.leaf = hs[0]
	chain := hs
	if req.SubjectToken != "" {
		if chain, err = ParseDeviceChain(req.SubjectToken); err != nil {
			return nil, oauth.NewError(oauth.ErrInvalidRequest, "subject_token must be the base64url of the device's DER certificate chain, leaf first: %v", err).
				WithCause(errors.New("cause=malformed"))
		}
		if !bytes.Equal(chain[0].Raw, hs[0].Raw) {
			return nil, oauth.NewError(oauth.ErrInvalidRequest, "subject_token's leaf certificate is not the certificate of the TLS connection").
				WithCause(errors.New("cause=chain_mismatch"))
		}
	}
	trust, err := e.devices.Trust(ctx)
	if err != nil {
		return nil, err
	}
	now := e.now()
	id, prof, err := trust.Verify(ctx, chain, devicecert.RoleCBSD, now)
	if err != nil {
		return nil, refused(oauth.ErrInvalidRequest, "the device certificate", err)
	}
	seen.profile = id.Profile
	ev.Subject = id.Subject
	ev.Detail = fmt.Sprintf("%s profile=%s", certDetail(id.Leaf), id.Profile)
	dev := deviceMap(id)
	issued, err := e.deviceToken(deviceGrant{
		profile: prof, subject: id.Subject, device: dev, x5t: id.Thumbprint, notAfter: id.NotAfter,
		audiences: req.Targets(), resources: req.Resource, scope: req.Scope,
	}, now)
	if err != nil {
		return nil, err
	}
	ev.Audience, ev.JTI = issued.aud, issued.jti
	return issued.resp, nil
}

// deviceMap is a device identity as the token's device claim and the
// profile's CEL rules see it.
func deviceMap(id *devicecert.Identity) map[string]any {
	m := map[string]any{"role": string(id.Role), "profile": id.Profile, "subject": id.Subject}
	for k, v := range map[string]string{"fcc_id": id.FCCID, "serial": id.Serial, "frn": id.FRN} {
		if v != "" {
			m[k] = v
		}
	}
	return m
}

// deviceGrant is what a device's token is made of.
type deviceGrant struct {
	// profile verified the presented certificate (the device's, or the
	// domain proxy's); its rules bound the token.
	profile *devicecert.Profile
	subject string
	// device is the device claim; actor, for a domain proxy's token, the
	// proxy's identity as CEL sees it.
	device, actor map[string]any
	act           *oauth.Actor
	// x5t is the thumbprint of the presented certificate the token is
	// bound to; notAfter its expiry, which the token never outlives.
	x5t      string
	notAfter time.Time
	// What the request asks for: audiences (and resources), scope (nil
	// when absent).
	audiences, resources, scope []string
}

// issuedDevice is a signed device token.
type issuedDevice struct {
	resp *oauth.TokenResponse
	jti  string
	aud  []string
}

// deviceToken decides the audience, scope and lifetime of a device's
// token by its profile's rules and signs it.
func (e *Endpoint) deviceToken(g deviceGrant, now time.Time) (*issuedDevice, error) {
	spec := g.profile.Spec
	aud := g.audiences
	if len(aud) == 0 {
		aud = []string{e.limits.Issuer}
		if len(spec.Audiences) > 0 {
			aud = spec.Audiences[:1]
		}
	} else {
		for _, a := range aud {
			if !slices.Contains(spec.Audiences, a) {
				return nil, oauth.NewError(oauth.ErrInvalidTarget, "audience %q is not one of device profile %q's", clip(a), spec.Name)
			}
		}
	}
	scope := slices.Clone(spec.Scopes)
	changed := false
	if g.scope != nil {
		for _, s := range g.scope {
			if !slices.Contains(spec.Scopes, s) {
				return nil, oauth.NewError(oauth.ErrInvalidScope, "scope %q is not one of device profile %q's", clip(s), spec.Name)
			}
		}
		scope = slices.Clone(g.scope)
	} else {
		changed = len(scope) > 0
	}
	prog, err := e.deviceProgram(spec)
	if err != nil {
		return nil, err
	}
	var extra map[string]any
	if prog != nil {
		res, err := prog.Eval(&celpolicy.Input{
			Subject: g.device, SubjectIssuer: "device:" + spec.Name,
			Actor:   g.actor,
			Request: celpolicy.Request{Audiences: aud, Resources: g.resources, Scope: scope},
			Device:  g.device,
		}, false)
		if err != nil {
			return nil, oauth.NewError(oauth.ErrInvalidRequest, "the rules of device profile %q failed", spec.Name).WithCause(err)
		}
		if !res.Allowed {
			return nil, oauth.NewError(oauth.ErrInvalidRequest, "the condition of device profile %q is not met", spec.Name).WithCause(fmt.Errorf("condition %q is false", res.Denied))
		}
		if res.Scopes != nil {
			kept := intersect(scope, res.Scopes)
			changed = changed || len(kept) != len(scope)
			scope = kept
		}
		extra = res.Claims
	}
	if extra == nil {
		extra = map[string]any{}
	}
	extra[DeviceClaim] = g.device
	ttl := spec.TokenTTL
	if ttl <= 0 {
		ttl = e.limits.AccessTokenTTL
	}
	if e.limits.MaxTokenTTL > 0 && ttl > e.limits.MaxTokenTTL {
		ttl = e.limits.MaxTokenTTL
	}
	exp := now.Add(ttl).Truncate(time.Second)
	if na := g.notAfter.Truncate(time.Second); na.Before(exp) {
		exp = na
	}
	if !exp.After(now) {
		return nil, oauth.NewError(oauth.ErrInvalidRequest, "the certificate expires now")
	}
	cnf, _ := json.Marshal(oauth.Confirmation{X5tS256: g.x5t})
	jti := token.NewID()
	sc := strings.Join(scope, " ")
	tok, err := e.tokens.SignJWT(&token.Claims{
		Issuer:    e.limits.Issuer,
		Subject:   g.subject,
		Audience:  aud,
		Expiry:    exp.Unix(),
		IssuedAt:  now.Unix(),
		NotBefore: now.Unix(),
		ID:        jti,
		Scope:     sc,
		Act:       g.act,
		Cnf:       cnf,
		Extra:     extra,
	}, oauth.JWTTypeAccessToken)
	if err != nil {
		return nil, err
	}
	resp := &oauth.TokenResponse{
		AccessToken: tok, IssuedTokenType: oauth.TokenTypeAccessToken,
		// Bound to the certificate, and still a Bearer token on the wire
		// (RFC 8705 §3: the resource checks cnf against the connection).
		TokenType: oauth.TokenTypeBearer,
		ExpiresIn: int64(exp.Sub(now) / time.Second),
	}
	if changed {
		resp.Scope = sc
	}
	return &issuedDevice{resp: resp, jti: jti, aud: aud}, nil
}

// devicePrograms caches the compiled CEL rules of device profiles, by
// owner and rules: profiles are recompiled on every change of any, their
// rules seldom.
type devicePrograms struct {
	mu sync.Mutex
	m  map[string]*celpolicy.Program
}

// maxDevicePrograms bounds the cache; past it, it starts again.
const maxDevicePrograms = 256

func (e *Endpoint) deviceProgram(spec *store.DeviceProfile) (*celpolicy.Program, error) {
	if spec.Policy.IsZero() {
		return nil, nil
	}
	rules, _ := json.Marshal(spec.Policy)
	key := spec.Name + "\x00" + string(rules)
	e.progs.mu.Lock()
	defer e.progs.mu.Unlock()
	if p, ok := e.progs.m[key]; ok {
		return p, nil
	}
	p, err := celpolicy.Compile(fmt.Sprintf("device profile %q", spec.Name), spec.Policy)
	if err != nil {
		// The profile's rules were checked when it was saved.
		return nil, fmt.Errorf("device profile %q: %w", spec.Name, err)
	}
	if e.progs.m == nil || len(e.progs.m) >= maxDevicePrograms {
		e.progs.m = map[string]*celpolicy.Program{}
	}
	e.progs.m[key] = p
	return p, nil
}
