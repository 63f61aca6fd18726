package clientcert_test

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/clientcert"
	"github.com/keybridge/sts/internal/clientip"
	"github.com/keybridge/sts/internal/ststest"
)

func TestThumbprint(t *testing.T) {
	ca := ststest.NewCA(t, "ca")
	c := ca.Client(t, "x")
	sum := sha256.Sum256(c.Cert.Raw)
	want := base64.RawURLEncoding.EncodeToString(sum[:])
	if got := clientcert.Thumbprint(c.Cert); got != want || strings.ContainsAny(got, "=+/") || len(got) != 43 {
		t.Fatalf("thumbprint %q, want %q", got, want)
	}
}

func TestVerifyChain(t *testing.T) {
	ca, other := ststest.NewCA(t, "ca"), ststest.NewCA(t, "other")
	s := &clientcert.Source{ClientCAs: ca.Pool()}
	now := time.Now()
	ok := ca.Client(t, "ok")
	if err := s.VerifyChain(ok.Cert, now); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*x509.Certificate{
		"untrusted":   other.Client(t, "x").Cert,
		"self-signed": ststest.SelfSigned(t, ststest.CertOptions{}).Cert,
		"expired":     ca.Issue(t, ststest.CertOptions{NotBefore: now.Add(-2 * time.Hour), NotAfter: now.Add(-time.Hour)}).Cert,
		"not yet":     ca.Issue(t, ststest.CertOptions{NotBefore: now.Add(time.Hour), NotAfter: now.Add(2 * time.Hour)}).Cert,
		"server EKU":  ca.Server(t).Cert,
	} {
		if err := s.VerifyChain(c, now); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
	if err := (&clientcert.Source{}).VerifyChain(ok.Cert, now); err == nil {
		t.Error("verified without a client CA")
	}
}

func TestCertificateFromHeader(t *testing.T) {
	ca := ststest.NewCA(t, "ca")
	c := ca.Client(t, "x")
	proxies, err := clientip.Parse("10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	s := &clientcert.Source{Header: "X-Client-Cert", Proxies: proxies}
	esc := url.PathEscape(string(c.CertPEM)) // %20 for spaces, as nginx and Envoy write it
	req := func(remote string, vals ...string) *http.Request {
		r := httptest.NewRequest("POST", "/token", nil)
		r.RemoteAddr = remote
		for _, v := range vals {
			r.Header.Add("X-Client-Cert", v)
		}
		return r
	}
	got, err := s.Certificate(req("10.0.0.1:1234", esc))
	if err != nil || got == nil || !got.Equal(c.Cert) {
		t.Fatalf("trusted proxy: %v %v", got, err)
	}
	// The same header from anyone else is ignored.
	if got, err := s.Certificate(req("10.0.0.2:1234", esc)); got != nil || err != nil {
		t.Fatalf("untrusted peer: %v %v", got, err)
	}
	if got, err := s.Certificate(req("10.0.0.1:1234")); got != nil || err != nil {
		t.Fatalf("no header: %v %v", got, err)
	}
	for name, v := range map[string][]string{
		"not PEM":   {"hello"},
		"bad DER":   {url.QueryEscape("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")},
		"bad %":     {"%zz"},
		"twice":     {esc, esc},
		"too large": {strings.Repeat("A", clientcert.MaxHeaderPEM+1)},
	} {
		if got, err := s.Certificate(req("10.0.0.1:1234", v...)); got != nil || !errors.Is(err, clientcert.ErrHeader) {
			t.Errorf("%s: %v %v", name, got, err)
		}
	}
	// The middleware keeps the peer even after clientip rewrites RemoteAddr.
	var seen *x509.Certificate
	h := s.Middleware(proxies.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ = s.Certificate(r)
	})))
	r := req("10.0.0.1:1234", esc)
	r.Header.Set("X-Forwarded-For", "192.0.2.9")
	h.ServeHTTP(httptest.NewRecorder(), r)
	if seen == nil || !seen.Equal(c.Cert) {
		t.Fatal("certificate lost behind the clientip middleware")
	}
	// The TLS peer certificate, when there is no trusted proxy.
	r = req("192.0.2.1:1")
	r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c.Cert}}
	if got, _ := (&clientcert.Source{}).Certificate(r); got == nil || !got.Equal(c.Cert) {
		t.Fatal("TLS peer certificate not returned")
	}
	var nilSource *clientcert.Source
	if got, err := nilSource.Certificate(r); got != nil || err != nil {
		t.Fatal("nil source found a certificate")
	}
}

func TestLoadCAs(t *testing.T) {
	dir := t.TempDir()
	ca := ststest.NewCA(t, "ca")
	good := ca.File(t, dir, "ca")
	if _, err := clientcert.LoadCAs(good); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.pem")
	os.WriteFile(empty, []byte("not a certificate"), 0o600)
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o600)
	for _, p := range []string{empty, bad, filepath.Join(dir, "missing.pem")} {
		if _, err := clientcert.LoadCAs(p); err == nil || !strings.Contains(err.Error(), "client-ca") {
			t.Errorf("%s: %v", p, err)
		}
	}
}

// A verified chain is remembered only within the validity of every
// certificate of it; failures are never remembered.
func TestVerifyChainCache(t *testing.T) {
	now := time.Now()
	root := ststest.NewCA(t, "root")
	sub := root.Intermediate(t, "sub")
	leaf := sub.Issue(t, ststest.CertOptions{NotAfter: now.Add(48 * time.Hour)})
	s := &clientcert.Source{ClientCAs: root.Pool()}
	if err := s.VerifyChain(leaf.Cert, now); err == nil {
		t.Fatal("verified without the intermediate")
	}
	if err := s.VerifyChainWith(leaf.Cert, leaf.Intermediates, now); err != nil {
		t.Fatal(err)
	}
	if err := s.VerifyChain(leaf.Cert, now.Add(time.Minute)); err != nil {
		t.Fatalf("not remembered: %v", err)
	}
	// The intermediate expires (in 24 h) before the leaf (48 h).
	if err := s.VerifyChain(leaf.Cert, sub.Cert.NotAfter.Add(time.Second)); err == nil {
		t.Fatal("remembered past the intermediate's expiry")
	}
	if err := s.VerifyChain(leaf.Cert, leaf.Cert.NotBefore.Add(-time.Second)); err == nil {
		t.Fatal("remembered before the leaf is valid")
	}
}
