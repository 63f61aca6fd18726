package e2e_test

// Attacks on the device paths (issue 14) against a real `sts serve` over
// TLS: the review of the device identity work.

import (
	"crypto/x509/pkix"
	"encoding/json"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/clientcert"
	"github.com/keybridge/sts/internal/devicecert"
	"github.com/keybridge/sts/internal/devicecert/devicetest"
	tokenep "github.com/keybridge/sts/internal/endpoint/token"
	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
)

// TestAttackDeviceTokenOutlivesItsCA: a leaf may outlive the OEM CA that
// issued it (crypto/x509 verifies it while the CA is valid); the token
// of the device, or of a domain proxy so issued, must not outlive the CA.
func TestAttackDeviceTokenOutlivesItsCA(t *testing.T) {
	w := newDeviceWorld(t)
	caEnd := time.Now().Add(2 * time.Minute).Truncate(time.Second)
	oem := w.pki.SubCAWith(t, devicetest.SubCA{Name: "Short OEM CA", NotAfter: caEnd})
	form := url.Values{"grant_type": {oauth.GrantTypeTokenExchange}, "subject_token_type": {tokenep.TokenTypeMTLS}}
	expOf := func(tok string) int64 {
		t.Helper()
		_, c, err := jwtParts(tok)
		if err != nil {
			t.Fatal(err)
		}
		return int64(c["exp"].(float64))
	}
	cbsd := w.pki.Leaf(t, devicetest.Leaf{Role: devicecert.RoleCBSD, FCCID: "LONG", Serial: "1", Issuer: oem})
	if exp := expOf(accessToken(t, w.deviceToken(t, &cbsd.TLS, form))); exp > caEnd.Unix() {
		t.Errorf("device token exp %d, after its CA's notAfter %d", exp, caEnd.Unix())
	}

	dp := w.pki.Leaf(t, devicetest.Leaf{Role: devicecert.RoleOperator, FRN: "0000000042", Subject: pkix.Name{CommonName: "dp-short"}, Issuer: oem})
	proxy := "dp:0000000042:dp-short"
	delegate(t, w.p.c, []store.Delegation{{Proxy: proxy, DeviceRef: store.DeviceRef{FCCID: "LONG", Serial: "2"}}})
	r := w.batch(t, &dp.TLS, []byte(`[{"fccId":"LONG","cbsdSerialNumber":"2"}]`))
	var res []oauth.TokenResponse
	if err := json.Unmarshal(r.Body, &res); r.Status != http.StatusOK || err != nil || len(res) != 1 || res[0].AccessToken == "" {
		t.Fatalf("batch: %v", r)
	}
	if exp := expOf(res[0].AccessToken); exp > caEnd.Unix() {
		t.Errorf("batch token exp %d, after the proxy's CA's notAfter %d", exp, caEnd.Unix())
	}
}

// TestAttackDeviceClaimForged: the device claim is what a SAS reads a
// CBSD's identity from (resource.DeviceOf); a client's claim rule may
// not write it, in any case, so that no client token passes for a
// device's.
func TestAttackDeviceClaimForged(t *testing.T) {
	w := newDeviceWorld(t)
	for _, name := range []string{"device", "Device"} {
		_, err := w.p.c.cli("client", "create", "--name", "forger", "--audience", e2eSAS,
			"--claim", name+`={"fcc_id": "ABC123", "serial": "SN-1", "role": "cbsd", "subject": "x"}`, "-o", "json")
		if err == nil || !strings.Contains(err.Error(), "reserved") {
			t.Errorf("client with a %q claim rule: %v", name, err)
		}
	}
}

