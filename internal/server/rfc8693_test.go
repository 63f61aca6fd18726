package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/internal/token"
	"github.com/keybridge/sts/oauth"
)

// Helpers shared by the conformance tests of this package.

// mint signs a token with the server's current key. It starts from a valid
// access token for subject "alice" (scope "api", one hour left) addressed
// to the resource server rsResource, and lets edit change any claim, so a
// test can present exactly the token it needs.
func mint(t *testing.T, s *ststest.STS, edit func(*token.Claims)) string {
	t.Helper()
	now := time.Now()
	c := &token.Claims{
		Issuer:    s.URL,
		Subject:   "alice",
		Audience:  oauth.Audience{rsResource},
		Expiry:    now.Add(time.Hour).Unix(),
		IssuedAt:  now.Unix(),
		NotBefore: now.Unix(),
		ID:        token.NewID(),
		Scope:     "api",
	}
	if edit != nil {
		edit(c)
	}
	tok, err := s.Server.Tokens.SignJWT(c, oauth.JWTTypeAccessToken)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// mustJSON marshals v.
func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newRequest builds a request with a raw body and content type.
func newRequest(t *testing.T, method, u, body, contentType string) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return req
}

// wantOK fails the test unless r is a successful token response.
func wantOK(t *testing.T, r *ststest.Response) oauth.TokenResponse {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	tr := r.Token()
	if tr.AccessToken == "" {
		t.Fatalf("no access_token: %s", r.Body)
	}
	return tr
}

// wantError checks an OAuth error response (RFC 6749 §5.2) and returns its
// description, which must not be empty.
func wantError(t *testing.T, r *ststest.Response, status int, code oauth.ErrorCode) string {
	t.Helper()
	if r.Status != status || r.Error() != string(code) {
		t.Errorf("got %d %q, want %d %q: %s", r.Status, r.Error(), status, code, r.Body)
	}
	d, _ := r.JSON()["error_description"].(string)
	if d == "" {
		t.Errorf("empty error_description: %s", r.Body)
	}
	return d
}

// audOf returns the aud claim as a list, whether it was a string or an array.
func audOf(claims map[string]any) []string {
	switch a := claims["aud"].(type) {
	case string:
		return []string{a}
	case []any:
		out := make([]string, 0, len(a))
		for _, x := range a {
			s, _ := x.(string)
			out = append(out, s)
		}
		return out
	}
	return nil
}

// actOf decodes an act (or may_act) member of claims or of an
// introspection response.
func actOf(t *testing.T, v any) *oauth.Actor {
	t.Helper()
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var a oauth.Actor
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatal(err)
	}
	return &a
}

// chainSubjects lists the sub of each actor, most recent first.
func chainSubjects(a *oauth.Actor) []string {
	var out []string
	for _, x := range a.Chain() {
		out = append(out, x.Subject)
	}
	return out
}

// introspect asks the server about tok as client c and returns the body.
func introspect(t *testing.T, s *ststest.STS, c *ststest.Client, tok string) map[string]any {
	t.Helper()
	r := s.PostForm(server.IntrospectPath, c, url.Values{"token": {tok}})
	if r.Status != http.StatusOK {
		t.Fatalf("introspect: %d %s", r.Status, r.Body)
	}
	return r.JSON()
}

// exchangeWorld is the usual cast: a user client whose client_credentials
// token, for the resource server rsResource, is the subject token, and the
// client of that resource server, allowed to exchange it for the backend.
type exchangeWorld struct {
	s       *ststest.STS
	user    *ststest.Client
	rs      *ststest.Client
	subject string
}

func newExchangeWorld(t *testing.T, rs func(*store.Client)) *exchangeWorld {
	t.Helper()
	s := ststest.Start(t, ststest.Options{})
	w := &exchangeWorld{s: s}
	w.user = s.CreateClient(func(c *store.Client) {
		c.Scopes = []string{"api", "admin"}
		c.Audiences = []string{rsResource}
	})
	w.rs = s.CreateClient(func(c *store.Client) {
		c.Audiences = []string{backend}
		c.Resources = []string{rsResource}
		c.Scopes = []string{"api"}
		if rs != nil {
			rs(c)
		}
	})
	w.subject = s.ClientCredentials(w.user, nil)
	return w
}

func (w *exchangeWorld) exchange(extra url.Values) *ststest.Response {
	return w.s.Exchange(w.rs, w.subject, oauth.TokenTypeAccessToken, extra)
}

