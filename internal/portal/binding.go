package portal

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/keybridge/sts/internal/clients"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
)

// bindingForm is the part of the client form about how the client
// authenticates (RFC 8705, RFC 7523) and binds its tokens.
type bindingForm struct {
	AuthMethod string
	// TLSNameKind is which certificate name a tls_client_auth client
	// registers (subject_dn, san_dns, san_uri, san_ip, san_email) and
	// TLSName its value.
	TLSNameKind, TLSName string
	JWKS, JWKSURI        string
	TLSBound, DPoPBound  bool
}

// authMethodChoices are the methods the form offers.
var authMethodChoices = []struct{ Value, Label, Hint string }{
	{"", "client secret", "HTTP Basic or form parameters (RFC 6749 §2.3.1)"},
	{oauth.AuthMethodTLSClientAuth, "tls_client_auth", "a certificate from the server's client CA carrying the name below (RFC 8705 §2.1)"},
	{oauth.AuthMethodSelfSignedTLSClientAuth, "self_signed_tls_client_auth", "a certificate whose key is in the JWK set below (RFC 8705 §2.2)"},
	{oauth.AuthMethodPrivateKeyJWT, "private_key_jwt", "a JWT signed by a key of the JWK set below (RFC 7523 §2.2)"},
}

// tlsNameChoices are the certificate names a tls_client_auth client may
// register, exactly one.
var tlsNameChoices = []struct{ Value, Label string }{
	{"subject_dn", "Subject DN (RFC 4514, e.g. CN=svc,O=Example)"},
	{"san_dns", "DNS name (SAN)"},
	{"san_uri", "URI (SAN), e.g. a SPIFFE ID"},
	{"san_ip", "IP address (SAN)"},
	{"san_email", "Email address (SAN)"},
}

func bindingFormOf(c *store.Client) bindingForm {
	b := c.Binding
	f := bindingForm{AuthMethod: c.AuthMethod, JWKSURI: b.JWKSURI, TLSBound: b.TLSBoundTokens, DPoPBound: b.DPoPBoundTokens}
	if f.AuthMethod == oauth.AuthMethodClientSecretBasic || f.AuthMethod == oauth.AuthMethodClientSecretPost {
		// The form offers "client secret"; the stored method is kept by
		// an update that does not change it (see apply).
		f.AuthMethod = c.AuthMethod
	}
	for kind, v := range map[string]string{"subject_dn": b.TLSSubjectDN, "san_dns": b.TLSSANDNS, "san_uri": b.TLSSANURI, "san_ip": b.TLSSANIP, "san_email": b.TLSSANEmail} {
		if v != "" {
			f.TLSNameKind, f.TLSName = kind, v
		}
	}
	if len(b.JWKS) > 0 {
		var out bytes.Buffer
		if json.Indent(&out, b.JWKS, "", "  ") == nil {
			f.JWKS = out.String()
		}
	}
	return f
}

// IsSecret reports whether the form's method is a secret one.
func (f *bindingForm) IsSecret() bool { return !clients.KeyBased(f.AuthMethod) }

func parseBindingForm(post func(string) string) bindingForm {
	return bindingForm{
		AuthMethod:  strings.TrimSpace(post("auth_method")),
		TLSNameKind: post("tls_name_kind"),
		TLSName:     strings.TrimSpace(post("tls_name")),
		JWKS:        strings.TrimSpace(post("jwks")),
		JWKSURI:     strings.TrimSpace(post("jwks_uri")),
		TLSBound:    post("tls_bound") == "on",
		DPoPBound:   post("dpop_bound") == "on",
	}
}

// applyBinding writes the method and binding into s: the certificate name
// for tls_client_auth, the keys for the key methods, bound tokens for the
// certificate methods; what does not apply to the chosen method is left
// out rather than refused, since the form keeps every field. The registry
// checks the rest.
func (f *clientForm) applyBinding(s *clients.Spec) {
	b := f.bindingForm
	switch {
	case b.AuthMethod == "" && (s.AuthMethod == oauth.AuthMethodClientSecretBasic || s.AuthMethod == oauth.AuthMethodClientSecretPost):
		// A secret client keeps the secret method it registered.
	default:
		s.AuthMethod = b.AuthMethod
	}
	s.Binding = store.Binding{DPoPBoundTokens: b.DPoPBound}
	switch s.AuthMethod {
	case oauth.AuthMethodTLSClientAuth:
		dst := map[string]*string{
			"subject_dn": &s.Binding.TLSSubjectDN, "san_dns": &s.Binding.TLSSANDNS, "san_uri": &s.Binding.TLSSANURI,
			"san_ip": &s.Binding.TLSSANIP, "san_email": &s.Binding.TLSSANEmail,
		}[b.TLSNameKind]
		if dst == nil || b.TLSName == "" {
			f.Errors["tls_name"] = "choose the kind of certificate name and enter it"
		} else {
			*dst = b.TLSName
		}
	case oauth.AuthMethodSelfSignedTLSClientAuth, oauth.AuthMethodPrivateKeyJWT:
		if b.JWKS != "" {
			s.Binding.JWKS = []byte(b.JWKS)
		}
		s.Binding.JWKSURI = b.JWKSURI
	}
	s.Binding.TLSBoundTokens = b.TLSBound && clients.CertificateMethod(s.AuthMethod)
}

// The registry's binding problems, by form field.
func init() {
	for k, v := range map[string]string{
		"token_endpoint_auth_method": "auth_method", "tls_client_auth": "tls_name",
		"tls_client_auth_subject_dn": "tls_name", "tls_client_auth_san_dns": "tls_name", "tls_client_auth_san_uri": "tls_name",
		"tls_client_auth_san_ip": "tls_name", "tls_client_auth_san_email": "tls_name",
		"jwks": "jwks", clients.FieldKeys: "jwks", "jwks_uri": "jwks_uri",
		"tls_client_certificate_bound_access_tokens": "tls_bound",
	} {
		fieldOf[k] = v
	}
}
