package resource_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/keybridge/sts/resource"
)

// The cost of verification per request once the JWK set is cached: what a
// resource server pays on its hot path.
//
//	go test -run XXX -bench . -benchmem ./resource/

func benchSetup(b *testing.B, alg string) (*resource.Verifier, string) {
	ti := newTestIssuer(b)
	clk := newClock()
	kid := ti.addKey(alg, true)
	v := newVerifier(b, ti, clk, nil)
	tok := ti.sign(kid, alg, "at+jwt", ti.claims(clk.Now()))
	if _, err := v.Verify(context.Background(), tok); err != nil { // fetch the keys
		b.Fatal(err)
	}
	return v, tok
}

func BenchmarkVerify(b *testing.B) {
	for _, alg := range resource.DefaultAlgorithms {
		b.Run(alg, func(b *testing.B) {
			v, tok := benchSetup(b, alg)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerifyParallel(b *testing.B) {
	v, tok := benchSetup(b, "ES256")
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Verify(ctx, tok); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkMiddleware is one request through the middleware to a handler
// that reads the claims (in process, no network).
func BenchmarkMiddleware(b *testing.B) {
	v, tok := benchSetup(b, "ES256")
	h := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := resource.ClaimsFromContext(r.Context()); !ok {
			b.Error("no claims")
		}
	}), "api")
	req := httptest.NewRequest("GET", "/api", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}

// BenchmarkIntrospectionCached is an opaque token answered from the
// introspection cache.
func BenchmarkIntrospectionCached(b *testing.B) {
	ti := newTestIssuer(b)
	clk := newClock()
	ti.intro["sts_at_bench"] = active(ti, clk.Now(), nil)
	v := newVerifier(b, ti, clk, func(c *resource.Config) { c.Introspection = &resource.IntrospectionConfig{} })
	ctx := context.Background()
	if _, err := v.Verify(ctx, "sts_at_bench"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, "sts_at_bench"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFloor measures what Verify builds on, for comparison: the bare
// ECDSA P-256 verification of the token's signature, and go-jose's parse
// and verify without any claim check.
func BenchmarkFloor(b *testing.B) {
	ti := newTestIssuer(b)
	clk := newClock()
	kid := ti.addKey("ES256", true)
	tok := ti.sign(kid, "ES256", "at+jwt", ti.claims(clk.Now()))
	pub := ti.signers[kid].Public().(*ecdsa.PublicKey)
	b.Run("ecdsa.Verify", func(b *testing.B) {
		i := strings.LastIndexByte(tok, '.')
		sig, _ := base64.RawURLEncoding.DecodeString(tok[i+1:])
		h := sha256.Sum256([]byte(tok[:i]))
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		b.ReportAllocs()
		for b.Loop() {
			if !ecdsa.Verify(pub, h[:], r, s) {
				b.Fatal("bad signature")
			}
		}
	})
	b.Run("go-jose", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			obj, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.ES256})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := obj.Verify(pub); err != nil {
				b.Fatal(err)
			}
		}
	})
}
