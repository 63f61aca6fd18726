// Package devicecert verifies radio devices' certificates against device
// trust profiles and reads who they are: the WInnForum CBRS PKI's role
// (certificatePolicies under 1.3.6.1.4.1.46609.1.1) and identifiers (FCC
// ID, serial number and FRN in SubjectAltName otherName values), or, for
// a generic X.509 profile, a CEL expression over the certificate.
package devicecert

import (
	"context"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"slices"
	"time"

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
	// RoleDevice is the role of every leaf of an x509 profile.
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
	// Issuer (the leaf's issuer DN), SerialNumber (hex) and NotAfter,
	// for audit records and the token's lifetime.
	Issuer       string
	SerialNumber string
	NotAfter     time.Time
}

// Refusal is why a certificate was not trusted. Cause is a short,
// stable word for audit records and metrics ("expired", "revoked",
// "untrusted", "role", "identity", "eku", "crl_stale", "not_allowed",
// ...); Msg is for the caller.
type Refusal struct {
	Cause string
	Msg   string
}

func (r *Refusal) Error() string { return r.Msg }

// AsRefusal returns err's Refusal, if it has one.
func AsRefusal(err error) (*Refusal, bool) {
	var r *Refusal
	ok := errors.As(err, &r)
	return r, ok
}

// Escape encodes an identifier for a sub so that no two (FCC ID, serial)
// pairs collide: "%", ":" and "/" (and anything not printable ASCII) are
// percent-encoded.
func Escape(s string) string {
	panic("todo")
}

// Profile is a compiled device trust profile.
type Profile struct {
	Spec *store.DeviceProfile
	// unexported: anchors, CRLs, CEL program, allow-list.
}

// Compile checks p (anchors parse, CEL identity type-checks, EKU and
// kind known, CRL files readable, allow-list well formed) and returns
// the compiled profile; every problem is listed in the error.
func Compile(p *store.DeviceProfile) (*Profile, error) {
	panic("todo")
}

// Verify verifies chain (leaf first, then whatever intermediates the
// device sent) against the profile at now: path to an anchor, validity,
// revocation by CRL (a stale CRL refuses), OCSP if configured, EKU
// policy, role (want; RoleDevice for x509 profiles) and identity.
func (p *Profile) Verify(ctx context.Context, chain []*x509.Certificate, want Role, now time.Time) (*Identity, error) {
	panic("todo")
}

// Trust is the set of enabled profiles.
type Trust struct {
	Profiles []*Profile
}

// Verify tries each profile whose anchors the chain leads to and
// returns the first identity; a Refusal from the most specific profile
// otherwise ("untrusted" when no profile's anchors are reached).
func (t *Trust) Verify(ctx context.Context, chain []*x509.Certificate, want Role, now time.Time) (*Identity, *Profile, error) {
	panic("todo")
}
