// Package dpop creates and verifies DPoP proofs (RFC 9449): the JWT a client
// signs with its own key for each HTTP request, so that a token bound to
// that key (cnf.jkt) is useless to whoever steals it without the key.
//
// The token endpoint of the server, the resource package and stsclient share
// this package. NewProof signs a proof; Verifier.Verify checks one and returns
// the RFC 7638 thumbprint of its key (Proof.JKT), which the caller compares
// with the jkt a token is bound to. Failures are *Error values carrying the
// RFC 9449 §12.2 error code (invalid_dpop_proof or use_dpop_nonce), which a
// token endpoint returns as an OAuth error and a resource server as a
// WWW-Authenticate: DPoP challenge (RFC 9449 §7.1).
package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/cryptosigner"
)

// HTTP header names and the JWT type of RFC 9449.
const (
	// Header carries the proof in a request (RFC 9449 §4.1).
	Header = "DPoP"
	// NonceHeader carries a server-provided nonce in a response (RFC 9449 §8).
	NonceHeader = "DPoP-Nonce"
	// JWTType is the typ header of a proof (RFC 9449 §4.2).
	JWTType = "dpop+jwt"
	// AuthScheme is the Authorization scheme of a DPoP-bound access token
	// (RFC 9449 §7.1) and the token_type the token endpoint returns.
	AuthScheme = "DPoP"
)

// Error codes of RFC 9449 §12.2.
const (
	// CodeInvalidProof: the proof is missing, malformed or does not match
	// the request or the token.
	CodeInvalidProof = "invalid_dpop_proof"
	// CodeUseNonce: the server requires a nonce; the client retries with
	// the one in the DPoP-Nonce response header.
	CodeUseNonce = "use_dpop_nonce"
)

// MaxProofSize bounds the proof (the header value) before any parsing. A
// proof with an RSA 4096 key is about 1.5 KB; 8 KB leaves room and keeps an
// attacker from making the server decode megabytes.
const MaxProofSize = 8 << 10

// maxJTI bounds the jti kept by the replay store.
const maxJTI = 256

// Defaults of Verifier.
const (
	// DefaultMaxAge is how old (by iat) a proof may be.
	DefaultMaxAge = 2 * time.Minute
	// DefaultLeeway is how far in the future iat may be (clock skew).
	DefaultLeeway = 30 * time.Second
)

// DefaultAlgorithms are the asymmetric algorithms a Verifier accepts when
// its Algorithms is empty. HS* and none are never accepted, whatever the
// configuration says.
var DefaultAlgorithms = []jose.SignatureAlgorithm{
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
	jose.PS256, jose.PS384, jose.PS512, jose.RS256, jose.RS384, jose.RS512,
}

// Error is a refused proof. Code is CodeInvalidProof or CodeUseNonce;
// Nonce, when set, is the nonce the client must use next (send it in the
// DPoP-Nonce response header).
type Error struct {
	Code        string
	Description string
	Nonce       string
}

func (e *Error) Error() string { return e.Code + ": " + e.Description }

func invalid(format string, args ...any) *Error {
	return &Error{Code: CodeInvalidProof, Description: fmt.Sprintf(format, args...)}
}

// AsError returns the *Error in err's chain, or nil when err is not a
// refused proof (a failure of the replay store, say).
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// ProofOptions are the optional claims of a proof.
type ProofOptions struct {
	// AccessToken, when set, is hashed into ath (RFC 9449 §4.2): required
	// when the proof goes with a request to a resource server.
	AccessToken string
	// Nonce is the server-provided nonce (RFC 9449 §8), if any.
	Nonce string
	// Now is the iat; zero means time.Now().
	Now time.Time
}

// NewProof signs a proof with key for a request with method htm to URI htu.
// alg may be empty: ES256/ES384/ES512 for ECDSA keys by curve, EdDSA for
// Ed25519 and PS256 for RSA. The key may be any crypto.Signer (an HSM or
// KMS key included); its public key is embedded in the proof's jwk header.
func NewProof(key crypto.Signer, alg jose.SignatureAlgorithm, htm, htu string, opts ProofOptions) (string, error) {
	if key == nil {
		return "", errors.New("dpop: no key")
	}
	if alg == "" {
		var err error
		if alg, err = AlgorithmFor(key.Public()); err != nil {
			return "", err
		}
	}
	if !allowed(alg, DefaultAlgorithms) {
		return "", fmt.Errorf("dpop: algorithm %q is not an asymmetric signature algorithm", alg)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: cryptosigner.Opaque(key)},
		(&jose.SignerOptions{EmbedJWK: true}).WithType(JWTType))
	if err != nil {
		return "", fmt.Errorf("dpop: %w", err)
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", err
	}
	c := claims{
		JTI: base64.RawURLEncoding.EncodeToString(jti[:]),
		HTM: htm,
		HTU: htu,
		IAT: json.Number(fmt.Sprint(now.Unix())),
	}
	if opts.AccessToken != "" {
		c.ATH = TokenHash(opts.AccessToken)
	}
	c.Nonce = opts.Nonce
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("dpop: %w", err)
	}
	return jws.CompactSerialize()
}

// AlgorithmFor is the default algorithm for a public key.
func AlgorithmFor(pub crypto.PublicKey) (jose.SignatureAlgorithm, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return jose.ES256, nil
		case elliptic.P384():
			return jose.ES384, nil
		case elliptic.P521():
			return jose.ES512, nil
		}
	case ed25519.PublicKey:
		return jose.EdDSA, nil
	case *rsa.PublicKey:
		return jose.PS256, nil
	}
	return "", fmt.Errorf("dpop: unsupported key type %T", pub)
}

// Thumbprint is the RFC 7638 SHA-256 thumbprint of a public key, base64url
// encoded: the cnf.jkt of a token bound to it (RFC 9449 §6.1).
func Thumbprint(pub crypto.PublicKey) (string, error) {
	jwk := jose.JSONWebKey{Key: pub}
	return thumbprint(&jwk)
}

func thumbprint(jwk *jose.JSONWebKey) (string, error) {
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// TokenHash is the ath of a proof for an access token: the base64url
// encoded SHA-256 of its ASCII value (RFC 9449 §4.2).
func TokenHash(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// claims are a proof's payload (RFC 9449 §4.2).
type claims struct {
	JTI   string      `json:"jti"`
	HTM   string      `json:"htm"`
	HTU   string      `json:"htu"`
	IAT   json.Number `json:"iat"`
	ATH   string      `json:"ath,omitempty"`
	Nonce string      `json:"nonce,omitempty"`
}

func allowed(alg jose.SignatureAlgorithm, list []jose.SignatureAlgorithm) bool {
	switch alg {
	case jose.HS256, jose.HS384, jose.HS512, "none", "":
		return false
	}
	for _, a := range list {
		if a == alg {
			return true
		}
	}
	return false
}
