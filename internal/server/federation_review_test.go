package server_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/oauth"
)

// No refresh token is issued for an upstream subject (SPEC §3): neither
// by the exchange of the upstream token nor by a second exchange of the
// token issued for it, which is this server's own but still names (in
// sub_id) the issuer that vouched. Otherwise one more exchange gives the
// refresh token the first one refused (review of issue 11).
func TestFederatedSubjectGetsNoRefreshTokenByReexchange(t *testing.T) {
	s := ststest.Start(t, fedOptions)
	k8s := ststest.StartIdP(t)
	c := s.CreateClient(func(c *store.Client) {
		c.Scopes = []string{"read"}
		c.GrantTypes = append(c.GrantTypes, oauth.GrantTypeRefreshToken)
	})
	s.Trust(k8s, "k8s", s.URL, []string{c.ID}, nil)
	r := s.Exchange(c, k8s.Sign(k8s.Kubernetes("prod", "deployer", s.URL)), oauth.TokenTypeJWT, nil)
	if r.Status != http.StatusOK || r.Token().RefreshToken != "" {
		t.Fatalf("exchange of the upstream token: %d %s", r.Status, r.Body)
	}
	local := r.Token().AccessToken
	if sub := claimsOf(t, local)["sub"]; sub != "k8s:system:serviceaccount:prod:deployer" {
		t.Fatalf("sub %v", sub)
	}
	r = s.Exchange(c, local, oauth.TokenTypeJWT, url.Values{"requested_token_type": {oauth.TokenTypeRefreshToken}})
	if r.Status != http.StatusBadRequest {
		t.Fatalf("refresh token for an upstream subject by re-exchange: %d %s", r.Status, r.Body)
	}
	r = s.Exchange(c, local, oauth.TokenTypeJWT, nil)
	if r.Status != http.StatusOK || r.Token().RefreshToken != "" {
		t.Fatalf("re-exchange gave a refresh token beside the access token: %d %s", r.Status, r.Body)
	}
}

// A JWT bearer assertion is accepted until its exp plus its issuer's
// leeway, so its jti must be remembered that long: kept only until exp,
// the cleanup could forget it while the assertion is still accepted, and
// it could be used again (RFC 7523 §3 item 7; review of issue 11).
func TestJWTBearerJTIOutlivesTheLeeway(t *testing.T) {
	a := ststest.Start(t, fedOptions)
	b := ststest.Start(t, fedOptions)
	ca := a.CreateClient(func(c *store.Client) { c.Audiences = []string{b.URL}; c.AllowImpersonation = true })
	cb := b.CreateClient(func(c *store.Client) {
		c.GrantTypes = []string{oauth.GrantTypeJWTBearer}
		c.Audiences = []string{backend}
	})
	ti := b.Trust(&ststest.IdP{URL: a.URL}, "domain-a", b.URL, []string{cb.ID}, func(ti *store.TrustedIssuer) {
		ti.TokenTypes = []string{oauth.TokenTypeJWT}
	})
	r := a.Exchange(ca, mintFor(t, a, ca, "alice"), oauth.TokenTypeJWT, url.Values{"audience": {b.URL}, "requested_token_type": {oauth.TokenTypeJWT}})
	if r.Status != http.StatusOK {
		t.Fatalf("A: %d %s", r.Status, r.Body)
	}
	grant := r.Token().AccessToken
	exp := time.Unix(int64(claimsOf(t, grant)["exp"].(float64)), 0)
	form := url.Values{"grant_type": {oauth.GrantTypeJWTBearer}, "assertion": {grant}}
	if r = b.PostForm(server.TokenPath, cb, form); r.Status != http.StatusOK {
		t.Fatalf("B: %d %s", r.Status, r.Body)
	}
	// Past exp, within the leeway; the cleanup has run.
	b.Clock.Advance(exp.Add(ti.Leeway / 2).Sub(b.Clock.Now()))
	if _, err := b.Store.DeleteExpiredJTIs(context.Background(), b.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	r = b.PostForm(server.TokenPath, cb, form)
	if r.Status != http.StatusBadRequest || r.Error() != string(oauth.ErrInvalidGrant) {
		t.Fatalf("the assertion was accepted twice: %d %s", r.Status, r.Body)
	}
}

// An upstream may_act that names this server as the issuer of the party
// (RFC 8693 §4.4: iss with sub) names this server's client, as one
// without iss does; one naming another issuer does not (review of issue
// 11).
func TestFederationMayActNamingThisServer(t *testing.T) {
	s := ststest.Start(t, fedOptions)
	p := ststest.StartIdP(t)
	c := fedClient(s)
	s.Trust(p, "corp", s.URL, []string{"*"}, nil)
	cl := p.Claims("alice", s.URL)
	cl["may_act"] = map[string]any{"sub": c.ID, "iss": s.URL}
	if r := s.Exchange(c, p.Sign(cl), oauth.TokenTypeJWT, url.Values{"audience": {backend}}); r.Status != http.StatusOK {
		t.Fatalf("may_act naming this server's client: %d %s", r.Status, r.Body)
	}
	cl["may_act"] = map[string]any{"sub": c.ID, "iss": "https://elsewhere.example"}
	refusedWith(t, s, s.Exchange(c, p.Sign(cl), oauth.TokenTypeJWT, url.Values{"audience": {backend}}), "invalid_request", "may_act")
}

// An upstream token bound to a key (cnf: DPoP RFC 9449 §6, mTLS RFC 8705
// §3) is refused like this server's own bound tokens (SPEC §7): the
// exchange would turn it into a bearer token, so whoever stole it
// without the key could use it after all (review of issue 11).
func TestFederationSenderConstrainedUpstreamTokenRefused(t *testing.T) {
	s := ststest.Start(t, fedOptions)
	p := ststest.StartIdP(t)
	c := fedClient(s)
	s.Trust(p, "corp", s.URL, []string{c.ID}, nil)
	for _, cnf := range []map[string]any{{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}, {"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}} {
		cl := p.Claims("alice", s.URL)
		cl["cnf"] = cnf
		refusedWith(t, s, s.Exchange(c, p.Sign(cl), oauth.TokenTypeJWT, url.Values{"audience": {backend}}), "invalid_request", "sender-constrained")
	}
}
