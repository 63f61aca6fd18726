package federation

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/keybridge/sts/internal/store"
)

func TestDiscoveryURLs(t *testing.T) {
	for _, tc := range []struct {
		issuer string
		want   []string
	}{
		{"https://idp.example", []string{
			"https://idp.example/.well-known/openid-configuration",
			"https://idp.example/.well-known/oauth-authorization-server"}},
		{"https://idp.example/", []string{
			"https://idp.example/.well-known/openid-configuration",
			"https://idp.example/.well-known/oauth-authorization-server"}},
		// RFC 8414 §3.1: the well-known segment goes between host and path.
		{"https://idp.example:8443/tenant/a", []string{
			"https://idp.example:8443/tenant/a/.well-known/openid-configuration",
			"https://idp.example:8443/.well-known/oauth-authorization-server/tenant/a"}},
	} {
		if got := discoveryURLs(tc.issuer); !slices.Equal(got, tc.want) {
			t.Errorf("discoveryURLs(%q) = %q, want %q", tc.issuer, got, tc.want)
		}
	}
}

// TestDiscoveryRFC8414Fallback: an issuer with a path that has no OpenID
// configuration but RFC 8414 metadata at the inserted path.
func TestDiscoveryRFC8414Fallback(t *testing.T) {
	p := newTestIdP(t, jose.ES256)
	issuer := p.Issuer + "/tenant"
	var oidcTried bool
	p.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		switch r.URL.Path {
		case "/tenant/.well-known/openid-configuration":
			oidcTried = true
			http.NotFound(w, r)
			return true
		case "/.well-known/oauth-authorization-server/tenant":
			p.writeJSON(w, map[string]any{"issuer": issuer, "jwks_uri": p.Issuer + "/jwks"})
			return true
		}
		return false
	})
	f := newTestFetcher(p, Options{})
	ti := p.TrustedIssuer()
	ti.Issuer = issuer
	m, err := f.Discover(context.Background(), ti)
	if err != nil {
		t.Fatal(err)
	}
	if !oidcTried || m.Issuer != issuer || m.JWKSURI != p.Issuer+"/jwks" {
		t.Fatalf("metadata %+v (OpenID tried: %v)", m, oidcTried)
	}
	c := p.Claims("alice")
	c["iss"] = issuer
	if _, err := f.VerifyJWT(context.Background(), ti, p.Sign(c), Check{}); err != nil {
		t.Fatal(err)
	}
	if f.Fetches() != 3 {
		t.Fatalf("%d fetches, want 3 (two discovery places, JWKS)", f.Fetches())
	}
}

func TestDiscoveryForAnotherIssuerRefused(t *testing.T) {
	p := newTestIdP(t, jose.ES256)
	p.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/.well-known/openid-configuration" {
			p.writeJSON(w, map[string]any{"issuer": p.Issuer + "/", "jwks_uri": p.Issuer + "/jwks"})
			return true
		}
		return false
	})
	f := newTestFetcher(p, Options{})
	ti := p.TrustedIssuer()
	_, err := f.Discover(context.Background(), ti)
	wantReason(t, err, "the discovery document of issuer "+p.Issuer+" could not be fetched: the document is for another issuer", true)
	_, err = f.VerifyJWT(context.Background(), ti, p.Sign(p.Claims("alice")), Check{})
	wantReason(t, err, "the document is for another issuer", true)
	if p.JWKSHits.Load() != 0 {
		t.Fatal("keys fetched from a document for another issuer")
	}
}

// TestFetchRefusals: each bad upstream answer is an upstream *Error whose
// Reason names the issuer and the failure.
func TestFetchRefusals(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"keys":[]}`)
	}))
	defer other.Close()
	cases := []struct {
		name   string
		hook   func(p *testIdP) func(w http.ResponseWriter, r *http.Request) bool
		reason string
	}{
		{"oversized JSON", func(p *testIdP) func(w http.ResponseWriter, r *http.Request) bool {
			return onJWKS(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprintf(w, `{"keys":[],"pad":%q}`, strings.Repeat("x", 4096))
			})
		}, "the answer is larger than 2048 bytes"},
		{"invalid JSON", func(p *testIdP) func(w http.ResponseWriter, r *http.Request) bool {
			return onJWKS(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprint(w, `{"keys":[`)
			})
		}, "the answer is not valid JSON"},
		{"not a key set", func(p *testIdP) func(w http.ResponseWriter, r *http.Request) bool {
			return onJWKS(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"keys":"no"}`) })
		}, "the key set is malformed"},
		{"no usable key", func(p *testIdP) func(w http.ResponseWriter, r *http.Request) bool {
			return onJWKS(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprint(w, `{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`)
			})
		}, "the key set has no usable signature key"},
		{"HTML", func(p *testIdP) func(w http.ResponseWriter, r *http.Request) bool {
			return onJWKS(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				fmt.Fprint(w, `{"keys":[]}`)
			})
		}, "the answer is not JSON"},
		{"status 500", func(p *testIdP) func(w http.ResponseWriter, r *http.Request) bool {
			return onJWKS(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "oops", 500) })
		}, "status 500"},
		{"redirect to another host", func(p *testIdP) func(w http.ResponseWriter, r *http.Request) bool {
			return onJWKS(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, other.URL+"/jwks", http.StatusFound)
			})
		}, "redirect to another host refused"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestIdP(t, jose.ES256)
			p.SetHook(tc.hook(p))
			f := newTestFetcher(p, Options{MaxResponseBytes: 2048})
			_, err := f.VerifyJWT(context.Background(), p.TrustedIssuer(), p.Sign(p.Claims("alice")), Check{})
			wantReason(t, err, "the keys of issuer "+p.Issuer+" could not be fetched: "+tc.reason, true)
		})
	}
}

