package dpop_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/keybridge/sts/dpop"
)

const htu = "https://sts.example/token"

func ecKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func proof(t testing.TB, k crypto.Signer, htm, u string, o dpop.ProofOptions) string {
	p, err := dpop.NewProof(k, "", htm, u, o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// signRaw signs arbitrary header and claims with go-jose, for proofs
// NewProof refuses to make.
func signRaw(t *testing.T, key any, alg jose.SignatureAlgorithm, jwk *jose.JSONWebKey, typ string, c map[string]any) string {
	t.Helper()
	opts := &jose.SignerOptions{ExtraHeaders: map[jose.HeaderKey]any{}}
	if typ != "" {
		opts.WithType(jose.ContentType(typ))
	}
	if jwk != nil {
		opts.ExtraHeaders["jwk"] = jwk
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(c)
	jws, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	for name, k := range map[string]crypto.Signer{"ES256": ecKey(t), "EdDSA": ed, "PS256": rk} {
		t.Run(name, func(t *testing.T) {
			v := &dpop.Verifier{Replay: dpop.NewMemoryReplay(10)}
			p := proof(t, k, "POST", htu+"?x=1", dpop.ProofOptions{AccessToken: "tok"})
			got, err := v.Verify(context.Background(), p, "POST", "HTTPS://STS.example:443/token#f", "tok")
			if err != nil {
				t.Fatal(err)
			}
			want, _ := dpop.Thumbprint(k.Public())
			if got.JKT != want || got.Algorithm != jose.SignatureAlgorithm(name) {
				t.Fatalf("jkt %q alg %q, want %q %q", got.JKT, got.Algorithm, want, name)
			}
			if _, err := v.Verify(context.Background(), p, "POST", htu, "tok"); dpop.AsError(err) == nil || !strings.Contains(err.Error(), "replayed") {
				t.Fatalf("replay: %v", err)
			}
		})
	}
}

func TestRefused(t *testing.T) {
	k := ecKey(t)
	pub := jose.JSONWebKey{Key: k.Public()}
	priv := jose.JSONWebKey{Key: k}
	now := time.Now()
	good := func() map[string]any {
		return map[string]any{"jti": "j1", "htm": "POST", "htu": htu, "iat": now.Unix()}
	}
	with := func(key string, v any) map[string]any {
		c := good()
		if v == nil {
			delete(c, key)
		} else {
			c[key] = v
		}
		return c
	}
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsaPub := jose.JSONWebKey{Key: rk.Public()}
	rsaJSON, _ := rsaPub.MarshalJSON()
	var rsaMap map[string]any
	_ = json.Unmarshal(rsaJSON, &rsaMap)
	rsaMap["p"] = base64.RawURLEncoding.EncodeToString(rk.Primes[0].Bytes())
	otherKey := ecKey(t)
	bigRSA, _ := rsa.GenerateKey(rand.Reader, 4096+64)
	bigPub := jose.JSONWebKey{Key: bigRSA.Public()}
	cases := []struct {
		name, proof, want, token string
	}{
		{"empty", "", "no DPoP proof", ""},
		{"too long", strings.Repeat("a", dpop.MaxProofSize+1), "longer than", ""},
		{"garbage", "abc", "not a compact JWS", ""},
		{"private key in jwk", signRaw(t, k, jose.ES256, &priv, "dpop+jwt", good()), "private key material", ""},
		{"rsa primes in jwk", rawHeaderProof(t, rk, rsaMap, good()), "private key material", ""},
		{"symmetric alg", signRaw(t, []byte("0123456789abcdef0123456789abcdef"), jose.HS256, nil, "dpop+jwt", good()), "accepted algorithm", ""},
		{"alg none", noneProof(t, good()), "accepted algorithm", ""},
		// go-jose or this package: either refuses it.
		{"RSA key too large", signRaw(t, bigRSA, jose.RS256, &bigPub, "dpop+jwt", good()), "", ""},
		{"no typ", signRaw(t, k, jose.ES256, &pub, "", good()), "typ", ""},
		{"wrong typ", signRaw(t, k, jose.ES256, &pub, "JWT", good()), "typ", ""},
		{"no jwk", signRaw(t, k, jose.ES256, nil, "dpop+jwt", good()), "no jwk", ""},
		{"signed by another key", signRaw(t, otherKey, jose.ES256, &pub, "dpop+jwt", good()), "signature", ""},
		{"no jti", signRaw(t, k, jose.ES256, &pub, "dpop+jwt", with("jti", nil)), "jti", ""},
		// A JSON "\u0000": a database replay store would refuse it.
		{"NUL in jti", signRaw(t, k, jose.ES256, &pub, "dpop+jwt", with("jti", "j\x00")), "control characters", ""},
		{"wrong htm", signRaw(t, k, jose.ES256, &pub, "dpop+jwt", with("htm", "GET")), "htm", ""},
		{"wrong htu", signRaw(t, k, jose.ES256, &pub, "dpop+jwt", with("htu", "https://evil.example/token")), "htu", ""},
		{"wrong htu path", signRaw(t, k, jose.ES256, &pub, "dpop+jwt", with("htu", htu+"/x")), "htu", ""},
		{"stale iat", signRaw(t, k, jose.ES256, &pub, "dpop+jwt", with("iat", now.Add(-10*time.Minute).Unix())), "too old", ""},
		{"future iat", signRaw(t, k, jose.ES256, &pub, "dpop+jwt", with("iat", now.Add(10*time.Minute).Unix())), "future", ""},
		{"string iat", signRaw(t, k, jose.ES256, &pub, "dpop+jwt", with("iat", "soon")), "expected types", ""},
		{"no ath", signRaw(t, k, jose.ES256, &pub, "dpop+jwt", good()), "no ath", "tok"},
		{"wrong ath", signRaw(t, k, jose.ES256, &pub, "dpop+jwt", with("ath", dpop.TokenHash("other"))), "ath does not match", "tok"},
	}
	v := &dpop.Verifier{Replay: dpop.NewMemoryReplay(100)}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), c.proof, "POST", htu, c.token)
			e := dpop.AsError(err)
			if e == nil || e.Code != dpop.CodeInvalidProof || !strings.Contains(e.Description, c.want) {
				t.Fatalf("got %v, want invalid_dpop_proof containing %q", err, c.want)
			}
		})
	}
	// None of the refusals consumed j1.
	if _, err := v.Verify(context.Background(), signRaw(t, k, jose.ES256, &pub, "dpop+jwt", good()), "POST", htu, ""); err != nil {
		t.Fatalf("good proof after refusals: %v", err)
	}
}

