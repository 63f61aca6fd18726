package federation

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/keybridge/sts/internal/store"
)

func TestIntrospect(t *testing.T) {
	p := newTestIdP(t, jose.ES256)
	f := newTestFetcher(p, Options{IntrospectionCache: time.Minute, InactiveCache: 5 * time.Second})
	ti := p.TrustedIssuer() // introspection endpoint through discovery
	now := p.Clock.Now()
	p.Introspection("good", map[string]any{
		"active": true, "iss": p.Issuer, "sub": "alice", "aud": []string{"sts"},
		"exp": now.Add(10 * time.Minute).Unix(), "iat": now.Unix(), "scope": "read",
		"act": map[string]any{"sub": "bot"},
	})
	v, err := f.Introspect(context.Background(), ti, "good")
	if err != nil {
		t.Fatal(err)
	}
	if v.Subject != "alice" || v.Via != ViaIntrospection || v.Claims["scope"] != "read" || v.Act == nil || v.Act.Subject != "bot" {
		t.Fatalf("verified %+v", v)
	}
	if !v.Expiry.Equal(now.Add(10*time.Minute)) || !v.IssuedAt.Equal(now) {
		t.Fatalf("times %v %v", v.IssuedAt, v.Expiry)
	}
	// Cached: no second call to the upstream within IntrospectionCache.
	if _, err := f.Introspect(context.Background(), ti, "good"); err != nil {
		t.Fatal(err)
	}
	if p.IntrospectionHits.Load() != 1 {
		t.Fatalf("%d introspection calls, want 1", p.IntrospectionHits.Load())
	}
	p.Clock.Advance(61 * time.Second)
	if _, err := f.Introspect(context.Background(), ti, "good"); err != nil {
		t.Fatal(err)
	}
	if p.IntrospectionHits.Load() != 2 {
		t.Fatalf("%d introspection calls after IntrospectionCache, want 2", p.IntrospectionHits.Load())
	}

	// Inactive: an *Error that is not Upstream, cached only briefly.
	_, err = f.Introspect(context.Background(), ti, "unknown")
	wantReason(t, err, "token from issuer "+p.Issuer+" is not active", false)
	_, err = f.Introspect(context.Background(), ti, "unknown")
	wantReason(t, err, "is not active", false)
	if p.IntrospectionHits.Load() != 3 {
		t.Fatalf("%d introspection calls, want 3 (inactive cached)", p.IntrospectionHits.Load())
	}
	p.Clock.Advance(6 * time.Second)
	_, _ = f.Introspect(context.Background(), ti, "unknown")
	if p.IntrospectionHits.Load() != 4 {
		t.Fatalf("%d introspection calls, want 4 (inactive cache expired)", p.IntrospectionHits.Load())
	}

	// Forget drops the cached answers.
	f.Forget(p.Issuer)
	if _, err := f.Introspect(context.Background(), ti, "good"); err != nil {
		t.Fatal(err)
	}
	if p.IntrospectionHits.Load() != 5 {
		t.Fatalf("%d introspection calls after Forget, want 5", p.IntrospectionHits.Load())
	}
}

// TestIntrospectCacheBoundedByExp: an active answer is not reused past
// the token's exp.
func TestIntrospectCacheBoundedByExp(t *testing.T) {
	p := newTestIdP(t, jose.ES256)
	f := newTestFetcher(p, Options{IntrospectionCache: time.Hour})
	ti := p.TrustedIssuer()
	ti.Leeway = 0
	ti.IntrospectionEndpoint = p.Issuer + "/introspect"
	p.Introspection("short", map[string]any{"active": true, "sub": "alice", "exp": p.Clock.Now().Add(10 * time.Second).Unix()})
	if _, err := f.Introspect(context.Background(), ti, "short"); err != nil {
		t.Fatal(err)
	}
	p.Clock.Advance(11 * time.Second)
	_, err := f.Introspect(context.Background(), ti, "short")
	wantReason(t, err, "is expired", false)
	if p.IntrospectionHits.Load() != 2 {
		t.Fatalf("%d calls: the cached answer outlived exp", p.IntrospectionHits.Load())
	}
	if p.DiscoveryHits.Load() != 0 {
		t.Fatal("discovery used although the endpoint is configured")
	}
}

