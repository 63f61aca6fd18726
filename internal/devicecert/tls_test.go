package devicecert_test

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/devicecert"
	"github.com/keybridge/sts/internal/devicecert/devicetest"
	"github.com/keybridge/sts/internal/store"
)

// TestOverTLS has real devices connect over TLS on loopback with their
// devicetest certificates; the server asks for any client certificate
// and verifies the presented chain with Trust.Verify, as the token
// endpoint does.
func TestOverTLS(t *testing.T) {
	pki := devicetest.New(t)
	oem := pki.SubCA(t, "OEM CA")
	trust := &devicecert.Trust{Profiles: []*devicecert.Profile{compile(t, pki, func(p *store.DeviceProfile) { p.EKU = store.EKUAny })}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want := devicecert.Role(r.URL.Query().Get("role"))
		id, _, err := trust.Verify(r.Context(), r.TLS.PeerCertificates, want, time.Now())
		if ref, ok := devicecert.AsRefusal(err); ok {
			w.WriteHeader(http.StatusForbidden)
			json.NewEncoder(w).Encode(map[string]string{"cause": ref.Cause})
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"sub": id.Subject, "x5t#S256": id.Thumbprint})
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	srv.StartTLS()
	defer srv.Close()
	serverCAs := x509.NewCertPool()
	serverCAs.AddCert(srv.Certificate())

	get := func(t *testing.T, l *devicetest.Issued, role devicecert.Role) (int, map[string]string) {
		t.Helper()
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: serverCAs, Certificates: []tls.Certificate{l.TLS}}}}
		resp, err := c.Get(srv.URL + "/?role=" + string(role))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]string
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, out
	}
	for _, c := range []struct {
		name  string
		leaf  devicetest.Leaf
		role  devicecert.Role
		sub   string
		cause string
	}{
		{"CBSD via the OEM CA, RSA-2048, serverAuth only", devicetest.Leaf{Role: devicecert.RoleCBSD, FCCID: "ABC123", Serial: "a:b/c", Issuer: oem, Key: devicetest.RSA2048, EKU: devicetest.EKUServerAuth}, devicecert.RoleCBSD, "cbsd:ABC123:a%3Ab%2Fc", ""},
		{"CBSD, P-384, no EKU", devicetest.Leaf{Role: devicecert.RoleCBSD, FCCID: "ABC123", Serial: "2", Key: devicetest.P384, EKU: devicetest.EKUNone}, devicecert.RoleCBSD, "cbsd:ABC123:2", ""},
		{"domain proxy", devicetest.Leaf{Role: devicecert.RoleOperator, FRN: "0012345678", Subject: pkixCN("dp-1")}, devicecert.RoleOperator, "dp:0012345678:dp-1", ""},
		{"domain proxy on the device path", devicetest.Leaf{Role: devicecert.RoleOperator, FRN: "0012345678", Subject: pkixCN("dp-1")}, devicecert.RoleCBSD, "", devicecert.CauseRole},
		{"expired", devicetest.Leaf{Role: devicecert.RoleCBSD, FCCID: "A", Serial: "1", NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}, devicecert.RoleCBSD, "", devicecert.CauseExpired},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := pki.Leaf(t, c.leaf)
			status, out := get(t, l, c.role)
			if c.cause != "" {
				if status != http.StatusForbidden || out["cause"] != c.cause {
					t.Fatalf("HTTP %d %v, want 403 cause %q", status, out, c.cause)
				}
				return
			}
			if status != http.StatusOK || out["sub"] != c.sub || out["x5t#S256"] == "" {
				t.Fatalf("HTTP %d %v, want sub %q", status, out, c.sub)
			}
		})
	}
	t.Run("leaf sent without its intermediate", func(t *testing.T) {
		l := pki.Leaf(t, devicetest.Leaf{Role: devicecert.RoleCBSD, FCCID: "A", Serial: "1", Issuer: oem})
		l.TLS.Certificate = [][]byte{l.TLS.Certificate[0], l.TLS.Certificate[2]}
		if status, out := get(t, l, devicecert.RoleCBSD); status != http.StatusForbidden || out["cause"] != devicecert.CauseUntrusted {
			t.Fatalf("HTTP %d %v", status, out)
		}
	})
}

func pkixCN(cn string) pkix.Name { return pkix.Name{CommonName: cn} }
