package e2e_test

// Attacks on revocation (issue 8, finding 6), each against a real `sts
// serve` process over HTTP, with the operator CLI where an operator acts:
// what a revoked refresh family, a spent refresh token, a deleted client or
// a disabled client leaves behind must be refused.

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/oauth"
)

// revClientBound is how long a change made with the CLI may take to reach
// the server's client cache (2 s), plus a margin for a loaded machine.
const revClientBound = 10 * time.Second

// revApp creates, with the CLI, a client that may use every grant and get
// JWTs for this server (it names no audience).
func revApp(c *cluster, extra ...string) credentials {
	return c.CreateClient(append([]string{"--name", "app", "--scope", "api",
		"--grant-type", "client-credentials,token-exchange,refresh-token"}, extra...)...)
}

// revTokens is a successful token response.
func revTokens(t *testing.T, r reply) oauth.TokenResponse {
	t.Helper()
	if r.Err != nil || r.Status != http.StatusOK {
		t.Fatalf("token request: %v", r)
	}
	var tr oauth.TokenResponse
	if err := json.Unmarshal(r.Body, &tr); err != nil || tr.AccessToken == "" {
		t.Fatalf("token response %s: %v", r.Body, err)
	}
	return tr
}

// revExchange exchanges subject (of type subjectType) for the requested
// token type ("" for the default).
func revExchange(ctx context.Context, n *node, cl credentials, subject, subjectType, requested string) reply {
	f := url.Values{
		"grant_type":         {oauth.GrantTypeTokenExchange},
		"subject_token":      {subject},
		"subject_token_type": {subjectType},
	}
	if requested != "" {
		f.Set("requested_token_type", requested)
	}
	return n.post(ctx, server.TokenPath, cl, f)
}

// revRefresh uses a refresh token at the refresh grant.
func revRefresh(ctx context.Context, n *node, cl credentials, rt string) reply {
	return n.post(ctx, server.TokenPath, cl, url.Values{"grant_type": {oauth.GrantTypeRefreshToken}, "refresh_token": {rt}})
}

// revWantRefused checks an OAuth error answer.
func revWantRefused(t *testing.T, what string, r reply, code oauth.ErrorCode) {
	t.Helper()
	if r.Err != nil || r.Status != http.StatusBadRequest || r.errorCode() != string(code) {
		t.Errorf("%s: got %v, want 400 %s", what, r, code)
	}
}

// revWantActive checks what introspection says of each token.
func revWantActive(t *testing.T, ctx context.Context, n *node, cl credentials, want bool, toks map[string]string) {
	t.Helper()
	for name, tok := range toks {
		in, r := n.Introspect(ctx, cl, tok)
		if r.Err != nil || r.Status != http.StatusOK {
			t.Fatalf("introspect %s: %v", name, r)
		}
		if in.Active != want {
			t.Errorf("%s: active %v, want %v", name, in.Active, want)
		}
	}
}

// revEventually polls cond until it holds, failing after revClientBound.
func revEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(revClientBound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, revClientBound)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// revAuthenticates reports whether cl can obtain a client_credentials
// token, i.e. whether the server sees the client active with this secret.
func revAuthenticates(ctx context.Context, n *node, cl credentials) bool {
	return n.ClientCredentials(ctx, cl).Status == http.StatusOK
}

