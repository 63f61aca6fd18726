package devicecert_test

import (
	"math/big"
	"path/filepath"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/devicecert"
	"github.com/keybridge/sts/internal/devicecert/devicetest"
	"github.com/keybridge/sts/internal/store"
)

// BenchmarkVerify verifies a P-256 chain (leaf, OEM CA, CBSD CA) with a
// CRL configured: "cached" as a reconnecting device is (the path comes
// from the profile's cache; revocation, role and identity are checked
// again), "cold" building and checking the path every time.
func BenchmarkVerify(b *testing.B) {
	pki := devicetest.New(b)
	oem := pki.SubCA(b, "OEM CA")
	leaf := pki.Leaf(b, devicetest.Leaf{Role: devicecert.RoleCBSD, FCCID: "ABC123", Serial: "SN-1", Issuer: oem})
	now := time.Now()
	crl := filepath.Join(b.TempDir(), "oem.crl")
	pki.CRL(b, oem, []*big.Int{big.NewInt(42)}, now.Add(-time.Hour), now.Add(time.Hour), crl)
	for _, cold := range []bool{false, true} {
		name := "cached"
		if cold {
			name = "cold"
		}
		b.Run(name, func(b *testing.B) {
			p := compile(b, pki, func(p *store.DeviceProfile) { p.CRLFiles = []string{crl} })
			if cold {
				devicecert.DisablePathCache(p)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.Verify(ctx, leaf.Chain, devicecert.RoleCBSD, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
