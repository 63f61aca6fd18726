package federation

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
)

func newTestFetcher(p *testIdP, o Options) *Fetcher {
	if o.Now == nil {
		o.Now = p.Clock.Now
	}
	return NewFetcher(o)
}

// wantReason asserts err is an *Error whose Reason contains want and
// whose Upstream is upstream.
func wantReason(t *testing.T, err error, want string, upstream bool) *Error {
	t.Helper()
	var fe *Error
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not *Error", err, err)
	}
	if !strings.Contains(fe.Reason, want) {
		t.Fatalf("Reason %q does not contain %q", fe.Reason, want)
	}
	if fe.Upstream != upstream {
		t.Fatalf("Upstream = %v, want %v (reason %q)", fe.Upstream, upstream, fe.Reason)
	}
	return fe
}

func TestVerifyJWTAccepts(t *testing.T) {
	for _, alg := range []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.RS256, jose.PS256, jose.EdDSA} {
		t.Run(string(alg), func(t *testing.T) {
			p := newTestIdP(t, alg)
			f := newTestFetcher(p, Options{})
			ti := p.TrustedIssuer()
			c := p.Claims("alice")
			c["aud"] = []string{"other", "sts"}
			c["groups"] = []string{"a", "b"}
			c["n"] = 3
			c["act"] = map[string]any{"sub": "bot", "iss": "https://ci", "act": map[string]any{"sub": "root", "client_id": "c0"}}
			c["may_act"] = map[string]any{"sub": "helper"}
			raw := p.Sign(c)
			if iss, ok := PeekIssuer(raw); !ok || iss != p.Issuer {
				t.Fatalf("PeekIssuer = %q, %v", iss, ok)
			}
			v, err := f.VerifyJWT(context.Background(), ti, raw, Check{TokenType: oauth.TokenTypeIDToken})
			if err != nil {
				t.Fatal(err)
			}
			if v.Subject != "alice" || v.Via != ViaJWKS || v.KeyID != p.Current().Kid || v.Algorithm != string(alg) {
				t.Fatalf("verified %+v", v)
			}
			if v.KeySource != p.Issuer+"/jwks" {
				t.Fatalf("KeySource %q", v.KeySource)
			}
			if n, ok := v.Claims["n"].(float64); !ok || n != 3 {
				t.Fatalf("claim n = %#v, want float64 3", v.Claims["n"])
			}
			if !v.Expiry.Equal(p.Clock.Now().Add(10*time.Minute)) || !v.IssuedAt.Equal(p.Clock.Now()) {
				t.Fatalf("times %v %v", v.IssuedAt, v.Expiry)
			}
			if v.Act == nil || v.Act.Subject != "bot" || v.Act.Issuer != "https://ci" || v.Act.Actor == nil || v.Act.Actor.ClientID != "c0" || v.Act.Depth() != 2 {
				t.Fatalf("act %+v", v.Act)
			}
			if v.MayAct == nil || v.MayAct.Subject != "helper" {
				t.Fatalf("may_act %+v", v.MayAct)
			}
			if v.Issuer != ti {
				t.Fatal("Issuer is not the trusted issuer")
			}
		})
	}
}

