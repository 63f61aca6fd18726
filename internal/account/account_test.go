package account_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/keybridge/sts/internal/account"
	"github.com/keybridge/sts/internal/keys"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlite"
	"github.com/keybridge/sts/oauth"
)

const issuer = "https://sts.example.com"

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newService(t *testing.T) (*account.Service, *clock) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "sts.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sealer, err := keys.NewSealer(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Now().Truncate(time.Second)}
	return &account.Service{
		Store: st, Sealer: sealer, Audiences: []string{issuer, issuer + "/register"},
		RequiredClaims: map[string][]string{"spectrum": {"fcc_id", "serial"}},
		Leeway:         5 * time.Second, Now: c.Now,
	}, c
}

// orgKey is an organization's own key pair and self-signed certificate.
type orgKey struct {
	priv crypto.Signer
	der  []byte
}

func newOrgKey(t *testing.T, alg string, notBefore, notAfter time.Time) *orgKey {
	t.Helper()
	var priv crypto.Signer
	var err error
	switch alg {
	case "RS256":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case "RS1024":
		priv, err = rsa.GenerateKey(rand.Reader, 1024)
	case "ES384":
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	default:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "Example Radio Co"},
		NotBefore:    notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		t.Fatal(err)
	}
	return &orgKey{priv: priv, der: der}
}

func (k *orgKey) pem() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.der})
}

