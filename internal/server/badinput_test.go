package server_test

import (
	"context"
	"net/url"
	"testing"

	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/oauth"
)

func TestDebugReplay(t *testing.T) {
	w := newExchangeWorld(t, func(c *store.Client) {
		c.TokenFormat = store.TokenFormatOpaque
		c.GrantTypes = append(c.GrantTypes, oauth.GrantTypeRefreshToken)
	})
	refresh := func(rt string) *ststest.Response {
		return w.s.PostForm(server.TokenPath, w.rs, url.Values{"grant_type": {oauth.GrantTypeRefreshToken}, "refresh_token": {rt}})
	}
	first := wantOK(t, w.exchange(nil))
	second := wantOK(t, refresh(first.RefreshToken))
	t.Logf("first %s second %s", first.RefreshToken, second.RefreshToken)
	for i := 0; i < 10; i++ {
		v, err := w.s.Server.Tokens.Validate(context.Background(), first.RefreshToken)
		t.Logf("validate %v %v", v != nil, err)
	}
	r := refresh(first.RefreshToken)
	t.Logf("%s", r.Body)
}
