package resource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/keybridge/sts/oauth"
	"github.com/keybridge/sts/stsclient"
)

// Reasons a token is refused. Errors returned by [Verifier.Verify] wrap
// exactly one of them; all but ErrUnavailable mean the token is invalid.
var (
	ErrMalformed    = errors.New("resource: malformed token")
	ErrAlgorithm    = errors.New("resource: signature algorithm not allowed")
	ErrType         = errors.New("resource: not an access token")
	ErrUnknownKey   = errors.New("resource: token signed by an unknown key")
	ErrSignature    = errors.New("resource: invalid signature")
	ErrMissingClaim = errors.New("resource: token lacks a required claim")
	ErrIssuer       = errors.New("resource: token from another issuer")
	ErrAudience     = errors.New("resource: token for another audience")
	ErrExpired      = errors.New("resource: token expired")
	ErrNotYetValid  = errors.New("resource: token not yet valid")
	ErrInactive     = errors.New("resource: token is not active")
	// ErrUnavailable means the token could not be checked: the JWK set or
	// the introspection endpoint could not be reached. It says nothing
	// about the token.
	ErrUnavailable = errors.New("resource: issuer keys or introspection unavailable")
)

// DefaultAlgorithms are the JWS algorithms accepted when
// [Config.Algorithms] is empty.
var DefaultAlgorithms = []string{"ES256", "EdDSA", "RS256"}

// allowedAlgorithms are the asymmetric algorithms a Config may name. HMAC
// algorithms and "none" are absent on purpose: a verifier that accepts
// HS256 can be fooled with a token "signed" with the public key.
var allowedAlgorithms = map[string]bool{
	"ES256": true, "ES384": true, "ES512": true, "EdDSA": true,
	"RS256": true, "RS384": true, "RS512": true, "PS256": true, "PS384": true, "PS512": true,
}

const (
	defaultLeeway             = 30 * time.Second
	defaultMinRefreshInterval = 30 * time.Second
	// maxTokenSize bounds the tokens parsed; far above any real one.
	maxTokenSize = 16 << 10
)