// RFC 8693 §2.1: subject_token and subject_token_type are REQUIRED;
// actor_token_type is REQUIRED when actor_token is present and MUST NOT be
// included otherwise.
func TestRFC8693_2_1_RequiredParameters(t *testing.T) {
	w := newExchangeWorld(t, nil)
	actor := w.s.ClientCredentials(w.rs, nil)
	base := func() url.Values {
		return url.Values{
			"grant_type":         {oauth.GrantTypeTokenExchange},
			"subject_token":      {w.subject},
			"subject_token_type": {oauth.TokenTypeAccessToken},
		}
	}
	tests := []struct {
		name   string
		edit   func(url.Values)
		wantOK bool
		param  string // named in the description
	}{
		{"complete", func(url.Values) {}, true, ""},
		{"complete with actor", func(f url.Values) {
			f.Set("actor_token", actor)
			f.Set("actor_token_type", oauth.TokenTypeAccessToken)
		}, true, ""},
		{"no subject_token", func(f url.Values) { f.Del("subject_token") }, false, "subject_token"},
		{"no subject_token_type", func(f url.Values) { f.Del("subject_token_type") }, false, "subject_token_type"},
		{"actor_token without actor_token_type", func(f url.Values) { f.Set("actor_token", actor) }, false, "actor_token_type"},
		{"actor_token_type without actor_token", func(f url.Values) { f.Set("actor_token_type", oauth.TokenTypeAccessToken) }, false, "actor_token_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := base()
			tt.edit(f)
			r := w.s.PostForm(server.TokenPath, w.rs, f)
			if tt.wantOK {
				wantOK(t, r)
				return
			}
			d := wantError(t, r, http.StatusBadRequest, oauth.ErrInvalidRequest)
			if !strings.Contains(d, tt.param) {
				t.Errorf("description %q does not name %s", d, tt.param)
			}
		})
	}
}

// RFC 8693 §2.1: resource and audience may each appear several times; the
// issued token is for all of them (SPEC §7: never dropped).
func TestRFC8693_2_1_SeveralResourcesAndAudiences(t *testing.T) {
	const (
		a = "https://a.example.com/api"
		b = "https://b.example.com/api"
		c = "urn:example:service-c"
		d = "https://d.example.com/api"
	)
	w := newExchangeWorld(t, func(cl *store.Client) { cl.Audiences = []string{a, b, c, d} })
	tests := []struct {
		name  string
		extra url.Values
		want  []string
	}{
		{"two resources and an audience", url.Values{"resource": {a, b}, "audience": {c}}, []string{a, b, c}},
		{"two audiences", url.Values{"audience": {c, d}}, []string{c, d}},
		{"one resource", url.Values{"resource": {d}}, []string{d}},
		{"same value as resource and audience", url.Values{"resource": {a}, "audience": {a}}, []string{a}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := wantOK(t, w.exchange(tt.extra))
			_, claims := verifyWithJWKS(t, w.s, tr.AccessToken)
			got := audOf(claims)
			slices.Sort(got)
			want := slices.Clone(tt.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("aud %v, want %v", got, want)
			}
		})
	}
	// A client allowed several targets must name one: the server does not
	// pick for it.
	r := w.exchange(nil)
	wantError(t, r, http.StatusBadRequest, oauth.ErrInvalidTarget)
}

// RFC 8693 §2.1: resource is an absolute URI without a fragment
// (RFC 8707 §2); anything else is invalid_target.
func TestRFC8693_2_1_ResourceAbsoluteURIWithoutFragment(t *testing.T) {
	w := newExchangeWorld(t, func(c *store.Client) {
		// Even a value the client is allowed must be refused when it is
		// not a valid resource.
		c.Audiences = []string{backend, backend + "#frag", "/api", "backend.example.com/api"}
	})
	for _, res := range []string{backend + "#frag", backend + "#", "/api", "backend.example.com/api", "https://back end.example.com/%zz"} {
		t.Run(res, func(t *testing.T) {
			r := w.exchange(url.Values{"resource": {res}})
			wantError(t, r, http.StatusBadRequest, oauth.ErrInvalidTarget)
		})
	}
	tr := wantOK(t, w.exchange(url.Values{"resource": {backend}}))
	_, claims := verifyWithJWKS(t, w.s, tr.AccessToken)
	if got := audOf(claims); !slices.Equal(got, []string{backend}) {
		t.Errorf("aud %v", got)
	}
}

// RFC 8693 §2.2.1: the response carries access_token, issued_token_type,
// token_type and expires_in.
func TestRFC8693_2_2_1_SuccessResponse(t *testing.T) {
	w := newExchangeWorld(t, nil)
	r := w.exchange(url.Values{"resource": {backend}})
	tr := wantOK(t, r)
	if tr.IssuedTokenType != oauth.TokenTypeJWT {
		t.Errorf("issued_token_type %q", tr.IssuedTokenType)
	}
	if tr.TokenType != oauth.TokenTypeBearer {
		t.Errorf("token_type %q", tr.TokenType)
	}
	if tr.ExpiresIn < 3590 || tr.ExpiresIn > 3600 {
		t.Errorf("expires_in %d, want the hour of an access token", tr.ExpiresIn)
	}
	if tr.RefreshToken != "" {
		t.Errorf("refresh_token issued to a client without the refresh grant")
	}
	for _, k := range []string{"access_token", "issued_token_type", "token_type", "expires_in"} {
		if _, ok := r.JSON()[k]; !ok {
			t.Errorf("member %s missing: %s", k, r.Body)
		}
	}
	verifyWithJWKS(t, w.s, tr.AccessToken)
}