// sign makes a compact JWS of claims with alg and key, with the extra
// header members.
func sign(t *testing.T, alg jose.SignatureAlgorithm, key any, header map[jose.HeaderKey]any, claims map[string]any) string {
	t.Helper()
	opts := &jose.SignerOptions{ExtraHeaders: header}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts.WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	obj, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func unsigned(claims map[string]any) string {
	enc := base64.RawURLEncoding
	b, _ := json.Marshal(claims)
	return enc.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc.EncodeToString(b) + "."
}

// claimsFor are valid IAT claims of account id at now.
func claimsFor(id string, now time.Time) map[string]any {
	return map[string]any{
		"iss": id, "aud": issuer, "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
		"jti": base64.RawURLEncoding.EncodeToString([]byte(now.String() + id)),
	}
}

func with(c map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

// wantInvalidToken requires the one answer to every IAT failure whose
// signature did not verify: nothing said beyond that the token is invalid.
func wantInvalidToken(t *testing.T, err error) {
	t.Helper()
	wantInvalidTokenTelling(t, err, "")
}

// wantInvalidTokenTelling requires invalid_token (401) whose description
// tells the reason, containing reason; with reason "", none at all.
func wantInvalidTokenTelling(t *testing.T, err error, reason string) {
	t.Helper()
	var oe *oauth.Error
	if !errors.As(err, &oe) {
		t.Fatalf("error %v, want an *oauth.Error", err)
	}
	if oe.Code != oauth.ErrInvalidToken || oe.HTTPStatus() != http.StatusUnauthorized {
		t.Errorf("error %s (status %d), want invalid_token (401)", oe.Code, oe.HTTPStatus())
	}
	const generic = "the initial access token is invalid"
	switch {
	case reason == "" && oe.Description != generic:
		t.Errorf("description %q says more than that the token is invalid, before its signature verified", oe.Description)
	case reason != "" && (!strings.HasPrefix(oe.Description, generic+": ") || !strings.Contains(oe.Description, reason)):
		t.Errorf("description %q does not tell the holder %q", oe.Description, reason)
	}
}

// told are the failures found after the IAT's signature verified: the
// holder of the account's key is told what is wrong (issue 9), which
// leaks nothing it could not read from its own token.
var told = map[string]string{
	"expired":                      "expired at",
	"wrong aud":                    "for audience https://other.example.com; this server accepts " + issuer,
	"no aud":                       "for audience ;",
	"no jti":                       "no jti",
	"no exp":                       "exp and iat are required",
	"no iat":                       "exp and iat are required",
	"issued in the future":         "not valid yet",
	"not before in the future":     "not valid yet",
	"lifetime longer than an hour": "lifetime is longer than the 1h0m0s",
	"lifetime longer than an hour, issued long ago": "lifetime is longer than the 1h0m0s",
	"suspended account":                             "is suspended",
	"closed account":                                "is closed",
}

func TestVerifyIAT(t *testing.T) {
	ctx := context.Background()
	svc, clk := newService(t)
	now := clk.Now()

	ind, secret, err := svc.Create(ctx, store.AccountIndividual, "Alice", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Organizations that sign their own IATs with uploaded certificates.
	orgRSA, _, _ := svc.Create(ctx, store.AccountOrganization, "RSA Org", nil, nil)
	orgEC, _, _ := svc.Create(ctx, store.AccountOrganization, "EC Org", nil, nil)
	rsaKey := newOrgKey(t, "RS256", now.Add(-time.Hour), now.Add(24*time.Hour))
	ecKey := newOrgKey(t, "ES256", now.Add(-time.Hour), now.Add(24*time.Hour))
	ecKey2 := newOrgKey(t, "ES256", now.Add(-time.Hour), now.Add(24*time.Hour))
	rsaCert, err := svc.UploadCertificate(ctx, orgRSA.ID, rsaKey.pem())
	if err != nil {
		t.Fatal(err)
	}
	ecCert, err := svc.UploadCertificate(ctx, orgEC.ID, ecKey.der)
	if err != nil {
		t.Fatal(err)
	}
	ecCert2, err := svc.UploadCertificate(ctx, orgEC.ID, ecKey2.pem())
	if err != nil {
		t.Fatal(err)
	}
	// Organizations whose certificates the server issued.
	orgIssuedES, _, _ := svc.Create(ctx, store.AccountOrganization, "Issued ES", nil, nil)
	orgIssuedRS, _, _ := svc.Create(ctx, store.AccountOrganization, "Issued RS", nil, nil)
	if _, err := svc.IssueCertificate(ctx, orgIssuedES.ID, "ES256", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.IssueCertificate(ctx, orgIssuedRS.ID, "RS256", time.Hour); err != nil {
		t.Fatal(err)
	}
	// An organization whose only certificate expires soon.
	orgShort, _, _ := svc.Create(ctx, store.AccountOrganization, "Short-lived", nil, nil)
	shortKey := newOrgKey(t, "ES256", now.Add(-time.Hour), now.Add(2*time.Minute))
	if _, err := svc.UploadCertificate(ctx, orgShort.ID, shortKey.der); err != nil {
		t.Fatal(err)
	}
	orgFuture, _, _ := svc.Create(ctx, store.AccountOrganization, "Not yet", nil, nil)
	futureKey := newOrgKey(t, "ES256", now.Add(time.Hour), now.Add(48*time.Hour))
	if _, err := svc.UploadCertificate(ctx, orgFuture.ID, futureKey.der); err != nil {
		t.Fatal(err)
	}
	suspended, suspendedSecret, _ := svc.Create(ctx, store.AccountIndividual, "Suspended", nil, nil)
	if _, err := svc.SetStatus(ctx, suspended.ID, store.AccountSuspended); err != nil {
		t.Fatal(err)
	}
	closed, closedKeySecret, _ := svc.Create(ctx, store.AccountIndividual, "Closed", nil, nil)
	if _, err := svc.SetStatus(ctx, closed.ID, store.AccountClosed); err != nil {
		t.Fatal(err)
	}
	otherRSA, _ := rsa.GenerateKey(rand.Reader, 2048)

	hs := func(key string, c map[string]any) string { return sign(t, jose.HS256, []byte(key), nil, c) }
	x5t := func(id string) map[jose.HeaderKey]any { return map[jose.HeaderKey]any{"x5t#S256": id} }
	kid := func(id string) map[jose.HeaderKey]any { return map[jose.HeaderKey]any{"kid": id} }
	issued := func(id string) string {
		tok, err := svc.IssueIAT(ctx, id, 10*time.Minute, nil)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	tests := []struct {
		name  string
		token func() string
		ok    bool
	}{
		{"HS256 with the account's secret", func() string { return hs(secret, claimsFor(ind.ID, now)) }, true},
		{"HS256 issued by the server", func() string { return issued(ind.ID) }, true},
		{"HS256 with a wrong secret", func() string { return hs(secret+"x", claimsFor(ind.ID, now)) }, false},
		{"HS256 with another account's secret", func() string { return hs(suspendedSecret, claimsFor(ind.ID, now)) }, false},
		{"RS256 with an uploaded certificate", func() string { return sign(t, jose.RS256, rsaKey.priv, nil, claimsFor(orgRSA.ID, now)) }, true},
		{"RS256 naming its certificate by x5t#S256", func() string {
			return sign(t, jose.RS256, rsaKey.priv, x5t(rsaCert.ID), claimsFor(orgRSA.ID, now))
		}, true},
		{"ES256 with an uploaded certificate", func() string { return sign(t, jose.ES256, ecKey.priv, nil, claimsFor(orgEC.ID, now)) }, true},
		{"ES256 selecting the second certificate by kid", func() string {
			return sign(t, jose.ES256, ecKey2.priv, kid(ecCert2.ID), claimsFor(orgEC.ID, now))
		}, true},
		{"ES256 whose kid names another certificate", func() string {
			return sign(t, jose.ES256, ecKey2.priv, kid(ecCert.ID), claimsFor(orgEC.ID, now))
		}, false},
		{"ES256 with a server-issued certificate", func() string { return issued(orgIssuedES.ID) }, true},
		{"RS256 with a server-issued certificate", func() string { return issued(orgIssuedRS.ID) }, true},
		{"RS256 with a key that is not the certificate's", func() string { return sign(t, jose.RS256, otherRSA, nil, claimsFor(orgRSA.ID, now)) }, false},
		{"RS256 for an organization whose certificate is ECDSA", func() string { return sign(t, jose.RS256, rsaKey.priv, nil, claimsFor(orgEC.ID, now)) }, false},
		{"alg none", func() string { return unsigned(claimsFor(ind.ID, now)) }, false},
		{"alg none for an organization", func() string { return unsigned(claimsFor(orgRSA.ID, now)) }, false},
		{"HS256 keyed with the organization's certificate (DER)", func() string {
			return sign(t, jose.HS256, rsaKey.der, nil, claimsFor(orgRSA.ID, now))
		}, false},
		{"HS256 keyed with the organization's certificate (PEM)", func() string {
			return sign(t, jose.HS256, rsaKey.pem(), nil, claimsFor(orgRSA.ID, now))
		}, false},
		{"HS256 keyed with the organization's public key", func() string {
			spki, _ := x509.MarshalPKIXPublicKey(ecKey.priv.Public())
			return sign(t, jose.HS256, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki}), nil, claimsFor(orgEC.ID, now))
		}, false},
		{"RS256 for an individual account", func() string { return sign(t, jose.RS256, rsaKey.priv, nil, claimsFor(ind.ID, now)) }, false},
		{"HS384 with the account's secret", func() string { return sign(t, jose.HS384, []byte(secret+secret), nil, claimsFor(ind.ID, now)) }, false},
		{"expired", func() string {
			return hs(secret, with(claimsFor(ind.ID, now), "iat", now.Add(-20*time.Minute).Unix(), "exp", now.Add(-time.Minute).Unix()))
		}, false},
		{"expired within the leeway", func() string {
			return hs(secret, with(claimsFor(ind.ID, now), "exp", now.Add(-2*time.Second).Unix()))
		}, true},
		{"wrong aud", func() string { return hs(secret, with(claimsFor(ind.ID, now), "aud", "https://other.example.com")) }, false},
		{"aud: the registration endpoint, in an array", func() string {
			return hs(secret, with(claimsFor(ind.ID, now), "aud", []string{"https://x.example", issuer + "/register"}))
		}, true},
		{"no aud", func() string { return hs(secret, with(claimsFor(ind.ID, now), "aud", nil)) }, false},
		{"no jti", func() string { return hs(secret, with(claimsFor(ind.ID, now), "jti", nil)) }, false},
		{"no exp", func() string { return hs(secret, with(claimsFor(ind.ID, now), "exp", nil)) }, false},
		{"no iat", func() string { return hs(secret, with(claimsFor(ind.ID, now), "iat", nil)) }, false},
		{"fractional NumericDates", func() string {
			return hs(secret, with(claimsFor(ind.ID, now), "iat", float64(now.Unix())+0.5, "exp", float64(now.Add(time.Minute).Unix())+0.25))
		}, true},
		{"issued in the future", func() string {
			return hs(secret, with(claimsFor(ind.ID, now), "iat", now.Add(time.Minute).Unix(), "exp", now.Add(5*time.Minute).Unix()))
		}, false},
		{"not before in the future", func() string { return hs(secret, with(claimsFor(ind.ID, now), "nbf", now.Add(time.Minute).Unix())) }, false},
		{"lifetime longer than an hour", func() string {
			return hs(secret, with(claimsFor(ind.ID, now), "exp", now.Add(2*time.Hour).Unix()))
		}, false},
		{"lifetime longer than an hour, issued long ago", func() string {
			return hs(secret, with(claimsFor(ind.ID, now), "iat", now.Add(-3*time.Hour).Unix(), "exp", now.Add(time.Minute).Unix()))
		}, false},
		{"unknown account", func() string { return hs(secret, with(claimsFor(ind.ID, now), "iss", "acct-nobody")) }, false},
		{"no iss", func() string { return hs(secret, with(claimsFor(ind.ID, now), "iss", nil)) }, false},
		{"suspended account", func() string { return hs(suspendedSecret, claimsFor(suspended.ID, now)) }, false},
		{"closed account", func() string { return hs(closedKeySecret, claimsFor(closed.ID, now)) }, false},
		{"certificate not yet valid", func() string { return sign(t, jose.ES256, futureKey.priv, nil, claimsFor(orgFuture.ID, now)) }, false},
		{"not a JWS", func() string { return "not-a-token" }, false},
		{"JWE-shaped", func() string { return "a.b.c.d.e" }, false},
		{"claims not JSON", func() string {
			s := hs(secret, claimsFor(ind.ID, now))
			parts := strings.Split(s, ".")
			parts[1] = base64.RawURLEncoding.EncodeToString([]byte("not json"))
			return strings.Join(parts, ".")
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			iat, err := svc.VerifyIAT(ctx, tc.token())
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if iat.ID == "" || iat.Account == nil {
					t.Errorf("verified IAT %+v lacks its jti or account", iat)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			wantInvalidTokenTelling(t, err, told[tc.name])
		})
	}

	// The certificate's validity period is checked at every use.
	t.Run("certificate expired", func(t *testing.T) {
		tok := sign(t, jose.ES256, shortKey.priv, nil, claimsFor(orgShort.ID, clk.Now()))
		if _, err := svc.VerifyIAT(ctx, tok); err != nil {
			t.Fatalf("refused while the certificate is valid: %v", err)
		}
		clk.add(3 * time.Minute)
		defer clk.add(-3 * time.Minute)
		tok = sign(t, jose.ES256, shortKey.priv, nil, claimsFor(orgShort.ID, clk.Now()))
		_, err := svc.VerifyIAT(ctx, tok)
		if err == nil {
			t.Fatal("accepted after the certificate expired")
		}
		wantInvalidToken(t, err)
	})
}

func TestConsumeRefusesReplay(t *testing.T) {
	ctx := context.Background()
	svc, _ := newService(t)
	a, _, _ := svc.Create(ctx, store.AccountIndividual, "Alice", nil, nil)
	tok, err := svc.IssueIAT(ctx, a.ID, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	iat, err := svc.VerifyIAT(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	// Verifying does not spend it.
	if _, err := svc.VerifyIAT(ctx, tok); err != nil {
		t.Fatalf("second verification: %v", err)
	}
	if err := svc.Consume(ctx, iat); err != nil {
		t.Fatalf("first use: %v", err)
	}
	err = svc.Consume(ctx, iat)
	if err == nil {
		t.Fatal("replayed jti accepted")
	}
	wantInvalidToken(t, err)

	// Concurrent uses: exactly one wins.
	tok2, _ := svc.IssueIAT(ctx, a.ID, 0, nil)
	iat2, err := svc.VerifyIAT(ctx, tok2)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if svc.Consume(ctx, iat2) == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Errorf("%d concurrent uses of one IAT succeeded, want 1", wins)
	}
}

func TestCheckScopesRequiredClaims(t *testing.T) {
	ctx := context.Background()
	svc, _ := newService(t)
	a, _, _ := svc.Create(ctx, store.AccountIndividual, "Alice", nil, nil)
	verify := func(extra map[string]any) *account.IAT {
		tok, err := svc.IssueIAT(ctx, a.ID, 0, extra)
		if err != nil {
			t.Fatal(err)
		}
		iat, err := svc.VerifyIAT(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		return iat
	}
	bare := verify(nil)
	if err := svc.CheckScopes(bare, []string{"read", "write"}); err != nil {
		t.Errorf("scopes without requirements: %v", err)
	}
	err := svc.CheckScopes(bare, []string{"read", "spectrum"})
	if err == nil {
		t.Fatal("scope spectrum granted without its claims")
	}
	wantInvalidTokenTelling(t, err, `scope "spectrum" needs the claim "fcc_id"`)
	if err := svc.CheckScopes(verify(map[string]any{"fcc_id": "2AS3K-1"}), []string{"spectrum"}); err == nil {
		t.Error("scope spectrum granted with one of its two claims")
	}
	if err := svc.CheckScopes(verify(map[string]any{"fcc_id": "", "serial": "1"}), []string{"spectrum"}); err == nil {
		t.Error("an empty claim counted as present")
	}
	if err := svc.CheckScopes(verify(map[string]any{"fcc_id": "2AS3K-1", "serial": "A1"}), []string{"spectrum"}); err != nil {
		t.Errorf("scope spectrum with its claims: %v", err)
	}
	// Extra claims cannot override the registered ones.
	iat := verify(map[string]any{"iss": "acct-other", "aud": "https://evil.example", "exp": 1})
	if iat.Account.ID != a.ID {
		t.Errorf("extra claims replaced iss: %s", iat.Account.ID)
	}
}

func TestIssueIAT(t *testing.T) {
	ctx := context.Background()
	svc, _ := newService(t)
	a, _, _ := svc.Create(ctx, store.AccountIndividual, "Alice", nil, nil)
	tok, err := svc.IssueIAT(ctx, a.ID, 5*time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	iat, err := svc.VerifyIAT(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if life := time.Until(iat.Expiry); life > time.Hour+time.Second {
		t.Errorf("lifetime %v beyond the one-hour maximum", life)
	}
	// An organization without a server-issued certificate signs its own.
	org, _, _ := svc.Create(ctx, store.AccountOrganization, "Org", nil, nil)
	k := newOrgKey(t, "ES256", time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if _, err := svc.UploadCertificate(ctx, org.ID, k.der); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.IssueIAT(ctx, org.ID, 0, nil); err == nil || !strings.Contains(err.Error(), "signs its own") {
		t.Errorf("IAT for an organization with only an uploaded certificate: %v", err)
	}
	if _, err := svc.SetStatus(ctx, a.ID, store.AccountSuspended); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.IssueIAT(ctx, a.ID, 0, nil); !errors.Is(err, account.ErrInactive) {
		t.Errorf("IAT for a suspended account: %v, want ErrInactive", err)
	}
	if _, err := svc.IssueIAT(ctx, "acct-none", 0, nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("IAT for an unknown account: %v", err)
	}
	// The token names its certificate so the verifier need not try each.
	org2, _, _ := svc.Create(ctx, store.AccountOrganization, "Org2", nil, nil)
	cert, err := svc.IssueCertificate(ctx, org2.ID, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	tok, err = svc.IssueIAT(ctx, org2.ID, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	h := obj.Signatures[0].Header
	if h.KeyID != cert.ID || h.ExtraHeaders["x5t#S256"] != cert.ID {
		t.Errorf("header kid %q x5t#S256 %v, want %s", h.KeyID, h.ExtraHeaders["x5t#S256"], cert.ID)
	}
}

func TestCertificates(t *testing.T) {
	ctx := context.Background()
	svc, _ := newService(t)
	now := time.Now()
	ind, _, _ := svc.Create(ctx, store.AccountIndividual, "Alice", nil, nil)
	org, _, _ := svc.Create(ctx, store.AccountOrganization, "Org", nil, nil)
	if _, err := svc.IssueCertificate(ctx, ind.ID, "", 0); !errors.Is(err, account.ErrKind) {
		t.Errorf("certificate for an individual account: %v", err)
	}
	if _, err := svc.IssueCertificate(ctx, org.ID, "EdDSA", 0); err == nil {
		t.Error("EdDSA certificate issued")
	}
	c, err := svc.IssueCertificate(ctx, org.ID, "RS256", 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	x, err := x509.ParseCertificate(c.DER)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := x.PublicKey.(*rsa.PublicKey); !ok || x.NotAfter.Sub(now) < 47*time.Hour {
		t.Errorf("issued certificate: key %T, not after %v", x.PublicKey, x.NotAfter)
	}
	if c.PrivateKey == nil || string(account.PEM(c)) == "" {
		t.Error("issued certificate without its sealed key or PEM")
	}
	for name, data := range map[string][]byte{
		"RSA 1024":     newOrgKey(t, "RS1024", now.Add(-time.Hour), now.Add(time.Hour)).der,
		"ECDSA P-384":  newOrgKey(t, "ES384", now.Add(-time.Hour), now.Add(time.Hour)).der,
		"expired":      newOrgKey(t, "ES256", now.Add(-2*time.Hour), now.Add(-time.Hour)).der,
		"not a cert":   []byte("hello"),
		"private key":  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}),
		"empty upload": nil,
	} {
		if _, err := svc.UploadCertificate(ctx, org.ID, data); err == nil {
			t.Errorf("upload of %s accepted", name)
		}
	}
	k := newOrgKey(t, "ES256", now.Add(-time.Hour), now.Add(time.Hour))
	up, err := svc.UploadCertificate(ctx, org.ID, k.pem())
	if err != nil {
		t.Fatal(err)
	}
	if up.PrivateKey != nil || up.ID != account.CertID(k.der) {
		t.Errorf("uploaded certificate: id %s, private key %v", up.ID, up.PrivateKey != nil)
	}
	if _, err := svc.UploadCertificate(ctx, org.ID, k.der); !errors.Is(err, store.ErrConflict) {
		t.Errorf("second upload of the same certificate: %v, want ErrConflict", err)
	}
}

func TestAccountLifecycle(t *testing.T) {
	ctx := context.Background()
	svc, _ := newService(t)
	a, secret, err := svc.Create(ctx, store.AccountIndividual, "  Alice  ", []string{"https://api.example.com", "https://api.example.com"}, []string{"read write", "read"})
	if err != nil {
		t.Fatal(err)
	}
	if a.Name != "Alice" || len(a.Audiences) != 1 || len(a.Scopes) != 2 || !strings.HasPrefix(a.ID, "acct-") {
		t.Errorf("created %+v", a)
	}
	if len(secret) < 43 {
		t.Errorf("shared secret %d characters, want 256 bits", len(secret))
	}
	if string(a.SharedSecret) == secret || strings.Contains(string(a.SharedSecret), secret) {
		t.Error("shared secret stored in the clear")
	}
	if _, err := svc.CheckSecret(ctx, a.ID, secret); err != nil {
		t.Errorf("CheckSecret with the secret: %v", err)
	}
	if _, err := svc.CheckSecret(ctx, a.ID, secret+"x"); err == nil {
		t.Error("CheckSecret accepted a wrong secret")
	}
	org, orgSecret, err := svc.Create(ctx, store.AccountOrganization, "Org", nil, nil)
	if err != nil || orgSecret != "" || org.SharedSecret != nil {
		t.Errorf("organization: %v, secret %q", err, orgSecret)
	}
	for name, c := range map[string]struct {
		name      string
		auds, scs []string
	}{
		"no name":            {name: " "},
		"control character":  {name: "a\x00b"},
		"fragment audience":  {name: "x", auds: []string{"https://api.example.com/#x"}},
		"white space in URI": {name: "x", auds: []string{"https://api.example.com/a b"}},
		"malformed URI":      {name: "x", auds: []string{"https://[::1/x"}},
		"bad scope":          {name: "x", scs: []string{`a"b`}},
	} {
		if _, _, err := svc.Create(ctx, store.AccountIndividual, c.name, c.auds, c.scs); err == nil {
			t.Errorf("%s: created", name)
		}
	}
	if _, _, err := svc.Create(ctx, "team", "x", nil, nil); err == nil {
		t.Error("unknown kind accepted")
	}
	if _, err := svc.SetStatus(ctx, a.ID, store.AccountSuspended); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CheckSecret(ctx, a.ID, secret); !errors.Is(err, account.ErrInactive) {
		t.Errorf("CheckSecret of a suspended account: %v", err)
	}
	if got, err := svc.SetStatus(ctx, a.ID, store.AccountActive); err != nil || got.Status != store.AccountActive {
		t.Fatalf("reactivate: %v", err)
	}
	if _, err := svc.SetStatus(ctx, a.ID, store.AccountClosed); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.SetStatus(ctx, a.ID, store.AccountActive); err == nil {
		t.Error("a closed account was reopened")
	}
	if _, err := svc.SetStatus(ctx, a.ID, "gone"); err == nil {
		t.Error("unknown status accepted")
	}
	for in, want := range map[string]store.AccountKind{"individual": store.AccountIndividual, "Organization": store.AccountOrganization, "org": store.AccountOrganization} {
		if k, err := account.ParseKind(in); err != nil || k != want {
			t.Errorf("ParseKind(%q) = %q, %v", in, k, err)
		}
	}
	if _, err := account.ParseKind("team"); err == nil {
		t.Error("ParseKind accepted team")
	}
}

// TestRotateSecret (issue 9, item 3): an individual account's lost secret
// is replaced; the old secret, IATs it signed and the holder's portal
// sessions stop working; an organization has no secret to rotate.
func TestRotateSecret(t *testing.T) {
	ctx := context.Background()
	svc, _ := newService(t)
	a, old, err := svc.Create(ctx, store.AccountIndividual, "Alice", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	oldIAT, err := svc.IssueIAT(ctx, a.ID, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	sess := &store.Session{Hash: []byte("h"), Subject: "account:" + a.ID, CSRF: "c", CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
	if err := svc.Store.CreateSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	_, secret, err := svc.RotateSecret(ctx, a.ID)
	if err != nil || secret == "" || secret == old {
		t.Fatalf("RotateSecret = %q, %v", secret, err)
	}
	if _, err := svc.CheckSecret(ctx, a.ID, old); err == nil {
		t.Error("the old secret still signs in")
	}
	if _, err := svc.CheckSecret(ctx, a.ID, secret); err != nil {
		t.Errorf("the new secret does not sign in: %v", err)
	}
	if _, err := svc.VerifyIAT(ctx, oldIAT); err == nil {
		t.Error("an IAT signed with the old secret is still accepted")
	}
	newIAT, err := svc.IssueIAT(ctx, a.ID, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.VerifyIAT(ctx, newIAT); err != nil {
		t.Errorf("an IAT signed with the new secret: %v", err)
	}
	if _, err := svc.Store.GetSession(ctx, sess.Hash, time.Now()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the holder's portal session survived the rotation: %v", err)
	}
	org, _, _ := svc.Create(ctx, store.AccountOrganization, "Org", nil, nil)
	if _, _, err := svc.RotateSecret(ctx, org.ID); !errors.Is(err, account.ErrKind) {
		t.Errorf("RotateSecret of an organization: %v, want ErrKind", err)
	}
	if _, _, err := svc.RotateSecret(ctx, "acct-none"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RotateSecret of an unknown account: %v", err)
	}
}
