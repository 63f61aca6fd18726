package register

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-jose/go-jose/v4"
	"github.com/keybridge/sts/internal/clients"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
)

// MaxBodyBytes bounds a registration or update request.
const MaxBodyBytes = 64 << 10

// maxTTL bounds the token lifetimes a client may ask for; the server caps
// them further (--max-token-ttl). It keeps seconds × 10⁹ within int64.
const maxTTL = 10 * 365 * 24 * time.Hour

// DefaultName is the client_name of a client registered without one.
const DefaultName = "unnamed client"

// Extension members of the client metadata (RFC 7591 §2 allows
// extensions; these are Key Bridge's).
const (
	mHardwareAddress    = "hardware_address"
	mExtendedParameters = "extended_parameters"
	mAudiences          = "audiences"
	mTokenFormat        = "token_format"
	mAllowImpersonation = "allow_impersonation"
	mAccessTokenTTL     = "access_token_ttl"
	mRefreshTokenTTL    = "refresh_token_ttl"
	// mRotateSecret asks an RFC 7592 update for a new client secret.
	mRotateSecret = "rotate_secret"
	mStatus       = "status"
	mAccountID    = "account_id"
)

// humanReadable are the RFC 7591 §2.2 members that may carry a language
// tag ("client_name#ja-Jpan-JP").
var humanReadable = []string{"client_name", "client_uri", "logo_uri", "tos_uri", "policy_uri"}

// grantNames are the grant types a client may register for, by their
// RFC 7591 §2 values.
var grantNames = []string{oauth.GrantTypeClientCredentials, oauth.GrantTypeTokenExchange, oauth.GrantTypeRefreshToken, oauth.GrantTypeJWTBearer}

// metadata is a checked registration request.
type metadata struct {
	Name               string
	NameGiven          bool
	GrantTypes         []string
	AuthMethod         string
	Scopes             []string
	SoftwareID         string
	SoftwareVersion    string
	HardwareAddress    string
	Audiences          []string
	TokenFormat        string
	AllowImpersonation bool
	AccessTTL          time.Duration
	RefreshTTL         time.Duration
	RotateSecret       bool
	// Binding is the key-based registration (RFC 8705 §2.1.2, §3.4; RFC
	// 9449 §5.2); jwks and jwksURI are the keys as sent, which go to the
	// Binding of a key-based client and to Other otherwise.
	Binding store.Binding
	jwks    json.RawMessage
	jwksURI string
	// Other holds the members stored as JSON and echoed unchanged:
	// client_name and the other human-readable fields with their language
	// variants, contacts, jwks, jwks_uri, software_statement and
	// extended_parameters.
	Other map[string]json.RawMessage
}

// readObject reads the body of a registration or update request: a JSON
// object (RFC 7591 §3.1) of at most MaxBodyBytes.
func readObject(w http.ResponseWriter, r *http.Request) (map[string]json.RawMessage, *oauth.Error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return nil, oauth.NewError(oauth.ErrInvalidRequest, "the body must be application/json (RFC 7591 §3.1)").WithStatus(http.StatusUnsupportedMediaType)
	}
	tooLarge := oauth.NewError(oauth.ErrInvalidRequest, "the request body is larger than %d bytes", MaxBodyBytes).WithStatus(http.StatusRequestEntityTooLarge)
	if r.ContentLength > MaxBodyBytes {
		return nil, tooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge
		}
		return nil, oauth.NewError(oauth.ErrInvalidRequest, "cannot read the request body").WithCause(err)
	}
	return decodeObject(body)
}

