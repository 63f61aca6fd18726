// Package devicecert verifies radio devices' certificates against device
// trust profiles and reads who they are: the WInnForum CBRS PKI's role
// (certificatePolicies under 1.3.6.1.4.1.46609.1.1) and identifiers (FCC
// ID, serial number and FRN in SubjectAltName otherName values), or, for
// a generic X.509 profile, a CEL expression over the certificate.
//
// A profile is compiled once ([Compile]: every problem reported at once)
// and verifies chains ([Profile.Verify], or [Trust.Verify] over several).
// In order: at most [MaxChain] certificates; the leaf's validity; a path
// to the anchors through the intermediates the device sent (one per
// subject, as clientcert does, so that a hostile chain costs a few
// signature checks); the EKU policy; the role the request's path needs;
// the identifiers ([MaxIdentifierLen] bytes each, UTF8String, once each,
// no control characters); the FCC ID allow-list; then revocation: the
// CRLs of each certificate's issuer (leaf and intermediates; a CRL past
// its nextUpdate refuses, CauseCRLStale) and the OCSP responder, if any,
// for the leaf. A refusal is a [*Refusal] with a stable Cause.
//
// Verified paths are cached per profile (keyed by the presented chain,
// kept while every certificate of the path is valid), so a device that
// comes back costs no signature check; revocation and identity are
// checked on every call. CRL files are looked at, from Verify, at most
// once a second and reloaded when they change; a reload that fails keeps
// the list in use ([Profile.CRLStatus] reports it). Delta CRLs and CRL
// distribution points are not used: the operator's CRL files are.
package devicecert

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/cel-go/cel"

	"github.com/keybridge/sts/internal/clientcert"
	"github.com/keybridge/sts/internal/store"
)

// Role is what a CBRS certificate is for (its certificatePolicies OID).
type Role string

// CBRS roles (WINNF-TS-0022, 1.3.6.1.4.1.46609.1.1.N).
const (
	RoleSAS       Role = "sas"       // .1.1.1
	RoleInstaller Role = "installer" // .1.1.2
	RoleCBSD      Role = "cbsd"      // .1.1.3
	RoleOperator  Role = "operator"  // .1.1.4: a domain proxy
	RoleCA        Role = "ca"        // .1.1.5
	// RoleDevice is the role of every leaf of an x509 profile. As
	// Verify's want it names the device path, as RoleCBSD does.
	RoleDevice Role = "device"
)

// CBRS object identifiers (WINNF-TS-0022).
var (
	// OIDRolePrefix is the arc of the role policies: OIDRolePrefix.N.
	OIDRolePrefix = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 46609, 1, 1}
	// OIDFCCID, OIDSerial and OIDFRN are the otherName type-ids of the
	// FCC ID, the CBSD serial number and the operator's FRN (UTF8String).
	OIDFCCID  = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 46609, 1, 4}
	OIDSerial = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 46609, 1, 5}
	OIDFRN    = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 46609, 1, 6}
)

// roleArcs numbers the CBRS roles under OIDRolePrefix.
var roleArcs = map[Role]int{RoleSAS: 1, RoleInstaller: 2, RoleCBSD: 3, RoleOperator: 4, RoleCA: 5}

// RoleOID is the certificatePolicies OID of a CBRS role; false for
// RoleDevice or an unknown role.
func RoleOID(r Role) (asn1.ObjectIdentifier, bool) {
	n, ok := roleArcs[r]
	if !ok {
		return nil, false
	}
	return append(slices.Clone(OIDRolePrefix), n), true
}