// Config configures a [Verifier].
type Config struct {
	// Issuer is the authorization server's issuer identifier; a token's
	// "iss" must equal it. Required.
	Issuer string
	// Audience identifies this resource server; a token's "aud" must
	// contain it. Required.
	Audience string
	// JWKSURL is where the issuer's JWK set is published. When empty it is
	// discovered from the issuer's RFC 8414 metadata (jwks_uri).
	JWKSURL string
	// Algorithms is the allow-list of JWS algorithms; DefaultAlgorithms
	// when empty. "none" and HMAC algorithms (HS256, ...) are refused.
	Algorithms []string
	// Leeway is the clock skew tolerated on exp, nbf and iat. Zero means
	// 30 seconds; a negative value means none.
	Leeway time.Duration
	// MinRefreshInterval is the least time between two fetches of the JWK
	// set caused by tokens naming unknown key ids, so that forged tokens
	// cannot make the verifier flood the issuer. Zero means 30 seconds.
	MinRefreshInterval time.Duration
	// Introspection, when set, enables RFC 7662 introspection of opaque
	// tokens. Without it, opaque tokens are refused as malformed.
	Introspection *IntrospectionConfig
	// DPoP tunes the checks of DPoP-bound tokens presented with the DPoP
	// scheme (RFC 9449 §7); nil takes the defaults (an in-memory replay
	// cache, no server nonces).
	DPoP *DPoPConfig

	// ClientCertHeader, when set, is the header in which a TLS-terminating
	// proxy forwards the client certificate (URL-encoded PEM), for
	// certificate-bound tokens (RFC 8705 §3); it is believed only from
	// the TrustedProxies (addresses or CIDR prefixes of the proxies this
	// service's listener sees as peers: r.RemoteAddr, so the Verifier
	// must come before any middleware that rewrites it from
	// X-Forwarded-For, or a caller naming a trusted proxy there could
	// send any certificate). Without it, the certificate is the one of
	// the TLS handshake.
	ClientCertHeader string
	TrustedProxies   []string

	// Realm is the realm of WWW-Authenticate challenges sent by
	// [Verifier.Middleware]; none when empty.
	Realm string
	// HTTPClient fetches metadata and keys and calls the introspection
	// endpoint; http.DefaultClient when nil. Give it a timeout.
	HTTPClient *http.Client
	// Logger receives the reasons for refusals (debug) and fetch failures
	// (warn); nothing is logged when nil. Tokens are never logged.
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Verifier verifies access tokens of one issuer for one audience. It is
// safe for concurrent use; build it with [NewVerifier].
type Verifier struct {
	cfg    Config
	algs   []jose.SignatureAlgorithm
	leeway time.Duration
	keys   *keyCache
	intro  *introspector
	bind   *binding
	log    *slog.Logger
	now    func() time.Time
}

// NewVerifier checks cfg and returns a verifier. When cfg.JWKSURL (or the
// introspection endpoint of cfg.Introspection) is empty, it reads the
// issuer's metadata with [stsclient.Discover]; ctx bounds that request.
// The JWK set itself is fetched at the first verification.
func NewVerifier(ctx context.Context, cfg Config) (*Verifier, error) {
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("resource: Config.Issuer and Config.Audience are required")
	}
	v := &Verifier{cfg: cfg, leeway: cfg.Leeway, log: cfg.Logger, now: cfg.Now}
	if v.now == nil {
		v.now = time.Now
	}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	switch {
	case v.leeway == 0:
		v.leeway = defaultLeeway
	case v.leeway < 0:
		v.leeway = 0
	}
	algs := cfg.Algorithms
	if len(algs) == 0 {
		algs = DefaultAlgorithms
	}
	for _, a := range algs {
		if !allowedAlgorithms[a] {
			return nil, fmt.Errorf("resource: algorithm %q is not allowed (use asymmetric algorithms such as %s)", a, strings.Join(DefaultAlgorithms, ", "))
		}
		v.algs = append(v.algs, jose.SignatureAlgorithm(a))
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	jwksURL := cfg.JWKSURL
	var introURL string
	if cfg.Introspection != nil {
		introURL = cfg.Introspection.URL
	}
	if jwksURL == "" || (cfg.Introspection != nil && introURL == "") {
		md, err := stsclient.Discover(ctx, hc, cfg.Issuer)
		if err != nil {
			return nil, fmt.Errorf("resource: %w", err)
		}
		if jwksURL == "" {
			jwksURL = md.JWKSURI
		}
		if introURL == "" {
			introURL = md.IntrospectionEndpoint
		}
		if jwksURL == "" {
			return nil, errors.New("resource: the issuer's metadata has no jwks_uri")
		}
		if cfg.Introspection != nil && introURL == "" {
			return nil, errors.New("resource: the issuer's metadata has no introspection_endpoint")
		}
	}
	interval := cfg.MinRefreshInterval
	if interval <= 0 {
		interval = defaultMinRefreshInterval
	}
	v.keys = &keyCache{url: jwksURL, hc: hc, now: v.now, minInterval: interval, log: v.log}
	if cfg.Introspection != nil {
		v.intro = newIntrospector(*cfg.Introspection, introURL, hc)
	}
	b, err := newBinding(cfg)
	if err != nil {
		return nil, err
	}
	v.bind = b
	return v, nil
}

// Claims are the verified claims of an access token (RFC 9068 §2.2). The
// Claims a verifier returns may be shared between requests: do not modify
// them.
type Claims struct {
	// Issuer is "iss", always the configured issuer.
	Issuer string
	// Subject is "sub": the party the token is about (RFC 8693 §1.1).
	Subject string
	// Audience is "aud"; it contains the configured audience.
	Audience oauth.Audience
	// Expiry is "exp".
	Expiry time.Time
	// NotBefore is "nbf"; zero when the token has none.
	NotBefore time.Time
	// IssuedAt is "iat"; zero when the token has none.
	IssuedAt time.Time
	// ID is "jti".
	ID string
	// ClientID is the "client_id" claim: the client the token was issued
	// to (RFC 9068 §2.2, RFC 8693 §4.3).
	ClientID string
	// Scope is the "scope" claim, space-separated (RFC 8693 §4.2); see
	// [Claims.Scopes] and [Claims.HasScope].
	Scope string
	// Act is the "act" claim (RFC 8693 §4.1): the party acting for the
	// subject, with the earlier actors nested; nil when none. See
	// [Claims.ActorChain].
	Act *oauth.Actor
	// Introspected is true when the token was opaque and these claims are
	// the introspection answer (RFC 7662 §2.2).
	Introspected bool
	// Confirmation is the token's cnf (RFC 7800): the certificate
	// (x5t#S256, RFC 8705 §3.1) or DPoP key (jkt, RFC 9449 §6) it is bound
	// to; zero for a bearer token.
	Confirmation oauth.Confirmation

	// cnfUnknown: cnf has a member this package cannot check.
	cnfUnknown bool
	raw        []byte
}

// Scopes returns the scope tokens of the "scope" claim.
func (c *Claims) Scopes() []string { return strings.Fields(c.Scope) }

// HasScope reports whether the "scope" claim contains s.
func (c *Claims) HasScope(s string) bool {
	for _, x := range strings.Fields(c.Scope) {
		if x == s {
			return true
		}
	}
	return false
}

// ActorChain returns the delegation chain of the "act" claim, the most
// recent actor first (RFC 8693 §4.1); nil when no one acts for the
// subject.
func (c *Claims) ActorChain() []oauth.Actor { return c.Act.Chain() }

// Decode unmarshals every claim of the token (the JWT payload, or the
// introspection answer) into v, for claims this type does not name.
func (c *Claims) Decode(v any) error { return json.Unmarshal(c.raw, v) }

// Verify checks token and returns its claims. A token with three
// dot-separated parts is verified as a JWT; any other is introspected when
// introspection is configured, and refused otherwise. The error wraps one
// of the Err* values of this package.
//
// Verify sees no request, so it cannot check a sender-constrained token's
// proof of possession: a token with a cnf claim is refused with
// [ErrBound]. Use [Verifier.VerifyRequest] (or the Middleware), which
// checks the binding.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	c, err := v.verify(ctx, token)
	if err != nil {
		return nil, err
	}
	if c.bound() {
		return nil, fmt.Errorf("%w: use VerifyRequest", ErrBound)
	}
	return c, nil
}

