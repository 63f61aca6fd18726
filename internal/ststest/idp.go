package ststest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
)

// IdP is an upstream issuer for federation tests: it serves OpenID
// Connect discovery and a JWKS over real HTTP on loopback and signs tokens
// shaped as the test needs (Kubernetes service account tokens, GitHub
// Actions tokens, id_tokens). Its issuer is its URL.
type IdP struct {
	T    testing.TB
	URL  string
	HTTP *httptest.Server
	// Fetches counts the requests for discovery and keys.
	Fetches atomic.Int64
	// Handler, when set, answers instead of the IdP (to play an upstream
	// that is slow, broken or hostile).
	Handler atomic.Pointer[http.HandlerFunc]

	mu   sync.Mutex
	keys []jose.JSONWebKey // private keys; the last one signs
}

// StartIdP starts an upstream issuer with one ES256 key.
func StartIdP(t testing.TB) *IdP {
	t.Helper()
	p := &IdP{T: t}
	p.Rotate()
	// URL is set before the server starts: its handler reads it, and a
	// request from another process gives the race detector no
	// happens-before edge with a write made after Start.
	p.HTTP = httptest.NewUnstartedServer(http.HandlerFunc(p.serve))
	p.URL = "http://" + p.HTTP.Listener.Addr().String()
	p.HTTP.Start()
	t.Cleanup(p.HTTP.Close)
	return p
}

func (p *IdP) serve(w http.ResponseWriter, r *http.Request) {
	if h := p.Handler.Load(); h != nil {
		(*h)(w, r)
		return
	}
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		p.Fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"issuer": p.URL, "jwks_uri": p.URL + "/keys",
			"id_token_signing_alg_values_supported": []string{"ES256"},
		})
	case "/keys":
		p.Fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=300")
		json.NewEncoder(w).Encode(p.JWKS())
	default:
		http.NotFound(w, r)
	}
}

// Serve makes the IdP answer every request with h (nil: normally again).
func (p *IdP) Serve(h http.HandlerFunc) {
	if h == nil {
		p.Handler.Store(nil)
		return
	}
	p.Handler.Store(&h)
}

// Rotate adds a new signing key; the old ones stay published.
func (p *IdP) Rotate() string {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		p.T.Fatal(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	kid := "k" + randomID()
	p.keys = append(p.keys, jose.JSONWebKey{Key: k, KeyID: kid, Algorithm: "ES256", Use: "sig"})
	return kid
}

// Retire stops publishing every key but the newest.
func (p *IdP) Retire() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys = p.keys[len(p.keys)-1:]
}

// JWKS is the public key set the IdP publishes.
func (p *IdP) JWKS() jose.JSONWebKeySet {
	p.mu.Lock()
	defer p.mu.Unlock()
	var set jose.JSONWebKeySet
	for _, k := range p.keys {
		set.Keys = append(set.Keys, k.Public())
	}
	return set
}

// Key returns the current private signing key.
func (p *IdP) Key() jose.JSONWebKey {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.keys[len(p.keys)-1]
}

// Sign signs claims with the current key (ES256, typ JWT).
func (p *IdP) Sign(claims map[string]any) string {
	return p.SignWith(p.Key(), "JWT", claims)
}

// SignWith signs claims with key, writing typ and the key's kid.
func (p *IdP) SignWith(key jose.JSONWebKey, typ string, claims map[string]any) string {
	p.T.Helper()
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ))
	if key.KeyID != "" {
		opts = opts.WithHeader(jose.HeaderKey("kid"), key.KeyID)
	}
	alg := jose.SignatureAlgorithm(key.Algorithm)
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key.Key}, opts)
	if err != nil {
		p.T.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		p.T.Fatal(err)
	}
	obj, err := s.Sign(payload)
	if err != nil {
		p.T.Fatal(err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		p.T.Fatal(err)
	}
	return out
}

// Claims returns the registered claims of a token of this IdP for sub and
// aud, valid for an hour from now.
func (p *IdP) Claims(sub, aud string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": p.URL, "sub": sub, "aud": aud,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"jti": randomID(),
	}
}

