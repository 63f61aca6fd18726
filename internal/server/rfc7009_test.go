package server_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/internal/token"
	"github.com/keybridge/sts/oauth"
)

// revoke posts a revocation request for c.
func revoke(s *ststest.STS, c *ststest.Client, form url.Values) *ststest.Response {
	return s.PostForm(server.RevokePath, c, form)
}

// wantRevoked200 checks the RFC 7009 §2.2 success answer.
func wantRevoked200(t *testing.T, r *ststest.Response) {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("revoke: %d %s", r.Status, r.Body)
	}
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
}

// RFC 7009 §2.1: the client authenticates to the revocation endpoint.
func TestRFC7009_2_1_ClientAuthenticationRequired(t *testing.T) {
	w := newExchangeWorld(t, nil)
	tok := w.s.ClientCredentials(w.rs, nil)
	for name, c := range map[string]*ststest.Client{
		"none":         nil,
		"wrong secret": {Client: w.rs.Client, Secret: "wrong"},
	} {
		t.Run(name, func(t *testing.T) {
			r := revoke(w.s, c, url.Values{"token": {tok}})
			wantError(t, r, http.StatusUnauthorized, oauth.ErrInvalidClient)
			if h := r.Header.Get("WWW-Authenticate"); h == "" {
				t.Error("no WWW-Authenticate")
			}
		})
	}
	// Nothing was revoked.
	if in := introspect(t, w.s, w.rs, tok); in["active"] != true {
		t.Errorf("token revoked by an unauthenticated request: %v", in)
	}
	// The token parameter is REQUIRED.
	wantError(t, revoke(w.s, w.rs, url.Values{"token_type_hint": {"access_token"}}), http.StatusBadRequest, oauth.ErrInvalidRequest)
}

// RFC 7009 §2.2: the server answers 200 for an invalid or unknown token;
// the client cannot tell (and need not care).
func TestRFC7009_2_2_UnknownTokenIs200(t *testing.T) {
	w := newExchangeWorld(t, nil)
	for _, tok := range []string{"garbage", token.PrefixAccess + token.NewID(), token.PrefixRefresh + token.NewID(), mint(t, w.s, func(c *token.Claims) { c.Issuer = "https://evil.example.com" })} {
		wantRevoked200(t, revoke(w.s, w.rs, url.Values{"token": {tok}}))
	}
	// Revoking twice is fine too.
	tok := w.s.ClientCredentials(w.rs, nil)
	wantRevoked200(t, revoke(w.s, w.rs, url.Values{"token": {tok}}))
	wantRevoked200(t, revoke(w.s, w.rs, url.Values{"token": {tok}}))
}

// RFC 7009 §2.2.1: a token_type_hint the server does not understand is
// unsupported_token_type. The hint is read under the name token_type too
// (Key Bridge's Java client sends that).
func TestRFC7009_2_2_1_UnsupportedTokenType(t *testing.T) {
	w := newExchangeWorld(t, nil)
	tok := w.s.ClientCredentials(w.rs, nil)
	for _, name := range []string{"token_type_hint", "token_type"} {
		for _, hint := range []string{"id_token", "saml2", oauth.TokenTypeSAML1} {
			t.Run(name+"="+hint, func(t *testing.T) {
				r := revoke(w.s, w.rs, url.Values{"token": {tok}, name: {hint}})
				wantError(t, r, http.StatusBadRequest, oauth.ErrUnsupportedTokenType)
			})
		}
	}
	if in := introspect(t, w.s, w.rs, tok); in["active"] != true {
		t.Fatalf("token revoked by a refused request: %v", in)
	}
	// Known hints, under both names, revoke.
	for _, form := range []url.Values{
		{"token_type_hint": {"access_token"}},
		{"token_type": {"access_token"}},
		{"token_type": {" refresh_token "}},
		{"token_type": {oauth.TokenTypeAccessToken}},
		// An unknown hint only orders the search (RFC 7009 §2.1).
		{"token_type_hint": {"foo"}},
	} {
		tok := w.s.ClientCredentials(w.rs, nil)
		form.Set("token", tok)
		wantRevoked200(t, revoke(w.s, w.rs, form))
		if in := introspect(t, w.s, w.rs, tok); in["active"] != false {
			t.Errorf("%v: still active", form)
		}
	}
}

