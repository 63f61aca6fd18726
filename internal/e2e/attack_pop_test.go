package e2e_test

// Attacks on proof of possession (issue 13) against real `sts serve`
// processes: mTLS client authentication over real TLS handshakes on
// loopback, the client certificate header of a proxy, DPoP proofs' htu,
// bound tokens through every exchange, private_key_jwt and the fetching
// of clients' jwks_uri, and who can write into the single-use jti table.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/keybridge/sts/dpop"
	"github.com/keybridge/sts/internal/clientcert"
	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/oauth"
)

// popServer is a TLS `sts serve` with a client CA, and what its callers
// need: the server CA to trust.
type popServer struct {
	c        *cluster
	n        *node
	serverCA *ststest.CA
	clientCA *ststest.CA
	dir      string
}

// startServe runs `sts serve` like cluster.start, with extra arguments and
// environment, over TLS when tlsCA is set (then n.URL is https and the
// readiness probe trusts tlsCA).
func startServe(t *testing.T, c *cluster, name string, tlsCA *ststest.CA, env []string, args ...string) *node {
	t.Helper()
	n := &node{Name: name, c: c, log: filepath.Join(c.logs, name+".log"), exited: make(chan struct{})}
	f, err := os.Create(n.log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dataDir := filepath.Join(c.logs, name+"-data")
	all := append([]string{"serve", "--addr", "127.0.0.1:0", "--issuer", clusterIssuer}, c.storage(dataDir)...)
	all = append(all, c.args...)
	all = append(all, args...)
	n.cmd = exec.Command(c.bin, all...)
	n.cmd.Env = append(c.env(), env...)
	n.cmd.Stdout, n.cmd.Stderr = f, f
	killWithParent(n.cmd)
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.Nodes = append(c.Nodes, n)
	go func() {
		n.cmd.Wait()
		close(n.exited)
	}()
	hc := c.http
	scheme := "http://"
	if tlsCA != nil {
		scheme = "https://"
		hc = httpsClient(tlsCA, nil)
	}
	deadline := time.Now().Add(60 * time.Second)
	for n.URL == "" {
		b, _ := os.ReadFile(n.log)
		if m := listening.FindSubmatch(b); m != nil {
			n.URL = scheme + string(m[1])
			break
		}
		select {
		case <-n.exited:
			t.Fatalf("%s exited before listening:\n%s", name, b)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not start listening within a minute:\n%s", name, b)
		}
	}
	for {
		resp, err := hc.Get(n.URL + server.ReadyPath)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return n
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within a minute (%v)", name, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// newPoPServer starts one TLS `sts serve` on SQLite with a client CA.
func newPoPServer(t *testing.T, args ...string) *popServer {
	t.Helper()
	c := newCluster(t, clusterOptions{SQLite: true})
	p := &popServer{c: c, serverCA: ststest.NewCA(t, "server-ca"), clientCA: ststest.NewCA(t, "client-ca"), dir: t.TempDir()}
	certFile, keyFile := p.serverCA.Server(t).Files(t, p.dir, "server")
	all := append([]string{"--tls-cert", certFile, "--tls-key", keyFile, "--client-ca", p.clientCA.File(t, p.dir, "client-ca")}, args...)
	p.n = startServe(t, c, "tls", p.serverCA, nil, all...)
	return p
}

// httpsClient trusts roots and presents cert (nil: none). Each client has
// its own connections, so a certificate never rides on another's.
func httpsClient(roots *ststest.CA, cert *ststest.Cert) *http.Client {
	cfg := &tls.Config{RootCAs: roots.Pool(), MinVersion: tls.VersionTLS12}
	if cert != nil {
		tc := cert.TLS()
		cfg.Certificates = []tls.Certificate{tc}
	}
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

// postWith posts form to n's path with the given client and headers.
func postWith(t *testing.T, hc *http.Client, n *node, path string, form url.Values, h http.Header) reply {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, n.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, vs := range h {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return reply{Err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return reply{Status: resp.StatusCode, Body: b, Err: err}
}

// createKeyClient registers a client through the CLI and returns its id
// (key-based clients have no secret).
func createKeyClient(c *cluster, args ...string) string {
	c.t.Helper()
	var v struct {
		ID string `json:"client_id"`
	}
	c.CLIJSON(&v, append([]string{"client", "create"}, args...)...)
	if v.ID == "" {
		c.t.Fatalf("client create printed no id")
	}
	return v.ID
}

// cnfOf is the cnf claim of a JWT access token of a successful answer.
func cnfOf(t *testing.T, r reply) map[string]any {
	t.Helper()
	_, claims, err := jwtParts(accessToken(t, r))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := claims["cnf"].(map[string]any)
	return m
}

// refusals counts the audit records of refusals of a client with the
// given error code.
func refusals(t *testing.T, c *cluster, clientID, code string) int {
	t.Helper()
	recs, err := c.auditStore(t).ListAudit(t.Context(), store.AuditFilter{ClientID: clientID, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range recs {
		if r.Decision == store.DecisionRefused && r.Error == code {
			n++
		}
	}
	return n
}

// subjectCert issues a client certificate of ca whose subject is the RDN
// sequence rdns exactly as given (one attribute per RDN, in order).
func subjectCert(t *testing.T, ca *ststest.CA, rdns ...[2]string) *ststest.Cert {
	t.Helper()
	oids := map[string]asn1.ObjectIdentifier{"CN": {2, 5, 4, 3}, "O": {2, 5, 4, 10}}
	var name pkix.Name
	for _, r := range rdns {
		name.ExtraNames = append(name.ExtraNames, pkix.AttributeTypeAndValue{Type: oids[r[0]], Value: r[1]})
	}
	return ca.Issue(t, ststest.CertOptions{Subject: name})
}

// sameSubjectRing is a leaf for victim.example sent with n CA
// certificates that all have the subject "X", each with its own key and
// signed by the next one's: path building could try every order of them
// (review of issue 13).
func sameSubjectRing(t *testing.T, n int) *ststest.Cert {
	t.Helper()
	keys := make([]*ecdsa.PrivateKey, n)
	for i := range keys {
		keys[i] = mustKey(t, elliptic.P256())
	}
	name := pkix.Name{CommonName: "X"}
	var ring []*x509.Certificate
	for i := range n {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 2)), Subject: name, NotBefore: time.Now().Add(-time.Hour),
			NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, &x509.Certificate{Subject: name, PublicKey: keys[(i+1)%n].Public()},
			keys[i].Public(), keys[(i+1)%n])
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		ring = append(ring, c)
	}
	leaf := (&ststest.CA{Cert: &x509.Certificate{Subject: name, RawSubject: ring[0].RawSubject, PublicKey: keys[0].Public()}, Key: keys[0]}).
		Issue(t, ststest.CertOptions{DNS: []string{"victim.example"}})
	leaf.Intermediates = ring
	return leaf
}

// expiredIntermediate is a CA under root whose own certificate expired an
// hour ago.
func expiredIntermediate(t *testing.T, root *ststest.CA) *ststest.CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "expired intermediate"},
		NotBefore:             time.Now().Add(-48 * time.Hour),
		NotAfter:              time.Now().Add(-time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root.Cert, key.Public(), root.Key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &ststest.CA{Cert: cert, Key: key}
}

// TestAttackPoPCertificateNames: tls_client_auth over a real TLS handshake
// accepts only a chain to the client CA, for client authentication, valid
// now, carrying the registered name itself: not the CN for a SAN, not a
// subject that only prints like the registered DN once Go rebuilds it
// (two CNs: fixed, review of issue 13), not a server-only certificate, not
// one under an expired intermediate, not one of another CA nor a
// self-signed one. Each refusal is invalid_client, audited, and counted
// toward the client's failure budget; past it the answer is 429, yet the
// right certificate still passes; a secret client keeps working on the
// same port, with or without a certificate of its own.
func TestAttackPoPCertificateNames(t *testing.T) {
	p := newPoPServer(t, "--auth-failure-rate-per-client", "3", "--auth-failure-rate-per-address", "1000")
	c, n, ca := p.c, p.n, p.clientCA
	cc := func(form url.Values, cert *ststest.Cert) reply {
		form.Set("grant_type", oauth.GrantTypeClientCredentials)
		return postWith(t, httpsClient(p.serverCA, cert), n, server.TokenPath, form, nil)
	}
	good := ca.Issue(t, ststest.CertOptions{Subject: pkix.Name{CommonName: "victim.example"}, DNS: []string{"victim.example"}})
	other := ststest.NewCA(t, "other-ca")
	cases := []struct {
		name string
		reg  []string
		cert *ststest.Cert
	}{
		{"the CN is not a DNS SAN", []string{"--tls-san-dns", "victim.example"},
			ca.Issue(t, ststest.CertOptions{Subject: pkix.Name{CommonName: "victim.example"}, DNS: []string{"attacker.example"}})},
		{"a second CN after the attacker's", []string{"--tls-subject-dn", "CN=victim"},
			subjectCert(t, ca, [2]string{"CN", "attacker"}, [2]string{"CN", "victim"})},
		{"a multi-valued RDN is not two RDNs", []string{"--tls-subject-dn", "CN=victim,O=Good"},
			multiValuedRDN(t, ca)},
		{"server authentication only", []string{"--tls-san-dns", "victim.example"},
			ca.Issue(t, ststest.CertOptions{DNS: []string{"victim.example"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})},
		{"expired leaf", []string{"--tls-san-dns", "victim.example"},
			ca.Issue(t, ststest.CertOptions{DNS: []string{"victim.example"}, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})},
		{"expired intermediate", []string{"--tls-san-dns", "victim.example"},
			expiredIntermediate(t, ca).Issue(t, ststest.CertOptions{DNS: []string{"victim.example"}})},
		{"another CA", []string{"--tls-san-dns", "victim.example"},
			other.Issue(t, ststest.CertOptions{DNS: []string{"victim.example"}})},
		{"self-signed", []string{"--tls-san-dns", "victim.example"},
			ststest.SelfSigned(t, ststest.CertOptions{DNS: []string{"victim.example"}})},
		{"no certificate", []string{"--tls-san-dns", "victim.example"}, nil},
		{"seven same-subject intermediates", []string{"--tls-san-dns", "victim.example"}, sameSubjectRing(t, 7)},
	}
	for i, tc := range cases {
		id := createKeyClient(c, append([]string{"--name", fmt.Sprintf("mtls-%d", i), "--auth-method", "tls_client_auth"}, tc.reg...)...)
		if r := cc(url.Values{"client_id": {id}}, tc.cert); r.Status != http.StatusUnauthorized || r.errorCode() != string(oauth.ErrInvalidClient) {
			t.Errorf("%s: %s, want 401 invalid_client", tc.name, r)
		}
		if got := refusals(t, c, id, string(oauth.ErrInvalidClient)); got != 1 {
			t.Errorf("%s: %d audited refusals, want 1", tc.name, got)
		}
	}
	// The genuine subject DN of a two-CN certificate is registrable.
	twoCN := subjectCert(t, ca, [2]string{"CN", "attacker"}, [2]string{"CN", "victim"})
	id := createKeyClient(c, "--name", "two-cn", "--auth-method", "tls_client_auth", "--tls-subject-dn", "CN=victim,CN=attacker")
	if r := cc(url.Values{"client_id": {id}}, twoCN); r.Status != http.StatusOK {
		t.Errorf("the exact DN of a two-CN certificate: %s", r)
	}

	// A genuine chain through an intermediate CA, sent by the client.
	inter := ca.Intermediate(t, "issuing-ca").Issue(t, ststest.CertOptions{DNS: []string{"deep.example"}})
	id = createKeyClient(c, "--name", "deep", "--auth-method", "tls_client_auth", "--tls-san-dns", "deep.example")
	if r := cc(url.Values{"client_id": {id}}, inter); r.Status != http.StatusOK {
		t.Errorf("a chain through an intermediate CA: %s", r)
	}

	// The failure budget: three refusals, then 429; the right
	// certificate still passes, and its token is bound to it.
	id = createKeyClient(c, "--name", "budget", "--auth-method", "tls_client_auth", "--tls-san-dns", "victim.example")
	bad := other.Issue(t, ststest.CertOptions{DNS: []string{"victim.example"}})
	for i := range 3 {
		if r := cc(url.Values{"client_id": {id}}, bad); r.Status != http.StatusUnauthorized {
			t.Fatalf("failure %d: %s", i+1, r)
		}
	}
	if r := cc(url.Values{"client_id": {id}}, bad); r.Status != http.StatusTooManyRequests || r.errorCode() != string(oauth.ErrTemporarilyUnavail) {
		t.Errorf("fourth failure: %s, want 429 temporarily_unavailable", r)
	}
	r := cc(url.Values{"client_id": {id}}, good)
	if r.Status != http.StatusOK {
		t.Fatalf("the right certificate past the budget: %s", r)
	}
	if cnf := cnfOf(t, r); cnf["x5t#S256"] != clientcert.Thumbprint(good.Cert) {
		t.Errorf("cnf %v, want x5t#S256 %s", cnf, clientcert.Thumbprint(good.Cert))
	}

	// A secret client on the same port: without a certificate, and with
	// one (ignored: its tokens are bearer).
	sec := c.CreateClient("--name", "secret")
	for _, cert := range []*ststest.Cert{nil, good} {
		h := http.Header{"Authorization": {oauth.BasicAuth(sec.ID, sec.Secret)}}
		r := postWith(t, httpsClient(p.serverCA, cert), n, server.TokenPath, url.Values{"grant_type": {oauth.GrantTypeClientCredentials}}, h)
		if r.Status != http.StatusOK {
			t.Fatalf("secret client (certificate %v): %s", cert != nil, r)
		}
		if cnf := cnfOf(t, r); cnf != nil {
			t.Errorf("secret client's token is bound: %v", cnf)
		}
	}
}

// multiValuedRDN issues a certificate whose subject is the single RDN
// {CN=victim + O=Good}.
func multiValuedRDN(t *testing.T, ca *ststest.CA) *ststest.Cert {
	t.Helper()
	rdn := pkix.RDNSequence{{
		{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: "victim"},
		{Type: asn1.ObjectIdentifier{2, 5, 4, 10}, Value: "Good"},
	}}
	raw, err := asn1.Marshal(rdn)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		RawSubject:   raw,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &ststest.Cert{Cert: cert, Key: key}
}

// TestAttackPoPCertificateHeader: the client certificate header is
// believed only from --trusted-proxies (the TCP peer, whatever
// X-Forwarded-For says); from a trusted proxy it is the client's
// certificate, sent once, and its chain is still verified.
func TestAttackPoPCertificateHeader(t *testing.T) {
	ca := ststest.NewCA(t, "client-ca")
	good := ca.Issue(t, ststest.CertOptions{DNS: []string{"radio.example"}})
	header := func(certs ...*ststest.Cert) string {
		var b []byte
		for _, c := range certs {
			b = append(b, c.ChainPEM()...)
		}
		return url.PathEscape(string(b))
	}
	for _, trusted := range []bool{false, true} {
		proxies := "192.0.2.0/24" // not the loopback peer of this test
		if trusted {
			proxies = "127.0.0.1/32"
		}
		c := newCluster(t, clusterOptions{SQLite: true})
		dir := t.TempDir()
		n := startServe(t, c, "proxied", nil, nil, "--client-ca", ca.File(t, dir, "ca"),
			"--client-cert-header", "X-Client-Cert", "--trusted-proxies", proxies)
		id := createKeyClient(c, "--name", "radio", "--auth-method", "tls_client_auth", "--tls-san-dns", "radio.example")
		send := func(h http.Header) reply {
			return postWith(t, c.http, n, server.TokenPath, url.Values{"grant_type": {oauth.GrantTypeClientCredentials}, "client_id": {id}}, h)
		}
		r := send(http.Header{"X-Client-Cert": {header(good)}, "X-Forwarded-For": {"192.0.2.7"}})
		if !trusted {
			if r.Status != http.StatusUnauthorized {
				t.Errorf("header from an untrusted peer (claiming a trusted one in X-Forwarded-For): %s", r)
			}
			if got := refusals(t, c, id, string(oauth.ErrInvalidClient)); got != 1 {
				t.Errorf("untrusted peer: %d audited refusals, want 1", got)
			}
			continue
		}
		if r.Status != http.StatusOK {
			t.Fatalf("header from the trusted proxy: %s", r)
		}
		if cnf := cnfOf(t, r); cnf["x5t#S256"] != clientcert.Thumbprint(good.Cert) {
			t.Errorf("cnf %v", cnf)
		}
		for what, h := range map[string]http.Header{
			"sent twice":   {"X-Client-Cert": {header(good), header(good)}},
			"another CA":   {"X-Client-Cert": {header(ststest.NewCA(t, "x").Issue(t, ststest.CertOptions{DNS: []string{"radio.example"}}))}},
			"empty":        {"X-Client-Cert": {""}},
			"not PEM":      {"X-Client-Cert": {"%%%"}},
			"too long":     {"X-Client-Cert": {strings.Repeat("A", clientcert.MaxHeaderPEM+1)}},
			"a key inside": {"X-Client-Cert": {url.PathEscape(string(good.KeyPEM))}},
		} {
			if r := send(h); r.Status != http.StatusUnauthorized {
				t.Errorf("%s: %s, want 401", what, r)
			}
		}
		if got := refusals(t, c, id, string(oauth.ErrInvalidClient)); got != 6 {
			t.Errorf("trusted proxy: %d audited refusals, want 6 (one per cause)", got)
		}
	}
}

// TestAttackPoPDPoPHTU: a DPoP proof at the token endpoint is for the
// issuer's token URL only: the same URL written differently (host case,
// the default port) is accepted; another scheme, path, trailing slash,
// method, the instance's own address behind the proxy, or another
// endpoint of this server are refused, each audited.
func TestAttackPoPDPoPHTU(t *testing.T) {
	c := newCluster(t, clusterOptions{SQLite: true}, "a")
	n := c.Nodes[0]
	cl := c.CreateClient("--name", "dpop")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	try := func(htm, htu string) reply {
		p, err := dpop.NewProof(key, "", htm, htu, dpop.ProofOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return postWith(t, c.http, n, server.TokenPath, url.Values{"grant_type": {oauth.GrantTypeClientCredentials}},
			http.Header{"Authorization": {oauth.BasicAuth(cl.ID, cl.Secret)}, dpop.Header: {p}})
	}
	for _, htu := range []string{clusterIssuer + server.TokenPath, "HTTP://STS.Cluster.Test" + server.TokenPath, "http://sts.cluster.test:80" + server.TokenPath, clusterIssuer + server.TokenPath + "?x=1"} {
		if r := try(http.MethodPost, htu); r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"token_type":"DPoP"`) {
			t.Errorf("htu %s: %s", htu, r)
		}
	}
	refused := 0
	for _, tc := range []struct{ htm, htu string }{
		{http.MethodPost, "https://sts.cluster.test" + server.TokenPath},
		{http.MethodPost, clusterIssuer + server.TokenPath + "/"},
		{http.MethodPost, clusterIssuer + strings.ToUpper(server.TokenPath)},
		{http.MethodPost, clusterIssuer + "/%74" + server.TokenPath[2:]},
		{http.MethodPost, clusterIssuer + "/x/.." + server.TokenPath},
		{http.MethodPost, clusterIssuer + ":8080" + server.TokenPath},
		{http.MethodPost, n.URL + server.TokenPath},
		{http.MethodPost, clusterIssuer + server.IntrospectPath},
		{http.MethodPost, "http://sts.cluster.test.evil.example" + server.TokenPath},
		{http.MethodGet, clusterIssuer + server.TokenPath},
		{"post", clusterIssuer + server.TokenPath},
	} {
		if r := try(tc.htm, tc.htu); r.Status != http.StatusBadRequest || r.errorCode() != "invalid_dpop_proof" {
			t.Errorf("%s %s: %s, want 400 invalid_dpop_proof", tc.htm, tc.htu, r)
			continue
		}
		refused++
	}
	if got := refusals(t, c, cl.ID, "invalid_dpop_proof"); got != refused {
		t.Errorf("%d audited refusals, want %d", got, refused)
	}
}

// TestAttackPoPBoundNeverBearer: a DPoP-bound token, JWT or opaque, comes
// out of no exchange as a bearer token: as subject or actor token it needs
// a proof with its key, another key is refused, and what is issued is
// bound to the same key; introspection tells its cnf. Over TLS, a
// certificate-bound token is exchanged only over a connection with that
// certificate, and the result is bound to it.
func TestAttackPoPBoundNeverBearer(t *testing.T) {
	p := newPoPServer(t)
	c, n := p.c, p.n
	const aud = "https://api.example"
	mk := func(name, format string) credentials {
		return c.CreateClient("--name", name, "--audience", aud, "--token-format", format,
			"--grant-type", "client-credentials", "--grant-type", "token-exchange")
	}
	keyA, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	keyB, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jkt := func(k *ecdsa.PrivateKey) string {
		tp, err := (&jose.JSONWebKey{Key: k.Public()}).Thumbprint(crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(tp)
	}
	hc := httpsClient(p.serverCA, nil)
	token := func(cl credentials, hc *http.Client, key *ecdsa.PrivateKey, form url.Values) reply {
		h := http.Header{"Authorization": {oauth.BasicAuth(cl.ID, cl.Secret)}}
		if key != nil {
			pr, err := dpop.NewProof(key, "", http.MethodPost, clusterIssuer+server.TokenPath, dpop.ProofOptions{})
			if err != nil {
				t.Fatal(err)
			}
			h.Set(dpop.Header, pr)
		}
		return postWith(t, hc, n, server.TokenPath, form, h)
	}
	ccForm := url.Values{"grant_type": {oauth.GrantTypeClientCredentials}, "resource": {aud}}
	exForm := func(subject, actor string) url.Values {
		f := url.Values{"grant_type": {oauth.GrantTypeTokenExchange}, "subject_token": {subject},
			"subject_token_type": {oauth.TokenTypeAccessToken}, "resource": {aud}}
		if actor != "" {
			f.Set("actor_token", actor)
			f.Set("actor_token_type", oauth.TokenTypeAccessToken)
		}
		return f
	}
	for _, format := range []string{store.TokenFormatJWT, store.TokenFormatOpaque} {
		cl := mk("bound-"+format, format)
		r := token(cl, hc, keyA, ccForm)
		bound := accessToken(t, r)
		bearer := accessToken(t, token(cl, hc, nil, ccForm))
		for what, tc := range map[string]struct {
			form url.Values
			key  *ecdsa.PrivateKey
		}{
			"subject, no proof":         {exForm(bound, ""), nil},
			"subject, another key":      {exForm(bound, ""), keyB},
			"actor, no proof":           {exForm(bearer, bound), nil},
			"actor, another key":        {exForm(bearer, bound), keyB},
			"subject as jwt, no proof":  {func() url.Values { f := exForm(bound, ""); f.Set("subject_token_type", oauth.TokenTypeJWT); return f }(), nil},
			"subject and actor, no key": {exForm(bound, bound), nil},
		} {
			if format == store.TokenFormatOpaque && what == "subject as jwt, no proof" {
				continue
			}
			if r := token(cl, hc, tc.key, tc.form); r.Status != http.StatusBadRequest {
				t.Errorf("%s: %s: %s, want 400", format, what, r)
			}
		}
		for what, form := range map[string]url.Values{"subject": exForm(bound, ""), "actor": exForm(bearer, bound)} {
			r := token(cl, hc, keyA, form)
			if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"token_type":"DPoP"`) {
				t.Fatalf("%s: %s with its key: %s", format, what, r)
			}
			out := accessToken(t, r)
			ir, rr := n.introspectWith(t, hc, cl, out)
			if rr.Status != http.StatusOK || !ir.Active || ir.Cnf == nil || ir.Cnf.JKT != jkt(keyA) || ir.TokenType != oauth.TokenTypeDPoP {
				t.Errorf("%s: %s: introspection of the issued token: %s", format, what, rr)
			}
		}
		ir, rr := n.introspectWith(t, hc, cl, bound)
		if !ir.Active || ir.Cnf == nil || ir.Cnf.JKT != jkt(keyA) {
			t.Errorf("%s: introspection of the bound token: %s", format, rr)
		}
	}

	// Refresh tokens are bound too: beside an exchanged token, used by
	// the refresh grant or exchanged, only with their key.
	rc := c.CreateClient("--name", "bound-refresh", "--audience", aud,
		"--grant-type", "client-credentials", "--grant-type", "token-exchange", "--grant-type", "refresh-token")
	subject := accessToken(t, token(rc, hc, keyA, ccForm))
	r := token(rc, hc, keyA, exForm(subject, ""))
	var tr oauth.TokenResponse
	if r.Status != http.StatusOK || json.Unmarshal(r.Body, &tr) != nil || tr.RefreshToken == "" {
		t.Fatalf("exchange for a refresh token: %s", r)
	}
	refreshForm := url.Values{"grant_type": {oauth.GrantTypeRefreshToken}, "refresh_token": {tr.RefreshToken}}
	rtSubject := url.Values{"grant_type": {oauth.GrantTypeTokenExchange}, "subject_token": {tr.RefreshToken},
		"subject_token_type": {oauth.TokenTypeRefreshToken}}
	for what, tc := range map[string]struct {
		form url.Values
		key  *ecdsa.PrivateKey
	}{
		"refresh, no proof":         {refreshForm, nil},
		"refresh, another key":      {refreshForm, keyB},
		"exchange of it, no proof":  {rtSubject, nil},
		"exchange of it, other key": {rtSubject, keyB},
	} {
		if r := token(rc, hc, tc.key, tc.form); r.Status != http.StatusBadRequest {
			t.Errorf("bound refresh token, %s: %s, want 400", what, r)
		}
	}
	r = token(rc, hc, keyA, refreshForm)
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"token_type":"DPoP"`) {
		t.Fatalf("refresh with its key (the refusals must not have spent it): %s", r)
	}
	if cnf := cnfOf(t, r); cnf["jkt"] != jkt(keyA) {
		t.Errorf("refreshed token's cnf %v", cnf)
	}

	// Certificate-bound: a self-signed client, so no CA is involved.
	cert := ststest.SelfSigned(t, ststest.CertOptions{Subject: pkix.Name{CommonName: "device"}})
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: cert.Key.Public(), KeyID: "dev", Use: "sig"}}})
	jf := filepath.Join(p.dir, "dev.jwks")
	os.WriteFile(jf, jwks, 0o600)
	id := createKeyClient(c, "--name", "device", "--auth-method", "self_signed_tls_client_auth", "--jwks-file", jf,
		"--audience", aud, "--grant-type", "client-credentials", "--grant-type", "token-exchange")
	withCert, otherCert := httpsClient(p.serverCA, cert), httpsClient(p.serverCA, ststest.SelfSigned(t, ststest.CertOptions{}))
	form := func(f url.Values) url.Values { f.Set("client_id", id); return f }
	r = postWith(t, withCert, n, server.TokenPath, form(url.Values{"grant_type": {oauth.GrantTypeClientCredentials}, "resource": {aud}}), nil)
	tok := accessToken(t, r)
	x5t := clientcert.Thumbprint(cert.Cert)
	if cnf := cnfOf(t, r); cnf["x5t#S256"] != x5t {
		t.Fatalf("cnf %v", cnf)
	}
	r = postWith(t, withCert, n, server.IntrospectPath, form(url.Values{"token": {tok}}), nil)
	var ir oauth.IntrospectionResponse
	if r.Status != http.StatusOK || json.Unmarshal(r.Body, &ir) != nil || !ir.Active || ir.Cnf == nil || ir.Cnf.X5tS256 != x5t {
		t.Errorf("introspection of the certificate-bound token: %s", r)
	}
	// A secret client that may exchange any token holds the bound token
	// and presents it over a connection with another (or no) certificate.
	thief := c.CreateClient("--name", "thief", "--audience", aud, "--exchange-any", "--grant-type", "token-exchange")
	for what, hc := range map[string]*http.Client{"no certificate": hc, "another certificate": otherCert} {
		r := postWith(t, hc, n, server.TokenPath, exForm(tok, ""), http.Header{"Authorization": {oauth.BasicAuth(thief.ID, thief.Secret)}})
		if r.Status != http.StatusBadRequest {
			t.Errorf("thief, %s: %s, want 400", what, r)
		}
	}
	r = postWith(t, withCert, n, server.TokenPath, form(exForm(tok, "")), nil)
	if r.Status != http.StatusOK {
		t.Fatalf("exchange with the certificate: %s", r)
	}
	if cnf := cnfOf(t, r); cnf["x5t#S256"] != x5t {
		t.Errorf("exchanged token's cnf %v, want x5t#S256 %s", cnf, x5t)
	}
}

// introspectWith introspects tok as cl through hc.
func (n *node) introspectWith(t *testing.T, hc *http.Client, cl credentials, tok string) (oauth.IntrospectionResponse, reply) {
	t.Helper()
	r := postWith(t, hc, n, server.IntrospectPath, url.Values{"token": {tok}}, http.Header{"Authorization": {oauth.BasicAuth(cl.ID, cl.Secret)}})
	var ir oauth.IntrospectionResponse
	if r.Status == http.StatusOK {
		json.Unmarshal(r.Body, &ir)
	}
	return ir, r
}

// assertion signs a client assertion of id with the given claims
// overrides; alg and kid set its header.
func assertion(t *testing.T, key any, alg jose.SignatureAlgorithm, kid, id string, claims map[string]any) string {
	t.Helper()
	now := time.Now()
	c := map[string]any{"iss": id, "sub": id, "aud": clusterIssuer + server.TokenPath,
		"iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "jti": hex.EncodeToString(randomBytes(12))}
	for k, v := range claims {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	payload, _ := json.Marshal(c)
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader(jose.HeaderKey("kid"), kid)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestAttackPoPPrivateKeyJWT: client assertions signed with another
// algorithm or key than the registered one (alg none, HMAC with the
// public key, RS256 naming the EC key's kid), for another audience or
// endpoint, long-lived, or replayed at another endpoint are refused and
// audited; a disabled client's assertion is refused without spending its
// jti; an unauthenticated caller, however many assertions and DPoP proofs
// it sends, writes no row into the single-use jti table, which a
// successful authentication does, once, seen by both instances.
func TestAttackPoPPrivateKeyJWT(t *testing.T) {
	c := newCluster(t, clusterOptions{Args: []string{"--auth-failure-rate-per-client", "1000", "--auth-failure-rate-per-address", "1000"}}, "a", "b")
	a, b := c.Nodes[0], c.Nodes[1]
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: ecKey.Public(), KeyID: "ec", Use: "sig", Algorithm: "ES256"}}})
	jf := filepath.Join(t.TempDir(), "client.jwks")
	os.WriteFile(jf, jwks, 0o600)
	id := createKeyClient(c, "--name", "pkjwt", "--auth-method", "private_key_jwt", "--jwks-file", jf)
	send := func(n *node, path, as string) reply {
		form := url.Values{"client_assertion_type": {oauth.ClientAssertionTypeJWTBearer}, "client_assertion": {as}}
		switch path {
		case server.TokenPath:
			form.Set("grant_type", oauth.GrantTypeClientCredentials)
		default:
			form.Set("token", "whatever")
		}
		return postWith(t, c.http, n, path, form, nil)
	}
	usedJTIs := func() int {
		var k int
		if err := c.DB.QueryRow(t.Context(), `SELECT count(*) FROM used_jtis`).Scan(&k); err != nil {
			t.Fatal(err)
		}
		return k
	}
	unsigned := func() string {
		h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"ec"}`))
		pl, _ := json.Marshal(map[string]any{"iss": id, "sub": id, "aud": clusterIssuer, "exp": time.Now().Add(time.Minute).Unix(), "jti": "none-1"})
		return h + "." + base64.RawURLEncoding.EncodeToString(pl) + "."
	}
	pub, _ := x509.MarshalPKIXPublicKey(ecKey.Public())
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	bad := map[string]string{
		"alg none":                                 unsigned(),
		"HS256 with the public key":                assertion(t, pub, jose.HS256, "ec", id, nil),
		"RS256 naming the EC kid":                  assertion(t, rsaKey, jose.RS256, "ec", id, nil),
		"PS256 naming the EC kid":                  assertion(t, rsaKey, jose.PS256, "ec", id, nil),
		"ES256 by another key":                     assertion(t, other, jose.ES256, "ec", id, nil),
		"ES384 naming the EC kid":                  assertion(t, mustKey(t, elliptic.P384()), jose.ES384, "ec", id, nil),
		"aud another server":                       assertion(t, ecKey, jose.ES256, "ec", id, map[string]any{"aud": "https://evil.example/token"}),
		"aud the introspection endpoint, at token": assertion(t, ecKey, jose.ES256, "ec", id, map[string]any{"aud": clusterIssuer + server.IntrospectPath}),
		"aud the instance's own address":           assertion(t, ecKey, jose.ES256, "ec", id, map[string]any{"aud": a.URL + server.TokenPath}),
		"exp in a year":                            assertion(t, ecKey, jose.ES256, "ec", id, map[string]any{"exp": time.Now().Add(365 * 24 * time.Hour).Unix()}),
		"no exp":                                   assertion(t, ecKey, jose.ES256, "ec", id, map[string]any{"exp": nil}),
		"expired":                                  assertion(t, ecKey, jose.ES256, "ec", id, map[string]any{"exp": time.Now().Add(-time.Hour).Unix(), "iat": time.Now().Add(-2 * time.Hour).Unix()}),
		"no jti":                                   assertion(t, ecKey, jose.ES256, "ec", id, map[string]any{"jti": nil}),
		"sub another client":                       assertion(t, ecKey, jose.ES256, "ec", id, map[string]any{"sub": "someone"}),
		"larger than the limit":                    assertion(t, ecKey, jose.ES256, "ec", id, map[string]any{"pad": strings.Repeat("x", 9<<10)}),
	}
	before := usedJTIs()
	for what, as := range bad {
		if r := send(a, server.TokenPath, as); r.Status != http.StatusUnauthorized || r.errorCode() != string(oauth.ErrInvalidClient) {
			t.Errorf("%s: %s, want 401 invalid_client", what, r)
		}
	}
	// DPoP proofs with a wrong client secret: the proof is never looked
	// at, so no jti is stored.
	sec := c.CreateClient("--name", "secret")
	for range 20 {
		pr, _ := dpop.NewProof(other, "", http.MethodPost, clusterIssuer+server.TokenPath, dpop.ProofOptions{})
		r := postWith(t, c.http, a, server.TokenPath, url.Values{"grant_type": {oauth.GrantTypeClientCredentials}},
			http.Header{"Authorization": {oauth.BasicAuth(sec.ID, "wrong")}, dpop.Header: {pr}})
		if r.Status != http.StatusUnauthorized {
			t.Fatalf("wrong secret with a DPoP proof: %s", r)
		}
	}
	if got := usedJTIs(); got != before {
		t.Errorf("unauthenticated requests wrote %d rows into used_jtis", got-before)
	}
	// An assertion for the introspection endpoint works there, once.
	intro := assertion(t, ecKey, jose.ES256, "ec", id, map[string]any{"aud": clusterIssuer + server.IntrospectPath})
	if r := send(a, server.IntrospectPath, intro); r.Status != http.StatusOK {
		t.Errorf("assertion for introspection at introspection: %s", r)
	}
	// One assertion, spent at the revocation endpoint of a: a replay at
	// the token endpoint of b, and at the introspection endpoint of a.
	one := assertion(t, ecKey, jose.ES256, "ec", id, map[string]any{"aud": clusterIssuer})
	if r := send(a, server.RevokePath, one); r.Status != http.StatusOK {
		t.Fatalf("assertion at revocation: %s", r)
	}
	for _, tc := range []struct {
		n    *node
		path string
	}{{b, server.TokenPath}, {a, server.IntrospectPath}, {a, server.TokenPath}} {
		if r := send(tc.n, tc.path, one); r.Status != http.StatusUnauthorized {
			t.Errorf("replay at %s%s: %s", tc.n.Name, tc.path, r)
		}
	}
	if got := usedJTIs(); got != before+2 {
		t.Errorf("used_jtis grew by %d, want 2 (the two accepted assertions)", got-before)
	}
	// A disabled client: refused, and its assertion is not spent.
	c.CLI("client", "disable", id)
	next := assertion(t, ecKey, jose.ES256, "ec", id, nil)
	popWaitFor(t, "the disabled client refused", func() bool { return send(a, server.TokenPath, next).Status == http.StatusUnauthorized })
	c.CLI("client", "enable", id)
	popWaitFor(t, "the enabled client's unspent assertion accepted", func() bool { return send(a, server.TokenPath, next).Status == http.StatusOK })
	// Every refusal is audited (both instances write to the database).
	var audited int
	if err := c.DB.QueryRow(t.Context(), `SELECT count(*) FROM audit WHERE client_id = $1 AND decision = $2 AND error = 'invalid_client'`,
		id, store.DecisionRefused).Scan(&audited); err != nil {
		t.Fatal(err)
	}
	if audited < len(bad) {
		t.Errorf("%d audited invalid_client refusals, want at least %d (one per cause)", audited, len(bad))
	}
	var replays int
	if err := c.DB.QueryRow(t.Context(), `SELECT count(*) FROM audit WHERE client_id = $1 AND decision = $2 AND detail LIKE '%already used%'`,
		id, store.DecisionRefused).Scan(&replays); err != nil {
		t.Fatal(err)
	}
	if replays == 0 {
		t.Error("the replayed assertion is not audited")
	}
}

func mustKey(t *testing.T, curve elliptic.Curve) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// popWaitFor polls cond for up to 15 s (a CLI change reaches the running
// process through the store).
func popWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 15 s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestAttackPoPJWKSURI: an unauthenticated caller who knows the id of a
// private_key_jwt client registered with a jwks_uri cannot make the
// server fetch it at will: assertions with random kids, against a slow
// server, or a huge one, cost one fetch per client, not one per request;
// a loopback jwks_uri is never fetched; a redirect to another host is not
// followed. The jwks servers listen on this machine's non-loopback
// address, with a certificate of a CA the server process trusts
// (SSL_CERT_FILE).
func TestAttackPoPJWKSURI(t *testing.T) {
	ip := externalIP(t)
	ca := ststest.NewCA(t, "jwks-ca")
	dir := t.TempDir()
	caFile := ca.File(t, dir, "jwks-ca")
	srvCert := ca.Issue(t, ststest.CertOptions{IPs: []string{ip, "127.0.0.1"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Use: "sig", Algorithm: "ES256"}}})
	var hits [5]atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/good", func(w http.ResponseWriter, r *http.Request) { hits[0].Add(1); w.Write(jwks) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		hits[1].Add(1)
		select {
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
	})
	mux.HandleFunc("/huge", func(w http.ResponseWriter, r *http.Request) {
		hits[2].Add(1)
		w.Write([]byte(`{"keys":[`))
		chunk := []byte(strings.Repeat(" ", 64<<10))
		for range 160 { // 10 MiB
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		hits[3].Add(1)
		http.Redirect(w, r, fmt.Sprintf("https://127.0.0.1:%d/good", r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr).Port), http.StatusFound)
	})
	mux.HandleFunc("/loopback", func(w http.ResponseWriter, r *http.Request) { hits[4].Add(1); w.Write(jwks) })
	ln, err := tls.Listen("tcp", net.JoinHostPort(ip, "0"), &tls.Config{Certificates: []tls.Certificate{srvCert.TLS()}})
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: mux}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	lnLoop, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{srvCert.TLS()}})
	if err != nil {
		t.Fatal(err)
	}
	hsLoop := &http.Server{Handler: mux}
	go hsLoop.Serve(lnLoop)
	t.Cleanup(func() { hsLoop.Close() })
	base := "https://" + ln.Addr().String()

	c := newCluster(t, clusterOptions{SQLite: true})
	n := startServe(t, c, "a", nil, []string{"SSL_CERT_FILE=" + caFile, "HTTPS_PROXY=", "https_proxy="},
		"--auth-failure-rate-per-client", "1000", "--auth-failure-rate-per-address", "1000")
	client := func(name, uri string) string {
		return createKeyClient(c, "--name", name, "--auth-method", "private_key_jwt", "--jwks-uri", uri)
	}
	send := func(id, as string) reply {
		return postWith(t, c.http, n, server.TokenPath, url.Values{"grant_type": {oauth.GrantTypeClientCredentials},
			"client_assertion_type": {oauth.ClientAssertionTypeJWTBearer}, "client_assertion": {as}}, nil)
	}
	// The genuine client works: the fetch path is real.
	good := client("good", base+"/good")
	if r := send(good, assertion(t, key, jose.ES256, "k1", good, nil)); r.Status != http.StatusOK {
		t.Fatalf("jwks_uri client: %s", r)
	}
	// Random kids signed by a stranger's key: at most one refresh.
	stranger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for i := range 20 {
		if r := send(good, assertion(t, stranger, jose.ES256, fmt.Sprintf("kid-%d", i), good, nil)); r.Status != http.StatusUnauthorized {
			t.Fatalf("random kid %d: %s", i, r)
		}
	}
	if h := hits[0].Load(); h > 2 {
		t.Errorf("20 assertions with random kids made %d fetches of the jwks_uri, want at most 2", h)
	}
	for i, tc := range []struct {
		path string
		hit  int
	}{{"/slow", 1}, {"/huge", 2}, {"/redirect", 3}} {
		id := client(fmt.Sprintf("c%d", i), base+tc.path)
		for range 5 {
			if r := send(id, assertion(t, key, jose.ES256, "k1", id, nil)); r.Status != http.StatusUnauthorized {
				t.Errorf("%s: %s, want 401", tc.path, r)
			}
		}
		if h := hits[tc.hit].Load(); h != 1 {
			t.Errorf("%s: 5 assertions made %d fetches, want 1", tc.path, h)
		}
	}
	if h := hits[0].Load(); h > 2 {
		t.Errorf("the redirect to loopback was followed (%d fetches of /good)", h)
	}
	loop := client("loop", "https://"+lnLoop.Addr().String()+"/loopback")
	if r := send(loop, assertion(t, key, jose.ES256, "k1", loop, nil)); r.Status != http.StatusUnauthorized {
		t.Errorf("loopback jwks_uri: %s", r)
	}
	if h := hits[4].Load(); h != 0 {
		t.Errorf("a loopback jwks_uri was fetched %d times", h)
	}
	// A metadata address is refused before any connection (nothing
	// listens there; the refusal is the audit's cause).
	meta := client("meta", "https://169.254.169.254/jwks")
	if r := send(meta, assertion(t, key, jose.ES256, "k1", meta, nil)); r.Status != http.StatusUnauthorized {
		t.Errorf("link-local jwks_uri: %s", r)
	}
	recs, err := c.auditStore(t).ListAudit(t.Context(), store.AuditFilter{ClientID: meta})
	if err != nil || len(recs) == 0 || !strings.Contains(recs[0].Detail, "169.254.169.254") {
		t.Errorf("link-local jwks_uri audit: %+v %v", recs, err)
	}
}

