package register

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/keybridge/sts/oauth"
)

// statementAlgorithms are the JWS algorithms a software statement may be
// signed with: asymmetric only, so that a publisher's published JWK set
// can never serve as an HMAC key.
var statementAlgorithms = []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA}

// jwtClaims are the JWT claims of a software statement, which are not
// client metadata and so never override the request's.
var jwtClaims = []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "software_statement"}

func badStatement(cause error) *oauth.Error {
	return oauth.NewError(oauth.ErrInvalidSoftwareStatement, "the software statement is invalid").WithCause(cause)
}

// applyStatement verifies the software statement of a request, if it has
// one, and lays its claims over the request's members: RFC 7591 §2.3, "the
// values of client metadata fields present in the software statement MUST
// take precedence over those in the plain JSON request". A statement whose
// issuer the operator does not trust is unapproved_software_statement;
// one that is malformed, badly signed, expired or not yet valid is
// invalid_software_statement (§3.2.2).
func (e *Endpoint) applyStatement(fields map[string]json.RawMessage) *oauth.Error {
	raw, ok := fields["software_statement"]
	if !ok || string(raw) == "null" {
		return nil
	}
	var jws string
	if err := json.Unmarshal(raw, &jws); err != nil {
		return oauth.NewError(oauth.ErrInvalidSoftwareStatement, "software_statement must be a string: a JWS in compact form")
	}
	claims, err := e.verifyStatement(jws)
	if err != nil {
		return err
	}
	for k, v := range claims {
		if !slices.Contains(jwtClaims, k) {
			fields[k] = v
		}
	}
	return nil
}

// verifyStatement checks a software statement (RFC 7591 §2.3): a JWS with
// an iss claim naming a trusted publisher, signed by one of the
// publisher's keys, not expired (exp) nor issued in the future (iat, nbf).
func (e *Endpoint) verifyStatement(jws string) (map[string]json.RawMessage, *oauth.Error) {
	obj, err := jose.ParseSignedCompact(jws, statementAlgorithms)
	if err != nil {
		return nil, badStatement(err)
	}
	if len(obj.Signatures) != 1 {
		return nil, badStatement(errors.New("not one signature"))
	}
	var pre struct {
		Issuer string `json:"iss"`
	}
	if err := json.Unmarshal(obj.UnsafePayloadWithoutVerification(), &pre); err != nil || pre.Issuer == "" {
		// §2.3: the statement "MUST contain an iss (issuer) claim".
		return nil, badStatement(fmt.Errorf("no iss claim: %v", err))
	}
	set, ok := e.o.Publishers[pre.Issuer]
	if !ok || set == nil {
		return nil, oauth.NewError(oauth.ErrUnapprovedSoftwareStatement, "the software statement's issuer is not trusted by this server").
			WithCause(fmt.Errorf("unknown publisher %q", pre.Issuer))
	}
	payload, err := verifyWithSet(obj, set)
	if err != nil {
		return nil, badStatement(err)
	}
	var claims map[string]json.RawMessage
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, badStatement(err)
	}
	var times struct {
		Exp *float64 `json:"exp"`
		Iat *float64 `json:"iat"`
		Nbf *float64 `json:"nbf"`
	}
	if err := json.Unmarshal(payload, &times); err != nil {
		return nil, badStatement(fmt.Errorf("exp, iat and nbf must be numbers: %w", err))
	}
	now, leeway := e.o.Now(), e.leeway()
	at := func(f float64) time.Time { return time.Unix(int64(math.Floor(f)), 0) }
	switch {
	case times.Exp != nil && !now.Add(-leeway).Before(at(*times.Exp)):
		return nil, badStatement(errors.New("expired"))
	case times.Iat != nil && at(*times.Iat).After(now.Add(leeway)):
		return nil, badStatement(errors.New("issued in the future"))
	case times.Nbf != nil && at(*times.Nbf).After(now.Add(leeway)):
		return nil, badStatement(errors.New("not yet valid"))
	}
	return claims, nil
}

// verifyWithSet checks the signature with the publisher's public keys: the
// one the header's kid names, else each of them. A key restricted to
// another algorithm or to encryption is not used.
func verifyWithSet(obj *jose.JSONWebSignature, set *jose.JSONWebKeySet) ([]byte, error) {
	h := obj.Signatures[0].Header
	candidates := set.Keys
	if h.KeyID != "" {
		candidates = set.Key(h.KeyID)
	}
	lastErr := errors.New("no key of the publisher matches")
	for _, k := range candidates {
		// Public() is empty for a symmetric key, and the public half of a
		// private key an operator may have put in the file.
		pub := k.Public()
		if pub.Key == nil || k.Use == "enc" || (k.Algorithm != "" && k.Algorithm != h.Algorithm) {
			continue
		}
		payload, err := obj.Verify(pub.Key)
		if err == nil {
			return payload, nil
		}
		lastErr = err
	}
	return nil, lastErr
}
