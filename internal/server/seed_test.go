package server_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/keybridge/sts/internal/endpoint/discovery"
	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/oauth"
)

const backend = "https://backend.example.com/api"

// rsResource is the resource the exchanging resource server of these tests
// serves: callers obtain their tokens for it, and the resource server
// registers it (store.Client.Resources), so that it may exchange them.
const rsResource = "https://rs.example.com"

// verifyWithJWKS checks a JWT against the server's published JWK set, as a
// resource server would, and returns its header and claims.
func verifyWithJWKS(t *testing.T, s *ststest.STS, tok string) (jose.Header, map[string]any) {
	t.Helper()
	r := s.Do(mustGet(t, s.URL+discovery.JWKSPath))
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(r.Body, &set); err != nil {
		t.Fatalf("jwks: %v: %s", err, r.Body)
	}
	obj, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	h := obj.Signatures[0].Header
	keys := set.Key(h.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q not in JWKS", h.KeyID)
	}
	payload, err := obj.Verify(keys[0])
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return h, claims
}

func mustGet(t *testing.T, u string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// TestSeed reproduces the seed's request and response: a resource server
// (client rs08) exchanges an access token it holds for a JWT aimed at
// https://backend.example.com/api, authenticating with HTTP Basic.
func TestSeed(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	// The caller's token is for rs08, which serves https://rs08.example.com.
	user := s.CreateClient(func(c *store.Client) {
		c.Scopes = []string{"api", "admin"}
		c.Audiences = []string{"https://rs08.example.com"}
	})
	s.CreateClientSecret("long-secure-random-secret", func(c *store.Client) {
		c.ID = "rs08"
		c.Audiences = []string{backend}
		c.Resources = []string{"https://rs08.example.com"}
		c.Scopes = []string{"api"}
	})
	subject := s.ClientCredentials(user, nil)

	// The seed's body, byte for byte in shape.
	body := "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange" +
		"&resource=https%3A%2F%2Fbackend.example.com%2Fapi" +
		"&subject_token=" + url.QueryEscape(subject) +
		"&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token"
	req, _ := http.NewRequest(http.MethodPost, s.URL+server.TokenPath, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	// The seed's header: base64("rs08:long-secure-random-secret").
	req.Header.Set("Authorization", "Basic cnMwODpsb25nLXNlY3VyZS1yYW5kb20tc2VjcmV0")
	r := s.Do(req)
	if r.Status != http.StatusOK {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if cc := r.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Errorf("Cache-Control %q", cc)
	}
	if p := r.Header.Get("Pragma"); p != "no-cache" {
		t.Errorf("Pragma %q", p)
	}
	tr := r.Token()
	if tr.IssuedTokenType != oauth.TokenTypeJWT || tr.TokenType != "Bearer" || tr.ExpiresIn <= 0 || tr.AccessToken == "" {
		t.Fatalf("response %s", r.Body)
	}
	h, claims := verifyWithJWKS(t, s, tr.AccessToken)
	if h.Algorithm != "ES256" || h.KeyID == "" || h.ExtraHeaders["typ"] != "at+jwt" {
		t.Errorf("header %+v", h)
	}
	if claims["aud"] != backend || claims["iss"] != s.URL || claims["sub"] != user.ID || claims["client_id"] != "rs08" || claims["scope"] != "api" {
		t.Errorf("claims %v", claims)
	}
	act, _ := claims["act"].(map[string]any)
	if act["sub"] != "rs08" {
		t.Errorf("act %v: the resource server acts for the subject", claims["act"])
	}
	for _, k := range []string{"exp", "iat", "nbf", "jti"} {
		if claims[k] == nil {
			t.Errorf("claim %s missing", k)
		}
	}
	exp := int64(claims["exp"].(float64))
	if d := exp - time.Now().Unix() - tr.ExpiresIn; d < -2 || d > 2 {
		t.Errorf("exp %d vs expires_in %d", exp, tr.ExpiresIn)
	}
	// The exchange is audited.
	var found bool
	for _, a := range s.Audit() {
		found = found || (a.Action == "token.exchange" && a.Decision == store.DecisionGranted && a.ClientID == "rs08" && a.JTI == claims["jti"])
	}
	if !found {
		t.Error("no audit record for the exchange")
	}
}