// rawHeaderProof signs claims with a hand-set jwk header (a map), to carry
// members go-jose would drop.
func rawHeaderProof(t *testing.T, k *rsa.PrivateKey, jwk map[string]any, c map[string]any) string {
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: k},
		(&jose.SignerOptions{}).WithType("dpop+jwt").WithHeader("jwk", jwk))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(c)
	jws, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := jws.CompactSerialize()
	return out
}

func noneProof(t *testing.T, c map[string]any) string {
	h, _ := json.Marshal(map[string]any{"alg": "none", "typ": "dpop+jwt"})
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(b) + "."
}

func TestNonce(t *testing.T) {
	k := ecKey(t)
	now := time.Unix(1_800_000_000, 0)
	nonces := dpop.NewHMACNonces([]byte("0123456789abcdef0123456789abcdef"), time.Minute)
	v := &dpop.Verifier{Nonces: nonces, Now: func() time.Time { return now }}
	_, err := v.Verify(context.Background(), proof(t, k, "POST", htu, dpop.ProofOptions{Now: now}), "POST", htu, "")
	e := dpop.AsError(err)
	if e == nil || e.Code != dpop.CodeUseNonce || e.Nonce == "" {
		t.Fatalf("no nonce: %v", err)
	}
	if _, err := v.Verify(context.Background(), proof(t, k, "POST", htu, dpop.ProofOptions{Now: now, Nonce: e.Nonce}), "POST", htu, ""); err != nil {
		t.Fatalf("with nonce: %v", err)
	}
	// Another instance sharing the key accepts it, a minute later too.
	other := &dpop.Verifier{Nonces: dpop.NewHMACNonces([]byte("0123456789abcdef0123456789abcdef"), time.Minute),
		Now: func() time.Time { return now.Add(time.Minute) }}
	if _, err := other.Verify(context.Background(), proof(t, k, "POST", htu, dpop.ProofOptions{Now: now.Add(time.Minute), Nonce: e.Nonce}), "POST", htu, ""); err != nil {
		t.Fatalf("other instance: %v", err)
	}
	// Two windows later, or with another key, it is refused.
	late := &dpop.Verifier{Nonces: nonces, Now: func() time.Time { return now.Add(2 * time.Minute) }}
	if _, err := late.Verify(context.Background(), proof(t, k, "POST", htu, dpop.ProofOptions{Now: now.Add(2 * time.Minute), Nonce: e.Nonce}), "POST", htu, ""); dpop.AsError(err) == nil || dpop.AsError(err).Code != dpop.CodeUseNonce {
		t.Fatalf("late nonce: %v", err)
	}
	if dpop.NewHMACNonces([]byte("another key, 32 bytes long......"), time.Minute).Valid(e.Nonce, now) {
		t.Fatal("nonce valid under another key")
	}
}

func TestMemoryReplayBounded(t *testing.T) {
	m := dpop.NewMemoryReplay(2)
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	for _, j := range []string{"a", "b"} {
		if seen, err := m.Seen(ctx, j, exp); seen || err != nil {
			t.Fatal(seen, err)
		}
	}
	if seen, _ := m.Seen(ctx, "a", exp); !seen {
		t.Fatal("a not seen")
	}
	if _, err := m.Seen(ctx, "c", exp); err != dpop.ErrReplayCacheFull {
		t.Fatalf("full cache: %v", err)
	}
}

func BenchmarkVerify(b *testing.B) {
	k := ecKey(b)
	v := &dpop.Verifier{}
	p := proof(b, k, "POST", htu, dpop.ProofOptions{AccessToken: "tok"})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(context.Background(), p, "POST", htu, "tok"); err != nil {
			b.Fatal(err)
		}
	}
}
