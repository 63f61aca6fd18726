package server_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/internal/token"
	"github.com/keybridge/sts/oauth"
)

// Revocation without gaps: what a revoked refresh family, a spent refresh
// token, a deleted client or a disabled client leaves behind is refused.

// wantInactive checks that each token introspects inactive for c.
func wantInactive(t *testing.T, s *ststest.STS, c *ststest.Client, why string, toks map[string]string) {
	t.Helper()
	for name, tok := range toks {
		if in := introspect(t, s, c, tok); in["active"] != false {
			t.Errorf("%s %s: still active: %v", name, why, in)
		}
	}
}

// RFC 7009 §2.1 and RFC 9700 §4.14.2: revoking a refresh family, by
// revocation or by the replay of one of its refresh tokens, revokes its JWT
// access tokens (not stored, so refused by their family claim), the JWTs
// exchanged from them, and the refresh tokens minted from them, which
// joined the family instead of starting another.
func TestRevocation_FamilyRevokesItsJWTs(t *testing.T) {
	for _, trigger := range []string{"revocation", "replay"} {
		t.Run(trigger, func(t *testing.T) {
			w := newExchangeWorld(t, func(c *store.Client) {
				c.GrantTypes = append(c.GrantTypes, oauth.GrantTypeRefreshToken)
			})
			first := wantOK(t, w.exchange(nil))
			if first.RefreshToken == "" {
				t.Fatalf("no refresh token: %+v", first)
			}
			_, claims := verifyWithJWKS(t, w.s, first.AccessToken)
			if f, _ := claims["family_id"].(string); f == "" {
				t.Fatalf("the JWT issued with a refresh token names no family: %v", claims)
			}
			// Derived from the family's JWT: a refresh token and a JWT.
			minted := wantOK(t, w.s.Exchange(w.rs, first.AccessToken, oauth.TokenTypeJWT,
				url.Values{"requested_token_type": {oauth.TokenTypeRefreshToken}}))
			derived := wantOK(t, w.s.Exchange(w.rs, first.AccessToken, oauth.TokenTypeJWT, nil))
			other := wantOK(t, w.exchange(nil)) // another family, untouched

			switch trigger {
			case "revocation":
				wantRevoked200(t, revoke(w.s, w.rs, url.Values{"token": {first.RefreshToken}}))
			case "replay":
				wantOK(t, refreshWith(w.s, w.rs, first.RefreshToken, nil))
				wantError(t, refreshWith(w.s, w.rs, first.RefreshToken, nil), http.StatusBadRequest, oauth.ErrInvalidGrant)
			}
			wantInactive(t, w.s, w.rs, "of the revoked family", map[string]string{
				"JWT": first.AccessToken, "exchanged JWT": derived.AccessToken, "exchanged JWT's refresh token": derived.RefreshToken,
				"refresh token minted from the JWT": minted.AccessToken,
			})
			wantError(t, w.s.Exchange(w.rs, first.AccessToken, oauth.TokenTypeJWT, nil), http.StatusBadRequest, oauth.ErrInvalidRequest)
			wantError(t, refreshWith(w.s, w.rs, minted.AccessToken, nil), http.StatusBadRequest, oauth.ErrInvalidGrant)
			// The family's revocation is recorded once, with its expiry.
			var n int
			if err := w.s.Store.DB().QueryRowContext(context.Background(),
				`SELECT count(*) FROM revoked_jtis WHERE jti LIKE 'family:%' AND expires_at > 0`).Scan(&n); err != nil || n != 1 {
				t.Errorf("family revocations recorded: %d, %v", n, err)
			}
			for name, tok := range map[string]string{"access": other.AccessToken, "refresh": other.RefreshToken} {
				if in := introspect(t, w.s, w.rs, tok); in["active"] != true {
					t.Errorf("%s of another family revoked: %v", name, in)
				}
			}
		})
	}
}

