package server_test

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/oauth"
)

// ccBody is a client_credentials request body.
const ccBody = "grant_type=client_credentials"

// postToken posts a raw form body to the token endpoint with an optional
// Authorization header.
func postToken(t *testing.T, s *ststest.STS, body, authorization string) *ststest.Response {
	t.Helper()
	req := newRequest(t, http.MethodPost, s.URL+server.TokenPath, body, "application/x-www-form-urlencoded")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	return s.Do(req)
}

// RFC 6749 §2.3.1: the client id and secret are form-url-encoded before
// base64 in the Basic header, so the server decodes them after base64
// (SPEC §7, spring-authorization-server #985, #1814).
func TestRFC6749_2_3_1_BasicFormURLEncoded(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	odd := []struct{ id, secret string }{
		{"rs%08", "long-secure-random-secret"},
		{"a+b", "se+cret"},
		{"urn:example:client:1", "pa:ss:word"},
		{"my client", "my secret with spaces"},
		{"ü-ñ/?&=#", "%zz%+:= ~!"},
	}
	for _, o := range odd {
		c := s.CreateClientSecret(o.secret, func(c *store.Client) { c.ID = o.id })
		t.Run(o.id, func(t *testing.T) {
			// Space as '+' (url.QueryEscape) and as %20 are both form encoding.
			plus := ststest.BasicAuth(c.ID, c.Secret)
			pct := "Basic " + base64.StdEncoding.EncodeToString([]byte(
				strings.ReplaceAll(url.QueryEscape(o.id), "+", "%20")+":"+strings.ReplaceAll(url.QueryEscape(o.secret), "+", "%20")))
			for _, h := range []string{plus, pct} {
				r := postToken(t, s, ccBody, h)
				if r.Status != http.StatusOK {
					t.Errorf("%s: %d %s", h, r.Status, r.Body)
					continue
				}
				_, claims := verifyWithJWKS(t, s, r.Token().AccessToken)
				if claims["client_id"] != o.id {
					t.Errorf("client_id %v, want %q", claims["client_id"], o.id)
				}
			}
		})
	}
	// Without the form encoding, '+' would read as a space and ':' would
	// split the id: such a header is refused, so the decoding above is
	// real.
	for _, o := range odd[1:3] {
		raw := "Basic " + base64.StdEncoding.EncodeToString([]byte(o.id+":"+o.secret))
		if r := postToken(t, s, ccBody, raw); r.Status != http.StatusUnauthorized {
			t.Errorf("%s unencoded: %d %s", o.id, r.Status, r.Body)
		}
	}
}

// RFC 6749 §2.3.1: client_secret_post, the credentials in the body.
func TestRFC6749_2_3_1_ClientSecretPost(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	c := s.CreateClientSecret("p%s+s: w", func(c *store.Client) { c.ID = "post client+%" })
	r := s.PostForm(server.TokenPath, nil, url.Values{
		"grant_type": {oauth.GrantTypeClientCredentials}, "client_id": {c.ID}, "client_secret": {c.Secret},
	})
	tr := wantOK(t, r)
	_, claims := verifyWithJWKS(t, s, tr.AccessToken)
	if claims["client_id"] != c.ID {
		t.Errorf("client_id %v", claims["client_id"])
	}
	r = s.PostForm(server.TokenPath, nil, url.Values{
		"grant_type": {oauth.GrantTypeClientCredentials}, "client_id": {c.ID}, "client_secret": {c.Secret + "x"},
	})
	wantError(t, r, http.StatusUnauthorized, oauth.ErrInvalidClient)
}

// RFC 6749 §2.3: a client MUST NOT use more than one authentication method
// in a request.
func TestRFC6749_2_3_OneAuthenticationMethod(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	c := s.CreateClient(nil)
	body := url.Values{"grant_type": {oauth.GrantTypeClientCredentials}, "client_id": {c.ID}, "client_secret": {c.Secret}}.Encode()
	r := postToken(t, s, body, ststest.BasicAuth(c.ID, c.Secret))
	wantError(t, r, http.StatusBadRequest, oauth.ErrInvalidRequest)
	// Each method alone works.
	wantOK(t, postToken(t, s, body, ""))
	wantOK(t, postToken(t, s, ccBody, ststest.BasicAuth(c.ID, c.Secret)))
}

