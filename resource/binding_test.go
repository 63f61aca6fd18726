package resource_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/keybridge/sts/dpop"
	"github.com/keybridge/sts/internal/clientcert"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/oauth"
	"github.com/keybridge/sts/resource"
	"github.com/keybridge/sts/stsclient"
)

func ecKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// answer is what a request got.
type answer struct {
	status int
	www    []string
	nonce  string
	body   string
}

func (a answer) challenge() string { return strings.Join(a.www, " | ") }

func send(t *testing.T, hc *http.Client, method, u, auth string, proofs ...string) answer {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for _, p := range proofs {
		req.Header.Add(dpop.Header, p)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header.Values("WWW-Authenticate"), resp.Header.Get(dpop.NonceHeader), string(b)}
}

func proof(t *testing.T, key *ecdsa.PrivateKey, method, u, token string, o dpop.ProofOptions) string {
	t.Helper()
	o.AccessToken = token
	p, err := dpop.NewProof(key, "", method, u, o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRFC9449_7_DPoPBoundTokens: a DPoP-bound token is served only with
// the DPoP scheme and a fresh proof of its key for this request and this
// token; every refusal is a DPoP challenge with the RFC 9449 §7.1 code.
func TestRFC9449_7_DPoPBoundTokens(t *testing.T) {
	ti := newTestIssuer(t)
	clk := newClock()
	kid := ti.addKey("ES256", true)
	v := newVerifier(t, ti, clk, nil)
	srv := httptest.NewServer(v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := resource.ClaimsFromContext(r.Context())
		io.WriteString(w, "ok "+c.Confirmation.JKT)
	})))
	t.Cleanup(srv.Close)
	api := srv.URL + "/api"

	keyA, keyB := ecKey(t), ecKey(t)
	jktA, _ := dpop.Thumbprint(&keyA.PublicKey)
	bound := ti.claims(clk.Now())
	bound["cnf"] = map[string]any{"jkt": jktA}
	tok := ti.sign(kid, "ES256", "at+jwt", bound)
	other := ti.claims(clk.Now())
	other["cnf"] = map[string]any{"jkt": jktA}
	other["jti"] = "id-2"
	tok2 := ti.sign(kid, "ES256", "at+jwt", other)
	bearer := ti.sign(kid, "ES256", "at+jwt", ti.claims(clk.Now()))
	now := dpop.ProofOptions{Now: clk.Now()}
	hc := srv.Client()

	if a := send(t, hc, "GET", api, "DPoP "+tok, proof(t, keyA, "GET", api, tok, now)); a.status != 200 || a.body != "ok "+jktA {
		t.Fatalf("good request: %+v", a)
	}
	replayed := proof(t, keyA, "GET", api, tok, now)
	send(t, hc, "GET", api, "DPoP "+tok, replayed)

	cases := []struct {
		name   string
		auth   string
		proofs []string
		code   string
	}{
		{"missing proof", "DPoP " + tok, nil, dpop.CodeInvalidProof},
		{"two proofs", "DPoP " + tok, []string{proof(t, keyA, "GET", api, tok, now), proof(t, keyA, "GET", api, tok, now)}, dpop.CodeInvalidProof},
		{"proof of key B for a key A token", "DPoP " + tok, []string{proof(t, keyB, "GET", api, tok, now)}, dpop.CodeInvalidProof},
		{"ath of another token", "DPoP " + tok, []string{proof(t, keyA, "GET", api, tok2, now)}, dpop.CodeInvalidProof},
		{"no ath", "DPoP " + tok, []string{proof(t, keyA, "GET", api, "", now)}, dpop.CodeInvalidProof},
		{"wrong htu", "DPoP " + tok, []string{proof(t, keyA, "GET", srv.URL+"/other", tok, now)}, dpop.CodeInvalidProof},
		{"wrong htm", "DPoP " + tok, []string{proof(t, keyA, "POST", api, tok, now)}, dpop.CodeInvalidProof},
		{"stale iat", "DPoP " + tok, []string{proof(t, keyA, "GET", api, tok, dpop.ProofOptions{Now: clk.Now().Add(-10 * time.Minute)})}, dpop.CodeInvalidProof},
		{"future iat", "DPoP " + tok, []string{proof(t, keyA, "GET", api, tok, dpop.ProofOptions{Now: clk.Now().Add(10 * time.Minute)})}, dpop.CodeInvalidProof},
		{"replayed proof", "DPoP " + tok, []string{replayed}, dpop.CodeInvalidProof},
		{"bound token as Bearer", "Bearer " + tok, nil, string(oauth.ErrInvalidToken)},
		{"bound token as Bearer with a proof", "Bearer " + tok, []string{proof(t, keyA, "GET", api, tok, now)}, string(oauth.ErrInvalidToken)},
		{"unbound token with the DPoP scheme", "DPoP " + bearer, []string{proof(t, keyA, "GET", api, bearer, now)}, string(oauth.ErrInvalidToken)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := send(t, hc, "GET", api, tc.auth, tc.proofs...)
			if a.status != http.StatusUnauthorized || len(a.www) != 1 ||
				!strings.HasPrefix(a.www[0], "DPoP ") || !strings.Contains(a.www[0], `error="`+tc.code+`"`) || !strings.Contains(a.www[0], `algs="`) {
				t.Fatalf("got %d %q, want 401 and a DPoP challenge with error=%q", a.status, a.challenge(), tc.code)
			}
		})
	}

	// A request without a token is offered both schemes.
	if a := send(t, hc, "GET", api, ""); a.status != 401 || len(a.www) != 2 || !strings.HasPrefix(a.challenge(), "Bearer") || !strings.Contains(a.challenge(), "DPoP algs=") {
		t.Errorf("no token: %d %q", a.status, a.challenge())
	}
	// The plain bearer token still works as before.
	if a := send(t, hc, "GET", api, "Bearer "+bearer); a.status != 200 {
		t.Errorf("bearer token: %+v", a)
	}
	// Verify alone cannot check a proof, so it refuses a bound token.
	if _, err := v.Verify(context.Background(), tok); !errors.Is(err, resource.ErrBound) {
		t.Errorf("Verify of a bound token: %v", err)
	}
	// A cnf this package cannot check is refused, not taken as bearer.
	odd := ti.claims(clk.Now())
	odd["cnf"] = map[string]any{"jwk": map[string]any{"kty": "EC"}}
	if a := send(t, hc, "GET", api, "Bearer "+ti.sign(kid, "ES256", "at+jwt", odd)); a.status != 401 {
		t.Errorf("unknown cnf member: %+v", a)
	}
}

