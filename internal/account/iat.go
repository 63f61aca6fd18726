package account

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/token"
	"github.com/keybridge/sts/oauth"
)

// IAT is a verified initial access token.
type IAT struct {
	Account *store.Account
	ID      string // jti
	Expiry  time.Time
	// Claims are all the token's claims, for the per-scope requirements.
	Claims map[string]any
}

// iatClaims are the claims every IAT carries. Times are NumericDates,
// which may have a fraction (RFC 7519 §2).
type iatClaims struct {
	Issuer   string         `json:"iss"`
	Audience oauth.Audience `json:"aud"`
	Expiry   float64        `json:"exp"`
	IssuedAt float64        `json:"iat"`
	NotBef   float64        `json:"nbf,omitempty"`
	ID       string         `json:"jti"`
}

// invalid is the answer to every IAT failure: 401 with
// WWW-Authenticate: Bearer error="invalid_token" (RFC 6750 §3.1); the
// reason is a hidden cause.
func invalid(cause error) *oauth.Error {
	return oauth.NewError(oauth.ErrInvalidToken, "the initial access token is invalid").
		WithStatus(http.StatusUnauthorized).WithCause(cause)
}

// invalidBecause is invalid with the reason told: for failures found after
// the signature verified, when the caller has proved it holds the
// account's key, so that saying what is wrong (another audience, expired)
// leaks nothing and spares the holder a guess.
func invalidBecause(format string, args ...any) *oauth.Error {
	reason := fmt.Sprintf(format, args...)
	return oauth.NewError(oauth.ErrInvalidToken, "the initial access token is invalid: %s", reason).
		WithStatus(http.StatusUnauthorized).WithCause(errors.New(reason))
}

func (s *Service) maxLifetime() time.Duration {
	if s.MaxIATLifetime > 0 {
		return s.MaxIATLifetime
	}
	return DefaultMaxIATLifetime
}

// IssueIAT mints an IAT for an account the server can sign for: an
// individual account (its shared secret), or an organization with a valid
// certificate this server issued. ttl is capped by the maximum lifetime.
func (s *Service) IssueIAT(ctx context.Context, accountID string, ttl time.Duration, extra map[string]any) (string, error) {
	a, err := s.Store.GetAccount(ctx, accountID)
	if err != nil {
		return "", err
	}
	if a.Status != store.AccountActive {
		return "", ErrInactive
	}
	if len(s.Audiences) == 0 {
		return "", errors.New("account service has no audiences (issuer) configured")
	}
	if ttl <= 0 || ttl > s.maxLifetime() {
		ttl = s.maxLifetime()
	}
	var key jose.SigningKey
	opts := (&jose.SignerOptions{}).WithType("JWT")
	switch a.Kind {
	case store.AccountIndividual:
		secret, err := s.sharedSecret(a)
		if err != nil {
			return "", err
		}
		key = jose.SigningKey{Algorithm: jose.HS256, Key: secret}
	default:
		c, priv, err := s.issuedKey(ctx, a.ID)
		if err != nil {
			return "", err
		}
		alg, err := algorithmOf(priv.Public())
		if err != nil {
			return "", err
		}
		key = jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: priv, KeyID: c.ID}}
		opts.WithHeader("x5t#S256", c.ID)
	}
	signer, err := jose.NewSigner(key, opts)
	if err != nil {
		return "", err
	}
	now := s.Now()
	claims := map[string]any{}
	for k, v := range extra {
		claims[k] = v
	}
	claims["iss"], claims["aud"] = a.ID, s.Audiences[0]
	claims["iat"], claims["exp"], claims["jti"] = now.Unix(), now.Add(ttl).Unix(), token.NewID()
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return obj.CompactSerialize()
}

// issuedKey returns the newest currently valid certificate this server
// issued to the organization, and its private key.
func (s *Service) issuedKey(ctx context.Context, accountID string) (*store.Certificate, crypto.Signer, error) {
	certs, err := s.Store.ListCertificates(ctx, accountID)
	if err != nil {
		return nil, nil, err
	}
	now := s.Now()
	for _, c := range certs {
		if c.PrivateKey == nil || now.Before(c.NotBefore) || !now.Before(c.NotAfter) {
			continue
		}
		der, err := s.Sealer.Open(c.PrivateKey, []byte("cert:"+c.ID))
		if err != nil {
			return nil, nil, err
		}
		k, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			return nil, nil, err
		}
		if signer, ok := k.(crypto.Signer); ok {
			return c, signer, nil
		}
	}
	return nil, nil, errors.New("the organization has no valid certificate issued by this server; it signs its own IATs with the key of its uploaded certificate")
}

