package server_test

import (
	"context"
	"net/url"
	"testing"

	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
)

// Explain issues, stores and consumes nothing. A used refresh token
// presented to it under another declared type (access_token, jwt) must
// not reach validation, which revokes the family of a replayed refresh
// token (RFC 9700 §4.14.2): an operator explaining a request would
// otherwise log the user out (review of issue 11).
func TestExplainDoesNotRevokeARefreshFamily(t *testing.T) {
	w := newExchangeWorld(t, func(c *store.Client) {
		c.TokenFormat = store.TokenFormatOpaque
		c.GrantTypes = append(c.GrantTypes, oauth.GrantTypeRefreshToken)
	})
	first := wantOK(t, w.exchange(nil))
	second := wantOK(t, w.s.PostForm(server.TokenPath, w.rs, url.Values{"grant_type": {oauth.GrantTypeRefreshToken}, "refresh_token": {first.RefreshToken}}))
	for _, typ := range []string{oauth.TokenTypeAccessToken, oauth.TokenTypeJWT} {
		for _, param := range []string{"subject_token", "actor_token"} {
			form := url.Values{
				"grant_type": {oauth.GrantTypeTokenExchange}, "subject_token": {w.subject}, "subject_token_type": {oauth.TokenTypeAccessToken},
				"audience": {backend},
			}
			form.Set(param, first.RefreshToken) // spent: a replay
			form.Set(param+"_type", typ)
			x := w.s.Server.Token.Explain(context.Background(), w.rs.Client, form)
			if x.Granted {
				t.Fatalf("explain of a refresh token as %s %s granted: %+v", param, typ, x)
			}
		}
	}
	// The family is intact: the current refresh token still works.
	wantOK(t, w.s.PostForm(server.TokenPath, w.rs, url.Values{"grant_type": {oauth.GrantTypeRefreshToken}, "refresh_token": {second.RefreshToken}}))
}
