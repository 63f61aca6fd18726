package token_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/keys"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/cached"
	"github.com/keybridge/sts/internal/store/sqlite"
	"github.com/keybridge/sts/internal/token"
	"github.com/keybridge/sts/oauth"
)

// benchService is a Service as the token endpoint builds it: ES256 keys
// and the cached view of a real SQLite store (revocation set in memory,
// holding a thousand revoked jtis; clients cached), with the client "c"
// the tokens are issued to.
func benchService(b testing.TB) *token.Service {
	b.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "sts.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	now := time.Now()
	for range 1000 {
		if err := st.RevokeJTI(ctx, token.NewID(), now.Add(time.Hour), now); err != nil {
			b.Fatal(err)
		}
	}
	if err := st.CreateClient(ctx, &store.Client{ID: "c", Name: "c", Status: store.ClientActive,
		CreatedAt: now.Add(-time.Minute), UpdatedAt: now.Add(-time.Minute)}); err != nil {
		b.Fatal(err)
	}
	cs, err := cached.New(ctx, st, cached.Options{ClientTTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	sealer, _ := keys.NewSealer(make([]byte, 32))
	km, err := keys.NewManager(ctx, keys.Options{Store: st, Sealer: sealer})
	if err != nil {
		b.Fatal(err)
	}
	return &token.Service{Issuer: issuer, Keys: km, Tokens: cs, Revocations: cs, Clients: cs,
		Accounts: cs.HotAccounts(), Leeway: 5 * time.Second, Now: time.Now}
}

// BenchmarkValidateJWT is the full verification of a self-issued ES256
// access token: JWS parse, signature, claims, revocation (jti and family)
// from memory, the client from the cache.
func BenchmarkValidateJWT(b *testing.B) {
	s := benchService(b)
	c := claims("alice")
	c.FamilyID = token.NewID()
	raw, err := s.SignJWT(c, oauth.JWTTypeAccessToken)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		v, err := s.Validate(ctx, raw)
		if err != nil || v.Subject != "alice" {
			b.Fatal(v, err)
		}
	}
}

// BenchmarkValidateJWTCached is BenchmarkValidateJWT with the verified-token
// cache on (--verified-token-cache): the token is found by its hash, and
// only its expiry, revocation and client are checked.
func BenchmarkValidateJWTCached(b *testing.B) {
	s := benchService(b)
	s.Verified = token.NewVerifiedCache(1000)
	c := claims("alice")
	c.FamilyID = token.NewID()
	raw, err := s.SignJWT(c, oauth.JWTTypeAccessToken)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		v, err := s.Validate(ctx, raw)
		if err != nil || v.Subject != "alice" {
			b.Fatal(v, err)
		}
	}
}

// BenchmarkSignJWT is the signing of an exchanged access token (ES256,
// with an act claim): claims marshalled, signed, serialized.
func BenchmarkSignJWT(b *testing.B) {
	s := benchService(b)
	c := claims("alice")
	c.Act = &oauth.Actor{Subject: "rs08", ClientID: "rs08"}
	b.ReportAllocs()
	for b.Loop() {
		if raw, err := s.SignJWT(c, oauth.JWTTypeAccessToken); err != nil || raw == "" {
			b.Fatal(err)
		}
	}
}
