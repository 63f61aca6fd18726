package account

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/keybridge/sts/internal/clients"
	"github.com/keybridge/sts/internal/keys"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
)

// Store is what the account service keeps.
type Store interface {
	store.Accounts
	store.Certificates
	store.UsedJTIs
	store.Sessions // to end an account holder's sessions
}

// DefaultMaxIATLifetime is the longest lifetime an IAT may claim.
const DefaultMaxIATLifetime = time.Hour

// Service manages accounts and their IATs.
type Service struct {
	Store  Store
	Sealer *keys.Sealer
	// Audiences are the values an IAT's aud may carry: this server's
	// issuer and its registration endpoint.
	Audiences []string
	// MaxIATLifetime bounds exp - now (and exp - iat); DefaultMaxIATLifetime
	// when zero.
	MaxIATLifetime time.Duration
	// RequiredClaims lists, per scope, the IAT claims a registration asking
	// for that scope must carry.
	RequiredClaims map[string][]string
	// Leeway tolerated on exp, nbf and iat.
	Leeway time.Duration
	Now    func() time.Time
}

// Validation failures of account input.
var (
	ErrInactive = errors.New("account is not active")
	ErrKind     = errors.New("operation not valid for this kind of account")
)

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewID returns a fresh account identifier.
func NewID() string {
	var b [10]byte
	rand.Read(b[:])
	return "acct-" + strings.ToLower(idEncoding.EncodeToString(b[:]))
}

// ParseKind accepts "individual" and "organization" (and "org").
func ParseKind(s string) (store.AccountKind, error) {
	switch strings.ToLower(s) {
	case "individual":
		return store.AccountIndividual, nil
	case "organization", "organisation", "org":
		return store.AccountOrganization, nil
	}
	return "", fmt.Errorf("account kind must be individual or organization, not %q", s)
}

// Create registers an account. For an individual account it generates the
// shared secret (256 bits), returned once in the clear and stored
// encrypted.
//
// audiences and scopes bound what the account's clients may be registered
// for (empty: no bound); each audience is checked like a client's
// (clients.CheckAudience) and scopes may hold several, space-separated.
func (s *Service) Create(ctx context.Context, kind store.AccountKind, name string, audiences, scopes []string) (*store.Account, string, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return nil, "", errors.New("account name is required")
	case len(name) > 200:
		return nil, "", errors.New("account name is longer than 200 characters")
	case strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7F }):
		return nil, "", errors.New("account name must not contain control characters")
	}
	var auds, scs []string
	for _, a := range audiences {
		if err := clients.CheckAudience(a); err != nil {
			return nil, "", fmt.Errorf("audience %q: %w", a, err)
		}
		if !slices.Contains(auds, a) {
			auds = append(auds, a)
		}
	}
	for _, group := range scopes {
		for _, sc := range strings.Fields(group) {
			if !oauth.ValidScopeToken(sc) {
				return nil, "", fmt.Errorf("scope %q is not a scope token (RFC 6749 §3.3)", sc)
			}
			if !slices.Contains(scs, sc) {
				scs = append(scs, sc)
			}
		}
	}
	now := s.Now().UTC()
	a := &store.Account{
		ID: NewID(), Kind: kind, Name: name, Status: store.AccountActive,
		Audiences: orEmpty(auds), Scopes: orEmpty(scs), CreatedAt: now, UpdatedAt: now,
	}
	var secret string
	switch kind {
	case store.AccountIndividual:
		secret = s.newSecret(a)
	case store.AccountOrganization:
	default:
		return nil, "", fmt.Errorf("unknown account kind %q", kind)
	}
	if err := s.Store.CreateAccount(ctx, a); err != nil {
		return nil, "", err
	}
	return a, secret, nil
}

// newSecret gives an individual account a fresh shared secret (256 bits),
// stored sealed, and returns it in the clear.
func (s *Service) newSecret(a *store.Account) string {
	var b [32]byte
	rand.Read(b[:])
	secret := base64.RawURLEncoding.EncodeToString(b[:])
	a.SharedSecret = s.Sealer.Seal([]byte(secret), []byte("account:"+a.ID))
	return secret
}

// RotateSecret replaces an individual account's shared secret and returns
// the new one, in the clear, once. The old secret stops working at once:
// IATs signed with it are refused and the holder's portal sessions are
// ended, since whoever lost or leaked the old secret must not keep its use.
func (s *Service) RotateSecret(ctx context.Context, id string) (*store.Account, string, error) {
	var secret string
	a, err := s.Store.UpdateAccount(ctx, id, func(a *store.Account) error {
		if a.Kind != store.AccountIndividual {
			return fmt.Errorf("%w: only an individual account has a shared secret (an organization signs with its certificates)", ErrKind)
		}
		if a.Status == store.AccountClosed {
			return errors.New("the account is closed")
		}
		secret = s.newSecret(a)
		a.UpdatedAt = s.Now().UTC()
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	if err := s.Store.DeleteSubjectSessions(ctx, "account:"+a.ID); err != nil {
		return a, secret, fmt.Errorf("the secret was replaced, but the account's portal sessions could not be ended: %w", err)
	}
	return a, secret, nil
}

// sharedSecret decrypts an individual account's secret.
func (s *Service) sharedSecret(a *store.Account) ([]byte, error) {
	if a.Kind != store.AccountIndividual || a.SharedSecret == nil {
		return nil, ErrKind
	}
	return s.Sealer.Open(a.SharedSecret, []byte("account:"+a.ID))
}

// CheckSecret authenticates an individual account holder by account id and
// shared secret (the portal's sign-in for account holders).
func (s *Service) CheckSecret(ctx context.Context, id, secret string) (*store.Account, error) {
	a, err := s.Store.GetAccount(ctx, id)
	if err != nil {
		return nil, err
	}
	want, err := s.sharedSecret(a)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(want, []byte(secret)) != 1 {
		return nil, errors.New("wrong secret")
	}
	if a.Status != store.AccountActive {
		return nil, ErrInactive
	}
	return a, nil
}

// SetStatus changes an account's status.
func (s *Service) SetStatus(ctx context.Context, id string, st store.AccountStatus) (*store.Account, error) {
	switch st {
	case store.AccountActive, store.AccountSuspended, store.AccountClosed:
	default:
		return nil, fmt.Errorf("unknown account status %q", st)
	}
	return s.Store.UpdateAccount(ctx, id, func(a *store.Account) error {
		if a.Status == store.AccountClosed && st != store.AccountClosed {
			return errors.New("a closed account cannot be reopened")
		}
		a.Status, a.UpdatedAt = st, s.Now()
		return nil
	})
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