// Kubernetes returns the claims of a projected service account token of
// service account sa in namespace ns, for audience aud, as the Kubernetes
// API server writes them (kubernetes.io/docs, "Service account tokens":
// sub system:serviceaccount:NS:SA and the kubernetes.io claim).
func (p *IdP) Kubernetes(ns, sa, aud string) map[string]any {
	c := p.Claims("system:serviceaccount:"+ns+":"+sa, aud)
	c["aud"] = []string{aud}
	c["kubernetes.io"] = map[string]any{
		"namespace":      ns,
		"serviceaccount": map[string]any{"name": sa, "uid": "6f7c5e1a-0c2e-4b1e-9a53-" + randomID()[:12]},
		"pod":            map[string]any{"name": sa + "-7d9f8c6b5-x2x9q", "uid": "a1b2c3d4-" + randomID()[:8]},
		"node":           map[string]any{"name": "node-1", "uid": "n-" + randomID()[:8]},
	}
	return c
}

// GitHubActions returns the claims of a GitHub Actions OIDC token for a
// workflow run of repository (owner/name) on ref, for audience aud, as
// GitHub documents them ("About security hardening with OpenID Connect").
func (p *IdP) GitHubActions(repository, ref, aud string) map[string]any {
	owner := repository
	for i := range repository {
		if repository[i] == '/' {
			owner = repository[:i]
			break
		}
	}
	c := p.Claims("repo:"+repository+":ref:"+ref, aud)
	for k, v := range map[string]any{
		"ref": ref, "ref_type": "branch", "sha": "e4b1c2d3a4f5e6d7c8b9a0f1e2d3c4b5a6f7e8d9",
		"repository": repository, "repository_owner": owner, "repository_id": "123456789", "repository_owner_id": "987654",
		"repository_visibility": "private", "run_id": "1234567890", "run_number": "42", "run_attempt": "1",
		"actor": "octocat", "actor_id": "583231", "workflow": "deploy", "event_name": "push",
		"job_workflow_ref":   repository + "/.github/workflows/deploy.yml@" + ref,
		"runner_environment": "github-hosted", "environment": "production",
	} {
		c[k] = v
	}
	return c
}

// Trust registers the IdP as a trusted issuer of s named name, accepting
// id_token, jwt and access_token JWTs for audience aud from the given
// clients ("*" for every client); edit may change anything before it is
// stored. The server's registry is reloaded at once.
func (s *STS) Trust(p *IdP, name, aud string, clients []string, edit func(*store.TrustedIssuer)) *store.TrustedIssuer {
	s.T.Helper()
	now := time.Now()
	ti := &store.TrustedIssuer{
		Name: name, Issuer: p.URL, Enabled: true, Source: store.IssuerSourceStore,
		TokenTypes: []string{oauth.TokenTypeIDToken, oauth.TokenTypeJWT, oauth.TokenTypeAccessToken},
		Algorithms: []string{"ES256", "RS256", "EdDSA"},
		Audiences:  []string{aud}, Leeway: 30 * time.Second, Clients: clients,
		SubjectPrefix: name + ":", CreatedAt: now, UpdatedAt: now,
	}
	if edit != nil {
		edit(ti)
	}
	if err := s.Store.CreateIssuer(context.Background(), ti); err != nil {
		s.T.Fatal(err)
	}
	s.ReloadTrust()
	return ti
}

// UpdateTrust changes a trusted issuer and reloads the registry.
func (s *STS) UpdateTrust(name string, edit func(*store.TrustedIssuer)) {
	s.T.Helper()
	if _, err := s.Store.UpdateIssuer(context.Background(), name, func(ti *store.TrustedIssuer) error {
		edit(ti)
		ti.UpdatedAt = time.Now()
		return nil
	}); err != nil {
		s.T.Fatal(err)
	}
	s.ReloadTrust()
}

// ReloadTrust reloads the server's view of trusted issuers.
func (s *STS) ReloadTrust() {
	s.T.Helper()
	if err := s.Server.Trust.Load(context.Background()); err != nil {
		s.T.Fatal(err)
	}
}
