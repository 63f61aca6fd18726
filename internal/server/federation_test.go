package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/keybridge/sts/internal/federation"
	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/internal/token"
	"github.com/keybridge/sts/oauth"
)

// The conformance tests of federation: tokens of trusted issuers (an
// upstream on loopback that signs tokens shaped as Kubernetes and GitHub
// Actions issue them) exchanged under CEL rules, each refusal the issue
// names, and identity chaining between two servers.

// fedOptions keeps upstream fetches short, so that the tests of a slow or
// dead upstream finish fast.
var fedOptions = ststest.Options{Federation: federation.Options{FetchTimeout: 700 * time.Millisecond, ConnectTimeout: 300 * time.Millisecond}}

// fedClient is a client that may obtain tokens for the backend.
func fedClient(s *ststest.STS) *ststest.Client {
	return s.CreateClient(func(c *store.Client) { c.Audiences = []string{backend}; c.Scopes = []string{"deploy", "read"} })
}

func claimsOf(t *testing.T, jwt string) map[string]any {
	t.Helper()
	_, c, err := token.ParseUnverified(jwt)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// refusedWith asserts an RFC 8693 §2.2.2 refusal whose description holds
// want, and that it was audited as refused.
func refusedWith(t *testing.T, s *ststest.STS, r *ststest.Response, code, want string) {
	t.Helper()
	if r.Status != http.StatusBadRequest || r.Error() != code {
		t.Fatalf("got %d %s; want 400 %s", r.Status, r.Body, code)
	}
	desc, _ := r.JSON()["error_description"].(string)
	if !strings.Contains(desc, want) {
		t.Fatalf("error_description %q does not say %q", desc, want)
	}
	for _, rec := range s.Audit() {
		if rec.Decision == store.DecisionRefused && strings.Contains(rec.Detail, want) {
			return
		}
	}
	t.Fatalf("no refused audit record says %q", want)
}

func TestFederationKubernetesServiceAccount(t *testing.T) {
	s := ststest.Start(t, fedOptions)
	k8s := ststest.StartIdP(t)
	c := fedClient(s)
	s.Trust(k8s, "k8s", s.URL, []string{c.ID}, func(ti *store.TrustedIssuer) {
		ti.Policy = store.Policy{
			Condition: `subject["kubernetes.io"].namespace == "prod" && subject["kubernetes.io"].serviceaccount.name == "deployer"`,
			Claims:    map[string]string{"k8s_namespace": `subject["kubernetes.io"].namespace`},
		}
	})
	r := s.Exchange(c, k8s.Sign(k8s.Kubernetes("prod", "deployer", s.URL)), oauth.TokenTypeJWT, url.Values{"audience": {backend}})
	if r.Status != http.StatusOK {
		t.Fatalf("exchange: %d %s", r.Status, r.Body)
	}
	got := claimsOf(t, r.Token().AccessToken)
	if got["sub"] != "k8s:system:serviceaccount:prod:deployer" {
		t.Fatalf("sub %v", got["sub"])
	}
	subID, _ := got["sub_id"].(map[string]any)
	if subID["format"] != "iss_sub" || subID["iss"] != k8s.URL || subID["sub"] != "system:serviceaccount:prod:deployer" {
		t.Fatalf("sub_id %v: it must name the issuer that vouched", got["sub_id"])
	}
	if got["k8s_namespace"] != "prod" {
		t.Fatalf("claim rule: %v", got["k8s_namespace"])
	}
	if act, _ := got["act"].(map[string]any); act["sub"] != c.ID {
		t.Fatalf("act %v: the client acts for the workload", got["act"])
	}
	if r.Token().RefreshToken != "" {
		t.Fatal("a refresh token was issued for an upstream subject")
	}
	// Another namespace, or another service account: the condition is false.
	r = s.Exchange(c, k8s.Sign(k8s.Kubernetes("dev", "deployer", s.URL)), oauth.TokenTypeJWT, url.Values{"audience": {backend}})
	refusedWith(t, s, r, "invalid_request", `the condition of issuer "k8s" is not met`)
	r = s.Exchange(c, k8s.Sign(k8s.Kubernetes("prod", "intruder", s.URL)), oauth.TokenTypeJWT, url.Values{"audience": {backend}})
	refusedWith(t, s, r, "invalid_request", `the condition of issuer "k8s" is not met`)
}

func TestFederationGitHubActions(t *testing.T) {
	s := ststest.Start(t, fedOptions)
	gh := ststest.StartIdP(t)
	c := fedClient(s)
	s.Trust(gh, "github", "https://github.com/keybridge", []string{c.ID}, func(ti *store.TrustedIssuer) {
		ti.Policy = store.Policy{
			Condition: `subject.repository == "keybridge/sts" && subject.ref == "refs/heads/main"`,
			Subject:   `subject.repository`,
			Scope:     `subject.environment == "production" ? ["deploy", "read"] : ["read"]`,
			Claims:    map[string]string{"workflow": `subject.job_workflow_ref`},
		}
	})
	tok := gh.Sign(gh.GitHubActions("keybridge/sts", "refs/heads/main", "https://github.com/keybridge"))
	r := s.Exchange(c, tok, oauth.TokenTypeIDToken, url.Values{"audience": {backend}})
	if r.Status != http.StatusOK {
		t.Fatalf("exchange: %d %s", r.Status, r.Body)
	}
	got := claimsOf(t, r.Token().AccessToken)
	if got["sub"] != "github:keybridge/sts" || got["scope"] != "deploy read" || got["workflow"] != "keybridge/sts/.github/workflows/deploy.yml@refs/heads/main" {
		t.Fatalf("issued %v", got)
	}
	// A pull request's branch is not main.
	r = s.Exchange(c, gh.Sign(gh.GitHubActions("keybridge/sts", "refs/heads/feature", "https://github.com/keybridge")), oauth.TokenTypeIDToken, url.Values{"audience": {backend}})
	refusedWith(t, s, r, "invalid_request", `the condition of issuer "github" is not met`)
	// Nor is another repository of the same owner.
	r = s.Exchange(c, gh.Sign(gh.GitHubActions("keybridge/other", "refs/heads/main", "https://github.com/keybridge")), oauth.TokenTypeIDToken, url.Values{"audience": {backend}})
	refusedWith(t, s, r, "invalid_request", `the condition of issuer "github" is not met`)
}

// Two issuers' equal sub values never become the same issued subject.
func TestFederationSubjectsOfIssuersStayApart(t *testing.T) {
	s := ststest.Start(t, fedOptions)
	a, b := ststest.StartIdP(t), ststest.StartIdP(t)
	c := fedClient(s)
	s.Trust(a, "corp", s.URL, []string{c.ID}, nil)
	s.Trust(b, "partner", s.URL, []string{"*"}, nil)
	subs := map[string]bool{}
	for _, p := range []*ststest.IdP{a, b} {
		r := s.Exchange(c, p.Sign(p.Claims("alice", s.URL)), oauth.TokenTypeJWT, url.Values{"audience": {backend}})
		if r.Status != http.StatusOK {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		subs[claimsOf(t, r.Token().AccessToken)["sub"].(string)] = true
	}
	if !subs["corp:alice"] || !subs["partner:alice"] {
		t.Fatalf("issued subjects %v", subs)
	}
}

func TestFederationRefusals(t *testing.T) {
	s := ststest.Start(t, fedOptions)
	p := ststest.StartIdP(t)
	c := fedClient(s)
	other := fedClient(s)
	s.Trust(p, "corp", s.URL, []string{c.ID}, func(ti *store.TrustedIssuer) {
		ti.MaxAge = 2 * time.Hour
		ti.Policy.Condition = `subject.sub != "mallory"`
	})
	off := ststest.StartIdP(t)
	s.Trust(off, "off", s.URL, []string{c.ID}, func(ti *store.TrustedIssuer) { ti.Enabled = false })
	stranger := ststest.StartIdP(t)
	good := func() map[string]any { return p.Claims("alice", s.URL) }
	with := func(edit func(map[string]any)) string {
		cl := good()
		edit(cl)
		return p.Sign(cl)
	}
	hs256 := func() string {
		// HS256 keyed with the issuer's public key material.
		k := p.Key()
		pub := k.Public()
		mat, err := pub.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		return p.SignWith(jose.JSONWebKey{Key: mat, KeyID: pub.KeyID, Algorithm: "HS256"}, "JWT", good())
	}
	none := func() string {
		h := `{"alg":"none","typ":"JWT","kid":"` + p.Key().KeyID + `"}`
		parts := strings.Split(p.Sign(good()), ".")
		return b64([]byte(h)) + "." + parts[1] + "."
	}
	now := time.Now()
	for _, tt := range []struct {
		name, token, want string
		client            *ststest.Client
	}{
		{"unknown issuer", stranger.Sign(stranger.Claims("alice", s.URL)), "is not trusted", c},
		{"wrong iss", with(func(m map[string]any) { m["iss"] = p.URL + "/other" }), "is not trusted", c},
		{"disabled issuer", off.Sign(off.Claims("alice", s.URL)), "is disabled", c},
		{"client not allowed", p.Sign(good()), "may not present tokens of issuer", other},
		{"alg none", none(), p.URL, c},
		{"HS256 with the JWKS key material", hs256(), p.URL, c},
		{"unknown kid", p.SignWith(jose.JSONWebKey{Key: p.Key().Key, KeyID: "nope", Algorithm: "ES256"}, "JWT", good()), p.URL, c},
		{"expired", with(func(m map[string]any) { m["exp"] = now.Add(-time.Hour).Unix() }), p.URL, c},
		{"nbf in the future", with(func(m map[string]any) { m["nbf"] = now.Add(time.Hour).Unix() }), p.URL, c},
		{"too old", with(func(m map[string]any) {
			m["iat"] = now.Add(-3 * time.Hour).Unix()
			m["exp"] = now.Add(time.Hour).Unix()
		}), p.URL, c},
		{"wrong aud", with(func(m map[string]any) { m["aud"] = "https://elsewhere.example" }), p.URL, c},
		{"missing sub", with(func(m map[string]any) { delete(m, "sub") }), p.URL, c},
		{"oversized", with(func(m map[string]any) { m["pad"] = strings.Repeat("x", 40<<10) }), "", c},
		{"condition false", with(func(m map[string]any) { m["sub"] = "mallory" }), `the condition of issuer "corp" is not met`, c},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := s.Exchange(tt.client, tt.token, oauth.TokenTypeJWT, url.Values{"audience": {backend}})
			if tt.want == "" {
				if r.Status != http.StatusBadRequest || r.Error() != "invalid_request" {
					t.Fatalf("got %d %s", r.Status, r.Body)
				}
				return
			}
			refusedWith(t, s, r, "invalid_request", tt.want)
		})
	}
	// And the good token passes, so the refusals above are each for their
	// own reason.
	if r := s.Exchange(c, p.Sign(good()), oauth.TokenTypeJWT, url.Values{"audience": {backend}}); r.Status != http.StatusOK {
		t.Fatalf("good token: %d %s", r.Status, r.Body)
	}
}