// RFC 6749 §2.3.1: credentials MUST NOT be in the request URI; the query
// string is never read.
func TestRFC6749_2_3_1_NoCredentialsInQuery(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	c := s.CreateClient(nil)
	q := url.Values{"client_id": {c.ID}, "client_secret": {c.Secret}, "grant_type": {oauth.GrantTypeClientCredentials}}.Encode()
	req := newRequest(t, http.MethodPost, s.URL+server.TokenPath+"?"+q, ccBody, "application/x-www-form-urlencoded")
	wantError(t, s.Do(req), http.StatusUnauthorized, oauth.ErrInvalidClient)
	// Nor is grant_type read from the query.
	req = newRequest(t, http.MethodPost, s.URL+server.TokenPath+"?"+q, "", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", ststest.BasicAuth(c.ID, c.Secret))
	wantError(t, s.Do(req), http.StatusBadRequest, oauth.ErrInvalidRequest)
}

// RFC 6749 §3.1: parameters sent without a value MUST be treated as if
// they were omitted.
func TestRFC6749_3_1_EmptyParametersOmitted(t *testing.T) {
	w := newExchangeWorld(t, nil)
	auth := ststest.BasicAuth(w.rs.ID, w.rs.Secret)
	// scope= is no scope parameter, so the whole allowed scope is issued
	// and named in the response; an empty requested scope would not be.
	r := postToken(t, w.s, ccBody+"&scope=&audience=&resource=", auth)
	tr := wantOK(t, r)
	if tr.Scope != "api" {
		t.Errorf("scope %q: an empty scope was not treated as omitted", tr.Scope)
	}
	body := url.Values{
		"grant_type":         {oauth.GrantTypeTokenExchange},
		"subject_token":      {w.subject},
		"subject_token_type": {oauth.TokenTypeAccessToken},
	}.Encode() + "&actor_token=&actor_token_type=&requested_token_type=&scope=&client_id="
	tr = wantOK(t, postToken(t, w.s, body, auth))
	if tr.IssuedTokenType != oauth.TokenTypeJWT {
		t.Errorf("issued_token_type %q", tr.IssuedTokenType)
	}
	// A required parameter sent empty is missing.
	r = postToken(t, w.s, "grant_type=", auth)
	wantError(t, r, http.StatusBadRequest, oauth.ErrInvalidRequest)
}

// RFC 6749 §3.1: the server MUST ignore unrecognized request parameters.
func TestRFC6749_3_1_UnknownParametersIgnored(t *testing.T) {
	w := newExchangeWorld(t, nil)
	wantOK(t, w.exchange(url.Values{"foo": {"bar"}, "nonce": {"x"}, "response_type": {"code"}}))
	r := w.s.PostForm(server.TokenPath, w.rs, url.Values{"grant_type": {oauth.GrantTypeClientCredentials}, "x-custom": {"1"}})
	wantOK(t, r)
}

// RFC 6749 §3.2: the client MUST use POST at the token endpoint (and the
// introspection and revocation endpoints follow, RFC 7662 §2.1,
// RFC 7009 §2.1); other methods are 405 with Allow.
func TestRFC6749_3_2_PostOnly(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	c := s.CreateClient(nil)
	for _, path := range []string{server.TokenPath, server.IntrospectPath, server.RevokePath} {
		for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodPatch} {
			t.Run(m+" "+path, func(t *testing.T) {
				req := newRequest(t, m, s.URL+path+"?"+ccBody, ccBody, "application/x-www-form-urlencoded")
				req.Header.Set("Authorization", ststest.BasicAuth(c.ID, c.Secret))
				r := s.Do(req)
				wantError(t, r, http.StatusMethodNotAllowed, oauth.ErrInvalidRequest)
				if a := r.Header.Get("Allow"); a != http.MethodPost {
					t.Errorf("Allow %q", a)
				}
			})
		}
	}
}

