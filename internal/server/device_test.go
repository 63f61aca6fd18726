package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keybridge/sts/examples/sas/sasapi"
	"github.com/keybridge/sts/internal/clientcert"
	"github.com/keybridge/sts/internal/clientip"
	"github.com/keybridge/sts/internal/devicecert"
	"github.com/keybridge/sts/internal/devicecert/devicetest"
	tokenep "github.com/keybridge/sts/internal/endpoint/token"
	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlite"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/oauth"
)

// The SAS-like audience of the device tests.
const (
	sasAudience = sasapi.DefaultAudience
	sasOther    = "https://sas-b.example.com/v1.3"
)

// deviceEnv is an HTTPS STS trusting a CBRS PKI (profile "cbrs") whose
// CBSD CA's CRL revokes one serial number.
type deviceEnv struct {
	s   *ststest.STS
	pki *devicetest.PKI
	// crl is the profile's CRL file; revoked the serial it lists.
	crl     string
	revoked *big.Int
}

// startDevices starts the STS with the profile "cbrs" (edit changes it)
// and the further profiles more, stored before the server starts.
func startDevices(t testing.TB, o ststest.Options, edit func(*store.DeviceProfile), more ...*store.DeviceProfile) *deviceEnv {
	t.Helper()
	dir := t.TempDir()
	env := &deviceEnv{pki: devicetest.New(t), crl: filepath.Join(dir, "cbsd-ca.crl"), revoked: big.NewInt(0x5eed)}
	now := time.Now()
	env.pki.CRL(t, env.pki.CBSDCA, []*big.Int{env.revoked}, now.Add(-time.Hour), now.Add(24*time.Hour), env.crl)
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "sts.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	p := &store.DeviceProfile{
		Name: "cbrs", Kind: store.DeviceKindCBRS, Anchors: env.pki.RootPEM, EKU: store.EKUAny,
		CRLFiles:  []string{env.crl},
		Audiences: []string{sasAudience, sasOther}, Scopes: []string{"sas", "heartbeat"},
		Enabled: true,
	}
	if edit != nil {
		edit(p)
	}
	for _, p := range append([]*store.DeviceProfile{p}, more...) {
		if err := st.CreateDeviceProfile(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if o.TLS == nil {
		o.TLS = &ststest.TLS{}
	}
	o.AuditJournal = filepath.Join(dir, "audit-journal")
	env.s = ststest.StartOn(t, st, o)
	return env
}

// cbsd issues a CBSD certificate.
func (e *deviceEnv) cbsd(t testing.TB, fcc, serial string, edit func(*devicetest.Leaf)) *devicetest.Issued {
	t.Helper()
	l := devicetest.Leaf{Role: devicecert.RoleCBSD, FCCID: fcc, Serial: serial, Subject: pkix.Name{CommonName: fcc + " " + serial}}
	if edit != nil {
		edit(&l)
	}
	return e.pki.Leaf(t, l)
}

// proxy issues a domain proxy's certificate (role operator) with FRN
// frn and CN cn; its identity is dpSubject(frn, cn).
func (e *deviceEnv) proxy(t testing.TB, frn, cn string) *devicetest.Issued {
	t.Helper()
	return e.pki.Leaf(t, devicetest.Leaf{Role: devicecert.RoleOperator, FRN: frn, Subject: pkix.Name{CommonName: cn}})
}

func dpSubject(frn, cn string) string {
	return "dp:" + devicecert.Escape(frn) + ":" + devicecert.Escape(cn)
}

func cbsdSubject(fcc, serial string) string {
	return "cbsd:" + devicecert.Escape(fcc) + ":" + devicecert.Escape(serial)
}

// delegate lets proxy speak for the devices.
func (e *deviceEnv) delegate(t testing.TB, proxy string, devs ...store.DeviceRef) {
	t.Helper()
	ds := make([]store.Delegation, len(devs))
	for i, d := range devs {
		ds[i] = store.Delegation{Proxy: proxy, DeviceRef: d}
	}
	if _, err := e.s.Store.PutDelegations(context.Background(), ds); err != nil {
		t.Fatal(err)
	}
}

// client is an HTTPS client of the STS presenting cert (nil: none).
func (e *deviceEnv) client(cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: e.s.TLS.ServerCA.Pool(), MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}, Timeout: 30 * time.Second}
}

// deviceForm is a device's token request; chain, when not nil, is sent
// as the subject token.
func deviceForm(chain []*x509.Certificate, extra ...string) url.Values {
	f := url.Values{"grant_type": {oauth.GrantTypeTokenExchange}, "subject_token_type": {tokenep.TokenTypeMTLS}}
	if chain != nil {
		f.Set("subject_token", tokenep.EncodeDeviceChain(chain))
	}
	for i := 0; i+1 < len(extra); i += 2 {
		f.Add(extra[i], extra[i+1])
	}
	return f
}

// postDevice posts a device's token request over a connection presenting
// cert, with request id id.
func (e *deviceEnv) postDevice(t testing.TB, cert *tls.Certificate, form url.Values, id string) *ststest.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.s.URL+server.TokenPath, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.Header.Set("X-Request-Id", id)
	}
	return e.s.DoWith(e.client(cert), req)
}

