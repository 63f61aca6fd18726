package oauthhttp

import (
	"net/http"
	"strings"
	"testing"

	"github.com/keybridge/sts/oauth"
)

// discard is a ResponseWriter that keeps the headers and drops the body,
// so that what is measured is WriteJSON, not a recorder's buffer.
type discard struct {
	h http.Header
	n int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(p []byte) (int, error) { d.n += len(p); return len(p), nil }
func (d *discard) WriteHeader(int)             {}

// BenchmarkWriteJSON is the encoding of a token exchange's response
// (RFC 8693 §2.2.1) with its no-store headers.
func BenchmarkWriteJSON(b *testing.B) {
	resp := &oauth.TokenResponse{
		AccessToken:     strings.Repeat("eyJhbGciOiJFUzI1NiIsImtpZCI6IjEifQ.", 14),
		IssuedTokenType: oauth.TokenTypeAccessToken, TokenType: "Bearer", ExpiresIn: 3600, Scope: "api",
	}
	w := &discard{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		w.n = 0
		WriteJSON(w, http.StatusOK, resp)
		if w.n == 0 {
			b.Fatal("nothing written")
		}
	}
}
