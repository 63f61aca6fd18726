package token

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/keybridge/sts/internal/keys"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
)

// Claims are the JWT claims this server writes and reads (RFC 7519 §4.1,
// RFC 9068 §2.2, RFC 8693 §4).
type Claims struct {
	Issuer    string         `json:"iss"`
	Subject   string         `json:"sub"`
	Audience  oauth.Audience `json:"aud,omitempty"`
	Expiry    int64          `json:"exp"`
	IssuedAt  int64          `json:"iat"`
	NotBefore int64          `json:"nbf"`
	ID        string         `json:"jti"`
	ClientID  string         `json:"client_id,omitempty"`
	Scope     string         `json:"scope,omitempty"`
	Act       *oauth.Actor   `json:"act,omitempty"`
	MayAct    *oauth.Actor   `json:"may_act,omitempty"`
	// FamilyID is a private claim (RFC 7519 §4.3): the refresh family the
	// token was issued in, if any, so that revoking the family revokes
	// this token too although it is not stored (RFC 7009 §2.1, RFC 9700
	// §4.14.2).
	FamilyID string `json:"family_id,omitempty"`
	// Cnf is the confirmation (sender-constraint) claim, RFC 7800: the
	// DPoP key (jkt, RFC 9449 §6) or client certificate (x5t#S256, RFC
	// 8705 §3) the token is bound to; an opaque token's comes from its
	// record. Kept raw, so that a confirmation method this server does
	// not know is seen, and refused, rather than dropped.
	Cnf json.RawMessage `json:"cnf,omitempty"`
	// SubID names the issuer that vouched for the subject and its own
	// sub, when that is another issuer (RFC 9493 §4.1).
	SubID *oauth.SubjectID `json:"sub_id,omitempty"`
	// Extra are claims computed by the operator's CEL claim rules
	// (internal/celpolicy refuses names of the claims above). Written by
	// SignJWT, not read back by validation.
	Extra map[string]any `json:"-"`
}

// Prefixes of opaque tokens; they make a leaked token recognisable to
// secret scanners and let the validator skip JWT parsing.
const (
	PrefixAccess  = "sts_at_"
	PrefixRefresh = "sts_rt_"
)

// Format of a validated token.
const (
	FormatJWT    = "jwt"
	FormatOpaque = "opaque"
)

// Validation failures. They are causes for logs; the client is told only
// that the token is invalid.
var (
	ErrMalformed      = errors.New("token is malformed")
	ErrSignature      = errors.New("token signature is invalid")
	ErrUnknownKey     = errors.New("token signed by an unknown key")
	ErrIssuer         = errors.New("token has a wrong issuer")
	ErrExpired        = errors.New("token is expired")
	ErrNotYet         = errors.New("token is not yet valid")
	ErrRevoked        = errors.New("token is revoked")
	ErrReplayed       = errors.New("refresh token used twice; its family is revoked")
	ErrClientGone     = errors.New("the client the token was issued to no longer exists")
	ErrClientInactive = errors.New("the client the token was issued to is disabled or pending approval")
	ErrUnknown        = errors.New("token is unknown")
	ErrClaims         = errors.New("token lacks required claims")
)

