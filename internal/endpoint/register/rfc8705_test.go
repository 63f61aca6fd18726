package register_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509/pkix"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/oauth"
)

// RFC 8705 §2.1.2 and §3.4: a tls_client_auth client registers its
// certificate's name, gets no secret, has its tokens bound by default and
// authenticates with its certificate at once.
func TestRFC8705_RegisterCertificateClient(t *testing.T) {
	ca := ststest.NewCA(t, "client CA")
	s := ststest.Start(t, ststest.Options{TLS: &ststest.TLS{ClientCA: ca}})
	a := s.NewAccount(store.AccountIndividual, "Alice")
	r := s.Register(s.IAT(a.ID, nil), map[string]any{
		"client_name":                "radio",
		"grant_types":                []string{oauth.GrantTypeClientCredentials},
		"token_endpoint_auth_method": oauth.AuthMethodTLSClientAuth,
		"tls_client_auth_san_uri":    "spiffe://example.org/radio",
		"dpop_bound_access_tokens":   false,
	})
	if r.Status != http.StatusCreated {
		t.Fatalf("register: %d %s", r.Status, r.Body)
	}
	m := r.JSON()
	if _, ok := m["client_secret"]; ok {
		t.Fatalf("a certificate client got a secret: %s", r.Body)
	}
	if _, ok := m["client_secret_expires_at"]; ok {
		t.Errorf("client_secret_expires_at without a secret: %s", r.Body)
	}
	if m["token_endpoint_auth_method"] != oauth.AuthMethodTLSClientAuth || m["tls_client_auth_san_uri"] != "spiffe://example.org/radio" ||
		m["tls_client_certificate_bound_access_tokens"] != true {
		t.Fatalf("not echoed: %s", r.Body)
	}
	id := m["client_id"].(string)
	c, err := s.Store.GetClient(t.Context(), id)
	if err != nil || c.Binding.TLSSANURI != "spiffe://example.org/radio" || !c.Binding.TLSBoundTokens || len(c.SecretHash) != 0 {
		t.Fatalf("stored: %+v %v", c, err)
	}
	cert := ca.Issue(t, ststest.CertOptions{URIs: []string{"spiffe://example.org/radio"}})
	tr := s.PostCert(server.TokenPath, cert, url.Values{"grant_type": {oauth.GrantTypeClientCredentials}, "client_id": {id}})
	if tr.Status != http.StatusOK {
		t.Fatalf("token: %d %s", tr.Status, tr.Body)
	}
	// RFC 7592 read echoes the same.
	reg := r.Registration()
	rd := s.SendJSON(http.MethodGet, reg.RegistrationClientURI, reg.RegistrationAccessToken, nil)
	if rd.Status != http.StatusOK || rd.JSON()["tls_client_auth_san_uri"] != "spiffe://example.org/radio" {
		t.Fatalf("read: %d %s", rd.Status, rd.Body)
	}
}

// A self_signed_tls_client_auth client registers its keys as jwks.
func TestRFC8705_RegisterSelfSignedClient(t *testing.T) {
	s := ststest.Start(t, ststest.Options{TLS: &ststest.TLS{}})
	a := s.NewAccount(store.AccountIndividual, "Alice")
	cert := ststest.SelfSigned(t, ststest.CertOptions{Subject: pkix.Name{CommonName: "dev"}})
	var jwks map[string]any
	json.Unmarshal(ststest.JWKS(t, cert), &jwks)
	r := s.Register(s.IAT(a.ID, nil), map[string]any{
		"client_name":                "dev",
		"grant_types":                []string{oauth.GrantTypeClientCredentials},
		"token_endpoint_auth_method": oauth.AuthMethodSelfSignedTLSClientAuth,
		"jwks":                       jwks,
		"tls_client_certificate_bound_access_tokens": false,
	})
	if r.Status != http.StatusCreated {
		t.Fatalf("register: %d %s", r.Status, r.Body)
	}
	m := r.JSON()
	if m["jwks"] == nil || m["tls_client_certificate_bound_access_tokens"] != false || m["client_secret"] != nil {
		t.Fatalf("response: %s", r.Body)
	}
	id := m["client_id"].(string)
	if tr := s.PostCert(server.TokenPath, cert, url.Values{"grant_type": {oauth.GrantTypeClientCredentials}, "client_id": {id}}); tr.Status != http.StatusOK {
		t.Fatalf("token: %d %s", tr.Status, tr.Body)
	}
}

