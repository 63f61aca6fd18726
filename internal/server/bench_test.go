package server_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/oauth"
)

// BenchmarkES256SignVerify is the crypto ceiling of one exchange: one
// signature verification (the subject token) and one signature (the new
// token), through the same JOSE library the server uses.
func BenchmarkES256SignVerify(b *testing.B) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k}, nil)
	if err != nil {
		b.Fatal(err)
	}
	payload := []byte(`{"iss":"http://127.0.0.1:8080","sub":"alice","aud":"https://backend.example.com/api","exp":1900000000,"iat":1800000000,"jti":"abcdefghijklmnopqrstuv","scope":"api"}`)
	obj, _ := signer.Sign(payload)
	tok, _ := obj.CompactSerialize()
	algs := []jose.SignatureAlgorithm{jose.ES256}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			o, err := jose.ParseSignedCompact(tok, algs)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := o.Verify(&k.PublicKey); err != nil {
				b.Fatal(err)
			}
			if _, err := signer.Sign(payload); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// benchParallelism is the number of concurrent callers per CPU: a token
// service serves many clients at once, and group commit of audit records
// depends on it.
const benchParallelism = 8

// benchSetup registers the seed's two clients and returns the exchange
// form body for rs08.
func benchSetup(b *testing.B) (*ststest.STS, *ststest.Client, string) {
	s := ststest.Start(b, ststest.Options{})
	// The user's token is addressed to rs08 (a resource it serves), which
	// policy.MayExchange requires of a subject token.
	const rs08Resource = "https://rs08.example.com"
	user := s.CreateClient(func(c *store.Client) {
		c.Audiences = []string{rs08Resource}
		c.Scopes = []string{"api"}
	})
	rs08 := s.CreateClient(func(c *store.Client) {
		c.Audiences = []string{backend}
		c.Resources = []string{rs08Resource}
		c.Scopes = []string{"api"}
	})
	subject := s.ClientCredentials(user, url.Values{"resource": {rs08Resource}})
	body := url.Values{
		"grant_type":         {oauth.GrantTypeTokenExchange},
		"resource":           {backend},
		"subject_token":      {subject},
		"subject_token_type": {oauth.TokenTypeAccessToken},
	}.Encode()
	return s, rs08, body
}

// BenchmarkExchangeInProcess runs the whole token endpoint (parsing, client
// authentication, validation, policy, signing, audit) without the network,
// with 16 and with 64 requests in flight: audit records of concurrent
// requests share one commit, so throughput grows with concurrency.
func BenchmarkExchangeInProcess(b *testing.B) {
	for _, perCPU := range []int{benchParallelism, 4 * benchParallelism} {
		b.Run(fmt.Sprintf("inflight=%d", perCPU*runtime.GOMAXPROCS(0)), func(b *testing.B) {
			s, rs08, body := benchSetup(b)
			h := s.Server.Handler()
			auth := ststest.BasicAuth(rs08.ID, rs08.Secret)
			b.ReportAllocs()
			b.SetParallelism(perCPU)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest(http.MethodPost, server.TokenPath, strings.NewReader(body))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					req.Header.Set("Authorization", auth)
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

// BenchmarkExchangeHTTP is the full round trip over loopback HTTP with
// keep-alive connections, as a client in the same machine sees it.
func BenchmarkExchangeHTTP(b *testing.B) {
	s, rs08, body := benchSetup(b)
	auth := ststest.BasicAuth(rs08.ID, rs08.Secret)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ReportAllocs()
	b.SetParallelism(benchParallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, s.URL+server.TokenPath, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Authorization", auth)
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "exchanges/s")
}

// BenchmarkExchangeFederated compares, in one server and one run, the
// exchange of this server's own token with that of a trusted issuer's JWT
// (keys cached after the first request), without and with a CEL condition
// and claim rule: issue 11 wants the upstream exchange within 10% of the
// local one, and the rules within 5 µs.
func BenchmarkExchangeFederated(b *testing.B) {
	// Each case gets its own server, so that none runs on a larger audit
	// table than another.
	setup := func(b *testing.B, kind string) (http.Handler, string, string) {
		s, rs08, local := benchSetup(b)
		auth := ststest.BasicAuth(rs08.ID, rs08.Secret)
		if kind == "local" {
			return s.Server.Handler(), auth, local
		}
		p := ststest.StartIdP(b)
		s.Trust(p, "k8s", s.URL, []string{rs08.ID}, func(ti *store.TrustedIssuer) {
			if kind == "upstream+cel" {
				ti.Policy = store.Policy{
					Condition: `subject["kubernetes.io"].namespace == "prod" && subject.sub.startsWith("system:serviceaccount:")`,
					Claims:    map[string]string{"namespace": `subject["kubernetes.io"].namespace`},
				}
			}
		})
		body := url.Values{
			"grant_type":         {oauth.GrantTypeTokenExchange},
			"resource":           {backend},
			"subject_token":      {p.Sign(p.Kubernetes("prod", "deployer", s.URL))},
			"subject_token_type": {oauth.TokenTypeJWT},
		}.Encode()
		return s.Server.Handler(), auth, body
	}
	for _, kind := range []string{"local", "upstream", "upstream+cel"} {
		b.Run(kind, func(b *testing.B) {
			h, auth, body := setup(b, kind)
			b.ReportAllocs()
			b.SetParallelism(benchParallelism)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest(http.MethodPost, server.TokenPath, strings.NewReader(body))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					req.Header.Set("Authorization", auth)
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
