package clients

import (
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/go-jose/go-jose/v4"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
)

// Bounds of a client's registered keys: a JWK set larger than this, or
// with more keys, is refused when registered (the set is parsed on every
// authentication).
const (
	MaxJWKSBytes = 32 << 10
	MaxJWKSKeys  = 16
	maxNameLen   = 1024
)

// FieldKeys names problems about jwks and jwks_uri together.
const FieldKeys = "jwks/jwks_uri"

// AuthMethods are the token_endpoint_auth_method values a client may
// register (RFC 7591 §2, RFC 8705 §2, RFC 7523 §2.2).
var AuthMethods = []string{
	oauth.AuthMethodClientSecretBasic, oauth.AuthMethodClientSecretPost,
	oauth.AuthMethodTLSClientAuth, oauth.AuthMethodSelfSignedTLSClientAuth, oauth.AuthMethodPrivateKeyJWT,
}

// KeyBased reports whether a client of this method authenticates with a
// key, and so has no secret.
func KeyBased(method string) bool {
	switch method {
	case oauth.AuthMethodTLSClientAuth, oauth.AuthMethodSelfSignedTLSClientAuth, oauth.AuthMethodPrivateKeyJWT:
		return true
	}
	return false
}

// CertificateMethod reports whether a client of this method authenticates
// with a TLS client certificate (RFC 8705 §2).
func CertificateMethod(method string) bool {
	return method == oauth.AuthMethodTLSClientAuth || method == oauth.AuthMethodSelfSignedTLSClientAuth
}

// checkBinding checks the key-based registration b of a client of the
// given method and normalises it (an IP address in its canonical form, a
// JWK set re-encoded compactly); bad reports each problem under its RFC
// 7591 / RFC 8705 name.
func checkBinding(method string, b *store.Binding, bad func(field, format string, args ...any)) {
	switch method {
	case "", oauth.AuthMethodClientSecretBasic, oauth.AuthMethodClientSecretPost,
		oauth.AuthMethodTLSClientAuth, oauth.AuthMethodSelfSignedTLSClientAuth, oauth.AuthMethodPrivateKeyJWT:
	default:
		bad("token_endpoint_auth_method", "must be one of %s, not %q", strings.Join(AuthMethods, ", "), method)
		return
	}
	names := []struct {
		field string
		v     *string
	}{
		{"tls_client_auth_subject_dn", &b.TLSSubjectDN}, {"tls_client_auth_san_dns", &b.TLSSANDNS},
		{"tls_client_auth_san_uri", &b.TLSSANURI}, {"tls_client_auth_san_ip", &b.TLSSANIP},
		{"tls_client_auth_san_email", &b.TLSSANEmail},
	}
	var set []string
	for _, n := range names {
		if *n.v != "" {
			set = append(set, n.field)
		}
	}
	if method == oauth.AuthMethodTLSClientAuth {
		if len(set) != 1 {
			bad("tls_client_auth", "needs exactly one of tls_client_auth_subject_dn, _san_dns, _san_uri, _san_ip, _san_email (RFC 8705 §2.1.2); got %d", len(set))
		}
		for _, n := range names {
			if *n.v != "" {
				checkName(n.field, n.v, bad)
			}
		}
	} else if len(set) > 0 {
		bad(set[0], "is only for token_endpoint_auth_method tls_client_auth")
	}

	keys := method == oauth.AuthMethodSelfSignedTLSClientAuth || method == oauth.AuthMethodPrivateKeyJWT
	switch {
	case len(b.JWKS) > 0 && b.JWKSURI != "":
		bad(FieldKeys, "must not both be set (RFC 7591 §2)")
	case !keys && (len(b.JWKS) > 0 || b.JWKSURI != ""):
		bad(FieldKeys, "is only for token_endpoint_auth_method self_signed_tls_client_auth or private_key_jwt")
	case keys && len(b.JWKS) == 0 && b.JWKSURI == "":
		bad(FieldKeys, "one of them is required for %s", method)
	case len(b.JWKS) > 0:
		norm, err := CheckJWKS(b.JWKS)
		if err != nil {
			bad("jwks", "%v", err)
		} else {
			b.JWKS = norm
		}
	case b.JWKSURI != "":
		if err := CheckJWKSURI(b.JWKSURI); err != nil {
			bad("jwks_uri", "%v", err)
		}
	}
	if b.TLSBoundTokens && !CertificateMethod(method) {
		bad("tls_client_certificate_bound_access_tokens", "needs token_endpoint_auth_method tls_client_auth or self_signed_tls_client_auth")
	}
}

