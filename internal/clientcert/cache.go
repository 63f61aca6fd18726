package clientcert

import (
	"crypto/sha256"
	"crypto/x509"
	"sync"
	"time"
)

// maxVerified bounds the verification cache: past it, the cache is
// emptied (a flood of distinct certificates costs their verification,
// never memory).
const maxVerified = 4096

// verified remembers the client certificates whose chain verified, with
// the window in which every certificate of that chain is valid, so that a
// client on a kept-alive or resumed connection does not pay a signature
// verification per request. Only successes are kept: a failure is
// verified again (and counted) each time.
type verified struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]window
}

type window struct{ notBefore, notAfter time.Time }

func (v *verified) ok(cert *x509.Certificate, now time.Time) bool {
	key := sha256.Sum256(cert.Raw)
	v.mu.Lock()
	w, hit := v.m[key]
	v.mu.Unlock()
	return hit && !now.Before(w.notBefore) && !now.After(w.notAfter)
}

func (v *verified) add(cert *x509.Certificate, chains [][]*x509.Certificate) {
	if len(chains) == 0 {
		return
	}
	// The window of the first chain: every certificate of it is valid.
	w := window{notBefore: cert.NotBefore, notAfter: cert.NotAfter}
	for _, c := range chains[0] {
		if c.NotBefore.After(w.notBefore) {
			w.notBefore = c.NotBefore
		}
		if c.NotAfter.Before(w.notAfter) {
			w.notAfter = c.NotAfter
		}
	}
	key := sha256.Sum256(cert.Raw)
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil || len(v.m) >= maxVerified {
		v.m = make(map[[sha256.Size]byte]window)
	}
	v.m[key] = w
}
