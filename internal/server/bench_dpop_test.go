package server_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/keybridge/sts/dpop"
	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/oauth"
)

// BenchmarkExchangeDPoP compares, in one run, the exchange of a bearer
// token with that of a DPoP-bound one proven by a fresh proof (issue 13:
// at most one extra signature verification, plus the proof's single-use
// jti written to the store). The proofs are signed before the timer
// starts: their signing is the client's cost.
func BenchmarkExchangeDPoP(b *testing.B) {
	for _, kind := range []string{"bearer", "dpop"} {
		b.Run(kind, func(b *testing.B) {
			s := ststest.Start(b, ststest.Options{})
			c := s.CreateClient(func(c *store.Client) { c.Audiences = []string{backend}; c.Scopes = []string{"api"} })
			key := newDPoPKey(b)
			var subject string
			if kind == "bearer" {
				subject = s.ClientCredentials(c, nil)
			} else {
				req := httptest.NewRequest(http.MethodPost, server.TokenPath, strings.NewReader(ccForm.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Authorization", ststest.BasicAuth(c.ID, c.Secret))
				req.Header.Set(dpop.Header, key.proof(b, s.URL, dpop.ProofOptions{}))
				w := httptest.NewRecorder()
				s.Server.Handler().ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
				subject = (&ststest.Response{Body: w.Body.Bytes()}).Token().AccessToken
			}
			body := url.Values{
				"grant_type":         {oauth.GrantTypeTokenExchange},
				"audience":           {backend},
				"subject_token":      {subject},
				"subject_token_type": {oauth.TokenTypeAccessToken},
			}.Encode()
			var proofs []string
			if kind == "dpop" {
				proofs = make([]string, b.N)
				for i := range proofs {
					proofs[i] = key.proof(b, s.URL, dpop.ProofOptions{})
				}
			}
			h := s.Server.Handler()
			auth := ststest.BasicAuth(c.ID, c.Secret)
			var next atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(benchParallelism)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest(http.MethodPost, server.TokenPath, strings.NewReader(body))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					req.Header.Set("Authorization", auth)
					if proofs != nil {
						req.Header.Set(dpop.Header, proofs[next.Add(1)-1])
					}
					w := httptest.NewRecorder()
					h.ServeHTTP(w, req)
					if w.Code != http.StatusOK {
						b.Fatalf("%d %s", w.Code, w.Body)
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "exchanges/s")
		})
	}
}