// TestRFC9449_9_ResourceNonceWithStsclient: with server nonces, the
// resource server answers use_dpop_nonce with a DPoP-Nonce header, and
// stsclient's Transport retries once with it.
func TestRFC9449_9_ResourceNonceWithStsclient(t *testing.T) {
	ti := newTestIssuer(t)
	clk := newClock()
	kid := ti.addKey("ES256", true)
	nonces := dpop.NewHMACNonces([]byte(strings.Repeat("n", 32)), time.Minute)
	v := newVerifier(t, ti, clk, func(c *resource.Config) { c.DPoP = &resource.DPoPConfig{Nonces: nonces} })
	var calls atomic.Int32
	srv := httptest.NewServer(v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "served")
	})))
	t.Cleanup(srv.Close)
	counting := srv.Config.Handler
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1); counting.ServeHTTP(w, r) })

	key := ecKey(t)
	jkt, _ := dpop.Thumbprint(&key.PublicKey)
	claims := ti.claims(clk.Now())
	claims["cnf"] = map[string]any{"jkt": jkt}
	tok := ti.sign(kid, "ES256", "at+jwt", claims)

	a := send(t, srv.Client(), "GET", srv.URL+"/x", "DPoP "+tok, proof(t, key, "GET", srv.URL+"/x", tok, dpop.ProofOptions{Now: clk.Now()}))
	if a.status != 401 || a.nonce == "" || !strings.Contains(a.challenge(), `error="use_dpop_nonce"`) {
		t.Fatalf("proof without nonce: %d %q nonce %q", a.status, a.challenge(), a.nonce)
	}

	cl := &stsclient.Client{DPoPKey: key, Now: clk.Now}
	src := oauth2.StaticTokenSource(&oauth2.Token{AccessToken: tok, TokenType: "DPoP"})
	hc := &http.Client{Transport: cl.Transport(src, srv.Client().Transport)}
	calls.Store(0)
	resp, err := hc.Get(srv.URL + "/x?q=1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "served" || calls.Load() != 2 {
		t.Fatalf("through stsclient: %d %q after %d calls, want 200 after 2", resp.StatusCode, b, calls.Load())
	}
}

