// Package clientcert finds the TLS client certificate of a request (RFC
// 8705): the one presented in the handshake, or, behind a TLS-terminating
// proxy, the one the proxy forwards in a header, believed only from the
// trusted proxies. It verifies chains against the client CA bundle and
// computes the certificate thumbprint that binds tokens (x5t#S256).
package clientcert

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/keybridge/sts/internal/clientip"
)

// MaxHeaderPEM bounds the forwarded certificate header, before it is
// decoded: a client certificate chain of a few certificates fits easily.
const MaxHeaderPEM = 16 << 10

// Source finds and verifies client certificates. A nil *Source finds
// none: the server has no TLS nor trusted proxy forwarding them.
type Source struct {
	// ClientCAs verifies chains for tls_client_auth; nil when no client
	// CA is configured, and then no chain verifies.
	ClientCAs *x509.CertPool
	// Header is the header a trusted proxy forwards the client
	// certificate in (URL-encoded PEM); empty: none.
	Header string
	// Proxies are the trusted proxies; the header is read only from them.
	Proxies *clientip.Resolver

	cache verified
}

// LoadCAs reads a PEM bundle of CA certificates. It fails on an
// unreadable file, a file without any certificate, or a block that does
// not parse, naming the file.
func LoadCAs(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("client-ca: %w", err)
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("client-ca: %s: certificate %d: %w", path, n+1, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("client-ca: %s holds no PEM certificate", path)
	}
	return pool, nil
}

type peerKey struct{}

// Middleware records the address of the connection's peer before any
// proxy resolution rewrites RemoteAddr (clientip.Resolver.Middleware), so
// that [Source.Certificate] can tell whether the header came from a
// trusted proxy. It goes outside the clientip middleware.
func (s *Source) Middleware(next http.Handler) http.Handler {
	if s == nil || s.Header == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a := parseHost(r.RemoteAddr); a.IsValid() {
			r = r.WithContext(context.WithValue(r.Context(), peerKey{}, a))
		}
		next.ServeHTTP(w, r)
	})
}

// ErrHeader is the cause of a forwarded certificate that cannot be read.
var ErrHeader = errors.New("malformed forwarded client certificate")

// Certificate returns the client certificate of r: the first certificate
// of the TLS handshake, or, when the connection's peer is a trusted proxy
// and a header is configured, the URL-encoded PEM certificate of that
// header (the proxy's own certificate, if any, is not the client's). It
// returns nil, nil when there is none, and an error wrapping ErrHeader
// when a trusted proxy's header cannot be read.
func (s *Source) Certificate(r *http.Request) (*x509.Certificate, error) {
	chain, err := s.Chain(r)
	if len(chain) == 0 {
		return nil, err
	}
	return chain[0], nil
}

// Chain is [Source.Certificate] with the intermediate certificates the
// client sent after it (in the handshake, or as further PEM blocks of the
// header, at most MaxChain in all): the client certificate first. It is
// nil when there is none.
func (s *Source) Chain(r *http.Request) ([]*x509.Certificate, error) {
	if s == nil {
		return nil, nil
	}
	if s.Header != "" && s.fromTrustedProxy(r) {
		return parseHeader(r.Header.Values(s.Header))
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		return r.TLS.PeerCertificates[:min(len(r.TLS.PeerCertificates), MaxChain)], nil
	}
	return nil, nil
}

// MaxChain bounds the certificates of a client's chain that are looked at.
const MaxChain = 8

func (s *Source) fromTrustedProxy(r *http.Request) bool {
	peer, ok := r.Context().Value(peerKey{}).(netip.Addr)
	if !ok {
		peer = parseHost(r.RemoteAddr)
	}
	return peer.IsValid() && s.Proxies.Trusted(peer)
}

func parseHeader(vals []string) ([]*x509.Certificate, error) {
	switch {
	case len(vals) == 0 || (len(vals) == 1 && vals[0] == ""):
		return nil, nil
	case len(vals) > 1:
		return nil, fmt.Errorf("%w: header sent %d times", ErrHeader, len(vals))
	case len(vals[0]) > MaxHeaderPEM:
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrHeader, MaxHeaderPEM)
	}
	raw, err := url.PathUnescape(vals[0])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrHeader, err)
	}
	var chain []*x509.Certificate
	for rest := []byte(raw); len(chain) < MaxChain; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%w: a PEM block of type %q", ErrHeader, blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrHeader, err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("%w: no PEM certificate", ErrHeader)
	}
	return chain, nil
}

// VerifyChain verifies cert against the client CA bundle at time now, for
// client authentication (the extended key usage must allow it, or be
// absent).
func (s *Source) VerifyChain(cert *x509.Certificate, now time.Time) error {
	return s.VerifyChainWith(cert, nil, now)
}

// VerifyChainWith is VerifyChain with intermediate certificates the
// client sent (see [Source.Chain]); they are only candidates for the
// path, never trusted themselves.
func (s *Source) VerifyChainWith(cert *x509.Certificate, intermediates []*x509.Certificate, now time.Time) error {
	if s == nil || s.ClientCAs == nil {
		return errors.New("no client CA is configured")
	}
	if cert == nil {
		return errors.New("no client certificate")
	}
	if s.cache.ok(cert, now) {
		return nil
	}
	chains, err := cert.Verify(x509.VerifyOptions{
		Roots:         s.ClientCAs,
		Intermediates: pathCandidates(intermediates),
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return err
	}
	s.cache.add(cert, chains)
	return nil
}

// MaxIntermediateRSABits bounds the RSA keys of the intermediates a
// client sends, as crypto/tls bounds those of a handshake (8192 bits): a
// forwarded header is held to the same limit.
const MaxIntermediateRSABits = 8192

// pathCandidates is the pool of the intermediates a client sent that path
// building may use: at most one per subject (the first sent), none with an
// RSA key above MaxIntermediateRSABits. A genuine chain names each CA
// once; several certificates of one subject (with different keys) let an
// unauthenticated caller make path building try every order of them, up
// to crypto/x509's 100 signature checks with keys of its choosing, per
// request (review of issue 13). With one candidate per name the search is
// a line, at most one check per certificate.
func pathCandidates(certs []*x509.Certificate) *x509.CertPool {
	var pool *x509.CertPool
	seen := make(map[string]bool, len(certs))
	for _, c := range certs {
		if seen[string(c.RawSubject)] {
			continue
		}
		if k, ok := c.PublicKey.(*rsa.PublicKey); ok && k.N.BitLen() > MaxIntermediateRSABits {
			continue
		}
		seen[string(c.RawSubject)] = true
		if pool == nil {
			pool = x509.NewCertPool()
		}
		pool.AddCert(c)
	}
	return pool
}

// Thumbprint is the x5t#S256 of c (RFC 8705 §3.1): the base64url
// encoding, without padding, of the SHA-256 of its DER encoding.
func Thumbprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// parseHost reads an address from "host:port" or "host".
func parseHost(s string) netip.Addr {
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil || a.Zone() != "" {
		return netip.Addr{}
	}
	return a.Unmap()
}
