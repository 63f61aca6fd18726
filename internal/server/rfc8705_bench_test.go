package server_test

import (
	"crypto/tls"
	"crypto/x509/pkix"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/oauth"
)

// BenchmarkMTLSExchange compares, in one server and one run over loopback
// TLS with kept-alive connections, the seed's exchange by a secret client
// (Basic) with the same exchange by a tls_client_auth client (certificate
// chain verified and its name matched on every request) and by a
// self_signed_tls_client_auth client (key looked up in its JWK set).
// Issue 13 wants the mTLS exchange about as fast as the bearer one.
func BenchmarkMTLSExchange(b *testing.B) {
	for _, method := range []string{"secret", oauth.AuthMethodTLSClientAuth, oauth.AuthMethodSelfSignedTLSClientAuth} {
		b.Run(method, func(b *testing.B) {
			// Each case on its own server, so that none runs on a larger
			// audit table than another.
			s, hc, body, auth := mtlsBenchSetup(b, method)
			b.ReportAllocs()
			b.SetParallelism(benchParallelism)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodPost, s.URL+server.TokenPath, strings.NewReader(body))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					if auth != "" {
						req.Header.Set("Authorization", auth)
					}
					resp, err := hc.Do(req)
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
		})
	}
}

// mtlsBenchSetup starts an HTTPS server with a client CA and registers the
// seed's two clients, rs08 authenticating with method; it returns rs08's
// HTTP client (its certificate, kept-alive connections, TLS session
// resumption), the exchange body and the Authorization header ("" for a
// certificate method).
func mtlsBenchSetup(b *testing.B, method string) (*ststest.STS, *http.Client, string, string) {
	ca := ststest.NewCA(b, "client CA")
	s := ststest.Start(b, ststest.Options{TLS: &ststest.TLS{ClientCA: ca}})
	const rs08Resource = "https://rs08.example.com"
	user := s.CreateClient(func(c *store.Client) {
		c.Audiences = []string{rs08Resource}
		c.Scopes = []string{"api"}
	})
	grants := func(c *store.Client) {
		c.Audiences = []string{backend}
		c.Resources = []string{rs08Resource}
		c.Scopes = []string{"api"}
	}
	form := url.Values{
		"grant_type":         {oauth.GrantTypeTokenExchange},
		"resource":           {backend},
		"subject_token":      {s.ClientCredentials(user, url.Values{"resource": {rs08Resource}})},
		"subject_token_type": {oauth.TokenTypeAccessToken},
	}
	var (
		cert *ststest.Cert
		auth string
	)
	switch method {
	case oauth.AuthMethodTLSClientAuth:
		cert = ca.Issue(b, ststest.CertOptions{Subject: pkix.Name{CommonName: "rs08", Organization: []string{"Example"}}})
		c := s.CreateKeyClient(func(c *store.Client) {
			grants(c)
			c.AuthMethod = method
			c.Binding = store.Binding{TLSSubjectDN: "CN=rs08,O=Example"}
		})
		form.Set("client_id", c.ID)
	case oauth.AuthMethodSelfSignedTLSClientAuth:
		cert = ststest.SelfSigned(b, ststest.CertOptions{Subject: pkix.Name{CommonName: "rs08"}})
		c := s.CreateKeyClient(func(c *store.Client) {
			grants(c)
			c.AuthMethod = method
			c.Binding = store.Binding{JWKS: ststest.JWKS(b, cert)}
		})
		form.Set("client_id", c.ID)
	default:
		c := s.CreateClient(grants)
		auth = ststest.BasicAuth(c.ID, c.Secret)
	}
	hc := s.Client(cert)
	tr := hc.Transport.(*http.Transport)
	tr.MaxIdleConnsPerHost = 64
	tr.TLSClientConfig.ClientSessionCache = tls.NewLRUClientSessionCache(64)
	return s, hc, form.Encode(), auth
}