// The access token issued with the refresh token that founds a family
// never outlives the family's stored tokens, whose last expiry bounds the
// family's revocation (store.Tokens.RevokeFamily).
func TestRevocation_NewFamilyAccessTokenWithinRefreshToken(t *testing.T) {
	w := newExchangeWorld(t, func(c *store.Client) {
		c.AccessTokenTTL, c.RefreshTokenTTL = 2*time.Hour, time.Hour
		c.GrantTypes = append(c.GrantTypes, oauth.GrantTypeRefreshToken)
	})
	// A subject token that lives longer than both lifetimes.
	subject := mint(t, w.s, func(c *token.Claims) { c.Expiry = time.Now().Add(5 * time.Hour).Unix() })
	tr := wantOK(t, w.s.Exchange(w.rs, subject, oauth.TokenTypeAccessToken, nil))
	_, claims := verifyWithJWKS(t, w.s, tr.AccessToken)
	rt := introspect(t, w.s, w.rs, tr.RefreshToken)
	exp, rtExp := claims["exp"].(float64), rt["exp"].(float64)
	if exp == 0 || exp > rtExp || tr.ExpiresIn > 3600 {
		t.Errorf("access token exp %v (expires_in %d) beyond its refresh token's %v", exp, tr.ExpiresIn, rtExp)
	}
	// With no refresh token, the client's lifetime applies (so the
	// assertion above could fail).
	_, cc := verifyWithJWKS(t, w.s, w.s.ClientCredentials(w.rs, nil))
	if life := cc["exp"].(float64) - cc["iat"].(float64); life != 7200 {
		t.Errorf("client_credentials lifetime %v s, want the client's 7200", life)
	}
}

// RFC 9700 §4.14.2: a refresh token exchanged for an access token (or a
// JWT) is spent like one used at the refresh grant: the client gets its
// successor in the family beside the access token, and presenting the
// spent token again, by either path, is a replay that revokes the family.
func TestRevocation_ExchangedRefreshTokenIsSpent(t *testing.T) {
	for _, tc := range []struct{ requested, replayBy string }{
		{oauth.TokenTypeAccessToken, "refresh"},
		{oauth.TokenTypeJWT, "exchange"},
	} {
		t.Run(tc.requested+" then "+tc.replayBy, func(t *testing.T) {
			w := newExchangeWorld(t, func(c *store.Client) {
				c.GrantTypes = append(c.GrantTypes, oauth.GrantTypeRefreshToken)
			})
			rt := wantOK(t, w.exchange(nil)).RefreshToken
			got := wantOK(t, w.s.Exchange(w.rs, rt, oauth.TokenTypeRefreshToken,
				url.Values{"requested_token_type": {tc.requested}}))
			if got.RefreshToken == "" || got.RefreshToken == rt {
				t.Fatalf("no successor refresh token beside the access token: %+v", got)
			}
			if in := introspect(t, w.s, w.rs, got.RefreshToken); in["active"] != true {
				t.Fatalf("the successor is inactive: %v", in)
			}
			switch tc.replayBy {
			case "refresh":
				wantError(t, refreshWith(w.s, w.rs, rt, nil), http.StatusBadRequest, oauth.ErrInvalidGrant)
			case "exchange":
				wantError(t, w.s.Exchange(w.rs, rt, oauth.TokenTypeRefreshToken, nil), http.StatusBadRequest, oauth.ErrInvalidRequest)
			}
			wantInactive(t, w.s, w.rs, "after the spent refresh token's replay", map[string]string{
				"successor": got.RefreshToken, "access token": got.AccessToken,
			})
		})
	}
}

