package main

import (
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/keybridge/sts/internal/clients"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
	"github.com/spf13/pflag"
)

// bindingSpec is the flags of a client's authentication method and key
// binding (RFC 8705, RFC 7523, RFC 9449).
type bindingSpec struct {
	authMethod                                 string
	subjectDN, sanDNS, sanURI, sanIP, sanEmail string
	jwksFile, jwksURI                          string
	tlsBound, dpopBound                        bool
	tlsBoundFlag                               *pflag.Flag
}

func bindingFlags(f *pflag.FlagSet, b *bindingSpec) {
	f.StringVar(&b.authMethod, "auth-method", "", "how the client authenticates: client_secret_basic, client_secret_post, tls_client_auth, self_signed_tls_client_auth or private_key_jwt (default: either secret method)")
	f.StringVar(&b.subjectDN, "tls-subject-dn", "", "tls_client_auth: the certificate's subject DN, RFC 4514 form (e.g. CN=svc,O=Example)")
	f.StringVar(&b.sanDNS, "tls-san-dns", "", "tls_client_auth: a DNS name the certificate must carry")
	f.StringVar(&b.sanURI, "tls-san-uri", "", "tls_client_auth: a URI the certificate must carry (e.g. a SPIFFE ID)")
	f.StringVar(&b.sanIP, "tls-san-ip", "", "tls_client_auth: an IP address the certificate must carry")
	f.StringVar(&b.sanEmail, "tls-san-email", "", "tls_client_auth: an email address the certificate must carry")
	f.StringVar(&b.jwksFile, "jwks-file", "", "self_signed_tls_client_auth, private_key_jwt: file of the client's public JWK set")
	f.StringVar(&b.jwksURI, "jwks-uri", "", "self_signed_tls_client_auth, private_key_jwt: https URL of the client's public JWK set")
	f.BoolVar(&b.tlsBound, "tls-bound-tokens", false, "bind the client's access tokens to its certificate (default true for the two TLS methods)")
	f.BoolVar(&b.dpopBound, "dpop-bound-tokens", false, "require a DPoP proof on every token request of the client (RFC 9449)")
	b.tlsBoundFlag = f.Lookup("tls-bound-tokens")
}

// apply sets the method and binding of s from the flags.
func (b *bindingSpec) apply(s *clients.Spec) error {
	s.AuthMethod = b.authMethod
	s.Binding = store.Binding{
		TLSSubjectDN: b.subjectDN, TLSSANDNS: b.sanDNS, TLSSANURI: b.sanURI, TLSSANIP: b.sanIP, TLSSANEmail: b.sanEmail,
		JWKSURI: b.jwksURI, TLSBoundTokens: b.tlsBound, DPoPBoundTokens: b.dpopBound,
	}
	if !b.tlsBoundFlag.Changed && clients.CertificateMethod(b.authMethod) {
		s.Binding.TLSBoundTokens = true
	}
	if b.jwksFile != "" {
		raw, err := readBounded(b.jwksFile, clients.MaxJWKSBytes)
		if err != nil {
			return fmt.Errorf("--jwks-file: %w", err)
		}
		s.Binding.JWKS = raw
	}
	return nil
}

// readBounded reads a file of at most limit bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

// The binding's problems, by flag.
func init() {
	for field, flag := range map[string]string{
		"token_endpoint_auth_method":                 "--auth-method",
		"tls_client_auth":                            "--auth-method tls_client_auth",
		"tls_client_auth_subject_dn":                 "--tls-subject-dn",
		"tls_client_auth_san_dns":                    "--tls-san-dns",
		"tls_client_auth_san_uri":                    "--tls-san-uri",
		"tls_client_auth_san_ip":                     "--tls-san-ip",
		"tls_client_auth_san_email":                  "--tls-san-email",
		"jwks":                                       "--jwks-file",
		"jwks_uri":                                   "--jwks-uri",
		clients.FieldKeys:                            "--jwks-file/--jwks-uri",
		"tls_client_certificate_bound_access_tokens": "--tls-bound-tokens",
	} {
		flagNames[field] = flag
	}
}

// bindingView is the JSON form of a client's binding (RFC 7591 names).
type bindingView struct {
	TLSSubjectDN    string `json:"tls_client_auth_subject_dn,omitempty"`
	TLSSANDNS       string `json:"tls_client_auth_san_dns,omitempty"`
	TLSSANURI       string `json:"tls_client_auth_san_uri,omitempty"`
	TLSSANIP        string `json:"tls_client_auth_san_ip,omitempty"`
	TLSSANEmail     string `json:"tls_client_auth_san_email,omitempty"`
	JWKSURI         string `json:"jwks_uri,omitempty"`
	HasJWKS         bool   `json:"jwks_registered,omitempty"`
	TLSBoundTokens  bool   `json:"tls_client_certificate_bound_access_tokens,omitempty"`
	DPoPBoundTokens bool   `json:"dpop_bound_access_tokens,omitempty"`
}

