package resource

import (
	"context"
	"crypto"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
)

const (
	// defaultJWKSMaxAge applies when the JWK set response has no max-age.
	defaultJWKSMaxAge = 5 * time.Minute
	// maxJWKSMaxAge caps a max-age, so that a server's mistake cannot pin
	// a key set for days.
	maxJWKSMaxAge = 24 * time.Hour
	// failureBackoff spaces fetches after a failed one.
	failureBackoff = time.Second
	// maxJWKSSize bounds the JWK set read.
	maxJWKSSize = 1 << 20
	// minRSABits refuses RSA keys too weak to trust (RFC 7518 §3.3).
	minRSABits = 2048
)

// pubKey is a usable verification key of the set.
type pubKey struct {
	pub crypto.PublicKey
	alg string // the JWK's "alg"; empty when it names none
}

// keySet is one fetched JWK set; immutable.
type keySet struct {
	byKID map[string]*pubKey
	// only is the set's single key, for tokens without kid.
	only    *pubKey
	expires time.Time
	etag    string
}

// keyCache holds the issuer's JWK set. Reads are lock-free; fetches are
// serialised by mu, and a goroutine that waited for another's fetch uses
// its result instead of fetching again.
type keyCache struct {
	url         string
	hc          *http.Client
	now         func() time.Time
	minInterval time.Duration
	log         *slog.Logger

	set atomic.Pointer[keySet]

	mu          sync.Mutex // held while fetching; guards the fields below
	lastAttempt time.Time
	lastErr     error
}

// get returns the key named kid, fetching the set when none is loaded, when
// it is stale, or when kid is unknown and the last fetch is older than
// minInterval.
func (c *keyCache) get(ctx context.Context, kid string) (*pubKey, error) {
	s := c.set.Load()
	switch {
	case s == nil:
		var err error
		if s, err = c.refresh(ctx, nil, false, true); s == nil {
			return nil, fmt.Errorf("%w: JWK set: %v", ErrUnavailable, err)
		}
	case c.now().After(s.expires):
		// Stale: one request refreshes while the others go on with the
		// keys they have; a failed refresh keeps the old keys.
		if fresh, _ := c.refresh(ctx, s, false, false); fresh != nil {
			s = fresh
		}
	}
	if k := s.lookup(kid); k != nil {
		return k, nil
	}
	// An unknown kid: the issuer may have rotated to a key published after
	// our fetch. Fetch again, but no more than once per minInterval.
	fresh, _ := c.refresh(ctx, s, true, true)
	if fresh != nil {
		if k := fresh.lookup(kid); k != nil {
			return k, nil
		}
	}
	return nil, fmt.Errorf("%w: kid %q", ErrUnknownKey, kid)
}

func (s *keySet) lookup(kid string) *pubKey {
	if kid == "" {
		return s.only
	}
	return s.byKID[kid]
}

// refresh fetches the set unless it is no longer seen (another goroutine
// replaced it meanwhile: that set is returned), or the rate limits say not
// yet. With wait false it gives up at once when a fetch is running.
func (c *keyCache) refresh(ctx context.Context, seen *keySet, unknownKID, wait bool) (*keySet, error) {
	if wait {
		c.mu.Lock()
	} else if !c.mu.TryLock() {
		return seen, nil
	}
	defer c.mu.Unlock()
	if cur := c.set.Load(); cur != seen {
		return cur, nil
	}
	now := c.now()
	since := now.Sub(c.lastAttempt)
	if unknownKID && since < c.minInterval {
		return seen, nil
	}
	if c.lastErr != nil && since < failureBackoff {
		return seen, c.lastErr
	}
	c.lastAttempt = now
	s, err := c.fetch(ctx, seen)
	c.lastErr = err
	if err != nil {
		c.log.Warn("fetch JWK set", "url", c.url, "err", err)
		return seen, err
	}
	c.set.Store(s)
	return s, nil
}

// fetch GETs the JWK set, revalidating with If-None-Match when the old set
// had an ETag.
func (c *keyCache) fetch(ctx context.Context, old *keySet) (*keySet, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	if old != nil && old.etag != "" {
		req.Header.Set("If-None-Match", old.etag)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSSize))
	if err != nil {
		return nil, err
	}
	now := c.now()
	if resp.StatusCode == http.StatusNotModified && old != nil {
		s := *old
		s.expires = now.Add(maxAge(resp.Header, c.minInterval))
		return &s, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d", c.url, resp.StatusCode)
	}
	s, err := parseKeySet(body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", c.url, err)
	}
	s.etag = resp.Header.Get("ETag")
	s.expires = now.Add(maxAge(resp.Header, c.minInterval))
	return s, nil
}

// parseKeySet keeps the usable public signature keys of a JWK set
// (RFC 7517 §5). Keys this package cannot use (encryption keys, symmetric
// keys, unknown types, short RSA keys) are skipped rather than failing the
// whole set, as RFC 7517 §5 asks.
func parseKeySet(body []byte) (*keySet, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("not a JWK set: %w", err)
	}
	s := &keySet{byKID: make(map[string]*pubKey, len(doc.Keys))}
	var usable int
	for _, raw := range doc.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil || (k.Use != "" && k.Use != "sig") {
			continue
		}
		if !k.IsPublic() {
			// A private or symmetric key has no business in a JWK set;
			// never verify with it.
			continue
		}
		if r, ok := k.Key.(*rsa.PublicKey); ok && r.N.BitLen() < minRSABits {
			continue
		}
		pk := &pubKey{pub: k.Key, alg: k.Algorithm}
		usable++
		s.only = pk
		if k.KeyID != "" {
			s.byKID[k.KeyID] = pk
		}
	}
	if usable != 1 {
		s.only = nil
	}
	if usable == 0 {
		return nil, errors.New("JWK set has no usable signature key")
	}
	return s, nil
}

// maxAge reads Cache-Control max-age, bounded to [floor, 24h].
func maxAge(h http.Header, floor time.Duration) time.Duration {
	d := defaultJWKSMaxAge
	for _, dir := range strings.Split(h.Get("Cache-Control"), ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(dir), "=")
		if ok && strings.EqualFold(name, "max-age") {
			if n, err := strconv.Atoi(strings.Trim(val, `"`)); err == nil && n >= 0 {
				d = time.Duration(n) * time.Second
			}
		}
	}
	return min(max(d, floor), maxJWKSMaxAge)
}
