package account

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/keybridge/sts/internal/store"
)

// CertID is the x5t#S256 thumbprint of a certificate: the base64url
// SHA-256 of its DER encoding (RFC 7515 §4.1.8).
func CertID(der []byte) string {
	h := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// algorithmOf is the one JWS algorithm a certificate's key may sign IATs
// with: RS256 for RSA (2048 bits or more), ES256 for ECDSA P-256.
func algorithmOf(pub any) (jose.SignatureAlgorithm, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return "", errors.New("RSA keys must have at least 2048 bits")
		}
		return jose.RS256, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return "", errors.New("ECDSA keys must be on P-256")
		}
		return jose.ES256, nil
	}
	return "", fmt.Errorf("unsupported certificate key type %T (use RSA or ECDSA P-256)", pub)
}

func (s *Service) organization(ctx context.Context, accountID string) (*store.Account, error) {
	a, err := s.Store.GetAccount(ctx, accountID)
	if err != nil {
		return nil, err
	}
	if a.Kind != store.AccountOrganization {
		return nil, fmt.Errorf("%w: certificates belong to organization accounts", ErrKind)
	}
	return a, nil
}

// IssueCertificate creates a key pair and a certificate for an
// organization; the server keeps the private key (encrypted) so that it can
// sign IATs for the organization. alg is ES256 (default) or RS256. The
// certificate is self-signed: it is trusted because this server registered
// it to the account, not through a chain.
func (s *Service) IssueCertificate(ctx context.Context, accountID, alg string, validity time.Duration) (*store.Certificate, error) {
	a, err := s.organization(ctx, accountID)
	if err != nil {
		return nil, err
	}
	var priv crypto.Signer
	switch alg {
	case "", string(jose.ES256):
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case string(jose.RS256):
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		return nil, fmt.Errorf("certificate algorithm must be ES256 or RS256, not %q", alg)
	}
	if err != nil {
		return nil, err
	}
	if validity <= 0 {
		validity = 365 * 24 * time.Hour
	}
	now := s.Now()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	name := pkix.Name{CommonName: a.Name, Organization: []string{a.Name}, SerialNumber: a.ID}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               name,
		Issuer:                name,
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		return nil, err
	}
	pk, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	id := CertID(der)
	c := &store.Certificate{
		ID: id, AccountID: a.ID, DER: der,
		PrivateKey: s.Sealer.Seal(pk, []byte("cert:"+id)),
		NotBefore:  tmpl.NotBefore, NotAfter: tmpl.NotAfter, CreatedAt: now,
	}
	return c, s.Store.AddCertificate(ctx, c)
}

// UploadCertificate registers an organization's own certificate (PEM or
// DER); the organization signs its IATs with the matching private key.
func (s *Service) UploadCertificate(ctx context.Context, accountID string, data []byte) (*store.Certificate, error) {
	a, err := s.organization(ctx, accountID)
	if err != nil {
		return nil, err
	}
	der := data
	if b, _ := pem.Decode(data); b != nil {
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block is %q, want CERTIFICATE", b.Type)
		}
		der = b.Bytes
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("not an X.509 certificate: %w", err)
	}
	if _, err := algorithmOf(cert.PublicKey); err != nil {
		return nil, err
	}
	if !s.Now().Before(cert.NotAfter) {
		return nil, errors.New("the certificate has expired")
	}
	c := &store.Certificate{
		ID: CertID(der), AccountID: a.ID, DER: der,
		NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, CreatedAt: s.Now(),
	}
	return c, s.Store.AddCertificate(ctx, c)
}

// PEM encodes a certificate.
func PEM(c *store.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.DER})
}
