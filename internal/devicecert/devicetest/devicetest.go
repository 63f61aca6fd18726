// Package devicetest builds a WInnForum CBRS PKI inside a test, with
// crypto/x509: a root, a CBSD CA (pathlen 1) under it, optional OEM
// sub-CAs, and leaves carrying a CBRS role (certificatePolicies) and
// identifiers (SubjectAltName otherName values), well formed or crafted
// to be wrong; CRLs; and tls.Certificate values for real TLS clients.
//
//	pki := devicetest.New(t)
//	oem := pki.SubCA(t, "OEM")
//	leaf := pki.Leaf(t, devicetest.Leaf{Role: devicecert.RoleCBSD,
//		FCCID: "ABC123", Serial: "SN-1", Issuer: oem, Key: devicetest.P256})
//	// leaf.Cert, leaf.Key, leaf.Chain, leaf.TLS; pki.RootPEM
package devicetest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/keybridge/sts/internal/devicecert"
)

// KeyType is a key algorithm and size.
type KeyType string

// Key types of real CBRS certificates. The zero KeyType is P256.
const (
	P256    KeyType = "P-256"
	P384    KeyType = "P-384"
	P521    KeyType = "P-521"
	RSA2048 KeyType = "RSA-2048"
	RSA4096 KeyType = "RSA-4096"
)

// KeyTypes lists every KeyType.
var KeyTypes = []KeyType{P256, P384, P521, RSA2048, RSA4096}

// EKU is the extended key usage of a leaf.
type EKU int

// EKU variants. The zero EKU is clientAuth.
const (
	EKUClientAuth EKU = iota
	EKUServerAuth     // serverAuth only
	EKUNone           // no extension
	EKUBoth           // clientAuth and serverAuth
	EKUAnyUsage       // anyExtendedKeyUsage
)

// rsaKeys caches RSA keys by size: generating a 4096-bit key takes
// seconds on a slow machine, and tests need not have a fresh one each.
var rsaKeys sync.Map // int -> *rsa.PrivateKey

// NewKey returns a key of type k (RSA keys are shared within the test
// binary; ECDSA keys are fresh).
func NewKey(t testing.TB, k KeyType) crypto.Signer {
	t.Helper()
	var curve elliptic.Curve
	switch k {
	case "", P256:
		curve = elliptic.P256()
	case P384:
		curve = elliptic.P384()
	case P521:
		curve = elliptic.P521()
	case RSA2048, RSA4096:
		bits := 2048
		if k == RSA4096 {
			bits = 4096
		}
		if v, ok := rsaKeys.Load(bits); ok {
			return v.(*rsa.PrivateKey)
		}
		key, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			t.Fatal(err)
		}
		v, _ := rsaKeys.LoadOrStore(bits, key)
		return v.(*rsa.PrivateKey)
	default:
		t.Fatalf("devicetest: unknown key type %q", k)
	}
	key, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// CA is a certificate authority of the test PKI.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// Parent is the CA that issued this one (nil for the root).
	Parent *CA
}

// chain is ca and its issuers up to, not including, the root.
func (ca *CA) chain() []*x509.Certificate {
	var out []*x509.Certificate
	for c := ca; c != nil && c.Parent != nil; c = c.Parent {
		out = append(out, c.Cert)
	}
	return out
}

// PEM is the CA certificate as PEM.
func (ca *CA) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// PKI is a CBRS PKI: Root issues CBSDCA (pathlen 1), which issues the
// leaves and OEM sub-CAs.
type PKI struct {
	Root   *CA
	CBSDCA *CA
	// RootPEM is the root certificate as PEM: a profile's anchors.
	RootPEM []byte

	mu     sync.Mutex
	crlNum int64
}

// Options choose the keys and names of New's CAs.
type Options struct {
	// Name prefixes the CAs' common names ("Test" by default).
	Name string
	// RootKey and CAKey are the key types of the root and the CBSD CA
	// (P-256 by default).
	RootKey, CAKey KeyType
}

// New returns a fresh PKI with a P-256 root and CBSD CA.
func New(t testing.TB) *PKI { return NewWith(t, Options{}) }

// NewWith is New with chosen names and key types.
func NewWith(t testing.TB, o Options) *PKI {
	t.Helper()
	if o.Name == "" {
		o.Name = "Test"
	}
	now := time.Now()
	rootKey := NewKey(t, o.RootKey)
	tmpl := caTemplate(o.Name+" CBRS Root CA", now.Add(-24*time.Hour), now.Add(10*365*24*time.Hour), 2)
	root := &CA{Key: rootKey}
	root.Cert = create(t, tmpl, tmpl, rootKey.Public(), rootKey)
	p := &PKI{Root: root, RootPEM: root.PEM()}
	p.CBSDCA = p.SubCAWith(t, SubCA{Name: o.Name + " CBSD CA", Parent: root, Key: o.CAKey, PathLen: 1})
	return p
}

