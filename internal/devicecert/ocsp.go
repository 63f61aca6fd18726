package devicecert

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"golang.org/x/crypto/ocsp"
)

// OCSP limits.
const (
	// OCSPTimeout bounds one request to the responder.
	OCSPTimeout = 3 * time.Second
	// maxOCSPResponse bounds the responder's answer: a response for one
	// certificate, with a delegated responder's certificate, is a few KB.
	maxOCSPResponse = 64 << 10
	// maxOCSPCache bounds the cached responses (one per leaf).
	maxOCSPCache = 100_000
	// ocspDefaultTTL is how long a response without nextUpdate is kept.
	ocspDefaultTTL = time.Minute
)

// ocspChecker asks one responder about leaves and caches its answers
// until their nextUpdate.
type ocspChecker struct {
	url    string
	client *http.Client

	mu    sync.Mutex
	cache map[[32]byte]ocspEntry
}

type ocspEntry struct {
	status int // ocsp.Good or ocsp.Revoked
	until  time.Time
}

// check asks whether leaf, issued by issuer, is revoked. An answer the
// responder could not give (no answer, an error status, "unknown", a bad
// signature, a response not yet valid or past its nextUpdate) is an
// error: a profile that names a responder is one whose operator wants
// revocation checked, so its silence refuses (fail closed).
func (o *ocspChecker) check(ctx context.Context, leaf, issuer *x509.Certificate, now time.Time) (revoked bool, err error) {
	key := sha256.Sum256(leaf.Raw)
	o.mu.Lock()
	e, ok := o.cache[key]
	o.mu.Unlock()
	if ok && now.Before(e.until) {
		return e.status == ocsp.Revoked, nil
	}
	req, err := ocsp.CreateRequest(leaf, issuer, nil)
	if err != nil {
		return false, fmt.Errorf("OCSP request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, OCSPTimeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, o.url, bytes.NewReader(req))
	if err != nil {
		return false, err
	}
	hreq.Header.Set("Content-Type", "application/ocsp-request")
	hreq.Header.Set("Accept", "application/ocsp-response")
	resp, err := o.client.Do(hreq)
	if err != nil {
		return false, fmt.Errorf("OCSP responder: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("OCSP responder answered HTTP %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxOCSPResponse+1))
	if err != nil {
		return false, fmt.Errorf("OCSP responder: %w", err)
	}
	if len(body) > maxOCSPResponse {
		return false, fmt.Errorf("OCSP response longer than %d bytes", maxOCSPResponse)
	}
	r, err := ocsp.ParseResponseForCert(body, leaf, issuer)
	if err != nil {
		return false, fmt.Errorf("OCSP response: %w", err)
	}
	// Allow the responder's clock a little skew (RFC 6960 §4.2.2.1
	// leaves it to the client).
	const skew = 5 * time.Minute
	switch {
	case r.ThisUpdate.After(now.Add(skew)):
		return false, fmt.Errorf("OCSP response is not yet valid (thisUpdate %s)", r.ThisUpdate.UTC().Format(time.RFC3339))
	case !r.NextUpdate.IsZero() && now.After(r.NextUpdate):
		return false, fmt.Errorf("OCSP response is out of date (nextUpdate %s)", r.NextUpdate.UTC().Format(time.RFC3339))
	case r.Status == ocsp.Unknown:
		return false, fmt.Errorf("OCSP responder does not know the certificate")
	case r.Status != ocsp.Good && r.Status != ocsp.Revoked:
		return false, fmt.Errorf("OCSP status %d", r.Status)
	}
	until := r.NextUpdate
	if until.IsZero() {
		until = now.Add(ocspDefaultTTL)
	}
	o.mu.Lock()
	if len(o.cache) >= maxOCSPCache {
		// Drop the expired ones; if none were, start afresh: a full cache
		// only costs requests to the responder.
		for k, v := range o.cache {
			if !now.Before(v.until) {
				delete(o.cache, k)
			}
		}
		if len(o.cache) >= maxOCSPCache {
			clear(o.cache)
		}
	}
	o.cache[key] = ocspEntry{status: r.Status, until: until}
	o.mu.Unlock()
	return r.Status == ocsp.Revoked, nil
}
