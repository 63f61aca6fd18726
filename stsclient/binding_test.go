package stsclient_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/keybridge/sts/dpop"
	"github.com/keybridge/sts/examples/resource-server/backend"
	"github.com/keybridge/sts/internal/clientcert"
	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/oauth"
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

// TestPrivateKeyJWTWithSTS: a client whose only credential is a key
// exchanges tokens with a real Key Bridge STS, a fresh assertion per
// request; a key the server does not know is refused invalid_client.
func TestPrivateKeyJWTWithSTS(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	key := ecKey(t)
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "dev-1", Algorithm: "ES256", Use: "sig"}}})
	c := s.CreateClient(func(c *store.Client) {
		c.AuthMethod = oauth.AuthMethodPrivateKeyJWT
		c.Binding = store.Binding{JWKS: jwks}
		c.Audiences = []string{"https://api.example.com"}
		c.AllowImpersonation = true
		c.ExchangeAny = true
	})
	issuer := s.CreateClient(func(c *store.Client) { c.Audiences = []string{"https://api.example.com"} })
	subject := s.ClientCredentials(issuer, nil)

	cl := &stsclient.Client{TokenURL: s.URL + server.TokenPath, ClientID: c.ID, AssertionKey: key, AssertionKeyID: "dev-1"}
	for i := range 2 { // the second needs a fresh jti
		resp, err := cl.Exchange(context.Background(), stsclient.ExchangeRequest{
			SubjectToken: subject, SubjectTokenType: oauth.TokenTypeAccessToken, Audience: []string{"https://api.example.com"},
		})
		if err != nil {
			t.Fatalf("exchange %d: %v", i, err)
		}
		if resp.AccessToken == "" {
			t.Fatalf("exchange %d: no token", i)
		}
	}
	recs := s.Audit()
	if recs[0].ClientID != c.ID || recs[0].Decision != store.DecisionGranted {
		t.Fatalf("newest audit record %+v, want a grant to %s", recs[0], c.ID)
	}

	wrong := *cl
	wrong.AssertionKey = ecKey(t)
	_, err := wrong.Exchange(context.Background(), stsclient.ExchangeRequest{SubjectToken: subject, SubjectTokenType: oauth.TokenTypeAccessToken})
	if !errors.Is(err, &oauth.Error{Code: oauth.ErrInvalidClient}) {
		t.Fatalf("unregistered key: %v", err)
	}
}