// RFC 8693 §2.2.1: token_type is N_A when the issued token is not an access
// token, as with requested_token_type refresh_token (which needs a client
// allowed the refresh grant).
func TestRFC8693_2_2_1_TokenTypeNAForRefreshToken(t *testing.T) {
	w := newExchangeWorld(t, func(c *store.Client) {
		c.GrantTypes = append(c.GrantTypes, oauth.GrantTypeRefreshToken)
	})
	r := w.exchange(url.Values{"requested_token_type": {oauth.TokenTypeRefreshToken}})
	tr := wantOK(t, r)
	if tr.TokenType != oauth.TokenTypeNA || tr.IssuedTokenType != oauth.TokenTypeRefreshToken {
		t.Errorf("token_type %q issued_token_type %q", tr.TokenType, tr.IssuedTokenType)
	}
	if !strings.HasPrefix(tr.AccessToken, token.PrefixRefresh) || tr.RefreshToken != "" || tr.ExpiresIn <= 0 {
		t.Errorf("response %s", r.Body)
	}
	// The issued refresh token works with the refresh grant.
	r = w.s.PostForm(server.TokenPath, w.rs, url.Values{"grant_type": {oauth.GrantTypeRefreshToken}, "refresh_token": {tr.AccessToken}})
	if got := wantOK(t, r); got.TokenType != oauth.TokenTypeBearer {
		t.Errorf("refreshed token_type %q", got.TokenType)
	}

	// A client without the refresh grant cannot ask for one.
	plain := w.s.CreateClient(func(c *store.Client) { c.Audiences = []string{backend}; c.Scopes = []string{"api"} })
	r = w.s.Exchange(plain, w.subject, oauth.TokenTypeAccessToken, url.Values{"requested_token_type": {oauth.TokenTypeRefreshToken}})
	wantError(t, r, http.StatusBadRequest, oauth.ErrInvalidRequest)
}

// RFC 8693 §2.2.1: scope is in the response when the issued scope differs
// from the requested one (RFC 6749 §5.1), and only then.
func TestRFC8693_2_2_1_ScopeWhenDifferent(t *testing.T) {
	w := newExchangeWorld(t, func(c *store.Client) { c.Scopes = []string{"api", "admin"} })
	tests := []struct {
		name      string
		scope     []string // nil: no scope parameter
		wantScope string   // "" means the member is absent
		wantClaim string
	}{
		{"omitted", nil, "api admin", "api admin"},
		{"equal", []string{"api"}, "", "api"},
		{"all of it", []string{"api admin"}, "", "api admin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			extra := url.Values{}
			if tt.scope != nil {
				extra["scope"] = tt.scope
			}
			r := w.exchange(extra)
			tr := wantOK(t, r)
			_, has := r.JSON()["scope"]
			if has != (tt.wantScope != "") || tr.Scope != tt.wantScope {
				t.Errorf("scope member %v %q, want %q: %s", has, tr.Scope, tt.wantScope, r.Body)
			}
			_, claims := verifyWithJWKS(t, w.s, tr.AccessToken)
			if claims["scope"] != tt.wantClaim {
				t.Errorf("scope claim %v, want %q", claims["scope"], tt.wantClaim)
			}
		})
	}
}

// RFC 8693 §2.2.1: a refresh_token may accompany the issued token; this
// server gives one to clients allowed the refresh grant, and only to them.
func TestRFC8693_2_2_1_RefreshTokenForRefreshClients(t *testing.T) {
	w := newExchangeWorld(t, nil)
	withRefresh := w.s.CreateClient(func(c *store.Client) {
		c.Audiences, c.Resources = []string{backend}, []string{rsResource}
		c.GrantTypes = append(c.GrantTypes, oauth.GrantTypeRefreshToken)
	})
	tr := wantOK(t, w.s.Exchange(withRefresh, w.subject, oauth.TokenTypeAccessToken, nil))
	if !strings.HasPrefix(tr.RefreshToken, token.PrefixRefresh) {
		t.Errorf("refresh_token %q", tr.RefreshToken)
	}
	if tr := wantOK(t, w.exchange(nil)); tr.RefreshToken != "" {
		t.Errorf("refresh_token given to a client without the refresh grant")
	}
}

