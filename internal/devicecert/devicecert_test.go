package devicecert_test

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/keybridge/sts/internal/clientcert"
	"github.com/keybridge/sts/internal/devicecert"
	"github.com/keybridge/sts/internal/devicecert/devicetest"
	"github.com/keybridge/sts/internal/store"
)

var ctx = context.Background()

// compile compiles a cbrs profile trusting pki's root, changed by mut.
func compile(t testing.TB, pki *devicetest.PKI, mut func(*store.DeviceProfile)) *devicecert.Profile {
	t.Helper()
	sp := &store.DeviceProfile{Name: "cbrs", Kind: store.DeviceKindCBRS, Anchors: pki.RootPEM, EKU: store.EKUClientAuth, Enabled: true}
	if mut != nil {
		mut(sp)
	}
	p, err := devicecert.Compile(sp)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return p
}

func cbsd(fcc, serial string) devicetest.Leaf {
	return devicetest.Leaf{Role: devicecert.RoleCBSD, FCCID: fcc, Serial: serial}
}

// wantCause checks that err is a Refusal with cause.
func wantCause(t *testing.T, err error, cause string) {
	t.Helper()
	r, ok := devicecert.AsRefusal(err)
	switch {
	case cause == "" && err != nil:
		t.Fatalf("refused: %v", err)
	case cause == "":
	case !ok:
		t.Fatalf("err = %v, want a Refusal with cause %q", err, cause)
	case r.Cause != cause:
		t.Fatalf("cause = %q (%s), want %q", r.Cause, r.Msg, cause)
	case r.Msg == "":
		t.Fatalf("refusal %q has no message", cause)
	}
}

func TestVerifyValidChains(t *testing.T) {
	pki := devicetest.New(t)
	oem := pki.SubCA(t, "OEM CA")
	p := compile(t, pki, nil)
	now := time.Now()
	for _, k := range devicetest.KeyTypes {
		for _, withOEM := range []bool{false, true} {
			name := string(k) + "/direct"
			l := cbsd("FCC-"+string(k), "SN-1")
			l.Key = k
			if withOEM {
				name = string(k) + "/oem"
				l.Issuer = oem
			}
			t.Run(name, func(t *testing.T) {
				leaf := pki.Leaf(t, l)
				id, err := p.Verify(ctx, leaf.Chain, devicecert.RoleCBSD, now)
				wantCause(t, err, "")
				want := "cbsd:FCC-" + string(k) + ":SN-1"
				if id.Subject != want || id.FCCID != l.FCCID || id.Serial != "SN-1" || id.Role != devicecert.RoleCBSD || id.Profile != "cbrs" {
					t.Errorf("identity = %+v, want sub %q", id, want)
				}
				if id.Thumbprint != clientcert.Thumbprint(leaf.Cert) || id.Leaf != leaf.Cert || !id.NotAfter.Equal(leaf.Cert.NotAfter) {
					t.Errorf("thumbprint %q, leaf or notAfter wrong", id.Thumbprint)
				}
				if id.SerialNumber != leaf.Cert.SerialNumber.Text(16) || id.Issuer != leaf.Cert.Issuer.String() {
					t.Errorf("serial %q issuer %q", id.SerialNumber, id.Issuer)
				}
				// Again: from the path cache, the same identity.
				id2, err := p.Verify(ctx, leaf.Chain, devicecert.RoleDevice, now)
				wantCause(t, err, "")
				if id2.Subject != want {
					t.Errorf("second verification: sub %q", id2.Subject)
				}
			})
		}
	}
	t.Run("RSA CAs", func(t *testing.T) {
		rsa := devicetest.NewWith(t, devicetest.Options{Name: "RSA", RootKey: devicetest.RSA4096, CAKey: devicetest.RSA2048})
		leaf := rsa.Leaf(t, devicetest.Leaf{Role: devicecert.RoleCBSD, FCCID: "R", Serial: "1", Key: devicetest.P521, Issuer: rsa.SubCAWith(t, devicetest.SubCA{Name: "OEM", Key: devicetest.RSA2048})})
		_, err := compile(t, rsa, nil).Verify(ctx, leaf.Chain, devicecert.RoleCBSD, now)
		wantCause(t, err, "")
	})
	t.Run("domain proxy", func(t *testing.T) {
		leaf := pki.Leaf(t, devicetest.Leaf{Role: devicecert.RoleOperator, FRN: "0012345678", Subject: pkix.Name{CommonName: "dp/east:1"}})
		id, err := p.Verify(ctx, leaf.Chain, devicecert.RoleOperator, now)
		wantCause(t, err, "")
		if id.Subject != "dp:0012345678:dp%2Feast%3A1" || id.FRN != "0012345678" || id.Role != devicecert.RoleOperator {
			t.Errorf("identity = %+v", id)
		}
	})
}

