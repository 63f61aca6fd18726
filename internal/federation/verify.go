package federation

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
)

// maxPeekBytes bounds what PeekIssuer looks at; VerifyJWT applies the
// (smaller, by default) MaxTokenBytes.
const maxPeekBytes = 64 << 10

// maxActorDepth bounds the nesting of act and may_act at parse time; the
// exchange's own cap (default 5) applies later.
const maxActorDepth = 16

// maxKeysTried bounds the keys tried for a token without kid, so that a
// large key set cannot turn one token into many signature checks.
const maxKeysTried = 4

// Asymmetric is the allow-list of JWS algorithms (RFC 7518 §3.1) that an
// issuer may use; "none" and the HMAC family are never accepted: HS256
// with a published key as secret is the classic forgery.
var asymmetric = []string{
	"RS256", "RS384", "RS512",
	"PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512",
	"EdDSA",
}

// AsymmetricAlgorithms returns the JWS algorithms an issuer may be
// configured to accept; an issuer without Algorithms accepts all of them.
func AsymmetricAlgorithms() []string { return slices.Clone(asymmetric) }

// PeekIssuer returns the "iss" claim of a compact JWS without verifying
// anything, to choose the issuer whose keys verify it; ok is false for
// what is not a JWT (an opaque token) or has no iss.
func PeekIssuer(raw string) (iss string, ok bool) {
	if len(raw) > maxPeekBytes {
		return "", false
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "", false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", false
	}
	var c struct {
		Iss json.RawMessage `json:"iss"`
	}
	if json.Unmarshal(payload, &c) != nil || len(c.Iss) == 0 {
		return "", false
	}
	if json.Unmarshal(c.Iss, &iss) != nil || iss == "" {
		return "", false
	}
	return iss, true
}

// header is the part of a JOSE header (RFC 7515 §4.1) read before the
// signature is checked.
type header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

func parseHeader(raw string) (*header, bool) {
	h, _, ok := strings.Cut(raw, ".")
	if !ok {
		return nil, false
	}
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return nil, false
	}
	var hd header
	if json.Unmarshal(b, &hd) != nil {
		return nil, false
	}
	return &hd, true
}