// RFC 6749 §3.2: request parameters MUST NOT be included more than once
// (resource and audience may, RFC 8693 §2.1).
func TestRFC6749_3_2_RepeatedParameter(t *testing.T) {
	w := newExchangeWorld(t, nil)
	for _, p := range []string{"grant_type", "subject_token", "subject_token_type", "scope", "requested_token_type", "actor_token_type", "client_id", "client_secret", "refresh_token"} {
		t.Run(p, func(t *testing.T) {
			extra := url.Values{p: {"x", "y"}}
			if p == "grant_type" {
				extra[p] = []string{oauth.GrantTypeTokenExchange, oauth.GrantTypeTokenExchange}
			}
			r := w.exchange(extra)
			d := wantError(t, r, http.StatusBadRequest, oauth.ErrInvalidRequest)
			if !strings.Contains(d, p) {
				t.Errorf("description %q does not name %s", d, p)
			}
		})
	}
	// Even the same value twice is a repetition.
	r := postToken(t, w.s, ccBody+"&"+ccBody, ststest.BasicAuth(w.rs.ID, w.rs.Secret))
	wantError(t, r, http.StatusBadRequest, oauth.ErrInvalidRequest)
	wantOK(t, w.exchange(url.Values{"resource": {backend, backend}, "audience": {backend, backend}}))
}

// RFC 6749 §5.1 (and §5.2 by RFC 8693 §2.2.1's reference): token endpoint
// answers are application/json with Cache-Control: no-store and Pragma:
// no-cache, errors included.
func TestRFC6749_5_1_NoStoreHeaders(t *testing.T) {
	w := newExchangeWorld(t, nil)
	auth := ststest.BasicAuth(w.rs.ID, w.rs.Secret)
	tests := []struct {
		name   string
		do     func() *ststest.Response
		status int
	}{
		{"exchange", func() *ststest.Response { return w.exchange(nil) }, 200},
		{"client_credentials", func() *ststest.Response { return postToken(t, w.s, ccBody, auth) }, 200},
		{"invalid_request", func() *ststest.Response { return postToken(t, w.s, "", auth) }, 400},
		{"invalid_client", func() *ststest.Response { return postToken(t, w.s, ccBody, "Basic eDp5") }, 401},
		{"invalid_target", func() *ststest.Response { return w.exchange(url.Values{"audience": {"https://x.example"}}) }, 400},
		{"unsupported_grant_type", func() *ststest.Response { return postToken(t, w.s, "grant_type=password", auth) }, 400},
		{"405", func() *ststest.Response {
			return w.s.Do(newRequest(t, http.MethodGet, w.s.URL+server.TokenPath, "", ""))
		}, 405},
		{"413", func() *ststest.Response { return postToken(t, w.s, strings.Repeat("a", 70<<10), auth) }, 413},
		{"introspection", func() *ststest.Response {
			return w.s.PostForm(server.IntrospectPath, w.rs, url.Values{"token": {w.subject}})
		}, 200},
		{"introspection error", func() *ststest.Response { return w.s.PostForm(server.IntrospectPath, w.rs, nil) }, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.do()
			if r.Status != tt.status {
				t.Fatalf("status %d: %s", r.Status, r.Body)
			}
			if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q", cc)
			}
			if p := r.Header.Get("Pragma"); p != "no-cache" {
				t.Errorf("Pragma %q", p)
			}
			if ct := r.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if r.JSON() == nil {
				t.Errorf("body is not a JSON object: %s", r.Body)
			}
		})
	}
}