// RFC 8693 §2.2.2: an invalid subject or actor token is invalid_request.
func TestRFC8693_2_2_2_InvalidSubjectOrActorToken(t *testing.T) {
	w := newExchangeWorld(t, nil)
	actor := w.s.ClientCredentials(w.rs, nil)
	bad := []string{"garbage", "a.b.c", token.PrefixAccess + "unknown", w.subject + "x"}
	for _, tok := range bad {
		t.Run("subject "+tok[:min(len(tok), 12)], func(t *testing.T) {
			r := w.s.Exchange(w.rs, tok, oauth.TokenTypeAccessToken, nil)
			d := wantError(t, r, http.StatusBadRequest, oauth.ErrInvalidRequest)
			if !strings.Contains(d, "subject_token") {
				t.Errorf("description %q", d)
			}
		})
		t.Run("actor "+tok[:min(len(tok), 12)], func(t *testing.T) {
			r := w.exchange(url.Values{"actor_token": {tok}, "actor_token_type": {oauth.TokenTypeAccessToken}})
			d := wantError(t, r, http.StatusBadRequest, oauth.ErrInvalidRequest)
			if !strings.Contains(d, "actor_token") {
				t.Errorf("description %q", d)
			}
		})
	}
	// The same request with good tokens succeeds.
	wantOK(t, w.exchange(url.Values{"actor_token": {actor}, "actor_token_type": {oauth.TokenTypeAccessToken}}))
}

// RFC 8693 §2.2.2: an audience or resource the client may not obtain is
// invalid_target.
func TestRFC8693_2_2_2_InvalidTarget(t *testing.T) {
	w := newExchangeWorld(t, nil)
	for _, p := range []string{"audience", "resource"} {
		t.Run(p, func(t *testing.T) {
			r := w.exchange(url.Values{p: {"https://other.example.com/api"}})
			wantError(t, r, http.StatusBadRequest, oauth.ErrInvalidTarget)
			r = w.exchange(url.Values{p: {backend, "https://other.example.com/api"}})
			wantError(t, r, http.StatusBadRequest, oauth.ErrInvalidTarget)
			wantOK(t, w.exchange(url.Values{p: {backend}}))
		})
	}
}

// RFC 8693 §4.1: with an actor token the issued token's act names the
// actor, with the actor token's own act chain nested inside it and the
// subject token's chain inside that. Without impersonation the actor token
// must be the calling client's own token about itself (issue 8, finding 4:
// a token about another party let a client name that party as the actor).
func TestRFC8693_4_1_ActFromActorToken(t *testing.T) {
	w := newExchangeWorld(t, nil)
	withActor := func(tok string) url.Values {
		return url.Values{"actor_token": {tok}, "actor_token_type": {oauth.TokenTypeAccessToken}}
	}
	// An actor token issued to another client is refused.
	other := w.s.ClientCredentials(w.s.CreateClient(nil), nil)
	d := wantError(t, w.exchange(withActor(other)), http.StatusBadRequest, oauth.ErrInvalidRequest)
	if !strings.Contains(d, "calling client") {
		t.Errorf("description %q", d)
	}
	// So is a token issued to the client about another party.
	about := mint(t, w.s, func(c *token.Claims) { c.Subject, c.ClientID = "agent-7", w.rs.ID })
	d = wantError(t, w.exchange(withActor(about)), http.StatusBadRequest, oauth.ErrInvalidRequest)
	if !strings.Contains(d, "subject is another party") {
		t.Errorf("description %q", d)
	}
	// The client's own token about itself, which records that agent-7
	// acts for it; the subject token records that gateway acts for alice.
	own := mint(t, w.s, func(c *token.Claims) {
		c.Subject, c.ClientID = w.rs.ID, w.rs.ID
		c.Act = &oauth.Actor{Subject: "agent-7"}
	})
	subject := mint(t, w.s, func(c *token.Claims) {
		c.Act = &oauth.Actor{Subject: "gateway", ClientID: "gw-client"}
	})
	tr := wantOK(t, w.s.Exchange(w.rs, subject, oauth.TokenTypeAccessToken, withActor(own)))
	_, claims := verifyWithJWKS(t, w.s, tr.AccessToken)
	if claims["sub"] != "alice" {
		t.Errorf("sub %v", claims["sub"])
	}
	act := actOf(t, claims["act"])
	if got := chainSubjects(act); !slices.Equal(got, []string{w.rs.ID, "agent-7", "gateway"}) || act.Actor.Actor.ClientID != "gw-client" {
		t.Errorf("act %v, want %s acting, agent-7 and gateway nested", claims["act"], w.rs.ID)
	}
	// A client allowed to impersonate may name another actor.
	imp := w.s.CreateClient(func(c *store.Client) {
		c.Audiences, c.Resources, c.AllowImpersonation = []string{backend}, []string{rsResource}, true
	})
	agentTok := mint(t, w.s, func(c *token.Claims) { c.Subject, c.ClientID = "agent-7", imp.ID })
	tr = wantOK(t, w.s.Exchange(imp, subject, oauth.TokenTypeAccessToken, withActor(agentTok)))
	_, claims = verifyWithJWKS(t, w.s, tr.AccessToken)
	if act := actOf(t, claims["act"]); act == nil || act.Subject != "agent-7" || act.ClientID != imp.ID ||
		!slices.Equal(chainSubjects(act), []string{"agent-7", "gateway"}) {
		t.Errorf("act %v, want agent-7 (client %s) acting, gateway nested", claims["act"], imp.ID)
	}
}