func TestFederationUpstreamFailures(t *testing.T) {
	s := ststest.Start(t, fedOptions)
	c := fedClient(s)
	elsewhere := ststest.StartIdP(t)
	for _, tt := range []struct {
		name  string
		serve func(p *ststest.IdP) http.HandlerFunc
		want  string
	}{
		{"slow", func(*ststest.IdP) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
				case <-time.After(5 * time.Second):
				}
			}
		}, "could not be fetched"},
		{"oversized", func(*ststest.IdP) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				w.Write([]byte(`{"issuer":"` + strings.Repeat("x", 2<<20) + `"}`))
			}
		}, "could not be fetched"},
		{"invalid JSON", func(*ststest.IdP) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"issuer": [`)) }
		}, "could not be fetched"},
		{"redirect elsewhere", func(*ststest.IdP) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, strings.Replace(elsewhere.URL, "127.0.0.1", "localhost", 1)+r.URL.Path, http.StatusFound)
			}
		}, "could not be fetched"},
		{"discovery for another issuer", func(*ststest.IdP) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte(`{"issuer":"` + elsewhere.URL + `","jwks_uri":"` + elsewhere.URL + `/keys"}`))
			}
		}, "could not be fetched"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := ststest.StartIdP(t)
			s.Trust(p, "up-"+strings.ReplaceAll(tt.name, " ", "-"), s.URL, []string{c.ID}, nil)
			p.Serve(tt.serve(p))
			start := time.Now()
			r := s.Exchange(c, p.Sign(p.Claims("alice", s.URL)), oauth.TokenTypeJWT, url.Values{"audience": {backend}})
			if el := time.Since(start); el > 3*time.Second {
				t.Fatalf("the request waited %v for the upstream", el)
			}
			refusedWith(t, s, r, "invalid_request", p.URL)
		})
	}
	t.Run("down", func(t *testing.T) {
		p := ststest.StartIdP(t)
		s.Trust(p, "gone", s.URL, []string{c.ID}, nil)
		tok := p.Sign(p.Claims("alice", s.URL))
		p.HTTP.Close()
		refusedWith(t, s, s.Exchange(c, tok, oauth.TokenTypeJWT, url.Values{"audience": {backend}}), "invalid_request", p.URL)
	})
	t.Run("down after keys were fetched: the last good keys serve", func(t *testing.T) {
		p := ststest.StartIdP(t)
		s.Trust(p, "flaky", s.URL, []string{c.ID}, nil)
		if r := s.Exchange(c, p.Sign(p.Claims("alice", s.URL)), oauth.TokenTypeJWT, url.Values{"audience": {backend}}); r.Status != http.StatusOK {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		tok := p.Sign(p.Claims("bob", s.URL))
		p.HTTP.Close()
		if r := s.Exchange(c, tok, oauth.TokenTypeJWT, url.Values{"audience": {backend}}); r.Status != http.StatusOK {
			t.Fatalf("with the upstream down: %d %s", r.Status, r.Body)
		}
	})
}

// Once the keys are cached, exchanges make no upstream request; a token
// signed with a key the upstream rotated in is accepted after one fetch.
func TestFederationCachedKeysAndRotation(t *testing.T) {
	s := ststest.Start(t, fedOptions)
	p := ststest.StartIdP(t)
	c := fedClient(s)
	s.Trust(p, "corp", s.URL, []string{c.ID}, nil)
	exchange := func(sub string) {
		t.Helper()
		if r := s.Exchange(c, p.Sign(p.Claims(sub, s.URL)), oauth.TokenTypeJWT, url.Values{"audience": {backend}}); r.Status != http.StatusOK {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
	}
	exchange("alice")
	before := p.Fetches.Load()
	for i := 0; i < 50; i++ {
		exchange("alice")
	}
	if n := p.Fetches.Load() - before; n != 0 {
		t.Fatalf("%d upstream requests while the keys were cached", n)
	}
	p.Rotate()
	p.Retire()
	exchange("bob")
	if n := p.Fetches.Load() - before; n < 1 || n > 2 {
		t.Fatalf("%d upstream requests for a rotation; want the keys fetched once", n)
	}
}

func TestFederationDelegation(t *testing.T) {
	s := ststest.Start(t, fedOptions)
	p := ststest.StartIdP(t)
	c, other := fedClient(s), fedClient(s)
	s.Trust(p, "corp", s.URL, []string{"*"}, nil)
	// may_act names who may act for the subject: the first client, not
	// the other.
	cl := p.Claims("alice", s.URL)
	cl["may_act"] = map[string]any{"sub": c.ID}
	tok := p.Sign(cl)
	if r := s.Exchange(c, tok, oauth.TokenTypeJWT, url.Values{"audience": {backend}}); r.Status != http.StatusOK {
		t.Fatalf("the client may_act names: %d %s", r.Status, r.Body)
	}
	refusedWith(t, s, s.Exchange(other, tok, oauth.TokenTypeJWT, url.Values{"audience": {backend}}), "invalid_request", "may_act")
	// An upstream act chain is kept, its layers naming the upstream, and
	// the client joins it.
	cl = p.Claims("alice", s.URL)
	cl["act"] = map[string]any{"sub": "gateway", "act": map[string]any{"sub": "edge"}}
	r := s.Exchange(c, p.Sign(cl), oauth.TokenTypeJWT, url.Values{"audience": {backend}})
	if r.Status != http.StatusOK {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	act, _ := claimsOf(t, r.Token().AccessToken)["act"].(map[string]any)
	inner, _ := act["act"].(map[string]any)
	if act["sub"] != c.ID || inner["sub"] != "gateway" || inner["iss"] != p.URL {
		t.Fatalf("act %v", act)
	}
	// The cap on act chains (default 5) holds for upstream chains too.
	deep := map[string]any{"sub": "hop5"}
	for i := 4; i >= 1; i-- {
		deep = map[string]any{"sub": "hop", "act": deep}
	}
	cl = p.Claims("alice", s.URL)
	cl["act"] = deep
	refusedWith(t, s, s.Exchange(c, p.Sign(cl), oauth.TokenTypeJWT, url.Values{"audience": {backend}}), "invalid_request", "delegation chain is too long")
}

// Server A issues a JWT authorization grant for B by token exchange; B,
// trusting A, accepts it with the JWT bearer grant (RFC 7523 §2.1) and
// issues its own token under its own rules.
func TestIdentityChaining(t *testing.T) {
	a := ststest.Start(t, fedOptions)
	b := ststest.Start(t, fedOptions)
	// At A: the client may obtain tokens for B.
	ca := a.CreateClient(func(c *store.Client) { c.Audiences = []string{b.URL}; c.AllowImpersonation = true })
	// At B: the same workload's client may use the JWT bearer grant.
	cb := b.CreateClient(func(c *store.Client) {
		c.GrantTypes = []string{oauth.GrantTypeJWTBearer}
		c.Audiences = []string{backend}
		c.AllowImpersonation = true
	})
	b.Trust(&ststest.IdP{URL: a.URL}, "domain-a", b.URL, []string{cb.ID}, func(ti *store.TrustedIssuer) {
		ti.TokenTypes = []string{oauth.TokenTypeJWT}
		ti.Policy.Condition = `subject.client_id == "` + ca.ID + `"`
	})
	alice := mintFor(t, a, ca, "alice")
	r := a.Exchange(ca, alice, oauth.TokenTypeJWT, url.Values{"audience": {b.URL}, "requested_token_type": {oauth.TokenTypeJWT}})
	if r.Status != http.StatusOK || r.Token().IssuedTokenType != oauth.TokenTypeJWT {
		t.Fatalf("A: %d %s", r.Status, r.Body)
	}
	grant := r.Token().AccessToken
	form := url.Values{"grant_type": {oauth.GrantTypeJWTBearer}, "assertion": {grant}}
	r = b.PostForm(server.TokenPath, cb, form)
	if r.Status != http.StatusOK {
		t.Fatalf("B: %d %s", r.Status, r.Body)
	}
	got := claimsOf(t, r.Token().AccessToken)
	if got["iss"] != b.URL || got["sub"] != "domain-a:alice" || got["aud"] != backend {
		t.Fatalf("B issued %v", got)
	}
	if sid, _ := got["sub_id"].(map[string]any); sid["iss"] != a.URL || sid["sub"] != "alice" {
		t.Fatalf("sub_id %v", got["sub_id"])
	}
	// Each assertion is used once.
	refusedWith(t, b, b.PostForm(server.TokenPath, cb, form), "invalid_grant", "already used")
	// B's metadata lists the grant.
	var md oauth.Metadata
	if err := jsonGet(b.URL+"/.well-known/oauth-authorization-server", &md); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(md.GrantTypesSupported, oauth.GrantTypeJWTBearer) {
		t.Fatalf("grant_types_supported %v", md.GrantTypesSupported)
	}
	// A token of A for another audience is no grant at B.
	other := mintFor(t, a, ca, "bob")
	refusedWith(t, b, b.PostForm(server.TokenPath, cb, url.Values{"grant_type": {oauth.GrantTypeJWTBearer}, "assertion": {other}}), "invalid_grant", a.URL)
}

// A second server as an RFC 7662 upstream: its opaque tokens are
// exchanged at the first through introspection.
func TestFederationIntrospection(t *testing.T) {
	up := ststest.Start(t, fedOptions)
	s := ststest.Start(t, fedOptions)
	// The upstream's client whose opaque token will be exchanged, and the
	// resource-server credentials s uses to introspect.
	holder := up.CreateClient(func(c *store.Client) { c.TokenFormat = store.TokenFormatOpaque; c.Audiences = []string{s.URL} })
	rs := up.CreateClient(func(c *store.Client) { c.IntrospectAny = true })
	c := fedClient(s)
	s.Trust(&ststest.IdP{URL: up.URL}, "up", s.URL, []string{c.ID}, func(ti *store.TrustedIssuer) {
		ti.TokenTypes = []string{oauth.TokenTypeAccessToken}
		ti.IntrospectionEndpoint = up.URL + server.IntrospectPath
		ti.IntrospectionClientID, ti.IntrospectionClientSecret = rs.ID, rs.Secret
	})
	opaque := up.ClientCredentials(holder, nil)
	if !strings.HasPrefix(opaque, token.PrefixAccess) {
		t.Fatalf("not opaque: %s", opaque)
	}
	r := s.Exchange(c, opaque, oauth.TokenTypeAccessToken, url.Values{"audience": {backend}})
	if r.Status != http.StatusOK {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	if got := claimsOf(t, r.Token().AccessToken); got["sub"] != "up:"+holder.ID {
		t.Fatalf("sub %v", got["sub"])
	}
	// Revoked upstream: inactive, refused (the active answer is cached
	// briefly, so a new token is revoked and presented).
	opaque2 := up.ClientCredentials(holder, nil)
	if rr := up.PostForm(server.RevokePath, holder, url.Values{"token": {opaque2}}); rr.Status != http.StatusOK {
		t.Fatalf("revoke: %d %s", rr.Status, rr.Body)
	}
	r = s.Exchange(c, opaque2, oauth.TokenTypeAccessToken, url.Values{"audience": {backend}})
	if r.Status != http.StatusBadRequest || r.Error() != "invalid_request" {
		t.Fatalf("revoked upstream token: %d %s", r.Status, r.Body)
	}
}

func TestExplain(t *testing.T) {
	s := ststest.Start(t, fedOptions)
	k8s := ststest.StartIdP(t)
	c := fedClient(s)
	s.Trust(k8s, "k8s", s.URL, []string{c.ID}, func(ti *store.TrustedIssuer) {
		ti.Policy.Condition = `subject["kubernetes.io"].namespace == "prod"`
	})
	form := url.Values{
		"grant_type": {oauth.GrantTypeTokenExchange}, "subject_token_type": {oauth.TokenTypeJWT},
		"subject_token": {k8s.Sign(k8s.Kubernetes("prod", "deployer", s.URL))}, "audience": {backend},
	}
	x := s.Server.Token.Explain(context.Background(), c.Client, form)
	if !x.Granted || x.Issued["sub"] != "k8s:system:serviceaccount:prod:deployer" {
		t.Fatalf("explain: %+v", x)
	}
	var sawKey, sawRule bool
	for _, st := range x.Steps {
		sawKey = sawKey || strings.Contains(st.Detail, k8s.Key().KeyID)
		sawRule = sawRule || (st.Rule != "" && st.Value == true)
	}
	if !sawKey || !sawRule {
		t.Fatalf("the steps name neither the key nor the rule's value: %+v", x.Steps)
	}
	form.Set("subject_token", k8s.Sign(k8s.Kubernetes("dev", "deployer", s.URL)))
	x = s.Server.Token.Explain(context.Background(), c.Client, form)
	if x.Granted || x.Error == nil || !strings.Contains(x.Error.Description, "condition") {
		t.Fatalf("explain of a refusal: %+v", x)
	}
	// Explaining issues nothing and audits nothing.
	for _, rec := range s.Audit() {
		if rec.Action != "" && strings.HasPrefix(rec.Action, "token") {
			t.Fatalf("explain left an audit record: %+v", rec)
		}
	}
}

// mintFor signs a token of s about sub issued to client c.
func mintFor(t *testing.T, s *ststest.STS, c *ststest.Client, sub string) string {
	return mint(t, s, func(cl *token.Claims) { cl.Subject, cl.ClientID = sub, c.ID })
}

func jsonGet(u string, v any) error {
	resp, err := http.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// A client's own rules apply to every exchange of that client, whoever
// the issuer; an evaluation error refuses the request and is audited with
// the reason.
func TestFederationClientRules(t *testing.T) {
	s := ststest.Start(t, fedOptions)
	p := ststest.StartIdP(t)
	c := s.CreateClient(func(c *store.Client) {
		c.Audiences = []string{backend}
		c.Scopes = []string{"deploy", "read"}
		c.Policy = store.Policy{
			Condition: `subject_issuer != "` + p.URL + `" || subject.department == "ops"`,
			Scope:     `["read"]`,
			Claims:    map[string]string{"dept": `subject_issuer == "` + p.URL + `" ? subject.department : "local"`},
		}
	})
	s.Trust(p, "corp", s.URL, []string{c.ID}, nil)
	cl := p.Claims("alice", s.URL)
	cl["department"] = "ops"
	r := s.Exchange(c, p.Sign(cl), oauth.TokenTypeJWT, url.Values{"audience": {backend}})
	if r.Status != http.StatusOK {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	if got := claimsOf(t, r.Token().AccessToken); got["dept"] != "ops" || got["scope"] != "read" {
		t.Fatalf("issued %v", got)
	}
	cl["department"] = "sales"
	refusedWith(t, s, s.Exchange(c, p.Sign(cl), oauth.TokenTypeJWT, url.Values{"audience": {backend}}),
		"invalid_request", `the condition of client "`+c.ID+`" is not met`)
	// No department claim at all: the condition cannot be evaluated.
	delete(cl, "department")
	r = s.Exchange(c, p.Sign(cl), oauth.TokenTypeJWT, url.Values{"audience": {backend}})
	refusedWith(t, s, r, "invalid_request", `the rules of client "`+c.ID+`" could not be evaluated`)
	var found bool
	for _, rec := range s.Audit() {
		found = found || (rec.Decision == store.DecisionRefused && strings.Contains(rec.Detail, "department"))
	}
	if !found {
		t.Fatal("the audit record does not give the evaluation error's reason")
	}
	// The client's rules also hold for this server's own tokens.
	own := mint(t, s, func(cl *token.Claims) { cl.Subject, cl.ClientID, cl.Scope = "bob", c.ID, "deploy read" })
	r = s.Exchange(c, own, oauth.TokenTypeJWT, url.Values{"audience": {backend}})
	if r.Status != http.StatusOK {
		t.Fatalf("own token: %d %s", r.Status, r.Body)
	}
	if got := claimsOf(t, r.Token().AccessToken); got["dept"] != "local" || got["scope"] != "read" {
		t.Fatalf("issued %v", got)
	}
}

// A JWT bearer assertion must carry a jti (it is used once) and be
// short-lived (its jti is stored until it expires).
func TestJWTBearerAssertionRules(t *testing.T) {
	s := ststest.Start(t, fedOptions)
	p := ststest.StartIdP(t)
	c := s.CreateClient(func(c *store.Client) {
		c.GrantTypes = []string{oauth.GrantTypeJWTBearer}
		c.Audiences = []string{backend}
	})
	s.Trust(p, "corp", s.URL, []string{c.ID}, func(ti *store.TrustedIssuer) { ti.TokenTypes = []string{oauth.TokenTypeJWT} })
	grant := func(cl map[string]any) *ststest.Response {
		return s.PostForm(server.TokenPath, c, url.Values{"grant_type": {oauth.GrantTypeJWTBearer}, "assertion": {p.Sign(cl)}})
	}
	cl := p.Claims("alice", s.URL)
	if r := grant(cl); r.Status != http.StatusOK {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	refusedWith(t, s, grant(cl), "invalid_grant", "already used")
	cl = p.Claims("alice", s.URL)
	delete(cl, "jti")
	refusedWith(t, s, grant(cl), "invalid_grant", "a jti claim is required")
	cl = p.Claims("alice", s.URL)
	cl["exp"] = time.Now().Add(48 * time.Hour).Unix()
	refusedWith(t, s, grant(cl), "invalid_grant", "short-lived")
	// An assertion for another audience (the issuer's usual one is not
	// enough: it must name this server).
	cl = p.Claims("alice", "https://elsewhere.example")
	refusedWith(t, s, grant(cl), "invalid_grant", p.URL)
	// A long iss is cut short in the answer and the audit record.
	cl = p.Claims("alice", s.URL)
	cl["iss"] = "https://" + strings.Repeat("x", 5000)
	r := grant(cl)
	if d, _ := r.JSON()["error_description"].(string); r.Error() != "invalid_grant" || len(d) > 400 {
		t.Fatalf("%d %d bytes: %.300s", r.Status, len(d), r.Body)
	}
}

// An opaque token names no issuer: it is sent for introspection only when
// exactly one trusted issuer could have issued it, never to a third party
// that could replay it (review of issue 11).
func TestFederationOpaqueTokenGoesToOneIssuerOnly(t *testing.T) {
	up := ststest.Start(t, fedOptions)
	s := ststest.Start(t, fedOptions)
	holder := up.CreateClient(func(c *store.Client) { c.TokenFormat = store.TokenFormatOpaque; c.Audiences = []string{s.URL} })
	rs := up.CreateClient(func(c *store.Client) { c.IntrospectAny = true })
	c := fedClient(s)
	s.Trust(&ststest.IdP{URL: up.URL}, "up", s.URL, []string{c.ID}, func(ti *store.TrustedIssuer) {
		ti.TokenTypes = []string{oauth.TokenTypeAccessToken}
		ti.IntrospectionEndpoint = up.URL + server.IntrospectPath
		ti.IntrospectionClientID, ti.IntrospectionClientSecret = rs.ID, rs.Secret
	})
	// A second introspecting issuer for the same client, which counts
	// what it is sent.
	spy := ststest.StartIdP(t)
	var sent atomic.Int64
	spy.Serve(func(w http.ResponseWriter, r *http.Request) {
		sent.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"active":false}`))
	})
	s.Trust(spy, "aaa", s.URL, []string{c.ID}, func(ti *store.TrustedIssuer) {
		ti.TokenTypes = []string{oauth.TokenTypeAccessToken}
		ti.IntrospectionEndpoint = spy.URL + "/introspect"
		ti.IntrospectionClientID, ti.IntrospectionClientSecret = "x", "y"
	})
	opaque := up.ClientCredentials(holder, nil)
	refusedWith(t, s, s.Exchange(c, opaque, oauth.TokenTypeAccessToken, url.Values{"audience": {backend}}),
		"invalid_request", "only when one trusted issuer with introspection serves this client")
	if n := sent.Load(); n != 0 {
		t.Fatalf("the opaque token was sent to another issuer %d times", n)
	}
	// With the spy gone, the one issuer left gets it.
	s.UpdateTrust("aaa", func(ti *store.TrustedIssuer) { ti.Clients = []string{"someone-else"} })
	if r := s.Exchange(c, opaque, oauth.TokenTypeAccessToken, url.Values{"audience": {backend}}); r.Status != http.StatusOK {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	if n := sent.Load(); n != 0 {
		t.Fatalf("the spy got %d requests", n)
	}
}
