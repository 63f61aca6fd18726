package server_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/internal/token"
	"github.com/keybridge/sts/oauth"
)

// forge signs claims as a valid server token would be, but with a key of
// its own that claims the given kid.
func forge(t *testing.T, kid string, c *token.Claims) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: k, KeyID: kid}},
		(&jose.SignerOptions{}).WithType(oauth.JWTTypeAccessToken))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := sig.Sign(mustJSON(t, c))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// validClaims are the claims of a token the server would accept.
func validClaims(s *ststest.STS) *token.Claims {
	now := time.Now()
	return &token.Claims{
		Issuer: s.URL, Subject: "alice", Audience: oauth.Audience{s.URL},
		Expiry: now.Add(time.Hour).Unix(), IssuedAt: now.Unix(), NotBefore: now.Unix(),
		ID: token.NewID(), Scope: "api",
	}
}

// RFC 7662 §2.1: the protected resource authenticates to the introspection
// endpoint.
func TestRFC7662_2_1_ClientAuthenticationRequired(t *testing.T) {
	w := newExchangeWorld(t, nil)
	form := url.Values{"token": {w.subject}}
	for name, c := range map[string]*ststest.Client{
		"none":         nil,
		"wrong secret": {Client: w.rs.Client, Secret: "wrong"},
		"unknown":      {Client: &store.Client{ID: "nobody"}, Secret: w.rs.Secret},
	} {
		t.Run(name, func(t *testing.T) {
			r := w.s.PostForm(server.IntrospectPath, c, form)
			wantError(t, r, http.StatusUnauthorized, oauth.ErrInvalidClient)
			if _, ok := r.JSON()["active"]; ok {
				t.Errorf("token state revealed without authentication: %s", r.Body)
			}
		})
	}
	// client_secret_post works as well as Basic.
	r := w.s.PostForm(server.IntrospectPath, nil, url.Values{"token": {w.subject}, "client_id": {w.rs.ID}, "client_secret": {w.rs.Secret}})
	if r.Status != http.StatusOK || r.JSON()["active"] != true {
		t.Errorf("client_secret_post: %d %s", r.Status, r.Body)
	}
}

// RFC 7662 §2.1: the token parameter is REQUIRED.
func TestRFC7662_2_1_TokenRequired(t *testing.T) {
	w := newExchangeWorld(t, nil)
	for name, form := range map[string]url.Values{
		"absent":   {"token_type_hint": {"access_token"}},
		"empty":    {"token": {""}},
		"repeated": {"token": {w.subject, w.subject}},
	} {
		t.Run(name, func(t *testing.T) {
			r := w.s.PostForm(server.IntrospectPath, w.rs, form)
			wantError(t, r, http.StatusBadRequest, oauth.ErrInvalidRequest)
		})
	}
}

// RFC 7662 §2.2: an active token is reported with active true and the
// claims a resource server needs, act included for a delegated token
// (SPEC §7, Keycloak #53029).
func TestRFC7662_2_2_ActiveToken(t *testing.T) {
	w := newExchangeWorld(t, nil)
	opaque := w.s.CreateClient(func(c *store.Client) {
		c.Audiences, c.Resources = []string{backend}, []string{rsResource}
		c.Scopes = []string{"api"}
		c.TokenFormat = store.TokenFormatOpaque
	})
	// The backend's own client: the tokens are addressed to it.
	backendRS := w.s.CreateClient(func(c *store.Client) { c.Resources = []string{backend} })
	jwtTok := wantOK(t, w.exchange(nil)).AccessToken
	_, claims := verifyWithJWKS(t, w.s, jwtTok)
	opaqueTok := wantOK(t, w.s.Exchange(opaque, w.subject, oauth.TokenTypeAccessToken, nil)).AccessToken
	tests := []struct {
		name     string
		tok      string
		clientID string
	}{
		{"jwt", jwtTok, w.rs.ID},
		{"opaque", opaqueTok, opaque.ID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := introspect(t, w.s, backendRS, tt.tok)
			if in["active"] != true {
				t.Fatalf("inactive: %v", in)
			}
			want := map[string]any{"scope": "api", "client_id": tt.clientID, "sub": w.user.ID, "aud": backend, "iss": w.s.URL}
			for k, v := range want {
				if in[k] != v {
					t.Errorf("%s = %v, want %v", k, in[k], v)
				}
			}
			for _, k := range []string{"exp", "iat", "jti"} {
				if in[k] == nil || in[k] == "" || in[k] == float64(0) {
					t.Errorf("%s missing: %v", k, in)
				}
			}
			exp, _ := in["exp"].(float64)
			if d := int64(exp) - time.Now().Unix(); d < 3500 || d > 3600 {
				t.Errorf("exp %v is %d s away", in["exp"], d)
			}
			// The client that exchanged acts for the user.
			if a := actOf(t, in["act"]); a == nil || !slices.Equal(chainSubjects(a), []string{tt.clientID}) {
				t.Errorf("act %v, want %s", in["act"], tt.clientID)
			}
			if tt.name == "jwt" {
				// The same values as in the token itself.
				for _, k := range []string{"jti", "exp", "iat", "sub", "scope", "client_id"} {
					if in[k] != claims[k] {
						t.Errorf("%s: introspection %v, token %v", k, in[k], claims[k])
					}
				}
			}
		})
	}
	// A nested chain is reported whole.
	second := w.s.CreateClient(func(c *store.Client) {
		c.Audiences, c.Resources = []string{"https://db.example.com"}, []string{backend}
	})
	chained := wantOK(t, w.s.Exchange(second, jwtTok, oauth.TokenTypeAccessToken, nil)).AccessToken
	in := introspect(t, w.s, second, chained)
	if a := actOf(t, in["act"]); a == nil || !slices.Equal(chainSubjects(a), []string{second.ID, w.rs.ID}) {
		t.Errorf("act %v", in["act"])
	}
}

