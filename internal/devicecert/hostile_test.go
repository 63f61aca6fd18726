package devicecert_test

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/devicecert"
	"github.com/keybridge/sts/internal/devicecert/devicetest"
)

// sameSubjectRing is what an attacker sends after a CBSD leaf: n CA
// certificates that all have the subject of the real CBSD CA, each with
// its own key and signed by the next one's, the leaf signed by the
// first's key. Path building over all of them would try every order.
func sameSubjectRing(t testing.TB, pki *devicetest.PKI, n int) []*x509.Certificate {
	t.Helper()
	keys := make([]crypto.Signer, n+1)
	for i := range keys {
		keys[i] = devicetest.NewKey(t, devicetest.P256)
	}
	name := pki.CBSDCA.Cert.Subject
	now := time.Now()
	sign := func(tmpl *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) *x509.Certificate {
		der, err := x509.CreateCertificate(rand.Reader, tmpl, &x509.Certificate{Subject: name, PublicKey: key.Public()}, pub, key)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	leaf := sign(&x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "leaf"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, keys[n].Public(), keys[0])
	chain := []*x509.Certificate{leaf}
	for i := range n {
		chain = append(chain, sign(&x509.Certificate{SerialNumber: big.NewInt(int64(i + 2)), Subject: name, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}, keys[i].Public(), keys[(i+1)%n]))
	}
	return chain
}

// TestHostileChain: a chain of same-subject intermediates with keys of
// the caller's choosing is refused, the real CA's certificate among them
// or not, and costs a few signature checks (see the benchmark).
func TestHostileChain(t *testing.T) {
	pki := devicetest.New(t)
	p := compile(t, pki, nil)
	chain := sameSubjectRing(t, pki, devicecert.MaxChain-1)
	_, err := p.Verify(ctx, chain, devicecert.RoleCBSD, time.Now())
	wantCause(t, err, devicecert.CauseUntrusted)
	// The real CA's certificate sent last is not looked at: one
	// candidate per subject, the first.
	chain = append(chain[:devicecert.MaxChain-1], pki.CBSDCA.Cert)
	_, err = p.Verify(ctx, chain, devicecert.RoleCBSD, time.Now())
	wantCause(t, err, devicecert.CauseUntrusted)
}

// BenchmarkVerifyHostileChain is the cost of refusing TestHostileChain's
// ring: of the order of the valid chain's cold verification.
func BenchmarkVerifyHostileChain(b *testing.B) {
	pki := devicetest.New(b)
	p := compile(b, pki, nil)
	chain := sameSubjectRing(b, pki, devicecert.MaxChain-1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Verify(ctx, chain, devicecert.RoleCBSD, time.Now()); err == nil {
			b.Fatal("the ring verified")
		}
	}
}
