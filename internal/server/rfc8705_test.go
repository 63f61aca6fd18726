package server_test

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/clientip"
	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/oauth"
)

// mtlsServer is an HTTPS STS trusting clientCA for client certificates.
func mtlsServer(t *testing.T, o ststest.Options) (*ststest.STS, *ststest.CA) {
	t.Helper()
	clientCA := ststest.NewCA(t, "client CA")
	if o.TLS == nil {
		o.TLS = &ststest.TLS{}
	}
	o.TLS.ClientCA = clientCA
	return ststest.Start(t, o), clientCA
}

func tlsClient(s *ststest.STS, b store.Binding) *ststest.Client {
	return s.CreateKeyClient(func(c *store.Client) {
		c.AuthMethod = oauth.AuthMethodTLSClientAuth
		c.Binding = b
		c.Binding.TLSBoundTokens = true
	})
}

func selfSignedClient(s *ststest.STS, jwks []byte) *ststest.Client {
	return s.CreateKeyClient(func(c *store.Client) {
		c.AuthMethod = oauth.AuthMethodSelfSignedTLSClientAuth
		c.Binding = store.Binding{JWKS: jwks, TLSBoundTokens: true}
	})
}

// TestMTLSClientAuthentication: both certificate methods authenticate at
// the token, introspection and revocation endpoints over a real TLS
// handshake, and a secret client shares the port without a certificate.
func TestMTLSClientAuthentication(t *testing.T) {
	s, ca := mtlsServer(t, ststest.Options{})
	leaf := ca.Issue(t, ststest.CertOptions{Subject: pkix.Name{CommonName: "radio-7", Organization: []string{"Key Bridge"}}})
	self := ststest.SelfSigned(t, ststest.CertOptions{Subject: pkix.Name{CommonName: "device"}})
	clients := map[string]struct {
		c    *ststest.Client
		cert *ststest.Cert
	}{
		"tls_client_auth":             {tlsClient(s, store.Binding{TLSSubjectDN: "CN=radio-7,O=Key Bridge"}), leaf},
		"self_signed_tls_client_auth": {selfSignedClient(s, ststest.JWKS(t, self)), self},
	}
	for name, k := range clients {
		t.Run(name, func(t *testing.T) {
			r := s.PostCert(server.TokenPath, k.cert, url.Values{"grant_type": {oauth.GrantTypeClientCredentials}, "client_id": {k.c.ID}})
			if r.Status != http.StatusOK {
				t.Fatalf("token: %d %s", r.Status, r.Body)
			}
			tok := r.Token().AccessToken
			r = s.PostCert(server.IntrospectPath, k.cert, url.Values{"token": {tok}, "client_id": {k.c.ID}})
			if r.Status != http.StatusOK || r.JSON()["active"] != true {
				t.Fatalf("introspect: %d %s", r.Status, r.Body)
			}
			r = s.PostCert(server.RevokePath, k.cert, url.Values{"token": {tok}, "client_id": {k.c.ID}})
			if r.Status != http.StatusOK {
				t.Fatalf("revoke: %d %s", r.Status, r.Body)
			}
			r = s.PostCert(server.IntrospectPath, k.cert, url.Values{"token": {tok}, "client_id": {k.c.ID}})
			if r.Status != http.StatusOK || r.JSON()["active"] != false {
				t.Fatalf("introspect after revocation: %d %s", r.Status, r.Body)
			}
		})
	}
	t.Run("intermediate CA", func(t *testing.T) {
		sub := ca.Intermediate(t, "issuing CA")
		c := tlsClient(s, store.Binding{TLSSANDNS: "radio-8.example.com"})
		leaf := sub.Issue(t, ststest.CertOptions{DNS: []string{"radio-8.example.com"}})
		form := url.Values{"grant_type": {oauth.GrantTypeClientCredentials}, "client_id": {c.ID}}
		if r := s.PostCert(server.TokenPath, leaf, form); r.Status != http.StatusOK {
			t.Fatalf("leaf with its intermediate: %d %s", r.Status, r.Body)
		}
		// Without the intermediate, the chain does not reach the root.
		alone := sub.Issue(t, ststest.CertOptions{DNS: []string{"radio-8.example.com"}})
		alone.Intermediates = nil
		if r := s.PostCert(server.TokenPath, alone, form); r.Status != http.StatusUnauthorized {
			t.Fatalf("leaf without its intermediate: %d %s", r.Status, r.Body)
		}
		auditedRefusal(t, s, c.ID, "unknown authority")
	})
	t.Run("secret client, same port", func(t *testing.T) {
		c := s.CreateClient(nil)
		if !strings.HasPrefix(s.URL, "https://") {
			t.Fatal("not TLS")
		}
		s.ClientCredentials(c, nil) // no certificate
		// A secret client that happens to present a certificate still
		// authenticates with its secret.
		form := url.Values{"grant_type": {oauth.GrantTypeClientCredentials}, "client_id": {c.ID}, "client_secret": {c.Secret}}
		if r := s.PostCert(server.TokenPath, leaf, form); r.Status != http.StatusOK {
			t.Fatalf("secret with a certificate: %d %s", r.Status, r.Body)
		}
		// Without its secret, a certificate does not make a secret
		// client.
		form.Del("client_secret")
		if r := s.PostCert(server.TokenPath, leaf, form); r.Status != http.StatusUnauthorized || r.Error() != string(oauth.ErrInvalidClient) {
			t.Fatalf("secret client with only a certificate: %d %s", r.Status, r.Body)
		}
	})
}

