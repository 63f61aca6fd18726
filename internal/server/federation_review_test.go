package server_test

import (
	"net/http"
	"net/url"
	"testing"

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
