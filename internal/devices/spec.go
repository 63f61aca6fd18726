package devices

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keybridge/sts/internal/celpolicy"
	"github.com/keybridge/sts/internal/devicecert"
	"github.com/keybridge/sts/internal/store"
)

// Spec is an operator's description of a device trust profile, before it
// is checked: what `sts device profile add` flags, the portal's form and
// the configuration file's device-profiles entries say. Zero values take
// the defaults Build documents.
type Spec struct {
	// Name: [a-z0-9][a-z0-9-]{0,62}.
	Name string
	// Kind is store.DeviceKindCBRS (the default) or DeviceKindX509.
	Kind string
	// Anchors is the PEM of the trust anchors (one certificate at least).
	Anchors []byte
	// Identity is the CEL expression naming the device (x509 only).
	Identity string
	// EKU is clientAuth (the default), any or none.
	EKU string
	// CRLFiles are absolute paths of CRL files.
	CRLFiles []string
	// OCSPURL is an http or https URL, or empty.
	OCSPURL string
	// FCCIDs is the allow-list of FCC IDs (cbrs only); empty: any.
	FCCIDs []string
	// Audiences and Scopes the profile's tokens may carry.
	Audiences, Scopes []string
	// Policy holds the CEL rules (condition, scope, claims).
	Policy store.Policy
	// TokenTTL caps the tokens' lifetime; zero is the server's default.
	TokenTTL time.Duration
	// MaxBatch caps a domain proxy's batch; zero is DefaultMaxBatch.
	MaxBatch int
}

// Bounds and defaults.
const (
	// DefaultMaxBatch and MaxBatch bound a /token/batch array, as a SAS
	// bounds the arrays of its requests.
	DefaultMaxBatch = 100
	MaxBatch        = 512
	// MaxTokenTTL: a device token lives at most a day.
	MaxTokenTTL = 24 * time.Hour
	// MaxAnchorsSize bounds the anchors' PEM (a few dozen roots fit).
	MaxAnchorsSize = 1 << 20
	// MaxCRLFiles and MaxFCCIDs bound the lists of a profile.
	MaxCRLFiles = 32
	MaxFCCIDs   = 10000
	// MaxFCCIDLen and MaxSerialLen bound the identifiers as devicecert
	// reads them from certificates (the SAS-CBSD protocol's
	// cbsdSerialNumber is at most 64 octets, fccId 19 characters).
	MaxFCCIDLen  = devicecert.MaxIdentifierLen
	MaxSerialLen = devicecert.MaxIdentifierLen
)

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Problem is one thing wrong with a Spec (or a delegation). Field is the
// CLI flag's name without dashes ("anchors", "fcc-id", "claim NAME"),
// also the configuration file's key; "" when the problem is the whole
// profile's (from devicecert.Compile).
type Problem struct {
	Field string
	Msg   string
}

func (p *Problem) Error() string {
	if p.Field == "" {
		return p.Msg
	}
	return p.Field + ": " + p.Msg
}

// Problems is every problem found.
type Problems []*Problem