// Bad key-based metadata is invalid_client_metadata naming the member,
// and registers nothing.
func TestRFC8705_RegistrationRefusals(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	a := s.NewAccount(store.AccountIndividual, "Alice")
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	privSet := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: ec}}}
	pubSet := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: ec.Public()}}}
	tls := oauth.AuthMethodTLSClientAuth
	for _, tt := range []struct {
		name string
		md   map[string]any
		want string
	}{
		{"unknown method", map[string]any{"token_endpoint_auth_method": "none"}, "token_endpoint_auth_method"},
		{"no name", map[string]any{"token_endpoint_auth_method": tls}, "needs exactly one of"},
		{"two names", map[string]any{"token_endpoint_auth_method": tls, "tls_client_auth_subject_dn": "CN=a", "tls_client_auth_san_dns": "a.example.com"}, "needs exactly one of"},
		{"bad IP", map[string]any{"token_endpoint_auth_method": tls, "tls_client_auth_san_ip": "999.1.1.1"}, "tls_client_auth_san_ip"},
		{"name for a secret client", map[string]any{"tls_client_auth_san_dns": "a.example.com"}, "only for token_endpoint_auth_method tls_client_auth"},
		{"no keys", map[string]any{"token_endpoint_auth_method": oauth.AuthMethodPrivateKeyJWT}, "jwks/jwks_uri"},
		{"private key", map[string]any{"token_endpoint_auth_method": oauth.AuthMethodSelfSignedTLSClientAuth, "jwks": privSet}, "public keys only"},
		{"http jwks_uri", map[string]any{"token_endpoint_auth_method": oauth.AuthMethodPrivateKeyJWT, "jwks_uri": "http://keys.example.com/"}, "https"},
		{"both", map[string]any{"token_endpoint_auth_method": oauth.AuthMethodPrivateKeyJWT, "jwks": pubSet, "jwks_uri": "https://keys.example.com/"}, "jwks"},
		{"bound tokens for a secret client", map[string]any{"tls_client_certificate_bound_access_tokens": true}, "tls_client_certificate_bound_access_tokens"},
		{"not a boolean", map[string]any{"token_endpoint_auth_method": tls, "tls_client_auth_san_dns": "a", "dpop_bound_access_tokens": "yes"}, "dpop_bound_access_tokens"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.md["client_name"] = "x " + tt.name
			r := s.Register(s.IAT(a.ID, nil), tt.md)
			wantError(t, r, http.StatusBadRequest, oauth.ErrInvalidClientMetadata)
			if d, _ := r.JSON()["error_description"].(string); !strings.Contains(d, tt.want) {
				t.Fatalf("description %q does not say %q", d, tt.want)
			}
		})
	}
	if cs, err := s.Store.ListClients(t.Context()); err != nil || len(cs) != 0 {
		t.Fatalf("refused registrations stored clients: %d %v", len(cs), err)
	}
}

// RFC 7592 update of a secret client to tls_client_auth: its secret stops
// working, its certificate works, and the answer has no secret.
func TestRFC8705_UpdateToCertificateClient(t *testing.T) {
	ca := ststest.NewCA(t, "client CA")
	s, _, reg := registered(t, ststest.Options{TLS: &ststest.TLS{ClientCA: ca}}, map[string]any{
		"client_name": "gateway", "grant_types": []string{oauth.GrantTypeClientCredentials},
	})
	if r := tokenFor(s, reg.Client()); r.Status != http.StatusOK {
		t.Fatalf("secret before: %d %s", r.Status, r.Body)
	}
	r := s.Manage(http.MethodPut, reg, update(reg, map[string]any{
		"client_name": "gateway", "grant_types": []string{oauth.GrantTypeClientCredentials},
		"token_endpoint_auth_method": oauth.AuthMethodTLSClientAuth, "tls_client_auth_san_dns": "gw.example.com",
		"rotate_secret": true,
	}))
	if r.Status != http.StatusOK || r.JSON()["client_secret"] != nil || r.JSON()["tls_client_auth_san_dns"] != "gw.example.com" {
		t.Fatalf("update: %d %s", r.Status, r.Body)
	}
	if r := tokenFor(s, reg.Client()); r.Status != http.StatusUnauthorized {
		t.Fatalf("the old secret still works: %d %s", r.Status, r.Body)
	}
	cert := ca.Issue(t, ststest.CertOptions{DNS: []string{"gw.example.com"}})
	if tr := s.PostCert(server.TokenPath, cert, url.Values{"grant_type": {oauth.GrantTypeClientCredentials}, "client_id": {reg.ClientID}}); tr.Status != http.StatusOK {
		t.Fatalf("certificate after: %d %s", tr.Status, tr.Body)
	}
}
