package token_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/token"
	"github.com/keybridge/sts/oauth"
)

// With the verified-token cache on, a token presented again is answered
// from the cache, and everything that can change after verification is
// still checked: revocation of the token and of its family, expiry, the
// signing key still being published. Tokens that fail verification are
// never cached.
func TestVerifiedCache(t *testing.T) {
	ctx := context.Background()
	s := benchService(t)
	s.Verified = token.NewVerifiedCache(4)
	now := time.Now()
	s.Now = func() time.Time { return now }

	sign := func(mutate func(*token.Claims)) string {
		c := claims("alice")
		if mutate != nil {
			mutate(c)
		}
		raw, err := s.SignJWT(c, oauth.JWTTypeAccessToken)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	raw := sign(nil)
	for i := range 3 {
		v, err := s.Validate(ctx, raw)
		if err != nil || v.Subject != "alice" || v.Format != token.FormatJWT {
			t.Fatalf("validation %d: %+v, %v", i, v, err)
		}
		v.Subject = "mallory" // a caller's change does not reach the cache
	}
	if n := s.Verified.Len(); n != 1 {
		t.Fatalf("cache holds %d tokens, want 1", n)
	}

	// A tampered token (another signature) is refused and not cached.
	tampered := raw[:len(raw)-4] + "AAAA"
	if _, err := s.Validate(ctx, tampered); !errors.Is(err, token.ErrSignature) && !errors.Is(err, token.ErrMalformed) {
		t.Fatalf("tampered token: %v", err)
	}
	if n := s.Verified.Len(); n != 1 {
		t.Fatalf("cache holds %d tokens after a refusal, want 1", n)
	}

	// Revocation after caching is honoured.
	v, _ := s.Validate(ctx, raw)
	if err := s.Revocations.RevokeJTI(ctx, v.ID, now.Add(time.Hour), now); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Validate(ctx, raw); !errors.Is(err, token.ErrRevoked) {
		t.Fatalf("revoked cached token: %v, want ErrRevoked", err)
	}
	// So is the revocation of its family.
	family := token.NewID()
	fam := sign(func(c *token.Claims) { c.FamilyID = family })
	if _, err := s.Validate(ctx, fam); err != nil {
		t.Fatal(err)
	}
	// A family is revoked through its stored refresh token.
	if err := s.Tokens.CreateToken(ctx, &store.TokenRecord{Hash: token.HashOpaque("rt-" + family), Kind: store.TokenRefresh,
		JTI: token.NewID(), ClientID: "c", Subject: "alice", FamilyID: family, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Tokens.RevokeFamily(ctx, family, now); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Validate(ctx, fam); !errors.Is(err, token.ErrRevoked) {
		t.Fatalf("cached token of a revoked family: %v, want ErrRevoked", err)
	}
	// And expiry.
	short := sign(func(c *token.Claims) { c.Expiry = now.Unix() + 60 })
	if _, err := s.Validate(ctx, short); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute)
	if _, err := s.Validate(ctx, short); !errors.Is(err, token.ErrExpired) {
		t.Fatalf("expired cached token: %v, want ErrExpired", err)
	}

	// The cache stays within its bound.
	for range 10 {
		if _, err := s.Validate(ctx, sign(nil)); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.Verified.Len(); n > 4 {
		t.Fatalf("cache holds %d tokens, bound 4", n)
	}
}

// A cached token whose signing key is no longer published is verified
// again, and refused.
func TestVerifiedCacheKeyGone(t *testing.T) {
	ctx := context.Background()
	s := benchService(t)
	s.Verified = token.NewVerifiedCache(16)
	raw, err := s.SignJWT(claims("alice"), oauth.JWTTypeAccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Validate(ctx, raw); err != nil {
		t.Fatal(err)
	}
	// Two rotations retire the key; deleting expired keys a year on
	// unpublishes it.
	for range 2 {
		if err := s.Keys.Rotate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := keysStore(s).DeleteExpiredKeys(ctx, time.Now().AddDate(1, 0, 0)); err != nil {
		t.Fatal(err)
	}
	if err := s.Keys.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Validate(ctx, raw); !errors.Is(err, token.ErrUnknownKey) {
		t.Fatalf("cached token of an unpublished key: %v, want ErrUnknownKey", err)
	}
}

// keysStore is the store behind s (the cached view passes key writes
// through).
func keysStore(s *token.Service) interface {
	DeleteExpiredKeys(ctx context.Context, now time.Time) (int, error)
} {
	return s.Tokens.(interface {
		DeleteExpiredKeys(ctx context.Context, now time.Time) (int, error)
	})
}