// RFC 8693 §4.1: a chain of two exchanges yields a nested act, the most
// recent actor outermost.
func TestRFC8693_4_1_ActChainOfTwoExchanges(t *testing.T) {
	w := newExchangeWorld(t, nil)
	// The backend's own client exchanges the token it received onwards.
	second := w.s.CreateClient(func(c *store.Client) {
		c.Audiences, c.Resources = []string{"https://db.example.com"}, []string{backend}
	})
	first := wantOK(t, w.exchange(nil))
	_, c1 := verifyWithJWKS(t, w.s, first.AccessToken)
	if got := chainSubjects(actOf(t, c1["act"])); !slices.Equal(got, []string{w.rs.ID}) {
		t.Fatalf("first act %v", got)
	}
	tr := wantOK(t, w.s.Exchange(second, first.AccessToken, oauth.TokenTypeAccessToken, nil))
	_, c2 := verifyWithJWKS(t, w.s, tr.AccessToken)
	if c2["sub"] != w.user.ID {
		t.Errorf("sub %v", c2["sub"])
	}
	if got := chainSubjects(actOf(t, c2["act"])); !slices.Equal(got, []string{second.ID, w.rs.ID}) {
		t.Errorf("act chain %v, want [%s %s]", got, second.ID, w.rs.ID)
	}
}

// RFC 8693 §4.4: may_act on the subject token names who may act for the
// subject; anyone else is refused.
func TestRFC8693_4_4_MayAct(t *testing.T) {
	w := newExchangeWorld(t, nil)
	// A client that may impersonate can name another party as the actor.
	imp := w.s.CreateClient(func(c *store.Client) {
		c.Audiences, c.Resources, c.AllowImpersonation = []string{backend}, []string{rsResource}, true
	})
	withActor := func(tok string) url.Values {
		return url.Values{"actor_token": {tok}, "actor_token_type": {oauth.TokenTypeAccessToken}}
	}
	own := withActor(mint(t, w.s, func(c *token.Claims) { c.Subject, c.ClientID = w.rs.ID, w.rs.ID }))
	agent := withActor(mint(t, w.s, func(c *token.Claims) { c.Subject, c.ClientID = "agent-7", imp.ID }))
	tests := []struct {
		name    string
		client  *ststest.Client
		mayAct  string
		extra   url.Values
		wantAct string // "" means refused
	}{
		{"names someone else, no actor", w.rs, "mallory", nil, ""},
		{"names the client, no actor", w.rs, w.rs.ID, nil, w.rs.ID},
		{"names someone else, own actor token", w.rs, "mallory", own, ""},
		{"names the client, own actor token", w.rs, w.rs.ID, own, w.rs.ID},
		{"names the client, actor token of another", imp, imp.ID, agent, ""},
		{"names the actor", imp, "agent-7", agent, "agent-7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			subject := mint(t, w.s, func(c *token.Claims) { c.MayAct = &oauth.Actor{Subject: tt.mayAct} })
			r := w.s.Exchange(tt.client, subject, oauth.TokenTypeAccessToken, tt.extra)
			if tt.wantAct == "" {
				d := wantError(t, r, http.StatusBadRequest, oauth.ErrInvalidRequest)
				if !strings.Contains(d, "may_act") {
					t.Errorf("description %q", d)
				}
				return
			}
			tr := wantOK(t, r)
			_, claims := verifyWithJWKS(t, w.s, tr.AccessToken)
			if a := actOf(t, claims["act"]); a == nil || a.Subject != tt.wantAct {
				t.Errorf("act %v, want %s", claims["act"], tt.wantAct)
			}
		})
	}
}

// RFC 8693 §1.1: impersonation (a token for the subject with no trace of
// the client) only for clients allowed to impersonate; any other client
// appears in act.
func TestRFC8693_1_1_ImpersonationOnlyWhenAllowed(t *testing.T) {
	w := newExchangeWorld(t, nil)
	imp := w.s.CreateClient(func(c *store.Client) {
		c.Audiences, c.Resources = []string{backend}, []string{rsResource}
		c.AllowImpersonation = true
	})
	tr := wantOK(t, w.s.Exchange(imp, w.subject, oauth.TokenTypeAccessToken, nil))
	_, claims := verifyWithJWKS(t, w.s, tr.AccessToken)
	if claims["sub"] != w.user.ID || claims["act"] != nil {
		t.Errorf("impersonation: sub %v act %v", claims["sub"], claims["act"])
	}

	tr = wantOK(t, w.exchange(nil))
	_, claims = verifyWithJWKS(t, w.s, tr.AccessToken)
	if a := actOf(t, claims["act"]); claims["sub"] != w.user.ID || a == nil || a.Subject != w.rs.ID {
		t.Errorf("delegation: sub %v act %v", claims["sub"], claims["act"])
	}
}

