package devicetest_test

import (
	"bytes"
	"crypto/x509"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/devicecert"
	"github.com/keybridge/sts/internal/devicecert/devicetest"
)

func TestPKI(t *testing.T) {
	pki := devicetest.New(t)
	oem := pki.SubCA(t, "OEM")
	leaf := pki.Leaf(t, devicetest.Leaf{Role: devicecert.RoleCBSD, FCCID: "ABC123", Serial: "SN-1", Issuer: oem, Key: devicetest.P384})
	if len(leaf.Chain) != 3 || leaf.Chain[1] != oem.Cert || leaf.Chain[2] != pki.CBSDCA.Cert {
		t.Fatalf("chain = %d certificates", len(leaf.Chain))
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pki.RootPEM) {
		t.Fatal("RootPEM holds no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range leaf.Chain[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	cbsd, _ := devicecert.RoleOID(devicecert.RoleCBSD)
	if len(leaf.Cert.Policies) != 1 || leaf.Cert.Policies[0].String() != cbsd.String() {
		t.Errorf("policies = %v, want %v", leaf.Cert.Policies, cbsd)
	}
	var san []byte
	for _, e := range leaf.Cert.Extensions {
		if e.Id.String() == "2.5.29.17" {
			san = e.Value
		}
	}
	if !bytes.Contains(san, []byte("ABC123")) || !bytes.Contains(san, []byte("SN-1")) {
		t.Errorf("SAN %x lacks the identifiers", san)
	}
	if leaf.TLS.Leaf != leaf.Cert || len(leaf.TLS.Certificate) != 3 {
		t.Errorf("TLS certificate is not the chain")
	}

	bad := pki.Leaf(t, devicetest.Leaf{Role: devicecert.RoleCBSD, FCCID: "X", Serial: "Y", CorruptSignature: true})
	if _, err := bad.Cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter}); err == nil {
		t.Error("a corrupted signature verified")
	}

	path := filepath.Join(t.TempDir(), "ca.crl.pem")
	now := time.Now()
	pki.CRL(t, pki.CBSDCA, []*big.Int{leaf.Cert.SerialNumber}, now, now.Add(time.Hour), path)
	data, err := os.ReadFile(path)
	if err != nil || !bytes.HasPrefix(data, []byte("-----BEGIN X509 CRL")) {
		t.Fatalf("CRL file: %v %q", err, data[:min(len(data), 20)])
	}
}
