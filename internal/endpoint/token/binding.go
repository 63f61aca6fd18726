package token

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/keybridge/sts/dpop"
	"github.com/keybridge/sts/internal/clientcert"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
)

// OAuth error codes of DPoP (RFC 9449 §12.2).
const (
	ErrInvalidDPoPProof oauth.ErrorCode = dpop.CodeInvalidProof
	ErrUseDPoPNonce     oauth.ErrorCode = dpop.CodeUseNonce
)

// possession is what a token request proves about keys: a verified DPoP
// proof, and the thumbprint of the client certificate of the connection.
type possession struct {
	proof *dpop.Proof
	// x5t is the x5t#S256 of the request's client certificate; "" when
	// there is none.
	x5t string
}

// prove verifies the request's DPoP proof, if any, reads its client
// certificate, and enforces the client's binding settings: a client with
// dpop_bound_access_tokens must send a proof (RFC 9449 §5.2), one with
// tls_client_certificate_bound_access_tokens must present its certificate
// (RFC 8705 §3), since its tokens are bound to it.
func (e *Endpoint) prove(w http.ResponseWriter, r *http.Request, c *store.Client) (possession, error) {
	var p possession
	proofs := r.Header.Values(dpop.Header)
	if e.nonces != nil {
		// A fresh nonce on every answer saves the client a round trip
		// when the one it holds runs out (RFC 9449 §8.2).
		w.Header().Set(dpop.NonceHeader, e.nonces.Nonce(e.now()))
	}
	switch {
	case len(proofs) > 1:
		return p, oauth.NewError(ErrInvalidDPoPProof, "send one DPoP header, not %d", len(proofs))
	case len(proofs) == 1:
		if e.dpop == nil {
			return p, oauth.NewError(ErrInvalidDPoPProof, "DPoP is not enabled at this server")
		}
		pr, err := e.dpop.Verify(r.Context(), proofs[0], http.MethodPost, e.tokenURL, "")
		if de := dpop.AsError(err); de != nil {
			oe := oauth.NewError(oauth.ErrorCode(de.Code), "DPoP proof: %s", de.Description)
			if de.Nonce != "" {
				w.Header().Set(dpop.NonceHeader, de.Nonce)
			}
			return p, oe
		}
		if err != nil {
			return p, err // the replay store failed: a server error
		}
		p.proof = pr
	case c.Binding.DPoPBoundTokens:
		return p, oauth.NewError(ErrInvalidDPoPProof, "this client's tokens are DPoP-bound (dpop_bound_access_tokens): send a DPoP proof with every token request")
	}
	cert, err := e.certs.Certificate(r)
	if err != nil {
		return p, oauth.NewError(oauth.ErrInvalidRequest, "the forwarded client certificate cannot be read").WithCause(err)
	}
	if cert != nil {
		p.x5t = clientcert.Thumbprint(cert)
	}
	if c.Binding.TLSBoundTokens && p.x5t == "" {
		return p, oauth.NewError(oauth.ErrInvalidRequest, "this client's tokens are bound to its certificate (tls_client_certificate_bound_access_tokens): send the request over TLS with the certificate")
	}
	return p, nil
}

// parseCnf reads the cnf of a presented token. This server binds to a DPoP
// key (jkt) or a certificate (x5t#S256); a confirmation method it does not
// know cannot be proven, so it is an error, not something to ignore.
func parseCnf(raw []byte) (*oauth.Confirmation, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, errors.New("its cnf is not a JSON object")
	}
	for k := range m {
		if k != "jkt" && k != "x5t#S256" {
			return nil, errors.New("its cnf holds a confirmation method this server cannot check (" + clip(k) + ")")
		}
	}
	var c oauth.Confirmation
	if err := json.Unmarshal(raw, &c); err != nil || c.IsZero() {
		return nil, errors.New("its cnf is not a jkt or x5t#S256 string")
	}
	return &c, nil
}

// bound checks that the request proves the key a presented token is bound
// to (SPEC §7): the DPoP proof's key for cnf.jkt, the connection's client
// certificate for cnf x5t#S256. It returns the binding, nil for a bearer
// token.
func (p *possession) bound(param string, raw []byte, code oauth.ErrorCode, tr *Trace) (*oauth.Confirmation, error) {
	cnf, err := parseCnf(raw)
	if err != nil {
		tr.add(param, "refused", "sender-constrained: %v", err)
		return nil, oauth.NewError(code, "%s is sender-constrained but %v", param, err)
	}
	if cnf == nil {
		return nil, nil
	}
	if cnf.JKT != "" {
		switch {
		case p.proof == nil:
			tr.add(param, "refused", "bound to a DPoP key (cnf.jkt) and the request has no DPoP proof")
			return nil, oauth.NewError(code, "%s is bound to a DPoP key (cnf.jkt): send a DPoP proof signed with that key", param)
		case p.proof.JKT != cnf.JKT:
			tr.add(param, "refused", "bound to DPoP key %s, the proof is signed by %s", cnf.JKT, p.proof.JKT)
			return nil, oauth.NewError(code, "%s is bound to another DPoP key than the proof's", param)
		}
	}
	if cnf.X5tS256 != "" {
		switch {
		case p.x5t == "":
			tr.add(param, "refused", "bound to a client certificate (cnf x5t#S256) and the request has none")
			return nil, oauth.NewError(code, "%s is bound to a client certificate (cnf x5t#S256): send the request over TLS with that certificate", param)
		case p.x5t != cnf.X5tS256:
			tr.add(param, "refused", "bound to certificate %s, the request's is %s", cnf.X5tS256, p.x5t)
			return nil, oauth.NewError(code, "%s is bound to another client certificate than the request's", param)
		}
	}
	tr.add(param, "ok", "sender-constrained, and the request proves the key")
	return cnf, nil
}

// issuedBinding is the cnf of the tokens a request issues: the binding of
// the presented token it derives from (proven by the request), else the
// DPoP proof's key, else the client certificate for a client whose tokens
// are certificate-bound; nil for bearer tokens.
func (p *possession) issuedBinding(c *store.Client, from *oauth.Confirmation) *oauth.Confirmation {
	switch {
	case from != nil:
		return from
	case p.proof != nil:
		return &oauth.Confirmation{JKT: p.proof.JKT}
	case c.Binding.TLSBoundTokens && p.x5t != "":
		return &oauth.Confirmation{X5tS256: p.x5t}
	}
	return nil
}

// jtiReplay is the DPoP replay cache of the server: the store's single-use
// identifiers, shared by every instance.
type jtiReplay struct{ jtis store.UsedJTIs }

// dpopJTIIssuer is the issuer under which proof jtis are kept; issuers of
// assertions are URLs, so it names no one else's.
const dpopJTIIssuer = "urn:keybridge:sts:dpop"

func (j jtiReplay) Seen(ctx context.Context, jti string, exp time.Time) (bool, error) {
	err := j.jtis.ConsumeJTI(ctx, dpopJTIIssuer, jti, exp)
	if errors.Is(err, store.ErrConflict) {
		return true, nil
	}
	return false, err
}

// NewReplayCache is a dpop.ReplayCache backed by the store, so that a proof
// is single-use across all instances sharing it.
func NewReplayCache(jtis store.UsedJTIs) dpop.ReplayCache { return jtiReplay{jtis} }
