package federation

import (
	"context"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// KeyStatus reports nothing before a fetch, the fetched keys until when
// they are fresh, and Stale while a failed refresh leaves the last good
// keys serving.
func TestKeyStatus(t *testing.T) {
	p := newTestIdP(t, jose.ES256)
	p.SetCacheControl("max-age=60")
	f := newTestFetcher(p, Options{KeepStale: time.Hour, UnknownKidInterval: 30 * time.Second})
	ti := p.TrustedIssuer()
	if ks := f.KeyStatus(ti.Issuer); ks.Cached || ks.Stale || ks.Keys != 0 {
		t.Fatalf("before any fetch: %+v", ks)
	}
	verify := func() {
		t.Helper()
		if _, err := f.VerifyJWT(context.Background(), ti, p.Sign(p.Claims("alice")), Check{}); err != nil {
			t.Fatal(err)
		}
	}
	verify()
	ks := f.KeyStatus(ti.Issuer)
	if !ks.Cached || ks.Stale || ks.Fetching || ks.Keys != 1 || ks.Source == "" || ks.Source == KeySourceStatic ||
		!ks.Expires.Equal(p.Clock.Now().Add(time.Minute)) {
		t.Fatalf("after a fetch: %+v", ks)
	}
	p.Server.Close()
	p.Clock.Advance(2 * time.Minute)
	verify() // the refresh fails; the last good keys serve
	if ks := f.KeyStatus(ti.Issuer); !ks.Cached || !ks.Stale || ks.Keys != 1 {
		t.Fatalf("after a failed refresh: %+v", ks)
	}
	f.Forget(ti.Issuer)
	if ks := f.KeyStatus(ti.Issuer); ks.Cached {
		t.Fatalf("after Forget: %+v", ks)
	}
}
