package e2e_test

// Radio devices and domain proxies (issue 14) against a real `sts serve`
// over TLS on loopback: a CBSD with only its certificate, and a domain
// proxy for 100 devices, obtain certificate-bound tokens and use them at
// the example SAS; the SAS refuses them from any other certificate.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keybridge/sts/examples/sas/sasapi"
	"github.com/keybridge/sts/internal/clientcert"
	"github.com/keybridge/sts/internal/devicecert"
	"github.com/keybridge/sts/internal/devicecert/devicetest"
	"github.com/keybridge/sts/internal/endpoint/discovery"
	tokenep "github.com/keybridge/sts/internal/endpoint/token"
	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/oauth"
)

// deviceWorld is a TLS `sts serve` trusting a CBRS PKI (the
// configuration file's profile "cbrs"), and the example SAS.
type deviceWorld struct {
	p       *popServer
	pki     *devicetest.PKI
	revoked *big.Int
	sas     string
	sasCA   *ststest.CA
}

const e2eSAS = sasapi.DefaultAudience

func newDeviceWorld(t *testing.T, args ...string) *deviceWorld {
	t.Helper()
	w := &deviceWorld{pki: devicetest.New(t), revoked: big.NewInt(0xbad)}
	dir := t.TempDir()
	now := time.Now()
	anchors, crl := filepath.Join(dir, "cbrs-root.pem"), filepath.Join(dir, "cbsd-ca.crl")
	if err := os.WriteFile(anchors, w.pki.RootPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	w.pki.CRL(t, w.pki.CBSDCA, []*big.Int{w.revoked}, now.Add(-time.Hour), now.Add(24*time.Hour), crl)
	cfg := filepath.Join(dir, "sts.yaml")
	yaml := `device-profiles:
  - name: cbrs
    kind: cbrs
    anchors-file: ` + anchors + `
    eku: any
    crl-files: [` + crl + `]
    audiences: [` + e2eSAS + `]
    scopes: [sas]
    max-batch: 100
`
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	w.p = newPoPServer(t, append([]string{"--config", cfg}, args...)...)

	// The SAS verifies the STS's tokens against its key set, over TLS.
	h, err := sasapi.New(context.Background(), sasapi.Options{
		Issuer: clusterIssuer, JWKSURL: w.p.n.URL + discovery.JWKSPath,
		HTTPClient: httpsClient(w.p.serverCA, nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	w.sasCA = ststest.NewCA(t, "SAS CA")
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = ststest.ServerTLSConfig(w.sasCA.Server(t))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	w.sas = srv.URL
	return w
}

// client is an HTTPS client of the STS (or, with roots, another server)
// presenting cert (nil: none).
func tlsClientOf(roots *ststest.CA, cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: roots.Pool(), MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

func (w *deviceWorld) deviceToken(t *testing.T, cert *tls.Certificate, form url.Values) reply {
	t.Helper()
	return postWith(t, tlsClientOf(w.p.serverCA, cert), w.p.n, server.TokenPath, form, nil)
}

func (w *deviceWorld) batch(t *testing.T, cert *tls.Certificate, body []byte) reply {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, w.p.n.URL+server.BatchPath, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := tlsClientOf(w.p.serverCA, cert).Do(req)
	if err != nil {
		return reply{Err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return reply{Status: resp.StatusCode, Body: b, Err: err}
}

// whoami calls the SAS with tok over a connection presenting cert.
func (w *deviceWorld) whoami(t *testing.T, hc *http.Client, tok string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, w.sas+"/v1.3/whoami", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// TestDeviceEndToEnd is issue 14's "done when": a CBSD with only its
// certificate and a domain proxy for 100 devices each obtain bound
// tokens from a real `sts serve` and use them at the example SAS.
func TestDeviceEndToEnd(t *testing.T) {
	w := newDeviceWorld(t)
	oem := w.pki.SubCA(t, "OEM CA")

	t.Run("a CBSD with only its certificate", func(t *testing.T) {
		cbsd := w.pki.Leaf(t, devicetest.Leaf{Role: devicecert.RoleCBSD, FCCID: "ABC123", Serial: "SN:0001", Issuer: oem, Key: devicetest.RSA2048})
		form := url.Values{"grant_type": {oauth.GrantTypeTokenExchange}, "subject_token_type": {tokenep.TokenTypeMTLS},
			"subject_token": {tokenep.EncodeDeviceChain(cbsd.Chain)}}
		tok := accessToken(t, w.deviceToken(t, &cbsd.TLS, form))
		_, c, err := jwtParts(tok)
		if err != nil {
			t.Fatal(err)
		}
		cnf, _ := c["cnf"].(map[string]any)
		if c["sub"] != "cbsd:ABC123:SN%3A0001" || cnf["x5t#S256"] != clientcert.Thumbprint(cbsd.Cert) || c["iss"] != clusterIssuer {
			t.Fatalf("claims %v", c)
		}
		if st, who := w.whoami(t, tlsClientOf(w.sasCA, &cbsd.TLS), tok); st != http.StatusOK || who["fcc_id"] != "ABC123" || who["serial"] != "SN:0001" || who["proxy"] != nil {
			t.Fatalf("SAS: %d %v", st, who)
		}
		thief := w.pki.Leaf(t, devicetest.Leaf{Role: devicecert.RoleCBSD, FCCID: "ABC123", Serial: "SN:0002"})
		if st, _ := w.whoami(t, tlsClientOf(w.sasCA, &thief.TLS), tok); st != http.StatusUnauthorized {
			t.Errorf("SAS, the token from another device's certificate: %d", st)
		}
		// Without a subject token: the handshake's certificate.
		form.Del("subject_token")
		if r := w.deviceToken(t, &cbsd.TLS, form); r.Status != http.StatusOK {
			t.Errorf("handshake only: %v", r)
		}
		// A revoked CBSD gets nothing, and the refusal is audited.
		revoked := w.pki.Leaf(t, devicetest.Leaf{Role: devicecert.RoleCBSD, FCCID: "ABC123", Serial: "SN-R", SerialNumber: w.revoked})
		if r := w.deviceToken(t, &revoked.TLS, form); r.Status != http.StatusBadRequest || r.errorCode() != "invalid_request" || !strings.Contains(string(r.Body), "revoked") {
			t.Errorf("revoked: %v", r)
		}
	})

	t.Run("a domain proxy for 100 devices", func(t *testing.T) {
		const frn, cn = "0009999999", "dp.example.com"
		dp := w.pki.Leaf(t, devicetest.Leaf{Role: devicecert.RoleOperator, FRN: frn, Subject: pkix.Name{CommonName: cn}})
		proxy := "dp:" + devicecert.Escape(frn) + ":" + devicecert.Escape(cn)
		items := make([]map[string]string, 100)
		ds := make([]store.Delegation, 100)
		for i := range items {
			items[i] = map[string]string{"fccId": "XYZ789", "cbsdSerialNumber": fmt.Sprintf("SN-%03d", i)}
			ds[i] = store.Delegation{Proxy: proxy, DeviceRef: store.DeviceRef{FCCID: "XYZ789", Serial: fmt.Sprintf("SN-%03d", i)}}
		}
		delegate(t, w.p.c, ds)
		body, _ := json.Marshal(items)
		r := w.batch(t, &dp.TLS, body)
		if r.Status != http.StatusOK {
			t.Fatalf("batch: %v", r)
		}
		var res []oauth.TokenResponse
		if err := json.Unmarshal(r.Body, &res); err != nil || len(res) != 100 {
			t.Fatalf("batch answer: %v (%d results)", err, len(res))
		}
		hc := tlsClientOf(w.sasCA, &dp.TLS)
		for i, tr := range res {
			st, who := w.whoami(t, hc, tr.AccessToken)
			if st != http.StatusOK || who["serial"] != items[i]["cbsdSerialNumber"] || who["proxy"] != proxy || who["x5t#S256"] != clientcert.Thumbprint(dp.Cert) {
				t.Fatalf("entry %d at the SAS: %d %v", i, st, who)
			}
		}
		// A device's token from its proxy is refused from the device.
		dev := w.pki.Leaf(t, devicetest.Leaf{Role: devicecert.RoleCBSD, FCCID: "XYZ789", Serial: "SN-000"})
		if st, _ := w.whoami(t, tlsClientOf(w.sasCA, &dev.TLS), res[0].AccessToken); st != http.StatusUnauthorized {
			t.Errorf("SAS, the proxy's token from the device's certificate: %d", st)
		}
		// One record per item, each naming the proxy.
		st := w.p.c.auditStore(t)
		recs, err := st.ListAudit(t.Context(), store.AuditFilter{Action: "token.batch", Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, rec := range recs {
			if rec.Decision == store.DecisionGranted && rec.Actor == proxy {
				n++
			}
		}
		if n != 100 {
			t.Errorf("%d granted batch records, want 100", n)
		}
		// Undelegated and over the limit.
		extra := append(items, map[string]string{"fccId": "XYZ789", "cbsdSerialNumber": "SN-100"})
		body, _ = json.Marshal(extra)
		if r := w.batch(t, &dp.TLS, body); r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "at most 100") {
			t.Errorf("101 devices: %v", r)
		}
		body, _ = json.Marshal(extra[99:])
		r = w.batch(t, &dp.TLS, body)
		var two []map[string]any
		json.Unmarshal(r.Body, &two)
		if r.Status != http.StatusOK || len(two) != 2 || two[0]["access_token"] == nil || two[1]["error"] != "unauthorized_client" {
			t.Errorf("delegated then undelegated: %v", r)
		}
	})
}

// delegate lets the proxy speak for the devices, through the CLI: an
// account's bulk import of a CSV file (`sts device import`).
func delegate(t *testing.T, c *cluster, ds []store.Delegation) {
	t.Helper()
	var acct struct {
		ID string `json:"account_id"`
	}
	c.CLIJSON(&acct, "account", "create", "organization", "--name", "Fleet operator", "-o", "json")
	var csv strings.Builder
	csv.WriteString("fcc_id,serial\n")
	for _, d := range ds {
		fmt.Fprintf(&csv, "%s,%s\n", d.FCCID, d.Serial)
	}
	file := filepath.Join(t.TempDir(), "fleet.csv")
	if err := os.WriteFile(file, []byte(csv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	c.CLI("device", "import", "--account", acct.ID, "--proxy", ds[0].Proxy, file)
}

// TestDeviceTwoInstances: two `sts serve` instances over TLS sharing
// PostgreSQL: a profile added with the CLI is trusted by both (change
// notifications), a CBSD obtains its token from one and its domain
// proxy a batch from the other, delegated through the CLI, and the SAS
// accepts both with the key set of either instance.
func TestDeviceTwoInstances(t *testing.T) {
	c := newCluster(t, clusterOptions{})
	pki := devicetest.New(t)
	dir := t.TempDir()
	serverCA := ststest.NewCA(t, "server-ca")
	certFile, keyFile := serverCA.Server(t).Files(t, dir, "server")
	a := startServe(t, c, "a", serverCA, nil, "--tls-cert", certFile, "--tls-key", keyFile)
	b := startServe(t, c, "b", serverCA, nil, "--tls-cert", certFile, "--tls-key", keyFile)
	anchors := filepath.Join(dir, "root.pem")
	if err := os.WriteFile(anchors, pki.RootPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	c.CLI("device", "profile", "add", "cbrs", "--anchors", anchors, "--eku", "any", "--audience", e2eSAS, "--scope", "sas")
	const frn, cn = "0007777777", "dp.example.com"
	proxy := "dp:" + frn + ":" + cn
	c.CLI("device", "delegate", "--proxy", proxy, "--fcc-id", "XYZ789", "--serial", "SN-1")

	cbsd := pki.Leaf(t, devicetest.Leaf{Role: devicecert.RoleCBSD, FCCID: "ABC123", Serial: "SN-0001"})
	dp := pki.Leaf(t, devicetest.Leaf{Role: devicecert.RoleOperator, FRN: frn, Subject: pkix.Name{CommonName: cn}})
	form := url.Values{"grant_type": {oauth.GrantTypeTokenExchange}, "subject_token_type": {tokenep.TokenTypeMTLS}}
	var r reply
	deadline := time.Now().Add(10 * time.Second)
	for {
		// The profile reaches each instance by the change feed.
		if r = postWith(t, tlsClientOf(serverCA, &cbsd.TLS), a, server.TokenPath, form, nil); r.Status == http.StatusOK || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	devTok := accessToken(t, r)
	body := []byte(`[{"fccId":"XYZ789","cbsdSerialNumber":"SN-1"}]`)
	var res []oauth.TokenResponse
	for {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, b.URL+server.BatchPath, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := tlsClientOf(serverCA, &dp.TLS).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			if err := json.Unmarshal(raw, &res); err != nil || len(res) != 1 || res[0].AccessToken == "" {
				t.Fatalf("batch from b: %s", raw)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("batch from b: %d %s", resp.StatusCode, raw)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, jwks := range []*node{a, b} {
		h, err := sasapi.New(context.Background(), sasapi.Options{
			Issuer: clusterIssuer, JWKSURL: jwks.URL + discovery.JWKSPath, HTTPClient: tlsClientOf(serverCA, nil),
		})
		if err != nil {
			t.Fatal(err)
		}
		sasCA := ststest.NewCA(t, "SAS CA")
		srv := httptest.NewUnstartedServer(h)
		srv.TLS = ststest.ServerTLSConfig(sasCA.Server(t))
		srv.StartTLS()
		w := &deviceWorld{sas: srv.URL, sasCA: sasCA}
		if st, who := w.whoami(t, tlsClientOf(sasCA, &cbsd.TLS), devTok); st != http.StatusOK || who["sub"] != "cbsd:ABC123:SN-0001" {
			t.Errorf("SAS with %s's keys, the CBSD's token: %d %v", jwks.Name, st, who)
		}
		if st, who := w.whoami(t, tlsClientOf(sasCA, &dp.TLS), res[0].AccessToken); st != http.StatusOK || who["proxy"] != proxy {
			t.Errorf("SAS with %s's keys, the proxy's token: %d %v", jwks.Name, st, who)
		}
		srv.Close()
	}
}

// TestAttackDeviceFloods: one domain proxy's flood of batches spends its
// own budget, not another proxy's; a source sending certificates nobody
// trusts is throttled, and a trusted device from the same address
// still passes: only refusals are throttled.
func TestAttackDeviceFloods(t *testing.T) {
	w := newDeviceWorld(t, "--device-batch-rate-per-proxy", "3", "--auth-failure-rate-per-address", "3")
	a := w.pki.Leaf(t, devicetest.Leaf{Role: devicecert.RoleOperator, FRN: "0000000001", Subject: pkix.Name{CommonName: "dp-a"}})
	b := w.pki.Leaf(t, devicetest.Leaf{Role: devicecert.RoleOperator, FRN: "0000000002", Subject: pkix.Name{CommonName: "dp-b"}})
	body := []byte(`[{"fccId":"F","cbsdSerialNumber":"1"}]`)
	for i := range 3 {
		if r := w.batch(t, &a.TLS, body); r.Status != http.StatusOK {
			t.Fatalf("proxy a, batch %d: %v", i, r)
		}
	}
	if r := w.batch(t, &a.TLS, body); r.Status != http.StatusTooManyRequests || r.errorCode() != "temporarily_unavailable" {
		t.Errorf("proxy a past its budget: %v", r)
	}
	if r := w.batch(t, &b.TLS, body); r.Status != http.StatusOK {
		t.Errorf("proxy b while a is throttled: %v", r)
	}

	rogue := devicetest.NewWith(t, devicetest.Options{Name: "Rogue"}).Leaf(t, devicetest.Leaf{Role: devicecert.RoleCBSD, FCCID: "F", Serial: "1"})
	form := url.Values{"grant_type": {oauth.GrantTypeTokenExchange}, "subject_token_type": {tokenep.TokenTypeMTLS}}
	var r reply
	for range 4 {
		r = w.deviceToken(t, &rogue.TLS, form)
	}
	if r.Status != http.StatusTooManyRequests {
		t.Errorf("untrusted certificates past the source's budget: %v", r)
	}
	good := w.pki.Leaf(t, devicetest.Leaf{Role: devicecert.RoleCBSD, FCCID: "F", Serial: "2"})
	if r := w.deviceToken(t, &good.TLS, form); r.Status != http.StatusOK {
		t.Errorf("a trusted device from the throttled address: %v", r)
	}
}