// verify checks token, bound or not.
func (v *Verifier) verify(ctx context.Context, token string) (*Claims, error) {
	if token == "" || len(token) > maxTokenSize {
		return nil, ErrMalformed
	}
	if strings.Count(token, ".") != 2 {
		if v.intro == nil {
			return nil, fmt.Errorf("%w: not a JWT, and introspection is not configured", ErrMalformed)
		}
		return v.introspect(ctx, token)
	}
	return v.verifyJWT(ctx, token)
}

func (v *Verifier) verifyJWT(ctx context.Context, token string) (*Claims, error) {
	obj, err := jose.ParseSignedCompact(token, v.algs)
	if err != nil {
		var alg *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &alg) {
			return nil, fmt.Errorf("%w: %q", ErrAlgorithm, alg.Got)
		}
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	h := obj.Signatures[0].Protected
	// RFC 9068 §4: the resource server MUST verify that typ is at+jwt
	// (or application/at+jwt), which tells access tokens from ID tokens and
	// other JWTs signed by the same keys.
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !isAccessTokenType(typ) {
		return nil, fmt.Errorf("%w: typ %q", ErrType, typ)
	}
	key, err := v.keys.get(ctx, h.KeyID)
	if err != nil {
		return nil, err
	}
	// The key fixes the algorithm when it names one: a token cannot choose
	// another (RFC 8725 §3.1).
	if key.alg != "" && key.alg != h.Algorithm {
		return nil, fmt.Errorf("%w: %s token for a %s key", ErrAlgorithm, h.Algorithm, key.alg)
	}
	payload, err := obj.Verify(key.pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSignature, err)
	}
	var w wireClaims
	if err := json.Unmarshal(payload, &w); err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	c := w.claims()
	c.raw = payload
	if c.Confirmation, c.cnfUnknown, err = parseCnf(w.Cnf); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := v.check(c, w.Exp.set); err != nil {
		return nil, err
	}
	return c, nil
}

