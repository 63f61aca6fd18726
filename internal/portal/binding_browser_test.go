package portal_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/oauth"
)

// TestBrowserKeyClients: in Chromium, an operator registers a
// tls_client_auth client (no secret is shown; the page names its
// certificate and binding), is refused a private key in a JWK set with
// the reason beside the field, and registers a self_signed_tls_client_auth
// client with its public key; the edit form shows what was registered.
func TestBrowserKeyClients(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	b := newBrowser(t, s)
	pw := s.CreateOperator("admin")
	if st := b.signIn("admin", pw); st != http.StatusOK {
		t.Fatalf("sign in: %d", st)
	}
	create := `form[action="/portal/clients/new"] button[type=submit]`

	b.open("/portal/clients/new")
	b.fill("#name", "radio-7")
	b.fill("#auth_method", oauth.AuthMethodTLSClientAuth)
	b.fill("#tls_name_kind", "san_uri")
	b.fill("#tls_name", "spiffe://example.org/radio-7")
	if st := b.submit(create); st != http.StatusOK || !b.has("it has no secret") {
		b.shot("key-client-created")
		t.Fatalf("create tls_client_auth: %d", st)
	}
	b.shot("key-client-created")
	if b.has("client_secret") {
		t.Fatal("a secret field is shown for a certificate client")
	}
	id := b.value("#client-id")
	c, err := s.Store.GetClient(context.Background(), id)
	if err != nil || c.AuthMethod != oauth.AuthMethodTLSClientAuth || c.Binding.TLSSANURI != "spiffe://example.org/radio-7" ||
		!c.Binding.TLSBoundTokens || len(c.SecretHash) != 0 {
		t.Fatalf("stored: %+v %v", c, err)
	}
	b.open("/portal/clients/" + id)
	if got := b.text("#detail-auth-method"); got != oauth.AuthMethodTLSClientAuth {
		t.Fatalf("detail shows method %q", got)
	}
	if !strings.Contains(b.text("#detail-binding"), "x5t#S256") || !b.has("spiffe://example.org/radio-7") {
		t.Fatal("the client page does not show the certificate name and binding")
	}
	if b.value("#tls_name") != "spiffe://example.org/radio-7" || b.value("#auth_method") != oauth.AuthMethodTLSClientAuth {
		t.Fatal("the edit form does not show the registration")
	}
	b.shot("key-client-detail")

	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwks := func(k any) string {
		raw, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k, KeyID: "k1"}}})
		return string(raw)
	}
	b.open("/portal/clients/new")
	b.fill("#name", "device")
	b.fill("#auth_method", oauth.AuthMethodSelfSignedTLSClientAuth)
	b.fill("#jwks", jwks(key))
	if st := b.submit(create); st != http.StatusUnprocessableEntity || !strings.Contains(b.text("#jwks-error"), "private key") {
		b.shot("key-client-private-jwk")
		t.Fatalf("a private key was not refused beside the field: %d", st)
	}
	b.shot("key-client-private-jwk")
	b.fill("#jwks", jwks(key.Public()))
	if st := b.submit(create); st != http.StatusOK || !b.has("it has no secret") {
		t.Fatalf("create self_signed_tls_client_auth: %d", st)
	}
	cs, err := s.Store.ListClients(context.Background())
	if err != nil || len(cs) != 2 {
		t.Fatalf("clients: %d %v", len(cs), err)
	}
	for _, c := range cs {
		if c.Name == "device" && (c.AuthMethod != oauth.AuthMethodSelfSignedTLSClientAuth || len(c.Binding.JWKS) == 0 || c.Status != store.ClientActive) {
			t.Fatalf("self-signed client stored as %+v", c)
		}
	}
}
