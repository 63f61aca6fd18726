package clientauth

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"sync"

	"github.com/go-jose/go-jose/v4"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
)

// authenticateCertificate authenticates a client that sent its client_id
// and no secret nor assertion with the TLS client certificate of r, by the
// method the client registered: tls_client_auth (RFC 8705 §2.1: a chain
// to the client CA bundle and the registered subject DN or SAN) or
// self_signed_tls_client_auth (§2.2: the certificate's key is one of the
// client's registered keys). Every failure is invalid_client with its
// cause for the audit.
func (a *Authenticator) authenticateCertificate(ctx context.Context, r *http.Request, cred Credentials) (*store.Client, Credentials, error) {
	c, err := a.Clients.GetClient(ctx, cred.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, cred, failed(errors.New("unknown client"))
	case err != nil:
		return nil, cred, err
	}
	switch c.AuthMethod {
	case oauth.AuthMethodTLSClientAuth, oauth.AuthMethodSelfSignedTLSClientAuth:
		cred.Method = c.AuthMethod
	default:
		// A secret client that sent no secret.
		return nil, cred, failed(errors.New("no client secret"))
	}
	chain, err := a.Certs.Chain(r)
	if err != nil {
		return nil, cred, failed(err)
	}
	if len(chain) == 0 {
		return nil, cred, failed(errors.New("no client certificate"))
	}
	cert := chain[0]
	if c.AuthMethod == oauth.AuthMethodTLSClientAuth {
		if err := a.Certs.VerifyChainWith(cert, chain[1:], a.Now()); err != nil {
			return nil, cred, failed(fmt.Errorf("client certificate: %w", err))
		}
		if err := MatchName(cert, c.Binding); err != nil {
			return nil, cred, failed(err)
		}
	} else {
		set, err := a.clientKeys(ctx, c)
		if err != nil {
			return nil, cred, err
		}
		if !hasKey(set, cert.PublicKey) {
			return nil, cred, failed(errors.New("the certificate's public key is not one of the client's registered keys"))
		}
	}
	if err := a.active(ctx, c); err != nil {
		return nil, cred, err
	}
	cred.Cert = cert
	return c, cred, nil
}

// MatchName checks that cert carries the one name b registers for
// tls_client_auth (RFC 8705 §2.1.2): the subject DN, in the RFC 4514
// string form of its encoded RDN sequence (SubjectDN), or a SAN of the registered kind equal to the
// registered value (IP addresses compared as addresses).
func MatchName(cert *x509.Certificate, b store.Binding) error {
	switch {
	case b.TLSSubjectDN != "":
		dn, err := SubjectDN(cert)
		if err != nil {
			return err
		}
		if dn == b.TLSSubjectDN {
			return nil
		}
		return fmt.Errorf("certificate subject %q is not the registered %q", dn, b.TLSSubjectDN)
	case b.TLSSANDNS != "":
		for _, n := range cert.DNSNames {
			if n == b.TLSSANDNS {
				return nil
			}
		}
		return fmt.Errorf("certificate has no DNS name %q", b.TLSSANDNS)
	case b.TLSSANURI != "":
		for _, u := range cert.URIs {
			if u.String() == b.TLSSANURI {
				return nil
			}
		}
		return fmt.Errorf("certificate has no URI %q", b.TLSSANURI)
	case b.TLSSANIP != "":
		want, err := netip.ParseAddr(b.TLSSANIP)
		if err != nil {
			return fmt.Errorf("registered IP %q: %w", b.TLSSANIP, err)
		}
		for _, ip := range cert.IPAddresses {
			if got, ok := netip.AddrFromSlice(ip); ok && got.Unmap() == want.Unmap() {
				return nil
			}
		}
		return fmt.Errorf("certificate has no IP address %s", want)
	case b.TLSSANEmail != "":
		for _, e := range cert.EmailAddresses {
			if e == b.TLSSANEmail {
				return nil
			}
		}
		return fmt.Errorf("certificate has no email address %q", b.TLSSANEmail)
	}
	return errors.New("the client registers no certificate name")
}

// SubjectDN is the RFC 4514 string of cert's subject as encoded, every
// attribute in its place: pkix.Name.String rebuilds the name from parsed
// fields, keeping only the last of several CNs, splitting multi-valued
// RDNs and reordering attributes, so that distinct subjects (CN=victim
// and CN=victim,CN=attacker) would read the same (review of issue 13).
func SubjectDN(cert *x509.Certificate) (string, error) {
	var rdn pkix.RDNSequence
	rest, err := asn1.Unmarshal(cert.RawSubject, &rdn)
	if err != nil || len(rest) > 0 {
		return "", errors.New("certificate subject cannot be read")
	}
	return rdn.String(), nil
}

// clientKeys is the client's registered JWK set: its jwks, or the set at
// its jwks_uri through FetchJWKS.
func (a *Authenticator) clientKeys(ctx context.Context, c *store.Client) (*jose.JSONWebKeySet, error) {
	if len(c.Binding.JWKS) > 0 {
		set, err := parsedSets.get(c.Binding.JWKS)
		if err != nil {
			return nil, failed(fmt.Errorf("registered jwks: %w", err))
		}
		return set, nil
	}
	if c.Binding.JWKSURI != "" && a.FetchJWKS != nil {
		set, err := a.FetchJWKS(ctx, c)
		if err != nil {
			return nil, failed(fmt.Errorf("jwks_uri: %w", err))
		}
		return set, nil
	}
	return nil, failed(errors.New("the client registers no keys"))
}

// hasKey reports whether pub is the public key of a signing key of set.
func hasKey(set *jose.JSONWebKeySet, pub crypto.PublicKey) bool {
	for _, k := range set.Keys {
		if k.Use == "enc" || !k.IsPublic() {
			continue
		}
		if p, ok := k.Key.(interface{ Equal(crypto.PublicKey) bool }); ok && p.Equal(pub) {
			return true
		}
	}
	return false
}

// parsedSets keeps the registered JWK sets parsed, by content: a set is
// parsed once, not on every authentication. Bounded: past maxParsedSets
// it starts afresh.
var parsedSets keySets

const maxParsedSets = 1024

type keySets struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]*jose.JSONWebKeySet
}

func (k *keySets) get(raw []byte) (*jose.JSONWebKeySet, error) {
	key := sha256.Sum256(raw)
	k.mu.Lock()
	set, ok := k.m[key]
	k.mu.Unlock()
	if ok {
		return set, nil
	}
	set = new(jose.JSONWebKeySet)
	if err := json.Unmarshal(raw, set); err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m == nil || len(k.m) >= maxParsedSets {
		k.m = make(map[[sha256.Size]byte]*jose.JSONWebKeySet)
	}
	k.m[key] = set
	return set, nil
}
