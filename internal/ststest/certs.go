package ststest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/keybridge/sts/internal/clientcert"
	"github.com/keybridge/sts/internal/clientip"
	"github.com/keybridge/sts/internal/store"
)

// CA is a certificate authority generated for a test: it issues server and
// client certificates.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// PEM is the CA certificate in PEM form (a --client-ca bundle).
	PEM []byte
	// parents are the CA certificates above an intermediate CA, nearest
	// first, up to the root's child: what a leaf sends after itself.
	parents []*x509.Certificate
}

// Cert is a generated certificate with its private key.
type Cert struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// Intermediates are the CA certificates between the leaf and the root
	// (a leaf of an intermediate CA); the TLS handshake sends them.
	Intermediates []*x509.Certificate
	// CertPEM and KeyPEM are the PEM encodings (key in PKCS #8).
	CertPEM, KeyPEM []byte
}

// CertOptions describe a leaf certificate. Zero values take defaults: a
// validity from an hour ago to a day ahead, client-auth extended key usage,
// a fresh P-256 key.
type CertOptions struct {
	Subject   pkix.Name
	DNS       []string
	URIs      []string
	IPs       []string
	Emails    []string
	NotBefore time.Time
	NotAfter  time.Time
	// ExtKeyUsage defaults to client authentication;
	// ServerAuth adds server authentication (for a server certificate).
	ExtKeyUsage []x509.ExtKeyUsage
	// Key is the leaf's key; a fresh P-256 key when nil.
	Key crypto.Signer
}

// NewCA generates a self-signed CA named name.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	return newCA(t, name, nil)
}

