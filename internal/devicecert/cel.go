package devicecert

import (
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"

	"github.com/keybridge/sts/internal/celpolicy"
)

// Cert is what an x509 profile's Identity expression sees of the
// certificate, as the variable `cert`:
//
//	cert.subject.cn, .o, .ou, .c, .l, .st, .serialNumber, .dn
//	cert.issuer (the same fields)
//	cert.dns, cert.email, cert.uri, cert.ip   list(string) of the SANs
//	cert.serial       string  the serial number, lower-case hex
//	cert.fingerprint  string  SHA-256 of the DER, lower-case hex
//	cert.notBefore, cert.notAfter  timestamp
//
// For example `cert.subject.cn`, `"dev:" + cert.subject.serialNumber`
// or `cert.uri.filter(u, u.startsWith("urn:dev:"))[0]`.
type Cert struct {
	Subject     Name      `cel:"subject"`
	Issuer      Name      `cel:"issuer"`
	DNS         []string  `cel:"dns"`
	Email       []string  `cel:"email"`
	URI         []string  `cel:"uri"`
	IP          []string  `cel:"ip"`
	Serial      string    `cel:"serial"`
	Fingerprint string    `cel:"fingerprint"`
	NotBefore   time.Time `cel:"notBefore"`
	NotAfter    time.Time `cel:"notAfter"`
}

// Name is a distinguished name as an Identity expression sees it, read
// as encoded: the common name and serialNumber as strings ("" unless the
// DN has exactly one), the other attributes as lists in their order, and
// the whole DN in RFC 4514 form.
type Name struct {
	CN           string   `cel:"cn"`
	SerialNumber string   `cel:"serialNumber"`
	O            []string `cel:"o"`
	OU           []string `cel:"ou"`
	C            []string `cel:"c"`
	L            []string `cel:"l"`
	ST           []string `cel:"st"`
	DN           string   `cel:"dn"`
}

// ReservedPrefixes begin the subs of cbrs profiles' identities: an x509
// profile's identity may not begin with them, or a generic certificate
// whose CN reads "cbsd:ABC123:SN-1" would be given a CBSD's sub.
var ReservedPrefixes = []string{"cbsd:", "dp:"}

// MaxSubjectLen bounds the value of an Identity expression, in bytes.
const MaxSubjectLen = 256

var celEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		ext.NativeTypes(ext.ParseStructTags(true), reflect.TypeFor[Cert](), reflect.TypeFor[Name]()),
		cel.Variable("cert", cel.ObjectType("devicecert.Cert")),
		cel.OptionalTypes(),
		cel.DefaultUTCTimeZone(true),
		ext.Strings(),
		ext.Lists(ext.ListsMaxRangeSize(celpolicy.CostLimit)),
		ext.Sets(),
		ext.Math(),
		cel.ASTValidators(
			cel.ValidateRegexLiterals(),
			cel.ValidateTimestampLiterals(),
			cel.ValidateDurationLiterals(),
		),
	)
})

// compileIdentity type-checks expr: it must be a string (or a value
// known only at run time, checked then).
func compileIdentity(expr string) (cel.Program, error) {
	if len(expr) > celpolicy.MaxExprLen {
		return nil, fmt.Errorf("the expression is %d bytes long, more than %d", len(expr), celpolicy.MaxExprLen)
	}
	if strings.TrimSpace(expr) == "" {
		return nil, errors.New("the expression is blank")
	}
	e, err := celEnv()
	if err != nil {
		return nil, fmt.Errorf("environment: %w", err)
	}
	ast, iss := e.CompileSource(common.NewStringSource(expr, "identity"))
	if iss.Err() != nil {
		msgs := make([]string, 0, len(iss.Errors()))
		for _, ce := range iss.Errors() {
			// Columns are 0-based; people count from 1.
			msg := strings.TrimSuffix(ce.Message, " (in container '')")
			msgs = append(msgs, fmt.Sprintf("%d:%d: %s", ce.Location.Line(), ce.Location.Column()+1, msg))
		}
		return nil, errors.New(strings.Join(msgs, "; "))
	}
	switch t := ast.OutputType(); t.Kind() {
	case types.StringKind, types.DynKind, types.AnyKind:
	default:
		nat := ast.NativeRep()
		loc := nat.SourceInfo().GetStartLocation(nat.Expr().ID())
		return nil, fmt.Errorf("%d:%d: its type is %s; the identity must be a string", loc.Line(), loc.Column()+1, cel.FormatCELType(t))
	}
	prg, err := e.Program(ast, cel.CostLimit(celpolicy.CostLimit), cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, err
	}
	return prg, nil
}