func onJWKS(h http.HandlerFunc) func(w http.ResponseWriter, r *http.Request) bool {
	return func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/jwks" {
			return false
		}
		h(w, r)
		return true
	}
}

// TestRedirectToSameHostFollowed: a redirect within the issuer's host is
// followed (a moved key set).
func TestRedirectToSameHostFollowed(t *testing.T) {
	p := newTestIdP(t, jose.ES256)
	p.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/old-jwks" {
			http.Redirect(w, r, "/jwks", http.StatusMovedPermanently)
			return true
		}
		return false
	})
	f := newTestFetcher(p, Options{})
	ti := p.TrustedIssuer()
	ti.JWKSURI = p.Issuer + "/old-jwks"
	if _, err := f.VerifyJWT(context.Background(), ti, p.Sign(p.Claims("alice")), Check{}); err != nil {
		t.Fatal(err)
	}
}

// TestHTTPSRequired: plain http to a host that is not loopback is refused
// before any connection, unless the issuer allows it.
func TestHTTPSRequired(t *testing.T) {
	p := newTestIdP(t, jose.ES256)
	f := newTestFetcher(p, Options{ConnectTimeout: 200 * time.Millisecond, FetchTimeout: 500 * time.Millisecond})
	for _, u := range []string{"http://idp.example/jwks", "ftp://idp.example/jwks", "http://10.0.0.1/jwks"} {
		ti := p.TrustedIssuer()
		ti.JWKSURI = u
		_, err := f.VerifyJWT(context.Background(), ti, p.Sign(p.Claims("alice")), Check{})
		wantReason(t, err, "could not be fetched: https is required", true)
	}
	if f.Fetches() != 0 {
		t.Fatalf("%d fetches", f.Fetches())
	}
	for _, host := range []string{"127.0.0.2", "[::1]", "localhost"} {
		if _, err := checkURL(&store.TrustedIssuer{Issuer: "http://127.0.0.1:8080"}, "http://"+host+":1/jwks"); err != nil {
			t.Errorf("loopback %s refused: %v", host, err)
		}
	}
	// AllowHTTP lets plain http through: the failure is then the
	// connection (TEST-NET-1 does not answer), within the timeout.
	ti := p.TrustedIssuer()
	ti.JWKSURI = "http://192.0.2.1/jwks"
	ti.AllowHTTP = true
	start := time.Now()
	_, err := f.VerifyJWT(context.Background(), ti, p.Sign(p.Claims("alice")), Check{})
	fe := wantReason(t, err, "the keys of issuer "+p.Issuer+" could not be fetched", true)
	if strings.Contains(fe.Reason, "https is required") {
		t.Fatal("AllowHTTP ignored")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %s", d)
	}
}

// TestUpstreamDown: a closed listener. Without keys it is an upstream
// error; with keys fetched before, they serve for KeepStale.
func TestUpstreamDown(t *testing.T) {
	t.Run("no keys yet", func(t *testing.T) {
		p := newTestIdP(t, jose.ES256)
		p.Server.Close()
		f := newTestFetcher(p, Options{})
		ti := p.TrustedIssuer()
		_, err := f.VerifyJWT(context.Background(), ti, p.Sign(p.Claims("alice")), Check{})
		wantReason(t, err, "the discovery document of issuer "+p.Issuer+" could not be fetched: the upstream could not be reached", true)
		ti.JWKSURI = p.Issuer + "/jwks"
		ti.UpdatedAt = ti.UpdatedAt.Add(time.Second)
		_, err = f.VerifyJWT(context.Background(), ti, p.Sign(p.Claims("alice")), Check{})
		wantReason(t, err, "the keys of issuer "+p.Issuer+" could not be fetched: the upstream could not be reached", true)
	})
	t.Run("stale keys", func(t *testing.T) {
		p := newTestIdP(t, jose.ES256)
		p.SetCacheControl("max-age=60")
		f := newTestFetcher(p, Options{KeepStale: time.Hour, UnknownKidInterval: 30 * time.Second})
		ti := p.TrustedIssuer()
		verify := func() error {
			c := p.Claims("alice")
			_, err := f.VerifyJWT(context.Background(), ti, p.Sign(c), Check{})
			return err
		}
		if err := verify(); err != nil {
			t.Fatal(err)
		}
		p.Server.Close()
		p.Clock.Advance(2 * time.Minute) // keys and discovery expired
		n := f.Fetches()
		if err := verify(); err != nil {
			t.Fatalf("stale keys not used: %v", err)
		}
		if f.Fetches() == n {
			t.Fatal("expired keys were not refreshed")
		}
		// Failed refreshes are not retried on every request.
		n = f.Fetches()
		for range 10 {
			if err := verify(); err != nil {
				t.Fatal(err)
			}
		}
		if f.Fetches() != n {
			t.Fatalf("%d fetches while the upstream is known down", f.Fetches()-n)
		}
		p.Clock.Advance(59 * time.Minute) // 1 min expiry + 1 h stale: past
		err := verify()
		wantReason(t, err, "could not be fetched", true)
	})
}