// decodeObject parses a JSON object into its members, refusing invalid
// UTF-8, repeated members and trailing data: each of them could make two
// parsers see different metadata.
func decodeObject(body []byte) (map[string]json.RawMessage, *oauth.Error) {
	bad := func(format string, args ...any) *oauth.Error {
		return oauth.NewError(oauth.ErrInvalidRequest, format, args...)
	}
	if !utf8.Valid(body) {
		return nil, bad("the body is not UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, bad("the body must be a JSON object")
	}
	out := map[string]json.RawMessage{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, bad("the body is not valid JSON")
		}
		k, _ := t.(string)
		if _, dup := out[k]; dup {
			return nil, bad("member %q is repeated", k)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, bad("the body is not valid JSON")
		}
		out[k] = v
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return nil, bad("the body is not valid JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, bad("data after the JSON object")
	}
	return out, nil
}

// problems collects what is wrong with a request's metadata.
type problems []string

func (p *problems) add(member, format string, args ...any) {
	*p = append(*p, member+": "+fmt.Sprintf(format, args...))
}

func (p problems) err() *oauth.Error {
	if len(p) == 0 {
		return nil
	}
	return oauth.NewError(oauth.ErrInvalidClientMetadata, "%s", strings.Join(p, "; "))
}

// parseMetadata checks the members of a request (RFC 7591 §2). Unknown
// members are ignored, as §2 requires; null counts as absent (RFC 7592
// §2.2 lets the server ignore null values).
func parseMetadata(fields map[string]json.RawMessage) (*metadata, *oauth.Error) {
	var probs problems
	m := &metadata{Other: map[string]json.RawMessage{}}
	present := func(k string) bool {
		v, ok := fields[k]
		return ok && string(bytes.TrimSpace(v)) != "null"
	}
	str := func(k string) (string, bool) {
		if !present(k) {
			return "", false
		}
		var s string
		if err := json.Unmarshal(fields[k], &s); err != nil {
			probs.add(k, "must be a string")
			return "", false
		}
		return s, true
	}
	strs := func(k string) ([]string, bool) {
		if !present(k) {
			return nil, false
		}
		var l []string
		if err := json.Unmarshal(fields[k], &l); err != nil {
			probs.add(k, "must be an array of strings")
			return nil, false
		}
		return l, true
	}
	boolean := func(k string) bool {
		if !present(k) {
			return false
		}
		var b bool
		if err := json.Unmarshal(fields[k], &b); err != nil {
			probs.add(k, "must be true or false")
		}
		return b
	}
	seconds := func(k string) time.Duration {
		if !present(k) {
			return 0
		}
		// Not json.Number alone: it also accepts a string holding a number.
		var n json.Number
		if raw := bytes.TrimSpace(fields[k]); len(raw) == 0 || raw[0] == '"' || json.Unmarshal(raw, &n) != nil {
			probs.add(k, "must be a number of seconds")
			return 0
		}
		i, err := n.Int64()
		switch {
		case err != nil:
			probs.add(k, "must be a whole number of seconds")
		case i < 0:
			probs.add(k, "must not be negative")
		case time.Duration(i) > maxTTL/time.Second:
			probs.add(k, "must be at most %d seconds", int64(maxTTL/time.Second))
		default:
			return time.Duration(i) * time.Second
		}
		return 0
	}
	keep := func(k string) { m.Other[k] = fields[k] }

	// Names and URIs meant for people (RFC 7591 §2, §2.2), with their
	// language variants.
	for k := range fields {
		base, tag, tagged := strings.Cut(k, "#")
		if !slices.Contains(humanReadable, base) || !present(k) {
			continue
		}
		if tagged && tag == "" {
			probs.add(k, "has an empty language tag")
			continue
		}
		s, ok := str(k)
		if !ok {
			continue
		}
		if base == "client_name" {
			if !tagged {
				m.Name, m.NameGiven = s, strings.TrimSpace(s) != ""
			}
		} else if !webURL(s) {
			probs.add(k, "must be an absolute http or https URL without fragment")
			continue
		}
		keep(k)
	}
	if present("contacts") {
		if l, ok := strs("contacts"); ok {
			if slices.ContainsFunc(l, func(c string) bool { return strings.TrimSpace(c) == "" || len(c) > 320 }) {
				probs.add("contacts", "must hold non-empty strings of at most 320 characters")
			} else {
				keep("contacts")
			}
		}
	}
	// jwks and jwks_uri: the keys of a self_signed_tls_client_auth or
	// private_key_jwt client (Binding, checked by the registry), else
	// stored for the client's use of them elsewhere and echoed.
	if present("jwks") && present("jwks_uri") {
		probs.add("jwks", "must not be sent together with jwks_uri (RFC 7591 §2)")
	} else if present("jwks") {
		var set jose.JSONWebKeySet
		var raw struct {
			Keys []json.RawMessage `json:"keys"`
		}
		switch {
		case json.Unmarshal(fields["jwks"], &raw) != nil || raw.Keys == nil:
			probs.add("jwks", "must be a JWK set: an object with a keys array")
		case json.Unmarshal(fields["jwks"], &set) != nil:
			probs.add("jwks", "holds a key that is not a valid JWK")
		case slices.ContainsFunc(set.Keys, func(k jose.JSONWebKey) bool { return !k.IsPublic() }):
			probs.add("jwks", "must hold public keys only")
		default:
			m.jwks = fields["jwks"]
		}
	} else if s, ok := str("jwks_uri"); ok {
		if !webURL(s) {
			probs.add("jwks_uri", "must be an absolute http or https URL without fragment")
		} else {
			m.jwksURI = s
		}
	}
	if _, ok := str("software_statement"); ok {
		keep("software_statement")
	}
	if present(mExtendedParameters) {
		var ext map[string]string
		if err := json.Unmarshal(fields[mExtendedParameters], &ext); err != nil || ext == nil {
			probs.add(mExtendedParameters, "must be an object whose values are strings")
		} else {
			keep(mExtendedParameters)
		}
	}

	// This server has no authorization endpoint: no redirect-based flows.
	if l, ok := strs("redirect_uris"); ok && len(l) > 0 {
		probs.add("redirect_uris", "this server has no authorization endpoint, so no redirect URIs")
	}
	if l, ok := strs("response_types"); ok && len(l) > 0 {
		probs.add("response_types", "this server has no authorization endpoint; response_types must be empty or omitted")
	}
	if l, ok := strs("grant_types"); ok {
		for _, g := range l {
			switch {
			case slices.Contains(grantNames, g):
				if !slices.Contains(m.GrantTypes, g) {
					m.GrantTypes = append(m.GrantTypes, g)
				}
			case g == "authorization_code" || g == "implicit" || g == "password":
				probs.add("grant_types", "%q is not supported: this server has no authorization endpoint and no password grant", g)
			default:
				probs.add("grant_types", "%q is not one of %s", g, strings.Join(grantNames, ", "))
			}
		}
	}
	if s, ok := str("token_endpoint_auth_method"); ok {
		if slices.Contains(clients.AuthMethods, s) {
			m.AuthMethod = s
		} else {
			probs.add("token_endpoint_auth_method", "%q is not supported: use one of %s", s, strings.Join(clients.AuthMethods, ", "))
		}
	} else {
		// RFC 7591 §2: "If unspecified or omitted, the default is
		// client_secret_basic".
		m.AuthMethod = oauth.AuthMethodClientSecretBasic
	}
	if s, ok := str("scope"); ok {
		m.Scopes = parseScope(s)
		if len(m.Scopes) == 0 && strings.TrimSpace(s) != "" {
			probs.add("scope", "no scope tokens")
		}
	}
	m.SoftwareID, _ = str("software_id")
	m.SoftwareVersion, _ = str("software_version")
	m.HardwareAddress, _ = str(mHardwareAddress)
	if l, ok := strs(mAudiences); ok {
		m.Audiences = l
	}
	m.TokenFormat, _ = str(mTokenFormat)
	m.AllowImpersonation = boolean(mAllowImpersonation)
	m.AccessTTL = seconds(mAccessTokenTTL)
	m.RefreshTTL = seconds(mRefreshTokenTTL)
	m.RotateSecret = boolean(mRotateSecret)
	parseBinding(m, str, boolean, present)
	if err := probs.err(); err != nil {
		return nil, err
	}
	return m, nil
}

// parseScope splits a scope value into scope tokens. A token holding '%'
// is percent-decoded when it decodes (some clients percent-encode scope
// tokens, e.g. "api%3Aread" or even the whole "read%20write"); one that
// does not decode is kept as it is, since '%' is itself a scope character.
func parseScope(s string) []string {
	var out []string
	for _, f := range strings.Fields(s) {
		if strings.Contains(f, "%") {
			if d, err := url.PathUnescape(f); err == nil {
				out = append(out, strings.Fields(d)...)
				continue
			}
		}
		out = append(out, f)
	}
	return out
}

// webURL accepts an absolute http or https URL without fragment.
func webURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" &&
		!strings.Contains(s, "#") && len(s) <= 2048
}