// RFC 7592 §2.3: a deleted client's tokens die with it, and a client
// created again under the same id is another client: the old tokens, JWT
// or refresh token, do not come back.
func TestRevocation_RecreatedClientRevivesNothing(t *testing.T) {
	w := newExchangeWorld(t, nil)
	setup := func(c *store.Client) {
		c.ID = "device-7"
		c.Scopes = []string{"api"}
		c.Audiences = []string{rsResource} // its tokens are for rs
		c.GrantTypes = append(c.GrantTypes, oauth.GrantTypeRefreshToken)
	}
	old := w.s.CreateClient(setup)
	jwt := w.s.ClientCredentials(old, nil)
	rt := wantOK(t, w.s.Exchange(old, jwt, oauth.TokenTypeJWT, url.Values{"requested_token_type": {oauth.TokenTypeRefreshToken}})).AccessToken

	ctx := context.Background()
	if err := w.s.Store.DeleteClient(ctx, old.ID); err != nil {
		t.Fatal(err)
	}
	w.s.ExpireClientCache() // also moves the clock on, past the tokens' second
	wantInactive(t, w.s, w.rs, "of the deleted client", map[string]string{"JWT": jwt, "refresh token": rt})

	again := w.s.CreateClient(func(c *store.Client) {
		setup(c)
		c.CreatedAt = w.s.Clock.Now()
	})
	wantInactive(t, w.s, w.rs, "of the client the id named before", map[string]string{"JWT": jwt, "refresh token": rt})
	wantInactive(t, w.s, again, "of the client the id named before", map[string]string{"JWT": jwt, "refresh token": rt})
	wantError(t, w.s.Exchange(w.rs, jwt, oauth.TokenTypeAccessToken, nil), http.StatusBadRequest, oauth.ErrInvalidRequest)
	wantError(t, refreshWith(w.s, again, rt, nil), http.StatusBadRequest, oauth.ErrInvalidGrant)
	// The new client's own tokens work.
	fresh := w.s.ClientCredentials(again, nil)
	wantOK(t, w.s.Exchange(w.rs, fresh, oauth.TokenTypeAccessToken, nil))
}

// RFC 8693 §2.2.2: the token of a disabled or pending client is refused as
// subject and as actor token (invalid_request) and introspects inactive
// (RFC 7662 §2.2), until the client is active again.
func TestRevocation_InactiveClientTokensRefused(t *testing.T) {
	w := newExchangeWorld(t, func(c *store.Client) { c.AllowImpersonation = true })
	other := w.s.CreateClient(func(c *store.Client) { c.Scopes = []string{"api"} })
	actor := w.s.ClientCredentials(other, nil)
	withActor := func() *ststest.Response {
		return w.s.Exchange(w.rs, w.s.ClientCredentials(w.rs, nil), oauth.TokenTypeAccessToken,
			url.Values{"actor_token": {actor}, "actor_token_type": {oauth.TokenTypeAccessToken}})
	}
	wantOK(t, w.exchange(nil))
	wantOK(t, withActor())
	setStatus := func(c *ststest.Client, st store.ClientStatus) {
		t.Helper()
		if _, err := w.s.Store.UpdateClient(context.Background(), c.ID, func(c *store.Client) error { c.Status = st; return nil }); err != nil {
			t.Fatal(err)
		}
		w.s.ExpireClientCache()
	}
	for _, st := range []store.ClientStatus{store.ClientDisabled, store.ClientPending} {
		t.Run(string(st), func(t *testing.T) {
			setStatus(w.user, st)
			setStatus(other, st)
			wantError(t, w.exchange(nil), http.StatusBadRequest, oauth.ErrInvalidRequest)
			wantError(t, withActor(), http.StatusBadRequest, oauth.ErrInvalidRequest)
			wantInactive(t, w.s, w.rs, "of a "+string(st)+" client", map[string]string{"subject": w.subject, "actor": actor})
			setStatus(w.user, store.ClientActive)
			setStatus(other, store.ClientActive)
			wantOK(t, w.exchange(nil))
			wantOK(t, withActor())
		})
	}
}