// Identity is who a verified device certificate names.
type Identity struct {
	// Profile is the name of the trust profile that verified it.
	Profile string
	Role    Role
	// FCCID and Serial name a CBSD; FRN an operator (cbrs profiles).
	FCCID, Serial, FRN string
	// Subject is the issued token's sub: "cbsd:"+Escape(FCCID)+":"+
	// Escape(Serial) for a CBSD, "dp:"+Escape(FRN)+":"+Escape(CN) for a
	// domain proxy, the Identity expression's value for x509 profiles.
	Subject string
	// Leaf is the verified certificate; Thumbprint its x5t#S256.
	Leaf       *x509.Certificate
	Thumbprint string
	// Issuer (the leaf's issuer DN as encoded, RFC 4514) and
	// SerialNumber (lower-case hex), for audit records; NotAfter, the
	// token's latest expiry: the earliest notAfter of the verified path
	// (leaf, its CAs and anchor).
	Issuer       string
	SerialNumber string
	NotAfter     time.Time
}

// Refusal is why a certificate was not trusted. Cause is a short,
// stable word for audit records and metrics (the Cause constants); Msg
// is for the caller.
type Refusal struct {
	Cause string
	Msg   string
	// stage is how far verification went before the refusal: Trust
	// reports the refusal of the profile that went furthest.
	stage int
}

func (r *Refusal) Error() string { return r.Msg }

// Refusal causes.
const (
	// CauseMalformed: no certificate, or more than MaxChain.
	CauseMalformed = "malformed"
	// CauseUntrusted: no path to the profile's anchors (or no profile's
	// anchors issued the chain).
	CauseUntrusted = "untrusted"
	// CauseSignature: a certificate's signature does not verify under
	// the key of the certificate that names its issuer.
	CauseSignature = "signature"
	// CauseExpired and CauseNotYetValid: a certificate of the chain is
	// outside its validity at the time of the request.
	CauseExpired     = "expired"
	CauseNotYetValid = "not_yet_valid"
	// CauseEKU: the leaf's extended key usage does not meet the
	// profile's EKU policy.
	CauseEKU = "eku"
	// CauseRole: the leaf's CBRS role is missing, ambiguous or not the
	// one this path takes (a domain proxy's certificate asking as a
	// device, a CBSD's asking as a proxy, a SAS's anywhere).
	CauseRole = "role"
	// CauseIdentity: the identifiers are missing, repeated or malformed,
	// or the identity expression gave no usable string.
	CauseIdentity = "identity"
	// CauseNotAllowed: the FCC ID is not in the profile's allow-list.
	CauseNotAllowed = "not_allowed"
	// CauseRevoked: a CRL or the OCSP responder revoked the leaf or an
	// intermediate.
	CauseRevoked = "revoked"
	// CauseCRLStale: the freshest CRL of a certificate's issuer is past
	// its nextUpdate; nothing that CA issued is trusted until it is
	// renewed.
	CauseCRLStale = "crl_stale"
	// CauseCRLInvalid: a CRL names the issuer but its key did not sign it.
	CauseCRLInvalid = "crl_invalid"
	// CauseOCSP: the OCSP responder gave no usable answer.
	CauseOCSP = "ocsp"
)

// Verification stages, in order.
const (
	stageShape = iota
	stagePath
	stageLeaf
	stageRevocation
)

func refuse(stage int, cause, format string, args ...any) *Refusal {
	return &Refusal{Cause: cause, Msg: fmt.Sprintf(format, args...), stage: stage}
}

// AsRefusal returns err's Refusal, if it has one.
func AsRefusal(err error) (*Refusal, bool) {
	var r *Refusal
	ok := errors.As(err, &r)
	return r, ok
}