// RFC 8693 §2.1 requested_token_type: jwt, access_token (JWT or opaque per
// client), refresh_token; anything else is refused naming what is supported
// (SPEC §7: never silently ignored).
func TestRFC8693_2_1_RequestedTokenType(t *testing.T) {
	w := newExchangeWorld(t, func(c *store.Client) {
		c.GrantTypes = append(c.GrantTypes, oauth.GrantTypeRefreshToken)
	})
	opaque := w.s.CreateClient(func(c *store.Client) {
		c.Audiences, c.Resources = []string{backend}, []string{rsResource}
		c.TokenFormat = store.TokenFormatOpaque
	})
	tests := []struct {
		name       string
		client     *ststest.Client
		requested  string
		wantIssued string
		wantFormat string // "jwt", "opaque" or "refresh"
	}{
		{"jwt", w.rs, oauth.TokenTypeJWT, oauth.TokenTypeJWT, "jwt"},
		{"access_token, JWT client", w.rs, oauth.TokenTypeAccessToken, oauth.TokenTypeAccessToken, "jwt"},
		{"access_token, opaque client", opaque, oauth.TokenTypeAccessToken, oauth.TokenTypeAccessToken, "opaque"},
		{"default, opaque client", opaque, "", oauth.TokenTypeAccessToken, "opaque"},
		{"jwt, opaque client", opaque, oauth.TokenTypeJWT, oauth.TokenTypeJWT, "jwt"},
		{"refresh_token", w.rs, oauth.TokenTypeRefreshToken, oauth.TokenTypeRefreshToken, "refresh"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			extra := url.Values{}
			if tt.requested != "" {
				extra.Set("requested_token_type", tt.requested)
			}
			tr := wantOK(t, w.s.Exchange(tt.client, w.subject, oauth.TokenTypeAccessToken, extra))
			if tr.IssuedTokenType != tt.wantIssued {
				t.Errorf("issued_token_type %q, want %q", tr.IssuedTokenType, tt.wantIssued)
			}
			switch tt.wantFormat {
			case "jwt":
				h, claims := verifyWithJWKS(t, w.s, tr.AccessToken)
				if h.ExtraHeaders["typ"] != oauth.JWTTypeAccessToken || claims["sub"] != w.user.ID {
					t.Errorf("header %v claims %v", h.ExtraHeaders, claims)
				}
			case "opaque":
				if !strings.HasPrefix(tr.AccessToken, token.PrefixAccess) || strings.Count(tr.AccessToken, ".") != 0 {
					t.Errorf("access_token %q is not an opaque token", tr.AccessToken)
				}
				in := introspect(t, w.s, opaque, tr.AccessToken)
				if in["active"] != true || in["sub"] != w.user.ID || in["client_id"] != opaque.ID {
					t.Errorf("introspection %v", in)
				}
			case "refresh":
				if !strings.HasPrefix(tr.AccessToken, token.PrefixRefresh) || tr.TokenType != oauth.TokenTypeNA {
					t.Errorf("response %+v", tr)
				}
			}
		})
	}
	for _, bad := range []string{oauth.TokenTypeIDToken, oauth.TokenTypeSAML2, "urn:example:token-type:custom", "jwt"} {
		t.Run("unsupported "+bad, func(t *testing.T) {
			r := w.exchange(url.Values{"requested_token_type": {bad}})
			d := wantError(t, r, http.StatusBadRequest, oauth.ErrInvalidRequest)
			for _, typ := range []string{oauth.TokenTypeAccessToken, oauth.TokenTypeJWT, oauth.TokenTypeRefreshToken} {
				if !strings.Contains(d, typ) {
					t.Errorf("description %q does not name %s", d, typ)
				}
			}
		})
	}
}

// RFC 8693 §3: token type URNs are compared exactly, but surrounding white
// space (sent by some clients) is tolerated.
func TestRFC8693_3_TokenTypeWhiteSpace(t *testing.T) {
	w := newExchangeWorld(t, nil)
	actor := w.s.ClientCredentials(w.rs, nil)
	r := w.s.PostForm(server.TokenPath, w.rs, url.Values{
		"grant_type":           {oauth.GrantTypeTokenExchange},
		"subject_token":        {w.subject},
		"subject_token_type":   {" " + oauth.TokenTypeAccessToken + " "},
		"actor_token":          {actor},
		"actor_token_type":     {"\t" + oauth.TokenTypeJWT + "\n"},
		"requested_token_type": {oauth.TokenTypeAccessToken + " "},
	})
	tr := wantOK(t, r)
	if tr.IssuedTokenType != oauth.TokenTypeAccessToken {
		t.Errorf("issued_token_type %q", tr.IssuedTokenType)
	}
	// Case is not folded: the URN is otherwise compared exactly.
	r = w.s.Exchange(w.rs, w.subject, strings.ToUpper(oauth.TokenTypeAccessToken), nil)
	wantError(t, r, http.StatusBadRequest, oauth.ErrInvalidRequest)
}

