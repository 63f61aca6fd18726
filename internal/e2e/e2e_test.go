// Package e2e_test runs the seed's whole story over real HTTP on loopback:
// the STS (internal/ststest: the real server and a real SQLite database),
// the example resource server that plays https://backend.example.com/api,
// the example exchange service that plays rs08, and clients built with the
// public packages stsclient, resource and golang.org/x/oauth2.
package e2e_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/keybridge/sts/examples/exchange/gateway"
	"github.com/keybridge/sts/examples/resource-server/backend"
	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/oauth"
	"github.com/keybridge/sts/stsclient"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

const (
	backendAud = backend.DefaultAudience // https://backend.example.com/api
	rs08Aud    = gateway.DefaultAudience // https://rs08.example.com
	otherAud   = "https://other.example.com/api"
)

// counter is an http.RoundTripper that counts the JWK set fetches of the
// resource server (the requests still go to the real STS).
type counter struct{ jwks atomic.Int64 }

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/jwks.json") {
		c.jwks.Add(1)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// world is an STS with the seed's clients and the example backend.
type world struct {
	s        *ststest.STS
	md       *oauth.Metadata
	frontend *ststest.Client // the caller: tokens for rs08
	rs08     *ststest.Client // exchanges callers' tokens for the backend
	backend  string          // the example resource server's URL
	fetches  *counter
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	s := ststest.Start(t, ststest.Options{})
	w := &world{s: s, fetches: &counter{}}
	w.frontend = s.CreateClient(func(c *store.Client) {
		c.Name, c.Audiences, c.Scopes = "frontend", []string{rs08Aud}, []string{"api"}
	})
	// rs08's id and secret hold the characters RFC 6749 §2.3.1 makes
	// clients encode.
	w.rs08 = s.CreateClientSecret("s%cr+t:with space", func(c *store.Client) {
		c.ID, c.Name = "rs08:"+c.ID+"+%", "rs08"
		c.Audiences, c.Scopes = []string{backendAud, otherAud}, []string{"api"}
		// rs08 serves rs08Aud: it may exchange the tokens callers
		// obtain for it.
		c.Resources = []string{rs08Aud}
	})
	// The backend's own client, used only to introspect opaque tokens: it
	// serves backendAud, so it may introspect the tokens for it.
	intro := s.CreateClientSecret("intro%+:secret", func(c *store.Client) {
		c.ID, c.Name, c.GrantTypes = "backend+"+c.ID, "backend", nil
		c.Resources = []string{backendAud}
	})
	var err error
	if w.md, err = stsclient.Discover(ctx, nil, s.URL); err != nil {
		t.Fatal(err)
	}
	h, err := backend.New(ctx, backend.Options{
		Issuer: s.URL, Scope: "api",
		ClientID: intro.ID, ClientSecret: intro.Secret, IntrospectionCacheTTL: 30 * time.Second,
		MinRefreshInterval: time.Minute,
		HTTPClient:         &http.Client{Transport: w.fetches, Timeout: 10 * time.Second},
		Now:                s.Clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	w.backend = srv.URL + "/api"
	return w
}

// stsClient is rs08 as a stsclient.Client.
func (w *world) stsClient() *stsclient.Client {
	return &stsclient.Client{TokenURL: w.md.TokenEndpoint, ClientID: w.rs08.ID, ClientSecret: w.rs08.Secret, Now: w.s.Clock.Now}
}

// callerTokens is the frontend's token source: client_credentials with
// golang.org/x/oauth2, whose Basic encoding is also RFC 6749 §2.3.1's.
func (w *world) callerTokens(ctx context.Context, c *ststest.Client) oauth2.TokenSource {
	cfg := clientcredentials.Config{ClientID: c.ID, ClientSecret: c.Secret, TokenURL: w.md.TokenEndpoint, AuthStyle: oauth2.AuthStyleInHeader}
	return cfg.TokenSource(ctx)
}

// exchange trades subject for a token for resource, as rs08.
func (w *world) exchange(t *testing.T, subject, resource string) string {
	t.Helper()
	r, err := w.stsClient().Exchange(context.Background(), stsclient.ExchangeRequest{
		SubjectToken: subject, SubjectTokenType: oauth.TokenTypeAccessToken, Resource: []string{resource},
	})
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	return r.AccessToken
}

type answer struct {
	status    int
	challenge string
	body      []byte
}

func call(t *testing.T, u, token string) answer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header.Get("WWW-Authenticate"), b}
}