// RFC 7662 §2.2: a revoked, expired, forged or unknown token is reported
// as {"active": false} and nothing else, for JWTs and opaque tokens alike.
func TestRFC7662_2_2_InactiveTokens(t *testing.T) {
	w := newExchangeWorld(t, nil)
	opaque := w.s.CreateClient(func(c *store.Client) {
		c.Audiences = []string{backend}
		c.TokenFormat = store.TokenFormatOpaque
		c.AccessTokenTTL = time.Minute
	})
	kid := w.s.Keys.Snapshot().Current.ID

	revokedJWT := w.s.ClientCredentials(w.user, nil)
	revokedOpaque := w.s.ClientCredentials(opaque, nil)
	for _, tok := range []struct {
		c   *ststest.Client
		tok string
	}{{w.user, revokedJWT}, {opaque, revokedOpaque}} {
		if r := w.s.PostForm(server.RevokePath, tok.c, url.Values{"token": {tok.tok}}); r.Status != http.StatusOK {
			t.Fatalf("revoke: %d %s", r.Status, r.Body)
		}
	}
	expiringOpaque := w.s.ClientCredentials(opaque, nil)
	tokens := map[string]string{
		"revoked jwt":    revokedJWT,
		"revoked opaque": revokedOpaque,
		"expired jwt": mint(t, w.s, func(c *token.Claims) {
			c.IssuedAt, c.NotBefore, c.Expiry = time.Now().Add(-2*time.Hour).Unix(), time.Now().Add(-2*time.Hour).Unix(), time.Now().Add(-time.Hour).Unix()
		}),
		"forged jwt, server kid":  forge(t, kid, validClaims(w.s)),
		"forged jwt, unknown kid": forge(t, "no-such-kid", validClaims(w.s)),
		"tampered jwt":            w.subject[:len(w.subject)-4] + "AAAA",
		"wrong issuer":            mint(t, w.s, func(c *token.Claims) { c.Issuer = "https://evil.example.com" }),
		"unknown opaque":          token.PrefixAccess + token.NewID(),
		"unknown refresh":         token.PrefixRefresh + token.NewID(),
		"garbage":                 "not a token",
		// A refresh token is the business of its own client only.
		"refresh token of another client": func() string {
			rc := w.s.CreateClient(func(c *store.Client) {
				c.Audiences, c.Resources = []string{backend}, []string{rsResource}
				c.GrantTypes = append(c.GrantTypes, oauth.GrantTypeRefreshToken)
			})
			return wantOK(t, w.s.Exchange(rc, w.subject, oauth.TokenTypeAccessToken, nil)).RefreshToken
		}(),
	}
	check := func(t *testing.T, c *ststest.Client, tok string) {
		t.Helper()
		r := w.s.PostForm(server.IntrospectPath, c, url.Values{"token": {tok}})
		if r.Status != http.StatusOK || string(r.Body) != "{\"active\":false}\n" {
			t.Errorf("%d %s, want exactly {\"active\":false}", r.Status, r.Body)
		}
	}
	for name, tok := range tokens {
		t.Run(name, func(t *testing.T) { check(t, w.rs, tok) })
	}
	// Still active before the clock moves, inactive after.
	if in := introspect(t, w.s, opaque, expiringOpaque); in["active"] != true {
		t.Fatalf("fresh opaque token inactive: %v", in)
	}
	w.s.Clock.Advance(2 * time.Minute)
	t.Run("expired opaque", func(t *testing.T) { check(t, opaque, expiringOpaque) })
}

