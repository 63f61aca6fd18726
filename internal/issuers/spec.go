package issuers

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-jose/go-jose/v4"

	"github.com/keybridge/sts/internal/celpolicy"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
)

// Spec is an operator's description of a trusted issuer, before it is
// checked: what `sts issuer add` flags and the configuration file's
// issuers entries say. Zero values take the defaults Build documents.
type Spec struct {
	// Name is the operator's short name: [a-z0-9][a-z0-9-]{0,62}.
	Name string
	// Issuer is the exact "iss" of the issuer's tokens: an https URL
	// (http only for a loopback host, or with AllowHTTP).
	Issuer string
	// JWKSURI or JWKS (a JSON Web Key Set, RFC 7517 §5) give the keys;
	// with neither they come through discovery of Issuer.
	JWKSURI string
	JWKS    []byte
	// IntrospectionEndpoint and its client credentials validate opaque
	// access tokens (RFC 7662 §2.1: the call is authenticated).
	IntrospectionEndpoint     string
	IntrospectionClientID     string
	IntrospectionClientSecret string
	// TokenTypes are short names (id_token, jwt, access_token) or token
	// type URNs (RFC 8693 §3); default id_token and jwt.
	TokenTypes []string
	// Algorithms are JWS algorithms (RFC 7518 §3.1), asymmetric only;
	// default every one of SupportedAlgorithms.
	Algorithms []string
	// Audiences: an upstream token must name one; default the server's
	// issuer URL.
	Audiences []string
	// MaxAge, when not zero, refuses tokens issued (iat) longer ago.
	MaxAge time.Duration
	// Leeway tolerated on exp, nbf and iat; nil: DefaultLeeway.
	Leeway *time.Duration
	// Clients are the client ids that may present the issuer's tokens,
	// or "*" for every client; at least one.
	Clients []string
	// SubjectPrefix is prepended to the issued subject; nil: Name + ":".
	SubjectPrefix *string
	// Policy holds the issuer's CEL rules (condition, scope, claims,
	// subject), compiled when checked.
	Policy store.Policy
	// AllowHTTP permits http:// URLs to hosts other than loopback.
	AllowHTTP bool
}

// Defaults and bounds.
const (
	// DefaultLeeway tolerates the clock skew usual between hosts kept by
	// NTP, with margin.
	DefaultLeeway = 60 * time.Second
	// MaxLeeway: more would let expired tokens live on noticeably.
	MaxLeeway = 5 * time.Minute
	// MaxJWKSSize bounds a static key set (a few dozen keys fit).
	MaxJWKSSize = 256 << 10
	// AllClients in Clients lets every client present the issuer's tokens.
	AllClients = "*"
)

// SupportedAlgorithms are the JWS algorithms an issuer may use: asymmetric
// ones only (RFC 7518 §3.1). "none" and the HMAC algorithms are never
// accepted: an HMAC key would be a secret shared with the issuer, and a
// public JWKS key taken as an HMAC secret is the classic forgery.
var SupportedAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// DefaultTokenTypes are accepted when a Spec names none: the JWTs an
// OpenID provider or workload platform issues.
var DefaultTokenTypes = []string{oauth.TokenTypeIDToken, oauth.TokenTypeJWT}

// tokenTypeNames maps the short names an operator types to token type
// URNs (RFC 8693 §3).
var tokenTypeNames = map[string]string{
	"id_token":     oauth.TokenTypeIDToken,
	"jwt":          oauth.TokenTypeJWT,
	"access_token": oauth.TokenTypeAccessToken,
}

