package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/keybridge/sts/oauth"
)

func writeKeySet(t *testing.T, dir, name string, keys ...any) string {
	t.Helper()
	var set jose.JSONWebKeySet
	for _, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k, KeyID: name})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name+".json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestClientCreateKeyBased(t *testing.T) {
	c := newCLI(t, testKEK)
	dir := t.TempDir()
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub := writeKeySet(t, dir, "pub", ec.Public())

	out := c.ok("client", "create", "--name", "radio-7", "--auth-method", "tls_client_auth", "--tls-subject-dn", "CN=radio-7,O=Example")
	if strings.Contains(out, "client_secret") || !strings.Contains(out, "tls_client_auth (no secret)") {
		t.Fatalf("a certificate client was given a secret:\n%s", out)
	}
	id := field(t, out, "client_id:")
	var v clientView
	c.okJSON(&v, "client", "show", id, "-o", "json")
	if v.AuthMethod != oauth.AuthMethodTLSClientAuth || v.TLSSubjectDN != "CN=radio-7,O=Example" || !v.TLSBoundTokens || v.ClientSecret != "" {
		t.Fatalf("shown: %+v", v)
	}
	if text := c.ok("client", "show", id); !strings.Contains(text, "CN=radio-7,O=Example") || !strings.Contains(text, "x5t#S256") {
		t.Fatalf("show text:\n%s", text)
	}

	v = clientView{}
	c.okJSON(&v, "client", "create", "--name", "dev", "--auth-method", "self_signed_tls_client_auth", "--jwks-file", pub, "--tls-bound-tokens=false", "-o", "json")
	if v.ClientSecret != "" || !v.HasJWKS || v.TLSBoundTokens {
		t.Fatalf("self-signed: %+v", v)
	}
	v = clientView{}
	c.okJSON(&v, "client", "create", "--name", "svc", "--auth-method", "tls_client_auth", "--tls-san-ip", "::ffff:10.0.0.7", "--dpop-bound-tokens", "-o", "json")
	if v.TLSSANIP != "10.0.0.7" || !v.DPoPBoundTokens {
		t.Fatalf("IP not normalised or DPoP not kept: %+v", v)
	}
	v = clientView{}
	c.okJSON(&v, "client", "create", "--name", "jwt", "--auth-method", "private_key_jwt", "--jwks-uri", "https://keys.example.com/jwks.json", "-o", "json")
	if v.ClientSecret != "" || v.JWKSURI != "https://keys.example.com/jwks.json" || v.TLSBoundTokens {
		t.Fatalf("private_key_jwt: %+v", v)
	}
	c.fail("no secret to rotate", "client", "rotate-secret", id)
}