// Escape encodes an identifier for a sub so that no two (FCC ID, serial)
// pairs collide: "%", ":" and "/" (and anything not printable ASCII,
// space included) are percent-encoded, byte by byte of the UTF-8, in
// upper-case hex. Since ":" never appears in an escaped value, the ":"
// between two of them is unambiguous: ("A:B","C") gives "A%3AB:C" and
// ("A","B:C") "A:B%3AC".
func Escape(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c > ' ' && c < 0x7f && c != '%' && c != ':' && c != '/' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// CBSDSubject is the sub of a CBSD's token.
func CBSDSubject(fccID, serial string) string {
	return "cbsd:" + Escape(fccID) + ":" + Escape(serial)
}

// MaxChain bounds the certificates a device may present (leaf
// included): a CBRS chain is leaf, OEM CA, CBSD CA (the root is not
// sent), and crypto/tls's 8 is ample.
const MaxChain = 8

// MaxChainDER bounds the DER of a chain a device sends as a subject
// token: 8 certificates of a few KB (an RSA-4096 certificate is ~1.5 KB).
const MaxChainDER = 64 << 10

// ParseChain parses a chain sent as the concatenated DER of its
// certificates (leaf first), as x509.ParseCertificates reads it: at most
// MaxChainDER bytes and MaxChain certificates. A refusal has
// CauseMalformed.
func ParseChain(der []byte) ([]*x509.Certificate, error) {
	switch {
	case len(der) == 0:
		return nil, refuse(stageShape, CauseMalformed, "no certificate")
	case len(der) > MaxChainDER:
		return nil, refuse(stageShape, CauseMalformed, "the chain is longer than %d bytes", MaxChainDER)
	}
	certs, err := x509.ParseCertificates(der)
	switch {
	case err != nil:
		return nil, refuse(stageShape, CauseMalformed, "the chain does not parse: %v", err)
	case len(certs) > MaxChain:
		return nil, refuse(stageShape, CauseMalformed, "the chain has %d certificates, more than %d", len(certs), MaxChain)
	}
	return certs, nil
}

// MaxIntermediateRSABits bounds the RSA keys of the intermediates a
// device sends, as crypto/tls bounds a handshake's.
const MaxIntermediateRSABits = 8192

// Profile is a compiled device trust profile. It is safe for concurrent
// use; a changed store.DeviceProfile is compiled anew.
type Profile struct {
	Spec *store.DeviceProfile
	// HTTPClient asks the OCSP responder (a client with OCSPTimeout by
	// default). Set it before the first Verify.
	HTTPClient *http.Client

	anchors     *x509.CertPool
	anchorSet   map[string]bool // anchors' RawSubject
	anchorCerts []*x509.Certificate
	eku         string
	identity    cel.Program
	allow       map[string]bool
	crls        []*crlFile
	ocsp        *ocspChecker
	ocspOnce    sync.Once
	paths       pathCache
	// noPathCache turns the cache off (benchmarks of the cold path).
	noPathCache bool
	// wallClock, when set, replaces time.Now for CRL reloads (tests).
	wallClock func() time.Time
}

// CompileError is one problem Compile found with a profile; Compile
// returns every one, joined with errors.Join ([CompileErrors] lists
// them).
type CompileError struct {
	Profile string
	// Field names what is wrong: "name", "kind", "identity", "eku",
	// "anchors", "fcc ids", "crl" or "ocsp url".
	Field string
	Msg   string
}

// Error renders e as `device profile "NAME": FIELD: MSG`.
func (e *CompileError) Error() string {
	return fmt.Sprintf("device profile %q: %s: %s", e.Profile, e.Field, e.Msg)
}

// CompileErrors lists the problems of an error Compile returned.
func CompileErrors(err error) []*CompileError {
	var out []*CompileError
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, CompileErrors(e)...)
		}
		return out
	}
	var ce *CompileError
	if errors.As(err, &ce) {
		out = append(out, ce)
	}
	return out
}