func (p Problems) Error() string {
	msgs := make([]string, len(p))
	for i, e := range p {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// Build checks every field and compiles the profile with
// devicecert.Compile (anchors, identity expression, CRL files); it returns
// the record to store, enabled, stamped now, or Problems naming each
// problem.
func (s *Spec) Build(now time.Time) (*store.DeviceProfile, *devicecert.Profile, error) {
	p, err := s.check(now)
	if err != nil {
		return nil, nil, err
	}
	// The CEL rules, the identity expression, the anchors as a pool and
	// the CRL files are devicecert's to check: a profile saved is one the
	// token endpoint can use.
	cp, err := devicecert.Compile(p)
	if err != nil {
		return nil, nil, compileProblems(p.Name, err)
	}
	return p, cp, nil
}

// compileProblems turns devicecert.Compile's error (one line per problem,
// each `device profile "NAME": what: why`) into Problems by field, so that
// the portal shows each beside its field.
func compileProblems(name string, err error) Problems {
	var probs Problems
	prefix := fmt.Sprintf("device profile %q: ", name)
	for _, line := range strings.Split(err.Error(), "\n") {
		line = strings.TrimPrefix(line, prefix)
		field := ""
		for _, f := range []struct{ prefix, field string }{
			{"anchors", "anchors"}, {"identity", "identity"}, {"crl", "crl"},
			{"fcc ids", "fcc-id"}, {"ocsp", "ocsp"}, {"eku", "eku"}, {"kind", "kind"},
		} {
			if strings.HasPrefix(line, f.prefix) {
				field = f.field
				line = strings.TrimPrefix(strings.TrimPrefix(line, f.prefix), ":")
				line = strings.TrimSpace(line)
				break
			}
		}
		probs = append(probs, &Problem{Field: field, Msg: line})
	}
	return probs
}

// Validate checks every field but does not compile the profile (nor read
// its CRL files): the configuration file's check when it is loaded.
func (s *Spec) Validate() error {
	_, err := s.check(time.Time{})
	return err
}

func (s *Spec) check(now time.Time) (*store.DeviceProfile, error) {
	var probs Problems
	bad := func(field, format string, args ...any) {
		probs = append(probs, &Problem{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if !nameRE.MatchString(s.Name) {
		bad("name", "%q must be 1 to 63 lower-case letters, digits and '-', starting with a letter or digit", s.Name)
	}
	kind := s.Kind
	if kind == "" {
		kind = store.DeviceKindCBRS
	}
	switch kind {
	case store.DeviceKindCBRS:
		if s.Identity != "" {
			bad("identity", "is for x509 profiles: a cbrs profile reads the FCC ID and serial number from the certificate")
		}
	case store.DeviceKindX509:
		if strings.TrimSpace(s.Identity) == "" {
			bad("identity", "is required for an x509 profile (a CEL expression over cert, e.g. cert.subject.cn)")
		}
		if len(s.FCCIDs) > 0 {
			bad("fcc-id", "is for cbrs profiles")
		}
	default:
		bad("kind", "%q is not cbrs or x509", s.Kind)
	}
	switch {
	case len(s.Anchors) == 0:
		bad("anchors", "is required: the PEM of the root certificates")
	case len(s.Anchors) > MaxAnchorsSize:
		bad("anchors", "is larger than %d bytes", MaxAnchorsSize)
	default:
		if err := checkAnchors(s.Anchors); err != nil {
			bad("anchors", "%v", err)
		}
	}
	eku := s.EKU
	if eku == "" {
		eku = store.EKUClientAuth
	}
	if !slices.Contains([]string{store.EKUClientAuth, store.EKUAny, store.EKUNone}, eku) {
		bad("eku", "%q is not clientAuth, any or none", s.EKU)
	}
	var crls []string
	if len(s.CRLFiles) > MaxCRLFiles {
		bad("crl", "more than %d CRL files", MaxCRLFiles)
	}
	for _, f := range s.CRLFiles {
		switch {
		case !filepath.IsAbs(f):
			bad("crl", "%q must be an absolute path", f)
		case strings.ContainsFunc(f, isControl):
			bad("crl", "%q must not contain control characters", f)
		case !slices.Contains(crls, filepath.Clean(f)):
			crls = append(crls, filepath.Clean(f))
		}
	}
	if s.OCSPURL != "" {
		u, err := url.Parse(s.OCSPURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Fragment != "" {
			bad("ocsp", "%q is not an http or https URL", s.OCSPURL)
		}
	}
	var fccs []string
	if len(s.FCCIDs) > MaxFCCIDs {
		bad("fcc-id", "more than %d FCC IDs", MaxFCCIDs)
	}
	for _, f := range s.FCCIDs {
		if err := CheckFCCID(f); err != nil {
			bad("fcc-id", "%v", err)
		} else if !slices.Contains(fccs, f) {
			fccs = append(fccs, f)
		}
	}
	var auds []string
	for _, a := range s.Audiences {
		switch {
		case strings.TrimSpace(a) == "":
			bad("audience", "must not be empty")
		case strings.ContainsFunc(a, isControl) || !utf8.ValidString(a):
			bad("audience", "%q must be valid UTF-8 without control characters", a)
		case !slices.Contains(auds, a):
			auds = append(auds, a)
		}
	}
	var scopes []string
	for _, sc := range s.Scopes {
		if !validScope(sc) {
			bad("scope", "%q is not a scope token (RFC 6749 §3.3: printable ASCII, no space, quote or backslash)", sc)
		} else if !slices.Contains(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	for name := range s.Policy.Claims {
		if err := celpolicy.CheckClaimName(name); err != nil {
			bad("claim "+name, "%v", err)
		}
	}
	if s.Policy.Subject != "" {
		bad("subject", "a device's subject comes from its certificate, not a rule")
	} else if _, err := celpolicy.Compile(fmt.Sprintf("device profile %q", s.Name), s.Policy); err != nil {
		// Type-checked now, so that a bad rule is refused when saved or
		// loaded, never when a device asks; the rules see `device`.
		errs := []error{err}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = j.Unwrap()
		}
		for _, e := range errs {
			var ce *celpolicy.Error
			if !errors.As(e, &ce) {
				bad("policy", "%v", e)
				continue
			}
			field := ce.Rule
			if field == celpolicy.RuleScope {
				field = "scope-rule"
			}
			bad(field, "%s", ce.Msg)
		}
	}
	if s.TokenTTL < 0 || s.TokenTTL > MaxTokenTTL {
		bad("token-ttl", "%v must be between 0 (the server's default) and %v", s.TokenTTL, MaxTokenTTL)
	}
	maxBatch := s.MaxBatch
	if maxBatch == 0 {
		maxBatch = DefaultMaxBatch
	}
	if maxBatch < 1 || maxBatch > MaxBatch {
		bad("max-batch", "%d must be between 1 and %d", s.MaxBatch, MaxBatch)
	}
	if len(probs) > 0 {
		return nil, probs
	}
	now = now.UTC().Truncate(time.Microsecond)
	return &store.DeviceProfile{
		Name: s.Name, Kind: kind, Anchors: slices.Clone(s.Anchors), Identity: s.Identity, EKU: eku,
		CRLFiles: crls, OCSPURL: s.OCSPURL, FCCIDs: fccs, Audiences: auds, Scopes: scopes,
		Policy: clonePolicy(s.Policy), TokenTTL: s.TokenTTL, MaxBatch: maxBatch, Enabled: true,
		CreatedAt: now, UpdatedAt: now,
	}, nil
}

// SpecOf is the Spec of a stored profile (every default explicit), for
// partial updates.
func SpecOf(p *store.DeviceProfile) Spec {
	return Spec{
		Name: p.Name, Kind: p.Kind, Anchors: slices.Clone(p.Anchors), Identity: p.Identity, EKU: p.EKU,
		CRLFiles: slices.Clone(p.CRLFiles), OCSPURL: p.OCSPURL, FCCIDs: slices.Clone(p.FCCIDs),
		Audiences: slices.Clone(p.Audiences), Scopes: slices.Clone(p.Scopes),
		Policy: clonePolicy(p.Policy), TokenTTL: p.TokenTTL, MaxBatch: p.MaxBatch,
	}
}

// checkAnchors requires PEM holding only certificates, at least one, each
// of a CA.
func checkAnchors(b []byte) error {
	n := 0
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			if strings.TrimSpace(string(rest)) != "" && n == 0 {
				return fmt.Errorf("is not PEM")
			}
			break
		}
		if blk.Type != "CERTIFICATE" {
			return fmt.Errorf("holds a %q block: give only certificates (no private key)", blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return fmt.Errorf("certificate %d: %v", n+1, err)
		}
		if !c.IsCA {
			return fmt.Errorf("certificate %d (%s) is not a CA certificate", n+1, c.Subject)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("holds no certificate")
	}
	return nil
}

// CheckFCCID reports why f cannot be an FCC ID as devicecert reads one
// from a certificate: empty, longer than MaxFCCIDLen bytes, not UTF-8, or
// holding control or format characters.
func CheckFCCID(f string) error { return checkIdentifier("FCC ID", f) }

// CheckSerial reports why s cannot be a CBSD serial number, as
// CheckFCCID. ':' and '/' are allowed (the device's subject escapes them).
func CheckSerial(s string) error { return checkIdentifier("serial number", s) }

// checkIdentifier words devicecert's check, quoting the value only when
// it is short enough to read.
func checkIdentifier(what, v string) error {
	err := devicecert.CheckIdentifier(v)
	switch {
	case err == nil:
		return nil
	case len(v) > devicecert.MaxIdentifierLen || v == "":
		return fmt.Errorf("the %s %v", what, err)
	}
	return fmt.Errorf("the %s %q %v", what, v, err)
}

// MaxProxyLen bounds a domain proxy's identity.
const MaxProxyLen = 512

// CheckProxy reports why p is not a domain proxy's identity as
// devicecert names it: "dp:" + Escape(FRN) + ":" + Escape(CN), that is
// three parts separated by ':' holding printable ASCII, with '%' only in
// escapes (%XX) and no '/'.
func CheckProxy(p string) error {
	_, err := CanonicalProxy(p)
	return err
}

// CanonicalProxy checks p (CheckProxy) and returns it with its escapes'
// hex digits in upper case, as devicecert.Escape writes them, so that a
// delegation typed "%3a" matches the certificate's "%3A".
func CanonicalProxy(p string) (string, error) {
	parts := strings.Split(p, ":")
	if len(parts) != 3 || parts[0] != "dp" || parts[1] == "" {
		return "", fmt.Errorf("the domain proxy %q is not dp:FRN:CN (its certificate's FRN and common name, escaped)", p)
	}
	if len(p) > MaxProxyLen {
		return "", fmt.Errorf("the domain proxy is longer than %d bytes", MaxProxyLen)
	}
	b := []byte(p)
	for i := len("dp:"); i < len(b); i++ {
		c := b[i]
		switch {
		case c == ':':
		case c == '%':
			if i+2 >= len(b) || !isHex(b[i+1]) || !isHex(b[i+2]) {
				return "", fmt.Errorf("the domain proxy %q has a bad escape", p)
			}
			b[i+1], b[i+2] = upperHex(b[i+1]), upperHex(b[i+2])
			i += 2
		case c <= ' ' || c > '~' || c == '/':
			return "", fmt.Errorf("the domain proxy %q must be printable ASCII, its parts escaped (%%XX)", p)
		}
	}
	return string(b), nil
}

func upperHex(c byte) byte {
	if 'a' <= c && c <= 'f' {
		return c - 'a' + 'A'
	}
	return c
}

// ProxyOf returns the identity of the domain proxy whose certificate
// names FRN frn and common name cn.
func ProxyOf(frn, cn string) string {
	return "dp:" + devicecert.Escape(frn) + ":" + devicecert.Escape(cn)
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func validScope(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7E || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7F }

func clonePolicy(p store.Policy) store.Policy {
	if len(p.Claims) == 0 {
		p.Claims = nil
		return p
	}
	c := make(map[string]string, len(p.Claims))
	for k, v := range p.Claims {
		c[k] = v
	}
	p.Claims = c
	return p
}