// TestMTLSRefusals: each bad certificate is a clear invalid_client that
// issues nothing and is audited with its cause.
func TestMTLSRefusals(t *testing.T) {
	s, ca := mtlsServer(t, ststest.Options{})
	other := ststest.NewCA(t, "other CA")
	now := time.Now()
	named := ststest.CertOptions{Subject: pkix.Name{CommonName: "svc"}, DNS: []string{"svc.example.com"}}
	with := func(o ststest.CertOptions, f func(*ststest.CertOptions)) ststest.CertOptions { f(&o); return o }
	byDN := tlsClient(s, store.Binding{TLSSubjectDN: "CN=svc"})
	byDNS := tlsClient(s, store.Binding{TLSSANDNS: "svc.example.com"})
	registered := ststest.SelfSigned(t, named)
	self := selfSignedClient(s, ststest.JWKS(t, registered))
	for _, tt := range []struct {
		name   string
		client *ststest.Client
		cert   *ststest.Cert
		cause  string
	}{
		{"expired", byDN, ca.Issue(t, with(named, func(o *ststest.CertOptions) { o.NotBefore, o.NotAfter = now.Add(-48*time.Hour), now.Add(-time.Hour) })), "expired"},
		{"not yet valid", byDN, ca.Issue(t, with(named, func(o *ststest.CertOptions) { o.NotBefore, o.NotAfter = now.Add(time.Hour), now.Add(48*time.Hour) })), "expired or is not yet valid"},
		{"untrusted CA", byDN, other.Issue(t, named), "unknown authority"},
		{"self-signed for tls_client_auth", byDN, ststest.SelfSigned(t, named), "unknown authority"},
		{"server certificate", byDN, ca.Issue(t, with(named, func(o *ststest.CertOptions) { o.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth} })), "key usage"},
		{"DN mismatch", byDN, ca.Client(t, "svc2"), `certificate subject "CN=svc2" is not the registered "CN=svc"`},
		{"DN with more", byDN, ca.Issue(t, with(named, func(o *ststest.CertOptions) { o.Subject.Organization = []string{"Evil"} })), "is not the registered"},
		{"SAN DNS mismatch", byDNS, ca.Issue(t, with(named, func(o *ststest.CertOptions) { o.DNS = []string{"svc.example.com.evil"} })), `no DNS name "svc.example.com"`},
		{"SAN DNS in CN only", byDNS, ca.Client(t, "svc.example.com"), "no DNS name"},
		{"no certificate", byDN, nil, "no client certificate"},
		{"self-signed key not registered", self, ststest.SelfSigned(t, named), "not one of the client's registered keys"},
		{"CA-issued, same name, other key", self, ca.Issue(t, named), "not one of the client's registered keys"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := s.PostCert(server.TokenPath, tt.cert, url.Values{"grant_type": {oauth.GrantTypeClientCredentials}, "client_id": {tt.client.ID}})
			if r.Status != http.StatusUnauthorized || r.Error() != string(oauth.ErrInvalidClient) || r.Token().AccessToken != "" {
				t.Fatalf("got %d %s", r.Status, r.Body)
			}
			auditedRefusal(t, s, tt.client.ID, tt.cause)
		})
	}
	// Introspection and revocation refuse the same way.
	for path, action := range map[string]string{server.IntrospectPath: "token.introspect", server.RevokePath: "token.revoke"} {
		r := s.PostCert(path, other.Issue(t, named), url.Values{"token": {"x"}, "client_id": {byDN.ID}})
		if r.Status != http.StatusUnauthorized || r.Error() != string(oauth.ErrInvalidClient) {
			t.Fatalf("%s: %d %s", path, r.Status, r.Body)
		}
		audited := false
		for _, rec := range s.Audit() {
			audited = audited || (rec.Action == action && rec.ClientID == byDN.ID && rec.Decision == store.DecisionRefused &&
				strings.Contains(rec.Detail, "unknown authority"))
		}
		if !audited {
			t.Fatalf("%s: the refusal is not audited with its cause", action)
		}
	}
	for _, rec := range s.Audit() {
		if rec.Decision == store.DecisionGranted {
			t.Fatalf("something was granted: %+v", rec)
		}
	}
}