// RFC 8693 §2.1 with an opaque subject token and one from
// client_credentials (SPEC §7, zitadel/oidc #704): exchanged, no crash.
func TestRFC8693_2_1_OpaqueSubjectToken(t *testing.T) {
	w := newExchangeWorld(t, nil)
	user := w.s.CreateClient(func(c *store.Client) {
		c.TokenFormat = store.TokenFormatOpaque
		c.Scopes = []string{"api"}
		c.Audiences = []string{rsResource}
	})
	subject := w.s.ClientCredentials(user, nil)
	if !strings.HasPrefix(subject, token.PrefixAccess) {
		t.Fatalf("subject %q is not opaque", subject)
	}
	tr := wantOK(t, w.s.Exchange(w.rs, subject, oauth.TokenTypeAccessToken, nil))
	_, claims := verifyWithJWKS(t, w.s, tr.AccessToken)
	if claims["sub"] != user.ID || claims["scope"] != "api" {
		t.Errorf("claims %v", claims)
	}
	// Declared as a JWT, the opaque token is refused.
	r := w.s.Exchange(w.rs, subject, oauth.TokenTypeJWT, nil)
	wantError(t, r, http.StatusBadRequest, oauth.ErrInvalidRequest)
}

// RFC 8693 §2.2.1 with RFC 6749 §6 (SPEC §7, Keycloak #37016, #38222,
// #17008): a refresh token obtained by exchange keeps the exchanged
// audience and act when it is used.
func TestRFC8693_2_2_1_RefreshedTokenKeepsAudienceAndAct(t *testing.T) {
	const other = "https://other.example.com/api"
	w := newExchangeWorld(t, func(c *store.Client) {
		c.Audiences = []string{backend, other}
		c.GrantTypes = append(c.GrantTypes, oauth.GrantTypeRefreshToken)
	})
	tr := wantOK(t, w.exchange(url.Values{"resource": {backend}}))
	if tr.RefreshToken == "" {
		t.Fatalf("no refresh_token: %+v", tr)
	}
	refresh := func(rt string, extra url.Values) *ststest.Response {
		f := url.Values{"grant_type": {oauth.GrantTypeRefreshToken}, "refresh_token": {rt}}
		for k, v := range extra {
			f[k] = v
		}
		return w.s.PostForm(server.TokenPath, w.rs, f)
	}
	// The refresh token cannot be turned towards another audience.
	wantError(t, refresh(tr.RefreshToken, url.Values{"resource": {other}}), http.StatusBadRequest, oauth.ErrInvalidTarget)

	rt := tr.RefreshToken
	for i := range 2 {
		got := wantOK(t, refresh(rt, nil))
		_, claims := verifyWithJWKS(t, w.s, got.AccessToken)
		if a := audOf(claims); !slices.Equal(a, []string{backend}) {
			t.Errorf("refresh %d: aud %v, want [%s]", i, a, backend)
		}
		if a := actOf(t, claims["act"]); claims["sub"] != w.user.ID || a == nil || !slices.Equal(chainSubjects(a), []string{w.rs.ID}) {
			t.Errorf("refresh %d: sub %v act %v", i, claims["sub"], claims["act"])
		}
		if got.RefreshToken == "" || got.RefreshToken == rt {
			t.Fatalf("refresh %d: refresh token not rotated", i)
		}
		rt = got.RefreshToken
	}
}

// RFC 8693 §2.2.1 with SPEC §2 (no escalation of lifetime): the issued
// token never outlives the subject token.
func TestRFC8693_2_2_1_ExpiryNotBeyondSubject(t *testing.T) {
	w := newExchangeWorld(t, func(c *store.Client) {
		c.AccessTokenTTL = 2 * time.Hour
		c.GrantTypes = append(c.GrantTypes, oauth.GrantTypeRefreshToken)
	})
	subExp := time.Now().Add(10 * time.Minute).Unix()
	subject := mint(t, w.s, func(c *token.Claims) { c.Expiry = subExp })
	for _, requested := range []string{oauth.TokenTypeJWT, oauth.TokenTypeAccessToken, oauth.TokenTypeRefreshToken} {
		t.Run(requested, func(t *testing.T) {
			tr := wantOK(t, w.s.Exchange(w.rs, subject, oauth.TokenTypeAccessToken, url.Values{"requested_token_type": {requested}}))
			if tr.ExpiresIn > 600 || tr.ExpiresIn < 590 {
				t.Errorf("expires_in %d beyond the subject's 600 s", tr.ExpiresIn)
			}
			if requested == oauth.TokenTypeRefreshToken {
				in := introspect(t, w.s, w.rs, tr.AccessToken)
				if exp, _ := in["exp"].(float64); int64(exp) > subExp || exp == 0 {
					t.Errorf("refresh exp %v beyond %d", in["exp"], subExp)
				}
				return
			}
			_, claims := verifyWithJWKS(t, w.s, tr.AccessToken)
			if exp := int64(claims["exp"].(float64)); exp > subExp {
				t.Errorf("exp %d beyond the subject's %d", exp, subExp)
			}
			if tr.RefreshToken != "" {
				in := introspect(t, w.s, w.rs, tr.RefreshToken)
				if exp, _ := in["exp"].(float64); int64(exp) > subExp || exp == 0 {
					t.Errorf("refresh exp %v beyond %d", in["exp"], subExp)
				}
			}
		})
	}
	// Without a cap from the subject, the client's own lifetime applies
	// (so the assertions above could fail).
	long := mint(t, w.s, func(c *token.Claims) { c.Expiry = time.Now().Add(5 * time.Hour).Unix() })
	tr := wantOK(t, w.s.Exchange(w.rs, long, oauth.TokenTypeAccessToken, nil))
	if tr.ExpiresIn < 7190 || tr.ExpiresIn > 7200 {
		t.Errorf("expires_in %d, want the client's two hours", tr.ExpiresIn)
	}
}

