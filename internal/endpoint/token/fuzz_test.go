package token

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/keybridge/sts/internal/clientauth"
	"github.com/keybridge/sts/internal/oauthhttp"
	"github.com/keybridge/sts/oauth"
)

// FuzzParseRequest feeds arbitrary bodies and Authorization headers to the
// parser of the token endpoint. It must never panic; what it accepts must
// hold the invariants the rest of the pipeline relies on.
func FuzzParseRequest(f *testing.F) {
	seeds := []struct{ body, auth string }{
		{"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&resource=https%3A%2F%2Fbackend.example.com%2Fapi&subject_token=accVkjcJyb4BWCxGsndESCJQbdFMogUC5PbRDqceLTC&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token", "Basic cnMwODpsb25nLXNlY3VyZS1yYW5kb20tc2VjcmV0"},
		{"grant_type=client_credentials&scope=a+b", ""},
		{"grant_type=client_credentials&grant_type=client_credentials", ""},
		{"grant_type=x&subject_token=a&subject_token=b", ""},
		{"grant_type=x&resource=%zz", ""},
		{"grant_type=x&resource=https://a/%23frag&resource=rel", ""},
		{"grant_type=&scope=", ""},
		{"grant_type=x&scope=%22quoted%22", ""},
		{"a;b=c", ""},
		{"client_id=a&client_secret=b&grant_type=client_credentials", "Basic YTpi"},
		{"grant_type=client_credentials", "Basic %%%"},
		{"grant_type=client_credentials", "Basic " + "YSUyQmI6YyUzQWQ="},
		{strings.Repeat("a=b&", 20000), ""},
	}
	for _, s := range seeds {
		f.Add(s.body, s.auth)
	}
	f.Fuzz(func(t *testing.T, body, auth string) {
		req := httptest.NewRequest(http.MethodPost, "/token/oauth2", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		form, oe := oauthhttp.ParseForm(w, req)
		if oe != nil {
			if oe.Code == "" || oe.Description == "" {
				t.Fatalf("error without code or description: %+v", oe)
			}
			return
		}
		for k, vs := range form {
			if len(vs) == 0 || slices.Contains(vs, "") {
				t.Fatalf("parameter %q kept an empty value", k)
			}
			if len(vs) > 1 && oauthhttp.SingleValued(k) {
				t.Fatalf("repeated parameter %q accepted", k)
			}
		}
		if _, oe := clientauth.Extract(req, form); oe != nil && oe.Code == "" {
			t.Fatal("credential error without code")
		}
		r, oe := ParseRequest(form)
		if oe != nil {
			if oe.Description == "" {
				t.Fatalf("error without description: %+v", oe)
			}
			return
		}
		if r.GrantType == "" {
			t.Fatal("accepted a request without grant_type")
		}
		for _, s := range r.Scope {
			if !oauth.ValidScopeToken(s) {
				t.Fatalf("accepted scope token %q", s)
			}
		}
		for _, res := range r.Resource {
			if strings.Contains(res, "#") {
				t.Fatalf("accepted resource with fragment %q", res)
			}
		}
	})
}
