package clientauth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/keybridge/sts/internal/federation"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
)

// Limits of private_key_jwt (RFC 7523 §2.2, §3).
const (
	// MaxAssertionBytes refuses a larger client_assertion before it is
	// parsed: a signed JWT with a few claims is well under 2 KiB, one
	// with an RSA-4096 signature under 3 KiB.
	MaxAssertionBytes = 8 << 10
	// DefaultMaxAssertionLifetime bounds how far in the future a client
	// assertion's exp may be (and its exp - iat): its jti is kept until
	// exp, so a long-lived assertion would hold storage as long.
	DefaultMaxAssertionLifetime = 5 * time.Minute
	// jtiNamespace prefixes the client id as the "issuer" of a client
	// assertion's jti in the single-use table, apart from the trusted
	// issuers' JWT bearer assertions (whose issuers are URLs).
	jtiNamespace = "client:"
)

// AssertionOptions configure private_key_jwt client authentication.
type AssertionOptions struct {
	// Issuer is this server's issuer; TokenEndpoint its token endpoint
	// URL. A client assertion's aud must name one of them, or the URL of
	// the endpoint it is presented at (Issuer + the request's path: the
	// introspection or revocation endpoint).
	Issuer, TokenEndpoint string
	// JTIs makes each assertion single-use across every instance that
	// shares the store (RFC 7523 §3 item 7).
	JTIs store.UsedJTIs
	// Leeway is tolerated on exp, nbf and iat.
	Leeway time.Duration
	// MaxLifetime bounds exp - now and exp - iat (default
	// DefaultMaxAssertionLifetime).
	MaxLifetime time.Duration
	// Fetch tunes the fetching of clients' jwks_uri key sets (timeouts,
	// size limit, cache bounds, the least interval between two refreshes
	// on an unknown kid per client). Its HTTPClient is ignored: the
	// fetcher dials no loopback or link-local address unless
	// AllowLoopbackJWKS is set.
	Fetch federation.Options
	// AllowLoopbackJWKS lets a client's jwks_uri name a loopback address
	// (and plain http there). A client registers its jwks_uri itself, so
	// without this a registration could make the server call its own
	// local ports; tests and single-machine setups turn it on.
	AllowLoopbackJWKS bool
	Now               func() time.Time
}

// Assertions verifies client assertions (private_key_jwt, RFC 7523 §2.2
// and §3): signed with an asymmetric algorithm by a key of the client's
// registered jwks or jwks_uri, iss = sub = client id, aud this server,
// short-lived, jti single-use.
type Assertions struct {
	o       AssertionOptions
	fetcher *federation.Fetcher

	mu sync.Mutex
	// failedFetch holds, per client, when a fetch of its jwks_uri last
	// failed: no new fetch for that client before UnknownKidInterval, so
	// a client whose jwks_uri is down (or slow on purpose) cannot make
	// every one of its requests an outbound call.
	failedFetch map[string]time.Time
}

// maxFailedFetch bounds failedFetch.
const maxFailedFetch = 4096

// NewAssertions returns the verifier of client assertions.
func NewAssertions(o AssertionOptions) *Assertions {
	if o.MaxLifetime <= 0 {
		o.MaxLifetime = DefaultMaxAssertionLifetime
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	fo := o.Fetch
	if fo.Now == nil {
		fo.Now = o.Now
	}
	if fo.ConnectTimeout <= 0 {
		fo.ConnectTimeout = federation.DefaultConnectTimeout
	}
	if fo.FetchTimeout <= 0 {
		fo.FetchTimeout = federation.DefaultFetchTimeout
	}
	if fo.UnknownKidInterval <= 0 {
		fo.UnknownKidInterval = federation.DefaultUnknownKidInterval
	}
	if fo.MaxResponseBytes <= 0 {
		// A client's key set is a few keys.
		fo.MaxResponseBytes = 64 << 10
	}
	fo.MaxTokenBytes = MaxAssertionBytes
	fo.HTTPClient = jwksClient(fo.ConnectTimeout, fo.FetchTimeout, o.AllowLoopbackJWKS)
	o.Fetch = fo
	return &Assertions{o: o, fetcher: federation.NewFetcher(fo), failedFetch: map[string]time.Time{}}
}

// Fetches reports how many outbound requests for client key sets were made.
func (a *Assertions) Fetches() int64 { return a.fetcher.Fetches() }

// jwksClient is the HTTP client of jwks_uri fetches. Its dialer refuses
// loopback, unspecified and link-local addresses (a cloud metadata
// service lives at 169.254.169.254) after name resolution, so a host
// name that resolves to one is refused too; loopback only when allowed.
func jwksClient(connect, fetch time.Duration, allowLoopback bool) *http.Client {
	d := &net.Dialer{
		Timeout:   connect,
		KeepAlive: 30 * time.Second,
		Control: func(network, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			ip := net.ParseIP(host)
			switch {
			case ip == nil:
				return fmt.Errorf("jwks_uri: address %q is not an IP address", host)
			case ip.IsLoopback() && !allowLoopback,
				ip.IsUnspecified(), ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast(), ip.IsMulticast():
				return fmt.Errorf("jwks_uri: address %s is refused", ip)
			}
			return nil
		},
	}
	return &http.Client{
		Timeout: fetch,
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           d.DialContext,
			TLSHandshakeTimeout:   connect,
			ResponseHeaderTimeout: fetch,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          100,
			MaxIdleConnsPerHost:   2,
			IdleConnTimeout:       90 * time.Second,
		},
	}
}

