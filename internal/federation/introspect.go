package federation

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"

	"github.com/keybridge/sts/internal/store"
)

// introEntry is a cached introspection answer: v for an active token,
// err for an inactive one.
type introEntry struct {
	issuer  string
	expires time.Time
	v       *Verified
	err     *Error
}

// introKey is the cache key of a token: its SHA-256 with the issuer and
// the version of its record, so the cache never holds the token itself
// and an updated issuer starts afresh.
func introKey(ti *store.TrustedIssuer, raw string) [32]byte {
	h := sha256.New()
	h.Write([]byte(ti.Issuer))
	h.Write([]byte{0})
	h.Write([]byte(ti.UpdatedAt.UTC().Format(time.RFC3339Nano)))
	h.Write([]byte{0})
	h.Write([]byte(raw))
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// Introspect validates an opaque token at ti's introspection endpoint
// (RFC 7662), with caching by token hash. An inactive token is an *Error.
//
// The answer must be active, name ti.Issuer in iss when it has one, and
// carry sub and exp; exp, nbf and iat are checked with ti's leeway. When
// the answer carries aud and ti has Audiences, one of them must be in it
// (RFC 7662 §2.2 makes aud optional: the endpoint authenticated us, and
// a token it reports active without aud is one it means for its callers).
// The Claims of a Verified served from cache are shared: do not modify.
func (f *Fetcher) Introspect(ctx context.Context, ti *store.TrustedIssuer, raw string) (*Verified, error) {
	if len(raw) > f.o.MaxTokenBytes {
		return nil, bad(ti, "is larger than %d bytes", f.o.MaxTokenBytes)
	}
	if raw == "" {
		return nil, bad(ti, "is empty")
	}
	key := introKey(ti, raw)
	now := f.o.Now()
	f.mu.Lock()
	if e := f.intro[key]; e != nil {
		if now.Before(e.expires) {
			f.mu.Unlock()
			if e.err != nil {
				return nil, e.err
			}
			v := *e.v
			return &v, nil
		}
		delete(f.intro, key)
	}
	f.mu.Unlock()

	// One budget for discovery and the call: no request waits longer
	// than FetchTimeout.
	ctx, cancel := context.WithTimeout(ctx, f.o.FetchTimeout)
	defer cancel()
	endpoint := ti.IntrospectionEndpoint
	if endpoint == "" {
		m, err := f.Discover(ctx, ti)
		if err != nil {
			return nil, err
		}
		endpoint = m.IntrospectionEndpoint
	}
	if endpoint == "" {
		return nil, &Error{Reason: fmt.Sprintf("issuer %s has no introspection endpoint", ti.Issuer)}
	}
	form := url.Values{"token": {raw}, "token_type_hint": {"access_token"}}
	r, err := f.fetch(ctx, ti, endpoint, form, ti.IntrospectionClientID, ti.IntrospectionClientSecret)
	if err != nil {
		return nil, upstreamError(ti.Issuer, "introspection answer", err)
	}
	v, expires, verr := f.introspected(ti, r.body)
	if verr != nil && verr.Upstream {
		return nil, verr
	}
	f.remember(key, &introEntry{issuer: ti.Issuer, expires: expires, v: v, err: verr})
	if verr != nil {
		return nil, verr
	}
	c := *v
	return &c, nil
}

// introspected checks an introspection answer (RFC 7662 §2.2) and says
// until when it may be reused.
func (f *Fetcher) introspected(ti *store.TrustedIssuer, body []byte) (*Verified, time.Time, *Error) {
	now := f.o.Now()
	dec := json.NewDecoder(bytes.NewReader(body))
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil || claims == nil {
		return nil, now, upstreamError(ti.Issuer, "introspection answer", &fetchError{safe: "the answer is not a JSON object", cause: err})
	}
	active, _ := claims["active"].(bool)
	if !active {
		// Inactive answers are cached briefly: a token can become active
		// only if the upstream erred, but a flood of one bad token
		// should not reach the upstream each time.
		return nil, now.Add(f.o.InactiveCache), bad(ti, "is not active")
	}
	if iss, ok := claims["iss"]; ok {
		if s, _ := iss.(string); s != ti.Issuer {
			return nil, now.Add(f.o.InactiveCache), &Error{Reason: fmt.Sprintf("token is not from issuer %s: its introspection names another iss", ti.Issuer)}
		}
	}
	sub, _ := claims["sub"].(string)
	if sub == "" {
		return nil, now.Add(f.o.InactiveCache), bad(ti, "has no sub in its introspection answer")
	}
	// Some servers report their refresh tokens active too (Keycloak's
	// token_type "Refresh"); only access tokens are subject tokens here.
	if tt, _ := claims["token_type"].(string); strings.Contains(strings.ToLower(tt), "refresh") {
		return nil, now.Add(f.o.InactiveCache), bad(ti, "is a refresh token (token_type %q), not an access token", printable(tt))
	}
	var t times
	for name, dst := range map[string]**time.Time{"exp": &t.exp, "nbf": &t.nbf, "iat": &t.iat} {
		x, ok := claims[name]
		if !ok {
			continue
		}
		n, ok := x.(float64)
		if !ok || math.IsNaN(n) || math.Abs(n) > 1<<40 {
			return nil, now.Add(f.o.InactiveCache), bad(ti, "has a malformed %s in its introspection answer", name)
		}
		tm := time.Unix(int64(n), 0)
		*dst = &tm
	}
	if err := f.checkTimes(ti, t); err != nil {
		return nil, now.Add(f.o.InactiveCache), err
	}
	if aud, ok := claims["aud"]; ok && len(ti.Audiences) > 0 {
		var auds []string
		switch a := aud.(type) {
		case string:
			auds = []string{a}
		case []any:
			for _, x := range a {
				if s, ok := x.(string); ok {
					auds = append(auds, s)
				}
			}
		}
		if err := checkAudience(ti, ti.Audiences, auds); err != nil {
			return nil, now.Add(f.o.InactiveCache), err
		}
	}
	v := &Verified{Issuer: ti, Claims: claims, Subject: sub, Via: ViaIntrospection, Expiry: *t.exp}
	if t.iat != nil {
		v.IssuedAt = *t.iat
	}
	var err error
	if v.Act, v.MayAct, err = actors(claims); err != nil {
		return nil, now.Add(f.o.InactiveCache), &Error{Reason: fmt.Sprintf("token from issuer %s has a malformed act or may_act claim", ti.Issuer), Cause: err}
	}
	// Reused until the sooner of its exp and IntrospectionCache: a
	// revocation at the upstream shows here within that bound.
	until := now.Add(f.o.IntrospectionCache)
	if t.exp.Before(until) {
		until = *t.exp
	}
	return v, until, nil
}

// remember stores an introspection answer, evicting when the cache is
// full: expired entries first, else one arbitrary entry.
func (f *Fetcher) remember(key [32]byte, e *introEntry) {
	now := f.o.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.intro) >= MaxIntrospectionEntries {
		for k, x := range f.intro {
			if !now.Before(x.expires) {
				delete(f.intro, k)
			}
		}
		for k := range f.intro {
			if len(f.intro) < MaxIntrospectionEntries {
				break
			}
			delete(f.intro, k)
		}
	}
	f.intro[key] = e
}
