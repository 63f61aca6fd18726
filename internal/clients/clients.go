// Package clients is the one place where OAuth clients are created,
// validated, changed and deleted: the CLI, the portal and the registration
// endpoints all go through a [Registry], so that the same rules apply and
// every change lands in the audit log (who, what, when).
package clients

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/keybridge/sts/internal/clientauth"
	"github.com/keybridge/sts/internal/policy"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
)

// Spec is what a client is asked to be, before it is checked.
type Spec struct {
	ID                    string // empty: a random id
	Name                  string
	Audiences             []string
	Scopes                []string // each may hold several, space-separated
	GrantTypes            []string // full values or aliases; empty: the default
	TokenFormat           string   // jwt (default) or opaque
	AllowImpersonation    bool
	AccessTTL, RefreshTTL time.Duration
	AccountID             string
	AuthMethod            string
	SoftwareID            string
	SoftwareVersion       string
	HardwareAddress       string
	Metadata              []byte
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
	switch s.AuthMethod {
	case "", oauth.AuthMethodClientSecretBasic, oauth.AuthMethodClientSecretPost:
	default:
		bad("token_endpoint_auth_method", "must be client_secret_basic or client_secret_post, not %q", s.AuthMethod)
	}
	if s.AccessTTL < 0 || s.RefreshTTL < 0 {
		bad("token_lifetime", "must not be negative")
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
		AccessTokenTTL:     s.AccessTTL,
		RefreshTokenTTL:    s.RefreshTTL,
		CreatedAt:          now,
		UpdatedAt:          now,
		AccountID:          s.AccountID,
		AuthMethod:         s.AuthMethod,
		SoftwareID:         s.SoftwareID,
		SoftwareVersion:    s.SoftwareVersion,
		HardwareAddress:    s.HardwareAddress,
		Metadata:           s.Metadata,
	}, nil
}

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
			return nil, fmt.Errorf("%q is not one of token-exchange, client-credentials, refresh-token", g)
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

// Registry changes clients and audits each change.
type Registry struct {
	Store  store.Store
	Hasher *clientauth.Hasher
	Now    func() time.Time
}

// audit records a change made by "by" (e.g. "cli", "operator:alice",
// "account:acct-x", "registration").
func (r *Registry) audit(ctx context.Context, action, by string, c *store.Client, detail string) error {
	return r.Store.AppendAudit(ctx, []store.AuditRecord{{
		Time: r.Now(), Action: action, Decision: store.DecisionGranted,
		ClientID: c.ID, AccountID: c.AccountID, Subject: by, Detail: detail,
	}})
}

// Create stores a new client with the given status and a fresh secret,
// returned once in the clear.
func (r *Registry) Create(ctx context.Context, by string, s Spec, status store.ClientStatus) (*store.Client, string, error) {
	c, err := s.Build(r.Now())
	if err != nil {
		return nil, "", err
	}
	c.Status = status
	secret := clientauth.NewSecret()
	c.SecretHash = r.Hasher.Hash(secret)
	if err := r.Store.CreateClient(ctx, c); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, "", fmt.Errorf("client %q already exists: %w", c.ID, err)
		}
		return nil, "", err
	}
	return c, secret, r.audit(ctx, "client.create", by, c, "status "+string(c.Status))
}

// RotateSecret replaces the secret; the old one stays valid for grace
// (zero: refused at once).
func (r *Registry) RotateSecret(ctx context.Context, by, id string, grace time.Duration) (*store.Client, string, error) {
	secret := clientauth.NewSecret()
	now := r.Now()
	c, err := r.Store.UpdateClient(ctx, id, func(c *store.Client) error {
		c.PrevSecretHash, c.PrevSecretExpiresAt = nil, time.Time{}
		if grace > 0 {
			c.PrevSecretHash, c.PrevSecretExpiresAt = c.SecretHash, now.Add(grace)
		}
		c.SecretHash, c.UpdatedAt = r.Hasher.Hash(secret), now
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return c, secret, r.audit(ctx, "client.rotate_secret", by, c, "grace "+grace.String())
}

// SetStatus approves, enables or disables a client; it returns the status
// the client had before.
func (r *Registry) SetStatus(ctx context.Context, by, id string, st store.ClientStatus) (*store.Client, store.ClientStatus, error) {
	var was store.ClientStatus
	c, err := r.Store.UpdateClient(ctx, id, func(c *store.Client) error {
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
	return c, was, r.audit(ctx, action, by, c, string(was)+" → "+string(st))
}

// Update changes what a client may obtain: edit receives the current
// settings as a Spec and may change any of them except the id; the result
// is checked like a new client.
func (r *Registry) Update(ctx context.Context, by, id string, edit func(*Spec) error) (*store.Client, error) {
	c, err := r.Store.UpdateClient(ctx, id, func(c *store.Client) error {
		s := SpecOf(c)
		if err := edit(&s); err != nil {
			return err
		}
		s.ID = c.ID
		n, err := s.Build(c.CreatedAt)
		if err != nil {
			return err
		}
		n.Status, n.SecretHash, n.PrevSecretHash, n.PrevSecretExpiresAt = c.Status, c.SecretHash, c.PrevSecretHash, c.PrevSecretExpiresAt
		n.RegistrationTokenHash, n.CreatedAt, n.UpdatedAt = c.RegistrationTokenHash, c.CreatedAt, r.Now()
		*c = *n
		return nil
	})
	if err != nil {
		return nil, err
	}
	return c, r.audit(ctx, "client.update", by, c, "")
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
	return r.audit(ctx, "client.delete", by, c, "")
}

// SpecOf is the Spec that describes an existing client.
func SpecOf(c *store.Client) Spec {
	return Spec{
		ID: c.ID, Name: c.Name,
		Audiences: slices.Clone(c.Audiences), Scopes: slices.Clone(c.Scopes),
		GrantTypes: slices.Clone(c.GrantTypes), TokenFormat: c.TokenFormat,
		AllowImpersonation: c.AllowImpersonation,
		AccessTTL:          c.AccessTokenTTL, RefreshTTL: c.RefreshTokenTTL,
		AccountID: c.AccountID, AuthMethod: c.AuthMethod,
		SoftwareID: c.SoftwareID, SoftwareVersion: c.SoftwareVersion,
		HardwareAddress: c.HardwareAddress, Metadata: c.Metadata,
	}
}
