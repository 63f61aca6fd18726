package clientauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/cached"
	"github.com/keybridge/sts/internal/store/sqlite"
	"github.com/keybridge/sts/oauth"
)

// benchAuth returns an Authenticator over the cached view of a real SQLite
// store holding one client, as the server builds it, and a request
// carrying that client's credentials with client_secret_basic.
func benchAuth(b *testing.B) (*Authenticator, *http.Request) {
	b.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "sts.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	cs, err := cached.New(ctx, st, cached.Options{ClientTTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	h := NewHasher([]byte("a 32-byte key for the benchmarks"))
	secret := NewSecret()
	now := time.Now()
	if err := cs.CreateClient(ctx, &store.Client{
		ID: "rs08", Name: "bench", SecretHash: h.Hash(secret), Status: store.ClientActive,
		GrantTypes: []string{oauth.GrantTypeTokenExchange}, Audiences: []string{"https://backend.example.com/api"},
		Scopes: []string{"api"}, CreatedAt: now, UpdatedAt: now,
	}); err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "/token/oauth2", nil)
	r.SetBasicAuth("rs08", url.QueryEscape(secret))
	return &Authenticator{Clients: cs, Accounts: cs.HotAccounts(), Hasher: h, Now: time.Now}, r
}

// BenchmarkAuthenticate is client authentication with a valid secret and
// a warm client cache: the Basic header decoded, the secret hashed and
// compared, the client copied out of the cache.
func BenchmarkAuthenticate(b *testing.B) {
	a, r := benchAuth(b)
	form := url.Values{"grant_type": {oauth.GrantTypeTokenExchange}}
	ctx := context.Background()
	if _, _, err := a.Authenticate(ctx, r, form); err != nil { // warms the cache
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		c, _, err := a.Authenticate(ctx, r, form)
		if err != nil || c.ID != "rs08" {
			b.Fatal(c, err)
		}
	}
}

// BenchmarkExtract is the reading of client_secret_basic credentials
// alone (RFC 6749 §2.3.1).
func BenchmarkExtract(b *testing.B) {
	r := httptest.NewRequest(http.MethodPost, "/token/oauth2", nil)
	r.SetBasicAuth("rs08", NewSecret())
	form := url.Values{"grant_type": {oauth.GrantTypeTokenExchange}}
	b.ReportAllocs()
	for b.Loop() {
		if cred, oe := Extract(r, form); oe != nil || cred.ID != "rs08" {
			b.Fatal(oe)
		}
	}
}

// BenchmarkHash is the keyed hash of a presented secret.
func BenchmarkHash(b *testing.B) {
	h := NewHasher([]byte("a 32-byte key for the benchmarks"))
	s := NewSecret()
	b.ReportAllocs()
	for b.Loop() {
		if len(h.Hash(s)) == 0 {
			b.Fatal("empty hash")
		}
	}
}

// BenchmarkAuthenticatePrivateKeyJWT is private_key_jwt authentication
// (RFC 7523 §2.2) under the same conditions as BenchmarkAuthenticate: a
// fresh ES256 assertion per request (signed before the timer starts), the
// client's registered key set parsed once and cached, the signature
// verified, and the jti consumed in the real SQLite store (one write).
func BenchmarkAuthenticatePrivateKeyJWT(b *testing.B) { benchPrivateKeyJWT(b, nil) }

// BenchmarkAuthenticatePrivateKeyJWTMemJTI is the same with the jti kept
// in a map instead of the database: the parsing and signature cost alone.
func BenchmarkAuthenticatePrivateKeyJWTMemJTI(b *testing.B) { benchPrivateKeyJWT(b, memJTIs{}) }

// memJTIs is a single-use table in memory (single goroutine).
type memJTIs map[string]bool

func (m memJTIs) ConsumeJTI(_ context.Context, iss, jti string, _ time.Time) error {
	if m[iss+" "+jti] {
		return store.ErrConflict
	}
	m[iss+" "+jti] = true
	return nil
}
func (m memJTIs) DeleteExpiredJTIs(context.Context, time.Time) (int, error) { return 0, nil }

func benchPrivateKeyJWT(b *testing.B, jtis store.UsedJTIs) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "sts.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	cs, err := cached.New(ctx, st, cached.Options{ClientTTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	pk, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	key := jose.JSONWebKey{Key: pk, KeyID: "k1", Algorithm: "ES256", Use: "sig"}
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{key.Public()}})
	now := time.Now()
	if err := cs.CreateClient(ctx, &store.Client{
		ID: "rs08", Name: "bench", Status: store.ClientActive, AuthMethod: oauth.AuthMethodPrivateKeyJWT,
		Binding:    store.Binding{JWKS: jwks},
		GrantTypes: []string{oauth.GrantTypeTokenExchange}, CreatedAt: now, UpdatedAt: now,
	}); err != nil {
		b.Fatal(err)
	}
	const issuer = "https://sts.example.com"
	if jtis == nil {
		jtis = st
	}
	a := &Authenticator{Clients: cs, Accounts: cs.HotAccounts(), Now: time.Now,
		Assertions: NewAssertions(AssertionOptions{Issuer: issuer, TokenEndpoint: issuer + "/token/oauth2", JTIs: jtis})}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: pk}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	if err != nil {
		b.Fatal(err)
	}
	sign := func(i int) url.Values {
		p, _ := json.Marshal(map[string]any{"iss": "rs08", "sub": "rs08", "aud": issuer, "jti": "j" + strconv.Itoa(i),
			"iat": time.Now().Unix(), "exp": time.Now().Add(time.Minute).Unix()})
		obj, err := signer.Sign(p)
		if err != nil {
			b.Fatal(err)
		}
		s, _ := obj.CompactSerialize()
		return url.Values{"grant_type": {oauth.GrantTypeTokenExchange},
			"client_assertion_type": {oauth.ClientAssertionTypeJWTBearer}, "client_assertion": {s}}
	}
	r := httptest.NewRequest(http.MethodPost, "/token/oauth2", nil)
	if _, _, err := a.Authenticate(ctx, r, sign(-1)); err != nil { // warms the caches
		b.Fatal(err)
	}
	forms := make([]url.Values, b.N)
	for i := range forms {
		forms[i] = sign(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, _, err := a.Authenticate(ctx, r, forms[i])
		if err != nil || c.ID != "rs08" {
			b.Fatal(c, err)
		}
	}
}
