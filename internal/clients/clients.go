// Package clients is the one place where OAuth clients are created,
// validated, changed and deleted: the CLI, the portal and the registration
// endpoints all go through a [Registry], so that the same rules apply and
// every change lands in the audit log (who, what, when).
package clients

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keybridge/sts/internal/clientauth"
	"github.com/keybridge/sts/internal/policy"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
)

// Spec is what a client is asked to be, before it is checked.
type Spec struct {
	ID                 string // empty: a random id
	Name               string
	Audiences          []string
	Scopes             []string // each may hold several, space-separated
	GrantTypes         []string // full values or aliases; empty: the default
	TokenFormat        string   // jwt (default) or opaque
	AllowImpersonation bool
	// Resources, ExchangeAny and IntrospectAny are an operator's grants
	// (see store.Client): the CLI and the portal's operator forms set
	// them; account holders and dynamic registration never do.
	Resources             []string
	ExchangeAny           bool
	IntrospectAny         bool
	AccessTTL, RefreshTTL time.Duration
	AccountID             string
	AuthMethod            string
	SoftwareID            string
	SoftwareVersion       string
	HardwareAddress       string
	// Identity is the registration identity within the account (see
	// store.Client.Identity); empty for clients not registered
	// dynamically. Another client of the account with the same identity
	// makes Create, Register, Update and Replace fail.
	Identity string
	Metadata []byte
	// Binding is the client's key-based registration (certificate name,
	// public keys) and token-binding settings, checked against
	// AuthMethod (see store.Binding).
	Binding store.Binding
	// Policy is the operator's CEL rules (store.Client.Policy), set by the
	// CLI and the operator's portal only; the caller compiles it
	// (celpolicy.Compile) before saving, as Build does not.
	Policy store.Policy
}

// FieldError names the field a problem is about, so that each front end
// can say it in its own words (a flag, a form field, a JSON member).
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Problems is every problem found in a Spec.
type Problems []*FieldError

func (p Problems) Error() string {
	s := make([]string, len(p))
	for i, e := range p {
		s[i] = e.Error()
	}
	return strings.Join(s, "; ")
}

// DefaultGrantTypes are given to a client that names none.
var DefaultGrantTypes = []string{oauth.GrantTypeClientCredentials, oauth.GrantTypeTokenExchange}