func TestVerifyRefusals(t *testing.T) {
	pki := devicetest.New(t)
	oem := pki.SubCA(t, "OEM CA")
	now := time.Now()
	expiredCA := pki.SubCAWith(t, devicetest.SubCA{Name: "Old OEM", NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour)})
	futureCA := pki.SubCAWith(t, devicetest.SubCA{Name: "Future OEM", NotBefore: now.Add(time.Hour)})
	other := devicetest.NewWith(t, devicetest.Options{Name: "Other"})
	long := strings.Repeat("x", devicecert.MaxIdentifierLen+1)
	fccOther := func(v []byte, tag cbasn1.Tag) []devicetest.OtherName {
		return []devicetest.OtherName{{OID: devicecert.OIDFCCID, Value: v, Tag: tag}}
	}
	serialOther := func(v []byte) []devicetest.OtherName {
		return []devicetest.OtherName{{OID: devicecert.OIDSerial, Value: v}}
	}
	type tc struct {
		name  string
		chain func() []*x509.Certificate
		want  devicecert.Role
		cause string
		mut   func(*store.DeviceProfile)
	}
	leaf := func(l devicetest.Leaf) func() []*x509.Certificate {
		return func() []*x509.Certificate { return pki.Leaf(t, l).Chain }
	}
	with := func(l devicetest.Leaf, f func(*devicetest.Leaf)) devicetest.Leaf { f(&l); return l }
	good := cbsd("ABC123", "SN-1")
	cases := []tc{
		{name: "leaf without its intermediate", cause: devicecert.CauseUntrusted, chain: func() []*x509.Certificate {
			c := pki.Leaf(t, with(good, func(l *devicetest.Leaf) { l.Issuer = oem })).Chain
			return []*x509.Certificate{c[0], c[2]} // OEM CA left out
		}},
		{name: "leaf alone", cause: devicecert.CauseUntrusted, chain: func() []*x509.Certificate {
			return pki.Leaf(t, good).Chain[:1]
		}},
		{name: "expired", cause: devicecert.CauseExpired, chain: leaf(with(good, func(l *devicetest.Leaf) {
			l.NotBefore, l.NotAfter = now.Add(-48*time.Hour), now.Add(-time.Second)
		}))},
		{name: "not yet valid", cause: devicecert.CauseNotYetValid, chain: leaf(with(good, func(l *devicetest.Leaf) {
			l.NotBefore = now.Add(time.Minute)
		}))},
		{name: "expired intermediate", cause: devicecert.CauseExpired, chain: leaf(with(good, func(l *devicetest.Leaf) {
			l.Issuer, l.NotBefore = expiredCA, now.Add(-47*time.Hour)
		}))},
		{name: "intermediate not yet valid", cause: devicecert.CauseNotYetValid, chain: leaf(with(good, func(l *devicetest.Leaf) {
			l.Issuer = futureCA
		}))},
		{name: "DP certificate on the device path", cause: devicecert.CauseRole, chain: leaf(devicetest.Leaf{Role: devicecert.RoleOperator, FRN: "0012345678", Subject: pkix.Name{CommonName: "dp1"}})},
		{name: "CBSD certificate on the proxy path", cause: devicecert.CauseRole, want: devicecert.RoleOperator, chain: leaf(good)},
		{name: "SAS server certificate, device path", cause: devicecert.CauseRole, chain: leaf(devicetest.Leaf{Role: devicecert.RoleSAS, EKU: devicetest.EKUServerAuth, DNS: []string{"sas.example"}, FCCID: "ABC123", Serial: "SN-1"}),
			mut: func(p *store.DeviceProfile) { p.EKU = store.EKUAny }},
		{name: "SAS server certificate, proxy path", cause: devicecert.CauseRole, want: devicecert.RoleOperator, chain: leaf(devicetest.Leaf{Role: devicecert.RoleSAS, EKU: devicetest.EKUServerAuth, DNS: []string{"sas.example"}, FRN: "1"}),
			mut: func(p *store.DeviceProfile) { p.EKU = store.EKUAny }},
		{name: "SAS role asked for", cause: devicecert.CauseRole, want: devicecert.RoleSAS, chain: leaf(devicetest.Leaf{Role: devicecert.RoleSAS})},
		{name: "installer certificate", cause: devicecert.CauseRole, chain: leaf(with(good, func(l *devicetest.Leaf) { l.Role = devicecert.RoleInstaller }))},
		{name: "no role", cause: devicecert.CauseRole, chain: leaf(with(good, func(l *devicetest.Leaf) { l.Role = "" }))},
		{name: "two roles", cause: devicecert.CauseRole, chain: leaf(with(good, func(l *devicetest.Leaf) { l.Roles = []devicecert.Role{devicecert.RoleOperator} }))},
		{name: "CA certificate as a leaf", cause: devicecert.CauseRole, chain: func() []*x509.Certificate { return []*x509.Certificate{oem.Cert, pki.CBSDCA.Cert} }},
		{name: "missing FCC ID", cause: devicecert.CauseIdentity, chain: leaf(cbsd("", "SN-1"))},
		{name: "missing serial", cause: devicecert.CauseIdentity, chain: leaf(cbsd("ABC123", ""))},
		{name: "no SubjectAltName", cause: devicecert.CauseIdentity, chain: leaf(cbsd("", ""))},
		{name: "duplicated FCC ID", cause: devicecert.CauseIdentity, chain: leaf(with(good, func(l *devicetest.Leaf) { l.OtherNames = fccOther([]byte("XYZ999"), 0) }))},
		{name: "duplicated FCC ID, same value", cause: devicecert.CauseIdentity, chain: leaf(with(good, func(l *devicetest.Leaf) { l.OtherNames = fccOther([]byte("ABC123"), 0) }))},
		{name: "duplicated serial", cause: devicecert.CauseIdentity, chain: leaf(with(good, func(l *devicetest.Leaf) { l.OtherNames = serialOther([]byte("SN-2")) }))},
		{name: "non-UTF-8 FCC ID", cause: devicecert.CauseIdentity, chain: leaf(with(cbsd("", "SN-1"), func(l *devicetest.Leaf) { l.OtherNames = fccOther([]byte("AB\xff"), 0) }))},
		{name: "non-UTF-8 serial", cause: devicecert.CauseIdentity, chain: leaf(with(cbsd("ABC123", ""), func(l *devicetest.Leaf) { l.OtherNames = serialOther([]byte("\xc3\x28")) }))},
		{name: "oversized FCC ID", cause: devicecert.CauseIdentity, chain: leaf(cbsd(long, "SN-1"))},
		{name: "oversized serial", cause: devicecert.CauseIdentity, chain: leaf(cbsd("ABC123", long))},
		{name: "FCC ID not a UTF8String", cause: devicecert.CauseIdentity, chain: leaf(with(cbsd("", "SN-1"), func(l *devicetest.Leaf) { l.OtherNames = fccOther([]byte("ABC123"), cbasn1.Tag(19)) }))},
		{name: "control character in serial", cause: devicecert.CauseIdentity, chain: leaf(cbsd("ABC123", "SN\n1"))},
		{name: "bidi override in serial", cause: devicecert.CauseIdentity, chain: leaf(cbsd("ABC123", "SN\u202e1"))},
		{name: "empty serial", cause: devicecert.CauseIdentity, chain: leaf(with(cbsd("ABC123", ""), func(l *devicetest.Leaf) { l.OtherNames = serialOther([]byte{}) }))},
		{name: "malformed otherName", cause: devicecert.CauseIdentity, chain: leaf(with(good, func(l *devicetest.Leaf) {
			l.SAN = []byte{0x30, 0x06, 0xa0, 0x04, 0x06, 0x02, 0x2a, 0x03} // otherName without its value
		}))},
		{name: "DP without FRN", cause: devicecert.CauseIdentity, want: devicecert.RoleOperator, chain: leaf(devicetest.Leaf{Role: devicecert.RoleOperator, Subject: pkix.Name{CommonName: "dp1"}})},
		{name: "DP without CN", cause: devicecert.CauseIdentity, want: devicecert.RoleOperator, chain: leaf(devicetest.Leaf{Role: devicecert.RoleOperator, FRN: "1", Subject: pkix.Name{Organization: []string{"Op"}}})},
		{name: "DP with two CNs", cause: devicecert.CauseIdentity, want: devicecert.RoleOperator, chain: leaf(devicetest.Leaf{Role: devicecert.RoleOperator, FRN: "1", Subject: twoCNs("dp1", "dp2")})},
		{name: "untrusted root", cause: devicecert.CauseUntrusted, chain: func() []*x509.Certificate { return other.Leaf(t, good).Chain }},
		{name: "untrusted root presented", cause: devicecert.CauseUntrusted, chain: func() []*x509.Certificate {
			return append(other.Leaf(t, good).Chain, other.Root.Cert)
		}},
		{name: "self-signed", cause: devicecert.CauseUntrusted, chain: leaf(with(good, func(l *devicetest.Leaf) { l.SelfSigned = true }))},
		{name: "corrupted signature", cause: devicecert.CauseSignature, chain: leaf(with(good, func(l *devicetest.Leaf) { l.CorruptSignature = true }))},
		{name: "corrupted signature under the OEM CA", cause: devicecert.CauseSignature, chain: leaf(with(good, func(l *devicetest.Leaf) { l.CorruptSignature, l.Issuer = true, oem }))},
		{name: "FCC ID not in the allow-list", cause: devicecert.CauseNotAllowed, chain: leaf(good),
			mut: func(p *store.DeviceProfile) { p.FCCIDs = []string{"OTHER1", "OTHER2"} }},
		{name: "FCC ID in the allow-list", chain: leaf(good),
			mut: func(p *store.DeviceProfile) { p.FCCIDs = []string{"OTHER1", "ABC123"} }},
		{name: "too many certificates", cause: devicecert.CauseMalformed, chain: func() []*x509.Certificate {
			c := pki.Leaf(t, good).Chain
			for len(c) <= devicecert.MaxChain {
				c = append(c, pki.CBSDCA.Cert)
			}
			return c
		}},
		{name: "empty chain", cause: devicecert.CauseMalformed, chain: func() []*x509.Certificate { return nil }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := c.want
			if want == "" {
				want = devicecert.RoleCBSD
			}
			p := compile(t, pki, c.mut)
			id, err := p.Verify(ctx, c.chain(), want, now)
			wantCause(t, err, c.cause)
			if c.cause != "" && id != nil {
				t.Errorf("refused with an identity %+v", id)
			}
		})
	}
}

