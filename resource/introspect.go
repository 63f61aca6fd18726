package resource

import (
	"bytes"
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/keybridge/sts/oauth"
)

const (
	defaultIntrospectionCacheSize = 10000
	defaultIntrospectionCacheTTL  = time.Minute
)

// IntrospectionConfig enables RFC 7662 token introspection
// (https://www.rfc-editor.org/rfc/rfc7662) of opaque tokens.
type IntrospectionConfig struct {
	// URL is the introspection endpoint; discovered from the issuer's
	// metadata (introspection_endpoint) when empty.
	URL string
	// ClientID and ClientSecret authenticate this resource server to the
	// endpoint with client_secret_basic (RFC 7662 §2.1).
	ClientID     string
	ClientSecret string
	// CacheSize bounds the number of cached answers; the least recently
	// used is dropped first. Zero means 10000; negative disables the
	// cache.
	CacheSize int
	// CacheTTL is how long an active answer is reused, never beyond the
	// token's exp. A token revoked at the issuer may thus be accepted for
	// up to CacheTTL. Zero means one minute.
	CacheTTL time.Duration
}

// introspector calls the endpoint and caches active answers, keyed by the
// SHA-256 of the token so that the cache holds no usable token.
type introspector struct {
	url, id, secret string
	hc              *http.Client
	ttl             time.Duration
	cache           *lru
}

func newIntrospector(cfg IntrospectionConfig, url string, hc *http.Client) *introspector {
	in := &introspector{url: url, id: cfg.ClientID, secret: cfg.ClientSecret, hc: hc, ttl: cfg.CacheTTL}
	if in.ttl <= 0 {
		in.ttl = defaultIntrospectionCacheTTL
	}
	size := cfg.CacheSize
	if size == 0 {
		size = defaultIntrospectionCacheSize
	}
	if size > 0 {
		in.cache = newLRU(size)
	}
	return in
}

func (v *Verifier) introspect(ctx context.Context, token string) (*Claims, error) {
	in := v.intro
	key := sha256.Sum256([]byte(token))
	now := v.now()
	if in.cache != nil {
		if c, ok := in.cache.get(key, now); ok {
			return c, nil
		}
	}
	c, err := in.call(ctx, token)
	if err != nil {
		return nil, err
	}
	if c.Issuer == "" {
		// RFC 7662 §2.2: iss is optional; the endpoint speaks for its
		// issuer.
		c.Issuer = v.cfg.Issuer
	}
	if err := v.check(c, !c.Expiry.IsZero()); err != nil {
		return nil, err
	}
	if in.cache != nil {
		until := now.Add(in.ttl)
		if c.Expiry.Before(until) {
			until = c.Expiry
		}
		in.cache.put(key, c, until)
	}
	return c, nil
}

// call asks the endpoint about token (RFC 7662 §2.1) and converts an
// active answer to Claims.
func (in *introspector) call(ctx context.Context, token string) (*Claims, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.url, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if in.id != "" {
		req.Header.Set("Authorization", oauth.BasicAuth(in.id, in.secret))
	}
	resp, err := in.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: introspection: %v", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%w: introspection: %v", ErrUnavailable, err)
	}
	if resp.StatusCode != http.StatusOK {
		// Including 401: our own credentials were refused, which says
		// nothing about the caller's token.
		return nil, fmt.Errorf("%w: introspection answered HTTP %d", ErrUnavailable, resp.StatusCode)
	}
	var ir oauth.IntrospectionResponse
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&ir); err != nil {
		return nil, fmt.Errorf("%w: introspection answer: %v", ErrUnavailable, err)
	}
	if !ir.Active {
		return nil, ErrInactive
	}
	// A refresh token, or anything else that is not an access token, is
	// not accepted even though it is active.
	if ir.TokenType != "" && !strings.EqualFold(ir.TokenType, oauth.TokenTypeBearer) && !strings.EqualFold(ir.TokenType, schemeDPoP) {
		return nil, fmt.Errorf("%w: token_type %q", ErrType, ir.TokenType)
	}
	var extra struct {
		Cnf json.RawMessage `json:"cnf"`
	}
	if err := json.Unmarshal(body, &extra); err != nil {
		return nil, fmt.Errorf("%w: introspection answer: %v", ErrUnavailable, err)
	}
	cnf, cnfUnknown, err := parseCnf(extra.Cnf)
	if err != nil {
		return nil, fmt.Errorf("%w: introspection answer: %v", ErrMalformed, err)
	}
	// RFC 9449 §6.2: a DPoP token must be bound to a key.
	if strings.EqualFold(ir.TokenType, schemeDPoP) && cnf.JKT == "" {
		return nil, fmt.Errorf("%w: token_type DPoP without cnf.jkt", ErrMalformed)
	}
	c := &Claims{
		Issuer: ir.Iss, Subject: ir.Sub, Audience: ir.Aud,
		ID: ir.Jti, ClientID: ir.ClientID, Scope: ir.Scope, Act: ir.Act,
		Introspected: true, raw: body,
		Confirmation: cnf, cnfUnknown: cnfUnknown,
	}
	if ir.Exp != 0 {
		c.Expiry = time.Unix(ir.Exp, 0)
	}
	if ir.Nbf != 0 {
		c.NotBefore = time.Unix(ir.Nbf, 0)
	}
	if ir.Iat != 0 {
		c.IssuedAt = time.Unix(ir.Iat, 0)
	}
	return c, nil
}

// lru is a bounded cache of introspection answers with a deadline each.
type lru struct {
	mu    sync.Mutex
	max   int
	order *list.List // front: most recently used
	items map[[32]byte]*list.Element
}

type lruEntry struct {
	key   [32]byte
	c     *Claims
	until time.Time
}

func newLRU(max int) *lru {
	return &lru{max: max, order: list.New(), items: make(map[[32]byte]*list.Element)}
}

func (l *lru) get(key [32]byte, now time.Time) (*Claims, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	el, ok := l.items[key]
	if !ok {
		return nil, false
	}
	e := el.Value.(*lruEntry)
	if !now.Before(e.until) {
		l.order.Remove(el)
		delete(l.items, key)
		return nil, false
	}
	l.order.MoveToFront(el)
	return e.c, true
}

func (l *lru) put(key [32]byte, c *Claims, until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if el, ok := l.items[key]; ok {
		el.Value = &lruEntry{key: key, c: c, until: until}
		l.order.MoveToFront(el)
		return
	}
	l.items[key] = l.order.PushFront(&lruEntry{key: key, c: c, until: until})
	for l.order.Len() > l.max {
		old := l.order.Back()
		l.order.Remove(old)
		delete(l.items, old.Value.(*lruEntry).key)
	}
}