// ShortTokenType names a token type URN as an operator types it.
func ShortTokenType(urn string) string {
	for short, u := range tokenTypeNames {
		if u == urn {
			return short
		}
	}
	return urn
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Problem is one thing wrong with a Spec. Field is the CLI flag's name
// without dashes ("jwks-uri", "token-type", "claim email", ...), which is
// also (or, for lists, the singular of) the configuration file's key.
type Problem struct {
	Field string
	Msg   string
}

func (p *Problem) Error() string { return p.Field + ": " + p.Msg }

// Problems is every problem found in a Spec.
type Problems []*Problem

func (p Problems) Error() string {
	msgs := make([]string, len(p))
	for i, e := range p {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// checked is a Spec's values once checked, with the defaults applied but
// the audience (which depends on the server).
type checked struct {
	tokenTypes, algorithms, audiences, clients []string
	leeway                                     time.Duration
	prefix                                     string
}

// Validate checks every field and returns Problems listing each problem,
// or nil. It does not check that the clients exist (the Service does) and
// needs no server: the default audience is left to Build.
func (s *Spec) Validate() error {
	_, err := s.check()
	return err
}

func (s *Spec) check() (*checked, error) {
	var probs Problems
	bad := func(field, format string, args ...any) {
		probs = append(probs, &Problem{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	var out checked
	if !nameRE.MatchString(s.Name) {
		bad("name", "%q must be 1 to 63 lower-case letters, digits and '-', starting with a letter or digit", s.Name)
	}
	if s.Issuer == "" {
		bad("issuer", "is required")
	} else if err := checkURL(s.Issuer, s.AllowHTTP, true); err != nil {
		bad("issuer", "%q %v", s.Issuer, err)
	}
	if s.JWKSURI != "" {
		if err := checkURL(s.JWKSURI, s.AllowHTTP, false); err != nil {
			bad("jwks-uri", "%q %v", s.JWKSURI, err)
		}
		if len(s.JWKS) > 0 {
			bad("jwks", "give either a JWKS URI or a JWKS file, not both")
		}
	}
	if len(s.JWKS) > 0 {
		if err := CheckJWKS(s.JWKS); err != nil {
			bad("jwks", "%v", err)
		}
	}
	if s.IntrospectionEndpoint != "" {
		if err := checkURL(s.IntrospectionEndpoint, s.AllowHTTP, false); err != nil {
			bad("introspection-endpoint", "%q %v", s.IntrospectionEndpoint, err)
		}
		// RFC 7662 §2.1: the introspection endpoint requires the caller
		// to authenticate.
		if s.IntrospectionClientID == "" {
			bad("introspection-client-id", "is required with an introspection endpoint")
		}
		if s.IntrospectionClientSecret == "" {
			bad("introspection-client-secret", "is required with an introspection endpoint")
		}
	} else if s.IntrospectionClientID != "" || s.IntrospectionClientSecret != "" {
		bad("introspection-endpoint", "is required with introspection client credentials")
	}
	for _, f := range []struct{ name, v string }{
		{"introspection-client-id", s.IntrospectionClientID},
		{"introspection-client-secret", s.IntrospectionClientSecret},
	} {
		if strings.ContainsFunc(f.v, isControl) {
			bad(f.name, "must not contain control characters")
		}
	}

	for _, t := range s.TokenTypes {
		urn, ok := tokenTypeNames[t]
		if !ok && slices.Contains([]string{oauth.TokenTypeIDToken, oauth.TokenTypeJWT, oauth.TokenTypeAccessToken}, t) {
			urn, ok = t, true
		}
		if !ok {
			bad("token-type", "%q is not id_token, jwt or access_token", t)
		} else if !slices.Contains(out.tokenTypes, urn) {
			out.tokenTypes = append(out.tokenTypes, urn)
		}
	}
	if len(s.TokenTypes) == 0 {
		out.tokenTypes = slices.Clone(DefaultTokenTypes)
	}
	// access_token: opaque access tokens need the introspection endpoint;
	// JWT access tokens (RFC 9068) are verified with the issuer's keys
	// (a JWKS, its URI, or discovery), which every issuer has; so any
	// issuer may accept them, and the introspection endpoint is only
	// worth configuring with access_token.
	if s.IntrospectionEndpoint != "" && !slices.Contains(out.tokenTypes, oauth.TokenTypeAccessToken) {
		bad("token-type", "access_token must be accepted for the introspection endpoint to be used")
	}

	for _, a := range s.Algorithms {
		switch {
		case slices.Contains(SupportedAlgorithms, a):
			if !slices.Contains(out.algorithms, a) {
				out.algorithms = append(out.algorithms, a)
			}
		case strings.EqualFold(a, "none") || strings.HasPrefix(strings.ToUpper(a), "HS"):
			bad("algorithm", "%q is never accepted: only asymmetric algorithms (%s)", a, strings.Join(SupportedAlgorithms, " "))
		default:
			bad("algorithm", "%q is not one of %s", a, strings.Join(SupportedAlgorithms, " "))
		}
	}
	if len(s.Algorithms) == 0 {
		out.algorithms = slices.Clone(SupportedAlgorithms)
	}

	for _, a := range s.Audiences {
		switch {
		case strings.TrimSpace(a) == "":
			bad("audience", "must not be empty")
		case strings.ContainsFunc(a, isControl):
			bad("audience", "%q must not contain control characters", a)
		case !slices.Contains(out.audiences, a):
			out.audiences = append(out.audiences, a)
		}
	}

	if s.MaxAge < 0 {
		bad("max-age", "must not be negative")
	}
	out.leeway = DefaultLeeway
	if s.Leeway != nil {
		out.leeway = *s.Leeway
		if out.leeway < 0 || out.leeway > MaxLeeway {
			bad("leeway", "%v must be between 0 and %v", out.leeway, MaxLeeway)
		}
	}

	for _, c := range s.Clients {
		switch {
		case c == AllClients:
		case c == "":
			bad("client", "must not be empty")
			continue
		case !validClientID(c):
			bad("client", "%q is not a client id", c)
			continue
		}
		if !slices.Contains(out.clients, c) {
			out.clients = append(out.clients, c)
		}
	}
	if len(s.Clients) == 0 {
		bad("client", "give at least one client id that may present this issuer's tokens, or * for every client")
	}
	if slices.Contains(out.clients, AllClients) {
		out.clients = []string{AllClients}
	}

	out.prefix = s.Name + ":"
	if s.SubjectPrefix != nil {
		out.prefix = *s.SubjectPrefix
	}
	switch {
	case len(out.prefix) > 255:
		bad("subject-prefix", "is longer than 255 characters")
	case strings.ContainsFunc(out.prefix, isControl) || !utf8.ValidString(out.prefix):
		bad("subject-prefix", "must be valid UTF-8 without control characters")
	}

	// The rules are type-checked now, so that a bad one is refused when
	// saved or loaded, never when a token arrives; celpolicy names the
	// issuer, the rule, the position, and refuses reserved claims.
	if _, err := celpolicy.Compile(fmt.Sprintf("issuer %q", s.Name), s.Policy); err != nil {
		bad("policy", "%v", err)
	}

	if len(probs) > 0 {
		return nil, probs
	}
	return &out, nil
}

// Build checks s and returns the record to store: enabled, from source
// store, stamped now; audience, when s names none, is the server's issuer
// URL, which upstream tokens must then carry in aud.
func (s *Spec) Build(audience string, now time.Time) (*store.TrustedIssuer, error) {
	c, err := s.check()
	if err != nil {
		return nil, err
	}
	auds := c.audiences
	if len(auds) == 0 {
		if audience == "" {
			return nil, Problems{{Field: "audience", Msg: "is required (this server's issuer URL is not known)"}}
		}
		auds = []string{audience}
	}
	// To the microsecond, as the store keeps times: the record returned
	// equals the one read back.
	now = now.UTC().Truncate(time.Microsecond)
	return &store.TrustedIssuer{
		Name: s.Name, Issuer: s.Issuer, Enabled: true, Source: store.IssuerSourceStore,
		JWKSURI: s.JWKSURI, JWKS: slices.Clone(s.JWKS),
		IntrospectionEndpoint: s.IntrospectionEndpoint, IntrospectionClientID: s.IntrospectionClientID,
		IntrospectionClientSecret: s.IntrospectionClientSecret,
		TokenTypes:                c.tokenTypes, Algorithms: c.algorithms, Audiences: auds,
		MaxAge: s.MaxAge, Leeway: c.leeway, Clients: c.clients, SubjectPrefix: c.prefix,
		Policy: clonePolicy(s.Policy), AllowHTTP: s.AllowHTTP,
		CreatedAt: now, UpdatedAt: now,
	}, nil
}

// SpecOf is the Spec that describes a stored issuer (every default made
// explicit), for partial updates.
func SpecOf(ti *store.TrustedIssuer) Spec {
	leeway, prefix := ti.Leeway, ti.SubjectPrefix
	return Spec{
		Name: ti.Name, Issuer: ti.Issuer, JWKSURI: ti.JWKSURI, JWKS: slices.Clone(ti.JWKS),
		IntrospectionEndpoint: ti.IntrospectionEndpoint, IntrospectionClientID: ti.IntrospectionClientID,
		IntrospectionClientSecret: ti.IntrospectionClientSecret,
		TokenTypes:                slices.Clone(ti.TokenTypes), Algorithms: slices.Clone(ti.Algorithms),
		Audiences: slices.Clone(ti.Audiences), MaxAge: ti.MaxAge, Leeway: &leeway,
		Clients: slices.Clone(ti.Clients), SubjectPrefix: &prefix,
		Policy: clonePolicy(ti.Policy), AllowHTTP: ti.AllowHTTP,
	}
}

func clonePolicy(p store.Policy) store.Policy {
	if len(p.Claims) == 0 {
		p.Claims = nil
		return p
	}
	c := make(map[string]string, len(p.Claims))
	for k, v := range p.Claims {
		c[k] = v
	}
	p.Claims = c
	return p
}

// checkURL accepts an absolute https URL, or an http one to a loopback
// host or with allowHTTP; an issuer also has no query or fragment (OpenID
// Connect Discovery §3, RFC 8414 §2).
func checkURL(raw string, allowHTTP, issuer bool) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("is not an absolute URL")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !allowHTTP && !IsLoopback(u.Hostname()) {
			return fmt.Errorf("must use https (http only to a loopback host, or with allow-http)")
		}
	default:
		return fmt.Errorf("must be an https URL")
	}
	if u.User != nil {
		return fmt.Errorf("must not hold credentials")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return fmt.Errorf("must not have a fragment")
	}
	if issuer && u.RawQuery != "" {
		return fmt.Errorf("must not have a query (an issuer identifier is a URL without query or fragment)")
	}
	return nil
}

// IsLoopback reports whether host (without port) is a loopback name or
// address.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CheckJWKS checks a static key set: a JSON Web Key Set (RFC 7517 §5)
// holding at least one public asymmetric key (RSA, EC or OKP Ed25519),
// and no private key nor symmetric ("oct") key, which would show that
// secrets were pasted where only public keys belong.
func CheckJWKS(b []byte) error {
	if len(b) > MaxJWKSSize {
		return fmt.Errorf("is larger than %d bytes", MaxJWKSSize)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		return fmt.Errorf("is not a JSON Web Key Set: %v", err)
	}
	if len(set.Keys) == 0 {
		return fmt.Errorf("holds no key")
	}
	for n, k := range set.Keys {
		name := fmt.Sprintf("key %d", n+1)
		if k.KeyID != "" {
			name = fmt.Sprintf("key %q", k.KeyID)
		}
		switch k.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
			return fmt.Errorf("%s is a private key: give only the public keys", name)
		case []byte:
			return fmt.Errorf("%s is a symmetric (oct) key: only public asymmetric keys are accepted", name)
		default:
			return fmt.Errorf("%s is of an unsupported type %T", name, k.Key)
		}
	}
	return nil
}

func validClientID(id string) bool {
	if len(id) > 255 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7E {
			return false
		}
	}
	return true
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7F }
