package devicecert_test

import (
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/keybridge/sts/internal/devicecert"
	"github.com/keybridge/sts/internal/devicecert/devicetest"
	"github.com/keybridge/sts/internal/store"
)

// responder is a real OCSP responder over loopback, signing with the
// CBSD CA's key: status says what it answers for a serial number.
type responder struct {
	ca    *devicetest.CA
	mu    sync.Mutex
	state map[string]int // serial (hex) -> ocsp.Good, Revoked, Unknown; absent: HTTP 500
	next  time.Duration  // nextUpdate after now (0: none)
	hits  atomic.Int32
}

func (r *responder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.hits.Add(1)
	body, _ := io.ReadAll(req.Body)
	oreq, err := ocsp.ParseRequest(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	status, ok := r.state[oreq.SerialNumber.Text(16)]
	next := r.next
	r.mu.Unlock()
	if !ok {
		http.Error(w, "down", http.StatusInternalServerError)
		return
	}
	now := time.Now()
	tmpl := ocsp.Response{Status: status, SerialNumber: oreq.SerialNumber, ThisUpdate: now.Add(-time.Minute)}
	if next > 0 {
		tmpl.NextUpdate = now.Add(next)
	}
	if status == ocsp.Revoked {
		tmpl.RevokedAt = now.Add(-time.Hour)
	}
	der, err := ocsp.CreateResponse(r.ca.Cert, r.ca.Cert, tmpl, r.ca.Key)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/ocsp-response")
	w.Write(der)
}

func (r *responder) set(serial *big.Int, status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.state[serial.Text(16)] = status
}

func TestOCSP(t *testing.T) {
	pki := devicetest.New(t)
	r := &responder{ca: pki.CBSDCA, state: map[string]int{}, next: time.Hour}
	srv := httptest.NewServer(r)
	defer srv.Close()
	p := compile(t, pki, func(p *store.DeviceProfile) { p.OCSPURL = srv.URL })
	now := time.Now()
	verify := func(l *devicetest.Issued) error {
		_, err := p.Verify(ctx, l.Chain, devicecert.RoleCBSD, now)
		return err
	}
	good := pki.Leaf(t, cbsd("A", "1"))
	revoked := pki.Leaf(t, cbsd("A", "2"))
	unknown := pki.Leaf(t, cbsd("A", "3"))
	down := pki.Leaf(t, cbsd("A", "4"))
	r.set(good.Cert.SerialNumber, ocsp.Good)
	r.set(revoked.Cert.SerialNumber, ocsp.Revoked)
	r.set(unknown.Cert.SerialNumber, ocsp.Unknown)

	wantCause(t, verify(good), "")
	wantCause(t, verify(revoked), devicecert.CauseRevoked)
	wantCause(t, verify(unknown), devicecert.CauseOCSP)
	wantCause(t, verify(down), devicecert.CauseOCSP)

	// Answers are kept until their nextUpdate: no second request.
	hits := r.hits.Load()
	wantCause(t, verify(good), "")
	wantCause(t, verify(revoked), devicecert.CauseRevoked)
	if got := r.hits.Load(); got != hits {
		t.Errorf("cached answers asked again: %d requests, want %d", got, hits)
	}
	// A leaf a CRL already revokes is not asked about.
	crl := t.TempDir() + "/ca.crl"
	pki.CRL(t, pki.CBSDCA, []*big.Int{down.Cert.SerialNumber}, now.Add(-time.Hour), now.Add(time.Hour), crl)
	p2 := compile(t, pki, func(p *store.DeviceProfile) { p.OCSPURL, p.CRLFiles = srv.URL, []string{crl} })
	hits = r.hits.Load()
	_, err := p2.Verify(ctx, down.Chain, devicecert.RoleCBSD, now)
	wantCause(t, err, devicecert.CauseRevoked)
	if r.hits.Load() != hits {
		t.Error("the responder was asked about a leaf the CRL revokes")
	}

	t.Run("a response signed by another key is refused", func(t *testing.T) {
		other := devicetest.New(t)
		r2 := &responder{ca: other.CBSDCA, state: map[string]int{good.Cert.SerialNumber.Text(16): ocsp.Good}}
		srv2 := httptest.NewServer(r2)
		defer srv2.Close()
		p3 := compile(t, pki, func(p *store.DeviceProfile) { p.OCSPURL = srv2.URL })
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
