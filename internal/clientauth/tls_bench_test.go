package clientauth_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/clientauth"
	"github.com/keybridge/sts/internal/clientcert"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/cached"
	"github.com/keybridge/sts/internal/store/sqlite"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/oauth"
)

// BenchmarkAuthenticateCertificate is client authentication with a
// certificate and a warm client cache, per method, beside the secret one
// (BenchmarkAuthenticate): the chain's verification is remembered, so a
// request on a kept-alive or resumed connection costs a cache lookup and
// the name or key comparison.
func BenchmarkAuthenticateCertificate(b *testing.B) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "sts.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	cs, err := cached.New(ctx, st, cached.Options{ClientTTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	ca := ststest.NewCA(b, "client CA")
	leaf := ca.Issue(b, ststest.CertOptions{Subject: pkix.Name{CommonName: "rs08", Organization: []string{"Example"}}})
	self := ststest.SelfSigned(b, ststest.CertOptions{Subject: pkix.Name{CommonName: "rs08"}})
	now := time.Now()
	for id, bind := range map[string]struct {
		method string
		b      store.Binding
	}{
		"tls":  {oauth.AuthMethodTLSClientAuth, store.Binding{TLSSubjectDN: "CN=rs08,O=Example"}},
		"self": {oauth.AuthMethodSelfSignedTLSClientAuth, store.Binding{JWKS: ststest.JWKS(b, self)}},
	} {
		if err := cs.CreateClient(ctx, &store.Client{ID: id, Name: id, Status: store.ClientActive, AuthMethod: bind.method, Binding: bind.b,
			GrantTypes: []string{oauth.GrantTypeTokenExchange}, CreatedAt: now, UpdatedAt: now}); err != nil {
			b.Fatal(err)
		}
	}
	a := &clientauth.Authenticator{Clients: cs, Accounts: cs.HotAccounts(), Hasher: clientauth.NewHasher(make([]byte, 32)), Now: time.Now,
		Certs: &clientcert.Source{ClientCAs: ca.Pool()}}
	for _, bc := range []struct {
		name, id string
		cert     *ststest.Cert
	}{
		{oauth.AuthMethodTLSClientAuth, "tls", leaf},
		{oauth.AuthMethodSelfSignedTLSClientAuth, "self", self},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := httptest.NewRequest(http.MethodPost, "/token/oauth2", nil)
			r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{bc.cert.Cert}}
			form := url.Values{"grant_type": {oauth.GrantTypeTokenExchange}, "client_id": {bc.id}}
			if _, _, err := a.Authenticate(ctx, r, form); err != nil { // warms the caches
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				c, cred, err := a.Authenticate(ctx, r, form)
				if err != nil || c.ID != bc.id || cred.Cert == nil {
					b.Fatal(c, err)
				}
			}
		})
	}
}
