package federation

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/keybridge/sts/internal/store"
)

// KeySourceStatic is the KeySource of keys from a configured key set.
const KeySourceStatic = "static"

// minRSABits refuses RSA keys too short to be trusted (NIST SP 800-131A).
const minRSABits = 2048

// issuerState is what is cached for one issuer. It belongs to one version
// of the issuer's record (its UpdatedAt): an update starts afresh.
type issuerState struct {
	version time.Time

	meta        *Metadata
	metaExpires time.Time
	metaRetry   time.Time // after a failed refresh, not before
	metaCall    *call[*Metadata]

	keys      *keySet
	keysRetry time.Time
	keysCall  *call[*keySet]
	// lastKidRefresh rate-limits refreshes caused by unknown kids, per
	// caller (Check.Caller): one client sending random kids spends only
	// its own budget, and cannot hold back another client's token signed
	// with a key the upstream just rotated in.
	lastKidRefresh map[string]time.Time
}

// keySet is a parsed JWKS.
type keySet struct {
	keys    []jose.JSONWebKey
	source  string // the JWKS URI, or KeySourceStatic
	expires time.Time
}

// call is one fetch in flight that concurrent callers share.
type call[T any] struct {
	done chan struct{}
	v    T
	err  error
}

// state returns the issuer's cache, starting a new one when the issuer's
// record changed. Called with f.mu held.
func (f *Fetcher) state(ti *store.TrustedIssuer) *issuerState {
	st := f.issuers[ti.Issuer]
	if st == nil || !st.version.Equal(ti.UpdatedAt) {
		st = &issuerState{version: ti.UpdatedAt}
		f.issuers[ti.Issuer] = st
	}
	return st
}

// wait waits for c or ctx; what and issuer name the fetch in the error
// of an abandoned wait.
func wait[T any](ctx context.Context, c *call[T], issuer, what string, timeout time.Duration) (T, error) {
	select {
	case <-c.done:
		return c.v, c.err
	case <-ctx.Done():
		var zero T
		safe := "the request was canceled"
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			safe = fmt.Sprintf("no answer within %s", timeout)
		}
		return zero, upstreamError(issuer, what, &fetchError{safe: safe, cause: ctx.Err()})
	}
}

// Discover fetches (or serves from cache) the issuer's discovery document,
// OpenID Connect Discovery first, then RFC 8414; a document whose issuer
// differs from ti.Issuer is refused.
func (f *Fetcher) Discover(ctx context.Context, ti *store.TrustedIssuer) (*Metadata, error) {
	now := f.o.Now()
	f.mu.Lock()
	st := f.state(ti)
	if st.meta != nil && (now.Before(st.metaExpires) || now.Before(st.metaRetry)) {
		m := *st.meta // a copy: the cached one is shared
		f.mu.Unlock()
		return &m, nil
	}
	c := st.metaCall
	if c == nil {
		c = &call[*Metadata]{done: make(chan struct{})}
		st.metaCall = c
		go f.runDiscover(context.WithoutCancel(ctx), ti, st, c)
	}
	f.mu.Unlock()
	m, err := wait(ctx, c, ti.Issuer, "discovery document", f.o.FetchTimeout)
	if err != nil {
		return nil, err
	}
	cp := *m
	return &cp, nil
}

// runDiscover fetches the discovery document for the callers of c.
func (f *Fetcher) runDiscover(ctx context.Context, ti *store.TrustedIssuer, st *issuerState, c *call[*Metadata]) {
	// Both places of the document share one FetchTimeout.
	ctx, cancel := context.WithTimeout(ctx, f.o.FetchTimeout)
	m, age, err := f.discover(ctx, ti)
	cancel()
	now := f.o.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	st.metaCall = nil
	switch {
	case err == nil:
		st.meta, st.metaExpires = m, now.Add(f.cacheFor(age))
		c.v = m
	case st.meta != nil && now.Before(st.metaExpires.Add(f.o.KeepStale)):
		// The upstream is down: keep the last good document for a
		// bounded time, and do not try again on every request.
		f.o.Logger.Warn("federation: discovery failed, using the last good document", "issuer", ti.Issuer, "err", err)
		st.metaRetry = now.Add(f.o.UnknownKidInterval)
		c.v = st.meta
	default:
		c.err = err
	}
	close(c.done)
}

// discoveryURLs are the places of the issuer's metadata: OpenID Connect
// Discovery 1.0 §4 appends the well-known path to the issuer; RFC 8414
// §3.1 inserts it between the host and the issuer's path.
func discoveryURLs(issuer string) []string {
	oidc := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	rfc := issuer
	if i := strings.Index(issuer, "://"); i >= 0 {
		rest := issuer[i+3:]
		host, path, _ := strings.Cut(rest, "/")
		path = strings.TrimSuffix(path, "/")
		rfc = issuer[:i+3] + host + "/.well-known/oauth-authorization-server"
		if path != "" {
			rfc += "/" + path
		}
	}
	return []string{oidc, rfc}
}

