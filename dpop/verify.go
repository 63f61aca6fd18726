package dpop

import (
	"context"
	"crypto/rsa"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"net/url"
	"strings"
	"time"
	"unicode"

	jose "github.com/go-jose/go-jose/v4"
)

// ReplayCache makes each proof single-use. Seen records jti as used until
// exp and reports whether it was already recorded (a replay). It is called
// last, once everything else in the proof checked out. Share one store
// between the instances of a service so that a proof is accepted once by
// all of them.
type ReplayCache interface {
	Seen(ctx context.Context, jti string, exp time.Time) (bool, error)
}

// Nonces issues and checks server-provided nonces (RFC 9449 §8). Nonce
// returns the nonce clients should use now; Valid reports whether a nonce a
// client sent is (still) acceptable.
type Nonces interface {
	Nonce(now time.Time) string
	Valid(nonce string, now time.Time) bool
}

// Verifier checks proofs. The zero value accepts DefaultAlgorithms with
// DefaultMaxAge and DefaultLeeway, and does not detect replays: set Replay
// for anything but tests.
type Verifier struct {
	// Algorithms is the allow-list of proof algorithms; empty means
	// DefaultAlgorithms. Symmetric algorithms and none are refused even if
	// listed.
	Algorithms []jose.SignatureAlgorithm
	// MaxAge is how old (by iat) a proof may be; zero means DefaultMaxAge.
	MaxAge time.Duration
	// Leeway is how far iat may be in the future; zero means DefaultLeeway.
	Leeway time.Duration
	// Replay, when set, refuses a jti seen before.
	Replay ReplayCache
	// Nonces, when set, requires a valid server nonce in every proof.
	Nonces Nonces
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Proof is a verified proof.
type Proof struct {
	// JKT is the RFC 7638 SHA-256 thumbprint of the proof's key, base64url
	// encoded: compare it with a token's cnf.jkt, or bind a new token to it.
	JKT string
	// Key is the proof's public key.
	Key       jose.JSONWebKey
	Algorithm jose.SignatureAlgorithm
	JTI       string
	IssuedAt  time.Time
	HTM       string
	HTU       string
	Nonce     string
}

// RSA key sizes accepted in proofs.
const (
	minRSABits = 2048
	maxRSABits = 4096
)

// privateMembers are JWK members that hold private or symmetric key
// material (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2). A proof's jwk must
// carry none of them (RFC 9449 §4.3 check 7).
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// Verify checks proof for a request with method htm to URI htu (RFC 9449
// §4.3). When accessToken is not empty the proof's ath must be its hash
// (requests to resource servers, §7). The caller compares Proof.JKT with
// the token's binding. Refusals are *Error values; other errors come from
// the replay store.
func (v *Verifier) Verify(ctx context.Context, proof, htm, htu, accessToken string) (*Proof, error) {
	if proof == "" {
		return nil, invalid("no DPoP proof")
	}
	if len(proof) > MaxProofSize {
		return nil, invalid("the proof is longer than %d bytes", MaxProofSize)
	}
	algs := v.Algorithms
	if len(algs) == 0 {
		algs = DefaultAlgorithms
	}
	dot := strings.IndexByte(proof, '.')
	if dot < 0 {
		return nil, invalid("the proof is not a compact JWS")
	}
	if err := checkHeader(proof[:dot]); err != nil {
		return nil, err
	}
	jws, err := jose.ParseSignedCompact(proof, algs)
	if err != nil {
		return nil, invalid("the proof is not a JWS signed with an accepted algorithm (%s)", algList(algs))
	}
	if len(jws.Signatures) != 1 {
		return nil, invalid("the proof must have one signature")
	}
	h := jws.Signatures[0].Protected
	alg := jose.SignatureAlgorithm(h.Algorithm)
	if !allowed(alg, algs) {
		return nil, invalid("algorithm %q is not accepted", h.Algorithm)
	}
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != JWTType {
		return nil, invalid("the proof's typ must be %q", JWTType)
	}
	jwk := h.JSONWebKey
	if jwk == nil {
		return nil, invalid("the proof has no jwk header")
	}
	if !jwk.IsPublic() {
		return nil, invalid("the proof's jwk must be a public key")
	}
	if k, ok := jwk.Key.(*rsa.PublicKey); ok && (k.N.BitLen() < minRSABits || k.N.BitLen() > maxRSABits) {
		// A huge modulus would make each verification slow at the
		// sender's will; a small one is weak.
		return nil, invalid("the proof's RSA key must have %d to %d bits", minRSABits, maxRSABits)
	}
	payload, err := jws.Verify(jwk)
	if err != nil {
		return nil, invalid("the proof's signature does not verify with its jwk")
	}
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, invalid("the proof's claims are not a JSON object of the expected types")
	}
	if c.JTI == "" || len(c.JTI) > maxJTI || strings.ContainsFunc(c.JTI, unicode.IsControl) {
		// A replay store may be a database: a jti with NUL (a JSON
		// "\u0000") or another control character is refused, not kept.
		return nil, invalid("the proof needs a jti of 1 to %d characters without control characters", maxJTI)
	}
	if c.HTM != htm {
		return nil, invalid("htm %q does not match the request method %s", trunc(c.HTM), htm)
	}
	want, err := normalizeURI(htu)
	if err != nil {
		return nil, invalid("the request URI cannot be compared")
	}
	got, err := normalizeURI(c.HTU)
	if err != nil || got != want {
		return nil, invalid("htu %q does not match the request URI %s", trunc(c.HTU), want)
	}
	iatF, err := c.IAT.Float64()
	if err != nil || math.IsNaN(iatF) || math.IsInf(iatF, 0) || iatF < 0 || iatF > 1<<40 {
		return nil, invalid("the proof needs a numeric iat")
	}
	iat := time.Unix(int64(iatF), 0)
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	maxAge, leeway := v.MaxAge, v.Leeway
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	if leeway <= 0 {
		leeway = DefaultLeeway
	}
	if iat.After(now.Add(leeway)) {
		return nil, invalid("the proof's iat is in the future")
	}
	if iat.Before(now.Add(-maxAge)) {
		return nil, invalid("the proof is too old (iat more than %s ago)", maxAge)
	}
	if accessToken != "" {
		if c.ATH == "" {
			return nil, invalid("the proof has no ath for the access token")
		}
		if subtle.ConstantTimeCompare([]byte(c.ATH), []byte(TokenHash(accessToken))) != 1 {
			return nil, invalid("the proof's ath does not match the access token")
		}
	}
	if v.Nonces != nil && (c.Nonce == "" || !v.Nonces.Valid(c.Nonce, now)) {
		desc := "a server nonce is required"
		if c.Nonce != "" {
			desc = "the nonce is not (or no longer) valid"
		}
		return nil, &Error{Code: CodeUseNonce, Description: desc, Nonce: v.Nonces.Nonce(now)}
	}
	jkt, err := thumbprint(jwk)
	if err != nil {
		return nil, invalid("the proof's jwk has no thumbprint")
	}
	if v.Replay != nil {
		// A proof is accepted until iat+maxAge; it is remembered as long
		// (plus the leeway for a proof dated in the future).
		seen, err := v.Replay.Seen(ctx, jkt+":"+c.JTI, iat.Add(maxAge+leeway))
		if err != nil {
			return nil, err
		}
		if seen {
			return nil, invalid("the proof was already used (jti replayed)")
		}
	}
	return &Proof{
		JKT: jkt, Key: *jwk, Algorithm: alg, JTI: c.JTI, IssuedAt: iat,
		HTM: c.HTM, HTU: c.HTU, Nonce: c.Nonce,
	}, nil
}

// checkHeader refuses a protected header whose jwk holds private or
// symmetric key material. go-jose drops some members it does not use (the
// primes of an RSA key without d), so look at the JSON itself.
func checkHeader(seg string) error {
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return invalid("the proof's header is not base64url")
	}
	var h struct {
		JWK map[string]json.RawMessage `json:"jwk"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return invalid("the proof's header is not a JSON object")
	}
	for _, m := range privateMembers {
		if _, ok := h.JWK[m]; ok {
			return invalid("the proof's jwk holds private key material (%q): only the public key goes in a proof", m)
		}
	}
	return nil
}

// normalizeURI is the htu comparison form (RFC 9449 §4.3): scheme and host
// in lower case, no default port, no query or fragment, an empty path as /.
func normalizeURI(s string) (string, error) {
	if s == "" || len(s) > 2048 {
		return "", errors.New("bad URI")
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "", errors.New("bad URI")
	}
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path, nil
}

func algList(algs []jose.SignatureAlgorithm) string {
	s := make([]string, 0, len(algs))
	for _, a := range algs {
		if allowed(a, algs) {
			s = append(s, string(a))
		}
	}
	return strings.Join(s, ", ")
}

func trunc(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
