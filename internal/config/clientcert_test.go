package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The client certificate settings come from flags, STS_* variables and
// the configuration file alike, and the header needs trusted proxies.
func TestClientCertSettings(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "sts.yaml")
	os.WriteFile(file, []byte("client-ca: /etc/sts/clients.pem\nclient-cert-header: X-Client-Cert\ntrusted-proxies: 10.0.0.0/8\n"), 0o600)
	c, err := load(t, "--config", file)
	if err != nil || c.ClientCA != "/etc/sts/clients.pem" || c.ClientCertHeader != "X-Client-Cert" || !c.TrustedProxies.Trusted(netip.MustParseAddr("10.1.2.3")) {
		t.Fatalf("from the file: %+v, %v", c, err)
	}
	if _, err := load(t, "--client-cert-header", "X-Client-Cert"); err == nil || !strings.Contains(err.Error(), "client-cert-header needs trusted-proxies") {
		t.Fatalf("header without proxies: %v", err)
	}
	if _, err := load(t, "--client-cert-header", "X:Cert", "--trusted-proxies", "10.0.0.1"); err == nil || !strings.Contains(err.Error(), "not an HTTP header name") {
		t.Fatalf("bad header name: %v", err)
	}
}