func TestEscapeNoCollision(t *testing.T) {
	for in, want := range map[string]string{
		"ABC123": "ABC123", "A:B": "A%3AB", "a/b": "a%2Fb", "50%": "50%25",
		"sp ace": "sp%20ace", "é": "%C3%A9", "\x00": "%00", "~": "~",
	} {
		if got := devicecert.Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
	// Through certificates: ':' and '/' inside a serial give distinct subs.
	pki := devicetest.New(t)
	p := compile(t, pki, nil)
	pairs := [][2]string{{"A:B", "C"}, {"A", "B:C"}, {"A/B", "C"}, {"A", "B/C"}, {"A%3AB", "C"}, {"A", "B%3AC"}}
	seen := map[string][2]string{}
	for _, pr := range pairs {
		id, err := p.Verify(ctx, pki.Leaf(t, cbsd(pr[0], pr[1])).Chain, devicecert.RoleCBSD, time.Now())
		wantCause(t, err, "")
		if id.FCCID != pr[0] || id.Serial != pr[1] {
			t.Errorf("identity %q %q, want %q", id.FCCID, id.Serial, pr)
		}
		if prev, dup := seen[id.Subject]; dup {
			t.Errorf("%q and %q both give sub %q", prev, pr, id.Subject)
		}
		seen[id.Subject] = pr
		if strings.Count(id.Subject, ":") != 2 {
			t.Errorf("sub %q has not exactly two colons", id.Subject)
		}
	}
}

func TestEKUPolicies(t *testing.T) {
	pki := devicetest.New(t)
	variants := []struct {
		name string
		eku  devicetest.EKU
	}{{"clientAuth", devicetest.EKUClientAuth}, {"serverAuth only", devicetest.EKUServerAuth}, {"none", devicetest.EKUNone}, {"both", devicetest.EKUBoth}, {"anyExtendedKeyUsage", devicetest.EKUAnyUsage}}
	// want[policy][variant] = refused?
	refused := map[string][]bool{
		store.EKUClientAuth: {false, true, true, false, false},
		store.EKUAny:        {false, false, false, false, false},
		store.EKUNone:       {false, false, false, false, false},
		"":                  {false, true, true, false, false}, // the default is clientAuth
	}
	for policy, ref := range refused {
		p := compile(t, pki, func(p *store.DeviceProfile) { p.EKU = policy })
		for i, v := range variants {
			t.Run(policy+"/"+v.name, func(t *testing.T) {
				l := cbsd("ABC123", "SN-1")
				l.EKU = v.eku
				_, err := p.Verify(ctx, pki.Leaf(t, l).Chain, devicecert.RoleCBSD, time.Now())
				cause := ""
				if ref[i] {
					cause = devicecert.CauseEKU
				}
				wantCause(t, err, cause)
			})
		}
	}
}

func TestCRL(t *testing.T) {
	pki := devicetest.New(t)
	oem := pki.SubCA(t, "OEM CA")
	now := time.Now()
	dir := t.TempDir()
	leafCRL := filepath.Join(dir, "cbsd-ca.crl")  // DER
	oemCRL := filepath.Join(dir, "oem.crl.pem")   // PEM
	rootCRL := filepath.Join(dir, "root.crl.pem") // PEM
	direct := pki.Leaf(t, cbsd("ABC123", "SN-1")) // under the CBSD CA
	viaOEM := pki.Leaf(t, devicetest.Leaf{Role: devicecert.RoleCBSD, FCCID: "ABC123", Serial: "SN-2", Issuer: oem})
	fresh := func(path string, issuer *devicetest.CA, revoked ...*big.Int) {
		pki.CRL(t, issuer, revoked, now.Add(-time.Hour), now.Add(24*time.Hour), path)
	}
	fresh(leafCRL, pki.CBSDCA)
	fresh(oemCRL, oem)
	fresh(rootCRL, pki.Root)
	p := compile(t, pki, func(p *store.DeviceProfile) { p.CRLFiles = []string{leafCRL, oemCRL, rootCRL} })
	check := func(t *testing.T, l *devicetest.Issued, at time.Time, cause string) {
		t.Helper()
		_, err := p.Verify(ctx, l.Chain, devicecert.RoleCBSD, at)
		wantCause(t, err, cause)
	}
	// CRL files are looked at once a second of the real clock, not of
	// the request's time: each step moves the wall clock a second on and
	// keeps the request's time.
	wall := now
	devicecert.SetWallClock(p, func() time.Time { return wall })
	step := func() time.Time { wall = wall.Add(1100 * time.Millisecond); return now }

	t.Run("not revoked", func(t *testing.T) {
		check(t, direct, step(), "")
		check(t, viaOEM, now, "")
	})
	t.Run("revoked leaf, CRL file replaced on disk", func(t *testing.T) {
		fresh(leafCRL, pki.CBSDCA, big.NewInt(7), direct.Cert.SerialNumber)
		check(t, direct, now, "") // within the second: not looked at yet
		check(t, direct, step(), devicecert.CauseRevoked)
		check(t, viaOEM, now, "")
		fresh(leafCRL, pki.CBSDCA)
		check(t, direct, step(), "")
	})
	t.Run("revoked leaf under the OEM CA (PEM CRL)", func(t *testing.T) {
		fresh(oemCRL, oem, viaOEM.Cert.SerialNumber)
		check(t, viaOEM, step(), devicecert.CauseRevoked)
		check(t, direct, now, "")
		fresh(oemCRL, oem)
		check(t, viaOEM, step(), "")
	})
	t.Run("revoked intermediate", func(t *testing.T) {
		fresh(leafCRL, pki.CBSDCA, oem.Cert.SerialNumber)
		check(t, viaOEM, step(), devicecert.CauseRevoked)
		check(t, direct, now, "")
		fresh(leafCRL, pki.CBSDCA)
		fresh(rootCRL, pki.Root, pki.CBSDCA.Cert.SerialNumber)
		check(t, direct, step(), devicecert.CauseRevoked)
		check(t, viaOEM, now, devicecert.CauseRevoked)
		fresh(rootCRL, pki.Root)
		check(t, direct, step(), "")
	})
	t.Run("stale CRL", func(t *testing.T) {
		pki.CRL(t, oem, nil, now.Add(-48*time.Hour), now.Add(-time.Hour), oemCRL)
		check(t, viaOEM, step(), devicecert.CauseCRLStale)
		check(t, direct, now, "") // another CA's certificates are not affected
		fresh(oemCRL, oem)
		check(t, viaOEM, step(), "")
		// A CRL goes stale with time, too.
		check(t, direct, now.Add(25*time.Hour), devicecert.CauseCRLStale)
	})
	t.Run("reload failure keeps the previous CRL", func(t *testing.T) {
		fresh(leafCRL, pki.CBSDCA, direct.Cert.SerialNumber)
		check(t, direct, step(), devicecert.CauseRevoked)
		if err := os.WriteFile(leafCRL, []byte("not a CRL"), 0o644); err != nil {
			t.Fatal(err)
		}
		check(t, direct, step(), devicecert.CauseRevoked)
		_, _, reloadErr, err := p.CRLStatus(leafCRL)
		if err != nil || reloadErr == nil {
			t.Errorf("CRLStatus: reload error %v, %v; want the parse failure", reloadErr, err)
		}
		if err := os.Remove(leafCRL); err != nil {
			t.Fatal(err)
		}
		check(t, direct, step(), devicecert.CauseRevoked)
		fresh(leafCRL, pki.CBSDCA)
		check(t, direct, step(), "")
	})
	t.Run("a CRL of another CA does not replace the file's", func(t *testing.T) {
		fresh(leafCRL, pki.CBSDCA, direct.Cert.SerialNumber)
		check(t, direct, step(), devicecert.CauseRevoked)
		fresh(leafCRL, oem)
		check(t, direct, step(), devicecert.CauseRevoked)
		if _, _, reloadErr, _ := p.CRLStatus(leafCRL); reloadErr == nil || !strings.Contains(reloadErr.Error(), "issuer") {
			t.Errorf("reload error %v, want the issuer change", reloadErr)
		}
		fresh(leafCRL, pki.CBSDCA)
		check(t, direct, step(), "")
	})
	t.Run("a re-keyed CA's CRL of the same name is not this one's", func(t *testing.T) {
		twin := devicetest.New(t) // same names, other keys
		other := filepath.Join(dir, "twin.crl")
		twin.CRL(t, twin.CBSDCA, []*big.Int{direct.Cert.SerialNumber}, now.Add(-time.Hour), now.Add(time.Hour), other)
		p2 := compile(t, pki, func(p *store.DeviceProfile) { p.CRLFiles = []string{other} })
		_, err := p2.Verify(ctx, direct.Chain, devicecert.RoleCBSD, now)
		wantCause(t, err, "")
	})
}

func TestCompileErrors(t *testing.T) {
	pki := devicetest.New(t)
	leaf := pki.Leaf(t, cbsd("A", "B"))
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.crl")
	if err := os.WriteFile(garbage, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := devicecert.Compile(&store.DeviceProfile{
		Name:     "bad",
		Kind:     "cbrs",
		Anchors:  append(leaf.PEM(), []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")...),
		Identity: "cert.subject.cn",
		EKU:      "server",
		CRLFiles: []string{filepath.Join(dir, "missing.crl"), garbage},
		OCSPURL:  "ftp://ocsp",
		FCCIDs:   []string{"ok", "bad\x00"},
	})
	if err == nil {
		t.Fatal("Compile accepted a bad profile")
	}
	for _, want := range []string{`device profile "bad"`, "identity", `eku: "server"`, "not a CA certificate", `"PRIVATE KEY"`, "missing.crl", "garbage.crl", "ocsp url", "fcc ids"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	fields := map[string]int{}
	for _, ce := range devicecert.CompileErrors(err) {
		if ce.Profile != "bad" || ce.Msg == "" {
			t.Errorf("problem %+v", ce)
		}
		fields[ce.Field]++
	}
	for _, f := range []string{"identity", "eku", "anchors", "crl", "ocsp url", "fcc ids"} {
		if fields[f] == 0 {
			t.Errorf("no problem for field %q in %v", f, fields)
		}
	}
	if fields["crl"] != 2 || fields["anchors"] != 2 {
		t.Errorf("problems by field %v: want two of crl and of anchors", fields)
	}
	if _, err := devicecert.Compile(&store.DeviceProfile{Name: "n", Kind: "cbrs", Anchors: leaf.PEM()[:len(leaf.PEM())/2]}); err == nil || !strings.Contains(err.Error(), "no CA certificate") {
		t.Errorf("anchors without a CA: %v", err)
	}
	if _, err := devicecert.Compile(&store.DeviceProfile{Name: "k", Kind: "tpm", Anchors: pki.RootPEM}); err == nil || !strings.Contains(err.Error(), `kind: "tpm"`) {
		t.Errorf("unknown kind: %v", err)
	}
	if _, err := devicecert.Compile(&store.DeviceProfile{Name: "x", Kind: "x509", Anchors: pki.RootPEM}); err == nil || !strings.Contains(err.Error(), "needs an identity expression") {
		t.Errorf("x509 without identity: %v", err)
	}
	if _, err := devicecert.Compile(&store.DeviceProfile{Name: "x", Kind: "x509", Anchors: pki.RootPEM, Identity: "cert.subject.cn", FCCIDs: []string{"A"}}); err == nil || !strings.Contains(err.Error(), "allow-list") {
		t.Errorf("x509 with an allow-list: %v", err)
	}
}

func TestX509Profile(t *testing.T) {
	pki := devicetest.New(t)
	u, _ := url.Parse("urn:dev:radio-7")
	leaf := pki.Leaf(t, devicetest.Leaf{
		Subject: pkix.Name{CommonName: "radio-7", Organization: []string{"Acme"}, SerialNumber: "R7"},
		DNS:     []string{"radio-7.acme.example"},
		URIs:    []*url.URL{u},
	})
	x509p := func(expr string) (*devicecert.Profile, error) {
		return devicecert.Compile(&store.DeviceProfile{Name: "generic", Kind: store.DeviceKindX509, Anchors: pki.RootPEM, Identity: expr, EKU: store.EKUAny})
	}
	now := time.Now()
	for _, c := range []struct{ expr, want string }{
		{"cert.subject.cn", "radio-7"},
		{`cert.subject.o[0] + "/" + cert.subject.serialNumber`, "Acme/R7"},
		{`cert.uri.filter(u, u.startsWith("urn:dev:"))[0]`, "urn:dev:radio-7"},
		{`cert.dns[0]`, "radio-7.acme.example"},
		{`"fp:" + cert.fingerprint`, "fp:" + fingerprintHex(leaf.Cert)},
		{`"sn:" + cert.serial`, "sn:" + leaf.Cert.SerialNumber.Text(16)},
		{`cert.issuer.cn`, pki.CBSDCA.Cert.Subject.CommonName},
		{"cert.subject.dn", leaf.Cert.Subject.String()},
	} {
		t.Run(c.expr, func(t *testing.T) {
			p, err := x509p(c.expr)
			if err != nil {
				t.Fatal(err)
			}
			id, err := p.Verify(ctx, leaf.Chain, devicecert.RoleDevice, now)
			wantCause(t, err, "")
			if id.Subject != c.want || id.Role != devicecert.RoleDevice || id.FCCID != "" {
				t.Errorf("sub = %q role %q, want %q", id.Subject, id.Role, c.want)
			}
		})
	}
	t.Run("refused at run time", func(t *testing.T) {
		for _, expr := range []string{`cert.email[0]`, `cert.subject.ou.size() > 0 ? "x" : ""`, `cert.subject.c.size() == 0 ? "bad\n" : "x"`,
			`lists.range(5000).map(i, string(i)).join("")`, // the cost limit
			`lists.range(300).map(i, "x").join("")`,        // longer than MaxSubjectLen
		} {
			p, err := x509p(expr)
			if err != nil {
				t.Fatal(err)
			}
			_, err = p.Verify(ctx, leaf.Chain, devicecert.RoleDevice, now)
			wantCause(t, err, devicecert.CauseIdentity)
		}
	})
	t.Run("a CBSD's sub is not an x509 identity", func(t *testing.T) {
		p, _ := x509p("cert.subject.cn")
		for _, cn := range []string{"cbsd:ABC123:SN-1", "dp:0012345678:dp1", "CBSD:ABC123:SN-1", "Dp:0012345678:dp1", " cbsd:ABC123:SN-1"} {
			l := pki.Leaf(t, devicetest.Leaf{Subject: pkix.Name{CommonName: cn}})
			_, err := p.Verify(ctx, l.Chain, devicecert.RoleDevice, now)
			wantCause(t, err, devicecert.CauseIdentity)
		}
	})
	t.Run("two common names", func(t *testing.T) {
		p, _ := x509p("cert.subject.cn")
		two := pki.Leaf(t, devicetest.Leaf{Subject: twoCNs("victim", "attacker")})
		_, err := p.Verify(ctx, two.Chain, devicecert.RoleDevice, now)
		wantCause(t, err, devicecert.CauseIdentity)
		p, _ = x509p("cert.subject.dn")
		id, err := p.Verify(ctx, two.Chain, devicecert.RoleDevice, now)
		wantCause(t, err, "")
		if !strings.Contains(id.Subject, "victim") || !strings.Contains(id.Subject, "attacker") {
			t.Errorf("dn %q lacks a common name", id.Subject)
		}
	})
	t.Run("not a domain proxy", func(t *testing.T) {
		p, _ := x509p("cert.subject.cn")
		_, err := p.Verify(ctx, leaf.Chain, devicecert.RoleOperator, now)
		wantCause(t, err, devicecert.CauseRole)
	})
	t.Run("refused at compile", func(t *testing.T) {
		for expr, want := range map[string]string{
			"cert.subject.cn +":            "1:18:",
			"cert.subjct.cn":               "1:5: undefined field 'subjct'",
			"1":                            "1:1: its type is int",
			"cert.dns":                     "its type is list(string)",
			"\n  cert.notBefore":           "2:7: its type is timestamp",
			"size(cert.dns) > 0":           "its type is bool",
			"  ":                           "needs an identity expression",
			`cert.subject.cn.matches("[")`: "1:",
		} {
			_, err := x509p(expr)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Compile(%q) = %v, want %q", expr, err, want)
			}
		}
	})
}

// twoCNs is a subject with two common names: pkix.Name would keep the
// last only.
func twoCNs(a, b string) pkix.Name {
	cn := asn1.ObjectIdentifier{2, 5, 4, 3}
	return pkix.Name{ExtraNames: []pkix.AttributeTypeAndValue{{Type: cn, Value: a}, {Type: cn, Value: b}}}
}

func fingerprintHex(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

func TestTrust(t *testing.T) {
	a := devicetest.NewWith(t, devicetest.Options{Name: "A"})
	b := devicetest.NewWith(t, devicetest.Options{Name: "B"})
	c := devicetest.NewWith(t, devicetest.Options{Name: "C"})
	pa := compile(t, a, func(p *store.DeviceProfile) { p.Name = "a" })
	pb := compile(t, b, func(p *store.DeviceProfile) { p.Name = "b" })
	pbx, err := devicecert.Compile(&store.DeviceProfile{Name: "b-x509", Kind: store.DeviceKindX509, Anchors: b.RootPEM, Identity: "cert.subject.cn", EKU: store.EKUAny})
	if err != nil {
		t.Fatal(err)
	}
	trust := &devicecert.Trust{Profiles: []*devicecert.Profile{pa, pb}}
	now := time.Now()

	id, p, err := trust.Verify(ctx, b.Leaf(t, cbsd("B1", "1")).Chain, devicecert.RoleCBSD, now)
	wantCause(t, err, "")
	if p != pb || id.Profile != "b" || id.Subject != "cbsd:B1:1" {
		t.Errorf("profile %v, identity %+v", p, id)
	}
	_, _, err = trust.Verify(ctx, c.Leaf(t, cbsd("C1", "1")).Chain, devicecert.RoleCBSD, now)
	wantCause(t, err, devicecert.CauseUntrusted)

	// A cbrs leaf without identifiers: refused by the cbrs profile
	// (identity), named by the x509 one trusting the same root.
	noIDs := b.Leaf(t, devicetest.Leaf{Role: devicecert.RoleCBSD, Subject: pkix.Name{CommonName: "bare"}})
	_, p, err = trust.Verify(ctx, noIDs.Chain, devicecert.RoleCBSD, now)
	wantCause(t, err, devicecert.CauseIdentity)
	if p != pb {
		t.Errorf("refusal from %v, want profile b", p)
	}
	trust.Profiles = append(trust.Profiles, pbx)
	id, p, err = trust.Verify(ctx, noIDs.Chain, devicecert.RoleCBSD, now)
	wantCause(t, err, "")
	if p != pbx || id.Subject != "bare" {
		t.Errorf("profile %v, identity %+v", p, id)
	}
	// The furthest refusal wins: an expired leaf (path) against a role
	// refusal is reported as the role.
	trust = &devicecert.Trust{Profiles: []*devicecert.Profile{pa, pb}}
	dp := b.Leaf(t, devicetest.Leaf{Role: devicecert.RoleOperator, FRN: "1", Subject: pkix.Name{CommonName: "dp"}})
	_, _, err = trust.Verify(ctx, dp.Chain, devicecert.RoleCBSD, now)
	wantCause(t, err, devicecert.CauseRole)
}

func TestParseChain(t *testing.T) {
	pki := devicetest.New(t)
	leaf := pki.Leaf(t, devicetest.Leaf{Role: devicecert.RoleCBSD, FCCID: "A", Serial: "1", Issuer: pki.SubCA(t, "OEM")})
	var der []byte
	for _, d := range leaf.DER() {
		der = append(der, d...)
	}
	chain, err := devicecert.ParseChain(der)
	if err != nil || len(chain) != 3 || !chain[0].Equal(leaf.Cert) {
		t.Fatalf("ParseChain: %d certificates, %v", len(chain), err)
	}
	long := der
	for len(long) < len(der)*(devicecert.MaxChain/3+1) {
		long = append(long, der...)
	}
	for name, in := range map[string][]byte{
		"empty":     nil,
		"truncated": der[:len(der)-1],
		"too many":  long,
		"too long":  make([]byte, devicecert.MaxChainDER+1),
		"PEM":       leaf.PEM(),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := devicecert.ParseChain(in)
			wantCause(t, err, devicecert.CauseMalformed)
		})
	}
}
