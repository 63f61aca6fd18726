package main

import (
	"crypto/x509/pkix"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/oauth"
)

// TestServeMTLS: `sts serve --tls-cert --tls-key --client-ca` serves a
// tls_client_auth client registered with the CLI and a secret client on
// the same port.
func TestServeMTLS(t *testing.T) {
	c := newCLI(t, testKEK)
	dir := t.TempDir()
	serverCA, clientCA := ststest.NewCA(t, "server CA"), ststest.NewCA(t, "client CA")
	crt, key := serverCA.Server(t).Files(t, dir, "server")
	bundle := clientCA.File(t, dir, "client-ca")

	out := c.ok("client", "create", "--name", "radio", "--auth-method", "tls_client_auth", "--tls-subject-dn", "CN=radio-7,O=Example")
	certID := field(t, out, "client_id:")
	out = c.ok("client", "create", "--name", "billing")
	secretID, secret := field(t, out, "client_id:"), field(t, out, "client_secret:")

	_, addr, stop := c.serve("--tls-cert", crt, "--tls-key", key, "--client-ca", bundle)
	defer stop()
	base := "https://" + addr
	post := func(hc *http.Client, form url.Values, basic ...string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, base+"/token/oauth2", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if len(basic) == 2 {
			req.SetBasicAuth(basic[0], basic[1])
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	cc := url.Values{"grant_type": {oauth.GrantTypeClientCredentials}}
	leaf := clientCA.Issue(t, ststest.CertOptions{Subject: pkix.Name{CommonName: "radio-7", Organization: []string{"Example"}}})
	withID := url.Values{"grant_type": cc["grant_type"], "client_id": {certID}}
	if st, m := post(ststest.HTTPClient(serverCA, leaf), withID); st != http.StatusOK || m["access_token"] == nil {
		t.Fatalf("tls_client_auth: %d %v", st, m)
	}
	if st, m := post(ststest.HTTPClient(serverCA, nil), cc, secretID, secret); st != http.StatusOK {
		t.Fatalf("secret client without a certificate: %d %v", st, m)
	}
	if st, m := post(ststest.HTTPClient(serverCA, nil), withID); st != http.StatusUnauthorized || m["error"] != "invalid_client" {
		t.Fatalf("certificate client without a certificate: %d %v", st, m)
	}
	resp, err := ststest.HTTPClient(serverCA, nil).Get(base + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	var md map[string]any
	json.NewDecoder(resp.Body).Decode(&md)
	resp.Body.Close()
	if md["tls_client_certificate_bound_access_tokens"] != true {
		t.Fatalf("metadata: %v", md)
	}
}

func TestServeMTLSFlagErrors(t *testing.T) {
	c := newCLI(t, testKEK)
	dir := t.TempDir()
	ca := ststest.NewCA(t, "CA")
	crt, key := ca.Server(t).Files(t, dir, "server")
	bundle := ca.File(t, dir, "ca")
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("hello"), 0o600)
	badCert := filepath.Join(dir, "bad.pem")
	os.WriteFile(badCert, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o600)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-cert", crt, "--tls-key", key, "--client-ca", filepath.Join(dir, "missing.pem")}, "client-ca:"},
		{[]string{"--tls-cert", crt, "--tls-key", key, "--client-ca", garbage}, "holds no PEM certificate"},
		{[]string{"--tls-cert", crt, "--tls-key", key, "--client-ca", badCert}, "certificate 1"},
		{[]string{"--tls-cert", crt, "--tls-key", bundle}, "tls-cert/tls-key"},
		{[]string{"--tls-cert", garbage, "--tls-key", key}, "tls-cert/tls-key"},
		{[]string{"--client-ca", bundle}, "client-ca needs tls-cert"},
		{[]string{"--tls-cert", crt, "--tls-key", key, "--client-cert-header", "X-Client-Cert"}, "client-cert-header needs trusted-proxies"},
		{[]string{"--client-cert-header", "X Client", "--trusted-proxies", "10.0.0.1"}, "is not an HTTP header name"},
	} {
		_, _, err := c.run(append([]string{"serve", "--addr", "127.0.0.1:0"}, tt.args...)...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("serve %v: %v, want %q", tt.args, err, tt.want)
		}
	}
}
