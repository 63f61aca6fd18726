package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/oauth"
)

// zeroKEK is the key-encryption key ststest servers use (32 zero bytes),
// so that the CLI and a test server share one data directory.
const zeroKEK = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

func TestAccountLifecycle(t *testing.T) {
	c := newCLI(t, testKEK)

	// An individual account: its secret is shown once, stored sealed.
	out := c.ok("account", "create", "individual", "--name", "Alice Example")
	id := field(t, out, "account_id:")
	secret := field(t, out, "shared_secret:")
	if !strings.HasPrefix(id, "acct-") || len(secret) < 43 || !strings.Contains(out, "shown only this once") {
		t.Errorf("create individual:\n%s", out)
	}
	stored, err := c.env().Store.GetAccount(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(stored.SharedSecret), secret) {
		t.Error("the shared secret is stored in the clear")
	}

	var org accountView
	c.okJSON(&org, "account", "create", "organization", "--name", "Example Radio Co",
		"--audience", "https://sas.example.com", "--scope", "spectrum read", "-o", "json")
	if org.Kind != "organization" || org.Status != "active" || org.SharedSecret != "" ||
		!slices.Equal(org.Audiences, []string{"https://sas.example.com"}) || !slices.Equal(org.Scopes, []string{"spectrum", "read"}) {
		t.Errorf("create organization -o json: %+v", org)
	}
	var ind accountView
	c.okJSON(&ind, "account", "create", "individual", "--name", "Bob", "-o", "json")
	if ind.SharedSecret == "" || ind.AccountID == "" {
		t.Errorf("create individual -o json: %+v", ind)
	}

	var list []accountView
	c.okJSON(&list, "account", "list", "-o", "json")
	if len(list) != 3 || list[0].AccountID != id || list[0].SharedSecret != "" {
		t.Errorf("list: %+v", list)
	}
	if out := c.ok("account", "list"); !strings.Contains(out, "Example Radio Co") || !strings.Contains(out, "ACCOUNT ID") {
		t.Errorf("list:\n%s", out)
	}

	// Status changes.
	if out := c.ok("account", "suspend", id); !strings.Contains(out, "now suspended (was active)") {
		t.Errorf("suspend: %s", out)
	}
	c.fail("not active", "account", "issue-iat", id)
	if out := c.ok("account", "suspend", id); !strings.Contains(out, "already suspended") {
		t.Errorf("suspend twice: %s", out)
	}
	var v accountView
	c.okJSON(&v, "account", "activate", id, "-o", "json")
	if v.Status != "active" {
		t.Errorf("activate: %+v", v)
	}
	c.ok("account", "close", ind.AccountID)
	c.fail("cannot be reopened", "account", "activate", ind.AccountID)

	// IATs.
	tok := strings.TrimSpace(c.ok("account", "issue-iat", id, "--expires-in", "10m"))
	if strings.Count(tok, ".") != 2 {
		t.Errorf("issue-iat text output is not just the token: %q", tok)
	}
	var iv iatView
	c.okJSON(&iv, "account", "issue-iat", id, "--claim", "fcc_id=2AS3K-1", "-o", "json")
	if iv.IAT == "" || iv.AccountID != id || iv.JTI == "" || iv.Audience != "http://127.0.0.1:8080" {
		t.Errorf("issue-iat -o json: %+v", iv)
	}
	claims := decodeClaims(t, iv.IAT)
	if claims["fcc_id"] != "2AS3K-1" || claims["iss"] != id {
		t.Errorf("IAT claims %v", claims)
	}
	c.fail("--expires-in", "account", "issue-iat", id, "--expires-in", "2h")
	c.fail("server sets", "account", "issue-iat", id, "--claim", "aud=x")
	c.fail("NAME=VALUE", "account", "issue-iat", id, "--claim", "novalue")
	// The issuer of the server the IAT is for.
	c.okJSON(&iv, "account", "issue-iat", id, "--issuer", "https://sts.example.com", "-o", "json")
	if iv.Audience != "https://sts.example.com" {
		t.Errorf("--issuer: aud %q", iv.Audience)
	}

	// Certificates.
	c.fail("organization", "account", "cert", "issue", id)
	c.fail("signs its own", "account", "issue-iat", org.AccountID)
	var cert certView
	c.okJSON(&cert, "account", "cert", "issue", org.AccountID, "--alg", "RS256", "--validity", "720h", "-o", "json")
	if cert.Algorithm != "RS256" || !cert.IssuedByServer || !strings.HasPrefix(cert.PEM, "-----BEGIN CERTIFICATE-----") {
		t.Errorf("cert issue: %+v", cert)
	}
	if h := decodeHeader(t, strings.TrimSpace(c.ok("account", "issue-iat", org.AccountID))); h["alg"] != "RS256" || h["x5t#S256"] != cert.CertificateID {
		t.Errorf("organization IAT header %v", h)
	}
	pemFile := filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(pemFile, ecCertPEM(t), 0o600); err != nil {
		t.Fatal(err)
	}
	out = c.ok("account", "cert", "upload", org.AccountID, "--file", pemFile)
	upID := field(t, out, "certificate_id:")
	if !strings.Contains(out, "ES256") {
		t.Errorf("cert upload:\n%s", out)
	}
	c.fail("already registered", "account", "cert", "upload", org.AccountID, "--file", pemFile)
	if _, _, err := c.runIn("not a certificate", "account", "cert", "upload", org.AccountID, "--file", "-"); err == nil {
		t.Error("uploaded garbage")
	}
	var certs []certView
	c.okJSON(&certs, "account", "cert", "list", org.AccountID, "-o", "json")
	if len(certs) != 2 {
		t.Fatalf("cert list: %+v", certs)
	}
	c.ok("account", "cert", "delete", org.AccountID, upID)
	c.fail("has no certificate", "account", "cert", "delete", org.AccountID, upID)

	var detail accountDetail
	c.okJSON(&detail, "account", "show", org.AccountID, "-o", "json")
	if len(detail.Certificates) != 1 || detail.Clients == nil || detail.Name != "Example Radio Co" {
		t.Errorf("show: %+v", detail)
	}
	if out := c.ok("account", "show", org.AccountID); !strings.Contains(out, "issued by this server") {
		t.Errorf("show:\n%s", out)
	}

	for _, args := range [][]string{
		{"account", "show", "acct-nope"}, {"account", "suspend", "acct-nope"},
		{"account", "issue-iat", "acct-nope"}, {"account", "cert", "list", "acct-nope"},
	} {
		c.fail(`account "acct-nope" not found`, args...)
	}
	c.fail("individual or organization", "account", "create", "team", "--name", "x")
	c.fail("name is required", "account", "create", "individual")
	c.fail("fragment", "account", "create", "individual", "--name", "x", "--audience", "https://a.example.com/#f")

	// Every change is audited, without secrets.
	recs, err := c.env().Store.ListAudit(context.Background(), store.AuditFilter{Action: "account", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	actions := map[string]bool{}
	for _, r := range recs {
		actions[r.Action] = true
		if strings.Contains(r.Detail, secret) || strings.Contains(r.Detail, tok) {
			t.Errorf("audit %s holds a secret", r.Action)
		}
	}
	for _, a := range []string{"account.create", "account.suspend", "account.activate", "account.close", "account.issue_iat", "account.cert_issue", "account.cert_upload", "account.cert_delete"} {
		if !actions[a] {
			t.Errorf("no audit record %s (have %v)", a, actions)
		}
	}
}

// The CLI and the registration API work on the same accounts and clients.
func TestAccountCLIAndRegistrationAPI(t *testing.T) {
	c := newCLI(t, zeroKEK)
	s := ststest.Start(t, ststest.Options{Dir: c.dir, RequireApproval: true})

	var acct accountView
	c.okJSON(&acct, "account", "create", "individual", "--name", "Alice", "--audience", "https://sas.example.com", "-o", "json")
	var iv iatView
	c.okJSON(&iv, "account", "issue-iat", acct.AccountID, "--issuer", s.URL, "-o", "json")

	// The IAT the CLI issued registers a client over HTTP.
	r := s.Register(iv.IAT, map[string]any{"client_name": "radio", "audiences": []string{"https://sas.example.com"}})
	if r.Status != http.StatusCreated {
		t.Fatalf("register with the CLI's IAT: %d %s", r.Status, r.Body)
	}
	reg := r.Registration()
	// An IAT the holder signs with the shared secret the CLI printed
	// works too.
	now := time.Now()
	own := signHS256(t, acct.SharedSecret, map[string]any{
		"iss": acct.AccountID, "aud": s.URL, "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "jti": "own-1",
	})
	if r := s.Register(own, map[string]any{"client_name": "second"}); r.Status != http.StatusCreated {
		t.Fatalf("register with a self-signed IAT: %d %s", r.Status, r.Body)
	}

	// The CLI sees the registered clients in the account.
	var detail accountDetail
	c.okJSON(&detail, "account", "show", acct.AccountID, "-o", "json")
	if len(detail.Clients) != 2 || detail.Clients[0].ClientID != reg.ClientID || detail.Clients[0].Status != "pending" ||
		detail.Clients[0].AccountID != acct.AccountID {
		t.Fatalf("account show: %+v", detail.Clients)
	}
	var cv clientView
	c.okJSON(&cv, "client", "show", reg.ClientID, "-o", "json")
	if cv.AccountID != acct.AccountID || !slices.Equal(cv.Audiences, []string{"https://sas.example.com"}) {
		t.Errorf("client show: %+v", cv)
	}

	// Pending until an operator approves with the CLI.
	tokenReq := func() int {
		return s.PostForm("/token/oauth2", reg.Client(), map[string][]string{"grant_type": {oauth.GrantTypeClientCredentials}}).Status
	}
	if st := tokenReq(); st != http.StatusUnauthorized {
		t.Errorf("pending client at the token endpoint: %d", st)
	}
	if out := c.ok("client", "approve", reg.ClientID); !strings.Contains(out, "now active (was pending)") {
		t.Errorf("approve: %s", out)
	}
	s.ExpireClientCache()
	if st := tokenReq(); st != http.StatusOK {
		t.Errorf("approved client at the token endpoint: %d", st)
	}
	// The API reads what the CLI changed.
	if got := s.Manage(http.MethodGet, reg, nil).JSON(); got["status"] != "active" {
		t.Errorf("RFC 7592 read after CLI approval: %v", got["status"])
	}

	// An operator puts a client in the account from the CLI; the
	// account's bounds apply.
	var created clientView
	c.okJSON(&created, "client", "create", "--name", "ops", "--account", acct.AccountID, "--audience", "https://sas.example.com", "-o", "json")
	if created.AccountID != acct.AccountID {
		t.Errorf("client create --account: %+v", created)
	}
	c.fail("--audience", "client", "create", "--name", "ops2", "--account", acct.AccountID, "--audience", "https://elsewhere.example.com")
	c.fail("--account", "client", "create", "--name", "ops3", "--account", "acct-nope")
	c.okJSON(&detail, "account", "show", acct.AccountID, "-o", "json")
	if len(detail.Clients) != 3 {
		t.Errorf("account show after client create --account: %d clients", len(detail.Clients))
	}

	// Suspended from the CLI: the API refuses the account's IATs.
	c.okJSON(&iv, "account", "issue-iat", acct.AccountID, "--issuer", s.URL, "-o", "json")
	c.ok("account", "suspend", acct.AccountID)
	r = s.Register(iv.IAT, map[string]any{"client_name": "third"})
	if r.Status != http.StatusUnauthorized || r.Error() != "invalid_token" {
		t.Errorf("IAT of a suspended account: %d %s", r.Status, r.Body)
	}
}

func signHS256(t *testing.T, secret string, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte(secret)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	obj, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := obj.CompactSerialize()
	return out
}

func decodeClaims(t *testing.T, jws string) map[string]any {
	t.Helper()
	obj, err := jose.ParseSignedCompact(jws, []jose.SignatureAlgorithm{jose.HS256, jose.ES256, jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(obj.UnsafePayloadWithoutVerification(), &m)
	return m
}

func decodeHeader(t *testing.T, jws string) map[string]any {
	t.Helper()
	obj, err := jose.ParseSignedCompact(jws, []jose.SignatureAlgorithm{jose.HS256, jose.ES256, jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	h := obj.Signatures[0].Header
	m := map[string]any{"alg": h.Algorithm, "kid": h.KeyID}
	for k, v := range h.ExtraHeaders {
		m[string(k)] = v
	}
	return m
}

// ecCertPEM is a self-signed ECDSA P-256 certificate, as an organization
// would upload.
func ecCertPEM(t *testing.T) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "Example Radio Co"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
