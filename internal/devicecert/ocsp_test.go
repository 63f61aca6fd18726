package devicecert_test

import (
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/keybridge/sts/internal/devicecert"
	"github.com/keybridge/sts/internal/devicecert/devicetest"
	"github.com/keybridge/sts/internal/store"
)

func TestOCSP(t *testing.T) {
	pki := devicetest.New(t)
	r := pki.OCSPResponder(t, pki.CBSDCA)
	p := compile(t, pki, func(p *store.DeviceProfile) { p.OCSPURL = r.URL })
	now := time.Now()
	verify := func(l *devicetest.Issued) error {
		_, err := p.Verify(ctx, l.Chain, devicecert.RoleCBSD, now)
		return err
	}
	good := pki.Leaf(t, cbsd("A", "1"))
	revoked := pki.Leaf(t, cbsd("A", "2"))
	unknown := pki.Leaf(t, cbsd("A", "3"))
	down := pki.Leaf(t, cbsd("A", "4"))
	r.Set(good.Cert.SerialNumber, ocsp.Good)
	r.Set(revoked.Cert.SerialNumber, ocsp.Revoked)
	r.Set(unknown.Cert.SerialNumber, ocsp.Unknown)

	wantCause(t, verify(good), "")
	wantCause(t, verify(revoked), devicecert.CauseRevoked)
	wantCause(t, verify(unknown), devicecert.CauseOCSP)
	wantCause(t, verify(down), devicecert.CauseOCSP)

	// Answers are kept until their nextUpdate: no second request.
	hits := r.Requests()
	wantCause(t, verify(good), "")
	wantCause(t, verify(revoked), devicecert.CauseRevoked)
	if got := r.Requests(); got != hits {
		t.Errorf("cached answers asked again: %d requests, want %d", got, hits)
	}
	// A leaf a CRL already revokes is not asked about.
	crl := t.TempDir() + "/ca.crl"
	pki.CRL(t, pki.CBSDCA, []*big.Int{down.Cert.SerialNumber}, now.Add(-time.Hour), now.Add(time.Hour), crl)
	p2 := compile(t, pki, func(p *store.DeviceProfile) { p.OCSPURL, p.CRLFiles = r.URL, []string{crl} })
	hits = r.Requests()
	_, err := p2.Verify(ctx, down.Chain, devicecert.RoleCBSD, now)
	wantCause(t, err, devicecert.CauseRevoked)
	if r.Requests() != hits {
		t.Error("the responder was asked about a leaf the CRL revokes")
	}

	t.Run("a response signed by another key is refused", func(t *testing.T) {
		other := devicetest.New(t)
		r2 := other.OCSPResponder(t, other.CBSDCA)
		r2.Set(good.Cert.SerialNumber, ocsp.Good)
		p3 := compile(t, pki, func(p *store.DeviceProfile) { p.OCSPURL = r2.URL })
		_, err := p3.Verify(ctx, good.Chain, devicecert.RoleCBSD, now)
		wantCause(t, err, devicecert.CauseOCSP)
	})
	t.Run("a slow responder is given up on", func(t *testing.T) {
		block := make(chan struct{})
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
		defer slow.Close()
		defer close(block)
		p4 := compile(t, pki, func(p *store.DeviceProfile) { p.OCSPURL = slow.URL })
		p4.HTTPClient = &http.Client{Timeout: 200 * time.Millisecond}
		start := time.Now()
		_, err := p4.Verify(ctx, good.Chain, devicecert.RoleCBSD, now)
		wantCause(t, err, devicecert.CauseOCSP)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("took %v", d)
		}
	})
}