// TestAttackDeviceRefused: attacks on the device paths that the server
// already refuses, kept as tests.
func TestAttackDeviceRefused(t *testing.T) {
	// The certificate header is honoured from 192.0.2.0/24 only: not from
	// this test's loopback.
	w := newDeviceWorld(t, "--client-cert-header", "X-Client-Cert", "--trusted-proxies", "192.0.2.0/24")
	form := url.Values{"grant_type": {oauth.GrantTypeTokenExchange}, "subject_token_type": {tokenep.TokenTypeMTLS}}
	cbsd := w.pki.Leaf(t, devicetest.Leaf{Role: devicecert.RoleCBSD, FCCID: "F", Serial: "1"})
	dp := w.pki.Leaf(t, devicetest.Leaf{Role: devicecert.RoleOperator, FRN: "0000000007", Subject: pkix.Name{CommonName: "dp-r"}})
	proxy := "dp:0000000007:dp-r"
	delegate(t, w.p.c, []store.Delegation{{Proxy: proxy, DeviceRef: store.DeviceRef{FCCID: "F", Serial: "1"}}})

	t.Run("wrong roles", func(t *testing.T) {
		if r := w.deviceToken(t, &dp.TLS, form); r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "CBRS role is operator") {
			t.Errorf("a domain proxy's certificate on the device path: %v", r)
		}
		if r := w.batch(t, &cbsd.TLS, []byte(`[{"fccId":"F","cbsdSerialNumber":"1"}]`)); r.Status != http.StatusUnauthorized || r.errorCode() != "invalid_client" {
			t.Errorf("a CBSD's certificate on the batch path: %v", r)
		}
	})

	t.Run("certificate header from an untrusted peer", func(t *testing.T) {
		hdr := url.PathEscape(string(cbsd.PEM()))
		r := postWith(t, tlsClientOf(w.p.serverCA, nil), w.p.n, server.TokenPath, form, http.Header{"X-Client-Cert": {hdr}, "X-Forwarded-For": {"192.0.2.1"}})
		if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "mutual TLS") {
			t.Errorf("device path: %v", r)
		}
		// The proxy's own connection carries a CBSD's header: the
		// connection's certificate is the one looked at.
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, w.p.n.URL+server.BatchPath, strings.NewReader(`[{"fccId":"F","cbsdSerialNumber":"1"}]`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Client-Cert", hdr)
		resp, err := tlsClientOf(w.p.serverCA, &dp.TLS).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("batch with a header from an untrusted peer: %d", resp.StatusCode)
		}
	})

	t.Run("batch duplicates and look-alikes", func(t *testing.T) {
		// Only F/1 is delegated: "f" (case), "F " (space), "Ｆ" (full
		// width) and an escaped-looking "F%3A1" are other devices, the
		// exact duplicate is refused as such, and a huge audience is
		// refused without echoing it.
		huge := "https://sas.example/" + strings.Repeat("a", 100<<10)
		body, _ := json.Marshal([]map[string]string{
			{"fccId": "F", "cbsdSerialNumber": "1"},
			{"fccId": "f", "cbsdSerialNumber": "1"},
			{"fccId": "F ", "cbsdSerialNumber": "1"},
			{"fccId": "Ｆ", "cbsdSerialNumber": "1"},
			{"fccId": "F%3A1", "cbsdSerialNumber": "1"},
			{"fccId": "F", "cbsdSerialNumber": "1"},
			{"fccId": "F", "cbsdSerialNumber": "1", "audience": huge},
		})
		r := w.batch(t, &dp.TLS, body)
		var res []map[string]any
		if err := json.Unmarshal(r.Body, &res); r.Status != http.StatusOK || err != nil || len(res) != 7 {
			t.Fatalf("batch: %v", r)
		}
		if res[0]["access_token"] == nil {
			t.Errorf("entry 0: %v", res[0])
		}
		for i := 1; i <= 4; i++ {
			if res[i]["error"] != "unauthorized_client" {
				t.Errorf("entry %d (a look-alike, not delegated): %v", i, res[i])
			}
		}
		for i := 5; i <= 6; i++ {
			if res[i]["error"] != "invalid_request" || !strings.Contains(res[i]["error_description"].(string), "same device") {
				t.Errorf("entry %d (a duplicate): %v", i, res[i])
			}
		}
		if len(r.Body) > 8<<10 {
			t.Errorf("the answer is %d bytes: the huge audience is echoed", len(r.Body))
		}
	})

	t.Run("a client's token at the SAS", func(t *testing.T) {
		// A bearer token of a client, about the client, for the SAS's
		// audience: valid, but no device's.
		cl := w.p.c.CreateClient("--name", "not-a-device", "--audience", e2eSAS, "--scope", "sas")
		tok := accessToken(t, postWith(t, tlsClientOf(w.p.serverCA, nil), w.p.n, server.TokenPath, url.Values{
			"grant_type": {oauth.GrantTypeClientCredentials}, "client_id": {cl.ID}, "client_secret": {cl.Secret}, "audience": {e2eSAS}}, nil))
		if st, who := w.whoami(t, tlsClientOf(w.sasCA, &cbsd.TLS), tok); st != http.StatusUnauthorized {
			t.Errorf("SAS, a client's bearer token: %d %v", st, who)
		}
	})

	t.Run("a bound token laundered through a client's exchange", func(t *testing.T) {
		tok := accessToken(t, w.deviceToken(t, &cbsd.TLS, form))
		cl := w.p.c.CreateClient("--name", "launderer", "--exchange-any", "--audience", e2eSAS, "--grant-type", "token-exchange")
		ex := url.Values{"grant_type": {oauth.GrantTypeTokenExchange}, "client_id": {cl.ID}, "client_secret": {cl.Secret},
			"subject_token": {tok}, "subject_token_type": {oauth.TokenTypeAccessToken}}
		r := postWith(t, tlsClientOf(w.p.serverCA, nil), w.p.n, server.TokenPath, ex, nil)
		if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "bound to a client certificate") {
			t.Errorf("exchanging a device's token without its certificate: %v", r)
		}
		// The proxy's certificate is not the device's either.
		r = postWith(t, tlsClientOf(w.p.serverCA, &dp.TLS), w.p.n, server.TokenPath, ex, nil)
		if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "another client certificate") {
			t.Errorf("exchanging a device's token with another certificate: %v", r)
		}
	})
}

// TestAttackDeviceAuditHidesCertificate: audit details are cut at
// audit.MaxDetail bytes; a rogue certificate whose issuer name is long
// must still be named by its thumbprint in the audited refusal.
func TestAttackDeviceAuditHidesCertificate(t *testing.T) {
	w := newDeviceWorld(t)
	rogue := devicetest.NewWith(t, devicetest.Options{Name: strings.Repeat("A", 1500)}).
		Leaf(t, devicetest.Leaf{Role: devicecert.RoleCBSD, FCCID: "F", Serial: "1", SerialNumber: new(big.Int).Lsh(big.NewInt(1), 150*8)})
	form := url.Values{"grant_type": {oauth.GrantTypeTokenExchange}, "subject_token_type": {tokenep.TokenTypeMTLS}}
	if r := w.deviceToken(t, &rogue.TLS, form); r.Status != http.StatusBadRequest || len(r.Body) > 2<<10 {
		t.Fatalf("rogue: %v", r)
	}
	recs, err := w.p.c.auditStore(t).ListAudit(t.Context(), store.AuditFilter{Action: "token.device", Limit: 10})
	if err != nil || len(recs) != 1 {
		t.Fatalf("audit: %v %v", recs, err)
	}
	if d := recs[0].Detail; !strings.Contains(d, clientcert.Thumbprint(rogue.Cert)) || !strings.Contains(d, "cause=untrusted") {
		t.Errorf("the audited refusal does not name the certificate: %q", d)
	}
}
