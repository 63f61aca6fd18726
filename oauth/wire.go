package oauth

import "encoding/json"

// TokenResponse is a successful token endpoint response (RFC 6749 §5.1,
// RFC 8693 §2.2.1).
type TokenResponse struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type,omitempty"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in,omitempty"`
	Scope           string `json:"scope,omitempty"`
	RefreshToken    string `json:"refresh_token,omitempty"`
}

// Actor is the "act" (actor) claim (RFC 8693 §4.1): the party acting on
// behalf of the subject. A nested Actor names the party before it, so a
// delegation chain reads from the most recent actor outward to the least
// recent, innermost one. The same structure carries "may_act" (§4.4).
type Actor struct {
	Subject  string `json:"sub"`
	Issuer   string `json:"iss,omitempty"`
	ClientID string `json:"client_id,omitempty"`
	Actor    *Actor `json:"act,omitempty"`
}

// SubjectID is an RFC 9493 subject identifier, as carried in the "sub_id"
// claim (RFC 9493 §4.1). Key Bridge STS writes one of format "iss_sub"
// (§3.2.3) in every token whose subject another issuer vouched for: Issuer
// is that issuer and Subject its "sub", while the token's own "sub" is the
// mapped subject.
type SubjectID struct {
	Format  string `json:"format"`
	Issuer  string `json:"iss,omitempty"`
	Subject string `json:"sub,omitempty"`
}

// SubjectIDFormatIssSub is the "iss_sub" format of RFC 9493 §3.2.3.
const SubjectIDFormatIssSub = "iss_sub"

// Chain returns the actors from the most recent to the least recent.
func (a *Actor) Chain() []Actor {
	var out []Actor
	for x := a; x != nil; x = x.Actor {
		c := *x
		c.Actor = nil
		out = append(out, c)
	}
	return out
}

// Depth is the number of actors in the chain; zero for nil.
func (a *Actor) Depth() int {
	n := 0
	for x := a; x != nil; x = x.Actor {
		n++
	}
	return n
}

// Audience is the "aud" claim: one string or an array of strings
// (RFC 7519 §4.1.3). It is always encoded as an array except when it has
// exactly one member.
type Audience []string

// MarshalJSON encodes a single audience as a string, several as an array.
func (a Audience) MarshalJSON() ([]byte, error) {
	if len(a) == 1 {
		return json.Marshal(a[0])
	}
	return json.Marshal([]string(a))
}

// UnmarshalJSON accepts a string or an array of strings.
func (a *Audience) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*a = Audience{s}
		return nil
	}
	var ss []string
	if err := json.Unmarshal(b, &ss); err != nil {
		return err
	}
	*a = ss
	return nil
}

// Contains reports whether s is one of the audiences.
func (a Audience) Contains(s string) bool {
	for _, x := range a {
		if x == s {
			return true
		}
	}
	return false
}

// IntrospectionResponse is the body of an introspection response
// (RFC 7662 §2.2). An inactive token is reported with Active false and no
// other member.
type IntrospectionResponse struct {
	Active    bool     `json:"active"`
	Scope     string   `json:"scope,omitempty"`
	ClientID  string   `json:"client_id,omitempty"`
	Username  string   `json:"username,omitempty"`
	TokenType string   `json:"token_type,omitempty"`
	Exp       int64    `json:"exp,omitempty"`
	Iat       int64    `json:"iat,omitempty"`
	Nbf       int64    `json:"nbf,omitempty"`
	Sub       string   `json:"sub,omitempty"`
	Aud       Audience `json:"aud,omitempty"`
	Iss       string   `json:"iss,omitempty"`
	Jti       string   `json:"jti,omitempty"`
	Act       *Actor   `json:"act,omitempty"`
	MayAct    *Actor   `json:"may_act,omitempty"`
	// IssuedTokenType is the RFC 8693 token type URN of the token, an
	// extension that tells JWT, access and refresh tokens apart.
	IssuedTokenType string `json:"issued_token_type,omitempty"`
	// Cnf is the key a sender-constrained token is bound to (RFC 7800
	// §3.1, RFC 8705 §3.2, RFC 9449 §6.2).
	Cnf *Confirmation `json:"cnf,omitempty"`
}

// Metadata is the authorization server metadata (RFC 8414 §2), with the
// extensions this server publishes.
type Metadata struct {
	Issuer                                    string   `json:"issuer"`
	TokenEndpoint                             string   `json:"token_endpoint"`
	JWKSURI                                   string   `json:"jwks_uri"`
	RegistrationEndpoint                      string   `json:"registration_endpoint,omitempty"`
	ScopesSupported                           []string `json:"scopes_supported,omitempty"`
	ResponseTypesSupported                    []string `json:"response_types_supported"`
	GrantTypesSupported                       []string `json:"grant_types_supported"`
	TokenEndpointAuthMethodsSupported         []string `json:"token_endpoint_auth_methods_supported"`
	ServiceDocumentation                      string   `json:"service_documentation,omitempty"`
	RevocationEndpoint                        string   `json:"revocation_endpoint"`
	RevocationEndpointAuthMethodsSupported    []string `json:"revocation_endpoint_auth_methods_supported"`
	IntrospectionEndpoint                     string   `json:"introspection_endpoint"`
	IntrospectionEndpointAuthMethodsSupported []string `json:"introspection_endpoint_auth_methods_supported"`
	// SubjectTokenTypesSupported and RequestedTokenTypesSupported list the
	// RFC 8693 token types this server accepts and issues (an extension:
	// RFC 8693 defines no metadata parameter for them).
	SubjectTokenTypesSupported   []string `json:"subject_token_types_supported,omitempty"`
	ActorTokenTypesSupported     []string `json:"actor_token_types_supported,omitempty"`
	RequestedTokenTypesSupported []string `json:"requested_token_types_supported,omitempty"`
	// TokenSigningAlgValuesSupported lists the JWS algorithms of issued tokens.
	TokenSigningAlgValuesSupported []string `json:"token_signing_alg_values_supported,omitempty"`
	// TLSClientCertificateBoundAccessTokens: the server binds tokens to
	// client certificates (RFC 8705 §3.3).
	TLSClientCertificateBoundAccessTokens bool `json:"tls_client_certificate_bound_access_tokens,omitempty"`
	// DPoPSigningAlgValuesSupported lists the JWS algorithms accepted in
	// DPoP proofs (RFC 9449 §5.1).
	DPoPSigningAlgValuesSupported []string `json:"dpop_signing_alg_values_supported,omitempty"`
	// SignedMetadata is a JWT whose claims are these metadata values, signed
	// by the server (RFC 8414 §2.1).
	SignedMetadata string `json:"signed_metadata,omitempty"`
}