// RFC 7662 §2.1 and §4: only a client entitled to a token learns about it —
// its own client, its audiences (by client id, or by a resource the client
// serves) and resource servers an operator trusts with every token
// (IntrospectAny). Any other client is told {"active": false} (§2.2), as
// for an invalid token, and the refusal is audited (issue 8, finding 7).
func TestRFC7662_2_1_OnlyEntitledClients(t *testing.T) {
	w := newExchangeWorld(t, func(c *store.Client) { c.GrantTypes = append(c.GrantTypes, oauth.GrantTypeRefreshToken) })
	opaqueUser := w.s.CreateClient(func(c *store.Client) {
		c.TokenFormat = store.TokenFormatOpaque
		c.Audiences = []string{rsResource}
	})
	byID := w.s.CreateClient(nil)
	byIDUser := w.s.CreateClient(func(c *store.Client) { c.Audiences = []string{byID.ID} })
	resource := w.s.CreateClient(func(c *store.Client) { c.Resources = []string{rsResource} })
	anyRS := w.s.CreateClient(func(c *store.Client) { c.IntrospectAny = true })
	exchangeAny := w.s.CreateClient(func(c *store.Client) { c.ExchangeAny = true })
	stranger := w.s.CreateClient(func(c *store.Client) { c.Audiences = []string{rsResource} })
	refresh := wantOK(t, w.exchange(nil)).RefreshToken
	if refresh == "" {
		t.Fatal("no refresh token")
	}
	tokens := map[string]string{
		"jwt":     w.subject,
		"opaque":  w.s.ClientCredentials(opaqueUser, nil),
		"for id":  w.s.ClientCredentials(byIDUser, nil),
		"refresh": refresh,
	}
	tests := []struct {
		name   string
		client *ststest.Client
		tok    string
		active bool
	}{
		{"own client, jwt", w.user, "jwt", true},
		{"own client, opaque", opaqueUser, "opaque", true},
		{"audience by client id", byID, "for id", true},
		{"audience by resource, jwt", resource, "jwt", true},
		{"audience by resource, opaque", resource, "opaque", true},
		{"introspect-any, jwt", anyRS, "jwt", true},
		{"introspect-any, opaque", anyRS, "opaque", true},
		{"stranger, jwt", stranger, "jwt", false},
		{"stranger, opaque", stranger, "opaque", false},
		{"exchange-any is not introspect-any", exchangeAny, "jwt", false},
		{"own refresh token", w.rs, "refresh", true},
		{"refresh token, introspect-any", anyRS, "refresh", false},
		{"refresh token, audience", w.s.CreateClient(func(c *store.Client) { c.Resources = []string{backend} }), "refresh", false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := tokens[tt.tok]
			id := fmt.Sprintf("introspect-%02d", i)
			req := newRequest(t, http.MethodPost, w.s.URL+server.IntrospectPath, url.Values{"token": {tok}}.Encode(), "application/x-www-form-urlencoded")
			req.Header.Set("Authorization", ststest.BasicAuth(tt.client.ID, tt.client.Secret))
			req.Header.Set("X-Request-Id", id)
			r := w.s.Do(req)
			if r.Status != http.StatusOK {
				t.Fatalf("%d %s", r.Status, r.Body)
			}
			var refused *store.AuditRecord
			for _, a := range w.s.Audit() {
				if a.RequestID == id && a.Action == "token.introspect" && a.Decision == store.DecisionRefused {
					refused = &a
				}
			}
			if !tt.active {
				if string(r.Body) != "{\"active\":false}\n" {
					t.Errorf("%s, want exactly {\"active\":false}", r.Body)
				}
				if refused == nil || refused.ClientID != tt.client.ID || refused.JTI == "" {
					t.Errorf("refusal not audited: %+v", refused)
				}
				return
			}
			if in := r.JSON(); in["active"] != true || in["sub"] == nil {
				t.Errorf("%s, want active with claims", r.Body)
			}
			if refused != nil {
				t.Errorf("an answered introspection audited as refused: %+v", refused)
			}
		})
	}
}
