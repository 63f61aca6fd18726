package resource

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/keybridge/sts/dpop"
	"github.com/keybridge/sts/internal/clientcert"
	"github.com/keybridge/sts/internal/clientip"
	"github.com/keybridge/sts/oauth"
)

// Errors of sender-constrained tokens (RFC 8705 §3, RFC 9449 §7).
var (
	// ErrBound: a token bound to a key (cnf) presented without proof of
	// it: as a Bearer token, through Verify alone, or with a confirmation
	// method this package does not check.
	ErrBound = errors.New("resource: token is sender-constrained and was presented without proof of its key")
	// ErrCertificate: a certificate-bound token (cnf x5t#S256) over a
	// connection without that client certificate.
	ErrCertificate = errors.New("resource: token is bound to another client certificate")
	// ErrNotDPoPBound: the DPoP scheme with a token that is not bound to
	// a DPoP key.
	ErrNotDPoPBound = errors.New("resource: token is not DPoP-bound")
	// ErrDPoPProof: the DPoP proof is missing, malformed, replayed, or
	// does not match the request, the token or its key.
	ErrDPoPProof = errors.New("resource: invalid DPoP proof")
	// ErrDPoPNonce: the proof lacks the current server nonce; the answer
	// carries one (DPoP-Nonce).
	ErrDPoPNonce = errors.New("resource: DPoP nonce required")
)

// DefaultDPoPReplayEntries bounds the default in-memory replay cache of
// DPoP proofs.
const DefaultDPoPReplayEntries = 100000

// DPoPConfig tunes the checks of DPoP-bound tokens (RFC 9449 §7).
type DPoPConfig struct {
	// Algorithms is the allow-list of proof algorithms (RFC 7518 names);
	// empty: dpop.DefaultAlgorithms. none and HMAC are never accepted.
	Algorithms []string
	// MaxAge is how old a proof may be by its iat, Leeway how far in the
	// future (zero: the dpop package's defaults, 2 min and 30 s).
	MaxAge, Leeway time.Duration
	// Replay makes each proof single-use; share one store between the
	// instances of the service to refuse a proof replayed to another. Nil:
	// an in-memory cache of at most ReplayEntries proofs (zero:
	// DefaultDPoPReplayEntries), each kept until it is too old anyway.
	Replay        dpop.ReplayCache
	ReplayEntries int
	// Nonces, when set, requires a server nonce in every proof (RFC 9449
	// §9): a proof without the current one is answered 401
	// error="use_dpop_nonce" with a DPoP-Nonce header.
	Nonces dpop.Nonces
	// RequestURL returns the URL the client used for r, without query or
	// fragment, to compare with the proof's htu. Nil: https when r
	// arrived over TLS, else http, with r.Host and r.URL.Path; set it
	// behind a proxy that changes the scheme, host or path.
	RequestURL func(r *http.Request) string
}

// binding is what a Verifier needs to check sender-constrained tokens.
type binding struct {
	dpop     *dpop.Verifier
	nonces   dpop.Nonces
	reqURL   func(*http.Request) string
	algs     string
	certs    *clientcert.Source
	hasProxy bool
}

func newBinding(cfg Config) (*binding, error) {
	var dc DPoPConfig
	if cfg.DPoP != nil {
		dc = *cfg.DPoP
	}
	b := &binding{nonces: dc.Nonces, reqURL: dc.RequestURL}
	if b.reqURL == nil {
		b.reqURL = requestURL
	}
	v := &dpop.Verifier{MaxAge: dc.MaxAge, Leeway: dc.Leeway, Replay: dc.Replay, Nonces: dc.Nonces, Now: cfg.Now}
	for _, a := range dc.Algorithms {
		if !allowedAlgorithms[a] {
			return nil, fmt.Errorf("resource: DPoP algorithm %q is not allowed", a)
		}
		v.Algorithms = append(v.Algorithms, jose.SignatureAlgorithm(a))
	}
	if v.Replay == nil {
		n := dc.ReplayEntries
		if n <= 0 {
			n = DefaultDPoPReplayEntries
		}
		v.Replay = dpop.NewMemoryReplay(n)
	}
	algs := v.Algorithms
	if len(algs) == 0 {
		algs = dpop.DefaultAlgorithms
	}
	names := make([]string, len(algs))
	for i, a := range algs {
		names[i] = string(a)
	}
	b.algs = strings.Join(names, " ")
	b.dpop = v
	b.certs = &clientcert.Source{}
	if cfg.ClientCertHeader != "" {
		proxies, err := clientip.Parse(strings.Join(cfg.TrustedProxies, ","))
		if err != nil {
			return nil, fmt.Errorf("resource: TrustedProxies: %w", err)
		}
		b.certs = &clientcert.Source{Header: cfg.ClientCertHeader, Proxies: proxies}
		b.hasProxy = len(cfg.TrustedProxies) > 0
	}
	return b, nil
}