func TestIntrospectRefusals(t *testing.T) {
	p := newTestIdP(t, jose.ES256)
	now := p.Clock.Now()
	exp := now.Add(time.Minute).Unix()
	cases := []struct {
		name   string
		answer map[string]any
		reason string
	}{
		{"inactive", map[string]any{"active": false, "sub": "alice", "exp": exp}, "is not active"},
		{"active not a bool", map[string]any{"active": "true", "sub": "alice", "exp": exp}, "is not active"},
		{"wrong iss", map[string]any{"active": true, "iss": "https://evil", "sub": "alice", "exp": exp}, "token is not from issuer " + p.Issuer},
		{"no sub", map[string]any{"active": true, "exp": exp}, "has no sub in its introspection answer"},
		{"no exp", map[string]any{"active": true, "sub": "alice"}, "has no exp"},
		{"expired", map[string]any{"active": true, "sub": "alice", "exp": now.Add(-time.Hour).Unix()}, "is expired"},
		{"nbf future", map[string]any{"active": true, "sub": "alice", "exp": exp, "nbf": now.Add(time.Hour).Unix()}, "is not valid yet"},
		{"exp not a number", map[string]any{"active": true, "sub": "alice", "exp": "soon"}, "has a malformed exp"},
		{"wrong aud", map[string]any{"active": true, "sub": "alice", "exp": exp, "aud": "other"}, "audience must include one of [sts]"},
		{"bad act", map[string]any{"active": true, "sub": "alice", "exp": exp, "act": []any{"x"}}, "malformed act"},
		{"refresh token", map[string]any{"active": true, "sub": "alice", "exp": exp, "token_type": "Refresh"}, `is a refresh token (token_type "Refresh")`},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := fmt.Sprint("tok-", i)
			p.Introspection(tok, tc.answer)
			f := newTestFetcher(p, Options{})
			_, err := f.Introspect(context.Background(), p.TrustedIssuer(), tok)
			wantReason(t, err, tc.reason, false)
		})
	}
	f := newTestFetcher(p, Options{})
	_, err := f.Introspect(context.Background(), p.TrustedIssuer(), strings.Repeat("x", DefaultMaxTokenBytes+1))
	wantReason(t, err, "is larger than", false)

	// Wrong client credentials: the upstream says 401, an upstream error.
	ti := p.TrustedIssuer()
	ti.IntrospectionClientSecret = "wrong"
	_, err = f.Introspect(context.Background(), ti, "tok-0")
	wantReason(t, err, "the introspection answer of issuer "+p.Issuer+" could not be fetched: status 401", true)

	// Not an object.
	p.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/introspect" {
			fmt.Fprint(w, `[true]`)
			return true
		}
		return false
	})
	_, err = f.Introspect(context.Background(), p.TrustedIssuer(), "array")
	wantReason(t, err, "the answer is not a JSON object", true)

	// No endpoint anywhere.
	p.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/.well-known/openid-configuration" {
			p.writeJSON(w, map[string]any{"issuer": p.Issuer, "jwks_uri": p.Issuer + "/jwks"})
			return true
		}
		return false
	})
	_, err = newTestFetcher(p, Options{}).Introspect(context.Background(), p.TrustedIssuer(), "x")
	wantReason(t, err, "issuer "+p.Issuer+" has no introspection endpoint", false)
}

// TestIntrospectionCacheBounded: the cache never holds more than
// MaxIntrospectionEntries, evicting expired entries first.
func TestIntrospectionCacheBounded(t *testing.T) {
	clock := newTestClock()
	f := NewFetcher(Options{Now: clock.Now})
	old := introKey(&store.TrustedIssuer{Issuer: "i"}, "old")
	f.remember(old, &introEntry{issuer: "i", expires: clock.Now().Add(time.Second)})
	for i := range MaxIntrospectionEntries - 1 {
		f.remember(introKey(&store.TrustedIssuer{Issuer: "i"}, fmt.Sprint(i)), &introEntry{issuer: "i", expires: clock.Now().Add(time.Hour)})
	}
	if len(f.intro) != MaxIntrospectionEntries {
		t.Fatalf("%d entries", len(f.intro))
	}
	clock.Advance(2 * time.Second)
	f.remember(introKey(&store.TrustedIssuer{Issuer: "i"}, "new"), &introEntry{issuer: "i", expires: clock.Now().Add(time.Hour)})
	if len(f.intro) != MaxIntrospectionEntries {
		t.Fatalf("%d entries after eviction", len(f.intro))
	}
	if _, ok := f.intro[old]; ok {
		t.Fatal("the expired entry was not the one evicted")
	}
	f.remember(introKey(&store.TrustedIssuer{Issuer: "i"}, "newer"), &introEntry{issuer: "i", expires: clock.Now().Add(time.Hour)})
	if len(f.intro) > MaxIntrospectionEntries {
		t.Fatalf("%d entries: unbounded", len(f.intro))
	}
}