func (f *Fetcher) discover(ctx context.Context, ti *store.TrustedIssuer) (*Metadata, time.Duration, error) {
	var first error
	for _, u := range discoveryURLs(ti.Issuer) {
		r, err := f.fetch(ctx, ti, u, nil, "", "")
		if err != nil {
			if first == nil {
				first = err
			}
			if ctx.Err() != nil {
				break
			}
			continue
		}
		var m Metadata
		if err := json.Unmarshal(r.body, &m); err != nil {
			return nil, 0, upstreamError(ti.Issuer, "discovery document", &fetchError{safe: "the document is malformed", cause: err})
		}
		// OpenID Connect Discovery 1.0 §4.3, RFC 8414 §3.3: the issuer
		// in the document must be identical to the one it was fetched
		// for, or another server's keys would be trusted.
		if m.Issuer != ti.Issuer {
			return nil, 0, upstreamError(ti.Issuer, "discovery document", &fetchError{
				safe:  "the document is for another issuer",
				cause: fmt.Errorf("document at %s names issuer %.200q", u, m.Issuer),
			})
		}
		return &m, r.maxAge, nil
	}
	return nil, 0, upstreamError(ti.Issuer, "discovery document", first)
}

// keySet returns the issuer's keys, from cache or fetched; fetched says
// they were (just) fetched, so an unknown kid need not fetch them again.
func (f *Fetcher) keySet(ctx context.Context, ti *store.TrustedIssuer) (ks *keySet, fetched bool, err error) {
	if len(ti.JWKS) > 0 {
		ks, err = f.staticKeys(ti)
		return ks, false, err
	}
	now := f.o.Now()
	f.mu.Lock()
	st := f.state(ti)
	if ks := st.keys; ks != nil && (now.Before(ks.expires) || now.Before(st.keysRetry)) {
		f.mu.Unlock()
		f.keyHits.Add(1)
		return ks, false, nil
	}
	f.keyMisses.Add(1)
	c := f.startKeys(ctx, ti, st)
	f.mu.Unlock()
	ks, err = wait(ctx, c, ti.Issuer, "keys", f.o.FetchTimeout)
	return ks, true, err
}

// maxKidRefreshCallers bounds the per-caller refresh times kept per
// issuer.
const maxKidRefreshCallers = 4096

// refreshKeys fetches the keys again after a token named a kid they do
// not have: at most once per UnknownKidInterval per issuer and caller,
// and callers arriving while such a fetch is in flight share it. ok is
// false when the rate limit refused a fetch.
func (f *Fetcher) refreshKeys(ctx context.Context, ti *store.TrustedIssuer, caller string) (ks *keySet, ok bool, err error) {
	if len(ti.JWKS) > 0 {
		return nil, false, nil
	}
	now := f.o.Now()
	f.mu.Lock()
	st := f.state(ti)
	c := st.keysCall
	if c == nil {
		if last, ok := st.lastKidRefresh[caller]; ok && now.Sub(last) < f.o.UnknownKidInterval {
			f.mu.Unlock()
			return nil, false, nil
		}
		if st.lastKidRefresh == nil || len(st.lastKidRefresh) >= maxKidRefreshCallers {
			// Callers are the clients an operator allowed for the
			// issuer, so few; past the bound, forget them all.
			st.lastKidRefresh = map[string]time.Time{}
		}
		st.lastKidRefresh[caller] = now
		c = f.startKeys(ctx, ti, st)
	}
	f.mu.Unlock()
	ks, err = wait(ctx, c, ti.Issuer, "keys", f.o.FetchTimeout)
	return ks, true, err
}

// startKeys starts (or joins) the fetch of the issuer's keys. Called
// with f.mu held. The fetch runs detached from the caller's
// cancellation (bounded by FetchTimeout) so that one impatient caller
// does not spoil it for the others.
func (f *Fetcher) startKeys(ctx context.Context, ti *store.TrustedIssuer, st *issuerState) *call[*keySet] {
	if c := st.keysCall; c != nil {
		return c
	}
	c := &call[*keySet]{done: make(chan struct{})}
	st.keysCall = c
	go f.runKeys(context.WithoutCancel(ctx), ti, st, c)
	return c
}

func (f *Fetcher) runKeys(ctx context.Context, ti *store.TrustedIssuer, st *issuerState, c *call[*keySet]) {
	ks, err := f.fetchKeys(ctx, ti)
	now := f.o.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	st.keysCall = nil
	switch {
	case err == nil:
		st.keys = ks
		c.v = ks
	case st.keys != nil && now.Before(st.keys.expires.Add(f.o.KeepStale)):
		// RFC 7517 gives no rule here; availability does: an upstream
		// that is down must not stop every exchange at once, so the last
		// good keys serve for KeepStale, retried now and then.
		f.o.Logger.Warn("federation: key set fetch failed, using the last good keys", "issuer", ti.Issuer, "err", err)
		st.keysRetry = now.Add(f.o.UnknownKidInterval)
		c.v = st.keys
	default:
		c.err = err
	}
	close(c.done)
}