// IsInvalid reports whether err says the token is invalid (as opposed to a
// failure of the store, which is a server error).
func IsInvalid(err error) bool {
	for _, e := range []error{ErrMalformed, ErrSignature, ErrUnknownKey, ErrIssuer, ErrExpired, ErrNotYet, ErrRevoked, ErrReplayed, ErrClientGone, ErrClientInactive, ErrUnknown, ErrClaims} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Validated is a token that passed validation.
type Validated struct {
	Claims
	// Format is FormatJWT or FormatOpaque.
	Format string
	// Kind is store.TokenAccess or store.TokenRefresh.
	Kind store.TokenKind
	// Type is the JWT "typ" header; empty for opaque tokens.
	Type string
	// Record is the stored record of an opaque token.
	Record *store.TokenRecord
}

// Service mints and validates tokens.
type Service struct {
	Issuer      string
	Keys        *keys.Manager
	Tokens      store.Tokens
	Revocations store.Revocations
	// Clients, when set, is asked whether the client a token was issued
	// to still exists, is the one it was issued to and is active (see
	// Validate). The token endpoint passes its cached view.
	Clients store.Clients
	// Accounts, when set, is asked whether the account of a token's
	// client is active (the token endpoint passes its cached view).
	Accounts interface {
		GetAccount(ctx context.Context, id string) (*store.Account, error)
	}
	// Leeway tolerated on exp and nbf for clock skew.
	Leeway time.Duration
	Now    func() time.Time
}

// NewID returns a random identifier for jti and family ids (128 bits).
func NewID() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// HashOpaque returns the storage key of an opaque token.
func HashOpaque(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}

// SignJWT signs c with the current key, writing typ in the header.
func (s *Service) SignJWT(c *Claims, typ string) (string, error) {
	signer, err := s.Keys.Snapshot().Signer(typ)
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	if len(c.Extra) > 0 {
		// The computed claims join the object's members; their names
		// never collide with the fields above (celpolicy.ReservedClaims).
		extra, err := json.Marshal(c.Extra)
		if err != nil {
			return "", fmt.Errorf("claim rules: %w", err)
		}
		payload = append(append(payload[:len(payload)-1], ','), extra[1:]...)
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return obj.CompactSerialize()
}

// IssueOpaque creates an opaque token of the record's kind, stores the
// record under the token's hash, and returns the token.
func (s *Service) IssueOpaque(ctx context.Context, rec *store.TokenRecord) (string, error) {
	prefix := PrefixAccess
	if rec.Kind == store.TokenRefresh {
		prefix = PrefixRefresh
	}
	tok := newOpaque(prefix)
	rec.Hash = HashOpaque(tok)
	if err := s.Tokens.CreateToken(ctx, rec); err != nil {
		return "", err
	}
	return tok, nil
}

// IssueRefresh creates a refresh token for rec. When rotateFrom is the hash
// of the refresh token being used, that token is consumed in the same
// transaction (store.Tokens.RotateRefreshToken).
func (s *Service) IssueRefresh(ctx context.Context, rec *store.TokenRecord, rotateFrom []byte) (string, error) {
	if rotateFrom == nil {
		return s.IssueOpaque(ctx, rec)
	}
	tok := newOpaque(PrefixRefresh)
	rec.Hash = HashOpaque(tok)
	if err := s.Tokens.RotateRefreshToken(ctx, rotateFrom, s.Now(), rec); err != nil {
		return "", err
	}
	return tok, nil
}

func newOpaque(prefix string) string {
	var b [32]byte
	rand.Read(b[:])
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// Validate checks a token this server issued and returns its claims. Every
// failure wraps one of the Err* values.
//
// With Clients set, a token lives only as long as the client it was issued
// to: a deleted client's tokens die with it (RFC 7592 §2.3), and do not
// come back if a client is created again under the same id, because that
// client is another one: a token issued before the client's creation is
// not its own. iat is in whole seconds, so a token issued in the very
// second the id is created again passes this check (the old client would
// have to be deleted and recreated within that second). A disabled or
// pending client's tokens are refused too (ErrClientInactive): introspected
// inactive, refused as subject and actor tokens (RFC 8693 §2.2.2), until
// the client is active again.
func (s *Service) Validate(ctx context.Context, raw string) (*Validated, error) {
	var (
		v   *Validated
		err error
	)
	if strings.HasPrefix(raw, PrefixAccess) || strings.HasPrefix(raw, PrefixRefresh) {
		v, err = s.validateOpaque(ctx, raw)
	} else {
		v, err = s.validateJWT(ctx, raw)
	}
	if err != nil || s.Clients == nil || v.ClientID == "" {
		return v, err
	}
	c, err := s.Clients.GetClient(ctx, v.ClientID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrClientGone
	}
	if err != nil {
		return nil, err
	}
	if v.IssuedAt < c.CreatedAt.Unix() {
		return nil, fmt.Errorf("%w: issued at %d, before client %q was created again (%d)",
			ErrClientGone, v.IssuedAt, c.ID, c.CreatedAt.Unix())
	}
	if c.Status != store.ClientActive {
		return nil, fmt.Errorf("%w: client %q is %s", ErrClientInactive, c.ID, c.Status)
	}
	// The clients of a suspended or closed account cannot authenticate;
	// their tokens are not accepted either (review of issue 8).
	if c.AccountID != "" && s.Accounts != nil {
		a, err := s.Accounts.GetAccount(ctx, c.AccountID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		if err != nil || a.Status != store.AccountActive {
			return nil, fmt.Errorf("%w: the account of client %q is not active", ErrClientInactive, c.ID)
		}
	}
	return v, nil
}

// familyRevoked reports whether the refresh family id, or a family it
// descends from, was revoked (see store.Tokens.RevokeFamily); a token
// outside any family is in none.
func (s *Service) familyRevoked(ctx context.Context, id string) (bool, error) {
	for _, f := range store.FamilyLineage(id) {
		revoked, err := s.Revocations.IsRevoked(ctx, store.FamilyRevocation(f))
		if err != nil || revoked {
			return revoked, err
		}
	}
	return false, nil
}

// MaxFamilyDepth bounds the nesting of child families (each costs a
// lookup per validation); deeper derivations join their parent's family.
const MaxFamilyDepth = 4

// ChildFamily returns a new child family of parent (see
// store.FamilySeparator), or parent itself at MaxFamilyDepth; "" for none.
func ChildFamily(parent string) string {
	if parent == "" {
		return ""
	}
	if len(store.FamilyLineage(parent)) >= MaxFamilyDepth {
		return parent
	}
	return parent + store.FamilySeparator + NewID()
}

// ParseUnverified decodes a compact JWT's header typ and claims without
// checking anything; for `sts token inspect` and diagnostics only.
func ParseUnverified(raw string) (header map[string]any, claims map[string]any, err error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, nil, ErrMalformed
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
	}
	return header, claims, nil
}

func (s *Service) validateJWT(ctx context.Context, raw string) (*Validated, error) {
	obj, err := jose.ParseSignedCompact(raw, keys.Algorithms)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(obj.Signatures) != 1 {
		return nil, ErrMalformed
	}
	h := obj.Signatures[0].Protected
	typ, _ := h.ExtraHeaders[jose.HeaderType].(string)
	if typ != oauth.JWTTypeAccessToken {
		return nil, fmt.Errorf("%w: typ %q", ErrMalformed, typ)
	}
	key, ok := s.Keys.LookupOrReload(ctx, h.KeyID)
	if !ok {
		return nil, fmt.Errorf("%w: kid %q", ErrUnknownKey, h.KeyID)
	}
	// The key fixes the algorithm: a token cannot choose another one
	// (e.g. HS256 keyed with the public key).
	if h.Algorithm != string(key.Algorithm) {
		return nil, fmt.Errorf("%w: alg %q for key of %s", ErrSignature, h.Algorithm, key.Algorithm)
	}
	payload, err := obj.Verify(key.Public.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSignature, err)
	}
	v := &Validated{Format: FormatJWT, Kind: store.TokenAccess, Type: typ}
	if err := json.Unmarshal(payload, &v.Claims); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	c := &v.Claims
	if c.Issuer != s.Issuer {
		return nil, fmt.Errorf("%w: %q", ErrIssuer, c.Issuer)
	}
	if c.Subject == "" || c.ID == "" || c.Expiry == 0 {
		return nil, ErrClaims
	}
	now := s.Now()
	if now.Add(-s.Leeway).Unix() >= c.Expiry {
		return nil, ErrExpired
	}
	if c.NotBefore != 0 && now.Add(s.Leeway).Unix() < c.NotBefore {
		return nil, ErrNotYet
	}
	// The token itself, or its whole family, may be revoked; both answers
	// come from memory on the hot path (store/cached).
	revoked, err := s.Revocations.IsRevoked(ctx, c.ID)
	if err == nil && !revoked {
		revoked, err = s.familyRevoked(ctx, c.FamilyID)
	}
	if err != nil {
		return nil, err // a store failure is a server error, not a bad token
	}
	if revoked {
		return nil, ErrRevoked
	}
	return v, nil
}

func (s *Service) validateOpaque(ctx context.Context, raw string) (*Validated, error) {
	rec, err := s.Tokens.GetToken(ctx, HashOpaque(raw))
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrUnknown
	}
	if err != nil {
		return nil, err
	}
	wantPrefix := PrefixAccess
	if rec.Kind == store.TokenRefresh {
		wantPrefix = PrefixRefresh
	}
	if !strings.HasPrefix(raw, wantPrefix) {
		return nil, ErrUnknown
	}
	if !rec.ConsumedAt.IsZero() {
		// A refresh token used a second time was stolen or leaked: revoke
		// the whole family, wherever it is presented (RFC 9700 §4.14.2).
		if err := s.Tokens.RevokeFamily(ctx, rec.FamilyID, s.Now()); err != nil {
			return nil, err
		}
		return nil, ErrReplayed
	}
	if !rec.RevokedAt.IsZero() {
		return nil, ErrRevoked
	}
	if !s.Now().Before(rec.ExpiresAt) {
		return nil, ErrExpired
	}
	// A token that joined its family as the family was being revoked is
	// not marked itself, but the family's revocation covers it.
	revoked, err := s.familyRevoked(ctx, rec.FamilyID)
	if err != nil {
		return nil, err
	}
	if revoked {
		return nil, ErrRevoked
	}
	v := &Validated{Format: FormatOpaque, Kind: rec.Kind, Record: rec}
	v.Claims = Claims{
		Issuer:   s.Issuer,
		Subject:  rec.Subject,
		Audience: rec.Audience,
		Expiry:   rec.ExpiresAt.Unix(),
		IssuedAt: rec.IssuedAt.Unix(),
		ID:       rec.JTI,
		ClientID: rec.ClientID,
		Scope:    rec.Scope,
		FamilyID: rec.FamilyID,
		Cnf:      rec.Cnf,
	}
	if len(rec.Actor) > 0 {
		v.Act = new(oauth.Actor)
		if err := json.Unmarshal(rec.Actor, v.Act); err != nil {
			return nil, fmt.Errorf("stored actor: %w", err)
		}
	}
	return v, nil
}