// refused checks an RFC 6750 §3 refusal.
func refused(t *testing.T, a answer, status int, code, desc string) {
	t.Helper()
	want := `Bearer realm="` + backendAud + `", error="` + code + `"`
	if desc != "" {
		want += `, error_description="` + desc + `"`
	}
	if a.status != status || !strings.HasPrefix(a.challenge, want) {
		t.Fatalf("got %d %q (%s)\nwant %d %s", a.status, a.challenge, a.body, status, want)
	}
	var e oauth.Error
	if err := json.Unmarshal(a.body, &e); err != nil || string(e.Code) != code {
		t.Errorf("body %s, want error %q", a.body, code)
	}
}

func decode(t *testing.T, a answer) backend.Answer {
	t.Helper()
	if a.status != http.StatusOK {
		t.Fatalf("backend answered %d %s %s", a.status, a.challenge, a.body)
	}
	var ans backend.Answer
	if err := json.Unmarshal(a.body, &ans); err != nil {
		t.Fatal(err)
	}
	return ans
}

func kidOf(t *testing.T, tok string) string {
	t.Helper()
	obj, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	return obj.Signatures[0].Protected.KeyID
}

// TestSeedEndToEnd is the seed's story: the caller obtains a token
// (client_credentials), rs08 exchanges it for the backend's audience
// through an oauth2.TokenSource, and the backend verifies it and sees who
// acts for whom.
func TestSeedEndToEnd(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	ts := w.stsClient().TokenSource(ctx, w.callerTokens(ctx, w.frontend), stsclient.ExchangeRequest{
		Resource: []string{backendAud},
	})
	hc := oauth2.NewClient(ctx, ts)
	resp, err := hc.Get(w.backend)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	ans := decode(t, answer{status: resp.StatusCode, body: b})
	if ans.Subject != w.frontend.ID || ans.ClientID != w.rs08.ID || ans.Scope != "api" || ans.Introspected {
		t.Errorf("backend saw %+v", ans)
	}
	if len(ans.Actors) != 1 || ans.Actors[0].Subject != w.rs08.ID {
		t.Errorf("act chain %+v, want rs08 acting for the caller", ans.Actors)
	}
	// The token source reuses its token: a second call, same token.
	t1, _ := ts.Token()
	if resp, err := hc.Get(w.backend); err != nil || resp.StatusCode != 200 {
		t.Fatalf("second call: %v", err)
	}
	if t2, _ := ts.Token(); t1.AccessToken != t2.AccessToken {
		t.Error("token source exchanged again within the token's lifetime")
	}
	if t1.Extra("issued_token_type") != oauth.TokenTypeJWT {
		t.Errorf("issued_token_type %v", t1.Extra("issued_token_type"))
	}

	// A second hop: another service exchanges the backend token; the
	// backend sees both actors, the most recent first (RFC 8693 §4.1).
	edge := w.s.CreateClient(func(c *store.Client) {
		c.Audiences, c.Scopes, c.Resources = []string{backendAud}, []string{"api"}, []string{backendAud}
	})
	edgeClient := &stsclient.Client{TokenURL: w.md.TokenEndpoint, ClientID: edge.ID, ClientSecret: edge.Secret, AuthMethod: oauth.AuthMethodClientSecretPost}
	r2, err := edgeClient.Exchange(ctx, stsclient.ExchangeRequest{
		SubjectToken: t1.AccessToken, SubjectTokenType: oauth.TokenTypeAccessToken, Audience: []string{backendAud},
	})
	if err != nil {
		t.Fatal(err)
	}
	ans = decode(t, call(t, w.backend, r2.AccessToken))
	if ans.Subject != w.frontend.ID || len(ans.Actors) != 2 || ans.Actors[0].Subject != edge.ID || ans.Actors[1].Subject != w.rs08.ID {
		t.Errorf("two hops: %+v", ans)
	}
}