// TestAttackPoPJWKSURIThroughProxy: behind an HTTPS_PROXY the dialer's
// address checks see only the proxy; a jwks_uri naming the cloud metadata
// address must still never be asked of the proxy (fixed, review of issue
// 13).
func TestAttackPoPJWKSURIThroughProxy(t *testing.T) {
	ip := externalIP(t)
	var connects atomic.Int64
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(5 * time.Second))
				buf := make([]byte, 4096)
				k, _ := conn.Read(buf)
				if strings.HasPrefix(string(buf[:k]), "CONNECT ") {
					connects.Add(1)
				}
				io.WriteString(conn, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
			}()
		}
	}()
	c := newCluster(t, clusterOptions{SQLite: true})
	proxy := "http://" + ln.Addr().String()
	n := startServe(t, c, "a", nil, []string{"HTTPS_PROXY=" + proxy, "https_proxy=" + proxy, "NO_PROXY=", "no_proxy="})
	key := mustKey(t, elliptic.P256())
	for i, uri := range []string{"https://169.254.169.254/latest/meta-data", "https://[fe80::1]/jwks", "https://0.0.0.0/jwks"} {
		id := createKeyClient(c, "--name", fmt.Sprintf("meta-%d", i), "--auth-method", "private_key_jwt", "--jwks-uri", uri)
		r := postWith(t, c.http, n, server.TokenPath, url.Values{"grant_type": {oauth.GrantTypeClientCredentials},
			"client_assertion_type": {oauth.ClientAssertionTypeJWTBearer}, "client_assertion": {assertion(t, key, jose.ES256, "k1", id, nil)}}, nil)
		if r.Status != http.StatusUnauthorized {
			t.Errorf("%s: %s, want 401", uri, r)
		}
	}
	if k := connects.Load(); k != 0 {
		t.Errorf("the proxy was asked %d times to connect to a link-local or unspecified address", k)
	}
}

// externalIP is an address of this machine that is not loopback: the
// server dials it as it would a remote host.
func externalIP(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
			return ipn.IP.String()
		}
	}
	t.Fatal("this machine has no non-loopback IPv4 address to serve a jwks_uri on")
	return ""
}
