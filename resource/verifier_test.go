package resource_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/keybridge/sts/resource"
)

func newVerifier(t testing.TB, ti *testIssuer, clk *clock, mutate func(*resource.Config)) *resource.Verifier {
	t.Helper()
	cfg := resource.Config{Issuer: ti.URL, Audience: audience, Now: clk.Now}
	if mutate != nil {
		mutate(&cfg)
	}
	v, err := resource.NewVerifier(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestVerifyAlgorithms accepts a valid at+jwt token of each default
// algorithm and returns its claims, scope, client_id and act chain.
func TestVerifyAlgorithms(t *testing.T) {
	ti := newTestIssuer(t)
	clk := newClock()
	v := newVerifier(t, ti, clk, nil)
	kids := map[string]string{}
	for _, alg := range resource.DefaultAlgorithms {
		kids[alg] = ti.addKey(alg, true)
	}
	for _, alg := range resource.DefaultAlgorithms {
		t.Run(alg, func(t *testing.T) {
			kid := kids[alg]
			c, err := v.Verify(context.Background(), ti.sign(kid, alg, "at+jwt", ti.claims(clk.Now())))
			if err != nil {
				t.Fatal(err)
			}
			if c.Issuer != ti.URL || c.Subject != "user-1" || !c.Audience.Contains(audience) || c.ID != "id-1" ||
				!c.Expiry.Equal(clk.Now().Add(time.Hour)) || !c.IssuedAt.Equal(clk.Now()) || c.Introspected {
				t.Errorf("claims %+v", c)
			}
			if c.ClientID != "rs08" || !c.HasScope("read") || c.HasScope("rea") || strings.Join(c.Scopes(), ",") != "api,read" {
				t.Errorf("client_id %q scope %q", c.ClientID, c.Scope)
			}
			chain := c.ActorChain()
			if len(chain) != 2 || chain[0].Subject != "rs08" || chain[1].Subject != "gateway" {
				t.Errorf("act chain %+v", chain)
			}
			var extra struct {
				Act struct{ Act struct{ Sub string } }
			}
			if err := c.Decode(&extra); err != nil || extra.Act.Act.Sub != "gateway" {
				t.Errorf("Decode: %v %+v", err, extra)
			}
		})
	}
}

// TestVerifyRefuses covers each rule a token must pass.
func TestVerifyRefuses(t *testing.T) {
	ti := newTestIssuer(t)
	clk := newClock()
	v := newVerifier(t, ti, clk, nil)
	es := ti.addKey("ES256", true)
	ed := ti.addKey("EdDSA", true)
	unpublished := ti.addKey("ES256", false)
	now := clk.Now()
	with := func(mod func(map[string]any)) map[string]any {
		c := ti.claims(now)
		mod(c)
		return c
	}
	good := ti.sign(es, "ES256", "at+jwt", ti.claims(now))
	parts := strings.Split(good, ".")

	// HS256 "signed" with the published public key as the HMAC secret:
	// the classic algorithm-confusion attack.
	ti.mu.Lock()
	pubDER, _ := x509.MarshalPKIXPublicKey(ti.signers[es].Public())
	ti.mu.Unlock()
	hsHeader := map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": es}
	hsInput := unsigned(hsHeader, ti.claims(now), nil)
	mac := hmac.New(sha256.New, pubDER)
	mac.Write([]byte(strings.TrimSuffix(hsInput, ".")))
	hs := strings.TrimSuffix(hsInput, ".") + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))

	for _, tc := range []struct {
		name  string
		token string
		want  error
	}{
		{"alg none", unsigned(map[string]any{"alg": "none", "typ": "at+jwt", "kid": es}, ti.claims(now), nil), resource.ErrAlgorithm},
		{"HS256 with the public key", hs, resource.ErrAlgorithm},
		{"EdDSA token under an ES256 key's kid", resignAs(t, ti, ed, es, now), resource.ErrAlgorithm},
		{"typ JWT (not an access token)", ti.sign(es, "ES256", "JWT", ti.claims(now)), resource.ErrType},
		{"no typ", ti.sign(es, "ES256", "", ti.claims(now)), resource.ErrType},
		{"unknown kid", ti.sign(unpublished, "ES256", "at+jwt", ti.claims(now)), resource.ErrUnknownKey},
		{"tampered payload", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"x"}`)) + "." + parts[2], resource.ErrSignature},
		{"other issuer", ti.sign(es, "ES256", "at+jwt", with(func(c map[string]any) { c["iss"] = "https://evil.example" })), resource.ErrIssuer},
		{"no iss", ti.sign(es, "ES256", "at+jwt", with(func(c map[string]any) { delete(c, "iss") })), resource.ErrMissingClaim},
		{"other audience", ti.sign(es, "ES256", "at+jwt", with(func(c map[string]any) { c["aud"] = []string{"https://other.example", "x"} })), resource.ErrAudience},
		{"no aud", ti.sign(es, "ES256", "at+jwt", with(func(c map[string]any) { delete(c, "aud") })), resource.ErrMissingClaim},
		{"no exp", ti.sign(es, "ES256", "at+jwt", with(func(c map[string]any) { delete(c, "exp") })), resource.ErrMissingClaim},
		{"no sub", ti.sign(es, "ES256", "at+jwt", with(func(c map[string]any) { delete(c, "sub") })), resource.ErrMissingClaim},
		{"expired beyond leeway", ti.sign(es, "ES256", "at+jwt", with(func(c map[string]any) { c["exp"] = now.Add(-31 * time.Second).Unix() })), resource.ErrExpired},
		{"nbf beyond leeway", ti.sign(es, "ES256", "at+jwt", with(func(c map[string]any) { c["nbf"] = now.Add(31 * time.Second).Unix() })), resource.ErrNotYetValid},
		{"iat in the future", ti.sign(es, "ES256", "at+jwt", with(func(c map[string]any) { c["iat"] = now.Add(time.Hour).Unix() })), resource.ErrNotYetValid},
		{"exp not a number", ti.sign(es, "ES256", "at+jwt", with(func(c map[string]any) { c["exp"] = "tomorrow" })), resource.ErrMalformed},
		{"garbage", "a.b.c", resource.ErrMalformed},
		{"opaque without introspection", "sts_at_abcdef", resource.ErrMalformed},
		{"too long", strings.Repeat("a", 20000) + ".b.c", resource.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := v.Verify(context.Background(), tc.token)
			if !errors.Is(err, tc.want) || c != nil {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}

	// The leeway (30 s by default) tolerates small skews, and
	// application/at+jwt is the same type as at+jwt.
	for name, tok := range map[string]string{
		"expired within leeway": ti.sign(es, "ES256", "at+jwt", with(func(c map[string]any) { c["exp"] = now.Add(-29 * time.Second).Unix() })),
		"nbf within leeway":     ti.sign(es, "ES256", "at+jwt", with(func(c map[string]any) { c["nbf"] = now.Add(29 * time.Second).Unix() })),
		"application/at+jwt":    ti.sign(es, "ES256", "application/at+jwt", ti.claims(now)),
		"audience array":        ti.sign(es, "ES256", "at+jwt", with(func(c map[string]any) { c["aud"] = []string{"x", audience} })),
		"fractional exp":        ti.sign(es, "ES256", "at+jwt", with(func(c map[string]any) { c["exp"] = float64(now.Add(time.Hour).Unix()) + 0.5 })),
	} {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// resignAs signs valid claims with the key from but names the kid of to,
// so the header algorithm differs from the one the named key declares.
func resignAs(t *testing.T, ti *testIssuer, from, to string, now time.Time) string {
	ti.mu.Lock()
	priv := ti.signers[from]
	ti.mu.Unlock()
	opts := (&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", to)
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: priv}, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(ti.claims(now))
	obj, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := obj.CompactSerialize()
	return out
}

func TestConfigRefusesWeakAlgorithms(t *testing.T) {
	ti := newTestIssuer(t)
	for _, alg := range []string{"none", "HS256", "HS512", "ES257"} {
		_, err := resource.NewVerifier(context.Background(), resource.Config{Issuer: ti.URL, Audience: audience, Algorithms: []string{"ES256", alg}})
		if err == nil {
			t.Errorf("algorithm %q accepted in the allow-list", alg)
		}
	}
	if _, err := resource.NewVerifier(context.Background(), resource.Config{Issuer: ti.URL}); err == nil {
		t.Error("no audience accepted")
	}
	// Algorithms narrows the list: an EdDSA token is refused by an
	// ES256-only verifier.
	clk := newClock()
	v := newVerifier(t, ti, clk, func(c *resource.Config) { c.Algorithms = []string{"ES256"} })
	kid := ti.addKey("EdDSA", true)
	if _, err := v.Verify(context.Background(), ti.sign(kid, "EdDSA", "at+jwt", ti.claims(clk.Now()))); !errors.Is(err, resource.ErrAlgorithm) {
		t.Errorf("EdDSA with an ES256 allow-list: %v", err)
	}
}

// TestJWKSCache: the set is fetched once, reused until its max-age, then
// fetched again; the verifier discovered jwks_uri from the metadata.
func TestJWKSCache(t *testing.T) {
	ti := newTestIssuer(t)
	clk := newClock()
	v := newVerifier(t, ti, clk, nil)
	kid := ti.addKey("ES256", true)
	if ti.jwksFetches.Load() != 0 {
		t.Fatal("JWK set fetched before any token")
	}
	for range 20 {
		if _, err := v.Verify(context.Background(), ti.sign(kid, "ES256", "at+jwt", ti.claims(clk.Now()))); err != nil {
			t.Fatal(err)
		}
	}
	if n := ti.jwksFetches.Load(); n != 1 {
		t.Fatalf("%d fetches for 20 tokens, want 1", n)
	}
	clk.Advance(301 * time.Second) // past max-age=300
	if _, err := v.Verify(context.Background(), ti.sign(kid, "ES256", "at+jwt", ti.claims(clk.Now()))); err != nil {
		t.Fatal(err)
	}
	if n := ti.jwksFetches.Load(); n != 2 {
		t.Fatalf("%d fetches after max-age, want 2", n)
	}
	// The issuer is down: the stale keys keep working.
	ti.mu.Lock()
	ti.jwksStatus = 503
	ti.mu.Unlock()
	clk.Advance(301 * time.Second)
	if _, err := v.Verify(context.Background(), ti.sign(kid, "ES256", "at+jwt", ti.claims(clk.Now()))); err != nil {
		t.Fatalf("stale keys not used while the issuer is down: %v", err)
	}
}

// TestJWKSRefreshOnUnknownKID: a key published after the first fetch is
// found by one refresh; forged kids cause at most one fetch per
// MinRefreshInterval, however many arrive at once.
func TestJWKSRefreshOnUnknownKID(t *testing.T) {
	ti := newTestIssuer(t)
	clk := newClock()
	v := newVerifier(t, ti, clk, func(c *resource.Config) { c.MinRefreshInterval = 10 * time.Second })
	old := ti.addKey("ES256", true)
	ctx := context.Background()
	if _, err := v.Verify(ctx, ti.sign(old, "ES256", "at+jwt", ti.claims(clk.Now()))); err != nil {
		t.Fatal(err)
	}
	rotated := ti.addKey("ES256", true) // published after our fetch
	forged := ti.addKey("ES256", false) // never published

	// Within the interval, the new kid is not fetched for.
	clk.Advance(5 * time.Second)
	if _, err := v.Verify(ctx, ti.sign(rotated, "ES256", "at+jwt", ti.claims(clk.Now()))); !errors.Is(err, resource.ErrUnknownKey) {
		t.Fatalf("within the interval: %v", err)
	}
	if n := ti.jwksFetches.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1 (rate limit)", n)
	}
	clk.Advance(6 * time.Second)
	if _, err := v.Verify(ctx, ti.sign(rotated, "ES256", "at+jwt", ti.claims(clk.Now()))); err != nil {
		t.Fatalf("rotated key not found by refresh: %v", err)
	}
	if n := ti.jwksFetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}

	// A burst of forged tokens, concurrently, after the interval: one
	// fetch in all.
	clk.Advance(11 * time.Second)
	tok := ti.sign(forged, "ES256", "at+jwt", ti.claims(clk.Now()))
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := v.Verify(ctx, tok); !errors.Is(err, resource.ErrUnknownKey) {
				t.Errorf("forged kid: %v", err)
			}
		}()
	}
	wg.Wait()
	if n := ti.jwksFetches.Load(); n != 3 {
		t.Fatalf("%d fetches after 50 forged tokens, want 3", n)
	}
}

// TestJWKSUnusableKeys: symmetric, encryption and short RSA keys in the
// set are skipped, so an HS256 token keyed with an "oct" key that the set
// (wrongly) publishes is refused.
func TestJWKSUnusableKeys(t *testing.T) {
	ti := newTestIssuer(t)
	clk := newClock()
	secret := []byte("0123456789abcdef0123456789abcdef")
	oct, _ := json.Marshal(map[string]string{"kty": "oct", "kid": "oct-1", "k": base64.RawURLEncoding.EncodeToString(secret)})
	ti.extraKeys = []json.RawMessage{oct, json.RawMessage(`{"kty":"XYZ","kid":"weird"}`)}
	kid := ti.addKey("ES256", true)
	v := newVerifier(t, ti, clk, nil)
	hs := unsigned(map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": "oct-1"}, ti.claims(clk.Now()), nil)
	in := strings.TrimSuffix(hs, ".")
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(in))
	if _, err := v.Verify(context.Background(), in+"."+base64.RawURLEncoding.EncodeToString(mac.Sum(nil))); !errors.Is(err, resource.ErrAlgorithm) {
		t.Errorf("HS256 token with a published oct key: %v", err)
	}
	if _, err := v.Verify(context.Background(), ti.sign(kid, "ES256", "at+jwt", ti.claims(clk.Now()))); err != nil {
		t.Errorf("good key beside unusable ones: %v", err)
	}
}

func TestJWKSUnavailable(t *testing.T) {
	ti := newTestIssuer(t)
	ti.jwksStatus = 500
	clk := newClock()
	kid := ti.addKey("ES256", true)
	v := newVerifier(t, ti, clk, nil)
	if _, err := v.Verify(context.Background(), ti.sign(kid, "ES256", "at+jwt", ti.claims(clk.Now()))); !errors.Is(err, resource.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	// Failures are retried, but not more than once a second.
	v.Verify(context.Background(), ti.sign(kid, "ES256", "at+jwt", ti.claims(clk.Now())))
	if n := ti.jwksFetches.Load(); n != 1 {
		t.Errorf("%d fetches within the failure back-off, want 1", n)
	}
	ti.mu.Lock()
	ti.jwksStatus = 0
	ti.mu.Unlock()
	clk.Advance(2 * time.Second)
	if _, err := v.Verify(context.Background(), ti.sign(kid, "ES256", "at+jwt", ti.claims(clk.Now()))); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

// TestKIDLessToken: a token without kid is verified with the set's only key.
func TestKIDLessToken(t *testing.T) {
	ti := newTestIssuer(t)
	clk := newClock()
	kid := ti.addKey("ES256", true)
	v := newVerifier(t, ti, clk, nil)
	ti.mu.Lock()
	priv := ti.signers[kid]
	ti.mu.Unlock()
	s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: priv}, (&jose.SignerOptions{}).WithType("at+jwt"))
	b, _ := json.Marshal(ti.claims(clk.Now()))
	obj, _ := s.Sign(b)
	tok, _ := obj.CompactSerialize()
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	ti.addKey("ES256", true) // now two keys: a kid-less token is ambiguous
	clk.Advance(301 * time.Second)
	v.Verify(context.Background(), ti.sign(kid, "ES256", "at+jwt", ti.claims(clk.Now()))) // refresh
	if _, err := v.Verify(context.Background(), tok); !errors.Is(err, resource.ErrUnknownKey) {
		t.Fatalf("kid-less token with two keys: %v", err)
	}
}