// TestTLSClientAuthSendsClientIDOnly: with tls_client_auth the client
// presents its certificate in a real TLS handshake and sends client_id,
// no secret and no Authorization header (RFC 8705 §2).
func TestTLSClientAuthSendsClientIDOnly(t *testing.T) {
	ca := ststest.NewCA(t, "test ca")
	leaf := ca.Client(t, "device-7")
	var (
		mu     sync.Mutex
		gotCN  string
		gotReq string
	)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		mu.Lock()
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			gotCN = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		gotReq = r.Header.Get("Authorization") + "|" + r.PostForm.Get("client_id") + "|" + r.PostForm.Get("client_secret") + "|" + r.PostForm.Get("client_assertion")
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"access_token":"t","token_type":"Bearer","issued_token_type":"`+oauth.TokenTypeAccessToken+`"}`)
	}))
	srv.TLS = ststest.ServerTLSConfig(ca.Server(t))
	srv.StartTLS()
	t.Cleanup(srv.Close)

	for _, m := range []string{oauth.AuthMethodTLSClientAuth, oauth.AuthMethodSelfSignedTLSClientAuth} {
		cl := &stsclient.Client{TokenURL: srv.URL + "/token", ClientID: "c-device", AuthMethod: m, HTTPClient: ststest.HTTPClient(ca, leaf)}
		if _, err := cl.Exchange(context.Background(), stsclient.ExchangeRequest{SubjectToken: "s", SubjectTokenType: oauth.TokenTypeAccessToken}); err != nil {
			t.Fatal(m, err)
		}
		mu.Lock()
		if gotCN != "device-7" || gotReq != "|c-device||" {
			t.Errorf("%s: certificate %q, Authorization|client_id|client_secret|client_assertion = %q", m, gotCN, gotReq)
		}
		mu.Unlock()
	}
}

// dpopServer is a token endpoint and a resource server that verify DPoP
// proofs with package dpop and require server nonces (RFC 9449 §8, §9).
type dpopServer struct {
	*httptest.Server
	t      *testing.T
	nonces *dpop.HMACNonces
	mu     sync.Mutex
	jkts   []string
	asser  []string
	calls  map[string]int
}

func newDPoPServer(t *testing.T) *dpopServer {
	d := &dpopServer{t: t, nonces: dpop.NewHMACNonces([]byte(strings.Repeat("k", 32)), 0), calls: map[string]int{}}
	d.Server = httptest.NewServer(http.HandlerFunc(d.serve))
	t.Cleanup(d.Close)
	return d
}

func (d *dpopServer) serve(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	d.calls[r.URL.Path]++
	d.mu.Unlock()
	v := &dpop.Verifier{Nonces: d.nonces, Replay: dpop.NewMemoryReplay(0)}
	switch r.URL.Path {
	case "/token":
		r.ParseForm()
		d.mu.Lock()
		d.asser = append(d.asser, r.PostForm.Get("client_assertion"))
		d.mu.Unlock()
		p, err := v.Verify(r.Context(), r.Header.Get(dpop.Header), r.Method, d.URL+"/token", "")
		if err != nil {
			e := dpop.AsError(err)
			w.Header().Set(dpop.NonceHeader, d.nonces.Nonce(d.now()))
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]string{"error": e.Code, "error_description": e.Description})
			return
		}
		d.mu.Lock()
		d.jkts = append(d.jkts, p.JKT)
		d.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": "bound-" + p.JKT, "token_type": "DPoP", "expires_in": 300,
			"issued_token_type": oauth.TokenTypeAccessToken})
	case "/api":
		auth := r.Header.Get("Authorization")
		tok, ok := strings.CutPrefix(auth, "DPoP ")
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		p, err := v.Verify(r.Context(), r.Header.Get(dpop.Header), r.Method, d.URL+"/api", tok)
		if err != nil || "bound-"+p.JKT != tok {
			w.Header().Set(dpop.NonceHeader, d.nonces.Nonce(d.now()))
			w.Header().Set("WWW-Authenticate", `DPoP error="use_dpop_nonce", error_description="nonce required"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		body, _ := io.ReadAll(r.Body)
		io.WriteString(w, "hello "+string(body))
	}
}

func (d *dpopServer) now() time.Time { return time.Now() }

