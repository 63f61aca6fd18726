package server_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/clients"
	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/oauth"
)

// These tests cover the rarely used paths (SPEC §7: "delegation and
// permission checks run on every path"): a refresh token is renewed under
// the client's current rules, not those of the day it was issued.

// operator changes a client as `sts client` or the portal would, and lets
// the server's client cache expire.
func operator(t *testing.T, s *ststest.STS, id string, edit func(*clients.Spec)) {
	t.Helper()
	reg := &clients.Registry{Store: s.Store, Hasher: s.Hasher, Now: time.Now}
	if _, err := reg.Update(context.Background(), "operator:test", id, func(sp *clients.Spec) error { edit(sp); return nil }); err != nil {
		t.Fatal(err)
	}
	s.Clock.Advance(3 * time.Second)
}

func refreshWith(s *ststest.STS, c *ststest.Client, rt string, extra url.Values) *ststest.Response {
	f := url.Values{"grant_type": {oauth.GrantTypeRefreshToken}, "refresh_token": {rt}}
	for k, v := range extra {
		f[k] = v
	}
	return s.PostForm(server.TokenPath, c, f)
}

func TestRefreshAudienceWithdrawn(t *testing.T) {
	const other = "https://other.example.com/api"
	w := newExchangeWorld(t, func(c *store.Client) {
		c.Audiences = []string{backend, other}
		c.GrantTypes = append(c.GrantTypes, oauth.GrantTypeRefreshToken)
	})
	tr := wantOK(t, w.exchange(url.Values{"resource": {backend}}))
	operator(t, w.s, w.rs.ID, func(sp *clients.Spec) { sp.Audiences = []string{other} })
	wantError(t, refreshWith(w.s, w.rs, tr.RefreshToken, nil), http.StatusBadRequest, oauth.ErrInvalidTarget)
	wantError(t, w.s.Exchange(w.rs, tr.RefreshToken, oauth.TokenTypeRefreshToken, nil), http.StatusBadRequest, oauth.ErrInvalidTarget)
}

func TestRefreshImpersonationWithdrawn(t *testing.T) {
	w := newExchangeWorld(t, func(c *store.Client) {
		c.AllowImpersonation = true
		c.GrantTypes = append(c.GrantTypes, oauth.GrantTypeRefreshToken)
	})
	tr := wantOK(t, w.exchange(nil))
	_, claims := verifyWithJWKS(t, w.s, tr.AccessToken)
	if claims["act"] != nil {
		t.Fatalf("impersonating client in act: %v", claims["act"])
	}
	operator(t, w.s, w.rs.ID, func(sp *clients.Spec) { sp.AllowImpersonation = false })
	got := wantOK(t, refreshWith(w.s, w.rs, tr.RefreshToken, nil))
	_, claims = verifyWithJWKS(t, w.s, got.AccessToken)
	if a := actOf(t, claims["act"]); !slices.Equal(chainSubjects(a), []string{w.rs.ID}) {
		t.Fatalf("after impersonation was withdrawn, act = %v, want the client", claims["act"])
	}
}

func TestRefreshTokenNeedsRefreshGrant(t *testing.T) {
	w := newExchangeWorld(t, func(c *store.Client) {
		c.GrantTypes = append(c.GrantTypes, oauth.GrantTypeRefreshToken)
	})
	tr := wantOK(t, w.exchange(nil))
	operator(t, w.s, w.rs.ID, func(sp *clients.Spec) {
		sp.GrantTypes = []string{oauth.GrantTypeClientCredentials, oauth.GrantTypeTokenExchange}
	})
	wantError(t, refreshWith(w.s, w.rs, tr.RefreshToken, nil), http.StatusBadRequest, oauth.ErrUnauthorizedClient)
	wantError(t, w.s.Exchange(w.rs, tr.RefreshToken, oauth.TokenTypeRefreshToken, nil), http.StatusBadRequest, oauth.ErrUnauthorizedClient)
}

// Exchanging a refresh token for a refresh token spends it: a refresh
// token is never copied, and using the spent one again is a replay.
func TestRefreshTokenNotCopied(t *testing.T) {
	w := newExchangeWorld(t, func(c *store.Client) {
		c.GrantTypes = append(c.GrantTypes, oauth.GrantTypeRefreshToken)
	})
	rt := wantOK(t, w.exchange(nil)).RefreshToken
	next := wantOK(t, w.s.Exchange(w.rs, rt, oauth.TokenTypeRefreshToken,
		url.Values{"requested_token_type": {oauth.TokenTypeRefreshToken}}))
	if next.IssuedTokenType != oauth.TokenTypeRefreshToken || next.AccessToken == rt {
		t.Fatalf("%+v", next)
	}
	wantError(t, refreshWith(w.s, w.rs, rt, nil), http.StatusBadRequest, oauth.ErrInvalidGrant)
	// The replay revoked the family, the copy included.
	wantError(t, refreshWith(w.s, w.rs, next.AccessToken, nil), http.StatusBadRequest, oauth.ErrInvalidGrant)
}

// A deleted client's tokens die with it (RFC 7592 §2.3): they introspect
// inactive and are refused as subject tokens.
func TestDeletedClientTokens(t *testing.T) {
	w := newExchangeWorld(t, nil)
	op := w.s.CreateClient(func(c *store.Client) { c.TokenFormat = store.TokenFormatOpaque })
	opaque := w.s.ClientCredentials(op, nil)
	wantOK(t, w.exchange(nil)) // w.subject works before
	reg := &clients.Registry{Store: w.s.Store, Hasher: w.s.Hasher, Now: time.Now}
	for _, id := range []string{op.ID, w.user.ID} {
		if err := reg.Delete(context.Background(), "operator:test", id); err != nil {
			t.Fatal(err)
		}
	}
	w.s.Clock.Advance(3 * time.Second)
	for name, tok := range map[string]string{"opaque": opaque, "jwt": w.subject} {
		if in := introspect(t, w.s, w.rs, tok); in["active"] != false {
			t.Errorf("%s token of a deleted client introspects %v", name, in)
		}
		wantError(t, w.s.Exchange(w.rs, tok, oauth.TokenTypeAccessToken, nil), http.StatusBadRequest, oauth.ErrInvalidRequest)
	}
}