// TestSlowUpstream: an upstream slower than FetchTimeout fails the
// request within about FetchTimeout.
func TestSlowUpstream(t *testing.T) {
	for _, path := range []string{"/.well-known/openid-configuration", "/jwks"} {
		t.Run(path, func(t *testing.T) {
			p := newTestIdP(t, jose.ES256)
			p.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
				if r.URL.Path != path {
					return false
				}
				select {
				case <-time.After(5 * time.Second):
				case <-r.Context().Done():
				}
				return true
			})
			const timeout = 300 * time.Millisecond
			f := newTestFetcher(p, Options{FetchTimeout: timeout})
			start := time.Now()
			_, err := f.VerifyJWT(context.Background(), p.TrustedIssuer(), p.Sign(p.Claims("alice")), Check{})
			d := time.Since(start)
			wantReason(t, err, "could not be fetched: no answer within 300ms", true)
			// The handler sleeps 5 s; generous slack for a loaded machine.
			if d < timeout || d > timeout+1500*time.Millisecond {
				t.Fatalf("returned after %s, want about %s", d, timeout)
			}
			if n := strings.Count(err.Error(), "no answer within"); n != 1 {
				t.Fatalf("Error() repeats the reason: %q", err.Error())
			}
			// A caller's own shorter deadline is honoured too.
			f = newTestFetcher(p, Options{FetchTimeout: time.Second})
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			start = time.Now()
			_, err = f.VerifyJWT(ctx, p.TrustedIssuer(), p.Sign(p.Claims("alice")), Check{})
			wantReason(t, err, "could not be fetched", true)
			if d := time.Since(start); d > 600*time.Millisecond {
				t.Fatalf("caller deadline of 100ms: returned after %s", d)
			}
		})
	}
}

func TestMaxAge(t *testing.T) {
	for _, tc := range []struct {
		h    string
		want time.Duration
	}{
		{"", -1},
		{"max-age=60", time.Minute},
		{"public, max-age=\"90\"", 90 * time.Second},
		{"no-cache", 0},
		{"max-age=-5", -1},
		{"max-age=abc", -1},
		{"max-age=99999999999", 365 * 24 * time.Hour},
	} {
		h := http.Header{}
		if tc.h != "" {
			h.Set("Cache-Control", tc.h)
		}
		if got := maxAge(h); got != tc.want {
			t.Errorf("maxAge(%q) = %s, want %s", tc.h, got, tc.want)
		}
	}
}

// TestForget drops an issuer's cache.
func TestForget(t *testing.T) {
	p := newTestIdP(t, jose.ES256)
	f := newTestFetcher(p, Options{})
	ti := p.TrustedIssuer()
	if _, err := f.VerifyJWT(context.Background(), ti, p.Sign(p.Claims("alice")), Check{}); err != nil {
		t.Fatal(err)
	}
	f.Forget(p.Issuer)
	if _, err := f.VerifyJWT(context.Background(), ti, p.Sign(p.Claims("alice")), Check{}); err != nil {
		t.Fatal(err)
	}
	if f.Fetches() != 4 {
		t.Fatalf("%d fetches, want 4 (discovery and keys twice)", f.Fetches())
	}
}

// TestLoopbackOnlyForLoopbackIssuers: a remote issuer's metadata cannot
// point the server at its own machine; the operator's own URLs can.
func TestLoopbackOnlyForLoopbackIssuers(t *testing.T) {
	remote := &store.TrustedIssuer{Issuer: "https://idp.example", JWKSURI: "http://127.0.0.1:9/keys"}
	for _, tt := range []struct {
		ti  *store.TrustedIssuer
		url string
		ok  bool
	}{
		{remote, "http://127.0.0.1:9090/admin", false},
		{remote, "https://localhost/keys", false},
		{remote, "http://[::1]:8080/x", false},
		{remote, "http://127.0.0.1:9/keys", true}, // configured by the operator
		{remote, "https://keys.idp.example/jwks", true},
		{&store.TrustedIssuer{Issuer: "http://127.0.0.1:8080"}, "http://127.0.0.1:8080/keys", true},
	} {
		_, err := checkURL(tt.ti, tt.url)
		if (err == nil) != tt.ok {
			t.Errorf("%s for issuer %s: %v", tt.url, tt.ti.Issuer, err)
		}
	}
}