// TestVerifyJWTRefusals: each bad token is refused with a Reason that
// names the issuer and what is wrong.
func TestVerifyJWTRefusals(t *testing.T) {
	p := newTestIdP(t, jose.RS256)
	ti := p.TrustedIssuer()
	ti.MaxAge = time.Hour
	now := p.Clock.Now()
	k := p.Current()
	other := newIdPKey(t, jose.RS256)
	other.Kid = k.Kid // same kid, another key: a forged signature

	pubDER, err := x509.MarshalPKIXPublicKey(k.Priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	jwkJSON, err := json.Marshal(k.JWK())
	if err != nil {
		t.Fatal(err)
	}
	with := func(change func(map[string]any)) map[string]any {
		c := p.Claims("alice")
		change(c)
		return c
	}
	deep := map[string]any{"sub": "a0"}
	for i := 1; i <= 20; i++ {
		deep = map[string]any{"sub": fmt.Sprintf("a%d", i), "act": deep}
	}
	big := p.Claims("alice")
	big["pad"] = strings.Repeat("x", DefaultMaxTokenBytes)

	cases := []struct {
		name   string
		ti     func() *store.TrustedIssuer
		raw    string
		check  *Check // nil: an id_token
		reason string
	}{
		{name: "wrong iss", raw: p.Sign(with(func(c map[string]any) { c["iss"] = "https://evil.example" })),
			reason: "token is not from issuer " + p.Issuer + `: its iss is "https://evil.example"`},
		{name: "alg none", raw: hand(t, map[string]any{"alg": "none", "typ": "JWT"}, p.Claims("alice"), nil),
			reason: "token from issuer " + p.Issuer + " is signed with alg none, which is not accepted"},
		{name: "HS256 with the public key PEM as secret", raw: hand(t, map[string]any{"alg": "HS256", "kid": k.Kid}, p.Claims("alice"), pubPEM),
			reason: "is signed with alg HS256, which is not accepted"},
		{name: "HS256 with the JWK JSON as secret", raw: hand(t, map[string]any{"alg": "HS256"}, p.Claims("alice"), jwkJSON),
			reason: "is signed with alg HS256, which is not accepted"},
		{name: "alg outside the issuer's list", ti: func() *store.TrustedIssuer { x := *ti; x.Algorithms = []string{"ES256"}; return &x },
			raw: p.Sign(p.Claims("alice")), reason: "is signed with alg RS256, which is not accepted"},
		{name: "HS256 listed by the operator is still refused", ti: func() *store.TrustedIssuer { x := *ti; x.Algorithms = []string{"HS256", "RS256"}; return &x },
			raw: hand(t, map[string]any{"alg": "HS256"}, p.Claims("alice"), pubPEM), reason: "alg HS256, which is not accepted"},
		{name: "forged signature", raw: p.SignWith(other, nil, p.Claims("alice")), reason: "has an invalid signature"},
		{name: "expired", raw: p.Sign(with(func(c map[string]any) { c["exp"] = now.Add(-31 * time.Second).Unix() })),
			reason: "token from issuer " + p.Issuer + " is expired"},
		{name: "no exp", raw: p.Sign(with(func(c map[string]any) { delete(c, "exp") })), reason: "has no exp"},
		{name: "nbf in the future", raw: p.Sign(with(func(c map[string]any) { c["nbf"] = now.Add(time.Minute).Unix() })),
			reason: "is not valid yet"},
		{name: "iat in the future", raw: p.Sign(with(func(c map[string]any) { c["iat"] = now.Add(time.Minute).Unix() })),
			reason: "was issued in the future"},
		{name: "too old", raw: p.Sign(with(func(c map[string]any) { c["iat"] = now.Add(-2 * time.Hour).Unix() })),
			reason: "is too old (issued more than 1h0m0s ago)"},
		{name: "no iat with MaxAge", raw: p.Sign(with(func(c map[string]any) { delete(c, "iat") })),
			reason: "has no iat"},
		{name: "wrong aud", raw: p.Sign(with(func(c map[string]any) { c["aud"] = []string{"x", "y"} })),
			reason: "token from issuer " + p.Issuer + ": audience must include one of [sts]"},
		{name: "no aud", raw: p.Sign(with(func(c map[string]any) { delete(c, "aud") })),
			reason: "audience must include one of [sts]"},
		{name: "aud of the check replaces the issuer's", raw: p.Sign(p.Claims("alice")), check: &Check{Audiences: []string{"https://sts.example/token"}},
			reason: "audience must include one of [https://sts.example/token]"},
		{name: "no audience configured", ti: func() *store.TrustedIssuer { x := *ti; x.Audiences = nil; return &x },
			raw: p.Sign(p.Claims("alice")), reason: "no audience is configured for tokens of issuer " + p.Issuer},
		{name: "missing sub", raw: p.Sign(with(func(c map[string]any) { delete(c, "sub") })), reason: "token from issuer " + p.Issuer + " has no sub"},
		{name: "empty sub", raw: p.Sign(with(func(c map[string]any) { c["sub"] = "" })), reason: "has no sub"},
		{name: "oversized", raw: p.Sign(big), reason: fmt.Sprintf("is larger than %d bytes", DefaultMaxTokenBytes)},
		{name: "type not accepted", ti: func() *store.TrustedIssuer { x := *ti; x.TokenTypes = []string{oauth.TokenTypeIDToken}; return &x },
			raw: p.Sign(p.Claims("alice")), check: &Check{TokenType: oauth.TokenTypeAccessToken}, reason: "does not accept tokens of type " + oauth.TokenTypeAccessToken},
		{name: "bearer assertion needs jwt type", ti: func() *store.TrustedIssuer { x := *ti; x.TokenTypes = []string{oauth.TokenTypeIDToken}; return &x },
			raw: p.Sign(p.Claims("alice")), check: &Check{}, reason: "does not accept tokens of type " + oauth.TokenTypeJWT},
		{name: "at+jwt as id_token", raw: p.SignWith(k, map[string]any{"typ": "at+jwt"}, p.Claims("alice")), check: &Check{TokenType: oauth.TokenTypeIDToken},
			reason: "is an access token (typ at+jwt), not an id_token"},
		{name: "act not an object", raw: p.Sign(with(func(c map[string]any) { c["act"] = "bob" })), reason: "has a malformed act or may_act claim"},
		{name: "act without sub", raw: p.Sign(with(func(c map[string]any) { c["act"] = map[string]any{"iss": "x"} })), reason: "malformed act"},
		{name: "may_act sub not a string", raw: p.Sign(with(func(c map[string]any) { c["may_act"] = map[string]any{"sub": 5} })), reason: "malformed act or may_act"},
		{name: "act too deep", raw: p.Sign(with(func(c map[string]any) { c["act"] = deep })), reason: "malformed act"},
		{name: "exp not a number", raw: p.Sign(with(func(c map[string]any) { c["exp"] = "soon" })), reason: "has malformed claims"},
		{name: "not a JWS", raw: "opaque-token", reason: "is not a compact signed JWT"},
		{name: "JWE shaped", raw: "a.b.c.d.e", reason: "is not a compact signed JWT"},
		{name: "unknown kid", raw: p.SignWith(&idpKey{Kid: "nope", Alg: jose.RS256, Priv: other.Priv}, nil, p.Claims("alice")),
			reason: "no key of issuer " + p.Issuer + ` has kid "nope"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newTestFetcher(p, Options{})
			x := ti
			if tc.ti != nil {
				x = tc.ti()
			}
			check := Check{TokenType: oauth.TokenTypeIDToken}
			if tc.check != nil {
				check = *tc.check
			}
			v, err := f.VerifyJWT(context.Background(), x, tc.raw, check)
			if err == nil {
				t.Fatalf("accepted: %+v", v)
			}
			wantReason(t, err, tc.reason, false)
		})
	}
	// The same token, valid, is accepted: the cases fail for their reason.
	f := newTestFetcher(p, Options{})
	if _, err := f.VerifyJWT(context.Background(), ti, p.Sign(p.Claims("alice")), Check{TokenType: oauth.TokenTypeIDToken}); err != nil {
		t.Fatal(err)
	}
	// Leeway: expired 20 s ago is within the 30 s leeway.
	if _, err := f.VerifyJWT(context.Background(), ti, p.Sign(with(func(c map[string]any) { c["exp"] = now.Add(-20 * time.Second).Unix() })), Check{TokenType: oauth.TokenTypeJWT}); err != nil {
		t.Fatalf("within leeway: %v", err)
	}
}

// TestHotPathMakesNoFetch: once keys are cached, verifying makes no
// outbound request.
func TestHotPathMakesNoFetch(t *testing.T) {
	p := newTestIdP(t, jose.ES256)
	f := newTestFetcher(p, Options{})
	ti := p.TrustedIssuer()
	raw := p.Sign(p.Claims("alice"))
	if _, err := f.VerifyJWT(context.Background(), ti, raw, Check{}); err != nil {
		t.Fatal(err)
	}
	if got := f.Fetches(); got != 2 {
		t.Fatalf("first verification made %d fetches, want 2 (discovery, JWKS)", got)
	}
	for i := range 100 {
		if _, err := f.VerifyJWT(context.Background(), ti, p.Sign(p.Claims(fmt.Sprint("u", i))), Check{}); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.Fetches(); got != 2 {
		t.Fatalf("hot path made %d fetches", got-2)
	}
	if p.DiscoveryHits.Load() != 1 || p.JWKSHits.Load() != 1 {
		t.Fatalf("upstream saw %d discovery and %d JWKS requests", p.DiscoveryHits.Load(), p.JWKSHits.Load())
	}
}

// TestColdStartSharesOneFetch: concurrent first verifications share one
// discovery and one JWKS fetch.
func TestColdStartSharesOneFetch(t *testing.T) {
	p := newTestIdP(t, jose.ES256)
	f := newTestFetcher(p, Options{})
	ti := p.TrustedIssuer()
	raw := p.Sign(p.Claims("alice"))
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Go(func() {
			if _, err := f.VerifyJWT(context.Background(), ti, raw, Check{}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if p.DiscoveryHits.Load() != 1 || p.JWKSHits.Load() != 1 {
		t.Fatalf("upstream saw %d discovery and %d JWKS requests, want 1 and 1", p.DiscoveryHits.Load(), p.JWKSHits.Load())
	}
}

// TestUnknownKidRefreshRateLimited: many tokens with random kids, at
// once and one after another, cause one refresh per UnknownKidInterval.
func TestUnknownKidRefreshRateLimited(t *testing.T) {
	p := newTestIdP(t, jose.ES256)
	f := newTestFetcher(p, Options{UnknownKidInterval: 30 * time.Second})
	ti := p.TrustedIssuer()
	if _, err := f.VerifyJWT(context.Background(), ti, p.Sign(p.Claims("alice")), Check{}); err != nil {
		t.Fatal(err)
	}
	before := p.JWKSHits.Load()
	stranger := newIdPKey(t, jose.ES256)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			k := &idpKey{Kid: fmt.Sprintf("random-%d", i), Alg: jose.ES256, Priv: stranger.Priv}
			_, err := f.VerifyJWT(context.Background(), ti, p.SignWith(k, nil, p.Claims("mallory")), Check{})
			var fe *Error
			if !errors.As(err, &fe) || !strings.Contains(fe.Reason, "has kid") {
				t.Errorf("random kid: %v", err)
			}
		})
	}
	wg.Wait()
	for i := range 20 {
		k := &idpKey{Kid: fmt.Sprintf("later-%d", i), Alg: jose.ES256, Priv: stranger.Priv}
		_, err := f.VerifyJWT(context.Background(), ti, p.SignWith(k, nil, p.Claims("mallory")), Check{})
		wantReason(t, err, "has kid", false)
	}
	if got := p.JWKSHits.Load() - before; got != 1 {
		t.Fatalf("70 unknown kids caused %d JWKS fetches, want 1", got)
	}
	p.Clock.Advance(31 * time.Second)
	k := &idpKey{Kid: "after-interval", Alg: jose.ES256, Priv: stranger.Priv}
	_, err := f.VerifyJWT(context.Background(), ti, p.SignWith(k, nil, p.Claims("mallory")), Check{})
	wantReason(t, err, `has kid "after-interval"`, false)
	if got := p.JWKSHits.Load() - before; got != 2 {
		t.Fatalf("after the interval: %d JWKS fetches, want 2", got)
	}
}

// TestUnknownKidFloodCannotBlockRotation: the refresh budget is per
// caller, so a client that spent its own on random kids cannot hold back
// another client's token signed with a key the upstream just rotated in.
func TestUnknownKidFloodCannotBlockRotation(t *testing.T) {
	p := newTestIdP(t, jose.ES256)
	f := newTestFetcher(p, Options{UnknownKidInterval: 30 * time.Second})
	ti := p.TrustedIssuer()
	if _, err := f.VerifyJWT(context.Background(), ti, p.Sign(p.Claims("alice")), Check{Caller: "good"}); err != nil {
		t.Fatal(err)
	}
	before := p.JWKSHits.Load()
	stranger := newIdPKey(t, jose.ES256)
	for i := range 20 {
		k := &idpKey{Kid: fmt.Sprintf("random-%d", i), Alg: jose.ES256, Priv: stranger.Priv}
		_, err := f.VerifyJWT(context.Background(), ti, p.SignWith(k, nil, p.Claims("mallory")), Check{Caller: "mallory"})
		wantReason(t, err, "has kid", false)
	}
	if got := p.JWKSHits.Load() - before; got != 1 {
		t.Fatalf("20 random kids of one caller caused %d fetches, want 1", got)
	}
	p.Rotate(jose.ES256, true)
	if _, err := f.VerifyJWT(context.Background(), ti, p.Sign(p.Claims("alice")), Check{Caller: "good"}); err != nil {
		t.Fatalf("a token with the rotated-in key, after another caller's flood: %v", err)
	}
	if got := p.JWKSHits.Load() - before; got != 2 {
		t.Fatalf("%d fetches, want 2", got)
	}
}

// TestKeyRotationPickedUp: the upstream rotates its key; the first token
// with the new kid refreshes the keys and is accepted, and an old token
// still verifies while the old key is published.
func TestKeyRotationPickedUp(t *testing.T) {
	p := newTestIdP(t, jose.RS256)
	f := newTestFetcher(p, Options{})
	ti := p.TrustedIssuer()
	old := p.Sign(p.Claims("alice"))
	if _, err := f.VerifyJWT(context.Background(), ti, old, Check{}); err != nil {
		t.Fatal(err)
	}
	p.Rotate(jose.ES256, true)
	fresh := p.Sign(p.Claims("bob"))
	v, err := f.VerifyJWT(context.Background(), ti, fresh, Check{})
	if err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	if v.KeyID != p.Current().Kid || v.Algorithm != "ES256" {
		t.Fatalf("verified with %s %s", v.KeyID, v.Algorithm)
	}
	if _, err := f.VerifyJWT(context.Background(), ti, old, Check{}); err != nil {
		t.Fatalf("old token after graceful rotation: %v", err)
	}
	if p.JWKSHits.Load() != 2 {
		t.Fatalf("JWKS fetched %d times, want 2", p.JWKSHits.Load())
	}
}

// TestCacheControl: max-age is honoured within [MinCache, MaxCache]; 15
// minutes without it.
func TestCacheControl(t *testing.T) {
	cases := []struct {
		cc    string
		fresh time.Duration // still cached at this age
		stale time.Duration // fetched again at this age
	}{
		{"max-age=300", 299 * time.Second, 301 * time.Second},
		{"public, max-age=5", 59 * time.Second, 61 * time.Second},           // clamped up to MinCache (1 min)
		{"max-age=999999", 119 * time.Minute, 121 * time.Minute},            // clamped down to MaxCache (2 h here)
		{"no-store", 59 * time.Second, 61 * time.Second},                    // MinCache
		{"", 14*time.Minute + 59*time.Second, 15*time.Minute + time.Second}, // default
	}
	for _, tc := range cases {
		t.Run(tc.cc, func(t *testing.T) {
			p := newTestIdP(t, jose.ES256)
			p.SetCacheControl(tc.cc)
			f := newTestFetcher(p, Options{MinCache: time.Minute, MaxCache: 2 * time.Hour})
			ti := p.TrustedIssuer()
			start := p.Clock.Now()
			verify := func() {
				t.Helper()
				c := p.Claims("alice")
				c["exp"] = p.Clock.Now().Add(time.Minute).Unix()
				if _, err := f.VerifyJWT(context.Background(), ti, p.Sign(c), Check{}); err != nil {
					t.Fatal(err)
				}
			}
			verify()
			p.Clock.Advance(tc.fresh - p.Clock.Now().Sub(start))
			verify()
			if got, d := p.JWKSHits.Load(), p.DiscoveryHits.Load(); got != 1 || d != 1 {
				t.Fatalf("at %s: %d JWKS and %d discovery fetches, want 1 and 1", tc.fresh, got, d)
			}
			p.Clock.Advance(tc.stale - p.Clock.Now().Sub(start))
			verify()
			if got, d := p.JWKSHits.Load(), p.DiscoveryHits.Load(); got != 2 || d != 2 {
				t.Fatalf("at %s: %d JWKS and %d discovery fetches, want 2 and 2", tc.stale, got, d)
			}
		})
	}
}

// TestStaticJWKS: a configured key set is parsed once per version of the
// issuer and never fetched.
func TestStaticJWKS(t *testing.T) {
	p := newTestIdP(t, jose.EdDSA)
	f := newTestFetcher(p, Options{})
	ti := p.TrustedIssuer()
	set, err := json.Marshal(p.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	ti.JWKS = set
	v, err := f.VerifyJWT(context.Background(), ti, p.Sign(p.Claims("alice")), Check{})
	if err != nil {
		t.Fatal(err)
	}
	if v.KeySource != KeySourceStatic {
		t.Fatalf("KeySource %q", v.KeySource)
	}
	// A rotated key in a record of the same version is not seen (parsed
	// once); the new version of the record is.
	p.Rotate(jose.EdDSA, false)
	set2, _ := json.Marshal(p.JWKS())
	ti2 := *ti
	ti2.JWKS = set2
	_, err = f.VerifyJWT(context.Background(), &ti2, p.Sign(p.Claims("alice")), Check{})
	wantReason(t, err, "has kid", false)
	ti2.UpdatedAt = ti.UpdatedAt.Add(time.Second)
	if _, err := f.VerifyJWT(context.Background(), &ti2, p.Sign(p.Claims("alice")), Check{}); err != nil {
		t.Fatalf("new version: %v", err)
	}
	if f.Fetches() != 0 {
		t.Fatalf("static keys caused %d fetches", f.Fetches())
	}
	// A configured set without usable keys is refused, not upstream.
	ti3 := *ti
	ti3.JWKS = []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"s"}]}`)
	ti3.UpdatedAt = ti.UpdatedAt.Add(2 * time.Second)
	_, err = f.VerifyJWT(context.Background(), &ti3, p.Sign(p.Claims("alice")), Check{})
	wantReason(t, err, "the configured key set of issuer "+p.Issuer+" is unusable", false)
}

// TestJWKSIgnoresSymmetricPrivateAndEncryptionKeys: an oct key, a
// private key and an "enc" key are not used for verification, even
// when the token names their kid.
func TestJWKSIgnoresSymmetricPrivateAndEncryptionKeys(t *testing.T) {
	p := newTestIdP(t, jose.ES256)
	p.AddRawJWK(json.RawMessage(`{"kty":"oct","kid":"sym","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0","alg":"HS256"}`))
	priv := newIdPKey(t, jose.ES256)
	priv.Kid = "priv"
	pj, err := json.Marshal(jose.JSONWebKey{Key: priv.Priv, KeyID: "priv", Algorithm: "ES256", Use: "sig"})
	if err != nil {
		t.Fatal(err)
	}
	p.AddRawJWK(pj)
	enc := newIdPKey(t, jose.ES256)
	enc.Kid = "enc"
	ej, _ := json.Marshal(jose.JSONWebKey{Key: enc.Priv.Public(), KeyID: "enc", Algorithm: "ES256", Use: "enc"})
	p.AddRawJWK(ej)
	p.AddRawJWK(json.RawMessage(`{"kty":"weird","kid":"w"}`))
	f := newTestFetcher(p, Options{})
	ti := p.TrustedIssuer()
	if _, err := f.VerifyJWT(context.Background(), ti, p.Sign(p.Claims("alice")), Check{}); err != nil {
		t.Fatalf("the good key beside odd ones: %v", err)
	}
	_, err = f.VerifyJWT(context.Background(), ti, hand(t, map[string]any{"alg": "HS256", "kid": "sym"}, p.Claims("alice"), []byte("secret-secret-secret-secret")), Check{})
	wantReason(t, err, "alg HS256, which is not accepted", false)
	_, err = f.VerifyJWT(context.Background(), ti, p.SignWith(priv, nil, p.Claims("alice")), Check{})
	wantReason(t, err, `has kid "priv"`, false)
	_, err = f.VerifyJWT(context.Background(), ti, p.SignWith(enc, nil, p.Claims("alice")), Check{})
	wantReason(t, err, `has kid "enc"`, false)
}

// TestSPIFFEBundle: a SPIFFE trust bundle's "jwt-svid" keys verify
// JWT-SVIDs; its "x509-svid" authorities do not sign JWTs.
func TestSPIFFEBundle(t *testing.T) {
	p := newTestIdP(t, jose.ES256)
	jwtKey := newIdPKey(t, jose.ES256)
	jwtKey.Kid = "jwt-authority"
	jj, _ := json.Marshal(jose.JSONWebKey{Key: jwtKey.Priv.Public(), KeyID: "jwt-authority", Use: "jwt-svid"})
	p.AddRawJWK(jj)
	x509Key := newIdPKey(t, jose.ES256)
	x509Key.Kid = "x509-authority"
	xj, _ := json.Marshal(jose.JSONWebKey{Key: x509Key.Priv.Public(), KeyID: "x509-authority", Use: "x509-svid"})
	p.AddRawJWK(xj)
	f := newTestFetcher(p, Options{})
	ti := p.TrustedIssuer()
	svid := p.Claims("spiffe://example.org/ns/prod/sa/deployer")
	if _, err := f.VerifyJWT(context.Background(), ti, p.SignWith(jwtKey, nil, svid), Check{}); err != nil {
		t.Fatalf("a JWT-SVID signed by the bundle's jwt-svid key: %v", err)
	}
	_, err := f.VerifyJWT(context.Background(), ti, p.SignWith(x509Key, nil, svid), Check{})
	wantReason(t, err, `has kid "x509-authority"`, false)
}

// TestNoKidTriesFittingKeys: a token without kid is verified by a key of
// its algorithm's type.
func TestNoKidTriesFittingKeys(t *testing.T) {
	p := newTestIdP(t, jose.RS256)
	es := p.Rotate(jose.ES256, true)
	f := newTestFetcher(p, Options{})
	ti := p.TrustedIssuer()
	noKid := &idpKey{Alg: es.Alg, Priv: es.Priv}
	v, err := f.VerifyJWT(context.Background(), ti, p.SignWith(noKid, nil, p.Claims("alice")), Check{})
	if err != nil {
		t.Fatal(err)
	}
	if v.KeyID != es.Kid {
		t.Fatalf("verified by %q", v.KeyID)
	}
	stranger := newIdPKey(t, jose.EdDSA)
	_, err = f.VerifyJWT(context.Background(), ti, p.SignWith(&idpKey{Alg: jose.EdDSA, Priv: stranger.Priv}, nil, p.Claims("alice")), Check{})
	wantReason(t, err, "fits alg EdDSA (the token has no kid)", false)
}

func TestPeekIssuer(t *testing.T) {
	p := newTestIdP(t, jose.ES256)
	for _, tc := range []struct {
		raw  string
		iss  string
		want bool
	}{
		{p.Sign(p.Claims("a")), p.Issuer, true},
		{hand(t, map[string]any{"alg": "none"}, map[string]any{"iss": "x"}, nil), "x", true},
		{hand(t, map[string]any{"alg": "none"}, map[string]any{"iss": 5}, nil), "", false},
		{hand(t, map[string]any{"alg": "none"}, map[string]any{"iss": ""}, nil), "", false},
		{hand(t, map[string]any{"alg": "none"}, map[string]any{"sub": "x"}, nil), "", false},
		{"opaque", "", false},
		{"a.b", "", false},
		{"a.!!.c", "", false},
		{"a.b.c.d.e", "", false},
		{"", "", false},
		{"x." + strings.Repeat("A", maxPeekBytes) + ".y", "", false},
	} {
		iss, ok := PeekIssuer(tc.raw)
		if iss != tc.iss || ok != tc.want {
			t.Errorf("PeekIssuer(%.40q) = %q, %v; want %q, %v", tc.raw, iss, ok, tc.iss, tc.want)
		}
	}
}

func FuzzPeekIssuer(f *testing.F) {
	f.Add("eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.")
	f.Add("a.b.c")
	f.Add("..")
	f.Add("eyJ9.eyJpc3MiOlsxXX0.x")
	f.Add(hand(f, map[string]any{"alg": "ES256"}, map[string]any{"iss": "https://issuer.example", "sub": "a"}, []byte("k")))
	f.Fuzz(func(t *testing.T, raw string) {
		iss, ok := PeekIssuer(raw)
		if ok != (iss != "") {
			t.Fatalf("ok %v with iss %q", ok, iss)
		}
		if ok && (len(raw) > maxPeekBytes || strings.Count(raw, ".") != 2) {
			t.Fatalf("accepted %q", raw)
		}
	})
}

func BenchmarkVerifyJWT(b *testing.B) {
	p := newTestIdP(b, jose.ES256)
	f := newTestFetcher(p, Options{})
	ti := p.TrustedIssuer()
	raw := p.Sign(p.Claims("alice"))
	ctx := context.Background()
	if _, err := f.VerifyJWT(ctx, ti, raw, Check{}); err != nil {
		b.Fatal(err)
	}
	n := f.Fetches()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.VerifyJWT(ctx, ti, raw, Check{}); err != nil {
			b.Fatal(err)
		}
	}
	if f.Fetches() != n {
		b.Fatal("the benchmark fetched")
	}
}

// TestWorkloadShapedTokens: tokens shaped as Kubernetes projected service
// account tokens and GitHub Actions OIDC tokens (claims as those
// platforms document them) verify, with their nested and string claims
// intact for the policy.
func TestWorkloadShapedTokens(t *testing.T) {
	p := newTestIdP(t, jose.RS256)
	f := newTestFetcher(p, Options{})
	now := p.Clock.Now()
	k8s := map[string]any{
		"aud": []string{"sts"}, "iss": p.Issuer, "sub": "system:serviceaccount:payments:api",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(), "jti": "0b6a2c7e",
		"kubernetes.io": map[string]any{
			"namespace":      "payments",
			"node":           map[string]any{"name": "node-1", "uid": "7f1b"},
			"pod":            map[string]any{"name": "api-5d9c", "uid": "a1b2"},
			"serviceaccount": map[string]any{"name": "api", "uid": "c3d4"},
		},
	}
	gha := map[string]any{
		"jti": "ef9b", "sub": "repo:octo-org/octo-repo:ref:refs/heads/main", "aud": "sts",
		"ref": "refs/heads/main", "sha": "d4e5", "repository": "octo-org/octo-repo", "repository_owner": "octo-org",
		"repository_id": "74", "repository_owner_id": "65", "repository_visibility": "private",
		"actor": "octocat", "actor_id": "12", "run_id": "42", "run_number": "10", "run_attempt": "2",
		"workflow": "deploy", "event_name": "push", "ref_type": "branch", "environment": "prod",
		"job_workflow_ref":   "octo-org/octo-repo/.github/workflows/deploy.yml@refs/heads/main",
		"runner_environment": "github-hosted",
		"iss":                p.Issuer, "nbf": now.Unix(), "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
	}
	ti := p.TrustedIssuer()
	ti.MaxAge = 10 * time.Minute
	v, err := f.VerifyJWT(context.Background(), ti, p.Sign(k8s), Check{TokenType: oauth.TokenTypeJWT})
	if err != nil {
		t.Fatal(err)
	}
	ns := v.Claims["kubernetes.io"].(map[string]any)
	if ns["namespace"] != "payments" || ns["serviceaccount"].(map[string]any)["name"] != "api" {
		t.Fatalf("kubernetes.io claim %v", ns)
	}
	v, err = f.VerifyJWT(context.Background(), ti, p.SignWith(p.Current(), map[string]any{"x5t": "abc"}, gha), Check{TokenType: oauth.TokenTypeJWT})
	if err != nil {
		t.Fatal(err)
	}
	if v.Subject != "repo:octo-org/octo-repo:ref:refs/heads/main" || v.Claims["repository"] != "octo-org/octo-repo" || v.Claims["ref"] != "refs/heads/main" {
		t.Fatalf("GitHub claims %v", v.Claims)
	}
}

// BenchmarkGoJoseES256 is the floor under BenchmarkVerifyJWT: parsing
// and verifying the same token with go-jose alone, key in hand.
func BenchmarkGoJoseES256(b *testing.B) {
	p := newTestIdP(b, jose.ES256)
	raw := p.Sign(p.Claims("alice"))
	pub := p.Current().Priv.Public()
	b.ReportAllocs()
	for b.Loop() {
		tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			b.Fatal(err)
		}
		var c jwt.Claims
		if err := tok.Claims(pub, &c); err != nil {
			b.Fatal(err)
		}
	}
}