// RFC 7009 §2.1 and §2.2: once revoked, a JWT is refused as a subject
// token and introspects inactive.
func TestRFC7009_2_1_RevokedJWT(t *testing.T) {
	w := newExchangeWorld(t, nil)
	wantOK(t, w.exchange(nil)) // the subject token works before
	wantRevoked200(t, revoke(w.s, w.user, url.Values{"token": {w.subject}}))
	var n int
	if err := w.s.Store.DB().QueryRowContext(context.Background(), `SELECT count(*) FROM revoked_jtis`).Scan(&n); err != nil || n != 1 {
		t.Errorf("revoked_jtis rows %d, %v", n, err)
	}
	wantError(t, w.exchange(nil), http.StatusBadRequest, oauth.ErrInvalidRequest)
	if in := introspect(t, w.s, w.rs, w.subject); in["active"] != false {
		t.Errorf("introspection %v", in)
	}
	// And so is an exchanged JWT, revoked by the client it was issued to.
	w.subject = w.s.ClientCredentials(w.user, nil)
	ex := wantOK(t, w.exchange(nil)).AccessToken
	wantOK(t, w.s.Exchange(w.rs, ex, oauth.TokenTypeAccessToken, nil))
	wantRevoked200(t, revoke(w.s, w.rs, url.Values{"token": {ex}}))
	wantError(t, w.s.Exchange(w.rs, ex, oauth.TokenTypeAccessToken, nil), http.StatusBadRequest, oauth.ErrInvalidRequest)
	if in := introspect(t, w.s, w.user, ex); in["active"] != false {
		t.Errorf("introspection %v", in)
	}
}

// RFC 7009 §2.1: revoking a refresh token revokes the tokens of the same
// grant (its family).
func TestRFC7009_2_1_RefreshTokenRevokesFamily(t *testing.T) {
	w := newExchangeWorld(t, func(c *store.Client) {
		c.TokenFormat = store.TokenFormatOpaque
		c.GrantTypes = append(c.GrantTypes, oauth.GrantTypeRefreshToken)
	})
	first := wantOK(t, w.exchange(nil))
	second := wantOK(t, w.s.PostForm(server.TokenPath, w.rs, url.Values{"grant_type": {oauth.GrantTypeRefreshToken}, "refresh_token": {first.RefreshToken}}))
	other := wantOK(t, w.exchange(nil)) // another family, untouched
	wantRevoked200(t, revoke(w.s, w.rs, url.Values{"token": {second.RefreshToken}, "token_type_hint": {"refresh_token"}}))
	for name, tok := range map[string]string{"first access": first.AccessToken, "second access": second.AccessToken, "second refresh": second.RefreshToken} {
		if in := introspect(t, w.s, w.rs, tok); in["active"] != false {
			t.Errorf("%s still active: %v", name, in)
		}
	}
	r := w.s.PostForm(server.TokenPath, w.rs, url.Values{"grant_type": {oauth.GrantTypeRefreshToken}, "refresh_token": {second.RefreshToken}})
	wantError(t, r, http.StatusBadRequest, oauth.ErrInvalidGrant)
	for name, tok := range map[string]string{"other access": other.AccessToken, "other refresh": other.RefreshToken} {
		if in := introspect(t, w.s, w.rs, tok); in["active"] != true {
			t.Errorf("%s of another family revoked: %v", name, in)
		}
	}
}

// RFC 7009 §2.1: the server verifies that the token was issued to the
// client making the request; a client cannot revoke another's token.
func TestRFC7009_2_1_OtherClientsToken(t *testing.T) {
	w := newExchangeWorld(t, func(c *store.Client) {
		c.GrantTypes = append(c.GrantTypes, oauth.GrantTypeRefreshToken)
	})
	ex := wantOK(t, w.exchange(nil))
	for name, tok := range map[string]string{"jwt": w.subject, "exchanged jwt": ex.AccessToken, "refresh": ex.RefreshToken} {
		t.Run(name, func(t *testing.T) {
			owner := w.rs
			if tok == w.subject {
				owner = w.user
			}
			thief := w.s.CreateClient(nil)
			r := revoke(w.s, thief, url.Values{"token": {tok}})
			wantError(t, r, http.StatusBadRequest, oauth.ErrUnauthorizedClient)
			if in := introspect(t, w.s, owner, tok); in["active"] != true {
				t.Errorf("revoked by another client: %v", in)
			}
		})
	}
	var n int
	if err := w.s.Store.DB().QueryRowContext(context.Background(), `SELECT count(*) FROM revoked_jtis`).Scan(&n); err != nil || n != 0 {
		t.Errorf("revoked_jtis rows %d, %v", n, err)
	}
}