func auditedRefusal(t *testing.T, s *ststest.STS, clientID, cause string) {
	t.Helper()
	for _, rec := range s.Audit() {
		if rec.ClientID == clientID && rec.Decision == store.DecisionRefused &&
			rec.Error == string(oauth.ErrInvalidClient) && strings.Contains(rec.Detail, cause) {
			return
		}
	}
	t.Fatalf("no refusal of %s audited with %q", clientID, cause)
}

// TestMTLSFailuresCounted: a bad certificate counts against the client's
// failure budget like a wrong secret.
func TestMTLSFailuresCounted(t *testing.T) {
	s, ca := mtlsServer(t, ststest.Options{AuthFailuresPerClient: 2})
	c := tlsClient(s, store.Binding{TLSSubjectDN: "CN=svc"})
	bad := ca.Client(t, "intruder")
	form := url.Values{"grant_type": {oauth.GrantTypeClientCredentials}, "client_id": {c.ID}}
	var last *ststest.Response
	for range 3 {
		last = s.PostCert(server.TokenPath, bad, form)
	}
	if last.Status != http.StatusTooManyRequests {
		t.Fatalf("third failure: %d %s", last.Status, last.Body)
	}
	// The right certificate still passes.
	if r := s.PostCert(server.TokenPath, ca.Client(t, "svc"), form); r.Status != http.StatusOK {
		t.Fatalf("right certificate: %d %s", r.Status, r.Body)
	}
}