// Revoking a refresh family, by RFC 7009 or by replaying one of its
// refresh tokens, kills its JWT access tokens (which are not stored) and
// what was exchanged from them: a JWT, and a refresh token, which used to
// start a family of its own and outlive the revocation.
func TestAttackRevocation_FamilyKillsItsJWTsAndDerivedRefreshTokens(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOptions{SQLite: true}, "a")
	a := c.Nodes[0]
	app := revApp(c)
	ctx := context.Background()
	for _, trigger := range []string{"RFC 7009 revocation", "refresh token replay"} {
		t.Run(trigger, func(t *testing.T) {
			own := accessToken(t, a.ClientCredentials(ctx, app))
			family := revTokens(t, revExchange(ctx, a, app, own, oauth.TokenTypeAccessToken, ""))
			if family.RefreshToken == "" {
				t.Fatalf("no refresh token beside the exchanged JWT: %+v", family)
			}
			jwt := family.AccessToken
			minted := revTokens(t, revExchange(ctx, a, app, jwt, oauth.TokenTypeJWT, oauth.TokenTypeRefreshToken)).AccessToken
			derived := revTokens(t, revExchange(ctx, a, app, jwt, oauth.TokenTypeJWT, ""))
			revWantActive(t, ctx, a, app, true, map[string]string{"family JWT": jwt, "minted refresh token": minted, "derived JWT": derived.AccessToken})

			switch trigger {
			case "RFC 7009 revocation":
				if r := a.Revoke(ctx, app, family.RefreshToken); r.Status != http.StatusOK {
					t.Fatalf("revoke: %v", r)
				}
			case "refresh token replay":
				revTokens(t, revRefresh(ctx, a, app, family.RefreshToken))
				revWantRefused(t, "the replayed refresh token", revRefresh(ctx, a, app, family.RefreshToken), oauth.ErrInvalidGrant)
			}
			revWantActive(t, ctx, a, app, false, map[string]string{
				"family JWT": jwt, "derived JWT": derived.AccessToken, "derived JWT's refresh token": derived.RefreshToken,
				"refresh token minted from the family JWT": minted,
			})
			revWantRefused(t, "the family JWT as subject token", revExchange(ctx, a, app, jwt, oauth.TokenTypeJWT, ""), oauth.ErrInvalidRequest)
			revWantRefused(t, "the refresh token minted from the family JWT", revRefresh(ctx, a, app, minted), oauth.ErrInvalidGrant)
		})
	}
}

// Exchanging one's own refresh token for an access token spends it, as
// the refresh grant does: its successor comes beside the access token, and
// presenting the spent token again is a replay that revokes the family.
// It used to leave the refresh token unspent, bypassing rotation and reuse
// detection.
func TestAttackRevocation_ExchangingRefreshTokenSpendsIt(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOptions{SQLite: true}, "a")
	a := c.Nodes[0]
	app := revApp(c)
	ctx := context.Background()
	for _, requested := range []string{oauth.TokenTypeAccessToken, oauth.TokenTypeJWT} {
		t.Run(requested, func(t *testing.T) {
			own := accessToken(t, a.ClientCredentials(ctx, app))
			rt := revTokens(t, revExchange(ctx, a, app, own, oauth.TokenTypeAccessToken, "")).RefreshToken
			got := revTokens(t, revExchange(ctx, a, app, rt, oauth.TokenTypeRefreshToken, requested))
			if got.RefreshToken == "" || got.RefreshToken == rt {
				t.Errorf("no successor refresh token beside the access token: %+v", got)
			}
			// The stolen copy of the spent token is detected...
			revWantRefused(t, "the spent refresh token", revRefresh(ctx, a, app, rt), oauth.ErrInvalidGrant)
			// ... and its family revoked, successor and access token included.
			revWantActive(t, ctx, a, app, false, map[string]string{"access token": got.AccessToken})
			if got.RefreshToken != "" {
				revWantRefused(t, "the successor after the replay", revRefresh(ctx, a, app, got.RefreshToken), oauth.ErrInvalidGrant)
			}
		})
	}
}

