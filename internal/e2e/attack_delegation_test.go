package e2e_test

// Issue 8, findings 4 (act forgery, no audience binding of subject tokens)
// and 7 (introspection by any client), each attack replayed over HTTP
// against a real `sts serve` process on SQLite, with the clients set up by
// the operator CLI as the README does.

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
)

const rs08Resource = "https://rs08.example.com"

// exchangeForm sends a token exchange with any parameters.
func exchangeForm(ctx context.Context, n *node, cl credentials, subject string, extra url.Values) reply {
	form := url.Values{
		"grant_type":         {oauth.GrantTypeTokenExchange},
		"subject_token":      {subject},
		"subject_token_type": {oauth.TokenTypeAccessToken},
	}
	for k, v := range extra {
		form[k] = v
	}
	return n.post(ctx, server.TokenPath, cl, form)
}

// withActor names an actor token (and more parameters, in pairs).
func withActor(actor string, kv ...string) url.Values {
	v := url.Values{"actor_token": {actor}, "actor_token_type": {oauth.TokenTypeAccessToken}}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

// actClaim decodes a JWT's act claim (nil when absent).
func actClaim(t *testing.T, tok string) *oauth.Actor {
	t.Helper()
	_, claims, err := jwtParts(tok)
	if err != nil {
		t.Fatal(err)
	}
	raw, ok := claims["act"]
	if !ok {
		return nil
	}
	b, _ := json.Marshal(raw)
	var a oauth.Actor
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatal(err)
	}
	return &a
}

// chain lists an act chain as "sub/client_id" from the most recent actor.
func chain(a *oauth.Actor) string {
	var out []string
	for _, x := range a.Chain() {
		out = append(out, x.Subject+"/"+x.ClientID)
	}
	return strings.Join(out, " > ")
}

// wantRefused checks an invalid_request answer whose description says why.
func wantRefused(t *testing.T, what string, r reply, why string) {
	t.Helper()
	var e oauth.Error
	json.Unmarshal(r.Body, &e)
	if r.Err != nil || r.Status != http.StatusBadRequest || e.Code != oauth.ErrInvalidRequest || !strings.Contains(e.Description, why) {
		t.Errorf("%s: %v, want 400 invalid_request saying %q", what, r, why)
	}
}