// requestURL is the default htu of a request.
func requestURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + r.URL.EscapedPath()
}

// VerifyRequest verifies the access token of r and, for a
// sender-constrained token, that r proves possession of its key:
//   - "Authorization: Bearer <token>": the token must not be DPoP-bound
//     (RFC 9449 §7.2); a certificate-bound token (cnf x5t#S256, RFC 8705
//     §3) must come over a connection whose client certificate (TLS
//     handshake, or the ClientCertHeader of a trusted proxy) has that
//     SHA-256 thumbprint;
//   - "Authorization: DPoP <token>": the token must be DPoP-bound and
//     the request must carry exactly one DPoP proof (RFC 9449 §4.3, §7.1)
//     signed by the bound key (cnf.jkt), for this method and URL (htm,
//     htu), this token (ath), recent (iat), not seen before (jti), and
//     with the current nonce when DPoPConfig.Nonces is set.
//
// Tokens checked by introspection are held to the same rules with the cnf
// of the introspection answer. Errors wrap the package's errors;
// [Verifier.Middleware] turns them into challenges.
func (v *Verifier) VerifyRequest(r *http.Request) (*Claims, error) {
	scheme, tok, err := authorization(r)
	if err != nil {
		return nil, err
	}
	if tok == "" {
		return nil, errNoToken
	}
	c, err := v.verify(r.Context(), tok)
	if err != nil {
		return nil, err
	}
	if c.cnfUnknown {
		return nil, fmt.Errorf("%w: unsupported confirmation method in cnf", ErrBound)
	}
	cnf := c.Confirmation
	if x5t := cnf.X5tS256; x5t != "" {
		cert, err := v.bind.certs.Certificate(r)
		if err != nil || cert == nil {
			return nil, fmt.Errorf("%w: no client certificate", ErrCertificate)
		}
		if subtle.ConstantTimeCompare([]byte(clientcert.Thumbprint(cert)), []byte(x5t)) != 1 {
			return nil, ErrCertificate
		}
	}
	if scheme == schemeBearer {
		if cnf.JKT != "" {
			return nil, fmt.Errorf("%w: a DPoP-bound token must be sent with the DPoP scheme", ErrBound)
		}
		return c, nil
	}
	if cnf.JKT == "" {
		return nil, ErrNotDPoPBound
	}
	proofs := r.Header.Values(dpop.Header)
	if len(proofs) != 1 {
		return nil, fmt.Errorf("%w: %d DPoP headers, want exactly one", ErrDPoPProof, len(proofs))
	}
	p, err := v.bind.dpop.Verify(r.Context(), proofs[0], r.Method, v.bind.reqURL(r), tok)
	if err != nil {
		de := dpop.AsError(err)
		switch {
		case de == nil:
			return nil, fmt.Errorf("%w: DPoP replay cache: %v", ErrUnavailable, err)
		case de.Code == dpop.CodeUseNonce:
			return nil, fmt.Errorf("%w: %s", ErrDPoPNonce, de.Description)
		}
		return nil, fmt.Errorf("%w: %s", ErrDPoPProof, de.Description)
	}
	if subtle.ConstantTimeCompare([]byte(p.JKT), []byte(cnf.JKT)) != 1 {
		return nil, fmt.Errorf("%w: the proof's key is not the one the token is bound to", ErrDPoPProof)
	}
	return c, nil
}