// postBatch posts body to /token/batch over a connection presenting cert.
func (e *deviceEnv) postBatch(t testing.TB, cert *tls.Certificate, body any, id string) *ststest.Response {
	t.Helper()
	b, ok := body.([]byte)
	if !ok {
		b, _ = json.Marshal(body)
	}
	req, _ := http.NewRequest(http.MethodPost, e.s.URL+server.BatchPath, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if id != "" {
		req.Header.Set("X-Request-Id", id)
	}
	return e.s.DoWith(e.client(cert), req)
}

// payload decodes a JWT's claims without verifying it.
func payload(t testing.TB, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", jwt)
	}
	var m map[string]any
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || json.Unmarshal(b, &m) != nil {
		t.Fatalf("payload of %q", jwt)
	}
	return m
}

// stateDigest digests every row of every table but the audit's (and
// the DPoP/assertion jtis'), for "a refusal changes nothing".
func stateDigest(t testing.TB, s *ststest.STS) string {
	t.Helper()
	ctx := context.Background()
	db := s.Store.DB()
	rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		if !strings.HasPrefix(n, "audit") && !strings.HasPrefix(n, "sqlite_") {
			tables = append(tables, n)
		}
	}
	rows.Close()
	h := sha256.New()
	for _, table := range tables {
		rows, err := db.QueryContext(ctx, `SELECT * FROM `+table+` ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(h, "%s %q\n", table, vals)
		}
		rows.Close()
	}
	return hex.EncodeToString(h.Sum(nil))
}

// auditOf returns the audit records of request id (after a sync).
func auditOf(t testing.TB, s *ststest.STS, id string) []store.AuditRecord {
	t.Helper()
	if err := s.Server.FlushAudit(context.Background()); err != nil {
		t.Fatal(err)
	}
	var out []store.AuditRecord
	recs, err := s.ListAudit(context.Background(), store.AuditFilter{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.RequestID == id {
			out = append(out, r)
		}
	}
	return out
}

// refusedAudited checks the refusal of request id is audited with code
// and every one of details in its detail.
func refusedAudited(t testing.TB, s *ststest.STS, id, action string, code oauth.ErrorCode, details ...string) {
	t.Helper()
	recs := auditOf(t, s, id)
	if len(recs) != 1 {
		t.Fatalf("request %s: %d audit records, want 1: %+v", id, len(recs), recs)
	}
	r := recs[0]
	if r.Decision != store.DecisionRefused || r.Error != string(code) || r.Action != action || r.JTI != "" {
		t.Errorf("audit record %+v", r)
	}
	for _, d := range details {
		if !strings.Contains(r.Detail, d) {
			t.Errorf("audit detail %q does not mention %q", r.Detail, d)
		}
	}
}

// TestDeviceToken: a CBSD with only its certificate obtains a token bound
// to it, with and without the chain as subject token, through an OEM
// sub-CA or not, RSA or ECDSA; the example SAS accepts it from the
// certificate's holder and refuses it from another certificate.
func TestDeviceToken(t *testing.T) {
	env := startDevices(t, ststest.Options{}, nil)
	oem := env.pki.SubCA(t, "OEM CA")
	sas := startSAS(t, env)
	cases := []struct {
		name      string
		leaf      *devicetest.Issued
		sendChain bool
	}{
		{"P-256 under the CBSD CA, handshake only", env.cbsd(t, "FCC1", "SN-1", nil), false},
		{"P-256 under an OEM sub-CA, chain as subject token", env.cbsd(t, "FCC1", "SN-2", func(l *devicetest.Leaf) { l.Issuer = oem }), true},
		{"RSA-2048, serverAuth only, chain as subject token", env.cbsd(t, "FCC2", "SN/3:x", func(l *devicetest.Leaf) {
			l.Key, l.EKU = devicetest.RSA2048, devicetest.EKUServerAuth
		}), true},
		{"P-384 without EKU", env.cbsd(t, "FCC2", "SN-4", func(l *devicetest.Leaf) { l.Key, l.EKU = devicetest.P384, devicetest.EKUNone }), false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var chain []*x509.Certificate
			if tc.sendChain {
				chain = tc.leaf.Chain
			}
			id := fmt.Sprintf("device-ok-%d", i)
			r := env.postDevice(t, &tc.leaf.TLS, deviceForm(chain, "scope", "sas"), id)
			tr := wantOK(t, r)
			if tr.TokenType != oauth.TokenTypeBearer || tr.IssuedTokenType != oauth.TokenTypeAccessToken || tr.RefreshToken != "" {
				t.Errorf("response %s", r.Body)
			}
			c := payload(t, tr.AccessToken)
			fcc, serial := tc.leaf.Cert.Subject.CommonName, ""
			fcc, serial, _ = strings.Cut(fcc, " ")
			if c["sub"] != cbsdSubject(fcc, serial) {
				t.Errorf("sub %v, want %s", c["sub"], cbsdSubject(fcc, serial))
			}
			dev, _ := c["device"].(map[string]any)
			if dev["fcc_id"] != fcc || dev["serial"] != serial || dev["role"] != "cbsd" || dev["profile"] != "cbrs" {
				t.Errorf("device claim %v", c["device"])
			}
			cnf, _ := c["cnf"].(map[string]any)
			if cnf["x5t#S256"] != clientcert.Thumbprint(tc.leaf.Cert) {
				t.Errorf("cnf %v, want the device certificate's thumbprint", c["cnf"])
			}
			if got := audOf(c); len(got) != 1 || got[0] != sasAudience {
				t.Errorf("aud %v", got)
			}
			if c["scope"] != "sas" || c["client_id"] != nil || c["act"] != nil {
				t.Errorf("scope %v client_id %v act %v", c["scope"], c["client_id"], c["act"])
			}
			recs := auditOf(t, env.s, id)
			if len(recs) != 1 || recs[0].Decision != store.DecisionGranted || recs[0].Action != "token.device" || recs[0].Subject != c["sub"] || recs[0].JTI != c["jti"] {
				t.Fatalf("audit %+v", recs)
			}
			for _, want := range []string{tc.leaf.Cert.Issuer.String(), fmt.Sprintf("%x", tc.leaf.Cert.SerialNumber), clientcert.Thumbprint(tc.leaf.Cert), "profile=cbrs"} {
				if !strings.Contains(recs[0].Detail, want) {
					t.Errorf("audit detail %q lacks %q", recs[0].Detail, want)
				}
			}
			// At the SAS: the holder of the certificate, yes; anyone else
			// with the token, no.
			who := sas.get(t, &tc.leaf.TLS, tr.AccessToken)
			if who.Status != http.StatusOK || who.JSON()["sub"] != c["sub"] || who.JSON()["fcc_id"] != fcc {
				t.Fatalf("SAS: %d %s", who.Status, who.Body)
			}
			other := env.cbsd(t, "FCC9", "SN-9", nil)
			if r := sas.get(t, &other.TLS, tr.AccessToken); r.Status != http.StatusUnauthorized || !strings.Contains(r.Header.Get("WWW-Authenticate"), "invalid_token") {
				t.Errorf("SAS, token of another certificate: %d %s", r.Status, r.Header)
			}
			if r := sas.get(t, nil, tr.AccessToken); r.Status != http.StatusUnauthorized {
				t.Errorf("SAS, no certificate: %d", r.Status)
			}
		})
	}
}

// TestDeviceTokenLifetime: exp is never after the certificate's notAfter,
// nor the profile's TokenTTL.
func TestDeviceTokenLifetime(t *testing.T) {
	env := startDevices(t, ststest.Options{}, nil)
	t.Run("certificate expiring in ten minutes", func(t *testing.T) {
		na := time.Now().Add(10 * time.Minute).Truncate(time.Second)
		leaf := env.cbsd(t, "FCC1", "SHORT-1", func(l *devicetest.Leaf) { l.NotAfter = na })
		tr := wantOK(t, env.postDevice(t, &leaf.TLS, deviceForm(nil), ""))
		c := payload(t, tr.AccessToken)
		if exp := int64(c["exp"].(float64)); exp != na.Unix() {
			t.Errorf("exp %d, want the certificate's notAfter %d (access TTL one hour)", exp, na.Unix())
		}
		if tr.ExpiresIn > 600 || tr.ExpiresIn < 590 {
			t.Errorf("expires_in %d", tr.ExpiresIn)
		}
	})
}

// TestDeviceTokenProfileTTL: a profile's TokenTTL caps the lifetime.
func TestDeviceTokenProfileTTL(t *testing.T) {
	env := startDevices(t, ststest.Options{}, func(p *store.DeviceProfile) { p.TokenTTL = 2 * time.Minute })
	leaf := env.cbsd(t, "FCC1", "TTL-1", nil)
	tr := wantOK(t, env.postDevice(t, &leaf.TLS, deviceForm(nil), ""))
	c := payload(t, tr.AccessToken)
	if d := int64(c["exp"].(float64)) - int64(c["iat"].(float64)); d != 120 {
		t.Errorf("lifetime %d s, want 120", d)
	}
}

// TestDeviceRefusals: every way a device's request is refused: a clear
// OAuth error, nothing changed, the refusal audited with its cause and
// the certificate.
func TestDeviceRefusals(t *testing.T) {
	env := startDevices(t, ststest.Options{}, nil)
	pki := env.pki
	now := time.Now()
	good := env.cbsd(t, "FCC1", "GOOD-1", nil)
	oem := pki.SubCA(t, "OEM CA")
	viaOEM := env.cbsd(t, "FCC1", "OEM-1", func(l *devicetest.Leaf) { l.Issuer = oem })
	leafOnly := viaOEM.TLS
	leafOnly.Certificate = leafOnly.Certificate[:1]
	other := devicetest.NewWith(t, devicetest.Options{Name: "Rogue"})
	rogue := other.Leaf(t, devicetest.Leaf{Role: devicecert.RoleCBSD, FCCID: "FCC1", Serial: "ROGUE-1"})
	leaf := func(edit func(*devicetest.Leaf)) *tls.Certificate {
		return &env.cbsd(t, "FCC1", "X-"+fmt.Sprint(time.Now().UnixNano()), edit).TLS
	}
	dp := env.proxy(t, "0001234567", "dp-1")
	sasCert := pki.Leaf(t, devicetest.Leaf{Role: devicecert.RoleSAS, Subject: pkix.Name{CommonName: "sas.example.com"}, EKU: devicetest.EKUServerAuth})
	cases := []struct {
		name   string
		cert   *tls.Certificate
		form   url.Values
		code   oauth.ErrorCode
		detail string // in the description
		cause  string // in the audit detail
	}{
		{"no certificate", nil, deviceForm(nil), oauth.ErrInvalidRequest, "mutual TLS", ""},
		{"domain proxy certificate", &dp.TLS, deviceForm(nil), oauth.ErrInvalidRequest, "not trusted", "cause=role"},
		{"SAS certificate", &sasCert.TLS, deviceForm(nil), oauth.ErrInvalidRequest, "not trusted", "cause=role"},
		{"expired", leaf(func(l *devicetest.Leaf) { l.NotBefore, l.NotAfter = now.Add(-48*time.Hour), now.Add(-time.Hour) }), deviceForm(nil), oauth.ErrInvalidRequest, "not trusted", "cause=expired"},
		{"not yet valid", leaf(func(l *devicetest.Leaf) { l.NotBefore = now.Add(time.Hour) }), deviceForm(nil), oauth.ErrInvalidRequest, "not trusted", "cause=not_yet_valid"},
		{"revoked by CRL", leaf(func(l *devicetest.Leaf) { l.SerialNumber = env.revoked }), deviceForm(nil), oauth.ErrInvalidRequest, "not trusted", "cause=revoked"},
		{"untrusted root", &rogue.TLS, deviceForm(nil), oauth.ErrInvalidRequest, "not trusted", "cause=untrusted"},
		{"self-signed", leaf(func(l *devicetest.Leaf) { l.SelfSigned = true }), deviceForm(nil), oauth.ErrInvalidRequest, "not trusted", "cause=untrusted"},
		{"leaf without its intermediate", &leafOnly, deviceForm(nil), oauth.ErrInvalidRequest, "not trusted", "cause=untrusted"},
		{"no FCC ID", leaf(func(l *devicetest.Leaf) { l.FCCID = "" }), deviceForm(nil), oauth.ErrInvalidRequest, "not trusted", "cause=identity"},
		{"oversized FCC ID", leaf(func(l *devicetest.Leaf) { l.FCCID = strings.Repeat("F", devicecert.MaxIdentifierLen+1) }), deviceForm(nil), oauth.ErrInvalidRequest, "not trusted", "cause=identity"},
		{"corrupted signature", leaf(func(l *devicetest.Leaf) { l.CorruptSignature = true }), deviceForm(nil), oauth.ErrInvalidRequest, "not trusted", "cause=signature"},
		{"subject token of another device", &good.TLS, deviceForm(viaOEM.Chain), oauth.ErrInvalidRequest, "not the certificate of the TLS connection", "cause=chain_mismatch"},
		{"subject token not base64url", &good.TLS, deviceForm(nil, "subject_token", "***"), oauth.ErrInvalidRequest, "base64url", ""},
		{"subject token too long", &good.TLS, deviceForm(nil, "subject_token", strings.Repeat("A", tokenep.MaxDeviceChain+4)), oauth.ErrInvalidRequest, "longer than", ""},
		{"audience of no profile", &good.TLS, deviceForm(nil, "audience", "https://elsewhere.example.com"), oauth.ErrInvalidTarget, "not one of device profile", good.Cert.Issuer.String()},
		{"scope of no profile", &good.TLS, deviceForm(nil, "scope", "admin"), oauth.ErrInvalidScope, "not one of device profile", ""},
		{"refresh token asked for", &good.TLS, deviceForm(nil, "requested_token_type", oauth.TokenTypeRefreshToken), oauth.ErrInvalidRequest, "access tokens only", ""},
		{"actor token", &good.TLS, deviceForm(nil, "actor_token", "x", "actor_token_type", oauth.TokenTypeAccessToken), oauth.ErrInvalidRequest, "no actor_token", ""},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := stateDigest(t, env.s)
			id := fmt.Sprintf("device-refused-%02d", i)
			r := env.postDevice(t, tc.cert, tc.form, id)
			if d := wantError(t, r, http.StatusBadRequest, tc.code); !strings.Contains(d, tc.detail) {
				t.Errorf("error_description %q does not mention %q", d, tc.detail)
			}
			if after := stateDigest(t, env.s); after != before {
				t.Error("the refusal changed the database")
			}
			refusedAudited(t, env.s, id, "token.device", tc.code, tc.cause)
		})
	}
	// The refusals were about the requests: the good device still gets
	// its token.
	wantOK(t, env.postDevice(t, &good.TLS, deviceForm(good.Chain), ""))
}

// TestDeviceStaleCRL: a CRL past its nextUpdate refuses every device of
// its CA.
func TestDeviceStaleCRL(t *testing.T) {
	env := startDevices(t, ststest.Options{}, nil)
	now := time.Now()
	env.pki.CRL(t, env.pki.CBSDCA, nil, now.Add(-48*time.Hour), now.Add(-time.Hour), env.crl)
	leaf := env.cbsd(t, "FCC1", "STALE-1", nil)
	// The CRL file is reloaded when it changes.
	var r *ststest.Response
	for range 50 {
		if r = env.postDevice(t, &leaf.TLS, deviceForm(nil), "stale"); r.Status != http.StatusOK {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	wantError(t, r, http.StatusBadRequest, oauth.ErrInvalidRequest)
}

// TestDeviceRevokedIntermediate: a CRL revoking an OEM sub-CA refuses
// its devices once the file is replaced, on both paths.
func TestDeviceRevokedIntermediate(t *testing.T) {
	env := startDevices(t, ststest.Options{}, nil)
	oem := env.pki.SubCA(t, "OEM CA")
	leaf := env.cbsd(t, "FCC1", "OEM-1", func(l *devicetest.Leaf) { l.Issuer = oem })
	wantOK(t, env.postDevice(t, &leaf.TLS, deviceForm(leaf.Chain), ""))
	now := time.Now()
	env.pki.CRL(t, env.pki.CBSDCA, []*big.Int{env.revoked, oem.Cert.SerialNumber}, now.Add(-time.Minute), now.Add(24*time.Hour), env.crl)
	var r *ststest.Response
	id := ""
	for i := range 50 {
		// The file is reread when it changes: the first refusal is
		// the one audited.
		id = fmt.Sprint("revoked-oem-", i)
		if r = env.postDevice(t, &leaf.TLS, deviceForm(leaf.Chain), id); r.Status != http.StatusOK {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if d := wantError(t, r, http.StatusBadRequest, oauth.ErrInvalidRequest); !strings.Contains(d, "revoked") {
		t.Errorf("error_description %q", d)
	}
	refusedAudited(t, env.s, id, "token.device", oauth.ErrInvalidRequest, "cause=revoked")
}

// TestDeviceFailuresThrottled: a device's refusals count against its
// source's failure budget, as failed client authentications do.
func TestDeviceFailuresThrottled(t *testing.T) {
	env := startDevices(t, ststest.Options{AuthFailuresPerAddress: 3}, nil)
	rogue := devicetest.NewWith(t, devicetest.Options{Name: "Rogue"}).Leaf(t, devicetest.Leaf{Role: devicecert.RoleCBSD, FCCID: "F", Serial: "S"})
	for i := range 3 {
		wantError(t, env.postDevice(t, &rogue.TLS, deviceForm(nil), fmt.Sprint("thr-", i)), http.StatusBadRequest, oauth.ErrInvalidRequest)
	}
	r := env.postDevice(t, &rogue.TLS, deviceForm(nil), "thr-3")
	wantError(t, r, http.StatusTooManyRequests, oauth.ErrTemporarilyUnavail)
	if r.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
}

// batchResult is one element of a batch answer.
type batchResult struct {
	oauth.TokenResponse
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

func decodeBatch(t testing.TB, r *ststest.Response) []batchResult {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("batch: %d %s", r.Status, r.Body)
	}
	var out []batchResult
	if err := json.Unmarshal(r.Body, &out); err != nil {
		t.Fatalf("batch answer %s: %v", r.Body, err)
	}
	return out
}

// TestDeviceBatch: a domain proxy's batch with mixed results answers
// each entry in order; each token is the device's, names the proxy in
// act and is bound to the proxy's certificate; each item is audited;
// refused items change nothing.
func TestDeviceBatch(t *testing.T) {
	env := startDevices(t, ststest.Options{}, nil)
	const frn, cn = "0001234567", "dp.example.com"
	dp := env.proxy(t, frn, cn)
	dev := func(i int) store.DeviceRef { return store.DeviceRef{FCCID: "FCC-A", Serial: fmt.Sprintf("SN:%d/x", i)} }
	env.delegate(t, dpSubject(frn, cn), dev(0), dev(1), dev(3), dev(4))
	item := func(d store.DeviceRef, extra ...string) map[string]string {
		m := map[string]string{"fccId": d.FCCID, "cbsdSerialNumber": d.Serial}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i]] = extra[i+1]
		}
		return m
	}
	body := []any{
		item(dev(0)),
		item(dev(1), "audience", sasOther, "scope", "heartbeat"),
		item(dev(2)),                        // not delegated
		item(dev(0)),                        // duplicate of entry 0
		map[string]string{"fccId": "FCC-A"}, // no serial
		item(dev(3), "audience", "https://elsewhere.example.com"),
		map[string]any{"fccId": 7, "cbsdSerialNumber": "x"},
		item(dev(4), "scope", "admin"),
		json.RawMessage("{\"fccId\":\"FCC-A\",\"cbsdSerialNumber\":\"bad\xffutf8\"}"),
		item(store.DeviceRef{FCCID: "FCC-A", Serial: strings.Repeat("s", 65)}),
	}
	want := []string{"", "", "unauthorized_client", "invalid_request", "invalid_request", "invalid_target", "invalid_request", "invalid_scope", "invalid_request", "invalid_request"}
	before := stateDigest(t, env.s)
	raw := []byte("[")
	for i, it := range body {
		if i > 0 {
			raw = append(raw, ',')
		}
		if m, ok := it.(json.RawMessage); ok {
			raw = append(raw, m...) // not UTF-8: json.Marshal would mend it
			continue
		}
		b, _ := json.Marshal(it)
		raw = append(raw, b...)
	}
	raw = append(raw, ']')
	res := decodeBatch(t, env.postBatch(t, &dp.TLS, raw, "batch-mixed"))
	if len(res) != len(body) {
		t.Fatalf("%d results for %d entries", len(res), len(body))
	}
	for i, r := range res {
		if r.Error != want[i] || (r.Error == "") != (r.AccessToken != "") || (r.Error != "" && r.Description == "") {
			t.Errorf("entry %d: %+v, want error %q", i, r, want[i])
		}
	}
	if stateDigest(t, env.s) != before {
		t.Error("the batch changed the database (tokens are JWTs, not stored)")
	}
	for i, d := range map[int]store.DeviceRef{0: dev(0), 1: dev(1)} {
		c := payload(t, res[i].AccessToken)
		act, _ := c["act"].(map[string]any)
		cnf, _ := c["cnf"].(map[string]any)
		if c["sub"] != cbsdSubject(d.FCCID, d.Serial) || act["sub"] != dpSubject(frn, cn) || cnf["x5t#S256"] != clientcert.Thumbprint(dp.Cert) {
			t.Errorf("entry %d: sub %v act %v cnf %v", i, c["sub"], c["act"], c["cnf"])
		}
		if dv, _ := c["device"].(map[string]any); dv["serial"] != d.Serial {
			t.Errorf("entry %d: device claim %v", i, c["device"])
		}
	}
	if got := audOf(payload(t, res[1].AccessToken)); len(got) != 1 || got[0] != sasOther || payload(t, res[1].AccessToken)["scope"] != "heartbeat" {
		t.Errorf("entry 1: aud %v scope %v", got, payload(t, res[1].AccessToken)["scope"])
	}
	recs := auditOf(t, env.s, "batch-mixed")
	if len(recs) != len(body) {
		t.Fatalf("%d audit records for %d entries", len(recs), len(body))
	}
	granted := 0
	for _, r := range recs {
		if r.Action != "token.batch" || r.Actor != dpSubject(frn, cn) || !strings.Contains(r.Detail, clientcert.Thumbprint(dp.Cert)) {
			t.Errorf("audit %+v", r)
		}
		if r.Decision == store.DecisionGranted {
			granted++
		}
	}
	if granted != 2 {
		t.Errorf("%d granted records, want 2", granted)
	}

	// The SAS accepts entry 0's token from the proxy, not from the
	// device itself nor another proxy.
	sas := startSAS(t, env)
	if r := sas.get(t, &dp.TLS, res[0].AccessToken); r.Status != http.StatusOK || r.JSON()["proxy"] != dpSubject(frn, cn) || r.JSON()["serial"] != dev(0).Serial {
		t.Errorf("SAS: %d %s", r.Status, r.Body)
	}
	device := env.cbsd(t, dev(0).FCCID, dev(0).Serial, nil)
	if r := sas.get(t, &device.TLS, res[0].AccessToken); r.Status != http.StatusUnauthorized {
		t.Errorf("SAS, the proxy's token from the device's certificate: %d", r.Status)
	}
}

// TestDeviceBatchRefusals: what refuses a whole batch.
func TestDeviceBatchRefusals(t *testing.T) {
	env := startDevices(t, ststest.Options{}, func(p *store.DeviceProfile) { p.MaxBatch = 5 })
	const frn, cn = "0001234567", "dp.example.com"
	dp := env.proxy(t, frn, cn)
	env.delegate(t, dpSubject(frn, cn), store.DeviceRef{FCCID: "F", Serial: "1"})
	cbsd := env.cbsd(t, "F", "1", nil)
	items := func(n int) []map[string]string {
		out := make([]map[string]string, n)
		for i := range out {
			out[i] = map[string]string{"fccId": "F", "cbsdSerialNumber": fmt.Sprint(i + 1)}
		}
		return out
	}
	cases := []struct {
		name   string
		cert   *tls.Certificate
		body   any
		status int
		code   oauth.ErrorCode
		detail string
	}{
		{"over the profile's limit", &dp.TLS, items(6), http.StatusBadRequest, oauth.ErrInvalidRequest, "at most 5"},
		{"not an array", &dp.TLS, map[string]string{"fccId": "F", "cbsdSerialNumber": "1"}, http.StatusBadRequest, oauth.ErrInvalidRequest, "JSON array"},
		{"not JSON", &dp.TLS, []byte("[{"), http.StatusBadRequest, oauth.ErrInvalidRequest, "JSON array"},
		{"empty", &dp.TLS, []byte("[]"), http.StatusBadRequest, oauth.ErrInvalidRequest, "empty"},
		{"too large", &dp.TLS, []byte("[" + strings.Repeat(" ", tokenep.MaxBatchBody) + "]"), http.StatusRequestEntityTooLarge, oauth.ErrInvalidRequest, "too large"},
		{"a CBSD's certificate", &cbsd.TLS, items(1), http.StatusUnauthorized, oauth.ErrInvalidClient, "not trusted"},
		{"no certificate", nil, items(1), http.StatusUnauthorized, oauth.ErrInvalidClient, "mutual TLS"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := stateDigest(t, env.s)
			id := fmt.Sprintf("batch-refused-%d", i)
			r := env.postBatch(t, tc.cert, tc.body, id)
			if d := wantError(t, r, tc.status, tc.code); !strings.Contains(d, tc.detail) {
				t.Errorf("error_description %q does not mention %q", d, tc.detail)
			}
			if stateDigest(t, env.s) != before {
				t.Error("the refusal changed the database")
			}
			refusedAudited(t, env.s, id, "token.batch", tc.code)
		})
	}
	// Not JSON's content type.
	req, _ := http.NewRequest(http.MethodPost, env.s.URL+server.BatchPath, strings.NewReader("fccId=F"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	wantError(t, env.s.DoWith(env.client(&dp.TLS), req), http.StatusBadRequest, oauth.ErrInvalidRequest)
	// And a good batch still works.
	if res := decodeBatch(t, env.postBatch(t, &dp.TLS, items(1), "")); res[0].AccessToken == "" {
		t.Errorf("good batch: %+v", res)
	}
}

// TestDeviceBatchRateLimit: one proxy's flood spends its own budget, not
// another proxy's.
func TestDeviceBatchRateLimit(t *testing.T) {
	env := startDevices(t, ststest.Options{}, nil)
	a, b := env.proxy(t, "0000000001", "dp-a"), env.proxy(t, "0000000002", "dp-b")
	one := []map[string]string{{"fccId": "F", "cbsdSerialNumber": "1"}}
	ca := env.client(&a.TLS)
	var r *ststest.Response
	for i := range tokenep.DefaultBatchesPerMinute + 1 {
		body, _ := json.Marshal(one)
		req, _ := http.NewRequest(http.MethodPost, env.s.URL+server.BatchPath, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if r = env.s.DoWith(ca, req); r.Status != http.StatusOK {
			if i < tokenep.DefaultBatchesPerMinute {
				t.Fatalf("batch %d: %d %s", i, r.Status, r.Body)
			}
		}
	}
	wantError(t, r, http.StatusTooManyRequests, oauth.ErrTemporarilyUnavail)
	if r.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	decodeBatch(t, env.postBatch(t, &b.TLS, one, ""))
}

// sasServer is the example SAS over HTTPS on loopback.
type sasServer struct {
	url string
	ca  *ststest.CA
}

func startSAS(t testing.TB, env *deviceEnv) *sasServer {
	t.Helper()
	h, err := sasapi.New(context.Background(), sasapi.Options{Issuer: env.s.URL, HTTPClient: env.s.Client(nil)})
	if err != nil {
		t.Fatal(err)
	}
	ca := ststest.NewCA(t, "SAS CA")
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = ststest.ServerTLSConfig(ca.Server(t))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &sasServer{url: srv.URL, ca: ca}
}

// get calls GET /v1.3/whoami with tok over a connection presenting cert.
func (s *sasServer) get(t testing.TB, cert *tls.Certificate, tok string) *ststest.Response {
	t.Helper()
	cfg := &tls.Config{RootCAs: s.ca.Pool(), MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
	req, _ := http.NewRequest(http.MethodGet, s.url+"/v1.3/whoami", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return &ststest.Response{Status: resp.StatusCode, Header: resp.Header, Body: b.Bytes()}
}

// TestDevicePolicy: a profile's CEL rules see the device: a condition
// refuses one FCC ID, a scope rule narrows by serial, a claim rule copies
// the FCC ID; on the device path and in a batch alike.
func TestDevicePolicy(t *testing.T) {
	env := startDevices(t, ststest.Options{}, func(p *store.DeviceProfile) {
		p.Policy = store.Policy{
			Condition: `device.fcc_id != "BLOCKED"`,
			Scope:     `device.serial.startsWith("LAB-") ? ["sas"] : ["sas", "heartbeat"]`,
			Claims:    map[string]string{"fcc": `device.fcc_id`, "via": `has(actor.subject) ? actor.subject : "self"`},
		}
	})
	lab := env.cbsd(t, "FCC1", "LAB-1", nil)
	c := payload(t, wantOK(t, env.postDevice(t, &lab.TLS, deviceForm(nil), "")).AccessToken)
	if c["scope"] != "sas" || c["fcc"] != "FCC1" || c["via"] != "self" {
		t.Errorf("lab device: scope %v fcc %v via %v", c["scope"], c["fcc"], c["via"])
	}
	blocked := env.cbsd(t, "BLOCKED", "1", nil)
	before := stateDigest(t, env.s)
	if d := wantError(t, env.postDevice(t, &blocked.TLS, deviceForm(nil), "policy-blocked"), http.StatusBadRequest, oauth.ErrInvalidRequest); !strings.Contains(d, "condition") {
		t.Errorf("blocked: %q", d)
	}
	if stateDigest(t, env.s) != before {
		t.Error("the refusal changed the database")
	}
	refusedAudited(t, env.s, "policy-blocked", "token.device", oauth.ErrInvalidRequest, `condition "device.fcc_id != \"BLOCKED\"" is false`)

	dp := env.proxy(t, "0001234567", "dp-1")
	env.delegate(t, dpSubject("0001234567", "dp-1"), store.DeviceRef{FCCID: "FCC2", Serial: "9"}, store.DeviceRef{FCCID: "BLOCKED", Serial: "2"})
	res := decodeBatch(t, env.postBatch(t, &dp.TLS, []map[string]string{{"fccId": "FCC2", "cbsdSerialNumber": "9"}, {"fccId": "BLOCKED", "cbsdSerialNumber": "2"}}, ""))
	if res[0].AccessToken == "" || res[1].Error != "invalid_request" {
		t.Fatalf("batch %+v", res)
	}
	c = payload(t, res[0].AccessToken)
	if c["scope"] != "sas heartbeat" || c["fcc"] != "FCC2" || c["via"] != dpSubject("0001234567", "dp-1") {
		t.Errorf("batch token: scope %v fcc %v via %v", c["scope"], c["fcc"], c["via"])
	}
}

// TestSASRefusesOtherTokens: the example SAS takes device tokens only: a
// client's token for its audience, bearer or bound to the client's
// certificate, is refused. The metadata lists the mtls subject token type.
func TestSASRefusesOtherTokens(t *testing.T) {
	env := startDevices(t, ststest.Options{}, nil)
	sas := startSAS(t, env)
	c := env.s.CreateClient(func(c *store.Client) { c.Audiences = []string{sasAudience} })
	tok := env.s.ClientCredentials(c, url.Values{"audience": {sasAudience}})
	if r := sas.get(t, nil, tok); r.Status != http.StatusUnauthorized || !strings.Contains(r.Header.Get("WWW-Authenticate"), "not a certificate-bound device token") {
		t.Errorf("a client's bearer token: %d %s", r.Status, r.Header)
	}
	self := ststest.SelfSigned(t, ststest.CertOptions{Subject: pkix.Name{CommonName: "not-a-radio"}})
	k := selfSignedClient(env.s, ststest.JWKS(t, self))
	env.s.Store.UpdateClient(context.Background(), k.ID, func(c *store.Client) error { c.Audiences = []string{sasAudience}; return nil })
	env.s.ExpireClientCache()
	r := env.s.PostCert(server.TokenPath, self, url.Values{"grant_type": {oauth.GrantTypeClientCredentials}, "client_id": {k.ID}, "audience": {sasAudience}})
	bound := wantOK(t, r).AccessToken
	selfTLS := self.TLS()
	if r := sas.get(t, &selfTLS, bound); r.Status != http.StatusUnauthorized {
		t.Errorf("a client's certificate-bound token from its certificate: %d", r.Status)
	}
	md := env.s.Do(mustGet(t, env.s.URL+"/.well-known/oauth-authorization-server")).JSON()
	types, _ := md["subject_token_types_supported"].([]any)
	found := false
	for _, ty := range types {
		found = found || ty == tokenep.TokenTypeMTLS
	}
	if !found {
		t.Errorf("subject_token_types_supported %v lacks %s", types, tokenep.TokenTypeMTLS)
	}
}

// TestDeviceProxyHeader: behind a TLS-terminating proxy, a device's (and
// a domain proxy's) certificate comes in the trusted proxy's header; the
// tokens are bound to it.
func TestDeviceProxyHeader(t *testing.T) {
	const header = "X-Client-Cert"
	trusted, err := clientip.Parse("127.0.0.1, ::1")
	if err != nil {
		t.Fatal(err)
	}
	env := startDevices(t, ststest.Options{TLS: &ststest.TLS{CertHeader: header, TrustedProxies: trusted}}, nil)
	oem := env.pki.SubCA(t, "OEM CA")
	leaf := env.cbsd(t, "FCC1", "HDR-1", func(l *devicetest.Leaf) { l.Issuer = oem })
	req, _ := http.NewRequest(http.MethodPost, env.s.URL+server.TokenPath, strings.NewReader(deviceForm(nil).Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(header, url.PathEscape(string(leaf.PEM())))
	tr := wantOK(t, env.s.DoWith(env.client(nil), req))
	if cnf, _ := payload(t, tr.AccessToken)["cnf"].(map[string]any); cnf["x5t#S256"] != clientcert.Thumbprint(leaf.Cert) {
		t.Errorf("cnf %v", cnf)
	}
	dp := env.proxy(t, "0001234567", "dp-1")
	env.delegate(t, dpSubject("0001234567", "dp-1"), store.DeviceRef{FCCID: "F", Serial: "1"})
	req, _ = http.NewRequest(http.MethodPost, env.s.URL+server.BatchPath, strings.NewReader(`[{"fccId":"F","cbsdSerialNumber":"1"}]`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(header, url.PathEscape(string(dp.PEM())))
	res := decodeBatch(t, env.s.DoWith(env.client(nil), req))
	if cnf, _ := payload(t, res[0].AccessToken)["cnf"].(map[string]any); cnf["x5t#S256"] != clientcert.Thumbprint(dp.Cert) {
		t.Errorf("batch cnf %v", cnf)
	}
}
