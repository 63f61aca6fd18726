package token

import (
	"crypto/sha256"
	"sync"
)

// VerifiedCache remembers the JWTs this server verified, keyed by the
// SHA-256 of the token, so that a token presented again skips its
// signature check and JSON decoding. It is an optimisation an operator
// switches on (--verified-token-cache): everything that can change after
// verification is still checked on every use (expiry and not-before,
// revocation of the token and its family, the signing key still being
// published, the client and its account), so a hit answers exactly as a
// fresh verification would. Only tokens that verified are cached, so a
// caller cannot fill it without tokens this server signed; it holds at
// most Max entries, evicting an arbitrary one (an expired one first when
// seen) when full.
type VerifiedCache struct {
	max int
	mu  sync.Mutex
	m   map[[sha256.Size]byte]*verified
}

type verified struct {
	v   Validated
	kid string
}

// NewVerifiedCache returns a cache of at most max tokens (max > 0).
func NewVerifiedCache(max int) *VerifiedCache {
	return &VerifiedCache{max: max, m: make(map[[sha256.Size]byte]*verified, min(max, 1024))}
}

// Len is the number of cached tokens.
func (c *VerifiedCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

func (c *VerifiedCache) get(k [sha256.Size]byte) (*verified, bool) {
	c.mu.Lock()
	e, ok := c.m[k]
	c.mu.Unlock()
	return e, ok
}

// put caches v, verified with key kid, evicting when full; now (unix
// seconds) tells expired entries, which go first.
func (c *VerifiedCache) put(k [sha256.Size]byte, v *Validated, kid string, now int64) {
	e := &verified{v: *v, kid: kid}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		// Map order is random: look at a few entries, drop the expired
		// ones, and at least one.
		n := 0
		for key, old := range c.m {
			if old.v.Expiry <= now || n == 0 {
				delete(c.m, key)
			}
			if n++; n == 8 {
				break
			}
		}
	}
	c.m[k] = e
}

func (c *VerifiedCache) remove(k [sha256.Size]byte) {
	c.mu.Lock()
	delete(c.m, k)
	c.mu.Unlock()
}