// RFC 8693 §2.1 with a refresh token as subject (RFC 9700 §4.14.2): what is
// derived from a refresh token joins its family, so revoking the family
// revokes it too; the presented refresh token is spent and its successor
// is issued beside the access token; and the client, already the actor, is
// not nested again.
func TestRFC8693_2_1_RefreshTokenSubjectJoinsFamily(t *testing.T) {
	w := newExchangeWorld(t, func(c *store.Client) {
		c.TokenFormat = store.TokenFormatOpaque
		c.GrantTypes = append(c.GrantTypes, oauth.GrantTypeRefreshToken)
	})
	first := wantOK(t, w.exchange(nil))
	if first.RefreshToken == "" {
		t.Fatalf("no refresh token: %+v", first)
	}
	derived := wantOK(t, w.s.Exchange(w.rs, first.RefreshToken, oauth.TokenTypeRefreshToken, nil))
	if derived.RefreshToken == "" || derived.RefreshToken == first.RefreshToken {
		t.Errorf("the spent refresh token's successor was not issued beside the access token: %+v", derived)
	}
	in := introspect(t, w.s, w.rs, derived.AccessToken)
	if in["active"] != true {
		t.Fatalf("derived token inactive: %v", in)
	}
	if a := actOf(t, in["act"]); a == nil || !slices.Equal(chainSubjects(a), []string{w.rs.ID}) {
		t.Errorf("act %v: the client must appear once", in["act"])
	}
	wantRevoked200(t, revoke(w.s, w.rs, url.Values{"token": {derived.RefreshToken}}))
	for name, tok := range map[string]string{"derived access": derived.AccessToken, "first access": first.AccessToken} {
		if in := introspect(t, w.s, w.rs, tok); in["active"] != false {
			t.Errorf("%s, of a revoked refresh family, still active: %v", name, in)
		}
	}
}

// RFC 8693 §2.1, §2.2.2: a client exchanges only subject tokens issued to
// it or addressed to it — their audience names its client id or a resource
// it serves — unless an operator lets it exchange any (ExchangeAny). Any
// other is invalid_request, audited, and issues nothing (issue 8, finding 4:
// any client holding any token could exchange it).
func TestRFC8693_2_1_SubjectTokenAddressedToClient(t *testing.T) {
	w := newExchangeWorld(t, nil)
	stranger := w.s.CreateClient(func(c *store.Client) { c.Audiences = []string{backend} })
	exchangeAny := w.s.CreateClient(func(c *store.Client) { c.Audiences, c.ExchangeAny = []string{backend}, true })
	byID := w.s.CreateClient(func(c *store.Client) { c.Audiences = []string{backend} })
	forByID := w.s.ClientCredentials(w.s.CreateClient(func(c *store.Client) { c.Audiences = []string{byID.ID} }), nil)

	r := w.s.Exchange(stranger, w.subject, oauth.TokenTypeAccessToken, nil)
	d := wantError(t, r, http.StatusBadRequest, oauth.ErrInvalidRequest)
	if !strings.Contains(d, "not addressed to this client") {
		t.Errorf("description %q", d)
	}
	var refused bool
	for _, a := range w.s.Audit() {
		refused = refused || (a.Action == "token.exchange" && a.ClientID == stranger.ID &&
			a.Decision == store.DecisionRefused && a.Error == string(oauth.ErrInvalidRequest) && strings.Contains(a.Detail, "not addressed"))
	}
	if !refused {
		t.Error("the refusal was not audited")
	}
	// The audience's resource server, a client the audience names by id,
	// and an operator's exchange-any client may exchange it.
	for name, tc := range map[string]struct {
		c   *ststest.Client
		tok string
	}{"resource": {w.rs, w.subject}, "client id": {byID, forByID}, "exchange-any": {exchangeAny, w.subject}} {
		t.Run(name, func(t *testing.T) {
			tr := wantOK(t, w.s.Exchange(tc.c, tc.tok, oauth.TokenTypeAccessToken, nil))
			_, claims := verifyWithJWKS(t, w.s, tr.AccessToken)
			if a := actOf(t, claims["act"]); a == nil || a.Subject != tc.c.ID {
				t.Errorf("act %v, want %s", claims["act"], tc.c.ID)
			}
		})
	}
	// Its own token is always the client's to exchange.
	wantOK(t, w.s.Exchange(stranger, w.s.ClientCredentials(stranger, nil), oauth.TokenTypeAccessToken, nil))
}