// extractAssertion reads the client assertion of a form that has
// client_assertion_type or client_assertion (RFC 7521 §4.2). It reads,
// unverified, the assertion's iss and sub to name the client; Verify
// checks everything.
func extractAssertion(r *http.Request, form url.Values) (Credentials, *oauth.Error) {
	if r.Header.Get("Authorization") != "" || form.Get("client_secret") != "" {
		return Credentials{}, oauth.NewError(oauth.ErrInvalidRequest, "use one client authentication method, not several")
	}
	typ, raw := form.Get("client_assertion_type"), form.Get("client_assertion")
	if typ == "" || raw == "" {
		return Credentials{}, oauth.NewError(oauth.ErrInvalidRequest, "client_assertion_type and client_assertion go together")
	}
	if len(form["client_assertion"]) != 1 || len(form["client_assertion_type"]) != 1 {
		return Credentials{}, oauth.NewError(oauth.ErrInvalidRequest, "client_assertion and client_assertion_type must be given once")
	}
	postID := form.Get("client_id")
	if typ != oauth.ClientAssertionTypeJWTBearer {
		return Credentials{ID: postID}, failed(fmt.Errorf("client_assertion_type %.100q is not supported", typ))
	}
	if len(raw) > MaxAssertionBytes {
		return Credentials{ID: postID}, failed(fmt.Errorf("client_assertion is larger than %d bytes", MaxAssertionBytes))
	}
	iss, sub, err := peekIssSub(raw)
	if err != nil {
		return Credentials{ID: postID}, failed(err)
	}
	if iss != sub {
		return Credentials{ID: iss}, failed(errors.New("client_assertion: iss and sub differ (both must be the client id)"))
	}
	// RFC 7521 §4.2: a client_id in the form must name the client the
	// assertion authenticates.
	if postID != "" && postID != iss {
		return Credentials{ID: iss}, failed(errors.New("client_id does not match the client_assertion's iss and sub"))
	}
	return Credentials{ID: iss, Assertion: raw, Method: oauth.AuthMethodPrivateKeyJWT}, nil
}

