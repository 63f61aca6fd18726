package devicecert

import (
	"crypto/sha256"
	"crypto/x509"
	"sync"
	"time"
)

// maxPaths bounds a profile's cache of verified paths.
const maxPaths = 4096

// pathCache remembers the paths crypto/x509 verified, keyed by the
// presented chain, so that a device reconnecting (or a proxy sending
// batch after batch) costs no signature check: only revocation, role and
// identity are looked at again. An entry serves while every certificate
// of its path is within its validity; the profile's anchors never change
// (a changed profile is compiled anew, with an empty cache).
type pathCache struct {
	mu sync.Mutex
	m  map[[32]byte]cachedPath
}

type cachedPath struct {
	path       []*x509.Certificate
	from, till time.Time
}

func chainKey(chain []*x509.Certificate) [32]byte {
	h := sha256.New()
	for _, c := range chain {
		sum := sha256.Sum256(c.Raw)
		h.Write(sum[:])
	}
	var k [32]byte
	h.Sum(k[:0])
	return k
}

func (pc *pathCache) get(chain []*x509.Certificate, now time.Time) []*x509.Certificate {
	k := chainKey(chain)
	pc.mu.Lock()
	e, ok := pc.m[k]
	pc.mu.Unlock()
	if !ok || now.Before(e.from) || now.After(e.till) {
		return nil
	}
	return e.path
}

func (pc *pathCache) put(chain, path []*x509.Certificate) {
	e := cachedPath{path: path, from: path[0].NotBefore, till: path[0].NotAfter}
	for _, c := range path[1:] {
		if c.NotBefore.After(e.from) {
			e.from = c.NotBefore
		}
		if c.NotAfter.Before(e.till) {
			e.till = c.NotAfter
		}
	}
	k := chainKey(chain)
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.m == nil || len(pc.m) >= maxPaths {
		// A full cache starts afresh: it only costs verifications.
		pc.m = make(map[[32]byte]cachedPath)
	}
	pc.m[k] = e
}