// The tokens of a client whose account is suspended or closed are refused
// as subject tokens and introspect inactive, as the client itself can no
// longer authenticate (review of issue 8).
func TestRevocation_InactiveAccountTokensRefused(t *testing.T) {
	w := newExchangeWorld(t, nil)
	acct := w.s.NewAccount(store.AccountIndividual, "Alice")
	device := w.s.CreateClient(func(c *store.Client) {
		c.AccountID, c.Scopes, c.Audiences = acct.ID, []string{"api"}, []string{rsResource}
	})
	subject := w.s.ClientCredentials(device, nil)
	exchange := func() *ststest.Response {
		return w.s.Exchange(w.rs, subject, oauth.TokenTypeAccessToken, nil)
	}
	wantOK(t, exchange())
	ctx := context.Background()
	if _, err := w.s.Accounts.SetStatus(ctx, acct.ID, store.AccountSuspended); err != nil {
		t.Fatal(err)
	}
	w.s.ExpireClientCache()
	wantError(t, exchange(), http.StatusBadRequest, oauth.ErrInvalidRequest)
	wantInactive(t, w.s, w.rs, "of a suspended account's client", map[string]string{"subject": subject})
	if _, err := w.s.Accounts.SetStatus(ctx, acct.ID, store.AccountActive); err != nil {
		t.Fatal(err)
	}
	w.s.ExpireClientCache()
	wantOK(t, exchange())
}

// Another client that exchanges a family's token starts a child family:
// revoking the parent revokes what the child derived, but the child's
// client revoking, or replaying, its own refresh token leaves the
// parent's tokens alone (review of issue 8: it revoked the parent's whole
// family).
func TestRevocation_ChildFamilyOfAnotherClient(t *testing.T) {
	for _, trigger := range []string{"revocation", "replay"} {
		t.Run(trigger, func(t *testing.T) {
			w := newExchangeWorld(t, func(c *store.Client) {
				c.GrantTypes = append(c.GrantTypes, oauth.GrantTypeRefreshToken)
			})
			// The user's own family: its refresh token and JWT.
			w.s.Store.UpdateClient(context.Background(), w.user.ID, func(c *store.Client) error {
				c.GrantTypes = append(c.GrantTypes, oauth.GrantTypeTokenExchange, oauth.GrantTypeRefreshToken)
				return nil
			})
			w.s.ExpireClientCache()
			parent := wantOK(t, w.s.Exchange(w.user, w.subject, oauth.TokenTypeAccessToken, nil))
			if parent.RefreshToken == "" {
				t.Fatalf("no parent family: %+v", parent)
			}
			_, pc := verifyWithJWKS(t, w.s, parent.AccessToken)
			// rs, which serves the token's audience, derives from it.
			child := wantOK(t, w.s.Exchange(w.rs, parent.AccessToken, oauth.TokenTypeJWT, nil))
			_, cc := verifyWithJWKS(t, w.s, child.AccessToken)
			pf, _ := pc["family_id"].(string)
			cf, _ := cc["family_id"].(string)
			if pf == "" || len(cf) <= len(pf) || cf[:len(pf)+1] != pf+store.FamilySeparator {
				t.Fatalf("child family %q of parent %q", cf, pf)
			}
			switch trigger {
			case "revocation":
				wantRevoked200(t, revoke(w.s, w.rs, url.Values{"token": {child.RefreshToken}}))
			case "replay":
				wantOK(t, refreshWith(w.s, w.rs, child.RefreshToken, nil))
				wantError(t, refreshWith(w.s, w.rs, child.RefreshToken, nil), http.StatusBadRequest, oauth.ErrInvalidGrant)
			}
			wantInactive(t, w.s, w.rs, "of the revoked child family", map[string]string{"child JWT": child.AccessToken})
			if in := introspect(t, w.s, w.user, parent.AccessToken); in["active"] != true {
				t.Fatalf("the parent's JWT after its child's %s: %v", trigger, in)
			}
			wantOK(t, refreshWith(w.s, w.user, parent.RefreshToken, nil))

			// Revoking the parent revokes a fresh child too.
			parent2 := wantOK(t, w.s.Exchange(w.user, w.subject, oauth.TokenTypeAccessToken, nil))
			child2 := wantOK(t, w.s.Exchange(w.rs, parent2.AccessToken, oauth.TokenTypeJWT, nil))
			wantRevoked200(t, revoke(w.s, w.user, url.Values{"token": {parent2.RefreshToken}}))
			wantInactive(t, w.s, w.rs, "of a child of a revoked family", map[string]string{"child JWT": child2.AccessToken, "child refresh token": child2.RefreshToken})
		})
	}
}