// peekIssSub returns the iss and sub of a compact JWS without verifying
// it, to find the client whose keys verify it.
func peekIssSub(raw string) (iss, sub string, err error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "", "", errors.New("client_assertion is not a compact signed JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", "", fmt.Errorf("client_assertion payload: %w", err)
	}
	var c struct {
		Iss any `json:"iss"`
		Sub any `json:"sub"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return "", "", fmt.Errorf("client_assertion payload: %w", err)
	}
	iss, ok1 := c.Iss.(string)
	sub, ok2 := c.Sub.(string)
	if !ok1 || !ok2 || iss == "" || sub == "" {
		return "", "", errors.New("client_assertion has no string iss and sub")
	}
	if !store.ValidText(iss) || !store.ValidText(sub) {
		// A JSON "\u0000" names no client.
		return "", "", errors.New("client_assertion's iss or sub holds NUL")
	}
	return iss, sub, nil
}

// jwksURIAllowed refuses a jwks_uri that this server must not call: not
// https (http only to an allowed loopback host), naming a loopback host
// when that is not allowed, or a link-local, multicast or unspecified
// address. The dialer checks the resolved address again.
func (a *Assertions) jwksURIAllowed(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil {
		return errors.New("the client's jwks_uri is not a valid URL")
	}
	host := u.Hostname()
	loop := strings.EqualFold(host, "localhost")
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		loop = true
	}
	if loop && !a.o.AllowLoopbackJWKS {
		return errors.New("the client's jwks_uri names a loopback host, which this server does not call")
	}
	// The dialer refuses these addresses too, but through an HTTPS_PROXY
	// it dials only the proxy, which would call them for us (a cloud
	// metadata service at 169.254.169.254): refuse them by the URL as
	// well (review of issue 13).
	if ip := net.ParseIP(host); ip != nil && (ip.IsUnspecified() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsMulticast()) {
		return fmt.Errorf("the client's jwks_uri names the address %s, which this server does not call", ip)
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && loop) {
		return errors.New("the client's jwks_uri is not https")
	}
	return nil
}

// clientIssuer is the client as an "issuer" of the federation fetcher:
// its key set or jwks_uri, cached per version of the client.
func (a *Assertions) clientIssuer(c *store.Client) *store.TrustedIssuer {
	ti := &store.TrustedIssuer{
		Issuer:     c.ID,
		JWKS:       c.Binding.JWKS,
		TokenTypes: []string{oauth.TokenTypeJWT},
		Leeway:     a.o.Leeway,
		// A changed client (new keys) starts a fresh cache.
		UpdatedAt: c.UpdatedAt,
	}
	if len(c.Binding.JWKS) == 0 {
		ti.JWKSURI = c.Binding.JWKSURI
	}
	return ti
}

// fetchAllowed applies the jwks_uri rules before any fetch: an allowed
// URL, and no fetch for a client whose last one failed recently.
func (a *Assertions) fetchAllowed(c *store.Client) error {
	if len(c.Binding.JWKS) > 0 {
		return nil
	}
	if err := a.jwksURIAllowed(c.Binding.JWKSURI); err != nil {
		return err
	}
	a.mu.Lock()
	last, ok := a.failedFetch[c.ID]
	a.mu.Unlock()
	if ok && a.o.Now().Sub(last) < a.o.Fetch.UnknownKidInterval {
		return fmt.Errorf("the client's jwks_uri failed less than %s ago; not fetched again yet", a.o.Fetch.UnknownKidInterval)
	}
	return nil
}

// noteFailure remembers a failed fetch of c's jwks_uri.
func (a *Assertions) noteFailure(c *store.Client, err error) {
	var fe *federation.Error
	if !errors.As(err, &fe) || !fe.Upstream {
		return
	}
	a.mu.Lock()
	if len(a.failedFetch) >= maxFailedFetch {
		clear(a.failedFetch)
	}
	a.failedFetch[c.ID] = a.o.Now()
	a.mu.Unlock()
}

// ClientKeys returns the public keys at c's jwks_uri, fetched with the
// same rules as for client assertions (no loopback unless allowed, size
// and time limits, cache, no new fetch soon after a failure): the
// Authenticator's FetchJWKS for self_signed_tls_client_auth.
func (a *Assertions) ClientKeys(ctx context.Context, c *store.Client) (*jose.JSONWebKeySet, error) {
	if c.Binding.JWKSURI == "" {
		return nil, errors.New("the client has no jwks_uri")
	}
	if err := a.fetchAllowed(c); err != nil {
		return nil, err
	}
	keys, err := a.fetcher.Keys(ctx, a.clientIssuer(c))
	if err != nil {
		a.noteFailure(c, err)
		return nil, err
	}
	return &jose.JSONWebKeySet{Keys: keys}, nil
}

// Verify checks cred.Assertion as a client assertion of c presented in r
// and consumes its jti. Every failure is invalid_client with the cause
// for the audit; a store failure is returned as is (a server error).
func (a *Assertions) Verify(ctx context.Context, r *http.Request, c *store.Client, cred Credentials) error {
	if len(c.Binding.JWKS) == 0 && c.Binding.JWKSURI == "" {
		return failed(errors.New("private_key_jwt: the client has registered no jwks or jwks_uri"))
	}
	if err := a.fetchAllowed(c); err != nil {
		return failed(fmt.Errorf("private_key_jwt: %w", err))
	}
	auds := []string{a.o.Issuer, a.o.TokenEndpoint}
	if r != nil && r.URL != nil && r.URL.Path != "" {
		if ep := a.o.Issuer + r.URL.Path; ep != a.o.TokenEndpoint {
			auds = append(auds, ep)
		}
	}
	v, err := a.fetcher.VerifyJWT(ctx, a.clientIssuer(c), cred.Assertion, federation.Check{Audiences: auds, Caller: c.ID})
	if err != nil {
		a.noteFailure(c, err)
		return failed(fmt.Errorf("private_key_jwt: %w", err))
	}
	if v.Subject != c.ID {
		return failed(errors.New("private_key_jwt: sub is not the client id"))
	}
	now := a.o.Now()
	if v.Expiry.After(now.Add(a.o.MaxLifetime + a.o.Leeway)) {
		return failed(fmt.Errorf("private_key_jwt: exp is more than %s from now; client assertions must be short-lived", a.o.MaxLifetime))
	}
	if !v.IssuedAt.IsZero() && v.Expiry.Sub(v.IssuedAt) > a.o.MaxLifetime+a.o.Leeway {
		return failed(fmt.Errorf("private_key_jwt: exp - iat is more than %s", a.o.MaxLifetime))
	}
	jti, _ := v.Claims["jti"].(string)
	if jti == "" {
		return failed(errors.New("private_key_jwt: no jti (each assertion is accepted once and needs one)"))
	}
	if len(jti) > 256 {
		return failed(errors.New("private_key_jwt: jti is longer than 256 bytes"))
	}
	if !store.ValidText(jti) {
		// Kept in the database, which refuses it (PostgreSQL).
		return failed(errors.New("private_key_jwt: jti holds NUL"))
	}
	// Kept past exp by the leeway: as long as the assertion is accepted.
	if err := a.o.JTIs.ConsumeJTI(ctx, jtiNamespace+c.ID, jti, v.Expiry.Add(a.o.Leeway)); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return failed(errors.New("private_key_jwt: the assertion was already used (jti replayed)"))
		}
		return err
	}
	return nil
}

// KeyCacheStats reports the lookups of clients' fetched key sets
// (jwks_uri) served from cache and fetched (metrics).
func (a *Assertions) KeyCacheStats() (hits, misses uint64) { return a.fetcher.KeyCacheStats() }