// RFC 6749 §5.2: each error code where it belongs, with its status;
// invalid_client is 401 with a Basic challenge when the client used Basic.
func TestRFC6749_5_2_ErrorCodes(t *testing.T) {
	w := newExchangeWorld(t, nil)
	ccOnly := w.s.CreateClient(func(c *store.Client) { c.GrantTypes = []string{oauth.GrantTypeClientCredentials} })
	auth := ststest.BasicAuth(w.rs.ID, w.rs.Secret)
	tests := []struct {
		name   string
		do     func() *ststest.Response
		status int
		code   oauth.ErrorCode
	}{
		{"no grant_type", func() *ststest.Response { return postToken(t, w.s, "scope=api", auth) }, 400, oauth.ErrInvalidRequest},
		{"wrong secret, Basic", func() *ststest.Response {
			return postToken(t, w.s, ccBody, ststest.BasicAuth(w.rs.ID, "wrong"))
		}, 401, oauth.ErrInvalidClient},
		{"wrong secret, post", func() *ststest.Response {
			return postToken(t, w.s, ccBody+"&client_id="+w.rs.ID+"&client_secret=wrong", "")
		}, 401, oauth.ErrInvalidClient},
		{"no credentials", func() *ststest.Response { return postToken(t, w.s, ccBody, "") }, 401, oauth.ErrInvalidClient},
		{"Bearer instead of Basic", func() *ststest.Response { return postToken(t, w.s, ccBody, "Bearer "+w.subject) }, 401, oauth.ErrInvalidClient},
		{"grant not allowed to the client", func() *ststest.Response {
			return w.s.Exchange(ccOnly, w.subject, oauth.TokenTypeAccessToken, nil)
		}, 400, oauth.ErrUnauthorizedClient},
		{"refresh grant not allowed", func() *ststest.Response {
			return postToken(t, w.s, "grant_type=refresh_token&refresh_token=sts_rt_x", auth)
		}, 400, oauth.ErrUnauthorizedClient},
		{"password grant", func() *ststest.Response {
			return postToken(t, w.s, "grant_type=password&username=u&password=p", auth)
		}, 400, oauth.ErrUnsupportedGrantType},
		{"authorization_code grant", func() *ststest.Response {
			return postToken(t, w.s, "grant_type=authorization_code&code=x", auth)
		}, 400, oauth.ErrUnsupportedGrantType},
		{"scope not allowed", func() *ststest.Response { return postToken(t, w.s, ccBody+"&scope=admin", auth) }, 400, oauth.ErrInvalidScope},
		{"malformed scope", func() *ststest.Response { return postToken(t, w.s, ccBody+"&scope=%22api%22", auth) }, 400, oauth.ErrInvalidScope},
		{"unknown refresh token", func() *ststest.Response {
			c := w.s.CreateClient(func(c *store.Client) { c.GrantTypes = []string{oauth.GrantTypeRefreshToken} })
			return postToken(t, w.s, "grant_type=refresh_token&refresh_token=sts_rt_x", ststest.BasicAuth(c.ID, c.Secret))
		}, 400, oauth.ErrInvalidGrant},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.do()
			wantError(t, r, tt.status, tt.code)
			ch := r.Header.Get("WWW-Authenticate")
			if tt.code == oauth.ErrInvalidClient {
				if !strings.HasPrefix(ch, `Basic realm="`) {
					t.Errorf("WWW-Authenticate %q", ch)
				}
			} else if ch != "" {
				t.Errorf("WWW-Authenticate %q on %s", ch, tt.code)
			}
		})
	}
}

// RFC 6749 §5.2 with SPEC §1: a failed client authentication never says
// which part of the credentials was wrong, nor the client's state.
func TestRFC6749_5_2_InvalidClientSameAnswer(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	good := s.CreateClient(nil)
	disabled := s.CreateClient(func(c *store.Client) { c.Status = store.ClientDisabled })
	pending := s.CreateClient(func(c *store.Client) { c.Status = store.ClientPending })
	cases := map[string]string{
		"unknown client": ststest.BasicAuth("no-such-client", good.Secret),
		"wrong secret":   ststest.BasicAuth(good.ID, good.Secret+"x"),
		"empty secret":   ststest.BasicAuth(good.ID, ""),
		"disabled":       ststest.BasicAuth(disabled.ID, disabled.Secret),
		"pending":        ststest.BasicAuth(pending.ID, pending.Secret),
		"not base64":     "Basic !!!",
		"no colon":       "Basic " + base64.StdEncoding.EncodeToString([]byte(good.ID)),
	}
	var first string
	for name, h := range cases {
		r := postToken(t, s, ccBody, h)
		d := wantError(t, r, http.StatusUnauthorized, oauth.ErrInvalidClient)
		if first == "" {
			first = string(r.Body)
		}
		if string(r.Body) != first {
			t.Errorf("%s: body %s differs from %s", name, r.Body, first)
		}
		for _, leak := range []string{"secret", "unknown", "disabled", "pending", "not found", good.ID} {
			if strings.Contains(strings.ToLower(d), leak) {
				t.Errorf("%s: description %q reveals %q", name, d, leak)
			}
		}
	}
	wantOK(t, postToken(t, s, ccBody, ststest.BasicAuth(good.ID, good.Secret)))
}