// Intermediate generates a CA named name signed by ca: its leaves chain to
// ca's root through it.
func (ca *CA) Intermediate(t testing.TB, name string) *CA {
	t.Helper()
	sub := newCA(t, name, ca)
	if ca.parents != nil || !bytesEqual(ca.Cert.RawIssuer, ca.Cert.RawSubject) {
		sub.parents = append([]*x509.Certificate{ca.Cert}, ca.parents...)
	}
	return sub
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

func newCA(t testing.TB, name string, parent *CA) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"sts test"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	signer, signerKey := tmpl, crypto.Signer(key)
	if parent != nil {
		signer, signerKey = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, key.Public(), signerKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &CA{Cert: c, Key: key, PEM: pemBlock("CERTIFICATE", der)}
}

// Pool is a pool holding only the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Issue signs a leaf certificate described by o.
func (ca *CA) Issue(t testing.TB, o CertOptions) *Cert {
	t.Helper()
	c := issue(t, o, ca.Cert, ca.Key)
	if !bytesEqual(ca.Cert.RawIssuer, ca.Cert.RawSubject) {
		c.Intermediates = append([]*x509.Certificate{ca.Cert}, ca.parents...)
	}
	return c
}

// Client issues a client certificate with common name cn, valid now.
func (ca *CA) Client(t testing.TB, cn string) *Cert {
	t.Helper()
	return ca.Issue(t, CertOptions{Subject: pkix.Name{CommonName: cn}})
}

// Server issues a server certificate for 127.0.0.1, ::1 and localhost.
func (ca *CA) Server(t testing.TB) *Cert {
	t.Helper()
	return ca.Issue(t, CertOptions{
		Subject:     pkix.Name{CommonName: "localhost"},
		DNS:         []string{"localhost"},
		IPs:         []string{"127.0.0.1", "::1"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
}

// SelfSigned generates a self-signed client certificate described by o
// (for self_signed_tls_client_auth).
func SelfSigned(t testing.TB, o CertOptions) *Cert {
	t.Helper()
	if o.Key == nil {
		o.Key = newKey(t)
	}
	return issue(t, o, nil, o.Key)
}

func issue(t testing.TB, o CertOptions, parent *x509.Certificate, parentKey crypto.Signer) *Cert {
	t.Helper()
	key := o.Key
	if key == nil {
		key = newKey(t)
	}
	if o.NotBefore.IsZero() {
		o.NotBefore = time.Now().Add(-time.Hour)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = time.Now().Add(24 * time.Hour)
	}
	if o.ExtKeyUsage == nil {
		o.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               o.Subject,
		NotBefore:             o.NotBefore,
		NotAfter:              o.NotAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           o.ExtKeyUsage,
		BasicConstraintsValid: true,
		DNSNames:              o.DNS,
		EmailAddresses:        o.Emails,
	}
	for _, s := range o.URIs {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	for _, s := range o.IPs {
		ip := net.ParseIP(s)
		if ip == nil {
			t.Fatalf("bad IP %q", s)
		}
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	k, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return &Cert{Cert: c, Key: key, CertPEM: pemBlock("CERTIFICATE", der), KeyPEM: pemBlock("PRIVATE KEY", k)}
}

// TLS is the certificate in the form crypto/tls takes.
func (c *Cert) TLS() tls.Certificate {
	chain := [][]byte{c.Cert.Raw}
	for _, i := range c.Intermediates {
		chain = append(chain, i.Raw)
	}
	return tls.Certificate{Certificate: chain, PrivateKey: c.Key, Leaf: c.Cert}
}

// ChainPEM is the certificate and its intermediates, in PEM.
func (c *Cert) ChainPEM() []byte {
	out := append([]byte(nil), c.CertPEM...)
	for _, i := range c.Intermediates {
		out = append(out, pemBlock("CERTIFICATE", i.Raw)...)
	}
	return out
}

// Files writes the certificate and key as PEM files in dir and returns
// their paths.
func (c *Cert) Files(t testing.TB, dir, name string) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, c.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, c.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// File writes the CA certificate as a PEM file in dir and returns its path.
func (ca *CA) File(t testing.TB, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name+".pem")
	if err := os.WriteFile(p, ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// ServerTLSConfig is the configuration of a server presenting cert that
// asks for (and does not require) a client certificate, as `sts serve
// --client-ca` does: chains are verified per client method, not in the
// handshake.
func ServerTLSConfig(cert *Cert) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert.TLS()},
		ClientAuth:   tls.RequestClientCert,
		MinVersion:   tls.VersionTLS12,
	}
}

// HTTPClient returns a client trusting serverCA that presents client (nil:
// no certificate). Each client has its own transport, so connections are
// not shared between certificates.
func HTTPClient(serverCA *CA, client *Cert) *http.Client {
	cfg := &tls.Config{RootCAs: serverCA.Pool(), MinVersion: tls.VersionTLS12}
	if client != nil {
		cfg.Certificates = []tls.Certificate{client.TLS()}
	}
	return &http.Client{
		Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true},
		Timeout:   30 * time.Second,
	}
}

func newKey(t testing.TB) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatal(err)
	}
	return n.Add(n, big.NewInt(1))
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// TLS configures an HTTPS test server (Options.TLS).
type TLS struct {
	// ServerCA issues the server's certificate; a fresh CA when nil.
	ServerCA *CA
	// ClientCA is the --client-ca bundle; nil: none (only
	// self_signed_tls_client_auth works).
	ClientCA *CA
	// CertHeader and TrustedProxies: --client-cert-header and
	// --trusted-proxies.
	CertHeader     string
	TrustedProxies *clientip.Resolver

	anonymous *http.Client
}

func (o *TLS) setUp(t testing.TB, s *STS) *clientcert.Source {
	if o == nil {
		return nil
	}
	cp := *o // the caller's options may start several servers
	o = &cp
	if o.ServerCA == nil {
		o.ServerCA = NewCA(t, "test server CA")
	}
	s.TLS = o
	s.URL = "https://" + s.HTTP.Listener.Addr().String()
	s.HTTP.TLS = ServerTLSConfig(o.ServerCA.Server(t))
	o.anonymous = HTTPClient(o.ServerCA, nil)
	src := &clientcert.Source{Header: o.CertHeader, Proxies: o.TrustedProxies}
	if o.ClientCA != nil {
		src.ClientCAs = o.ClientCA.Pool()
	}
	return src
}

func (o *TLS) proxies() *clientip.Resolver {
	if o == nil {
		return nil
	}
	return o.TrustedProxies
}

// Client is an HTTP client of s presenting cert (nil: none).
func (s *STS) Client(cert *Cert) *http.Client {
	if s.TLS == nil {
		s.T.Fatal("the STS does not serve TLS")
	}
	return HTTPClient(s.TLS.ServerCA, cert)
}

// DoWith sends req with hc and records the answer.
func (s *STS) DoWith(hc *http.Client, req *http.Request) *Response {
	s.T.Helper()
	resp, err := hc.Do(req)
	if err != nil {
		s.T.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.T.Fatal(err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// PostCert posts form to path over a connection presenting cert (nil:
// none), with no Authorization header: the client_id in form names the
// client.
func (s *STS) PostCert(path string, cert *Cert, form url.Values) *Response {
	s.T.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		s.T.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return s.DoWith(s.Client(cert), req)
}

// CreateKeyClient registers a client with no secret (a key-based method:
// mutate sets AuthMethod and Binding); defaults as CreateClient.
func (s *STS) CreateKeyClient(mutate func(*store.Client)) *Client {
	s.T.Helper()
	return s.createClient("test key client", "", mutate)
}

// JWKS is the JSON Web Key Set of the public keys of certs (for a
// self_signed_tls_client_auth client's Binding.JWKS).
func JWKS(t testing.TB, certs ...*Cert) []byte {
	t.Helper()
	var set jose.JSONWebKeySet
	for _, c := range certs {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: c.Key.Public(), Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