// TestDPoPTokenSourceAndTransport: a client with a DPoP key gets a
// DPoP-bound token (retrying once with the server's nonce), its
// TokenSource keeps the DPoP token type, and its Transport presents the
// token with a proof (ath, htm, htu), retrying once with the resource
// server's nonce, body included.
func TestDPoPTokenSourceAndTransport(t *testing.T) {
	d := newDPoPServer(t)
	key := ecKey(t)
	assertionKey := ecKey(t)
	cl := &stsclient.Client{TokenURL: d.URL + "/token", ClientID: "c-radio", AssertionKey: assertionKey, DPoPKey: key}
	ts := cl.TokenSource(context.Background(), oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "subject"}), stsclient.ExchangeRequest{})
	tok, err := ts.Token()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := dpop.Thumbprint(&key.PublicKey)
	if tok.Type() != "DPoP" || tok.AccessToken != "bound-"+want {
		t.Fatalf("token %q of type %q, want one bound to %s of type DPoP", tok.AccessToken, tok.Type(), want)
	}
	d.mu.Lock()
	if d.calls["/token"] != 2 || len(d.asser) != 2 || d.asser[0] == d.asser[1] || d.asser[1] == "" {
		t.Errorf("token requests %d, assertions %d (a fresh one on the retry: %v)", d.calls["/token"], len(d.asser), len(d.asser) == 2 && d.asser[0] != d.asser[1])
	}
	d.mu.Unlock()

	hc := &http.Client{Transport: cl.Transport(ts, nil)}
	resp, err := hc.Post(d.URL+"/api?x=1", "text/plain", strings.NewReader("radio"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "hello radio" {
		t.Fatalf("resource: %d %q", resp.StatusCode, body)
	}
	d.mu.Lock()
	if d.calls["/api"] != 2 || d.calls["/token"] != 2 {
		t.Errorf("calls %v: want /api twice (nonce retry) and no new token", d.calls)
	}
	d.mu.Unlock()

	// Without a DPoP key the Transport refuses to send a DPoP token as a
	// bearer one.
	bare := &stsclient.Client{TokenURL: d.URL + "/token"}
	_, err = (&http.Client{Transport: bare.Transport(oauth2.StaticTokenSource(tok), nil)}).Get(d.URL + "/api")
	if err == nil || !strings.Contains(err.Error(), "DPoPKey") {
		t.Fatalf("DPoP token without a key: %v", err)
	}
}

// TestTLSClientAuthWithSTS: clients whose only credential is a
// certificate exchange tokens with a real Key Bridge STS over TLS
// (tls_client_auth with a CA-issued certificate, and a self-signed one
// registered by its key); another certificate is refused invalid_client.
func TestTLSClientAuthWithSTS(t *testing.T) {
	ca := ststest.NewCA(t, "client ca")
	s := ststest.Start(t, ststest.Options{TLS: &ststest.TLS{ClientCA: ca}})
	leaf := ca.Client(t, "device-7")
	self := ststest.SelfSigned(t, ststest.CertOptions{})
	selfJWKS, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: self.Key.Public(), KeyID: "self"}}})
	mk := func(method string, b store.Binding) *ststest.Client {
		return s.CreateClient(func(c *store.Client) {
			c.AuthMethod, c.Binding, c.ExchangeAny = method, b, true
			c.Audiences = []string{"https://api.example.com"}
		})
	}
	byCA := mk(oauth.AuthMethodTLSClientAuth, store.Binding{TLSSubjectDN: "CN=device-7"})
	bySelf := mk(oauth.AuthMethodSelfSignedTLSClientAuth, store.Binding{JWKS: selfJWKS})
	subject := s.ClientCredentials(s.CreateClient(func(c *store.Client) { c.Audiences = []string{"https://api.example.com"} }), nil)
	req := stsclient.ExchangeRequest{SubjectToken: subject, SubjectTokenType: oauth.TokenTypeAccessToken, Audience: []string{"https://api.example.com"}}

	for _, tc := range []struct {
		name   string
		c      *ststest.Client
		method string
		cert   *ststest.Cert
		ok     bool
	}{
		{"tls_client_auth", byCA, oauth.AuthMethodTLSClientAuth, leaf, true},
		{"self_signed_tls_client_auth", bySelf, oauth.AuthMethodSelfSignedTLSClientAuth, self, true},
		{"tls_client_auth with the self-signed certificate", byCA, oauth.AuthMethodTLSClientAuth, self, false},
		{"self_signed_tls_client_auth with the CA's leaf", bySelf, oauth.AuthMethodSelfSignedTLSClientAuth, leaf, false},
		{"no certificate", byCA, oauth.AuthMethodTLSClientAuth, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := &stsclient.Client{TokenURL: s.URL + server.TokenPath, ClientID: tc.c.ID, AuthMethod: tc.method, HTTPClient: s.Client(tc.cert)}
			resp, err := cl.Exchange(context.Background(), req)
			switch {
			case tc.ok && (err != nil || resp.AccessToken == ""):
				t.Fatalf("exchange: %v", err)
			case !tc.ok && !errors.Is(err, &oauth.Error{Code: oauth.ErrInvalidClient}):
				t.Fatalf("got %v, want invalid_client", err)
			}
		})
	}
}