// TestRFC8705_3_CertificateBoundTokens: a certificate-bound token is
// served only over a TLS connection with that client certificate (real
// handshakes with certificates generated here), or with the certificate
// forwarded by a trusted proxy; introspected tokens' cnf counts the same.
func TestRFC8705_3_CertificateBoundTokens(t *testing.T) {
	ti := newTestIssuer(t)
	clk := newClock()
	kid := ti.addKey("ES256", true)
	ca := ststest.NewCA(t, "client ca")
	leafA, leafB := ca.Client(t, "device-a"), ca.Client(t, "device-b")
	self := ststest.SelfSigned(t, ststest.CertOptions{})

	claims := ti.claims(clk.Now())
	claims["cnf"] = map[string]any{"x5t#S256": clientcert.Thumbprint(leafA.Cert)}
	tok := ti.sign(kid, "ES256", "at+jwt", claims)
	ti.mu.Lock()
	ti.intro["opaque-a"] = oauth.IntrospectionResponse{Active: true, Sub: "user-1", Aud: oauth.Audience{audience},
		Exp: clk.Now().Add(time.Hour).Unix(), TokenType: "Bearer", Scope: "api"}
	ti.introCnf["opaque-a"] = map[string]any{"x5t#S256": clientcert.Thumbprint(leafA.Cert)}
	ti.mu.Unlock()

	v := newVerifier(t, ti, clk, func(c *resource.Config) { c.Introspection = &resource.IntrospectionConfig{URL: ti.URL + "/introspect"} })
	srv := httptest.NewUnstartedServer(v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })))
	srv.TLS = ststest.ServerTLSConfig(ca.Server(t))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	serverCA := ca // the server certificate is issued by the same test CA

	for _, tk := range []string{tok, "opaque-a"} {
		if a := send(t, ststest.HTTPClient(serverCA, leafA), "GET", srv.URL+"/api", "Bearer "+tk); a.status != 200 {
			t.Fatalf("%s with certificate A: %+v", tk[:8], a)
		}
		for name, leaf := range map[string]*ststest.Cert{"certificate B": leafB, "self-signed": self, "no certificate": nil} {
			a := send(t, ststest.HTTPClient(serverCA, leaf), "GET", srv.URL+"/api", "Bearer "+tk)
			if a.status != 401 || !strings.HasPrefix(a.challenge(), "Bearer") || !strings.Contains(a.challenge(), `error="invalid_token"`) {
				t.Errorf("%s with %s: %d %q", tk[:8], name, a.status, a.challenge())
			}
		}
	}
	if _, err := v.Verify(context.Background(), tok); !errors.Is(err, resource.ErrBound) {
		t.Errorf("Verify of a certificate-bound token: %v", err)
	}

	// Behind a TLS-terminating proxy: the header is believed from the
	// trusted proxy only.
	pemA := url.PathEscape(string(leafA.CertPEM))
	pemB := url.PathEscape(string(leafB.CertPEM))
	for _, tc := range []struct {
		name    string
		proxies []string
		header  string
		status  int
	}{
		{"trusted proxy, certificate A", []string{"127.0.0.1/32"}, pemA, 200},
		{"trusted proxy, certificate B", []string{"127.0.0.1/32"}, pemB, 401},
		{"trusted proxy, garbage", []string{"127.0.0.1/32"}, "%zz", 401},
		{"untrusted peer", []string{"10.0.0.0/8"}, pemA, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pv := newVerifier(t, ti, clk, func(c *resource.Config) {
				c.ClientCertHeader, c.TrustedProxies = "X-Client-Cert", tc.proxies
			})
			ps := httptest.NewServer(pv.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })))
			defer ps.Close()
			req, _ := http.NewRequest("GET", ps.URL, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("X-Client-Cert", tc.header)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("got %d, want %d", resp.StatusCode, tc.status)
			}
		})
	}
}