// TestRFC6750_Refusals: tokens the backend must refuse, each with the
// right RFC 6750 §3 answer.
func TestRFC6750_Refusals(t *testing.T) {
	w := newWorld(t)
	s := w.s
	caller := s.ClientCredentials(w.frontend, nil)
	good := w.exchange(t, caller, backendAud)
	decode(t, call(t, w.backend, good)) // the keys are fetched

	t.Run("no token", func(t *testing.T) {
		a := call(t, w.backend, "")
		if a.status != 401 || a.challenge != `Bearer realm="`+backendAud+`"` {
			t.Fatalf("%d %q", a.status, a.challenge)
		}
	})
	t.Run("token for another audience", func(t *testing.T) {
		refused(t, call(t, w.backend, w.exchange(t, caller, otherAud)), 401, "invalid_token", "token for another audience")
		// The caller's own token is for rs08, not the backend.
		refused(t, call(t, w.backend, caller), 401, "invalid_token", "token for another audience")
	})
	t.Run("insufficient scope", func(t *testing.T) {
		reader := s.CreateClient(func(c *store.Client) { c.Audiences, c.Scopes = []string{backendAud}, []string{"read"} })
		refused(t, call(t, w.backend, s.ClientCredentials(reader, nil)), 403, "insufficient_scope", "the token lacks a required scope")
	})
	t.Run("expired token", func(t *testing.T) {
		tok := w.exchange(t, caller, backendAud)
		s.Clock.Advance(2 * time.Hour) // beyond its 1 h lifetime and the leeway
		defer s.Clock.Advance(-2 * time.Hour)
		refused(t, call(t, w.backend, tok), 401, "invalid_token", "token expired")
	})
	t.Run("token signed by an unknown key", func(t *testing.T) {
		before := w.fetches.jwks.Load()
		forged := forge(t, s.URL, "forged-kid")
		for range 3 {
			refused(t, call(t, w.backend, forged), 401, "invalid_token", "token signed by an unknown key")
		}
		if n := w.fetches.jwks.Load() - before; n > 1 {
			t.Errorf("%d JWK set fetches for 3 forged tokens, want at most 1", n)
		}
		// The same token under a kid the STS publishes fails the signature.
		refused(t, call(t, w.backend, forge(t, s.URL, kidOf(t, good))), 401, "invalid_token", "invalid signature")
	})
	t.Run("revoked opaque token", func(t *testing.T) {
		opaque := s.CreateClient(func(c *store.Client) {
			c.Audiences, c.Scopes, c.TokenFormat = []string{backendAud}, []string{"api"}, store.TokenFormatOpaque
		})
		// Revoked before its first use: refused at once.
		tok := s.ClientCredentials(opaque, nil)
		if strings.Count(tok, ".") == 2 || !strings.HasPrefix(tok, "sts_at_") {
			t.Fatalf("not an opaque token: %q", tok)
		}
		revoke(t, s, opaque, tok)
		refused(t, call(t, w.backend, tok), 401, "invalid_token", "token is not active")

		// Used, then revoked: accepted from the introspection cache until
		// its 30 s TTL ends, refused after.
		tok = s.ClientCredentials(opaque, nil)
		if ans := decode(t, call(t, w.backend, tok)); !ans.Introspected || ans.Subject != opaque.ID {
			t.Fatalf("opaque token: %+v", ans)
		}
		revoke(t, s, opaque, tok)
		decode(t, call(t, w.backend, tok))
		s.Clock.Advance(31 * time.Second)
		refused(t, call(t, w.backend, tok), 401, "invalid_token", "token is not active")
	})
}

