package token

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keybridge/sts/internal/oauthhttp"
)

// benchBody is the body exchange-vs-ceiling.sh sends: a token exchange of
// a self-issued access token for a resource, the subject token of the
// usual length of this server's ES256 access tokens.
var benchBody = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&resource=https%3A%2F%2Fbackend.example.com%2Fapi&subject_token=" +
	strings.Repeat("eyJhbGciOiJFUzI1NiIsImtpZCI6IjEifQ.", 14) + "sig" +
	"&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token"

// BenchmarkParseRequest is the edge of the token endpoint: the form parser
// every client-authenticated endpoint shares (oauthhttp.ParseForm), then
// ParseRequest, on the body of a token exchange.
func BenchmarkParseRequest(b *testing.B) {
	// One request, its body reset each time: what is measured is the
	// parse, not httptest's building of a request.
	r := httptest.NewRequest(http.MethodPost, "/token/oauth2", nil)
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	body := strings.NewReader(benchBody)
	r.ContentLength = int64(len(benchBody))
	b.ReportAllocs()
	for b.Loop() {
		body.Reset(benchBody)
		r.Body = io.NopCloser(body)
		form, oe := oauthhttp.ParseForm(nil, r)
		if oe != nil {
			b.Fatal(oe)
		}
		req, oe := ParseRequest(form)
		if oe != nil || req.SubjectToken == "" {
			b.Fatal(oe)
		}
	}
}

// BenchmarkParseRequestForm is ParseRequest alone, over a parsed form.
func BenchmarkParseRequestForm(b *testing.B) {
	r := httptest.NewRequest(http.MethodPost, "/token/oauth2", strings.NewReader(benchBody))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	form, oe := oauthhttp.ParseForm(nil, r)
	if oe != nil {
		b.Fatal(oe)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, oe := ParseRequest(form); oe != nil {
			b.Fatal(oe)
		}
	}
}
