package clientcert

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"
)

// sameSubjectRing is what an attacker sends after a leaf: n CA
// certificates that all have the subject "X", each with its own key and
// signed by the next one's, and a leaf signed by the first's key.
func sameSubjectRing(t testing.TB, n int, newKey func() crypto.Signer) (leaf *x509.Certificate, ring []*x509.Certificate) {
	t.Helper()
	keys := make([]crypto.Signer, n)
	for i := range keys {
		keys[i] = newKey()
	}
	name := pkix.Name{CommonName: "X"}
	now := time.Now()
	for i := range n {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 2)), Subject: name, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
		parent := &x509.Certificate{Subject: name, PublicKey: keys[(i+1)%n].Public()}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, keys[i].Public(), keys[(i+1)%n])
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		ring = append(ring, c)
	}
	lk := newKey()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "leaf"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, &x509.Certificate{Subject: name, PublicKey: keys[0].Public()}, lk.Public(), keys[0])
	if err != nil {
		t.Fatal(err)
	}
	if leaf, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	return leaf, ring
}

func p256() crypto.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

// TestPathCandidatesOnePerSubject: of several intermediates with one
// subject only the first is offered to path building.
func TestPathCandidatesOnePerSubject(t *testing.T) {
	_, ring := sameSubjectRing(t, 7, p256)
	want := x509.NewCertPool()
	want.AddCert(ring[0])
	if got := pathCandidates(ring); !got.Equal(want) {
		t.Error("the pool is not the first of the same-subject intermediates alone")
	}
	if pathCandidates(nil) != nil {
		t.Error("no intermediates: want a nil pool")
	}
}

// BenchmarkVerifyChainSameSubjectRing is the cost of refusing an
// unauthenticated caller's chain of seven same-subject intermediates
// (RSA-4096, each signed by the next): with one candidate per subject, a
// couple of signature checks, not crypto/x509's hundred (review of issue
// 13; about 15 ms per request before).
func BenchmarkVerifyChainSameSubjectRing(b *testing.B) {
	rootKey := p256()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "root"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, rootKey.Public(), rootKey)
	if err != nil {
		b.Fatal(err)
	}
	root, _ := x509.ParseCertificate(der)
	roots := x509.NewCertPool()
	roots.AddCert(root)
	s := &Source{ClientCAs: roots}
	leaf, ring := sameSubjectRing(b, 7, func() crypto.Signer {
		k, err := rsa.GenerateKey(rand.Reader, 4096)
		if err != nil {
			b.Fatal(err)
		}
		return k
	})
	b.ReportAllocs()
	for b.Loop() {
		if s.VerifyChainWith(leaf, ring, time.Now()) == nil {
			b.Fatal("the ring verified")
		}
	}
}