// spec is the registry's view of the metadata.
func (m *metadata) spec(accountID string) (clients.Spec, error) {
	other, err := json.Marshal(m.Other)
	if err != nil {
		return clients.Spec{}, err
	}
	name := m.Name
	if !m.NameGiven {
		name = DefaultName
		if m.SoftwareID != "" {
			name = m.SoftwareID
		}
	}
	return clients.Spec{
		Name:               name,
		Audiences:          m.Audiences,
		Scopes:             m.Scopes,
		GrantTypes:         m.GrantTypes,
		TokenFormat:        m.TokenFormat,
		AllowImpersonation: m.AllowImpersonation,
		AccessTTL:          m.AccessTTL,
		RefreshTTL:         m.RefreshTTL,
		AccountID:          accountID,
		AuthMethod:         m.AuthMethod,
		SoftwareID:         m.SoftwareID,
		SoftwareVersion:    m.SoftwareVersion,
		HardwareAddress:    m.HardwareAddress,
		Metadata:           other,
		Binding:            m.Binding,
	}, nil
}

// memberOf names the metadata member a registry problem is about.
var memberOf = map[string]string{
	"name": "client_name", "audience": mAudiences, "scope": "scope", "grant_types": "grant_types",
	"token_format": mTokenFormat, "token_endpoint_auth_method": "token_endpoint_auth_method",
	"token_lifetime": "access_token_ttl/refresh_token_ttl", "hardware_address": mHardwareAddress,
	"software_id": "software_id", "software_version": "software_version", "account": "account",
	"metadata": "metadata", "identity": "software_id/hardware_address/client_name",
	"tls_client_auth": "tls_client_auth_subject_dn/_san_dns/_san_uri/_san_ip/_san_email",
}