// VerifyIAT checks an IAT without consuming it: signature by the account's
// key with exactly the algorithms of its key type, active account,
// certificate validity, audience, lifetime and required claims. Call
// Consume once the registration is otherwise valid.
func (s *Service) VerifyIAT(ctx context.Context, raw string) (*IAT, error) {
	obj, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.HS256, jose.RS256, jose.ES256})
	if err != nil {
		return nil, invalid(err)
	}
	if len(obj.Signatures) != 1 {
		return nil, invalid(errors.New("not one signature"))
	}
	// The issuer names the account, and so the key: read it before the
	// signature is checked, and trust nothing else from the payload yet.
	var pre iatClaims
	if err := json.Unmarshal(obj.UnsafePayloadWithoutVerification(), &pre); err != nil || pre.Issuer == "" {
		return nil, invalid(fmt.Errorf("no issuer: %v", err))
	}
	if !store.ValidText(pre.Issuer) {
		// A JSON "\u0000" names no account (and PostgreSQL refuses
		// to look it up).
		return nil, invalid(errors.New("the issuer holds NUL"))
	}
	a, err := s.Store.GetAccount(ctx, pre.Issuer)
	if errors.Is(err, store.ErrNotFound) {
		return nil, invalid(fmt.Errorf("unknown account %q", pre.Issuer))
	}
	if err != nil {
		return nil, err
	}
	h := obj.Signatures[0].Protected
	var payload []byte
	switch a.Kind {
	case store.AccountIndividual:
		if h.Algorithm != string(jose.HS256) {
			return nil, invalid(fmt.Errorf("alg %s for an individual account", h.Algorithm))
		}
		secret, err := s.sharedSecret(a)
		if err != nil {
			return nil, err
		}
		if payload, err = obj.Verify(secret); err != nil {
			return nil, invalid(err)
		}
	default:
		if payload, err = s.verifyOrganization(ctx, a, obj, h); err != nil {
			return nil, err
		}
	}
	if a.Status != store.AccountActive {
		return nil, invalidBecause("account %s is %s", a.ID, a.Status)
	}
	var c iatClaims
	all := map[string]any{}
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, invalid(err)
	}
	if err := json.Unmarshal(payload, &all); err != nil {
		return nil, invalid(err)
	}
	now := s.Now()
	exp, iat, nbf := int64(math.Floor(c.Expiry)), int64(math.Floor(c.IssuedAt)), int64(math.Floor(c.NotBef))
	switch {
	case !slices.ContainsFunc(c.Audience, func(x string) bool { return slices.Contains(s.Audiences, x) }):
		return nil, invalidBecause("it is for audience %s; this server accepts %s (was it issued for another issuer?)",
			strings.Join(c.Audience, ", "), strings.Join(s.Audiences, " or "))
	case c.ID == "":
		return nil, invalidBecause("it has no jti")
	case !store.ValidText(c.ID):
		return nil, invalidBecause("its jti holds NUL")
	case exp <= 0 || iat <= 0:
		return nil, invalidBecause("exp and iat are required")
	case now.Add(-s.Leeway).Unix() >= exp:
		return nil, invalidBecause("it expired at %s", time.Unix(exp, 0).UTC().Format(time.RFC3339))
	case iat > now.Add(s.Leeway).Unix() || (nbf != 0 && nbf > now.Add(s.Leeway).Unix()):
		return nil, invalidBecause("it is not valid yet (iat or nbf in the future; check the clock)")
	case exp-iat > int64(s.maxLifetime()/time.Second) ||
		time.Unix(exp, 0).Sub(now) > s.maxLifetime()+s.Leeway:
		return nil, invalidBecause("its lifetime is longer than the %v this server allows", s.maxLifetime())
	}
	return &IAT{Account: a, ID: c.ID, Expiry: time.Unix(exp, 0), Claims: all}, nil
}

// verifyOrganization checks the signature with a certificate of the
// organization: the one named by kid or x5t#S256, else any whose key type
// matches alg; the certificate must be valid now.
func (s *Service) verifyOrganization(ctx context.Context, a *store.Account, obj *jose.JSONWebSignature, h jose.Header) ([]byte, error) {
	if h.Algorithm != string(jose.RS256) && h.Algorithm != string(jose.ES256) {
		return nil, invalid(fmt.Errorf("alg %s for an organization", h.Algorithm))
	}
	certs, err := s.Store.ListCertificates(ctx, a.ID)
	if err != nil {
		return nil, err
	}
	want, _ := h.ExtraHeaders["x5t#S256"].(string)
	if want == "" {
		want = h.KeyID
	}
	now := s.Now()
	var lastErr error = errors.New("no certificate matches")
	for _, c := range certs {
		if want != "" && c.ID != want {
			continue
		}
		cert, err := x509.ParseCertificate(c.DER)
		if err != nil {
			continue
		}
		alg, err := algorithmOf(cert.PublicKey)
		if err != nil || string(alg) != h.Algorithm {
			lastErr = fmt.Errorf("alg %s does not match certificate key", h.Algorithm)
			continue
		}
		if now.Before(cert.NotBefore) || !now.Before(cert.NotAfter) {
			lastErr = errors.New("certificate outside its validity period")
			continue
		}
		payload, err := obj.Verify(cert.PublicKey)
		if err == nil {
			return payload, nil
		}
		lastErr = err
	}
	return nil, invalid(lastErr)
}

// CheckScopes enforces the per-scope claim requirements: a registration
// asking for a scope listed in RequiredClaims needs an IAT with each of
// that scope's claims.
func (s *Service) CheckScopes(iat *IAT, scopes []string) error {
	for _, sc := range scopes {
		for _, claim := range s.RequiredClaims[sc] {
			if v, ok := iat.Claims[claim]; !ok || v == nil || v == "" {
				// Checked on a verified IAT: its holder may be told.
				return invalidBecause("scope %q needs the claim %q, which it lacks", sc, claim)
			}
		}
	}
	return nil
}

// Consume marks the IAT used: each IAT registers once (ErrConflict from the
// store becomes an invalid_token answer).
func (s *Service) Consume(ctx context.Context, iat *IAT) error {
	err := s.Store.ConsumeJTI(ctx, "iat:"+iat.Account.ID, iat.ID, iat.Expiry.Add(s.Leeway))
	if errors.Is(err, store.ErrConflict) {
		return invalid(errors.New("replayed jti"))
	}
	return err
}