// RFC 6749 §4.4: client_credentials issues an access token for the client
// itself, with no refresh token (§4.4.3).
func TestRFC6749_4_4_ClientCredentials(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	c := s.CreateClient(func(c *store.Client) {
		c.Scopes = []string{"api", "admin"}
		c.GrantTypes = append(c.GrantTypes, oauth.GrantTypeRefreshToken)
	})
	r := s.PostForm(server.TokenPath, c, url.Values{"grant_type": {oauth.GrantTypeClientCredentials}, "scope": {"api"}})
	tr := wantOK(t, r)
	if tr.TokenType != oauth.TokenTypeBearer || tr.ExpiresIn <= 0 || tr.RefreshToken != "" || tr.Scope != "" {
		t.Errorf("response %s", r.Body)
	}
	_, claims := verifyWithJWKS(t, s, tr.AccessToken)
	if claims["sub"] != c.ID || claims["client_id"] != c.ID || claims["scope"] != "api" || claims["act"] != nil {
		t.Errorf("claims %v", claims)
	}
	// A client with no targets gets a token for this server only.
	if got := audOf(claims); len(got) != 1 || got[0] != s.URL {
		t.Errorf("aud %v", got)
	}
	// A client without the grant may not use it.
	x := s.CreateClient(func(c *store.Client) { c.GrantTypes = []string{oauth.GrantTypeTokenExchange} })
	r = s.PostForm(server.TokenPath, x, url.Values{"grant_type": {oauth.GrantTypeClientCredentials}})
	wantError(t, r, http.StatusBadRequest, oauth.ErrUnauthorizedClient)
}

// RFC 6749 §10.4 and RFC 9700 §4.14.2: refresh tokens rotate; a refresh
// token used twice is invalid_grant, and its whole family is revoked.
func TestRFC6749_10_4_RefreshTokenRotationReplay(t *testing.T) {
	w := newExchangeWorld(t, func(c *store.Client) {
		c.TokenFormat = store.TokenFormatOpaque
		c.GrantTypes = append(c.GrantTypes, oauth.GrantTypeRefreshToken)
	})
	refresh := func(rt string) *ststest.Response {
		return w.s.PostForm(server.TokenPath, w.rs, url.Values{"grant_type": {oauth.GrantTypeRefreshToken}, "refresh_token": {rt}})
	}
	first := wantOK(t, w.exchange(nil))
	second := wantOK(t, refresh(first.RefreshToken))
	if second.RefreshToken == "" || second.RefreshToken == first.RefreshToken {
		t.Fatalf("refresh token not rotated: %+v", second)
	}
	if in := introspect(t, w.s, w.rs, second.AccessToken); in["active"] != true {
		t.Fatalf("fresh access token inactive: %v", in)
	}
	// The replay.
	wantError(t, refresh(first.RefreshToken), http.StatusBadRequest, oauth.ErrInvalidGrant)
	// The family is revoked: the rotated refresh token and the access
	// tokens issued with the family are dead too.
	wantError(t, refresh(second.RefreshToken), http.StatusBadRequest, oauth.ErrInvalidGrant)
	for name, tok := range map[string]string{"second access": second.AccessToken, "first access": first.AccessToken, "second refresh": second.RefreshToken} {
		if in := introspect(t, w.s, w.rs, tok); in["active"] != false {
			t.Errorf("%s still active after replay: %v", name, in)
		}
	}
}