// Deleting a client and creating its id again (an operator with the CLI)
// does not revive the old client's tokens: the new client is another one.
func TestAttackRevocation_RecreatedClientRevivesNothing(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOptions{SQLite: true}, "a")
	a := c.Nodes[0]
	ctx := context.Background()
	const id = "device-42"
	old := revApp(c, "--client-id", id)
	jwt := accessToken(t, a.ClientCredentials(ctx, old))
	rt := revTokens(t, revExchange(ctx, a, old, jwt, oauth.TokenTypeAccessToken, oauth.TokenTypeRefreshToken)).AccessToken
	revWantActive(t, ctx, a, old, true, map[string]string{"JWT": jwt, "refresh token": rt})

	c.CLI("client", "delete", id)
	revEventually(t, "the deletion seen by the server", func() bool { return !revAuthenticates(ctx, a, old) })
	// Tokens carry iat in whole seconds: the id is created again in a
	// later second than the tokens (see token.Service.Validate).
	_, claims, err := jwtParts(jwt)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(time.Unix(int64(claims["iat"].(float64))+1, 0)))
	again := revApp(c, "--client-id", id)
	revEventually(t, "the new client seen by the server", func() bool { return revAuthenticates(ctx, a, again) })

	revWantActive(t, ctx, a, again, false, map[string]string{"old JWT": jwt, "old refresh token": rt})
	revWantRefused(t, "the old JWT as subject token", revExchange(ctx, a, again, jwt, oauth.TokenTypeAccessToken, ""), oauth.ErrInvalidRequest)
	revWantRefused(t, "the old refresh token", revRefresh(ctx, a, again, rt), oauth.ErrInvalidGrant)
	// The new client's own tokens work.
	fresh := accessToken(t, a.ClientCredentials(ctx, again))
	revTokens(t, revExchange(ctx, a, again, fresh, oauth.TokenTypeAccessToken, ""))
}

// A disabled client's token is refused as a subject token (RFC 8693
// §2.2.2: invalid_request) and introspects inactive, until the client is
// enabled again.
func TestAttackRevocation_DisabledClientTokenRefusedAsSubject(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOptions{SQLite: true}, "a")
	a := c.Nodes[0]
	ctx := context.Background()
	// The victim's tokens are addressed to the caller, which may then
	// exchange and introspect them.
	caller := revApp(c)
	victim := revApp(c, "--audience", caller.ID)
	tok := accessToken(t, a.ClientCredentials(ctx, victim))
	revTokens(t, revExchange(ctx, a, caller, tok, oauth.TokenTypeAccessToken, ""))

	c.CLI("client", "disable", victim.ID)
	revEventually(t, "the disabled client seen by the server", func() bool { return !revAuthenticates(ctx, a, victim) })
	revWantRefused(t, "the disabled client's token as subject token", revExchange(ctx, a, caller, tok, oauth.TokenTypeAccessToken, ""), oauth.ErrInvalidRequest)
	revWantActive(t, ctx, a, caller, false, map[string]string{"the disabled client's token": tok})

	c.CLI("client", "enable", victim.ID)
	revEventually(t, "the enabled client seen by the server", func() bool { return revAuthenticates(ctx, a, victim) })
	revTokens(t, revExchange(ctx, a, caller, tok, oauth.TokenTypeAccessToken, ""))
}

// On several instances sharing PostgreSQL, a family revoked on one is
// refused by the others: the revocation is announced (LISTEN/NOTIFY) and
// each instance adds the family to its in-memory set, which its JWTs are
// checked against.
func TestAttackRevocation_FamilyRevokedOnEveryInstance(t *testing.T) {
	testDatabaseURL(t)
	t.Parallel()
	c := newCluster(t, clusterOptions{}, "A", "B")
	A, B := c.Nodes[0], c.Nodes[1]
	app := revApp(c)
	ctx := context.Background()
	own := accessToken(t, A.ClientCredentials(ctx, app))
	family := revTokens(t, revExchange(ctx, A, app, own, oauth.TokenTypeAccessToken, ""))
	revWantActive(t, ctx, B, app, true, map[string]string{"family JWT": family.AccessToken})
	if r := A.Revoke(ctx, app, family.RefreshToken); r.Status != http.StatusOK {
		t.Fatalf("revoke: %v", r)
	}
	acked := time.Now()
	propagation(t, "a refresh family revoked on A", acked, revocationBound, []*node{B},
		func(ctx context.Context, n *node) (bool, string) {
			in, r := n.Introspect(ctx, app, family.AccessToken)
			if r.Err != nil || r.Status != http.StatusOK {
				return false, r.String()
			}
			return !in.Active, "the family's JWT is active"
		})
}
