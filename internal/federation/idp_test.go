package federation

// A small OpenID provider for tests: it serves discovery, a JWKS and an
// introspection endpoint over real HTTP on loopback (httptest) and signs
// tokens with go-jose. Nothing in it depends on the federation package,
// so it can be copied to the end-to-end tests of the token endpoint.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
)

// testClock is an injectable clock (Options.Now).
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock {
	return &testClock{t: time.Now().Truncate(time.Second)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// idpKey is one signing key of the test IdP.
type idpKey struct {
	Kid  string
	Alg  jose.SignatureAlgorithm
	Priv crypto.Signer
}

// JWK returns the public JWK of k.
func (k *idpKey) JWK() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.Priv.Public(), KeyID: k.Kid, Algorithm: string(k.Alg), Use: "sig"}
}

func newIdPKey(t testing.TB, alg jose.SignatureAlgorithm) *idpKey {
	t.Helper()
	var (
		priv crypto.Signer
		err  error
	)
	switch alg {
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.ES384:
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case jose.RS256, jose.PS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("test IdP: no key for %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return &idpKey{Kid: fmt.Sprintf("%s-%d", alg, time.Now().UnixNano()), Alg: alg, Priv: priv}
}

// testIdP is the test OpenID provider.
type testIdP struct {
	t      testing.TB
	Server *httptest.Server
	Issuer string
	Clock  *testClock

	mu       sync.Mutex
	keys     []*idpKey // published in the JWKS
	current  *idpKey   // signs
	extraJWK []json.RawMessage
	// CacheControl is sent with discovery and the JWKS when not empty.
	cacheControl string
	// hook, when set and returning true, has answered the request.
	hook func(w http.ResponseWriter, r *http.Request) bool
	// intro maps an opaque token to its introspection answer.
	intro map[string]map[string]any

	DiscoveryHits, JWKSHits, IntrospectionHits atomic.Int64
}

// newTestIdP starts an IdP with one key of alg, served on loopback.
func newTestIdP(t testing.TB, alg jose.SignatureAlgorithm) *testIdP {
	t.Helper()
	p := &testIdP{t: t, Clock: newTestClock(), intro: map[string]map[string]any{}}
	p.current = newIdPKey(t, alg)
	p.keys = []*idpKey{p.current}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		p.DiscoveryHits.Add(1)
		p.writeJSON(w, map[string]any{
			"issuer":                 p.Issuer,
			"jwks_uri":               p.Issuer + "/jwks",
			"introspection_endpoint": p.Issuer + "/introspect",
			"token_endpoint":         p.Issuer + "/token",
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		p.JWKSHits.Add(1)
		p.writeJSON(w, p.JWKS())
	})
	mux.HandleFunc("POST /introspect", func(w http.ResponseWriter, r *http.Request) {
		p.IntrospectionHits.Add(1)
		id, secret, ok := r.BasicAuth()
		if !ok || id != "rs" || secret != "rs-secret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		p.mu.Lock()
		ans, ok := p.intro[r.PostFormValue("token")]
		p.mu.Unlock()
		if !ok {
			ans = map[string]any{"active": false}
		}
		p.writeJSON(w, ans)
	})
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		h := p.hook
		p.mu.Unlock()
		if h != nil && h(w, r) {
			return
		}
		mux.ServeHTTP(w, r)
	}))
	p.Issuer = p.Server.URL
	t.Cleanup(p.Server.Close)
	return p
}

func (p *testIdP) writeJSON(w http.ResponseWriter, v any) {
	p.mu.Lock()
	cc := p.cacheControl
	p.mu.Unlock()
	if cc != "" {
		w.Header().Set("Cache-Control", cc)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// SetHook installs (or with nil removes) a handler that answers first.
func (p *testIdP) SetHook(h func(w http.ResponseWriter, r *http.Request) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hook = h
}

// SetCacheControl sets the Cache-Control of discovery and JWKS answers.
func (p *testIdP) SetCacheControl(cc string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cacheControl = cc
}

// AddRawJWK publishes an extra JWK as given (symmetric, private, ...).
func (p *testIdP) AddRawJWK(raw json.RawMessage) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.extraJWK = append(p.extraJWK, raw)
}

// JWKS returns the published key set as JSON-ready value.
func (p *testIdP) JWKS() map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	var keys []any
	for _, raw := range p.extraJWK {
		keys = append(keys, raw)
	}
	for _, k := range p.keys {
		keys = append(keys, k.JWK())
	}
	return map[string]any{"keys": keys}
}

// Rotate makes a new key of alg the signing key; with keepOld the old
// keys stay published (a graceful rotation), else they are withdrawn.
func (p *testIdP) Rotate(alg jose.SignatureAlgorithm, keepOld bool) *idpKey {
	k := newIdPKey(p.t, alg)
	p.mu.Lock()
	defer p.mu.Unlock()
	if !keepOld {
		p.keys = nil
	}
	p.keys = append(p.keys, k)
	p.current = k
	return k
}

// Current returns the signing key.
func (p *testIdP) Current() *idpKey {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.current
}

// Introspection sets the answer for an opaque token.
func (p *testIdP) Introspection(token string, answer map[string]any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.intro[token] = answer
}

// Claims returns valid claims for sub: iss, sub, aud "sts", iat now, exp
// in ten minutes.
func (p *testIdP) Claims(sub string) map[string]any {
	now := p.Clock.Now()
	return map[string]any{
		"iss": p.Issuer,
		"sub": sub,
		"aud": "sts",
		"iat": now.Unix(),
		"exp": now.Add(10 * time.Minute).Unix(),
	}
}

// Sign signs claims with the current key (kid in the header).
func (p *testIdP) Sign(claims map[string]any) string {
	return p.SignWith(p.Current(), nil, claims)
}

// SignWith signs claims with k and extra protected headers.
func (p *testIdP) SignWith(k *idpKey, headers map[string]any, claims map[string]any) string {
	p.t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	for name, v := range headers {
		opts = opts.WithHeader(jose.HeaderKey(name), v)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: k.Alg, Key: jose.JSONWebKey{Key: k.Priv, KeyID: k.Kid}}, opts)
	if err != nil {
		p.t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		p.t.Fatal(err)
	}
	jws, err := sig.Sign(payload)
	if err != nil {
		p.t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		p.t.Fatal(err)
	}
	return s
}

// TrustedIssuer returns a record trusting this IdP through discovery,
// for audience "sts", all token types, and a leeway of 30 s.
func (p *testIdP) TrustedIssuer() *store.TrustedIssuer {
	return &store.TrustedIssuer{
		Name:                      "test-idp",
		Issuer:                    p.Issuer,
		Enabled:                   true,
		TokenTypes:                []string{oauth.TokenTypeIDToken, oauth.TokenTypeJWT, oauth.TokenTypeAccessToken},
		Audiences:                 []string{"sts"},
		Leeway:                    30 * time.Second,
		IntrospectionClientID:     "rs",
		IntrospectionClientSecret: "rs-secret",
		UpdatedAt:                 time.Unix(1700000000, 0),
	}
}

// hand builds a compact JWS from a header and claims by hand, signing
// with HMAC-SHA256 under secret when secret is not nil, else with an
// empty signature (alg none).
func hand(t testing.TB, header, claims map[string]any, secret []byte) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	in := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	if secret == nil {
		return in + "."
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(in))
	return in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