// SubCA describes a CA issued under the PKI.
type SubCA struct {
	Name string
	// Parent issues it (the CBSD CA by default).
	Parent *CA
	Key    KeyType
	// PathLen is its basicConstraints pathLenConstraint (0 by default).
	PathLen int
	// NotBefore and NotAfter default to a day ago and ten years on.
	NotBefore, NotAfter time.Time
}

// SubCA returns an OEM CA named name under the CBSD CA (pathlen 0).
func (p *PKI) SubCA(t testing.TB, name string) *CA {
	return p.SubCAWith(t, SubCA{Name: name})
}

// SubCAWith returns a CA as s describes.
func (p *PKI) SubCAWith(t testing.TB, s SubCA) *CA {
	t.Helper()
	if s.Parent == nil {
		s.Parent = p.CBSDCA
	}
	now := time.Now()
	if s.NotBefore.IsZero() {
		s.NotBefore = now.Add(-24 * time.Hour)
	}
	if s.NotAfter.IsZero() {
		s.NotAfter = now.Add(10 * 365 * 24 * time.Hour)
	}
	key := NewKey(t, s.Key)
	tmpl := caTemplate(s.Name, s.NotBefore, s.NotAfter, s.PathLen)
	return &CA{Cert: create(t, tmpl, s.Parent.Cert, key.Public(), s.Parent.Key), Key: key, Parent: s.Parent}
}

func caTemplate(cn string, nb, na time.Time, pathLen int) *x509.Certificate {
	caOID, _ := devicecert.RoleOID(devicecert.RoleCA)
	return &x509.Certificate{
		SerialNumber:          randSerial(),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Devicetest"}},
		NotBefore:             nb,
		NotAfter:              na,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            pathLen,
		MaxPathLenZero:        pathLen == 0,
		Policies:              []x509.OID{mustOID(caOID)},
	}
}

// OtherName is one SubjectAltName otherName, encoded as given.
type OtherName struct {
	OID asn1.ObjectIdentifier
	// Tag of the value inside the [0] EXPLICIT wrapper (UTF8String when
	// zero).
	Tag cbasn1.Tag
	// Value is the string's bytes, as they are (not checked).
	Value []byte
}

// Leaf describes an end-entity certificate.
type Leaf struct {
	// Role is put in certificatePolicies (none when empty); Roles adds
	// more policies (for a leaf with two roles).
	Role  devicecert.Role
	Roles []devicecert.Role
	// FCCID, Serial and FRN become otherName values when not empty.
	FCCID, Serial, FRN string
	// OtherNames are appended after those: duplicates, bad encodings.
	OtherNames []OtherName
	// DNS, Emails, URIs and IPs are further SubjectAltNames.
	DNS, Emails []string
	URIs        []*url.URL
	IPs         []net.IP
	// SAN, when set, is the raw SubjectAltName extension value, used
	// instead of all the above names.
	SAN []byte
	// Subject is the subject DN (CN "device" by default).
	Subject pkix.Name
	// Issuer signs it (the CBSD CA by default).
	Issuer *CA
	Key    KeyType
	EKU    EKU
	// NotBefore and NotAfter default to an hour ago and a year on.
	NotBefore, NotAfter time.Time
	// SerialNumber defaults to a random 128-bit number.
	SerialNumber *big.Int
	// SelfSigned signs the leaf with its own key (Issuer is ignored).
	SelfSigned bool
	// CorruptSignature flips a bit of the signature.
	CorruptSignature bool
}

// Issued is a leaf certificate with its key and chain.
type Issued struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// Chain is the leaf then its intermediates (not the root).
	Chain []*x509.Certificate
	// TLS is the leaf's certificate for a TLS client or server, with
	// the intermediates.
	TLS tls.Certificate
}

// DER is the chain as DER certificates, leaf first.
func (l *Issued) DER() [][]byte {
	out := make([][]byte, len(l.Chain))
	for i, c := range l.Chain {
		out[i] = c.Raw
	}
	return out
}