func TestClientCreateKeyBasedRejectsBadInput(t *testing.T) {
	c := newCLI(t, testKEK)
	dir := t.TempDir()
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	private := writeKeySet(t, dir, "private", ec)
	symmetric := writeKeySet(t, dir, "symmetric", []byte("0123456789abcdef0123456789abcdef"))
	weak := writeKeySet(t, dir, "weak", small.Public())
	pub := writeKeySet(t, dir, "pub", ec.Public())
	big := filepath.Join(dir, "big.json")
	os.WriteFile(big, []byte(`{"keys":[`+strings.Repeat(" ", 40<<10)+`]}`), 0o600)
	garbage := filepath.Join(dir, "garbage.json")
	os.WriteFile(garbage, []byte("not json"), 0o600)
	tls := []string{"--name", "x", "--auth-method", "tls_client_auth"}
	self := []string{"--name", "x", "--auth-method", "self_signed_tls_client_auth"}
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown method", []string{"--name", "x", "--auth-method", "none"}, `--auth-method must be one of`},
		{"no name", tls, "needs exactly one of"},
		{"two names", append(tls, "--tls-subject-dn", "CN=a", "--tls-san-dns", "a.example.com"), "needs exactly one of"},
		{"bad DN", append(tls, "--tls-subject-dn", "radio"), "--tls-subject-dn"},
		{"bad IP", append(tls, "--tls-san-ip", "10.0.0.300"), "--tls-san-ip"},
		{"bad URI", append(tls, "--tls-san-uri", "not absolute"), "--tls-san-uri"},
		{"bad email", append(tls, "--tls-san-email", "nobody"), "--tls-san-email"},
		{"name for another method", []string{"--name", "x", "--tls-san-dns", "a.example.com"}, "only for token_endpoint_auth_method tls_client_auth"},
		{"no keys", self, "--jwks-file/--jwks-uri one of them is required"},
		{"both keys", append(self, "--jwks-file", pub, "--jwks-uri", "https://k.example.com/"), "must not both be set"},
		{"private key", append(self, "--jwks-file", private), "is a private key"},
		{"symmetric key", append(self, "--jwks-file", symmetric), "symmetric"},
		{"weak RSA", append(self, "--jwks-file", weak), "1024 bits"},
		{"too large", append(self, "--jwks-file", big), "larger than"},
		{"not JSON", append(self, "--jwks-file", garbage), "not a JWK set"},
		{"missing file", append(self, "--jwks-file", filepath.Join(dir, "none.json")), "--jwks-file"},
		{"http jwks_uri", []string{"--name", "x", "--auth-method", "private_key_jwt", "--jwks-uri", "http://k.example.com/"}, "https URL"},
		{"keys for a secret client", []string{"--name", "x", "--jwks-file", pub}, "--jwks-file/--jwks-uri is only for token_endpoint_auth_method self_signed"},
		{"bound tokens for a secret client", []string{"--name", "x", "--tls-bound-tokens"}, "--tls-bound-tokens needs"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := &cli{t: t, dir: c.dir}
			c.fail(tt.want, append([]string{"client", "create"}, tt.args...)...)
		})
	}
	var list []clientView
	c.okJSON(&list, "client", "list", "-o", "json")
	if len(list) != 0 {
		t.Fatalf("a refused create stored a client: %+v", list)
	}
}

func TestClientUpdateKeyBased(t *testing.T) {
	c := newCLI(t, testKEK)
	out := c.ok("client", "create", "--name", "svc", "--client-id", "svc")
	if field(t, out, "client_secret:") == "" {
		t.Fatal("no secret")
	}
	// To a certificate client: the secret goes, tokens are bound.
	c.fail("--auth-method tls_client_auth needs exactly one of", "client", "update", "svc", "--auth-method", "tls_client_auth")
	var v clientView
	c.okJSON(&v, "client", "update", "svc", "--auth-method", "tls_client_auth", "--tls-san-dns", "svc.example.com", "-o", "json")
	if v.AuthMethod != oauth.AuthMethodTLSClientAuth || v.TLSSANDNS != "svc.example.com" || !v.TLSBoundTokens {
		t.Fatalf("updated: %+v", v)
	}
	if cl, err := c.env().Store.GetClient(t.Context(), "svc"); err != nil || len(cl.SecretHash) != 0 {
		t.Fatalf("the secret survived: %v", err)
	}
	// Another name replaces the registered one.
	v = clientView{}
	c.okJSON(&v, "client", "update", "svc", "--tls-subject-dn", "CN=svc", "--tls-bound-tokens=false", "-o", "json")
	if v.TLSSANDNS != "" || v.TLSSubjectDN != "CN=svc" || v.TLSBoundTokens {
		t.Fatalf("renamed: %+v", v)
	}
	// Back to a secret client: the certificate name goes; a secret is
	// then issued by rotation.
	v = clientView{}
	c.okJSON(&v, "client", "update", "svc", "--auth-method", "client_secret_basic", "-o", "json")
	if v.TLSSubjectDN != "" || v.AuthMethod != oauth.AuthMethodClientSecretBasic {
		t.Fatalf("back to a secret: %+v", v)
	}
	if out := c.ok("client", "rotate-secret", "svc"); !strings.Contains(out, "client_secret") {
		t.Fatalf("rotate-secret:\n%s", out)
	}
}