func viewBinding(b store.Binding) bindingView {
	return bindingView{
		TLSSubjectDN: b.TLSSubjectDN, TLSSANDNS: b.TLSSANDNS, TLSSANURI: b.TLSSANURI, TLSSANIP: b.TLSSANIP, TLSSANEmail: b.TLSSANEmail,
		JWKSURI: b.JWKSURI, HasJWKS: len(b.JWKS) > 0, TLSBoundTokens: b.TLSBoundTokens, DPoPBoundTokens: b.DPoPBoundTokens,
	}
}

// writeBindingText writes the binding lines of `client show`.
func writeBindingText(w io.Writer, v bindingView) {
	for _, kv := range [][2]string{
		{"tls_client_auth_subject_dn", v.TLSSubjectDN}, {"tls_client_auth_san_dns", v.TLSSANDNS},
		{"tls_client_auth_san_uri", v.TLSSANURI}, {"tls_client_auth_san_ip", v.TLSSANIP},
		{"tls_client_auth_san_email", v.TLSSANEmail}, {"jwks_uri", v.JWKSURI},
	} {
		if kv[1] != "" {
			fmt.Fprintf(w, "%s:\t%s\n", kv[0], kv[1])
		}
	}
	if v.HasJWKS {
		fmt.Fprintf(w, "jwks:\tregistered\n")
	}
	if v.TLSBoundTokens {
		fmt.Fprintf(w, "tokens bound to:\tcertificate (x5t#S256)\n")
	}
	if v.DPoPBoundTokens {
		fmt.Fprintf(w, "dpop required:\ttrue\n")
	}
}

// bindingSettings are the binding flags, which `client update` changes
// when given.
var bindingSettings = []string{"auth-method", "tls-subject-dn", "tls-san-dns", "tls-san-uri", "tls-san-ip", "tls-san-email",
	"jwks-file", "jwks-uri", "tls-bound-tokens", "dpop-bound-tokens"}

// edit applies the binding flags given to `client update` to s. A
// certificate name given replaces the registered one, keys given replace
// the registered keys; a new method drops what does not apply to it and
// binds tokens to the certificate by default for the TLS methods.
func (b *bindingSpec) edit(f *pflag.FlagSet, s *clients.Spec) error {
	bd := &s.Binding
	if f.Changed("auth-method") && b.authMethod != s.AuthMethod {
		s.AuthMethod = b.authMethod
		if s.AuthMethod != oauth.AuthMethodTLSClientAuth {
			bd.TLSSubjectDN, bd.TLSSANDNS, bd.TLSSANURI, bd.TLSSANIP, bd.TLSSANEmail = "", "", "", "", ""
		}
		if !clients.KeyBased(s.AuthMethod) || s.AuthMethod == oauth.AuthMethodTLSClientAuth {
			bd.JWKS, bd.JWKSURI = nil, ""
		}
		bd.TLSBoundTokens = clients.CertificateMethod(s.AuthMethod)
	}
	names := []string{"tls-subject-dn", "tls-san-dns", "tls-san-uri", "tls-san-ip", "tls-san-email"}
	if slices.ContainsFunc(names, f.Changed) {
		*bd = store.Binding{JWKS: bd.JWKS, JWKSURI: bd.JWKSURI, TLSBoundTokens: bd.TLSBoundTokens, DPoPBoundTokens: bd.DPoPBoundTokens}
		bd.TLSSubjectDN, bd.TLSSANDNS, bd.TLSSANURI, bd.TLSSANIP, bd.TLSSANEmail = b.subjectDN, b.sanDNS, b.sanURI, b.sanIP, b.sanEmail
	}
	if f.Changed("jwks-file") || f.Changed("jwks-uri") {
		bd.JWKS, bd.JWKSURI = nil, b.jwksURI
		if b.jwksFile != "" {
			raw, err := readBounded(b.jwksFile, clients.MaxJWKSBytes)
			if err != nil {
				return fmt.Errorf("--jwks-file: %w", err)
			}
			bd.JWKS = raw
		}
	}
	if f.Changed("tls-bound-tokens") {
		bd.TLSBoundTokens = b.tlsBound
	}
	if f.Changed("dpop-bound-tokens") {
		bd.DPoPBoundTokens = b.dpopBound
	}
	return nil
}