// fetchKeys fetches the key set from ti.JWKSURI or discovery's jwks_uri.
func (f *Fetcher) fetchKeys(ctx context.Context, ti *store.TrustedIssuer) (*keySet, error) {
	ctx, cancel := context.WithTimeout(ctx, f.o.FetchTimeout)
	defer cancel()
	uri := ti.JWKSURI
	if uri == "" {
		m, err := f.Discover(ctx, ti)
		if err != nil {
			return nil, err
		}
		if m.JWKSURI == "" {
			return nil, upstreamError(ti.Issuer, "keys", &fetchError{safe: "its discovery document has no jwks_uri"})
		}
		uri = m.JWKSURI
	}
	r, err := f.fetch(ctx, ti, uri, nil, "", "")
	if err != nil {
		return nil, upstreamError(ti.Issuer, "keys", err)
	}
	keys, err := parseJWKS(r.body, f.o.Logger, ti.Issuer)
	if err != nil {
		return nil, upstreamError(ti.Issuer, "keys", err)
	}
	return &keySet{keys: keys, source: uri, expires: f.o.Now().Add(f.cacheFor(r.maxAge))}, nil
}

// staticKeys parses ti.JWKS once per version of the issuer.
func (f *Fetcher) staticKeys(ti *store.TrustedIssuer) (*keySet, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.state(ti)
	if st.keys != nil && st.keys.source == KeySourceStatic {
		return st.keys, nil
	}
	keys, err := parseJWKS(ti.JWKS, f.o.Logger, ti.Issuer)
	if err != nil {
		return nil, &Error{Reason: fmt.Sprintf("the configured key set of issuer %s is unusable", ti.Issuer), Cause: err}
	}
	st.keys = &keySet{keys: keys, source: KeySourceStatic}
	return st.keys, nil
}

// parseJWKS keeps the public signature keys of a JWKS (RFC 7517 §5).
// Symmetric keys are ignored: they would let anyone who can read the key
// set forge tokens (HS256 with the published key). Private keys are
// ignored: an issuer that publishes them has lost them. Keys for another
// use than "sig" (or a SPIFFE bundle's "jwt-svid"), unknown key types and short RSA keys are skipped, one
// by one, so that one odd key does not disable the set.
func parseJWKS(body []byte, log interface {
	Debug(string, ...any)
}, issuer string) ([]jose.JSONWebKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, &fetchError{safe: "the key set is malformed", cause: err}
	}
	var out []jose.JSONWebKey
	for i, raw := range set.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			log.Debug("federation: key ignored", "issuer", issuer, "index", i, "err", err)
			continue
		}
		// A SPIFFE trust bundle marks its JWT signing keys "jwt-svid"
		// and its X.509 authorities "x509-svid" (SPIFFE Trust Domain and
		// Bundle §4.2.2): the former sign JWT-SVIDs, the latter no JWT.
		if k.Use != "" && k.Use != "sig" && k.Use != "jwt-svid" {
			continue
		}
		switch pk := k.Key.(type) {
		case *rsa.PublicKey:
			if pk.N.BitLen() < minRSABits {
				continue
			}
		case *ecdsa.PublicKey, ed25519.PublicKey:
		default:
			// []byte (oct), private keys and anything else.
			continue
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil, &fetchError{safe: "the key set has no usable signature key"}
	}
	return out, nil
}

// keyFits reports whether k can verify alg (RFC 7518 §3.1) and is not
// bound to another algorithm (RFC 7517 §4.4).
func keyFits(k *jose.JSONWebKey, alg string) bool {
	if k.Algorithm != "" && k.Algorithm != alg {
		return false
	}
	switch pk := k.Key.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return pk.Curve == elliptic.P256()
		case "ES384":
			return pk.Curve == elliptic.P384()
		case "ES512":
			return pk.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// Keys returns the usable public signature keys of ti (its configured
// set, or the one at its jwks_uri, from cache or fetched with the same
// limits as VerifyJWT's), for callers that match a key rather than verify
// a JWT (self_signed_tls_client_auth against a client's jwks_uri).
func (f *Fetcher) Keys(ctx context.Context, ti *store.TrustedIssuer) ([]jose.JSONWebKey, error) {
	ctx, cancel := context.WithTimeout(ctx, f.o.FetchTimeout)
	defer cancel()
	ks, _, err := f.keySet(ctx, ti)
	if err != nil {
		return nil, err
	}
	return ks.keys, nil
}