// auditOf returns the audit records of a client, newest first, read from
// the server's database once the server's audit journal is applied to it
// (the server journals a record before it answers).
func auditOf(t *testing.T, c *cluster, clientID string) []store.AuditRecord {
	t.Helper()
	st := c.auditStore(t)
	recs, err := st.ListAudit(context.Background(), store.AuditFilter{ClientID: clientID, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// TestAttackActForgery replays finding 4. Client evil exchanged frontend's
// token (T1: sub=frontend, act.sub=evil), then exchanged rs08's token with
// actor_token=T1 and got a token claiming that frontend acts for rs08.
//
// Now evil cannot even obtain T1 — frontend's token is for rs08, not for
// evil — and, where the tokens are addressed to evil so that it may
// exchange them, an actor token about anyone but evil is refused, while
// evil's own actor token keeps its act chain, nested (RFC 8693 §4.1).
func TestAttackActForgery(t *testing.T) {
	c := newCluster(t, clusterOptions{SQLite: true}, "a")
	n := c.Nodes[0]
	ctx := t.Context()

	t.Run("AsReported", func(t *testing.T) {
		frontend := c.CreateClient("--name", "frontend", "--audience", rs08Resource, "--scope", "api")
		rs08 := c.CreateClient("--name", "rs08", "--client-id", "rs08-reported", "--audience", backendAud, "--scope", "api")
		evil := c.CreateClient("--name", "evil", "--client-id", "evil-reported", "--audience", backendAud, "--scope", "api")
		frontendTok := accessToken(t, n.ClientCredentials(ctx, frontend))
		rs08Tok := accessToken(t, n.ClientCredentials(ctx, rs08))

		r := exchangeForm(ctx, n, evil, frontendTok, nil)
		wantRefused(t, "evil exchanges frontend's token", r, "not addressed to this client")
		if r.Status == http.StatusOK {
			// The old behaviour: carry on to show the forged claim.
			t1 := accessToken(t, r)
			r2 := exchangeForm(ctx, n, evil, rs08Tok, withActor(t1))
			if r2.Status == http.StatusOK {
				t.Errorf("forged: %s", chain(actClaim(t, accessToken(t, r2))))
			}
		}
		wantRefused(t, "evil exchanges rs08's token", exchangeForm(ctx, n, evil, rs08Tok, nil), "not addressed to this client")
	})

	t.Run("TokensAddressedToEvil", func(t *testing.T) {
		// Both tokens are addressed to evil by its client id, so that
		// evil may exchange them; gw is a service evil's token is for.
		frontend := c.CreateClient("--name", "frontend", "--client-id", "frontend", "--audience", "evil", "--scope", "api")
		rs08 := c.CreateClient("--name", "rs08", "--client-id", "rs08", "--audience", backendAud, "--audience", "evil", "--scope", "api")
		evil := c.CreateClient("--name", "evil", "--client-id", "evil", "--audience", backendAud, "--audience", "gw", "--scope", "api")
		gw := c.CreateClient("--name", "gw", "--client-id", "gw", "--audience", "evil", "--scope", "api")
		frontendTok := accessToken(t, n.ClientCredentials(ctx, frontend))
		rs08Tok := accessToken(t, n.post(ctx, server.TokenPath, rs08, url.Values{"grant_type": {oauth.GrantTypeClientCredentials}, "audience": {"evil"}}))

		// T1: sub=frontend, act.sub=evil — a correct token.
		t1 := accessToken(t, exchangeForm(ctx, n, evil, frontendTok, url.Values{"audience": {backendAud}}))
		if _, claims, _ := jwtParts(t1); claims["sub"] != "frontend" || chain(actClaim(t, t1)) != "evil/evil" {
			t.Fatalf("T1: sub %v act %s", claims["sub"], chain(actClaim(t, t1)))
		}
		// The forgery: T1 as the actor token for rs08's token.
		r := exchangeForm(ctx, n, evil, rs08Tok, withActor(t1, "audience", backendAud))
		wantRefused(t, "actor_token about frontend", r, "actor_token must represent the calling client")
		if r.Status == http.StatusOK {
			t.Errorf("forged: sub rs08, act %s", chain(actClaim(t, accessToken(t, r))))
		}
		var audited bool
		for _, a := range auditOf(t, c, "evil") {
			audited = audited || (a.Action == "token.exchange" && a.Decision == store.DecisionRefused &&
				a.Error == string(oauth.ErrInvalidRequest) && a.JTI == "" && strings.Contains(a.Detail, "actor_token"))
		}
		if !audited {
			t.Error("the refused forgery is not in the audit log")
		}

		// evil's own actor token is accepted, and its act chain kept: gw
		// exchanged evil's token (T2: sub=evil, act.sub=gw), evil
		// exchanged T2 back for itself (T3: sub=evil, client evil, act.sub
		// gw), and acts for rs08 with T3.
		evilTok := accessToken(t, n.post(ctx, server.TokenPath, evil, url.Values{"grant_type": {oauth.GrantTypeClientCredentials}, "audience": {"gw"}}))
		t2 := accessToken(t, exchangeForm(ctx, n, gw, evilTok, nil))
		t3 := accessToken(t, exchangeForm(ctx, n, evil, t2, url.Values{"audience": {backendAud}}))
		if got := chain(actClaim(t, t3)); got != "gw/gw" {
			t.Fatalf("T3 act %s, want gw/gw", got)
		}
		got := accessToken(t, exchangeForm(ctx, n, evil, rs08Tok, withActor(t3, "audience", backendAud)))
		_, claims, _ := jwtParts(got)
		if a := chain(actClaim(t, got)); claims["sub"] != "rs08" || a != "evil/ > gw/gw" {
			t.Errorf("sub %v act %s, want rs08 with evil acting and gw nested", claims["sub"], a)
		}
	})
}

// TestAttackExchangeNotAddressed: any client holding any token could
// exchange it (finding 4, second part). Now only the client the token was
// issued to or addressed to — by client id or by a resource URI registered
// for it — may, or a client an operator lets exchange any token.
func TestAttackExchangeNotAddressed(t *testing.T) {
	c := newCluster(t, clusterOptions{SQLite: true}, "a")
	n := c.Nodes[0]
	ctx := t.Context()
	frontend := c.CreateClient("--name", "frontend", "--audience", rs08Resource, "--scope", "api")
	stranger := c.CreateClient("--name", "stranger", "--audience", backendAud, "--scope", "api")
	subject := accessToken(t, n.ClientCredentials(ctx, frontend))

	r := n.Exchange(ctx, stranger, subject, backendAud)
	wantRefused(t, "a client the token is not addressed to", r, "not addressed to this client")
	var audited bool
	for _, a := range auditOf(t, c, stranger.ID) {
		audited = audited || (a.Action == "token.exchange" && a.Decision == store.DecisionRefused && strings.Contains(a.Detail, "not addressed"))
	}
	if !audited {
		t.Error("the refusal is not in the audit log")
	}

	rs08 := c.CreateClient("--name", "rs08", "--resource", rs08Resource, "--audience", backendAud, "--scope", "api")
	broker := c.CreateClient("--name", "broker", "--exchange-any", "--audience", backendAud, "--scope", "api")
	for name, cl := range map[string]credentials{"the resource server it is for": rs08, "an exchange-any client": broker} {
		tok := accessToken(t, n.Exchange(ctx, cl, subject, backendAud))
		if a := actClaim(t, tok); a == nil || a.Subject != cl.ID {
			t.Errorf("%s: act %v, want %s", name, a, cl.ID)
		}
	}
}

// TestAttackIntrospectionScope replays finding 7: any authenticated client
// could introspect any access token, opaque included, and learn its sub,
// scope, aud and client_id. Now a client not entitled to the token gets
// exactly {"active":false} (RFC 7662 §2.2), audited as refused, while the
// resource server the token is for and an introspect-any client see it.
func TestAttackIntrospectionScope(t *testing.T) {
	c := newCluster(t, clusterOptions{SQLite: true}, "a")
	n := c.Nodes[0]
	ctx := t.Context()
	frontend := c.CreateClient("--name", "frontend", "--audience", rs08Resource, "--scope", "api")
	opaqueFrontend := c.CreateClient("--name", "frontend-opaque", "--audience", rs08Resource, "--scope", "api", "--token-format", "opaque")
	stranger := c.CreateClient("--name", "stranger", "--scope", "api")
	tokens := map[string]string{
		"jwt":    accessToken(t, n.ClientCredentials(ctx, frontend)),
		"opaque": accessToken(t, n.ClientCredentials(ctx, opaqueFrontend)),
	}
	for kind, tok := range tokens {
		_, r := n.Introspect(ctx, stranger, tok)
		if r.Err != nil || r.Status != http.StatusOK || string(r.Body) != "{\"active\":false}\n" {
			t.Errorf("%s token introspected by a stranger: %v, want exactly {\"active\":false}", kind, r)
		}
	}
	var refusals int
	for _, a := range auditOf(t, c, stranger.ID) {
		if a.Action == "token.introspect" && a.Decision == store.DecisionRefused && a.JTI != "" {
			refusals++
		}
	}
	if refusals != len(tokens) {
		t.Errorf("%d refused introspections audited, want %d", refusals, len(tokens))
	}

	rs08 := c.CreateClient("--name", "rs08", "--resource", rs08Resource, "--audience", backendAud, "--scope", "api")
	introspector := c.CreateClient("--name", "introspector", "--introspect-any")
	for _, cl := range []credentials{rs08, introspector} {
		for kind, tok := range tokens {
			ir, r := n.Introspect(ctx, cl, tok)
			if r.Err != nil || !ir.Active || ir.Scope != "api" || ir.Sub == "" || ir.ClientID == "" {
				t.Errorf("%s token introspected by %s: %v, want active with its claims", kind, cl.ID, r)
			}
		}
	}
}
