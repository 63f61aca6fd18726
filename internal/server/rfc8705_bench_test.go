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
	secret := s.CreateClient(grants)
	leaf := ca.Issue(b, ststest.CertOptions{Subject: pkix.Name{CommonName: "rs08", Organization: []string{"Example"}}})
	tlsc := s.CreateKeyClient(func(c *store.Client) {
		grants(c)
		c.AuthMethod = oauth.AuthMethodTLSClientAuth
		c.Binding = store.Binding{TLSSubjectDN: "CN=rs08,O=Example"}
	})
	self := ststest.SelfSigned(b, ststest.CertOptions{Subject: pkix.Name{CommonName: "rs08"}})
	selfc := s.CreateKeyClient(func(c *store.Client) {
		grants(c)
		c.AuthMethod = oauth.AuthMethodSelfSignedTLSClientAuth
		c.Binding = store.Binding{JWKS: ststest.JWKS(b, self)}
	})
	subject := s.ClientCredentials(user, url.Values{"resource": {rs08Resource}})
	form := url.Values{
		"grant_type":         {oauth.GrantTypeTokenExchange},
		"resource":           {backend},
		"subject_token":      {subject},
		"subject_token_type": {oauth.TokenTypeAccessToken},
	}
	withID := func(id string) string {
		f := url.Values{"client_id": {id}}
		for k, v := range form {
			f[k] = v
		}
		return f.Encode()
	}
	for _, bc := range []struct {
		name, body, auth string
		cert             *ststest.Cert
	}{
		{"secret", form.Encode(), ststest.BasicAuth(secret.ID, secret.Secret), nil},
		{"tls_client_auth", withID(tlsc.ID), "", leaf},
		{"self_signed_tls_client_auth", withID(selfc.ID), "", self},
	} {
		b.Run(bc.name, func(b *testing.B) {
			hc := s.Client(bc.cert)
			hc.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
			hc.Transport.(*http.Transport).TLSClientConfig.ClientSessionCache = tls.NewLRUClientSessionCache(64)
			b.ReportAllocs()
			b.SetParallelism(benchParallelism)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodPost, s.URL+server.TokenPath, strings.NewReader(bc.body))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					if bc.auth != "" {
						req.Header.Set("Authorization", bc.auth)
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