// TestBoundTokensEndToEnd: against a real STS over TLS (with server DPoP
// nonces) and the example resource server over TLS, a client with only a
// certificate, one with only a DPoP key (and a private_key_jwt key to
// authenticate) and one with only a private_key_jwt key each exchange a
// token and use it; the bound ones are refused without their key.
func TestBoundTokensEndToEnd(t *testing.T) {
	ca := ststest.NewCA(t, "client ca")
	s := ststest.Start(t, ststest.Options{TLS: &ststest.TLS{ClientCA: ca}, DPoPNonceKey: []byte(strings.Repeat("d", 32))})
	api, err := backend.New(context.Background(), backend.Options{Issuer: s.URL, HTTPClient: s.Client(nil)})
	if err != nil {
		t.Fatal(err)
	}
	rs := httptest.NewUnstartedServer(api)
	rs.TLS = ststest.ServerTLSConfig(s.TLS.ServerCA.Server(t))
	rs.StartTLS()
	t.Cleanup(rs.Close)

	aud := []string{backend.DefaultAudience}
	mk := func(method string, b store.Binding) *ststest.Client {
		return s.CreateClient(func(c *store.Client) {
			c.AuthMethod, c.Binding, c.ExchangeAny, c.Audiences = method, b, true, aud
		})
	}
	subject := s.ClientCredentials(s.CreateClient(func(c *store.Client) { c.Audiences = aud }), nil)
	req := stsclient.ExchangeRequest{SubjectToken: subject, SubjectTokenType: oauth.TokenTypeAccessToken, Audience: aud}
	call := func(hc *http.Client) (int, backend.Answer) {
		t.Helper()
		resp, err := hc.Get(rs.URL + "/api")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var a backend.Answer
		json.NewDecoder(resp.Body).Decode(&a)
		return resp.StatusCode, a
	}
	withToken := func(base *http.Client, tok *oauth2.Token, c *stsclient.Client) *http.Client {
		return &http.Client{Transport: c.Transport(oauth2.StaticTokenSource(tok), base.Transport)}
	}

	t.Run("certificate", func(t *testing.T) {
		leaf, other := ca.Client(t, "radio-7"), ca.Client(t, "radio-8")
		c := mk(oauth.AuthMethodTLSClientAuth, store.Binding{TLSSubjectDN: "CN=radio-7", TLSBoundTokens: true})
		cl := &stsclient.Client{TokenURL: s.URL + server.TokenPath, ClientID: c.ID, AuthMethod: oauth.AuthMethodTLSClientAuth, HTTPClient: s.Client(leaf)}
		resp, err := cl.Exchange(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		status, a := call(withToken(ststest.HTTPClient(s.TLS.ServerCA, leaf), resp.Token(), cl))
		if status != 200 || a.Confirmation == nil || a.Confirmation.X5tS256 != clientcert.Thumbprint(leaf.Cert) {
			t.Fatalf("with its certificate: %d %+v", status, a)
		}
		if status, _ := call(withToken(ststest.HTTPClient(s.TLS.ServerCA, other), resp.Token(), cl)); status != 401 {
			t.Fatalf("with another certificate: %d", status)
		}
	})

	key := ecKey(t)
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	t.Run("DPoP key", func(t *testing.T) {
		c := mk(oauth.AuthMethodPrivateKeyJWT, store.Binding{JWKS: jwks})
		dk := ecKey(t)
		cl := &stsclient.Client{TokenURL: s.URL + server.TokenPath, ClientID: c.ID, AssertionKey: key, AssertionKeyID: "k1", DPoPKey: dk, HTTPClient: s.Client(nil)}
		ts := cl.TokenSource(context.Background(), oauth2.StaticTokenSource(&oauth2.Token{AccessToken: subject}), stsclient.ExchangeRequest{Audience: aud})
		tok, err := ts.Token()
		if err != nil {
			t.Fatal(err)
		}
		jkt, _ := dpop.Thumbprint(&dk.PublicKey)
		if tok.Type() != "DPoP" {
			t.Fatalf("token type %q", tok.Type())
		}
		status, a := call(&http.Client{Transport: cl.Transport(ts, s.Client(nil).Transport)})
		if status != 200 || a.Confirmation == nil || a.Confirmation.JKT != jkt {
			t.Fatalf("with its DPoP key: %d %+v", status, a)
		}
		thief := &stsclient.Client{DPoPKey: ecKey(t)}
		if status, _ := call(withToken(s.Client(nil), tok, thief)); status != 401 {
			t.Fatalf("with another DPoP key: %d", status)
		}
		bearer := &oauth2.Token{AccessToken: tok.AccessToken, TokenType: "Bearer"}
		if status, _ := call(withToken(s.Client(nil), bearer, thief)); status != 401 {
			t.Fatalf("as a Bearer token: %d", status)
		}
	})

	t.Run("DPoP key, opaque token introspected", func(t *testing.T) {
		rsClient := s.CreateClient(func(c *store.Client) { c.IntrospectAny = true })
		api, err := backend.New(context.Background(), backend.Options{Issuer: s.URL, HTTPClient: s.Client(nil), ClientID: rsClient.ID, ClientSecret: rsClient.Secret})
		if err != nil {
			t.Fatal(err)
		}
		irs := httptest.NewUnstartedServer(api)
		irs.TLS = ststest.ServerTLSConfig(s.TLS.ServerCA.Server(t))
		irs.StartTLS()
		defer irs.Close()
		c := s.CreateClient(func(c *store.Client) {
			c.AuthMethod, c.Binding, c.ExchangeAny, c.Audiences = oauth.AuthMethodPrivateKeyJWT, store.Binding{JWKS: jwks}, true, aud
			c.TokenFormat = store.TokenFormatOpaque
		})
		dk := ecKey(t)
		cl := &stsclient.Client{TokenURL: s.URL + server.TokenPath, ClientID: c.ID, AssertionKey: key, AssertionKeyID: "k1", DPoPKey: dk, HTTPClient: s.Client(nil)}
		resp, err := cl.Exchange(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Count(resp.AccessToken, ".") == 2 || resp.TokenType != "DPoP" {
			t.Fatalf("want an opaque DPoP token, got type %q", resp.TokenType)
		}
		get := func(c *stsclient.Client, tok *oauth2.Token) (int, backend.Answer) {
			hc := &http.Client{Transport: c.Transport(oauth2.StaticTokenSource(tok), s.Client(nil).Transport)}
			r, err := hc.Get(irs.URL + "/api")
			if err != nil {
				t.Fatal(err)
			}
			defer r.Body.Close()
			var a backend.Answer
			json.NewDecoder(r.Body).Decode(&a)
			return r.StatusCode, a
		}
		jkt, _ := dpop.Thumbprint(&dk.PublicKey)
		if status, a := get(cl, resp.Token()); status != 200 || !a.Introspected || a.Confirmation == nil || a.Confirmation.JKT != jkt {
			t.Fatalf("introspected DPoP token with its key: %d %+v", status, a)
		}
		if status, _ := get(&stsclient.Client{DPoPKey: ecKey(t)}, resp.Token()); status != 401 {
			t.Fatalf("introspected DPoP token with another key: %d", status)
		}
	})

	t.Run("private_key_jwt", func(t *testing.T) {
		c := mk(oauth.AuthMethodPrivateKeyJWT, store.Binding{JWKS: jwks})
		cl := &stsclient.Client{TokenURL: s.URL + server.TokenPath, ClientID: c.ID, AssertionKey: key, AssertionKeyID: "k1", HTTPClient: s.Client(nil)}
		resp, err := cl.Exchange(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		status, a := call(withToken(s.Client(nil), resp.Token(), cl))
		if status != 200 || a.Confirmation != nil || a.ClientID != c.ID {
			t.Fatalf("bearer token of a private_key_jwt client: %d %+v", status, a)
		}
	})
}
