package portal_test

import (
	"crypto/tls"
	"net/http/httptest"
	"testing"

	"github.com/keybridge/sts/internal/portal"
)

// TestHSTSOnlyOverTLS (issue 9, item 9): with an https issuer the portal
// sends Strict-Transport-Security over TLS, or behind a TLS-terminating
// load balancer, never over plain HTTP (RFC 6797 §7.2).
func TestHSTSOnlyOverTLS(t *testing.T) {
	p, err := portal.New(portal.Options{Issuer: "https://sts.example.com", Secure: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		tls  bool
		xfp  string
		want bool
	}{
		{"plain HTTP", false, "", false},
		{"plain HTTP claiming http", false, "http", false},
		{"TLS", true, "", true},
		{"TLS ended by a load balancer", false, "https", true},
	} {
		req := httptest.NewRequest("GET", "/portal/static/style.css", nil)
		if tc.tls {
			req.TLS = &tls.ConnectionState{}
		}
		if tc.xfp != "" {
			req.Header.Set("X-Forwarded-Proto", tc.xfp)
		}
		w := httptest.NewRecorder()
		p.ServeHTTP(w, req)
		if got := w.Header().Get("Strict-Transport-Security") != ""; got != tc.want {
			t.Errorf("%s: HSTS sent = %v, want %v", tc.name, got, tc.want)
		}
	}
}
