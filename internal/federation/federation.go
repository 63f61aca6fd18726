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
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
)

// Defaults of Options.
const (
	DefaultConnectTimeout     = 2 * time.Second
	DefaultFetchTimeout       = 5 * time.Second
	DefaultMaxResponseBytes   = 512 << 10
	DefaultMinCache           = time.Minute
	DefaultMaxCache           = 24 * time.Hour
	DefaultCache              = 15 * time.Minute
	DefaultUnknownKidInterval = 30 * time.Second
	DefaultKeepStale          = 24 * time.Hour
	DefaultIntrospectionCache = time.Minute
	DefaultInactiveCache      = 5 * time.Second
	DefaultMaxTokenBytes      = 16 << 10
	// MaxIntrospectionEntries bounds the introspection cache.
	MaxIntrospectionEntries = 10000
)

// Options tune a Fetcher; zero values take the defaults.
type Options struct {
	// HTTPClient makes the outbound calls; nil builds one with
	// ConnectTimeout. Either way the Fetcher uses a copy whose Timeout is
	// FetchTimeout and which follows no redirect to another host.
	HTTPClient *http.Client
	// WrapTransport, when set, wraps the transport of the outbound calls
	// (tracing.Tracer.Transport: a span and a traceparent header each).
	WrapTransport func(http.RoundTripper) http.RoundTripper
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

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.ConnectTimeout, DefaultConnectTimeout)
	def(&o.FetchTimeout, DefaultFetchTimeout)
	def(&o.MinCache, DefaultMinCache)
	def(&o.MaxCache, DefaultMaxCache)
	def(&o.UnknownKidInterval, DefaultUnknownKidInterval)
	def(&o.KeepStale, DefaultKeepStale)
	def(&o.IntrospectionCache, DefaultIntrospectionCache)
	def(&o.InactiveCache, DefaultInactiveCache)
	if o.MaxCache < o.MinCache {
		o.MaxCache = o.MinCache
	}
	if o.MaxResponseBytes <= 0 {
		o.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if o.MaxTokenBytes <= 0 {
		o.MaxTokenBytes = DefaultMaxTokenBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
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
	// Caller names who presents the token (the client id): the refresh
	// of an issuer's keys on an unknown kid is rate-limited per caller.
	Caller string
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

// Error returns the Reason, with the Cause for the log.
func (e *Error) Error() string {
	if e.Cause != nil {
		return e.Reason + ": " + e.Cause.Error()
	}
	return e.Reason
}

// Unwrap returns the Cause.
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
	o      Options
	client *http.Client
	// fetches counts outbound HTTP requests (see Fetches).
	fetches atomic.Int64
	// keyHits and keyMisses count key set lookups served from cache and
	// fetched (KeyCacheStats).
	keyHits, keyMisses atomic.Uint64

	mu      sync.Mutex
	issuers map[string]*issuerState // by TrustedIssuer.Issuer
	intro   map[[32]byte]*introEntry
}

// NewFetcher returns a Fetcher.
func NewFetcher(o Options) *Fetcher {
	o = o.withDefaults()
	return &Fetcher{
		o:       o,
		client:  o.buildClient(),
		issuers: make(map[string]*issuerState),
		intro:   make(map[[32]byte]*introEntry),
	}
}

// Fetches reports how many outbound HTTP requests the Fetcher has made
// (discovery, key sets, introspection), so that a test can show that a
// verification served from cache made none.
func (f *Fetcher) Fetches() int64 { return f.fetches.Load() }

// KeyCacheStats reports, since start, the lookups of fetched key sets
// (jwks_uri) served from cache (hits) and that waited for a fetch
// (misses); configured key sets are not counted.
func (f *Fetcher) KeyCacheStats() (hits, misses uint64) {
	return f.keyHits.Load(), f.keyMisses.Load()
}

// Forget drops what is cached for the issuer (after it was changed or
// removed): its discovery document, keys and introspection answers.
func (f *Fetcher) Forget(issuer string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.issuers, issuer)
	for k, e := range f.intro {
		if e.issuer == issuer {
			delete(f.intro, k)
		}
	}
}
