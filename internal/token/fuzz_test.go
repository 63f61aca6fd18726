package token_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/keybridge/sts/internal/keys"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlite"
	"github.com/keybridge/sts/internal/token"
)

const issuer = "https://sts.example.com"

func newService(tb testing.TB) *token.Service {
	tb.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "sts.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	sealer, _ := keys.NewSealer(make([]byte, 32))
	km, err := keys.NewManager(context.Background(), keys.Options{Store: st, Sealer: sealer})
	if err != nil {
		tb.Fatal(err)
	}
	return &token.Service{Issuer: issuer, Keys: km, Tokens: st, Revocations: st, Leeway: 5 * time.Second, Now: time.Now}
}

func claims(sub string) *token.Claims {
	now := time.Now().Unix()
	return &token.Claims{Issuer: issuer, Subject: sub, Audience: []string{"https://backend.example.com/api"},
		Expiry: now + 3600, IssuedAt: now, NotBefore: now, ID: token.NewID(), ClientID: "c", Scope: "api"}
}

// forge builds a compact JWS with any header, signed by sign.
func forge(header map[string]any, c *token.Claims, sign func([]byte) []byte) string {
	h, _ := json.Marshal(header)
	p, _ := json.Marshal(c)
	in := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p)
	return in + "." + base64.RawURLEncoding.EncodeToString(sign([]byte(in)))
}

// FuzzValidate feeds arbitrary strings to the validator of subject and
// actor tokens. It must never panic, and must accept nothing but the one
// genuine token it was seeded with: the fuzzer cannot sign.
func FuzzValidate(f *testing.F) {
	s := newService(f)
	good, err := s.SignJWT(claims("alice"), "at+jwt")
	if err != nil {
		f.Fatal(err)
	}
	kid := s.Keys.Snapshot().Current.ID
	pub, _ := json.Marshal(s.Keys.Snapshot().Current.Public)
	expired := claims("alice")
	expired.Expiry = time.Now().Add(-time.Hour).Unix()
	expiredTok, _ := s.SignJWT(expired, "at+jwt")
	wrongIss := claims("alice")
	wrongIss.Issuer = "https://evil.example.com"
	wrongIssTok, _ := s.SignJWT(wrongIss, "at+jwt")
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherSigner, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: other, KeyID: kid}}, (&jose.SignerOptions{}).WithType("at+jwt"))
	p, _ := json.Marshal(claims("mallory"))
	forgedObj, _ := otherSigner.Sign(p)
	forged, _ := forgedObj.CompactSerialize()

	f.Add(good)
	f.Add(expiredTok)
	f.Add(wrongIssTok)
	f.Add(forged)
	f.Add(forge(map[string]any{"alg": "none", "kid": kid, "typ": "at+jwt"}, claims("mallory"), func([]byte) []byte { return nil }))
	f.Add(forge(map[string]any{"alg": "HS256", "kid": kid, "typ": "at+jwt"}, claims("mallory"), func(in []byte) []byte {
		m := hmac.New(sha256.New, pub)
		m.Write(in)
		return m.Sum(nil)
	}))
	f.Add(token.PrefixAccess + "AAAA")
	f.Add(token.PrefixRefresh + "AAAA")
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := s.Validate(context.Background(), raw)
		if err != nil {
			if !token.IsInvalid(err) {
				t.Fatalf("a bad token caused a non-validation error: %v", err)
			}
			return
		}
		if v.Subject != "alice" || v.Format != token.FormatJWT || v.Kind != store.TokenAccess {
			t.Fatalf("accepted a token that was not issued: %+v", v)
		}
	})
}