// TestMTLSProxyHeader: behind a TLS-terminating proxy the certificate
// comes in a header, believed only from a trusted proxy.
func TestMTLSProxyHeader(t *testing.T) {
	const header = "X-Client-Cert"
	trusted, err := clientip.Parse("127.0.0.1, ::1")
	if err != nil {
		t.Fatal(err)
	}
	untrusted, err := clientip.Parse("192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	post := func(s *ststest.STS, id, value string) *ststest.Response {
		req, _ := http.NewRequest(http.MethodPost, s.URL+server.TokenPath,
			strings.NewReader(url.Values{"grant_type": {oauth.GrantTypeClientCredentials}, "client_id": {id}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if value != "" {
			req.Header.Set(header, value)
		}
		return s.Do(req) // no certificate on the connection
	}
	s, ca := mtlsServer(t, ststest.Options{TLS: &ststest.TLS{CertHeader: header, TrustedProxies: trusted}})
	c := tlsClient(s, store.Binding{TLSSANURI: "spiffe://example.org/svc"})
	leaf := ca.Issue(t, ststest.CertOptions{URIs: []string{"spiffe://example.org/svc"}})
	if r := post(s, c.ID, url.PathEscape(string(leaf.CertPEM))); r.Status != http.StatusOK {
		t.Fatalf("from a trusted proxy: %d %s", r.Status, r.Body)
	}
	// A chain: the leaf, then its intermediate.
	chained := ca.Intermediate(t, "issuing CA").Issue(t, ststest.CertOptions{URIs: []string{"spiffe://example.org/svc"}})
	if r := post(s, c.ID, url.PathEscape(string(chained.ChainPEM()))); r.Status != http.StatusOK {
		t.Fatalf("a chain from a trusted proxy: %d %s", r.Status, r.Body)
	}
	for _, bad := range []string{"not-a-certificate", "%zz", url.PathEscape("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")} {
		r := post(s, c.ID, bad)
		if r.Status != http.StatusUnauthorized || r.Error() != string(oauth.ErrInvalidClient) {
			t.Fatalf("malformed header %q: %d %s", bad, r.Status, r.Body)
		}
	}
	auditedRefusal(t, s, c.ID, "malformed forwarded client certificate")

	u, _ := mtlsServer(t, ststest.Options{TLS: &ststest.TLS{CertHeader: header, TrustedProxies: untrusted}})
	uc := tlsClient(u, store.Binding{TLSSANURI: "spiffe://example.org/svc"})
	// The CA of u differs; a certificate of u's CA would not matter:
	// the header is not even read.
	r := post(u, uc.ID, url.PathEscape(string(leaf.CertPEM)))
	if r.Status != http.StatusUnauthorized || r.Error() != string(oauth.ErrInvalidClient) {
		t.Fatalf("header from an untrusted address: %d %s", r.Status, r.Body)
	}
	auditedRefusal(t, u, uc.ID, "no client certificate")
}

// TestMTLSMetadata: discovery lists the certificate methods and, with a
// client CA, certificate-bound tokens.
func TestMTLSMetadata(t *testing.T) {
	s, _ := mtlsServer(t, ststest.Options{})
	r := s.Do(getReq(t, s.URL+"/.well-known/oauth-authorization-server"))
	m := r.JSON()
	if m["tls_client_certificate_bound_access_tokens"] != true {
		t.Fatalf("metadata: %s", r.Body)
	}
	for _, k := range []string{"token_endpoint_auth_methods_supported", "introspection_endpoint_auth_methods_supported", "revocation_endpoint_auth_methods_supported"} {
		got, _ := m[k].([]any)
		var names []string
		for _, v := range got {
			names = append(names, v.(string))
		}
		for _, want := range []string{oauth.AuthMethodClientSecretBasic, oauth.AuthMethodClientSecretPost, oauth.AuthMethodTLSClientAuth, oauth.AuthMethodSelfSignedTLSClientAuth, oauth.AuthMethodPrivateKeyJWT} {
			if !strings.Contains(","+strings.Join(names, ",")+",", ","+want+",") {
				t.Errorf("%s lacks %s: %v", k, want, names)
			}
		}
	}
	plain := ststest.Start(t, ststest.Options{})
	if plain.Do(getReq(t, plain.URL+"/.well-known/oauth-authorization-server")).JSON()["tls_client_certificate_bound_access_tokens"] != nil {
		t.Fatal("bound tokens advertised without a client CA")
	}
}

func getReq(t *testing.T, u string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}
