package register

import (
	"encoding/json"

	"github.com/keybridge/sts/internal/clients"
	"github.com/keybridge/sts/internal/store"
)

// Members of key-based client registration (RFC 8705 §2.1.2 and §3.4, RFC
// 9449 §5.2).
const (
	mTLSSubjectDN = "tls_client_auth_subject_dn"
	mTLSSANDNS    = "tls_client_auth_san_dns"
	mTLSSANURI    = "tls_client_auth_san_uri"
	mTLSSANIP     = "tls_client_auth_san_ip"
	mTLSSANEmail  = "tls_client_auth_san_email"
	mTLSBound     = "tls_client_certificate_bound_access_tokens"
	mDPoPBound    = "dpop_bound_access_tokens"
)

// parseBinding reads the binding members into m.Binding; the registry
// checks them against the method (clients.Spec.Build). The keys of a
// key-based client are its Binding; another client's are only stored and
// echoed, as before. Certificate-bound tokens are on by default for the
// certificate methods.
func parseBinding(m *metadata, str func(string) (string, bool), boolean func(string) bool, present func(string) bool) {
	b := &m.Binding
	for k, dst := range map[string]*string{
		mTLSSubjectDN: &b.TLSSubjectDN, mTLSSANDNS: &b.TLSSANDNS, mTLSSANURI: &b.TLSSANURI,
		mTLSSANIP: &b.TLSSANIP, mTLSSANEmail: &b.TLSSANEmail,
	} {
		*dst, _ = str(k)
	}
	b.DPoPBoundTokens = boolean(mDPoPBound)
	b.TLSBoundTokens = boolean(mTLSBound)
	if !present(mTLSBound) && clients.CertificateMethod(m.AuthMethod) {
		b.TLSBoundTokens = true
	}
	if clients.KeyBased(m.AuthMethod) {
		b.JWKS, b.JWKSURI = m.jwks, m.jwksURI
		return
	}
	if m.jwks != nil {
		m.Other["jwks"] = m.jwks
	}
	if m.jwksURI != "" {
		raw, _ := json.Marshal(m.jwksURI)
		m.Other["jwks_uri"] = raw
	}
}

// bindingInfo adds the binding of c to a client information response.
func bindingInfo(out map[string]any, c *store.Client) {
	b := c.Binding
	for k, v := range map[string]string{
		mTLSSubjectDN: b.TLSSubjectDN, mTLSSANDNS: b.TLSSANDNS, mTLSSANURI: b.TLSSANURI,
		mTLSSANIP: b.TLSSANIP, mTLSSANEmail: b.TLSSANEmail, "jwks_uri": b.JWKSURI,
	} {
		if v != "" {
			out[k] = v
		}
	}
	if len(b.JWKS) > 0 {
		out["jwks"] = json.RawMessage(b.JWKS)
	}
	if clients.CertificateMethod(c.AuthMethod) || b.TLSBoundTokens {
		out[mTLSBound] = b.TLSBoundTokens
	}
	if b.DPoPBoundTokens {
		out[mDPoPBound] = true
	}
}