// forge signs valid-looking claims with a key the STS never had.
func forge(t *testing.T, issuer, kid string) string {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: k, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	b, _ := json.Marshal(map[string]any{
		"iss": issuer, "sub": "mallory", "aud": backendAud, "exp": now.Add(time.Hour).Unix(),
		"iat": now.Unix(), "nbf": now.Unix(), "jti": "forged", "client_id": "mallory", "scope": "api",
	})
	obj, err := signer.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := obj.CompactSerialize()
	return tok
}

func revoke(t *testing.T, s *ststest.STS, c *ststest.Client, tok string) {
	t.Helper()
	if r := s.PostForm(server.RevokePath, c, url.Values{"token": {tok}}); r.Status != 200 {
		t.Fatalf("revoke: %d %s", r.Status, r.Body)
	}
}

// TestKeyRotationWhileVerifierRuns rotates the STS's keys under a running
// backend. The first rotation promotes the published next key, which the
// backend already holds: no fetch. The second promotes a key created after
// the backend's fetch: the unknown kid makes it fetch again, once its
// rate limit allows.
func TestKeyRotationWhileVerifierRuns(t *testing.T) {
	w := newWorld(t)
	s := w.s
	ctx := context.Background()
	caller := s.ClientCredentials(w.frontend, nil)
	first := w.exchange(t, caller, backendAud)
	decode(t, call(t, w.backend, first))
	if n := w.fetches.jwks.Load(); n != 1 {
		t.Fatalf("%d JWK set fetches, want 1", n)
	}

	if err := s.Keys.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	second := w.exchange(t, caller, backendAud)
	if kidOf(t, second) == kidOf(t, first) {
		t.Fatal("rotation did not change the signing key")
	}
	decode(t, call(t, w.backend, second))
	if n := w.fetches.jwks.Load(); n != 1 {
		t.Fatalf("token of the pre-published next key caused a fetch (%d)", n)
	}

	if err := s.Keys.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	third := w.exchange(t, caller, backendAud)
	// Within the backend's one-minute refresh interval the new kid is
	// unknown; after it, one fetch finds the key. No restart in between.
	refused(t, call(t, w.backend, third), 401, "invalid_token", "token signed by an unknown key")
	s.Clock.Advance(61 * time.Second)
	decode(t, call(t, w.backend, third))
	if n := w.fetches.jwks.Load(); n != 2 {
		t.Fatalf("%d JWK set fetches, want 2", n)
	}
	// Tokens of the retired keys stay valid: the STS still publishes them.
	decode(t, call(t, w.backend, first))
	decode(t, call(t, w.backend, second))
}

// TestExchangeService runs the example exchange service (rs08) in front of
// the example backend: the caller presents its own token to rs08, which
// exchanges it and forwards the call.
func TestExchangeService(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	h, err := gateway.New(ctx, gateway.Options{
		Issuer: w.s.URL, ClientID: w.rs08.ID, ClientSecret: w.rs08.Secret, BackendURL: w.backend, Now: w.s.Clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	gw := httptest.NewServer(h)
	defer gw.Close()

	caller, err := w.callerTokens(ctx, w.frontend).Token()
	if err != nil {
		t.Fatal(err)
	}
	ans := decode(t, call(t, gw.URL+"/", caller.AccessToken))
	if ans.Subject != w.frontend.ID || ans.ClientID != w.rs08.ID || len(ans.Actors) != 1 || ans.Actors[0].Subject != w.rs08.ID {
		t.Errorf("through rs08: %+v", ans)
	}
	// rs08 refuses a token that is not for it (here: one for the backend).
	a := call(t, gw.URL+"/", w.exchange(t, caller.AccessToken, backendAud))
	if a.status != 401 || !strings.Contains(a.challenge, `error="invalid_token"`) {
		t.Errorf("rs08 accepted a token for another audience: %d %q", a.status, a.challenge)
	}
}