// evalIdentity runs prg over c: the value must be a non-empty string of
// at most MaxSubjectLen bytes, without control characters.
func evalIdentity(prg cel.Program, c *x509.Certificate) (string, error) {
	v, _, err := prg.Eval(map[string]any{"cert": certView(c)})
	if err != nil {
		return "", fmt.Errorf("the identity expression failed: %v", err)
	}
	s, ok := v.Value().(string)
	switch {
	case !ok:
		return "", fmt.Errorf("the identity expression gave a %s, not a string", v.Type().TypeName())
	case s == "":
		return "", errors.New("the identity expression gave an empty string")
	case len(s) > MaxSubjectLen:
		return "", fmt.Errorf("the identity expression gave %d bytes, more than %d", len(s), MaxSubjectLen)
	}
	if err := checkText(s); err != nil {
		return "", fmt.Errorf("the identity %s", err)
	}
	// In any case and after blanks: a resource server that compares subs
	// loosely must not read one as a CBSD's either.
	folded := strings.ToLower(strings.TrimLeft(s, " "))
	for _, prefix := range ReservedPrefixes {
		if strings.HasPrefix(folded, prefix) {
			return "", fmt.Errorf("the identity %q starts with %q, which names CBRS devices and domain proxies only", s, prefix)
		}
	}
	return s, nil
}

var oidDNSerialNumber = asn1.ObjectIdentifier{2, 5, 4, 5}

func certView(c *x509.Certificate) *Cert {
	sum := sha256.Sum256(c.Raw)
	v := &Cert{
		Subject:     nameView(c.RawSubject),
		Issuer:      nameView(c.RawIssuer),
		DNS:         nonNil(c.DNSNames),
		Email:       nonNil(c.EmailAddresses),
		URI:         []string{},
		IP:          []string{},
		Serial:      c.SerialNumber.Text(16),
		Fingerprint: hex.EncodeToString(sum[:]),
		NotBefore:   c.NotBefore,
		NotAfter:    c.NotAfter,
	}
	for _, u := range c.URIs {
		v.URI = append(v.URI, u.String())
	}
	for _, ip := range c.IPAddresses {
		v.IP = append(v.IP, ip.String())
	}
	return v
}

// nameView reads a DN as encoded (raw): pkix.Name keeps only the last
// of several common names and reorders attributes (see clientauth's
// SubjectDN, review of issue 13), so the view is built from the RDN
// sequence itself. cn and serialNumber are "" unless the DN has exactly
// one: an identity must not depend on which of two a parser picks.
func nameView(raw []byte) Name {
	v := Name{O: []string{}, OU: []string{}, C: []string{}, L: []string{}, ST: []string{}}
	rdns, err := parseDN(raw)
	if err != nil {
		return v
	}
	v.DN = rdns.String()
	var cns, sns []string
	for _, rdn := range rdns {
		for _, atv := range rdn {
			s, ok := atv.Value.(string)
			if !ok {
				continue
			}
			switch {
			case atv.Type.Equal(oidCN):
				cns = append(cns, s)
			case atv.Type.Equal(oidDNSerialNumber):
				sns = append(sns, s)
			case atv.Type.Equal(oidO):
				v.O = append(v.O, s)
			case atv.Type.Equal(oidOU):
				v.OU = append(v.OU, s)
			case atv.Type.Equal(oidC):
				v.C = append(v.C, s)
			case atv.Type.Equal(oidL):
				v.L = append(v.L, s)
			case atv.Type.Equal(oidST):
				v.ST = append(v.ST, s)
			}
		}
	}
	if len(cns) == 1 {
		v.CN = cns[0]
	}
	if len(sns) == 1 {
		v.SerialNumber = sns[0]
	}
	return v
}

var (
	oidCN = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidC  = asn1.ObjectIdentifier{2, 5, 4, 6}
	oidL  = asn1.ObjectIdentifier{2, 5, 4, 7}
	oidST = asn1.ObjectIdentifier{2, 5, 4, 8}
	oidO  = asn1.ObjectIdentifier{2, 5, 4, 10}
	oidOU = asn1.ObjectIdentifier{2, 5, 4, 11}
)

// parseDN parses an encoded DN.
func parseDN(raw []byte) (pkix.RDNSequence, error) {
	var rdns pkix.RDNSequence
	rest, err := asn1.Unmarshal(raw, &rdns)
	if err == nil && len(rest) > 0 {
		err = errors.New("trailing data after the DN")
	}
	return rdns, err
}

// dnString is the RFC 4514 string of an encoded DN, every attribute in
// its place ("" if it does not parse, which crypto/x509 would not let by).
func dnString(raw []byte) string {
	rdns, err := parseDN(raw)
	if err != nil {
		return ""
	}
	return rdns.String()
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
