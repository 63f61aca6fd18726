package devicecert

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// MaxIdentifierLen bounds an FCC ID, a serial number and an FRN, in
// bytes. An FCC ID is at most 17 characters (a grantee code of 3 or 5
// and a product code of up to 14), an FRN 10 digits; serial numbers are
// the manufacturer's, and WInnForum's test harness uses a few dozen
// characters at most. 64 leaves room without letting a certificate put a
// kilobyte into every token's sub and every audit record.
const MaxIdentifierLen = 64

// maxGeneralNames bounds the names of one SubjectAltName looked at: a
// device certificate has a handful.
const maxGeneralNames = 64

var oidSAN = asn1.ObjectIdentifier{2, 5, 29, 17}

// OtherName is one otherName of a SubjectAltName (RFC 5280 §4.2.1.6):
// its type-id, the tag of its value and the value's contents.
type OtherName struct {
	OID   asn1.ObjectIdentifier
	Tag   cbasn1.Tag
	Value []byte
}

// ParseOtherNames reads the otherName values of a SubjectAltName
// extension's value (GeneralNames), in order; the other kinds of name are
// skipped. crypto/x509 does not expose otherName values. It fails on
// anything that is not well-formed DER of that shape, or on more than 64
// names.
func ParseOtherNames(san []byte) ([]OtherName, error) {
	in := cryptobyte.String(san)
	var names cryptobyte.String
	if !in.ReadASN1(&names, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, errors.New("the SubjectAltName is not a SEQUENCE")
	}
	var out []OtherName
	for n := 0; !names.Empty(); n++ {
		if n == maxGeneralNames {
			return nil, fmt.Errorf("the SubjectAltName has more than %d names", maxGeneralNames)
		}
		var gn cryptobyte.String
		var tag cbasn1.Tag
		if !names.ReadAnyASN1(&gn, &tag) {
			return nil, errors.New("a SubjectAltName name is malformed")
		}
		if tag != cbasn1.Tag(0).ContextSpecific().Constructed() {
			continue
		}
		// OtherName ::= SEQUENCE { type-id OBJECT IDENTIFIER,
		//                          value [0] EXPLICIT ANY DEFINED BY type-id }
		// (IMPLICIT: the [0] of the GeneralName replaces the SEQUENCE.)
		var on OtherName
		var wrapped, val cryptobyte.String
		if !gn.ReadASN1ObjectIdentifier(&on.OID) ||
			!gn.ReadASN1(&wrapped, cbasn1.Tag(0).ContextSpecific().Constructed()) || !gn.Empty() ||
			!wrapped.ReadAnyASN1(&val, &on.Tag) || !wrapped.Empty() {
			return nil, errors.New("a SubjectAltName otherName is malformed")
		}
		on.Value = val
		out = append(out, on)
	}
	return out, nil
}

// cbrsNames are the CBRS identifiers of a certificate.
type cbrsNames struct {
	FCCID, Serial, FRN string
}

// readCBRSNames reads the FCC ID, serial number and FRN of c's
// SubjectAltName. Each must be present at most once, a UTF8String of
// valid UTF-8, not empty, at most MaxIdentifierLen bytes, without
// control characters; absent ones are "". Other otherNames are ignored.
func readCBRSNames(c *x509.Certificate) (cbrsNames, error) {
	var out cbrsNames
	var raw []byte
	for _, e := range c.Extensions {
		if e.Id.Equal(oidSAN) {
			raw = e.Value
		}
	}
	if raw == nil {
		return out, nil
	}
	names, err := ParseOtherNames(raw)
	if err != nil {
		return out, err
	}
	fields := []struct {
		oid  asn1.ObjectIdentifier
		what string
		dst  *string
	}{
		{OIDFCCID, "FCC ID", &out.FCCID},
		{OIDSerial, "serial number", &out.Serial},
		{OIDFRN, "FRN", &out.FRN},
	}
	for _, f := range fields {
		seen := false
		for _, n := range names {
			if !n.OID.Equal(f.oid) {
				continue
			}
			if seen {
				return out, fmt.Errorf("the certificate names more than one %s", f.what)
			}
			seen = true
			if n.Tag != cbasn1.UTF8String {
				return out, fmt.Errorf("the %s is not a UTF8String", f.what)
			}
			if err := CheckIdentifier(string(n.Value)); err != nil {
				return out, fmt.Errorf("the %s %s", f.what, err)
			}
			*f.dst = string(n.Value)
		}
	}
	return out, nil
}

// CheckIdentifier reports why s is not an acceptable FCC ID, serial
// number or FRN: it is empty, longer than MaxIdentifierLen bytes, not
// valid UTF-8, or holds a control character (Cc, or a format character
// such as U+202E that reorders what a reader sees: Cf). The error reads after the
// identifier's name ("the FCC ID " + err).
func CheckIdentifier(s string) error {
	switch {
	case s == "":
		return errors.New("is empty")
	case len(s) > MaxIdentifierLen:
		return fmt.Errorf("is longer than %d bytes", MaxIdentifierLen)
	}
	return checkText(s)
}

// checkText reports why s is not valid UTF-8 without control characters.
func checkText(s string) error {
	switch {
	case !utf8.ValidString(s):
		return errors.New("is not valid UTF-8")
	case strings.ContainsFunc(s, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }):
		return errors.New("holds a control character")
	}
	return nil
}
