// Package clientauth authenticates OAuth clients at the token, introspection
// and revocation endpoints with client_secret_basic and client_secret_post
// (RFC 6749 §2.3.1), tls_client_auth and self_signed_tls_client_auth (RFC
// 8705 §2), and owns how client secrets are generated and hashed.
package clientauth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/keybridge/sts/internal/audit"
	"github.com/keybridge/sts/internal/clientcert"
	"github.com/keybridge/sts/internal/clientip"
	"github.com/keybridge/sts/internal/oauthhttp"
	"github.com/keybridge/sts/internal/ratelimit"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
)

// SecretBytes is the entropy of a generated secret: 256 bits.
const SecretBytes = 32

// NewSecret returns a fresh client secret (256 random bits, base64url).
func NewSecret() string {
	var b [SecretBytes]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Hasher hashes client secrets with HMAC-SHA256 under a server key. Secrets
// are high-entropy random strings, so a fast keyed hash is as strong as a
// slow one and keeps authentication off the CPU budget; the key means a
// stolen database alone cannot be used to test guesses.
type Hasher struct{ key []byte }

// NewHasher returns a Hasher with the given key.
func NewHasher(key []byte) *Hasher { return &Hasher{key: append([]byte(nil), key...)} }

// Hash returns the stored form of secret.
func (h *Hasher) Hash(secret string) []byte {
	m := hmac.New(sha256.New, h.key)
	m.Write([]byte(secret))
	return m.Sum(nil)
}

// Credentials are what a client presented.
type Credentials struct {
	ID     string
	Secret string
	Method string // oauth.AuthMethodClientSecretBasic or _Post, or a key-based method
	// Cert is the certificate the client authenticated with
	// (tls_client_auth, self_signed_tls_client_auth); nil otherwise.
	Cert *x509.Certificate
	// Assertion is the client_assertion of private_key_jwt (RFC 7523
	// §2.2), not yet verified.
	Assertion string
}

// Extract reads the client credentials of r and its parsed form. Using both
// methods at once is invalid_request (RFC 6749 §2.3: "MUST NOT use more than
// one authentication method in each request"). Basic credentials are
// form-url-decoded after base64 decoding (RFC 6749 §2.3.1), so ids and
// secrets containing '%', '+' or ':' work.
func Extract(r *http.Request, form url.Values) (Credentials, *oauth.Error) {
	if form.Has("client_assertion_type") || form.Has("client_assertion") {
		return extractAssertion(r, form)
	}
	auth := r.Header.Get("Authorization")
	postID, postSecret := form.Get("client_id"), form.Get("client_secret")
	if auth != "" {
		if postSecret != "" {
			return Credentials{}, oauth.NewError(oauth.ErrInvalidRequest, "use one client authentication method, not several")
		}
		scheme, rest, _ := strings.Cut(auth, " ")
		if !strings.EqualFold(scheme, "Basic") {
			return Credentials{}, failed(errors.New("unsupported Authorization scheme"))
		}
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
		if err != nil {
			return Credentials{}, failed(err)
		}
		encID, encSecret, ok := strings.Cut(string(raw), ":")
		if !ok {
			return Credentials{}, failed(errors.New("basic credentials without ':'"))
		}
		id, err1 := url.QueryUnescape(encID)
		secret, err2 := url.QueryUnescape(encSecret)
		if err1 != nil || err2 != nil {
			return Credentials{}, failed(errors.Join(err1, err2))
		}
		if !store.ValidText(id) || !store.ValidText(secret) {
			// No client has such an id (PostgreSQL could not even look
			// it up), nor such a secret.
			return Credentials{}, failed(errors.New("basic credentials are not UTF-8 text (or hold NUL)"))
		}
		// A client_id in the body must name the same client (RFC 6749 §3.2.1).
		if postID != "" && postID != id {
			return Credentials{}, oauth.NewError(oauth.ErrInvalidRequest, "client_id does not match the Authorization header")
		}
		return Credentials{ID: id, Secret: secret, Method: oauth.AuthMethodClientSecretBasic}, nil
	}
	if postID != "" && postSecret == "" && form.Get("client_assertion_type") == "" {
		// A certificate method (RFC 8705 §2): which one is the client's
		// registered method; Authenticate sets it.
		return Credentials{ID: postID, Method: oauth.AuthMethodTLSClientAuth}, nil
	}
	if postID == "" || postSecret == "" {
		return Credentials{}, failed(errors.New("no client credentials"))
	}
	return Credentials{ID: postID, Secret: postSecret, Method: oauth.AuthMethodClientSecretPost}, nil
}

// ErrAuthFailed is the answer to every failed client authentication: it
// never says which part of the credentials was wrong.
func failed(cause error) *oauth.Error {
	return oauth.NewError(oauth.ErrInvalidClient, "client authentication failed").WithCause(cause)
}

// Authenticator checks credentials against the stored clients.
type Authenticator struct {
	Clients store.Clients
	// Accounts, when set, is consulted for clients that belong to an
	// account: the clients of a suspended or closed account cannot
	// authenticate.
	Accounts interface {
		GetAccount(ctx context.Context, id string) (*store.Account, error)
	}
	Hasher *Hasher
	Now    func() time.Time
	// Failures, when set, bounds failed authentications per source
	// address and per claimed client id (see [Authenticator.Request]).
	Failures *ratelimit.Failures
	// Assertions, when set, verifies private_key_jwt client assertions;
	// without it that method is refused.
	Assertions *Assertions
	// Certs finds and verifies client certificates (tls_client_auth and
	// self_signed_tls_client_auth); nil: those methods always fail.
	Certs *clientcert.Source
	// FetchJWKS, when set, returns the key set at a client's jwks_uri
	// (for self_signed_tls_client_auth of a client registered with one).
	FetchJWKS func(ctx context.Context, c *store.Client) (*jose.JSONWebKeySet, error)
}

// Request is the front every client-authenticated endpoint (token,
// introspection, revocation) shares: it parses r's form (the one parser,
// oauthhttp.ParseForm) and authenticates the client. A request refused
// before its client is authenticated (malformed, or wrong credentials)
// counts against the budgets of its source address (clientip.Key) and of
// the client id it claims; past a budget, the refusal is answered 429
// temporarily_unavailable with Retry-After instead. The credentials are
// always verified first, so correct credentials always pass: an attacker
// cannot lock a client or an address out, only spend his own failures.
//
// The throttled answer's description is fixed, and when the source's
// budget is spent the returned Credentials are empty: the client id is the
// caller's unverified input, so a flood of refusals from one source is
// one kind of refusal to the audit, which coalesces it whatever ids the
// flood claims. form is nil when the body could not be parsed.
func (a *Authenticator) Request(w http.ResponseWriter, r *http.Request) (form url.Values, c *store.Client, cred Credentials, err error) {
	form, oe := oauthhttp.ParseForm(w, r)
	if oe != nil {
		c, cred, err = a.RequestForm(w, r, nil, oe)
		return form, c, cred, err
	}
	c, cred, err = a.RequestForm(w, r, form, nil)
	return form, c, cred, err
}

// RequestForm is [Authenticator.Request] for a form the caller parsed
// already with oauthhttp.ParseForm (perr its error, if any): the token
// endpoint looks at the form before choosing how the caller
// authenticates (a device's certificate, issue 14).
func (a *Authenticator) RequestForm(w http.ResponseWriter, r *http.Request, form url.Values, perr *oauth.Error) (c *store.Client, cred Credentials, err error) {
	if perr != nil {
		err = perr
	} else if c, cred, err = a.Authenticate(r.Context(), r, form); err == nil {
		return c, cred, nil
	}
	err, bySource := a.Failed(w, r, cred.ID, err)
	if bySource {
		cred = Credentials{}
	}
	return nil, cred, err
}

// Failed counts the refusal err of a request whose caller claimed id
// ("" for none, e.g. a device's certificate) against the failure
// budgets, and returns err, or the throttled 429 answer when a budget is
// spent (bySource: the source's). A server error is not the caller's and
// is not counted.
func (a *Authenticator) Failed(w http.ResponseWriter, r *http.Request, id string, err error) (_ error, bySource bool) {
	if a.Failures == nil || oauth.AsError(err).Code == oauth.ErrServerError {
		// A store failure is not the caller's.
		return err, false
	}
	v := a.Failures.Fail(clientip.Key(r.RemoteAddr), audit.BoundID(id))
	if !v.Throttled {
		return err, false
	}
	secs := int64((v.RetryAfter + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
	what := "for this client"
	if v.BySource {
		what = "from this address"
	}
	return oauth.NewError(oauth.ErrTemporarilyUnavail,
		"too many failed client authentications %s; retry later", what).WithStatus(http.StatusTooManyRequests), v.BySource
}

// dummyHash is compared against when the client is unknown, so that an
// unknown id costs the same as a wrong secret.
var dummyHash = make([]byte, sha256.Size)

// Authenticate extracts and verifies the credentials of r and returns the
// active client. Failures are invalid_client (401); a malformed request is
// invalid_request. The returned Credentials are set even on failure when
// the client id could be read, for the audit record.
func (a *Authenticator) Authenticate(ctx context.Context, r *http.Request, form url.Values) (*store.Client, Credentials, error) {
	cred, oe := Extract(r, form)
	if oe != nil {
		return nil, cred, oe
	}
	// Key-based methods are dispatched here, before the secret check.
	switch cred.Method {
	case oauth.AuthMethodTLSClientAuth:
		return a.authenticateCertificate(ctx, r, cred)
	case oauth.AuthMethodPrivateKeyJWT:
		c, err := a.authenticateAssertion(ctx, r, cred)
		return c, cred, err
	}
	got := a.Hasher.Hash(cred.Secret)
	c, err := a.Clients.GetClient(ctx, cred.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		subtle.ConstantTimeCompare(got, dummyHash)
		return nil, cred, failed(errors.New("unknown client"))
	case err != nil:
		return nil, cred, err
	}
	ok := subtle.ConstantTimeCompare(got, c.SecretHash) == 1
	if !ok && len(c.PrevSecretHash) > 0 && a.Now().Before(c.PrevSecretExpiresAt) {
		ok = subtle.ConstantTimeCompare(got, c.PrevSecretHash) == 1
	}
	if !ok {
		return nil, cred, failed(errors.New("wrong secret"))
	}
	// A client registered with a token_endpoint_auth_method (RFC 7591 §2)
	// authenticates only that way; an empty method accepts both.
	if c.AuthMethod != "" && c.AuthMethod != cred.Method {
		return nil, cred, failed(errors.New("authentication method " + cred.Method + " is not the registered " + c.AuthMethod))
	}
	if err := a.active(ctx, c); err != nil {
		return nil, cred, err
	}
	return c, cred, nil
}

// active returns nil when c may authenticate: the client is active and so
// is its account, if any. Every authentication method ends with it.
func (a *Authenticator) active(ctx context.Context, c *store.Client) error {
	if c.Status != store.ClientActive {
		return failed(errors.New("client is " + string(c.Status)))
	}
	if c.AccountID != "" && a.Accounts != nil {
		acct, err := a.Accounts.GetAccount(ctx, c.AccountID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err != nil || acct.Status != store.AccountActive {
			return failed(errors.New("the client's account is not active"))
		}
	}
	return nil
}

// authenticateAssertion authenticates a private_key_jwt client (RFC 7523
// §2.2): registered for that method, active, and its assertion valid.
func (a *Authenticator) authenticateAssertion(ctx context.Context, r *http.Request, cred Credentials) (*store.Client, error) {
	if a.Assertions == nil {
		return nil, failed(errors.New("private_key_jwt is not enabled on this server"))
	}
	c, err := a.Clients.GetClient(ctx, cred.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, failed(errors.New("unknown client"))
	case err != nil:
		return nil, err
	}
	if c.AuthMethod != oauth.AuthMethodPrivateKeyJWT {
		return nil, failed(errors.New("authentication method private_key_jwt is not the registered " + registered(c.AuthMethod)))
	}
	// Checked before the assertion, whose jti it would otherwise spend.
	if err := a.active(ctx, c); err != nil {
		return nil, err
	}
	if err := a.Assertions.Verify(ctx, r, c, cred); err != nil {
		return nil, err
	}
	return c, nil
}

// registered names a registered method for an audit cause.
func registered(m string) string {
	if m == "" {
		return "client_secret_basic/client_secret_post"
	}
	return m
}
