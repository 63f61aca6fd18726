package oauth

import (
	"encoding/base64"
	"net/url"
	"strings"
)

// Grant types understood by the token endpoint (RFC 6749 §4.4, §6; RFC 8693 §2.1;
// RFC 7523 §2.1).
const (
	GrantTypeTokenExchange     = "urn:ietf:params:oauth:grant-type:token-exchange"
	GrantTypeClientCredentials = "client_credentials"
	GrantTypeRefreshToken      = "refresh_token"
	// GrantTypeJWTBearer presents a JWT from a trusted issuer as an
	// authorization grant (RFC 7523 §2.1), as identity chaining across
	// domains does.
	GrantTypeJWTBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"
)

// Token type identifiers (RFC 8693 §3).
const (
	TokenTypeAccessToken  = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeRefreshToken = "urn:ietf:params:oauth:token-type:refresh_token"
	TokenTypeIDToken      = "urn:ietf:params:oauth:token-type:id_token"
	TokenTypeJWT          = "urn:ietf:params:oauth:token-type:jwt"
	TokenTypeSAML1        = "urn:ietf:params:oauth:token-type:saml1"
	TokenTypeSAML2        = "urn:ietf:params:oauth:token-type:saml2"
	// TokenTypeMTLS is not RFC 8693's: the subject is the certificate of
	// the mutual TLS connection (the value Google STS uses); Key Bridge
	// STS accepts it from radio devices (the subject token, if sent, is
	// their DER chain, base64url).
	TokenTypeMTLS = "urn:ietf:params:oauth:token-type:mtls"
)

// Values of the token_type response parameter (RFC 6749 §7.1, RFC 8693 §2.2.1).
const (
	// TokenTypeBearer is the token_type of a bearer access token (RFC 6750).
	TokenTypeBearer = "Bearer"
	// TokenTypeNA is the token_type when the issued token is not an access
	// token and so has no usage semantics (RFC 8693 §2.2.1).
	TokenTypeNA = "N_A"
	// TokenTypeDPoP is the token_type of a DPoP-bound access token
	// (RFC 9449 §5).
	TokenTypeDPoP = "DPoP"
)

// Client authentication methods (RFC 6749 §2.3.1, RFC 7591 §2).
const (
	AuthMethodClientSecretBasic = "client_secret_basic"
	AuthMethodClientSecretPost  = "client_secret_post"
	// AuthMethodTLSClientAuth: a certificate from a trusted CA whose
	// subject DN or SAN matches the client's registration (RFC 8705 §2.1).
	AuthMethodTLSClientAuth = "tls_client_auth"
	// AuthMethodSelfSignedTLSClientAuth: a certificate whose public key is
	// in the client's registered JWK set (RFC 8705 §2.2).
	AuthMethodSelfSignedTLSClientAuth = "self_signed_tls_client_auth"
	// AuthMethodPrivateKeyJWT: a JWT client assertion signed by a key in
	// the client's registered JWK set (RFC 7523 §2.2, OpenID Connect
	// Core §9).
	AuthMethodPrivateKeyJWT = "private_key_jwt"
)

// ClientAssertionTypeJWTBearer is the client_assertion_type of a JWT
// client assertion (RFC 7523 §2.2).
const ClientAssertionTypeJWTBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Confirmation is the "cnf" claim of a sender-constrained token (RFC 7800):
// the hash of the certificate it is bound to (RFC 8705 §3.1) or the
// thumbprint of the DPoP key (RFC 9449 §6.1). At most one is set by this
// server.
type Confirmation struct {
	X5tS256 string `json:"x5t#S256,omitempty"`
	JKT     string `json:"jkt,omitempty"`
}

// IsZero reports whether c binds to nothing.
func (c *Confirmation) IsZero() bool { return c == nil || (c.X5tS256 == "" && c.JKT == "") }

// JWT header "typ" values.
const (
	// JWTTypeAccessToken is the typ of a JWT access token (RFC 9068 §2.1).
	JWTTypeAccessToken = "at+jwt"
	// JWTTypeJWT is the typ of a JWT issued for requested_token_type jwt.
	JWTTypeJWT = "JWT"
)

// NormalizeTokenType trims surrounding white space from a token-type URN.
// Some clients (Key Bridge's Java library among them) send a trailing space;
// the comparison is otherwise exact, as RFC 8693 §3 URIs are case-sensitive.
func NormalizeTokenType(s string) string { return strings.TrimSpace(s) }

// ValidScopeToken reports whether s is a scope token:
// scope-token = 1*( %x21 / %x23-5B / %x5D-7E ) (RFC 6749 §3.3).
func ValidScopeToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c == 0x22 || c == 0x5C || c > 0x7E {
			return false
		}
	}
	return s != ""
}

// BasicAuth returns the Authorization header value of client_secret_basic:
// the client id and secret each form-url-encoded, joined by ':', then
// base64 (RFC 6749 §2.3.1) — so that ids and secrets containing '%', '+',
// ':' or spaces survive the trip.
func BasicAuth(clientID, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(clientID)+":"+url.QueryEscape(secret)))
}
