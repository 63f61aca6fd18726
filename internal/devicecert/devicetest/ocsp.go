package devicetest

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
)

// OCSPResponder is a real OCSP responder (RFC 6960) on loopback that
// signs with a CA's own key. It answers Good, Revoked or Unknown as Set
// says for a serial number, and HTTP 500 for one it was not told about.
type OCSPResponder struct {
	// URL is the responder's address, for a profile's OCSPURL.
	URL string
	// NextUpdate is how long after now the answers' nextUpdate is (an
	// hour by default; negative: none).
	NextUpdate time.Duration

	ca    *CA
	mu    sync.Mutex
	state map[string]int
	hits  atomic.Int64
}

// OCSPResponder starts a responder for the certificates ca issued; it
// stops when the test ends.
func (p *PKI) OCSPResponder(t testing.TB, ca *CA) *OCSPResponder {
	t.Helper()
	r := &OCSPResponder{ca: ca, state: map[string]int{}, NextUpdate: time.Hour}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

// Set makes the responder answer status (ocsp.Good, ocsp.Revoked or
// ocsp.Unknown) for serial.
func (r *OCSPResponder) Set(serial *big.Int, status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.state[serial.Text(16)] = status
}

// Requests is how many requests the responder has had.
func (r *OCSPResponder) Requests() int64 { return r.hits.Load() }

// ServeHTTP answers an OCSP request sent by POST.
func (r *OCSPResponder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.hits.Add(1)
	body, err := io.ReadAll(io.LimitReader(req.Body, 64<<10))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	oreq, err := ocsp.ParseRequest(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	status, ok := r.state[oreq.SerialNumber.Text(16)]
	next := r.NextUpdate
	r.mu.Unlock()
	if !ok {
		http.Error(w, "unknown serial number", http.StatusInternalServerError)
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