// Compile checks p (anchors parse, CEL identity type-checks, EKU and
// kind known, CRL files readable, allow-list well formed) and returns
// the compiled profile; every problem is listed in the error, each
// prefixed with the profile's name.
//
// An empty EKU is EKUClientAuth, the strictest.
func Compile(p *store.DeviceProfile) (*Profile, error) {
	if p == nil {
		return nil, errors.New("devicecert: no profile")
	}
	var errs []error
	fail := func(field, format string, args ...any) {
		errs = append(errs, &CompileError{Profile: p.Name, Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	out := &Profile{Spec: p, anchorSet: map[string]bool{}, eku: p.EKU}
	if p.Name == "" {
		fail("name", "the name is empty")
	}
	switch p.Kind {
	case store.DeviceKindCBRS:
		if p.Identity != "" {
			fail("identity", "an identity expression is for %s profiles; a %s profile reads the FCC ID and serial number", store.DeviceKindX509, store.DeviceKindCBRS)
		}
	case store.DeviceKindX509:
		if strings.TrimSpace(p.Identity) == "" {
			fail("identity", "an %s profile needs an identity expression (for example cert.subject.cn)", store.DeviceKindX509)
		} else if prg, err := compileIdentity(p.Identity); err != nil {
			fail("identity", "%v", err)
		} else {
			out.identity = prg
		}
		if len(p.FCCIDs) > 0 {
			fail("fcc ids", "an allow-list of FCC IDs is for %s profiles", store.DeviceKindCBRS)
		}
	default:
		fail("kind", "%q is not a kind: want %s or %s", p.Kind, store.DeviceKindCBRS, store.DeviceKindX509)
	}
	switch p.EKU {
	case "":
		out.eku = store.EKUClientAuth
	case store.EKUClientAuth, store.EKUAny, store.EKUNone:
	default:
		fail("eku", "%q is not an EKU policy: want %s, %s or %s", p.EKU, store.EKUClientAuth, store.EKUAny, store.EKUNone)
	}
	out.anchors = x509.NewCertPool()
	n := 0
	for rest, i := p.Anchors, 1; ; i++ {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			if len(bytes.TrimSpace(rest)) > 0 && n > 0 {
				fail("anchors", "text after the last PEM block is not PEM")
			}
			break
		}
		if blk.Type != "CERTIFICATE" {
			fail("anchors", "PEM block %d is a %q, not a CERTIFICATE", i, blk.Type)
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			fail("anchors", "certificate %d: %v", i, err)
			continue
		}
		if !c.IsCA {
			fail("anchors", "certificate %d (%s) is not a CA certificate", i, c.Subject)
			continue
		}
		out.anchors.AddCert(c)
		out.anchorSet[string(c.RawSubject)] = true
		out.anchorCerts = append(out.anchorCerts, c)
		n++
	}
	if n == 0 {
		fail("anchors", "no CA certificate (PEM) is given")
	}
	if len(p.FCCIDs) > 0 {
		out.allow = make(map[string]bool, len(p.FCCIDs))
		for _, id := range p.FCCIDs {
			if err := CheckIdentifier(id); err != nil {
				fail("fcc ids", "%q %v", id, err)
			}
			out.allow[id] = true
		}
	}
	for _, path := range p.CRLFiles {
		f, err := loadCRL(path)
		if err != nil {
			fail("crl", "%v", err)
			continue
		}
		out.crls = append(out.crls, f)
	}
	if p.OCSPURL != "" {
		u, err := url.Parse(p.OCSPURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			fail("ocsp url", "%q is not an http or https URL", p.OCSPURL)
		}
		out.ocsp = &ocspChecker{url: p.OCSPURL, cache: map[[32]byte]ocspEntry{}}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// Verify verifies chain (leaf first, then whatever intermediates the
// device sent) against the profile at now: path to an anchor, validity,
// EKU policy, role, identity, allow-list, then revocation by CRL (a stale
// CRL refuses) and OCSP if configured. Every refusal is a *Refusal.
//
// want is the path the certificate asks on: RoleCBSD (or RoleDevice,
// the same path) for a device's own token, RoleOperator for a domain
// proxy's batch. A cbrs profile's leaf must carry exactly that role; an
// x509 profile's leaves are devices (RoleDevice) and never proxies.
//
// A cbrs CBSD is named by its FCC ID and serial number (both required);
// a domain proxy by its FRN (required: it names the operator the SAS
// registered, and a proxy's batch speaks for that operator's devices)
// and its subject CN (required: one operator runs several proxies, each
// with its own certificate), sub "dp:"+Escape(FRN)+":"+Escape(CN).
//
// If the profile names an OCSP responder, it is asked about every leaf
// no CRL revoked (answers cached until their nextUpdate); when it cannot
// answer within OCSPTimeout, or answers "unknown", Verify refuses
// (CauseOCSP): an operator who configures a responder asks for
// revocation to be known.
func (p *Profile) Verify(ctx context.Context, chain []*x509.Certificate, want Role, now time.Time) (*Identity, error) {
	id, r := p.verify(ctx, chain, want, now)
	if r != nil {
		return nil, r
	}
	return id, nil
}

func (p *Profile) verify(ctx context.Context, chain []*x509.Certificate, want Role, now time.Time) (*Identity, *Refusal) {
	switch {
	case len(chain) == 0 || chain[0] == nil:
		return nil, refuse(stageShape, CauseMalformed, "no device certificate")
	case len(chain) > MaxChain:
		return nil, refuse(stageShape, CauseMalformed, "the chain has %d certificates, more than %d", len(chain), MaxChain)
	case slices.Contains(chain, nil):
		return nil, refuse(stageShape, CauseMalformed, "the chain has an empty certificate")
	}
	path := want
	if path == RoleDevice {
		path = RoleCBSD
	}
	if path != RoleCBSD && path != RoleOperator {
		return nil, refuse(stageShape, CauseRole, "devices and domain proxies only are given tokens, not %q", want)
	}
	if p.Spec.Kind == store.DeviceKindX509 && path != RoleCBSD {
		return nil, refuse(stageShape, CauseRole, "profile %q trusts devices, not domain proxies", p.Spec.Name)
	}
	leaf := chain[0]
	switch {
	case now.Before(leaf.NotBefore):
		return nil, refuse(stagePath, CauseNotYetValid, "the certificate is not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339))
	case now.After(leaf.NotAfter):
		return nil, refuse(stagePath, CauseExpired, "the certificate expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	verified, r := p.buildPath(chain, now)
	if r != nil {
		return nil, r
	}
	if leaf.IsCA {
		return nil, refuse(stageLeaf, CauseRole, "the certificate is a CA certificate, not a device's")
	}
	if r := p.checkEKU(verified); r != nil {
		return nil, r
	}
	id := &Identity{
		Profile:      p.Spec.Name,
		Leaf:         leaf,
		Thumbprint:   clientcert.Thumbprint(leaf),
		Issuer:       dnString(leaf.RawIssuer),
		SerialNumber: leaf.SerialNumber.Text(16),
		NotAfter:     pathNotAfter(verified),
	}
	if p.Spec.Kind == store.DeviceKindX509 {
		sub, err := evalIdentity(p.identity, leaf)
		if err != nil {
			return nil, refuse(stageLeaf, CauseIdentity, "%v", err)
		}
		id.Role, id.Subject = RoleDevice, sub
	} else if r := p.cbrsIdentity(id, leaf, path); r != nil {
		return nil, r
	}
	if r := p.checkRevocation(ctx, verified, now); r != nil {
		return nil, r
	}
	return id, nil
}

// pathNotAfter is when the first certificate of path expires: a leaf
// may outlive the CA that issued it (crypto/x509 allows it), and a token
// must not outlive its chain.
func pathNotAfter(path []*x509.Certificate) time.Time {
	na := path[0].NotAfter
	for _, c := range path[1:] {
		if c.NotAfter.Before(na) {
			na = c.NotAfter
		}
	}
	return na
}

// cbrsIdentity fills id from leaf's CBRS role and identifiers.
func (p *Profile) cbrsIdentity(id *Identity, leaf *x509.Certificate, path Role) *Refusal {
	role, r := leafRole(leaf)
	if r != nil {
		return r
	}
	if role != path {
		what := map[Role]string{RoleCBSD: "a CBSD's", RoleOperator: "a domain proxy's"}[path]
		return refuse(stageLeaf, CauseRole, "the certificate's CBRS role is %s; this request needs %s certificate", role, what)
	}
	names, err := readCBRSNames(leaf)
	if err != nil {
		return refuse(stageLeaf, CauseIdentity, "%v", err)
	}
	id.Role, id.FCCID, id.Serial, id.FRN = role, names.FCCID, names.Serial, names.FRN
	switch role {
	case RoleCBSD:
		switch {
		case names.FCCID == "":
			return refuse(stageLeaf, CauseIdentity, "the certificate names no FCC ID (otherName %s)", OIDFCCID)
		case names.Serial == "":
			return refuse(stageLeaf, CauseIdentity, "the certificate names no serial number (otherName %s)", OIDSerial)
		}
		if p.allow != nil && !p.allow[names.FCCID] {
			return refuse(stageLeaf, CauseNotAllowed, "FCC ID %q is not allowed by profile %q", names.FCCID, p.Spec.Name)
		}
		id.Subject = CBSDSubject(names.FCCID, names.Serial)
	case RoleOperator:
		cn := nameView(leaf.RawSubject).CN
		if names.FRN == "" {
			return refuse(stageLeaf, CauseIdentity, "the domain proxy's certificate names no FRN (otherName %s)", OIDFRN)
		}
		if err := CheckIdentifier(cn); err != nil {
			return refuse(stageLeaf, CauseIdentity, "the domain proxy's subject common name (exactly one) %v", err)
		}
		id.Subject = "dp:" + Escape(names.FRN) + ":" + Escape(cn)
	}
	return nil
}

// leafRole is the one CBRS role of leaf's certificatePolicies.
func leafRole(leaf *x509.Certificate) (Role, *Refusal) {
	var roles []Role
	for _, oid := range leaf.Policies {
		for r := range roleArcs {
			if o, _ := RoleOID(r); oid.EqualASN1OID(o) && !slices.Contains(roles, r) {
				roles = append(roles, r)
			}
		}
	}
	switch len(roles) {
	case 0:
		return "", refuse(stageLeaf, CauseRole, "the certificate carries no CBRS role (certificatePolicies %s.N)", OIDRolePrefix)
	case 1:
		return roles[0], nil
	}
	slices.Sort(roles)
	return "", refuse(stageLeaf, CauseRole, "the certificate carries %d CBRS roles (%v); one is expected", len(roles), roles)
}

// checkEKU applies the profile's EKU policy to the verified path.
// clientAuth: the leaf must list clientAuth or anyExtendedKeyUsage, and
// no CA of the path may restrict its usages to ones without them (as
// crypto/x509 nests them). any and none do not look.
func (p *Profile) checkEKU(path []*x509.Certificate) *Refusal {
	if p.eku != store.EKUClientAuth {
		return nil
	}
	allows := func(c *x509.Certificate) bool {
		return slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageClientAuth) || slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageAny)
	}
	if !allows(path[0]) {
		if len(path[0].ExtKeyUsage) == 0 && len(path[0].UnknownExtKeyUsage) == 0 {
			return refuse(stageLeaf, CauseEKU, "the certificate has no extended key usage; profile %q requires clientAuth", p.Spec.Name)
		}
		return refuse(stageLeaf, CauseEKU, "the certificate's extended key usage does not include clientAuth, which profile %q requires", p.Spec.Name)
	}
	for _, c := range path[1:] {
		if (len(c.ExtKeyUsage) > 0 || len(c.UnknownExtKeyUsage) > 0) && !allows(c) {
			return refuse(stageLeaf, CauseEKU, "CA %s restricts its certificates' usages and not to clientAuth", c.Subject)
		}
	}
	return nil
}

// buildPath verifies the path from chain[0] to an anchor, with chain[1:]
// as candidate intermediates, and returns it (leaf first, anchor last).
func (p *Profile) buildPath(chain []*x509.Certificate, now time.Time) ([]*x509.Certificate, *Refusal) {
	if path := p.paths.get(chain, now); path != nil && !p.noPathCache {
		return path, nil
	}
	leaf := chain[0]
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         p.anchors,
		Intermediates: pathCandidates(chain[1:]),
		CurrentTime:   now,
		// The EKU policy is the profile's, applied by checkEKU.
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, p.diagnose(chain, now, err)
	}
	p.paths.put(chain, chains[0])
	return chains[0], nil
}

// diagnose explains a failed path: it walks up from the leaf by issuer
// name through the anchors and the candidates path building had (at most
// MaxChain steps, one signature check each) and names the first link
// that is expired, not yet valid or badly signed. Otherwise the chain
// does not lead to an anchor.
func (p *Profile) diagnose(chain []*x509.Certificate, now time.Time, err error) *Refusal {
	var cie x509.CertificateInvalidError
	if errors.As(err, &cie) && cie.Reason != x509.Expired {
		return refuse(stagePath, CauseUntrusted, "the chain is not valid: %v", err)
	}
	c := chain[0]
	presented := candidates(chain[1:])
	for range MaxChain {
		parent, anchor := p.findParent(presented, c)
		if parent == nil {
			break
		}
		switch {
		case now.Before(parent.NotBefore):
			return refuse(stagePath, CauseNotYetValid, "CA certificate %s is not valid before %s", parent.Subject, parent.NotBefore.UTC().Format(time.RFC3339))
		case now.After(parent.NotAfter):
			return refuse(stagePath, CauseExpired, "CA certificate %s expired at %s", parent.Subject, parent.NotAfter.UTC().Format(time.RFC3339))
		}
		if parent.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) != nil {
			return refuse(stagePath, CauseSignature, "the signature of %s does not verify under the key of %s", describe(c), parent.Subject)
		}
		if anchor {
			break
		}
		c = parent
	}
	if bytes.Equal(chain[0].RawIssuer, chain[0].RawSubject) {
		return refuse(stagePath, CauseUntrusted, "the certificate is self-signed and not a trust anchor of profile %q", p.Spec.Name)
	}
	return refuse(stagePath, CauseUntrusted, "the certificate does not chain to a trust anchor of profile %q: %v", p.Spec.Name, err)
}

// findParent is the certificate that names c's issuer as its subject:
// an anchor, or else the first presented one (not c itself).
func (p *Profile) findParent(presented []*x509.Certificate, c *x509.Certificate) (parent *x509.Certificate, anchor bool) {
	if p.anchorSet[string(c.RawIssuer)] {
		for _, a := range p.anchorCerts {
			if bytes.Equal(a.RawSubject, c.RawIssuer) {
				return a, true
			}
		}
	}
	for _, cand := range presented {
		if cand != c && bytes.Equal(cand.RawSubject, c.RawIssuer) {
			return cand, false
		}
	}
	return nil, false
}

func describe(c *x509.Certificate) string {
	if c.IsCA {
		return "CA certificate " + c.Subject.String()
	}
	return "the certificate"
}

// checkRevocation looks each certificate of the path below the anchor up
// in the CRLs of its issuer, then asks the OCSP responder, if any, about
// the leaf.
func (p *Profile) checkRevocation(ctx context.Context, path []*x509.Certificate, now time.Time) *Refusal {
	wall := time.Now()
	if p.wallClock != nil {
		wall = p.wallClock()
	}
	for i := 0; i+1 < len(path); i++ {
		c, issuer := path[i], path[i+1]
		verdict := checkCRLs(p.crls, c, issuer, now, wall)
		what := "the certificate"
		if i > 0 {
			what = "CA certificate " + c.Subject.String()
		}
		switch verdict {
		case crlRevoked:
			return refuse(stageRevocation, CauseRevoked, "%s (serial %s) is revoked by its issuer's CRL", what, c.SerialNumber.Text(16))
		case crlStale:
			return refuse(stageRevocation, CauseCRLStale, "the CRL of %s is past its nextUpdate; %s cannot be checked", dnString(issuer.RawSubject), what)
		case crlBadSig:
			return refuse(stageRevocation, CauseCRLInvalid, "a CRL names %s as issuer but is not signed by its key", dnString(issuer.RawSubject))
		}
	}
	if p.ocsp == nil || len(path) < 2 {
		return nil
	}
	p.ocspOnce.Do(func() {
		p.ocsp.client = p.HTTPClient
		if p.ocsp.client == nil {
			p.ocsp.client = &http.Client{Timeout: OCSPTimeout}
		}
	})
	revoked, err := p.ocsp.check(ctx, path[0], path[1], now)
	switch {
	case err != nil:
		return refuse(stageRevocation, CauseOCSP, "the revocation status of the certificate is unknown: %v", err)
	case revoked:
		return refuse(stageRevocation, CauseRevoked, "the certificate (serial %s) is revoked (OCSP)", path[0].SerialNumber.Text(16))
	}
	return nil
}

// pathCandidates is the pool of the intermediates a device sent that
// path building may use: at most one per subject (the first sent), none
// with an RSA key above MaxIntermediateRSABits. Several certificates of
// one subject would let an unauthenticated caller make path building try
// every order of them (see clientcert's pathCandidates, issue 13).
func pathCandidates(certs []*x509.Certificate) *x509.CertPool {
	pool := x509.NewCertPool()
	for _, c := range candidates(certs) {
		pool.AddCert(c)
	}
	return pool
}

func candidates(certs []*x509.Certificate) []*x509.Certificate {
	out := make([]*x509.Certificate, 0, len(certs))
	seen := make(map[string]bool, len(certs))
	for _, c := range certs {
		if seen[string(c.RawSubject)] {
			continue
		}
		if k, ok := c.PublicKey.(*rsa.PublicKey); ok && k.N.BitLen() > MaxIntermediateRSABits {
			continue
		}
		seen[string(c.RawSubject)] = true
		out = append(out, c)
	}
	return out
}

// reaches reports whether a certificate of chain names one of the
// profile's anchors as its issuer.
func (p *Profile) reaches(chain []*x509.Certificate) bool {
	for _, c := range chain[:min(len(chain), MaxChain)] {
		if c != nil && p.anchorSet[string(c.RawIssuer)] {
			return true
		}
	}
	return false
}

// Trust is the set of enabled profiles.
type Trust struct {
	Profiles []*Profile
}

// Verify tries each profile whose anchors the chain leads to (a
// certificate of the chain names one of them as its issuer), in order,
// and returns the first identity; otherwise the Refusal of the profile
// that got furthest (the first of them on a tie) with that profile, or
// CauseUntrusted and a nil profile when no profile's anchors are reached.
func (t *Trust) Verify(ctx context.Context, chain []*x509.Certificate, want Role, now time.Time) (*Identity, *Profile, error) {
	if len(chain) == 0 || chain[0] == nil {
		return nil, nil, refuse(stageShape, CauseMalformed, "no device certificate")
	}
	var best *Refusal
	var bestProfile *Profile
	for _, p := range t.Profiles {
		if !p.reaches(chain) {
			continue
		}
		id, r := p.verify(ctx, chain, want, now)
		if r == nil {
			return id, p, nil
		}
		if best == nil || r.stage > best.stage {
			best, bestProfile = r, p
		}
	}
	if best == nil {
		return nil, nil, refuse(stagePath, CauseUntrusted, "no device trust profile trusts the certificate's issuer (%s)", dnString(chain[0].RawIssuer))
	}
	return nil, bestProfile, best
}
