package stsclient_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keybridge/sts/oauth"
	"github.com/keybridge/sts/stsclient"
)

// otherSTS is a minimal RFC 8693 server that is not Key Bridge STS: a
// plain handler that authenticates one client the RFC 6749 §2.3.1 way and
// answers exchanges with a token derived from the request, so the tests can
// prove the client follows the RFCs rather than our server's habits.
type otherSTS struct {
	*httptest.Server
	id, secret string
	requests   atomic.Int64
	// answer, when set, writes the response instead of the default.
	answer func(w http.ResponseWriter, form url.Values) bool
	// gate, when set, is waited on before answering.
	gate chan struct{}

	mu       sync.Mutex
	lastForm url.Values
	lastAuth string
}

func newOtherSTS(t *testing.T, id, secret string) *otherSTS {
	t.Helper()
	o := &otherSTS{id: id, secret: secret}
	o.Server = httptest.NewServer(http.HandlerFunc(o.serve))
	t.Cleanup(o.Close)
	return o
}

func (o *otherSTS) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/oauth/token" {
		http.NotFound(w, r)
		return
	}
	o.requests.Add(1)
	if o.gate != nil {
		<-o.gate
	}
	if err := r.ParseForm(); err != nil || r.Method != http.MethodPost ||
		r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	o.mu.Lock()
	o.lastForm, o.lastAuth = r.PostForm, r.Header.Get("Authorization")
	o.mu.Unlock()
	// RFC 6749 §2.3.1: base64, split at the first colon, then
	// form-url-decode each half.
	id, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if h := r.Header.Get("Authorization"); h != "" {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(h, "Basic "))
		i := strings.IndexByte(string(raw), ':')
		if err != nil || i < 0 {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
			return
		}
		id, _ = url.QueryUnescape(string(raw[:i]))
		secret, _ = url.QueryUnescape(string(raw[i+1:]))
	}
	if id != o.id || secret != o.secret {
		w.Header().Set("WWW-Authenticate", `Basic realm="other"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client", "error_description": "bad credentials"})
		return
	}
	if o.answer != nil && o.answer(w, r.PostForm) {
		return
	}
	if r.PostForm.Get("grant_type") != oauth.GrantTypeTokenExchange || r.PostForm.Get("subject_token") == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token":      "exchanged(" + r.PostForm.Get("subject_token") + ")",
		"issued_token_type": oauth.TokenTypeAccessToken,
		"token_type":        "Bearer",
		"expires_in":        600,
		"custom":            "kept",
	})
}

func (o *otherSTS) last() (url.Values, string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lastForm, o.lastAuth
}

func (o *otherSTS) client() *stsclient.Client {
	return &stsclient.Client{TokenURL: o.URL + "/oauth/token", ClientID: o.id, ClientSecret: o.secret}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// TestRFC8693_2_1_EveryParameter sends every RFC 8693 parameter to a
// server that is not ours and checks each arrived as the RFC spells it,
// with repeated resource and audience parameters.
func TestRFC8693_2_1_EveryParameter(t *testing.T) {
	o := newOtherSTS(t, "svc", "pw")
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	c := o.client()
	c.Now = func() time.Time { return now }
	resp, err := c.Exchange(context.Background(), stsclient.ExchangeRequest{
		SubjectToken:       "subj",
		SubjectTokenType:   oauth.TokenTypeJWT,
		ActorToken:         "actor",
		ActorTokenType:     oauth.TokenTypeAccessToken,
		Resource:           []string{"https://a.example/api", "https://b.example/api"},
		Audience:           []string{"svc-a", "svc-b"},
		Scope:              []string{"read", "write"},
		RequestedTokenType: oauth.TokenTypeAccessToken,
		Extra:              url.Values{"vendor_option": {"x"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	form, _ := o.last()
	want := url.Values{
		"grant_type":           {oauth.GrantTypeTokenExchange},
		"subject_token":        {"subj"},
		"subject_token_type":   {oauth.TokenTypeJWT},
		"actor_token":          {"actor"},
		"actor_token_type":     {oauth.TokenTypeAccessToken},
		"resource":             {"https://a.example/api", "https://b.example/api"},
		"audience":             {"svc-a", "svc-b"},
		"scope":                {"read write"},
		"requested_token_type": {oauth.TokenTypeAccessToken},
		"vendor_option":        {"x"},
	}
	if !reflect.DeepEqual(form, want) {
		t.Errorf("form sent:\n got %v\nwant %v", form, want)
	}
	if resp.AccessToken != "exchanged(subj)" || resp.TokenType != "Bearer" || resp.IssuedTokenType != oauth.TokenTypeAccessToken {
		t.Errorf("response = %+v", resp.TokenResponse)
	}
	if resp.ExpiresIn != 600 || !resp.Expiry.Equal(now.Add(600*time.Second)) {
		t.Errorf("expiry = %v (expires_in %d), want %v", resp.Expiry, resp.ExpiresIn, now.Add(600*time.Second))
	}
	tok := resp.Token()
	if tok.Extra("custom") != "kept" || tok.Extra("issued_token_type") != oauth.TokenTypeAccessToken {
		t.Errorf("oauth2.Token extras: custom=%v issued_token_type=%v", tok.Extra("custom"), tok.Extra("issued_token_type"))
	}
}

// TestRFC6749_2_3_1_BasicEncoding checks that an id and secret holding
// '%', '+', ':' and a space are form-url-encoded before base64, and that
// a server decoding them per the RFC authenticates the client.
func TestRFC6749_2_3_1_BasicEncoding(t *testing.T) {
	id, secret := "svc:1+%41", "p%w+d: x"
	o := newOtherSTS(t, id, secret)
	if _, err := o.client().Exchange(context.Background(), stsclient.ExchangeRequest{
		SubjectToken: "s", SubjectTokenType: oauth.TokenTypeAccessToken,
	}); err != nil {
		t.Fatalf("server decoding per RFC 6749 §2.3.1 refused the client: %v", err)
	}
	_, auth := o.last()
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("svc%3A1%2B%2541:p%25w%2Bd%3A+x"))
	if auth != want {
		t.Errorf("Authorization = %q, want %q", auth, want)
	}
}

func TestClientSecretPost(t *testing.T) {
	o := newOtherSTS(t, "svc+1", "s:e%t")
	c := o.client()
	c.AuthMethod = oauth.AuthMethodClientSecretPost
	if _, err := c.Exchange(context.Background(), stsclient.ExchangeRequest{
		SubjectToken: "s", SubjectTokenType: oauth.TokenTypeAccessToken,
	}); err != nil {
		t.Fatal(err)
	}
	form, auth := o.last()
	if auth != "" || form.Get("client_id") != "svc+1" || form.Get("client_secret") != "s:e%t" {
		t.Errorf("client_secret_post: Authorization %q, client_id %q, client_secret %q", auth, form.Get("client_id"), form.Get("client_secret"))
	}
}

// TestRFC8693_2_2_2_Error checks that a refusal becomes an *Error with the
// code, description, status and headers, comparable with errors.Is.
func TestRFC8693_2_2_2_Error(t *testing.T) {
	o := newOtherSTS(t, "svc", "pw")
	o.answer = func(w http.ResponseWriter, form url.Values) bool {
		writeJSON(w, http.StatusBadRequest, map[string]string{
			"error": "invalid_target", "error_description": "no such backend", "error_uri": "https://doc.example/e",
		})
		return true
	}
	_, err := o.client().Exchange(context.Background(), stsclient.ExchangeRequest{
		SubjectToken: "s", SubjectTokenType: oauth.TokenTypeAccessToken, Resource: []string{"https://nope.example"},
	})
	var e *stsclient.Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %T %v, want *stsclient.Error", err, err)
	}
	if e.StatusCode != 400 || e.Code != oauth.ErrInvalidTarget || e.Description != "no such backend" || e.URI != "https://doc.example/e" {
		t.Errorf("error = %+v", e)
	}
	if e.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("header not kept: %v", e.Header)
	}
	if !errors.Is(err, &oauth.Error{Code: oauth.ErrInvalidTarget}) || errors.Is(err, &oauth.Error{Code: oauth.ErrInvalidScope}) {
		t.Error("errors.Is does not compare by code")
	}
	if !strings.Contains(err.Error(), "invalid_target") || !strings.Contains(err.Error(), "no such backend") {
		t.Errorf("message %q", err)
	}

	// Wrong credentials: 401 invalid_client with the server's challenge.
	bad := o.client()
	bad.ClientSecret = "wrong"
	_, err = bad.Exchange(context.Background(), stsclient.ExchangeRequest{SubjectToken: "s", SubjectTokenType: oauth.TokenTypeAccessToken})
	if !errors.As(err, &e) || e.StatusCode != 401 || e.Code != oauth.ErrInvalidClient || e.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("bad secret: %v", err)
	}
}

func TestErrorNotOAuth(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		w.Write([]byte("<html>bad gateway</html>"))
	}))
	defer srv.Close()
	c := &stsclient.Client{TokenURL: srv.URL}
	_, err := c.Exchange(context.Background(), stsclient.ExchangeRequest{SubjectToken: "s", SubjectTokenType: oauth.TokenTypeAccessToken})
	var e *stsclient.Error
	if !errors.As(err, &e) || e.StatusCode != 502 || e.Code != "" || string(e.Body) != "<html>bad gateway</html>" {
		t.Fatalf("err = %v", err)
	}
	if errors.Is(err, &oauth.Error{Code: ""}) {
		t.Error("an error without code matches an empty code")
	}
}

// TestResponseVariants covers what other servers send: expires_in as a
// string, no expires_in, and a success without access_token (refused).
func TestResponseVariants(t *testing.T) {
	for _, tc := range []struct {
		name    string
		body    string
		expires int64
		wantErr bool
	}{
		{"string expires_in", `{"access_token":"a","token_type":"Bearer","issued_token_type":"x","expires_in":"3600"}`, 3600, false},
		{"no expires_in", `{"access_token":"a","token_type":"Bearer","issued_token_type":"x"}`, 0, false},
		{"no access_token", `{"token_type":"Bearer","expires_in":60}`, 0, true},
		{"not JSON", `access_token=a`, 0, true},
		{"bad expires_in", `{"access_token":"a","token_type":"Bearer","expires_in":"soon"}`, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			c := &stsclient.Client{TokenURL: srv.URL}
			resp, err := c.Exchange(context.Background(), stsclient.ExchangeRequest{SubjectToken: "s", SubjectTokenType: oauth.TokenTypeAccessToken})
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err == nil && (resp.ExpiresIn != tc.expires || resp.Expiry.IsZero() != (tc.expires == 0)) {
				t.Errorf("expires_in %d expiry %v", resp.ExpiresIn, resp.Expiry)
			}
		})
	}
}

// TestRequestChecked refuses requests that lack what RFC 8693 §2.1
// requires, without sending them.
func TestRequestChecked(t *testing.T) {
	o := newOtherSTS(t, "svc", "pw")
	for _, req := range []stsclient.ExchangeRequest{
		{SubjectTokenType: oauth.TokenTypeAccessToken},
		{SubjectToken: "s"},
		{SubjectToken: "s", SubjectTokenType: oauth.TokenTypeAccessToken, ActorToken: "a"},
		{SubjectToken: "s", SubjectTokenType: oauth.TokenTypeAccessToken, ActorTokenType: oauth.TokenTypeJWT},
		{SubjectToken: "s", SubjectTokenType: oauth.TokenTypeAccessToken, Scope: []string{"two words"}},
	} {
		if _, err := o.client().Exchange(context.Background(), req); err == nil {
			t.Errorf("%+v: no error", req)
		}
	}
	if n := o.requests.Load(); n != 0 {
		t.Errorf("%d invalid requests were sent", n)
	}
}

func TestRFC8414_3_Discover(t *testing.T) {
	var srv *httptest.Server
	mux := http.NewServeMux()
	issuer := func() string { return srv.URL + "/tenant" }
	mux.HandleFunc("GET /.well-known/oauth-authorization-server/tenant", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, oauth.Metadata{Issuer: issuer(), TokenEndpoint: issuer() + "/token"})
	})
	mux.HandleFunc("GET /.well-known/oauth-authorization-server/liar", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, oauth.Metadata{Issuer: "https://evil.example", TokenEndpoint: "https://evil.example/token"})
	})
	mux.HandleFunc("GET /oidc/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, oauth.Metadata{Issuer: srv.URL + "/oidc", TokenEndpoint: srv.URL + "/oidc/token"})
	})
	srv = httptest.NewServer(mux)
	defer srv.Close()
	ctx := context.Background()

	md, err := stsclient.Discover(ctx, nil, issuer())
	if err != nil || md.TokenEndpoint != issuer()+"/token" {
		t.Fatalf("path-inserted well-known URI (RFC 8414 §3.1): %v %+v", err, md)
	}
	if md, err = stsclient.Discover(ctx, nil, srv.URL+"/oidc"); err != nil || md.TokenEndpoint != srv.URL+"/oidc/token" {
		t.Fatalf("OpenID fallback: %v %+v", err, md)
	}
	if _, err = stsclient.Discover(ctx, nil, srv.URL+"/liar"); err == nil || !strings.Contains(err.Error(), "3.3") {
		t.Errorf("issuer mismatch accepted (RFC 8414 §3.3): %v", err)
	}
	if _, err = stsclient.Discover(ctx, nil, srv.URL+"/x?q=1"); err == nil {
		t.Error("issuer with query accepted")
	}
	if _, err = stsclient.Discover(ctx, nil, srv.URL+"/missing"); err == nil {
		t.Error("no metadata: no error")
	}
}
