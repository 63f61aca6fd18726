package resource_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/keybridge/sts/oauth"
	"github.com/keybridge/sts/resource"
)

func active(ti *testIssuer, now time.Time, mod func(*oauth.IntrospectionResponse)) oauth.IntrospectionResponse {
	r := oauth.IntrospectionResponse{
		Active: true, Scope: "api", ClientID: "rs08", TokenType: "Bearer", Sub: "user-1",
		Aud: oauth.Audience{audience}, Iss: ti.URL, Exp: now.Add(time.Hour).Unix(), Iat: now.Unix(), Jti: "op-1",
		Act: &oauth.Actor{Subject: "rs08"},
	}
	if mod != nil {
		mod(&r)
	}
	return r
}

// TestRFC7662_Introspection: an opaque token is introspected with the
// resource server's credentials (form-url-encoded Basic), its answer is
// checked like a JWT's claims, and active answers are cached.
func TestRFC7662_Introspection(t *testing.T) {
	ti := newTestIssuer(t)
	clk := newClock()
	now := clk.Now()
	ti.intro["sts_at_good"] = active(ti, now, nil)
	ti.intro["sts_at_other_aud"] = active(ti, now, func(r *oauth.IntrospectionResponse) { r.Aud = oauth.Audience{"https://other.example"} })
	ti.intro["sts_at_other_iss"] = active(ti, now, func(r *oauth.IntrospectionResponse) { r.Iss = "https://evil.example" })
	ti.intro["sts_rt_refresh"] = active(ti, now, func(r *oauth.IntrospectionResponse) { r.TokenType = "N_A" })
	ti.intro["sts_at_expired"] = active(ti, now, func(r *oauth.IntrospectionResponse) { r.Exp = now.Add(-time.Hour).Unix() })
	ti.intro["sts_at_no_aud"] = active(ti, now, func(r *oauth.IntrospectionResponse) { r.Aud = nil })
	// sts_at_revoked is unknown to the table: {"active":false}.

	v := newVerifier(t, ti, clk, func(c *resource.Config) {
		c.Introspection = &resource.IntrospectionConfig{ClientID: "back:end", ClientSecret: "p%s+w"}
	})
	ctx := context.Background()
	c, err := v.Verify(ctx, "sts_at_good")
	if err != nil {
		t.Fatal(err)
	}
	if !c.Introspected || c.Subject != "user-1" || c.ClientID != "rs08" || !c.HasScope("api") || c.Act.Subject != "rs08" ||
		!c.Expiry.Equal(time.Unix(now.Add(time.Hour).Unix(), 0)) {
		t.Errorf("claims %+v", c)
	}
	ti.mu.Lock()
	auth := ti.introAuth
	ti.mu.Unlock()
	if auth != "Basic "+base64.StdEncoding.EncodeToString([]byte("back%3Aend:p%25s%2Bw")) {
		t.Errorf("introspection Authorization %q", auth)
	}
	if _, err := v.Verify(ctx, "sts_at_good"); err != nil || ti.introCalls.Load() != 1 {
		t.Errorf("second use: %v, %d calls (want 1, cached)", err, ti.introCalls.Load())
	}
	for tok, want := range map[string]error{
		"sts_at_revoked":   resource.ErrInactive,
		"sts_at_other_aud": resource.ErrAudience,
		"sts_at_other_iss": resource.ErrIssuer,
		"sts_rt_refresh":   resource.ErrType,
		"sts_at_expired":   resource.ErrExpired,
		"sts_at_no_aud":    resource.ErrMissingClaim,
	} {
		if _, err := v.Verify(ctx, tok); !errors.Is(err, want) {
			t.Errorf("%s: err = %v, want %v", tok, err, want)
		}
	}
	// Refusals are not cached: the same token is asked about again.
	before := ti.introCalls.Load()
	v.Verify(ctx, "sts_at_revoked")
	if ti.introCalls.Load() != before+1 {
		t.Error("an inactive answer was cached")
	}
}

// TestIntrospectionCacheBounds: entries live no longer than CacheTTL nor
// the token's exp, and no more than CacheSize are kept.
func TestIntrospectionCacheBounds(t *testing.T) {
	ti := newTestIssuer(t)
	clk := newClock()
	now := clk.Now()
	v := newVerifier(t, ti, clk, func(c *resource.Config) {
		c.Introspection = &resource.IntrospectionConfig{CacheSize: 3, CacheTTL: 10 * time.Minute}
	})
	ctx := context.Background()
	calls := func() int64 { return ti.introCalls.Load() }

	// exp in 60 s, TTL 10 min: the entry ends at exp. Once revoked at the
	// issuer, the token is refused right after its exp has passed.
	ti.intro["sts_at_short"] = active(ti, now, func(r *oauth.IntrospectionResponse) { r.Exp = now.Add(60 * time.Second).Unix() })
	if _, err := v.Verify(ctx, "sts_at_short"); err != nil {
		t.Fatal(err)
	}
	delete(ti.intro, "sts_at_short")
	clk.Advance(59 * time.Second)
	if _, err := v.Verify(ctx, "sts_at_short"); err != nil || calls() != 1 {
		t.Fatalf("before exp: %v, %d calls", err, calls())
	}
	clk.Advance(2 * time.Second)
	if _, err := v.Verify(ctx, "sts_at_short"); !errors.Is(err, resource.ErrInactive) || calls() != 2 {
		t.Fatalf("after exp: %v, %d calls (entry outlived exp)", err, calls())
	}

	// TTL shorter than exp: the answer is asked again after the TTL.
	ti.intro["sts_at_long"] = active(ti, clk.Now(), nil)
	v.Verify(ctx, "sts_at_long")
	clk.Advance(9 * time.Minute)
	v.Verify(ctx, "sts_at_long")
	if calls() != 3 {
		t.Fatalf("%d calls within TTL, want 3", calls())
	}
	clk.Advance(2 * time.Minute)
	v.Verify(ctx, "sts_at_long")
	if calls() != 4 {
		t.Fatalf("%d calls after TTL, want 4", calls())
	}

	// Size: five tokens through a cache of three evict the oldest two.
	for i := range 5 {
		tok := "sts_at_n" + strconv.Itoa(i)
		ti.intro[tok] = active(ti, clk.Now(), nil)
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	base := calls()
	for _, i := range []int{4, 3, 2} {
		v.Verify(ctx, "sts_at_n"+strconv.Itoa(i))
	}
	if calls() != base {
		t.Fatalf("recent entries were not cached: %d calls", calls()-base)
	}
	v.Verify(ctx, "sts_at_n0")
	if calls() != base+1 {
		t.Fatalf("evicted entry answered from cache (size bound not applied)")
	}
}

func TestIntrospectionUnavailable(t *testing.T) {
	ti := newTestIssuer(t)
	clk := newClock()
	v := newVerifier(t, ti, clk, func(c *resource.Config) {
		c.Introspection = &resource.IntrospectionConfig{URL: ti.URL + "/nowhere"}
	})
	if _, err := v.Verify(context.Background(), "sts_at_x"); !errors.Is(err, resource.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
}