const (
	schemeBearer = "Bearer"
	schemeDPoP   = "DPoP"
)

// errNoToken: the request has no Authorization header.
var errNoToken = errors.New("resource: no access token")

// errMalformedAuth: an Authorization header that cannot be read.
var errMalformedAuth = errors.New("resource: malformed Authorization header")

// authorization reads "Authorization: Bearer|DPoP <token>". No header is
// ("", "", nil); another scheme is treated as no token.
func authorization(r *http.Request) (scheme, tok string, err error) {
	hs := r.Header.Values("Authorization")
	switch {
	case len(hs) == 0:
		return "", "", nil
	case len(hs) > 1:
		return "", "", errMalformedAuth
	}
	s, t, ok := strings.Cut(hs[0], " ")
	if !ok {
		return "", "", errMalformedAuth
	}
	switch {
	case strings.EqualFold(s, schemeBearer):
		scheme = schemeBearer
	case strings.EqualFold(s, schemeDPoP):
		scheme = schemeDPoP
	default:
		return "", "", nil
	}
	t = strings.TrimLeft(t, " ")
	if !isToken68(t) {
		return "", "", errMalformedAuth
	}
	return scheme, t, nil
}

// parseCnf reads a cnf claim (RFC 7800 §3.1): x5t#S256 and jkt are
// understood; any other member makes the token one this package cannot
// check (unknown true), which is refused rather than treated as bearer.
func parseCnf(raw json.RawMessage) (cnf oauth.Confirmation, unknown bool, err error) {
	if len(raw) == 0 || string(raw) == "null" {
		return cnf, false, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return cnf, false, fmt.Errorf("cnf: %w", err)
	}
	for k, v := range m {
		var s string
		switch k {
		case "x5t#S256":
			if json.Unmarshal(v, &s) != nil || s == "" {
				return cnf, false, errors.New("cnf: x5t#S256 is not a string")
			}
			cnf.X5tS256 = s
		case "jkt":
			if json.Unmarshal(v, &s) != nil || s == "" {
				return cnf, false, errors.New("cnf: jkt is not a string")
			}
			cnf.JKT = s
		default:
			unknown = true
		}
	}
	return cnf, unknown, nil
}

// bound reports whether c is sender-constrained.
func (c *Claims) bound() bool { return c.cnfUnknown || !c.Confirmation.IsZero() }

// challengeDPoP writes a refusal with a DPoP challenge (RFC 9449 §7.1),
// with the server nonce when code is use_dpop_nonce.
func (v *Verifier) challengeDPoP(w http.ResponseWriter, code, desc string) {
	var b strings.Builder
	b.WriteString("DPoP")
	sep := " "
	attr := func(name, val string) {
		b.WriteString(sep + name + `="` + quoteSafe(val) + `"`)
		sep = ", "
	}
	if v.cfg.Realm != "" {
		attr("realm", v.cfg.Realm)
	}
	if code != "" {
		attr("error", code)
		if desc != "" {
			attr("error_description", desc)
		}
	}
	attr("algs", v.bind.algs)
	h := w.Header()
	h.Set("WWW-Authenticate", b.String())
	h.Set("Cache-Control", "no-store")
	if code == dpop.CodeUseNonce && v.bind.nonces != nil {
		h.Set(dpop.NonceHeader, v.bind.nonces.Nonce(v.now()))
	}
	if code == "" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	h.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	json.NewEncoder(w).Encode(oauth.Error{Code: oauth.ErrorCode(code), Description: desc})
}

// describeBinding is the error_description of a binding refusal: a
// constant of this package, never text from the request.
func describeBinding(err error) string {
	for _, e := range []error{ErrBound, ErrCertificate, ErrNotDPoPBound, ErrDPoPProof, ErrDPoPNonce} {
		if errors.Is(err, e) {
			return strings.TrimPrefix(e.Error(), "resource: ")
		}
	}
	return describe(err)
}
