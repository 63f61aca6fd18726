package federation

import (
	"context"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/keybridge/sts/oauth"
)

// A time claim too large for int64 seconds must not wrap around into the
// past: nbf 1e19 would otherwise read as long ago, and a token the issuer
// made valid only in the far future would be accepted now (review of
// issue 11). The introspection path already bounds these values.
func TestVerifyJWTHugeTimeClaims(t *testing.T) {
	p := newTestIdP(t, jose.ES256)
	f := newTestFetcher(p, Options{})
	ti := p.TrustedIssuer()
	for _, name := range []string{"nbf", "iat", "exp"} {
		for _, v := range []float64{1e19, -1e19, 1e300} {
			c := p.Claims("alice")
			c[name] = v
			if _, err := f.VerifyJWT(context.Background(), ti, p.Sign(c), Check{TokenType: oauth.TokenTypeIDToken}); err == nil {
				t.Errorf("%s %g: accepted", name, v)
			}
		}
	}
}

// FuzzVerifyJWT: whatever a client sends, VerifyJWT neither panics nor
// accepts a token that is not the issuer's, unexpired, with a sub.
func FuzzVerifyJWT(f *testing.F) {
	p := newTestIdP(f, jose.ES256)
	fe := newTestFetcher(p, Options{})
	ti := p.TrustedIssuer()
	good := p.Sign(p.Claims("alice"))
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Add("eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.")
	f.Add("a.b.c")
	f.Add("..")
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := fe.VerifyJWT(context.Background(), ti, raw, Check{TokenType: oauth.TokenTypeJWT})
		if err != nil {
			return
		}
		if v.Subject == "" || v.Claims["iss"] != ti.Issuer || !p.Clock.Now().Before(v.Expiry.Add(ti.Leeway)) {
			t.Fatalf("accepted %q as %+v", raw, v)
		}
	})
}