// metadataError turns the registry's Problems into invalid_client_metadata
// (RFC 7591 §3.2.2); anything else is returned as it is.
func metadataError(err error) error {
	var probs clients.Problems
	if !errors.As(err, &probs) {
		return err
	}
	msgs := make([]string, len(probs))
	for i, p := range probs {
		name, ok := memberOf[p.Field]
		if !ok {
			name = p.Field
		}
		msgs[i] = name + ": " + p.Msg
	}
	return oauth.NewError(oauth.ErrInvalidClientMetadata, "%s", strings.Join(msgs, "; "))
}

// identity is what makes two registrations of one account the same client
// (idempotent re-registration), stored as the client's Identity, which the
// store keeps unique per account: "software:<software_id>|<hardware_address>"
// when a software_id is given, else "name:<client_name>" for a given
// client_name; "" when there is neither, and then every registration is a
// new client. The values are the checked ones (the trimmed name, the
// normalised MAC address); neither contains control characters, and a MAC
// address has no '|', so the form is unambiguous.
func identity(softwareID, hardwareAddress, name string, nameGiven bool) string {
	switch {
	case softwareID != "":
		return "software:" + softwareID + "|" + hardwareAddress
	case nameGiven:
		return "name:" + name
	}
	return ""
}

// specIdentity sets spec's identity from the metadata as the registry
// will store it (the built client's trimmed name and normalised hardware
// address).
func specIdentity(spec *clients.Spec, built *store.Client, md *metadata) {
	spec.Identity = identity(built.SoftwareID, built.HardwareAddress, built.Name, md.NameGiven)
}

// info is the client information response (RFC 7591 §3.2.1, RFC 7592
// §3): every registered metadata value, the server-set members, the secret
// when one was just issued and the registration access token.
func (e *Endpoint) info(c *store.Client, secret, rat string) map[string]any {
	out := map[string]any{}
	var other map[string]json.RawMessage
	if len(c.Metadata) > 0 && json.Unmarshal(c.Metadata, &other) == nil {
		for k, v := range other {
			out[k] = v
		}
	}
	out["client_id"] = c.ID
	out["client_id_issued_at"] = c.CreatedAt.Unix()
	if secret != "" {
		out["client_secret"] = secret
	}
	if !clients.KeyBased(c.AuthMethod) {
		// The secret does not expire (RFC 7591 §3.2.1: 0). A key-based
		// client has none.
		out["client_secret_expires_at"] = 0
	}
	if rat != "" {
		out["registration_access_token"] = rat
		// An extension: when the token stops working
		// (--registration-token-ttl), so that a client renews it in time.
		if exp := e.o.Clients.RegistrationTokenExpiresAt(c); !exp.IsZero() {
			out["registration_access_token_expires_at"] = exp.Unix()
		}
	}
	out["registration_client_uri"] = e.clientURI(c.ID)
	out["client_name"] = c.Name
	out["grant_types"] = orEmpty(c.GrantTypes)
	if c.AuthMethod != "" {
		out["token_endpoint_auth_method"] = c.AuthMethod
	}
	bindingInfo(out, c)
	if len(c.Scopes) > 0 {
		out["scope"] = strings.Join(c.Scopes, " ")
	}
	for k, v := range map[string]string{"software_id": c.SoftwareID, "software_version": c.SoftwareVersion, mHardwareAddress: c.HardwareAddress} {
		if v != "" {
			out[k] = v
		}
	}
	out[mAudiences] = orEmpty(c.Audiences)
	format := c.TokenFormat
	if format == "" {
		format = store.TokenFormatJWT
	}
	out[mTokenFormat] = format
	out[mAllowImpersonation] = c.AllowImpersonation
	out[mAccessTokenTTL] = int64(c.AccessTokenTTL / time.Second)
	out[mRefreshTokenTTL] = int64(c.RefreshTokenTTL / time.Second)
	out[mStatus] = string(c.Status)
	if c.AccountID != "" {
		out[mAccountID] = c.AccountID
	}
	return out
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