// PEM is the chain as PEM, leaf first.
func (l *Issued) PEM() []byte {
	var b strings.Builder
	for _, c := range l.Chain {
		b.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	return []byte(b.String())
}

// Leaf issues the leaf l describes.
func (p *PKI) Leaf(t testing.TB, l Leaf) *Issued {
	t.Helper()
	now := time.Now()
	if l.NotBefore.IsZero() {
		l.NotBefore = now.Add(-time.Hour)
	}
	if l.NotAfter.IsZero() {
		l.NotAfter = now.Add(365 * 24 * time.Hour)
	}
	if l.SerialNumber == nil {
		l.SerialNumber = randSerial()
	}
	if l.Subject.String() == "" {
		l.Subject = pkix.Name{CommonName: "device"}
	}
	if l.Issuer == nil {
		l.Issuer = p.CBSDCA
	}
	key := NewKey(t, l.Key)
	tmpl := &x509.Certificate{
		SerialNumber: l.SerialNumber,
		Subject:      l.Subject,
		NotBefore:    l.NotBefore,
		NotAfter:     l.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if _, ok := key.(*rsa.PrivateKey); ok {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	switch l.EKU {
	case EKUClientAuth:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	case EKUServerAuth:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	case EKUBoth:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}
	case EKUAnyUsage:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageAny}
	}
	for _, r := range append([]devicecert.Role{l.Role}, l.Roles...) {
		if r == "" {
			continue
		}
		oid, ok := devicecert.RoleOID(r)
		if !ok {
			t.Fatalf("devicetest: role %q has no OID", r)
		}
		tmpl.Policies = append(tmpl.Policies, mustOID(oid))
	}
	san := l.SAN
	if san == nil {
		var names []OtherName
		for _, n := range []struct {
			oid asn1.ObjectIdentifier
			v   string
		}{{devicecert.OIDFCCID, l.FCCID}, {devicecert.OIDSerial, l.Serial}, {devicecert.OIDFRN, l.FRN}} {
			if n.v != "" {
				names = append(names, OtherName{OID: n.oid, Value: []byte(n.v)})
			}
		}
		names = append(names, l.OtherNames...)
		if len(names)+len(l.DNS)+len(l.Emails)+len(l.URIs)+len(l.IPs) > 0 {
			san = SAN(names, l.DNS, l.Emails, l.URIs, l.IPs)
		}
	}
	if san != nil {
		tmpl.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Value: san}}
	}
	var cert *x509.Certificate
	var chain []*x509.Certificate
	if l.SelfSigned {
		cert = create(t, tmpl, tmpl, key.Public(), key)
	} else {
		cert = create(t, tmpl, l.Issuer.Cert, key.Public(), l.Issuer.Key)
		chain = l.Issuer.chain()
	}
	if l.CorruptSignature {
		der := append([]byte(nil), cert.Raw...)
		der[len(der)-1] ^= 0x01
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatalf("devicetest: corrupted certificate does not parse: %v", err)
		}
		cert = c
	}
	chain = append([]*x509.Certificate{cert}, chain...)
	out := &Issued{Cert: cert, Key: key, Chain: chain}
	for _, c := range chain {
		out.TLS.Certificate = append(out.TLS.Certificate, c.Raw)
	}
	out.TLS.PrivateKey = key
	out.TLS.Leaf = cert
	return out
}

// SAN encodes a SubjectAltName extension value (GeneralNames, RFC 5280
// §4.2.1.6): the otherName values first, then the other names.
func SAN(others []OtherName, dns, emails []string, uris []*url.URL, ips []net.IP) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, o := range others {
			AddOtherName(b, o)
		}
		for _, s := range emails {
			b.AddASN1(cbasn1.Tag(1).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(s)) })
		}
		for _, s := range dns {
			b.AddASN1(cbasn1.Tag(2).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(s)) })
		}
		for _, u := range uris {
			b.AddASN1(cbasn1.Tag(6).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(u.String())) })
		}
		for _, ip := range ips {
			if v4 := ip.To4(); v4 != nil {
				ip = v4
			}
			b.AddASN1(cbasn1.Tag(7).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(ip) })
		}
	})
	return b.BytesOrPanic()
}

// AddOtherName adds one GeneralName otherName ([0] IMPLICIT SEQUENCE {
// type-id OID, value [0] EXPLICIT ANY }) to b.
func AddOtherName(b *cryptobyte.Builder, o OtherName) {
	tag := o.Tag
	if tag == 0 {
		tag = cbasn1.UTF8String
	}
	b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(o.OID)
		b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
			b.AddASN1(tag, func(b *cryptobyte.Builder) { b.AddBytes(o.Value) })
		})
	})
}

// CRL writes a CRL of issuer revoking serials, with the given
// thisUpdate and nextUpdate, to path: PEM when path ends in ".pem", DER
// otherwise (path "" writes nothing). It returns the DER. The file is
// replaced atomically, as an operator's CRL updater would.
func (p *PKI) CRL(t testing.TB, issuer *CA, revoked []*big.Int, thisUpdate, nextUpdate time.Time, path string) []byte {
	t.Helper()
	p.mu.Lock()
	p.crlNum++
	num := p.crlNum
	p.mu.Unlock()
	tmpl := &x509.RevocationList{
		Number:     big.NewInt(num),
		ThisUpdate: thisUpdate,
		NextUpdate: nextUpdate,
	}
	for _, s := range revoked {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{
			SerialNumber: s, RevocationTime: thisUpdate,
		})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, issuer.Cert, issuer.Key)
	if err != nil {
		t.Fatal(err)
	}
	if path != "" {
		data := der
		if strings.HasSuffix(path, ".pem") {
			data = pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
		}
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	return der
}

func create(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func randSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err)
	}
	return n.Add(n, big.NewInt(1))
}

func mustOID(o asn1.ObjectIdentifier) x509.OID {
	ints := make([]uint64, len(o))
	for i, v := range o {
		ints[i] = uint64(v)
	}
	oid, err := x509.OIDFromInts(ints)
	if err != nil {
		panic(err)
	}
	return oid
}