// printable shortens and cleans a value of the token for a Reason: the
// client sent it, but logs and terminals should not get control bytes.
func printable(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

// algorithms returns the issuer's accepted algorithms within the
// asymmetric allow-list.
func algorithms(ti *store.TrustedIssuer) []string {
	if len(ti.Algorithms) == 0 {
		return asymmetric
	}
	var out []string
	for _, a := range ti.Algorithms {
		if slices.Contains(asymmetric, a) {
			out = append(out, a)
		}
	}
	return out
}

func bad(ti *store.TrustedIssuer, format string, args ...any) *Error {
	return &Error{Reason: fmt.Sprintf("token from issuer %s ", ti.Issuer) + fmt.Sprintf(format, args...)}
}

// acceptType checks the declared token type against the issuer's
// accepted types. An empty type is a JWT bearer assertion (RFC 7523),
// accepted where the issuer accepts TokenTypeJWT.
func acceptType(ti *store.TrustedIssuer, typ string) *Error {
	want := typ
	if want == "" {
		want = oauth.TokenTypeJWT
	}
	if !slices.Contains(ti.TokenTypes, want) {
		return &Error{Reason: fmt.Sprintf("issuer %s does not accept tokens of type %s", ti.Issuer, printable(want))}
	}
	return nil
}

// audiences returns what the token's aud must include one of.
func audiences(ti *store.TrustedIssuer, c Check) []string {
	if c.Audiences != nil {
		return c.Audiences
	}
	return ti.Audiences
}

// checkAudience requires one of want in aud. No configured audience is a
// refusal, never "any audience": a token minted for another relying
// party must not be replayable here (RFC 7519 §4.1.3, RFC 7523 §3).
func checkAudience(ti *store.TrustedIssuer, want, aud []string) *Error {
	if len(want) == 0 {
		return &Error{Reason: fmt.Sprintf("no audience is configured for tokens of issuer %s, so none is accepted", ti.Issuer)}
	}
	for _, a := range aud {
		if slices.Contains(want, a) {
			return nil
		}
	}
	return &Error{Reason: fmt.Sprintf("token from issuer %s: audience must include one of %v", ti.Issuer, want)}
}

// registered reads the registered claims (RFC 7519 §4.1) of a decoded
// payload, refusing ones of the wrong JSON type.
func registered(m map[string]any) (jwt.Claims, error) {
	var c jwt.Claims
	str := func(name string, dst *string) error {
		v, ok := m[name]
		if !ok {
			return nil
		}
		if *dst, ok = v.(string); !ok {
			return fmt.Errorf("claim %s is not a string", name)
		}
		return nil
	}
	date := func(name string, dst **jwt.NumericDate) error {
		v, ok := m[name]
		if !ok {
			return nil
		}
		n, ok := v.(float64)
		if !ok {
			return fmt.Errorf("claim %s is not a number", name)
		}
		// Past int64 seconds the conversion below is undefined (on amd64
		// it wraps to the far past, so a far-future nbf would pass); no
		// real date is more than 2^40 s (~35,000 years) from 1970.
		if math.Abs(n) > 1<<40 {
			return fmt.Errorf("claim %s is out of range", name)
		}
		*dst = jwt.NewNumericDate(time.Unix(int64(n), 0))
		return nil
	}
	for _, err := range []error{
		str("iss", &c.Issuer), str("sub", &c.Subject), str("jti", &c.ID),
		date("exp", &c.Expiry), date("nbf", &c.NotBefore), date("iat", &c.IssuedAt),
	} {
		if err != nil {
			return c, err
		}
	}
	switch a := m["aud"].(type) {
	case nil:
	case string:
		c.Audience = jwt.Audience{a}
	case []any:
		for _, x := range a {
			s, ok := x.(string)
			if !ok {
				return c, errors.New("claim aud holds a value that is not a string")
			}
			c.Audience = append(c.Audience, s)
		}
	default:
		return c, errors.New("claim aud is neither a string nor an array of strings")
	}
	return c, nil
}

func numericDate(n *jwt.NumericDate) *time.Time {
	if n == nil {
		return nil
	}
	t := n.Time()
	return &t
}

// times are the time claims of a token or introspection answer.
type times struct {
	exp, nbf, iat *time.Time
}

// checkTimes applies exp, nbf, iat and MaxAge with the issuer's leeway
// (RFC 7519 §4.1.4-6).
func (f *Fetcher) checkTimes(ti *store.TrustedIssuer, t times) *Error {
	now := f.o.Now()
	l := ti.Leeway
	if t.exp == nil {
		return bad(ti, "has no exp")
	}
	if !now.Before(t.exp.Add(l)) {
		return bad(ti, "is expired")
	}
	if t.nbf != nil && now.Add(l).Before(*t.nbf) {
		return bad(ti, "is not valid yet (nbf is in the future)")
	}
	if t.iat != nil && now.Add(l).Before(*t.iat) {
		return bad(ti, "was issued in the future (iat)")
	}
	if ti.MaxAge > 0 {
		if t.iat == nil {
			return bad(ti, "has no iat, which its issuer's maximum age requires")
		}
		if now.Sub(*t.iat) > ti.MaxAge+l {
			return bad(ti, "is too old (issued more than %s ago)", ti.MaxAge)
		}
	}
	return nil
}

// VerifyJWT verifies raw as a JWT of ti: signature by one of its keys
// (refreshing them, rate-limited, on an unknown kid), an allowed
// asymmetric algorithm, iss, sub, exp, nbf, iat and MaxAge with ti's
// leeway, audience, and the declared token type. Failures are *Error.
func (f *Fetcher) VerifyJWT(ctx context.Context, ti *store.TrustedIssuer, raw string, c Check) (*Verified, error) {
	// Cheap refusals first, before any key is fetched.
	if len(raw) > f.o.MaxTokenBytes {
		return nil, bad(ti, "is larger than %d bytes", f.o.MaxTokenBytes)
	}
	if err := acceptType(ti, c.TokenType); err != nil {
		return nil, err
	}
	hd, ok := parseHeader(raw)
	if !ok || strings.Count(raw, ".") != 2 {
		return nil, bad(ti, "is not a compact signed JWT")
	}
	algs := algorithms(ti)
	if !slices.Contains(algs, hd.Alg) {
		return nil, bad(ti, "is signed with alg %s, which is not accepted", printable(hd.Alg))
	}
	// An access token (RFC 9068 §2.1, typ at+jwt) presented as an
	// id_token is a confusion of token kinds (RFC 9068 §4).
	if c.TokenType == oauth.TokenTypeIDToken {
		if t := strings.ToLower(hd.Typ); t == "at+jwt" || t == "application/at+jwt" {
			return nil, bad(ti, "is an access token (typ at+jwt), not an id_token")
		}
	}
	joseAlgs := make([]jose.SignatureAlgorithm, len(algs))
	for i, a := range algs {
		joseAlgs[i] = jose.SignatureAlgorithm(a)
	}
	tok, err := jose.ParseSignedCompact(raw, joseAlgs)
	if err != nil {
		return nil, &Error{Reason: fmt.Sprintf("token from issuer %s is malformed", ti.Issuer), Cause: err}
	}
	if len(tok.Signatures) != 1 {
		return nil, bad(ti, "must carry exactly one signature")
	}

	// One budget for every fetch this verification may need (discovery,
	// keys, a refresh): no request waits longer than FetchTimeout.
	ctx, cancel := context.WithTimeout(ctx, f.o.FetchTimeout)
	defer cancel()
	ks, fetched, err := f.keySet(ctx, ti)
	if err != nil {
		return nil, err
	}
	cands := candidates(ks, hd)
	if len(cands) == 0 && hd.Kid != "" && !fetched {
		// An unknown kid is how a key rotation at the upstream shows
		// (OpenID Connect Core §10.1.1): fetch the keys again, but at
		// most once per UnknownKidInterval per caller, or random kids
		// would make us hammer the upstream.
		fresh, refreshed, err := f.refreshKeys(ctx, ti, c.Caller)
		if err != nil {
			return nil, err
		}
		if refreshed {
			ks = fresh
			cands = candidates(ks, hd)
		}
	}
	if len(cands) == 0 {
		if hd.Kid != "" {
			return nil, &Error{Reason: fmt.Sprintf("no key of issuer %s has kid %q for alg %s", ti.Issuer, printable(hd.Kid), hd.Alg)}
		}
		return nil, &Error{Reason: fmt.Sprintf("no key of issuer %s fits alg %s (the token has no kid)", ti.Issuer, hd.Alg)}
	}

	var (
		std    jwt.Claims
		claims map[string]any
		key    *jose.JSONWebKey
	)
	for _, k := range cands {
		var payload []byte
		if payload, err = tok.Verify(k.Key); err != nil {
			continue
		}
		// One decoding of the payload serves the rules (claims) and the
		// checks below (std).
		claims = nil
		if err = json.Unmarshal(payload, &claims); err == nil {
			std, err = registered(claims)
		}
		if err == nil {
			key = k
		}
		break
	}
	if key == nil {
		if errors.Is(err, jose.ErrCryptoFailure) {
			return nil, &Error{Reason: fmt.Sprintf("token from issuer %s has an invalid signature", ti.Issuer), Cause: err}
		}
		return nil, &Error{Reason: fmt.Sprintf("token from issuer %s has malformed claims", ti.Issuer), Cause: err}
	}

	// go-jose's Expected leaves unset fields unchecked, so each required
	// claim is checked here (RFC 7519 §4.1, RFC 7523 §3).
	if std.Issuer != ti.Issuer {
		return nil, &Error{Reason: fmt.Sprintf("token is not from issuer %s: its iss is %q", ti.Issuer, printable(std.Issuer))}
	}
	if std.Subject == "" {
		return nil, bad(ti, "has no sub")
	}
	t := times{exp: numericDate(std.Expiry), nbf: numericDate(std.NotBefore), iat: numericDate(std.IssuedAt)}
	if err := f.checkTimes(ti, t); err != nil {
		return nil, err
	}
	// OpenID Connect Core §3.1.3.7 (id_token) and RFC 7523 §3 (JWT
	// bearer): the token must be meant for us.
	if err := checkAudience(ti, audiences(ti, c), std.Audience); err != nil {
		return nil, err
	}
	v := &Verified{
		Issuer:    ti,
		Claims:    claims,
		Subject:   std.Subject,
		Via:       ViaJWKS,
		KeyID:     key.KeyID,
		Algorithm: hd.Alg,
		KeySource: ks.source,
		Expiry:    *t.exp,
	}
	if t.iat != nil {
		v.IssuedAt = *t.iat
	}
	if v.Act, v.MayAct, err = actors(claims); err != nil {
		return nil, &Error{Reason: fmt.Sprintf("token from issuer %s has a malformed act or may_act claim", ti.Issuer), Cause: err}
	}
	return v, nil
}

// candidates returns the keys that may have signed a token with header
// hd: the key named by kid, or (no kid) a few keys fitting alg.
func candidates(ks *keySet, hd *header) []*jose.JSONWebKey {
	var out []*jose.JSONWebKey
	for i := range ks.keys {
		k := &ks.keys[i]
		if hd.Kid != "" && k.KeyID != hd.Kid {
			continue
		}
		if !keyFits(k, hd.Alg) {
			continue
		}
		out = append(out, k)
		if len(out) == maxKeysTried {
			break
		}
	}
	return out
}

// actors parses the act and may_act claims (RFC 8693 §4.1, §4.4).
func actors(claims map[string]any) (act, mayAct *oauth.Actor, err error) {
	if v, ok := claims["act"]; ok {
		if act, err = parseActor(v, 1); err != nil {
			return nil, nil, fmt.Errorf("act: %w", err)
		}
	}
	if v, ok := claims["may_act"]; ok {
		if mayAct, err = parseActor(v, 1); err != nil {
			return nil, nil, fmt.Errorf("may_act: %w", err)
		}
	}
	return act, mayAct, nil
}

// parseActor reads one actor object: a JSON object with a non-empty sub
// and optional string iss and client_id, and optionally a nested act
// (RFC 8693 §4.1: the chain of prior actors).
func parseActor(v any, depth int) (*oauth.Actor, error) {
	if depth > maxActorDepth {
		return nil, fmt.Errorf("nested deeper than %d", maxActorDepth)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("not a JSON object")
	}
	str := func(name string, required bool) (string, error) {
		x, ok := m[name]
		if !ok {
			if required {
				return "", fmt.Errorf("no %s", name)
			}
			return "", nil
		}
		s, ok := x.(string)
		if !ok || (required && s == "") {
			return "", fmt.Errorf("%s is not a non-empty string", name)
		}
		return s, nil
	}
	var a oauth.Actor
	var err error
	if a.Subject, err = str("sub", true); err != nil {
		return nil, err
	}
	if a.Issuer, err = str("iss", false); err != nil {
		return nil, err
	}
	if a.ClientID, err = str("client_id", false); err != nil {
		return nil, err
	}
	if x, ok := m["act"]; ok {
		if a.Actor, err = parseActor(x, depth+1); err != nil {
			return nil, err
		}
	}
	return &a, nil
}