// Build checks every field and returns the client record (without secret),
// or Problems naming each problem.
func (s *Spec) Build(now time.Time) (*store.Client, error) {
	var probs Problems
	bad := func(field, format string, args ...any) {
		probs = append(probs, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	id := s.ID
	if id == "" {
		id = NewID()
	} else if err := CheckID(id); err != nil {
		bad("client_id", "%v", err)
	}
	name := strings.TrimSpace(s.Name)
	switch {
	case name == "":
		bad("name", "is required")
	case len(name) > 200:
		bad("name", "is longer than 200 characters")
	case strings.ContainsFunc(name, isControl):
		bad("name", "must not contain control characters")
	}
	grants, err := ParseGrantTypes(s.GrantTypes)
	if err != nil {
		bad("grant_types", "%v", err)
	}
	var auds []string
	for _, a := range s.Audiences {
		if err := CheckAudience(a); err != nil {
			bad("audience", "%q: %v", a, err)
		} else if !slices.Contains(auds, a) {
			auds = append(auds, a)
		}
	}
	var resources []string
	for _, r := range s.Resources {
		// A resource is what a token's aud names: a logical name or an
		// absolute URI, like an audience.
		if err := CheckAudience(r); err != nil {
			bad("resource", "%q: %v", r, err)
		} else if !slices.Contains(resources, r) {
			resources = append(resources, r)
		}
	}
	var scopes []string
	for _, group := range s.Scopes {
		fields := strings.Fields(group)
		if len(fields) == 0 {
			bad("scope", "empty")
		}
		for _, sc := range fields {
			if !oauth.ValidScopeToken(sc) {
				bad("scope", "%q is not a scope token (RFC 6749 §3.3: printable ASCII except space, '\"' and '\\')", sc)
			} else if !slices.Contains(scopes, sc) {
				scopes = append(scopes, sc)
			}
		}
	}
	format := s.TokenFormat
	if format == "" {
		format = store.TokenFormatJWT
	}
	if format != store.TokenFormatJWT && format != store.TokenFormatOpaque {
		bad("token_format", "must be jwt or opaque, not %q", format)
	}
	binding := s.Binding
	checkBinding(s.AuthMethod, &binding, bad)
	if s.AccessTTL < 0 || s.RefreshTTL < 0 {
		bad("token_lifetime", "must not be negative")
	}
	hw := s.HardwareAddress
	if hw != "" {
		if n, ok := NormalizeHardwareAddress(hw); !ok {
			bad("hardware_address", "%q is not a MAC address (EUI-48 or EUI-64, hex bytes separated by colons)", hw)
		} else {
			hw = n
		}
	}
	for _, f := range []struct{ name, v string }{{"software_id", s.SoftwareID}, {"software_version", s.SoftwareVersion}} {
		switch {
		case len(f.v) > 255:
			bad(f.name, "is longer than 255 characters")
		case strings.ContainsFunc(f.v, isControl):
			bad(f.name, "must not contain control characters")
		}
	}
	switch {
	case len(s.Identity) > MaxIdentityLen:
		bad("identity", "is longer than %d characters", MaxIdentityLen)
	case strings.ContainsFunc(s.Identity, isControl) || !utf8.ValidString(s.Identity):
		bad("identity", "must be valid UTF-8 without control characters")
	}
	if len(s.Metadata) > 0 && (!json.Valid(s.Metadata) || bytes.TrimSpace(s.Metadata)[0] != '{') {
		bad("metadata", "is not a JSON object")
	}
	if len(probs) > 0 {
		return nil, probs
	}
	now = now.UTC()
	return &store.Client{
		ID:                 id,
		Name:               name,
		Status:             store.ClientActive,
		GrantTypes:         grants,
		Audiences:          orEmpty(auds),
		Scopes:             orEmpty(scopes),
		TokenFormat:        format,
		AllowImpersonation: s.AllowImpersonation,
		Resources:          orEmpty(resources),
		ExchangeAny:        s.ExchangeAny,
		IntrospectAny:      s.IntrospectAny,
		AccessTokenTTL:     s.AccessTTL,
		RefreshTokenTTL:    s.RefreshTTL,
		CreatedAt:          now,
		UpdatedAt:          now,
		AccountID:          s.AccountID,
		AuthMethod:         s.AuthMethod,
		SoftwareID:         s.SoftwareID,
		SoftwareVersion:    s.SoftwareVersion,
		HardwareAddress:    hw,
		Identity:           s.Identity,
		Metadata:           s.Metadata,
		Policy:             s.Policy,
		Binding:            binding,
	}, nil
}

// NormalizeHardwareAddress returns a MAC address (EUI-48 or EUI-64) as it
// is stored: lower-case hex with colons; false when s is not one.
func NormalizeHardwareAddress(s string) (string, bool) {
	mac, err := net.ParseMAC(s)
	if err != nil || (len(mac) != 6 && len(mac) != 8) {
		return "", false
	}
	return mac.String(), true
}

// MaxIdentityLen bounds Spec.Identity: room for a software_id and a
// hardware address, or a client name, with their prefixes.
const MaxIdentityLen = 512

// idEncoding writes ids in lower-case base32 without padding: nothing that
// needs escaping anywhere and no characters that look alike in mixed case.
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns a random client id of 128 bits.
func NewID() string {
	var b [16]byte
	rand.Read(b[:])
	return idEncoding.EncodeToString(b[:])
}

// CheckID accepts a chosen id of visible ASCII (RFC 6749 appendix A.1:
// client-id = *VSCHAR) without space, so that it can be written on a
// command line and in logs unambiguously. ':' '%' and '+' are fine: Basic
// credentials are form-encoded (RFC 6749 §2.3.1).
func CheckID(id string) error {
	if len(id) > 255 {
		return errors.New("longer than 255 characters")
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7E {
			return errors.New("must be visible ASCII characters without spaces")
		}
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7F }

// CheckAudience accepts a logical name or a URI; a value that looks like a
// URI (it has a scheme) must be one a token request may name: absolute and
// without fragment (RFC 8693 §2.1, RFC 8707 §2).
func CheckAudience(a string) error {
	if a == "" {
		return errors.New("empty")
	}
	if strings.ContainsFunc(a, func(r rune) bool { return r <= 0x20 || r == 0x7F }) {
		return errors.New("must not contain white space or control characters")
	}
	if strings.Contains(a, "#") {
		return errors.New("must not contain a fragment ('#')")
	}
	// A value that looks like a URI but does not parse as one is refused
	// too: a token request could never name it as a resource.
	if u, err := url.Parse(a); (err == nil && u.Scheme != "" || strings.Contains(a, "://")) && !policy.ValidTarget(a) {
		return errors.New("a URI must be absolute, well-formed and without fragment")
	}
	return nil
}

// grantAliases maps what a person may type to grant type values.
var grantAliases = map[string]string{
	oauth.GrantTypeTokenExchange:     oauth.GrantTypeTokenExchange,
	"token-exchange":                 oauth.GrantTypeTokenExchange,
	"token_exchange":                 oauth.GrantTypeTokenExchange,
	"exchange":                       oauth.GrantTypeTokenExchange,
	oauth.GrantTypeClientCredentials: oauth.GrantTypeClientCredentials,
	"client-credentials":             oauth.GrantTypeClientCredentials,
	oauth.GrantTypeRefreshToken:      oauth.GrantTypeRefreshToken,
	"refresh-token":                  oauth.GrantTypeRefreshToken,
	oauth.GrantTypeJWTBearer:         oauth.GrantTypeJWTBearer,
	"jwt-bearer":                     oauth.GrantTypeJWTBearer,
}

// ParseGrantTypes resolves aliases; none given means DefaultGrantTypes.
func ParseGrantTypes(in []string) ([]string, error) {
	if len(in) == 0 {
		return slices.Clone(DefaultGrantTypes), nil
	}
	var out []string
	for _, g := range in {
		v, ok := grantAliases[strings.TrimSpace(g)]
		if !ok {
			return nil, fmt.Errorf("%q is not one of token-exchange, client-credentials, refresh-token, jwt-bearer", g)
		}
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out, nil
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// WithinAccount checks a client against its account's bounds: when the
// account lists audiences (scopes), every audience (scope) of the client
// must be one of them.
func WithinAccount(c *store.Client, a *store.Account) Problems {
	var probs Problems
	if len(a.Audiences) > 0 {
		for _, x := range c.Audiences {
			if !slices.Contains(a.Audiences, x) {
				probs = append(probs, &FieldError{Field: "audience", Msg: fmt.Sprintf("%q is not among the audiences of account %s", x, a.ID)})
			}
		}
	}
	if len(a.Scopes) > 0 {
		for _, x := range c.Scopes {
			if !slices.Contains(a.Scopes, x) {
				probs = append(probs, &FieldError{Field: "scope", Msg: fmt.Sprintf("%q is not among the scopes of account %s", x, a.ID)})
			}
		}
	}
	return probs
}

// Widens reports whether next may obtain something prev may not: a grant
// type, an audience, a scope or a resource prev lacks, impersonation, or
// the right to exchange or introspect any token.
func Widens(prev, next *store.Client) bool {
	gained := func(old, new []string) bool {
		return slices.ContainsFunc(new, func(x string) bool { return !slices.Contains(old, x) })
	}
	return gained(prev.GrantTypes, next.GrantTypes) || gained(prev.Audiences, next.Audiences) ||
		gained(prev.Scopes, next.Scopes) || gained(prev.Resources, next.Resources) ||
		(next.AllowImpersonation && !prev.AllowImpersonation) ||
		(next.ExchangeAny && !prev.ExchangeAny) || (next.IntrospectAny && !prev.IntrospectAny)
}

// Renames reports whether next is presented differently from prev: its
// client_name, software_id or hardware_address, which are what an operator
// saw and approved.
func Renames(prev, next *store.Client) bool {
	return prev.Name != next.Name || prev.SoftwareID != next.SoftwareID || prev.HardwareAddress != next.HardwareAddress
}

// RegistrationTokenPrefix starts every registration access token (RFC 7592
// §3), so that one found in a log or a repository is recognisable.
const RegistrationTokenPrefix = "sts_rat_"

// NewRegistrationToken returns a registration access token (256 random
// bits) and the hash that is stored instead of it.
func NewRegistrationToken() (token string, hash []byte) {
	var b [32]byte
	rand.Read(b[:])
	token = RegistrationTokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return token, HashRegistrationToken(token)
}

// HashRegistrationToken is the SHA-256 hash stored for a registration
// access token: the token has 256 random bits, so no keyed or slow hash is
// needed.
func HashRegistrationToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// Registry changes clients and audits each change.
type Registry struct {
	Store  store.Store
	Hasher *clientauth.Hasher
	Now    func() time.Time
	// RegistrationTokenTTL is the lifetime of the registration access
	// tokens it issues (RFC 7592); zero: they do not expire.
	RegistrationTokenTTL time.Duration
}

// registrationTokenExpiry is when a registration access token issued at
// now expires (zero: never).
func (r *Registry) registrationTokenExpiry(now time.Time) time.Time {
	if r.RegistrationTokenTTL <= 0 {
		return time.Time{}
	}
	return now.Add(r.RegistrationTokenTTL).UTC()
}

// RegistrationTokenExpiresAt is when the registration access token of c
// stops working; zero: never. A token stored before expiry was recorded
// (RegistrationTokenExpiresAt zero) was issued at the client's last change
// at the latest, so it is taken as issued then: it expires one
// RegistrationTokenTTL after c.UpdatedAt, no later than a token issued
// today would, instead of never.
func (r *Registry) RegistrationTokenExpiresAt(c *store.Client) time.Time {
	if len(c.RegistrationTokenHash) == 0 || !c.RegistrationTokenExpiresAt.IsZero() || r.RegistrationTokenTTL <= 0 {
		return c.RegistrationTokenExpiresAt
	}
	return c.UpdatedAt.Add(r.RegistrationTokenTTL).UTC()
}

// RegistrationTokenExpired reports whether the registration access token
// of c has expired at now.
func (r *Registry) RegistrationTokenExpired(c *store.Client, now time.Time) bool {
	exp := r.RegistrationTokenExpiresAt(c)
	return !exp.IsZero() && !now.Before(exp)
}

// audit records changes made by "by" (e.g. "cli", "operator:alice",
// "account:acct-x", "client:ID"): pairs of action and detail.
func (r *Registry) audit(ctx context.Context, by string, c *store.Client, actionDetail ...string) error {
	recs := make([]store.AuditRecord, 0, len(actionDetail)/2)
	for i := 0; i+1 < len(actionDetail); i += 2 {
		recs = append(recs, store.AuditRecord{
			Time: r.Now(), Action: actionDetail[i], Decision: store.DecisionGranted,
			ClientID: c.ID, AccountID: c.AccountID, Subject: by, Detail: actionDetail[i+1],
		})
	}
	return r.Store.AppendAudit(ctx, recs)
}

// account loads the account a client is put in, which must exist and not
// be closed, and checks the client against its bounds. No account: nil.
func (r *Registry) account(ctx context.Context, id string) (*store.Account, error) {
	if id == "" {
		return nil, nil
	}
	a, err := r.Store.GetAccount(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, Problems{{Field: "account", Msg: fmt.Sprintf("no account %q", id)}}
	}
	if err != nil {
		return nil, err
	}
	if a.Status == store.AccountClosed {
		return nil, Problems{{Field: "account", Msg: fmt.Sprintf("account %q is closed", id)}}
	}
	return a, nil
}

func checkAccount(c *store.Client, a *store.Account) error {
	if a == nil {
		return nil
	}
	if probs := WithinAccount(c, a); len(probs) > 0 {
		return probs
	}
	return nil
}

// Create stores a new client with the given status and a fresh secret,
// returned once in the clear. A client put in an account must stay within
// the account's bounds (WithinAccount), and the account must not be closed.
func (r *Registry) Create(ctx context.Context, by string, s Spec, status store.ClientStatus) (*store.Client, string, error) {
	return r.create(ctx, by, "client.create", s, status, nil, nil)
}

// Register is Create for dynamic registration (RFC 7591): the client also
// gets the hash of its registration access token (RFC 7592 §3), which
// expires after RegistrationTokenTTL, and iatClaims, the JSON object of the
// claims of the initial access token that registered it which later
// re-registrations must match (nil: none); the change is audited as
// client.register.
func (r *Registry) Register(ctx context.Context, by string, s Spec, status store.ClientStatus, registrationTokenHash, iatClaims []byte) (*store.Client, string, error) {
	return r.create(ctx, by, "client.register", s, status, registrationTokenHash, iatClaims)
}

func (r *Registry) create(ctx context.Context, by, action string, s Spec, status store.ClientStatus, ratHash, iatClaims []byte) (*store.Client, string, error) {
	c, err := s.Build(r.Now())
	if err != nil {
		return nil, "", err
	}
	a, err := r.account(ctx, c.AccountID)
	if err != nil {
		return nil, "", err
	}
	if err := checkAccount(c, a); err != nil {
		return nil, "", err
	}
	c.Status = status
	c.RegistrationTokenHash, c.IATClaims = ratHash, iatClaims
	if ratHash != nil {
		c.RegistrationTokenExpiresAt = r.registrationTokenExpiry(c.CreatedAt)
	}
	// A key-based client has no secret.
	var secret string
	if !KeyBased(c.AuthMethod) {
		secret = clientauth.NewSecret()
		c.SecretHash = r.Hasher.Hash(secret)
	}
	if err := r.Store.CreateClient(ctx, c); err != nil {
		if errors.Is(err, store.ErrConflict) {
			if c.Identity != "" {
				return nil, "", fmt.Errorf("client %q, or a client of identity %q in account %q, already exists: %w", c.ID, c.Identity, c.AccountID, err)
			}
			return nil, "", fmt.Errorf("client %q already exists: %w", c.ID, err)
		}
		return nil, "", err
	}
	return c, secret, r.audit(ctx, by, c, action, "status "+string(c.Status))
}

// RotateSecret replaces the secret; the old one stays valid for grace
// (zero: refused at once). A client that has a registration access token
// (RFC 7592) gets a new one too, returned once in the clear ("" for a
// client without one), and the old one is refused at once: whoever held
// the old secret, which an operator replaces because it may have leaked,
// may hold the token that would let them read or rotate the new one.
func (r *Registry) RotateSecret(ctx context.Context, by, id string, grace time.Duration) (c *store.Client, secret, registrationToken string, err error) {
	secret = clientauth.NewSecret()
	rat, ratHash := NewRegistrationToken()
	now := r.Now()
	c, err = r.Store.UpdateClient(ctx, id, func(c *store.Client) error {
		if KeyBased(c.AuthMethod) {
			return Problems{{Field: "token_endpoint_auth_method", Msg: fmt.Sprintf("client %q authenticates with %s and has no secret to rotate", c.ID, c.AuthMethod)}}
		}
		c.PrevSecretHash, c.PrevSecretExpiresAt = nil, time.Time{}
		if grace > 0 {
			c.PrevSecretHash, c.PrevSecretExpiresAt = c.SecretHash, now.Add(grace)
		}
		c.SecretHash, c.UpdatedAt = r.Hasher.Hash(secret), now
		registrationToken = ""
		if len(c.RegistrationTokenHash) > 0 {
			registrationToken = rat
			c.RegistrationTokenHash, c.RegistrationTokenExpiresAt = ratHash, r.registrationTokenExpiry(now)
		}
		return nil
	})
	if err != nil {
		return nil, "", "", err
	}
	detail := "grace " + grace.String()
	if registrationToken != "" {
		detail += "; new registration access token"
	}
	return c, secret, registrationToken, r.audit(ctx, by, c, "client.rotate_secret", detail)
}

// SetStatus approves, enables or disables a client; it returns the status
// the client had before.
func (r *Registry) SetStatus(ctx context.Context, by, id string, st store.ClientStatus) (*store.Client, store.ClientStatus, error) {
	var was store.ClientStatus
	c, err := r.Store.UpdateClient(ctx, id, func(c *store.Client) error {
		// The expiry of a token stored without one is fixed before the
		// client's last change moves (see RegistrationTokenExpiresAt).
		c.RegistrationTokenExpiresAt = r.RegistrationTokenExpiresAt(c)
		was, c.Status, c.UpdatedAt = c.Status, st, r.Now()
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	action := "client.status"
	if was == store.ClientPending && st == store.ClientActive {
		action = "client.approve"
	}
	return c, was, r.audit(ctx, by, c, action, string(was)+" → "+string(st))
}

// Update changes what a client may obtain: edit receives the current
// settings as a Spec and may change any of them except the id and the
// account; the result is checked like a new client, including the
// account's bounds.
func (r *Registry) Update(ctx context.Context, by, id string, edit func(*Spec) error) (*store.Client, error) {
	cur, err := r.Store.GetClient(ctx, id)
	if err != nil {
		return nil, err
	}
	a, err := r.account(ctx, cur.AccountID)
	if err != nil {
		return nil, err
	}
	var wrote *store.Client
	c, err := r.Store.UpdateClient(ctx, id, func(c *store.Client) error {
		wrote = nil
		if c.AccountID != cur.AccountID {
			return fmt.Errorf("client %q changed account meanwhile: %w", id, store.ErrConflict)
		}
		s := SpecOf(c)
		if err := edit(&s); err != nil {
			return err
		}
		if s.AccountID != c.AccountID {
			return Problems{{Field: "account", Msg: "the account of a client cannot be changed"}}
		}
		s.ID = c.ID
		n, err := s.Build(c.CreatedAt)
		if err != nil {
			return err
		}
		if err := checkAccount(n, a); err != nil {
			return err
		}
		n.Status, n.SecretHash, n.PrevSecretHash, n.PrevSecretExpiresAt = c.Status, c.SecretHash, c.PrevSecretHash, c.PrevSecretExpiresAt
		if KeyBased(n.AuthMethod) {
			n.SecretHash, n.PrevSecretHash, n.PrevSecretExpiresAt = nil, nil, time.Time{}
		}
		n.RegistrationTokenHash, n.CreatedAt, n.UpdatedAt = c.RegistrationTokenHash, c.CreatedAt, r.Now()
		n.RegistrationTokenExpiresAt, n.IATClaims = r.RegistrationTokenExpiresAt(c), c.IATClaims
		*c = *n
		wrote = n
		return nil
	})
	if err != nil {
		return nil, identityTaken(err, wrote)
	}
	return c, r.audit(ctx, by, c, "client.update", "")
}

// Replacement is a new registration of an existing client (RFC 7591
// re-registration, RFC 7592 update): all of its metadata is replaced.
type Replacement struct {
	// Action names the change in the audit log, e.g. "client.reregister"
	// or "client.update".
	Action string
	// Spec is the new metadata, including the identity. Its ID and
	// AccountID are ignored: a client keeps both.
	Spec Spec
	// NewSecret issues a new secret (returned once); the previous one is
	// refused at once.
	NewSecret bool
	// RegistrationTokenHash, when not nil, replaces the hash of the
	// registration access token, which then expires after the registry's
	// RegistrationTokenTTL.
	RegistrationTokenHash []byte
	// IATClaims, when not nil, replaces the claims of the initial access
	// token the client was registered with.
	IATClaims []byte
	// Reregistration: the client is registered anew (RFC 7591), so what
	// an operator granted it is not carried over: impersonation,
	// exchanging or introspecting any token and the resource URIs it
	// serves. An update (RFC 7592) by the holder of the registration
	// access token keeps them (impersonation only when Spec keeps it).
	Reregistration bool
	// NewHolder: the caller did not prove that it holds the client's
	// current credentials (a re-registration authorised by an initial
	// access token alone), so the new secret may go to someone else.
	NewHolder bool
	// Reapprove returns an active client to pending, so that an operator
	// approves the change as they approved the client, when the new
	// metadata widens what it may obtain (see Widens), renames it (see
	// Renames) or goes to a NewHolder.
	Reapprove bool
	// Check, when set, is called with the stored client inside the
	// transaction before anything changes; its error aborts the
	// replacement and is returned (e.g. the registration access token it
	// was authorised by is no longer the client's).
	Check func(*store.Client) error
}

// Replace applies p to client id atomically (one UpdateClient): metadata,
// secret and registration access token change together or not at all. It
// returns the client and the new secret ("" unless p.NewSecret).
func (r *Registry) Replace(ctx context.Context, by, id string, p Replacement) (*store.Client, string, error) {
	cur, err := r.Store.GetClient(ctx, id)
	if err != nil {
		return nil, "", err
	}
	a, err := r.account(ctx, cur.AccountID)
	if err != nil {
		return nil, "", err
	}
	var secret, statusNote string
	if p.NewSecret {
		secret = clientauth.NewSecret()
	}
	var wrote *store.Client
	c, err := r.Store.UpdateClient(ctx, id, func(c *store.Client) error {
		wrote = nil
		if p.Check != nil {
			if err := p.Check(c); err != nil {
				return err
			}
		}
		if c.AccountID != cur.AccountID {
			return fmt.Errorf("client %q changed account meanwhile: %w", id, store.ErrConflict)
		}
		s := p.Spec
		s.ID, s.AccountID = c.ID, c.AccountID
		n, err := s.Build(c.CreatedAt)
		if err != nil {
			return err
		}
		if err := checkAccount(n, a); err != nil {
			return err
		}
		now := r.Now()
		if !p.Reregistration {
			n.Resources, n.ExchangeAny, n.IntrospectAny = c.Resources, c.ExchangeAny, c.IntrospectAny
		}
		// The operator's policy restricts the client whatever it
		// registers: a client never writes nor drops its own policy.
		n.Policy = c.Policy
		n.Status = c.Status
		if p.Reapprove && c.Status == store.ClientActive {
			switch {
			case Widens(c, n):
				n.Status, statusNote = store.ClientPending, "; wider than before: pending until approved"
			case Renames(c, n):
				n.Status, statusNote = store.ClientPending, "; renamed: pending until approved"
			case p.NewHolder:
				n.Status, statusNote = store.ClientPending, "; re-registered without its registration access token: pending until approved"
			}
		}
		n.SecretHash, n.PrevSecretHash, n.PrevSecretExpiresAt = c.SecretHash, c.PrevSecretHash, c.PrevSecretExpiresAt
		if p.NewSecret {
			n.SecretHash, n.PrevSecretHash, n.PrevSecretExpiresAt = r.Hasher.Hash(secret), nil, time.Time{}
		}
		if KeyBased(n.AuthMethod) {
			// A key-based client has no secret, whatever it had.
			n.SecretHash, n.PrevSecretHash, n.PrevSecretExpiresAt = nil, nil, time.Time{}
			secret = ""
		}
		n.RegistrationTokenHash, n.RegistrationTokenExpiresAt = c.RegistrationTokenHash, r.RegistrationTokenExpiresAt(c)
		if p.RegistrationTokenHash != nil {
			n.RegistrationTokenHash, n.RegistrationTokenExpiresAt = p.RegistrationTokenHash, r.registrationTokenExpiry(now)
		}
		n.IATClaims = c.IATClaims
		if p.IATClaims != nil {
			n.IATClaims = p.IATClaims
		}
		n.CreatedAt, n.UpdatedAt = c.CreatedAt, now
		*c = *n
		wrote = n
		return nil
	})
	if err != nil {
		return nil, "", identityTaken(err, wrote)
	}
	ad := []string{p.Action, "status " + string(c.Status) + statusNote}
	if p.NewSecret {
		ad = append(ad, "client.rotate_secret", "new secret; the previous one is refused")
	}
	return c, secret, r.audit(ctx, by, c, ad...)
}

// identityTaken words the error of an UpdateClient whose update function
// returned nil after preparing wrote: a conflict then comes from the
// store's write, and the one unique key an update can break is the
// account's registration identity, so it is a problem with the metadata.
// Any other error is returned as it is.
func identityTaken(err error, wrote *store.Client) error {
	if wrote == nil || wrote.Identity == "" || !errors.Is(err, store.ErrConflict) {
		return err
	}
	return Problems{{Field: "identity", Msg: fmt.Sprintf("another client of account %q is registered with the same identity (%s)", wrote.AccountID, wrote.Identity)}}
}

// Delete removes a client.
func (r *Registry) Delete(ctx context.Context, by, id string) error {
	c, err := r.Store.GetClient(ctx, id)
	if err != nil {
		return err
	}
	if err := r.Store.DeleteClient(ctx, id); err != nil {
		return err
	}
	return r.audit(ctx, by, c, "client.delete", "")
}

// SpecOf is the Spec that describes an existing client.
func SpecOf(c *store.Client) Spec {
	return Spec{
		ID: c.ID, Name: c.Name,
		Audiences: slices.Clone(c.Audiences), Scopes: slices.Clone(c.Scopes),
		GrantTypes: slices.Clone(c.GrantTypes), TokenFormat: c.TokenFormat,
		AllowImpersonation: c.AllowImpersonation,
		Resources:          slices.Clone(c.Resources), ExchangeAny: c.ExchangeAny, IntrospectAny: c.IntrospectAny,
		AccessTTL: c.AccessTokenTTL, RefreshTTL: c.RefreshTokenTTL,
		AccountID: c.AccountID, AuthMethod: c.AuthMethod,
		SoftwareID: c.SoftwareID, SoftwareVersion: c.SoftwareVersion,
		HardwareAddress: c.HardwareAddress, Identity: c.Identity, Metadata: c.Metadata,
		Policy: c.Policy, Binding: c.Binding,
	}
}