func checkName(field string, v *string, bad func(field, format string, args ...any)) {
	s := *v
	if len(s) > maxNameLen || !utf8.ValidString(s) || strings.ContainsFunc(s, isControl) {
		bad(field, "must be valid UTF-8 without control characters, at most %d bytes", maxNameLen)
		return
	}
	switch field {
	case "tls_client_auth_subject_dn":
		if !strings.Contains(s, "=") {
			bad(field, "%q is not a distinguished name in RFC 4514 form, e.g. CN=svc,O=Example", s)
		}
	case "tls_client_auth_san_dns":
		if strings.ContainsAny(s, " /@:") {
			bad(field, "%q is not a DNS name", s)
		}
	case "tls_client_auth_san_uri":
		if u, err := url.Parse(s); err != nil || !u.IsAbs() || strings.ContainsRune(s, ' ') {
			bad(field, "%q is not an absolute URI", s)
		}
	case "tls_client_auth_san_ip":
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			bad(field, "%q is not an IPv4 or IPv6 address", s)
			return
		}
		*v = a.Unmap().String()
	case "tls_client_auth_san_email":
		if local, domain, ok := strings.Cut(s, "@"); !ok || local == "" || domain == "" || strings.ContainsRune(s, ' ') {
			bad(field, "%q is not an email address", s)
		}
	}
}

// CheckJWKS checks a client's registered JWK set: at most MaxJWKSBytes and
// MaxJWKSKeys, at least one key, every key a valid public asymmetric key
// (RSA of at least 2048 bits, EC or OKP); a private or symmetric key is
// refused, since the server must never hold it. It returns the set
// re-encoded.
func CheckJWKS(raw []byte) ([]byte, error) {
	if len(raw) > MaxJWKSBytes {
		return nil, fmt.Errorf("is larger than %d bytes", MaxJWKSBytes)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, fmt.Errorf("is not a JWK set: %v", err)
	}
	switch {
	case len(set.Keys) == 0:
		return nil, fmt.Errorf("holds no key")
	case len(set.Keys) > MaxJWKSKeys:
		return nil, fmt.Errorf("holds more than %d keys", MaxJWKSKeys)
	}
	for i, k := range set.Keys {
		name := fmt.Sprintf("key %d", i+1)
		if k.KeyID != "" {
			name = fmt.Sprintf("key %q", k.KeyID)
		}
		if _, sym := k.Key.([]byte); sym {
			return nil, fmt.Errorf("%s is a symmetric key; register public keys only", name)
		}
		if !k.IsPublic() {
			return nil, fmt.Errorf("%s is a private key; register its public key only", name)
		}
		if !k.Valid() {
			return nil, fmt.Errorf("%s is not a valid key", name)
		}
		if bits := rsaBits(k); bits != 0 && bits < 2048 {
			return nil, fmt.Errorf("%s is an RSA key of %d bits; at least 2048 are needed", name, bits)
		}
	}
	return json.Marshal(set)
}

// CheckJWKSURI accepts an absolute https URL without fragment nor
// credentials, where a client's keys are fetched.
func CheckJWKSURI(s string) error {
	u, err := url.Parse(s)
	switch {
	case len(s) > 2048:
		return fmt.Errorf("is longer than 2048 characters")
	case err != nil || u.Scheme != "https" || u.Host == "" || u.Fragment != "" || u.User != nil:
		return fmt.Errorf("%q must be an https URL without fragment or credentials", s)
	}
	return nil
}

func rsaBits(k jose.JSONWebKey) int {
	if p, ok := k.Key.(*rsa.PublicKey); ok {
		return p.N.BitLen()
	}
	return 0
}
