// Package federation verifies tokens of other issuers that the operator
// trusts (store.TrustedIssuer): it fetches their discovery documents and
// key sets, and calls their introspection endpoints, safely (timeouts,
// size limits, HTTPS, no redirects to other hosts, bounded caches that
// honour Cache-Control, rate-limited refresh on an unknown kid, last good
// keys kept while an upstream is down), and checks upstream JWTs against
// the issuer's rules (algorithms, audience, age, leeway, token type).
//
// It does not decide who may exchange what: that is the token endpoint's
// pipeline and internal/celpolicy. It only answers "is this token genuinely
// the issuer's, valid now, and what does it say".
package federation

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
)

// Options tune a Fetcher; zero values take the defaults.
type Options struct {
	// HTTPClient makes the outbound calls; nil builds one with
	// ConnectTimeout and no redirects to another host.
	HTTPClient *http.Client
	// ConnectTimeout bounds the TCP and TLS handshake (default 2 s).
	ConnectTimeout time.Duration
	// FetchTimeout bounds one whole fetch (default 5 s). No request of a
	// client waits longer than this for an upstream.
	FetchTimeout time.Duration
	// MaxResponseBytes bounds a discovery, JWKS or introspection response
	// (default 512 KiB).
	MaxResponseBytes int64
	// MinCache and MaxCache bound how long a discovery document or key
	// set is used before it is fetched again, whatever Cache-Control says
	// (defaults 1 min and 24 h; 15 min without Cache-Control).
	MinCache, MaxCache time.Duration
	// UnknownKidInterval is the least time between two refreshes of one
	// issuer's keys caused by tokens naming a kid it does not have
	// (default 30 s).
	UnknownKidInterval time.Duration
	// KeepStale is how long the last good keys are still used while the
	// upstream cannot be reached (default 24 h).
	KeepStale time.Duration
	// IntrospectionCache bounds how long an active introspection answer
	// is reused (default 60 s; never past the token's exp);
	// InactiveCache how long an inactive one is (default 5 s).
	IntrospectionCache, InactiveCache time.Duration
	// MaxTokenBytes refuses larger upstream tokens before parsing them
	// (default 16 KiB).
	MaxTokenBytes int
	Logger        *slog.Logger
	Now           func() time.Time
}

// Via says how an upstream token was verified.
const (
	ViaJWKS          = "jwks"
	ViaIntrospection = "introspection"
)

// Verified is an upstream token that passed verification.
type Verified struct {
	// Issuer is the trusted issuer that vouched for the token.
	Issuer *store.TrustedIssuer
	// Claims are all of the token's claims (for introspection, the
	// response's members), numbers as float64, as JSON decodes them.
	Claims map[string]any
	// Subject is the token's sub.
	Subject string
	// Via is ViaJWKS or ViaIntrospection.
	Via string
	// KeyID and Algorithm name the key that verified the signature
	// (ViaJWKS); KeySource says where it came from (the JWKS URI, or
	// "static" for a configured key set).
	KeyID, Algorithm, KeySource string
	// IssuedAt (zero when absent) and Expiry of the token.
	IssuedAt, Expiry time.Time
	// Act and MayAct are the token's act and may_act claims (RFC 8693
	// §4.1, §4.4), nil when absent.
	Act, MayAct *oauth.Actor
}

// Check is what a token must satisfy beyond its issuer's rules.
type Check struct {
	// TokenType is the declared type (oauth.TokenTypeIDToken, JWT or
	// AccessToken), which must be one the issuer accepts; empty for a
	// JWT bearer assertion (RFC 7523), which is accepted when the issuer
	// accepts TokenTypeJWT.
	TokenType string
	// Audiences, when not nil, replace the issuer's audiences: the token
	// must carry one of them (a JWT bearer assertion must name this
	// server, RFC 7523 §3).
	Audiences []string
}

// Error is a verification failure. Reason is safe to show the client (it
// names the issuer and what is wrong, never key material or the upstream's
// answer); Cause is for the log and the audit record.
type Error struct {
	Reason string
	// Upstream reports that the upstream could not be reached or answered
	// badly (the client may retry later), as opposed to a bad token.
	Upstream bool
	Cause    error
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return e.Reason + ": " + e.Cause.Error()
	}
	return e.Reason
}

func (e *Error) Unwrap() error { return e.Cause }

// Metadata is the part of a discovery document (OpenID Connect Discovery
// 1.0 §3, RFC 8414 §2) the fetcher uses.
type Metadata struct {
	Issuer                string `json:"issuer"`
	JWKSURI               string `json:"jwks_uri"`
	IntrospectionEndpoint string `json:"introspection_endpoint,omitempty"`
	TokenEndpoint         string `json:"token_endpoint,omitempty"`
}

// Fetcher fetches and caches what trusted issuers publish, and verifies
// their tokens. It is safe for concurrent use.
type Fetcher struct {
	o Options
}

// NewFetcher returns a Fetcher.
func NewFetcher(o Options) *Fetcher {
	return &Fetcher{o: o}
}

var errTODO = errors.New("federation: not implemented yet")

// PeekIssuer returns the "iss" claim of a compact JWS without verifying
// anything, to choose the issuer whose keys verify it; ok is false for
// what is not a JWT (an opaque token) or has no iss.
func PeekIssuer(raw string) (iss string, ok bool) {
	return "", false
}

// Discover fetches (or serves from cache) the issuer's discovery document,
// OpenID Connect Discovery first, then RFC 8414; a document whose issuer
// differs from ti.Issuer is refused.
func (f *Fetcher) Discover(ctx context.Context, ti *store.TrustedIssuer) (*Metadata, error) {
	return nil, errTODO
}

// VerifyJWT verifies raw as a JWT of ti: signature by one of its keys
// (refreshing them, rate-limited, on an unknown kid), an allowed
// asymmetric algorithm, iss, sub, exp, nbf, iat and MaxAge with ti's
// leeway, audience, and the declared token type. Failures are *Error.
func (f *Fetcher) VerifyJWT(ctx context.Context, ti *store.TrustedIssuer, raw string, c Check) (*Verified, error) {
	return nil, errTODO
}

// Introspect validates an opaque token at ti's introspection endpoint
// (RFC 7662), with caching by token hash. An inactive token is an *Error.
func (f *Fetcher) Introspect(ctx context.Context, ti *store.TrustedIssuer, raw string) (*Verified, error) {
	return nil, errTODO
}

// Forget drops what is cached for the issuer (after it was changed or
// removed).
func (f *Fetcher) Forget(issuer string) {}