// check applies the claim rules shared by JWTs and introspection answers.
// go-jose's jwt.Expected skips zero-valued fields, so the required claims
// are checked here: iss, aud, exp and sub must be present (RFC 9068 §2.2).
func (v *Verifier) check(c *Claims, hasExp bool) error {
	switch {
	case c.Issuer == "":
		return fmt.Errorf("%w: iss", ErrMissingClaim)
	case c.Issuer != v.cfg.Issuer:
		return fmt.Errorf("%w: %q", ErrIssuer, c.Issuer)
	case len(c.Audience) == 0:
		return fmt.Errorf("%w: aud", ErrMissingClaim)
	case !c.Audience.Contains(v.cfg.Audience):
		return fmt.Errorf("%w: %q", ErrAudience, []string(c.Audience))
	case !hasExp:
		return fmt.Errorf("%w: exp", ErrMissingClaim)
	case c.Subject == "":
		return fmt.Errorf("%w: sub", ErrMissingClaim)
	}
	now := v.now()
	if !now.Add(-v.leeway).Before(c.Expiry) {
		return fmt.Errorf("%w: at %s", ErrExpired, c.Expiry.UTC().Format(time.RFC3339))
	}
	if !c.NotBefore.IsZero() && now.Add(v.leeway).Before(c.NotBefore) {
		return fmt.Errorf("%w: nbf %s", ErrNotYetValid, c.NotBefore.UTC().Format(time.RFC3339))
	}
	if !c.IssuedAt.IsZero() && now.Add(v.leeway).Before(c.IssuedAt) {
		return fmt.Errorf("%w: issued in the future (iat %s)", ErrNotYetValid, c.IssuedAt.UTC().Format(time.RFC3339))
	}
	return nil
}

// isAccessTokenType reports whether a JOSE "typ" value is at+jwt; media
// types are case-insensitive and may omit "application/" (RFC 7515
// §4.1.9).
func isAccessTokenType(typ string) bool {
	typ = strings.ToLower(typ)
	return typ == oauth.JWTTypeAccessToken || typ == "application/"+oauth.JWTTypeAccessToken
}

// wireClaims is the JSON form of the claims read from a JWT.
type wireClaims struct {
	Iss      string          `json:"iss"`
	Sub      string          `json:"sub"`
	Aud      oauth.Audience  `json:"aud"`
	Exp      numericDate     `json:"exp"`
	Nbf      numericDate     `json:"nbf"`
	Iat      numericDate     `json:"iat"`
	Jti      string          `json:"jti"`
	ClientID string          `json:"client_id"`
	Scope    string          `json:"scope"`
	Act      *oauth.Actor    `json:"act"`
	Cnf      json.RawMessage `json:"cnf"`
}

func (w *wireClaims) claims() *Claims {
	return &Claims{
		Issuer: w.Iss, Subject: w.Sub, Audience: w.Aud,
		Expiry: w.Exp.time(), NotBefore: w.Nbf.time(), IssuedAt: w.Iat.time(),
		ID: w.Jti, ClientID: w.ClientID, Scope: w.Scope, Act: w.Act,
	}
}

// numericDate is a JWT NumericDate (RFC 7519 §2): seconds since the epoch,
// possibly fractional.
type numericDate struct {
	set  bool
	secs int64
}

// UnmarshalJSON reads a JSON number; null leaves the date unset.
func (d *numericDate) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1<<40 {
		return fmt.Errorf("invalid NumericDate %s", b)
	}
	d.set, d.secs = true, int64(f)
	return nil
}

func (d numericDate) time() time.Time {
	if !d.set {
		return time.Time{}
	}
	return time.Unix(d.secs, 0)
}
