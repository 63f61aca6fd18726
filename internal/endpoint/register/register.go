package register

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"github.com/keybridge/sts/internal/clientip"
	"hash/fnv"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/keybridge/sts/internal/account"
	"github.com/keybridge/sts/internal/audit"
	"github.com/keybridge/sts/internal/clients"
	"github.com/keybridge/sts/internal/oauthhttp"
	"github.com/keybridge/sts/internal/ratelimit"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
)

// Path is where registration is served; a client's configuration endpoint
// is Path + "/" + client_id.
const Path = "/register"

// Default rates, per minute, when the options leave them zero (the same as
// the configuration's defaults).
const (
	DefaultPerAccountPerMinute = 30
	DefaultPerAddressPerMinute = 60
)

// RegistrationTokenPrefix starts every registration access token, so that
// one found in a log or a repository is recognisable.
const RegistrationTokenPrefix = "sts_rat_"

// Options are the endpoint's dependencies and settings.
type Options struct {
	Issuer   string
	Store    store.Store
	Accounts *account.Service
	Clients  *clients.Registry
	Audit    *audit.Writer
	// RequireApproval puts new registrations in the pending state until an
	// operator approves them, and returns an approved client to pending
	// when a re-registration or update widens what it may obtain.
	RequireApproval bool
	// Publishers are the trusted issuers of software statements (RFC 7591
	// §2.3) and their keys.
	Publishers map[string]*jose.JSONWebKeySet
	// PerAccountPerMinute and PerAddressPerMinute bound registrations.
	PerAccountPerMinute int
	PerAddressPerMinute int
	Logger              *slog.Logger
	Now                 func() time.Time
}

// Endpoint serves registration.
type Endpoint struct {
	o         Options
	byAccount *ratelimit.Limiter
	byAddress *ratelimit.Limiter
	// locks serialise, per account (striped), the search for a client of
	// the same identity and its creation, so that two concurrent
	// registrations of one identity on this instance make one client
	// without a conflict. Across instances sharing a database, the store's
	// unique (account, identity) index decides, and the instance that
	// loses re-registers the winner's client.
	locks [64]sync.Mutex
}

// New returns the endpoint.
func New(o Options) *Endpoint {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.PerAccountPerMinute <= 0 {
		o.PerAccountPerMinute = DefaultPerAccountPerMinute
	}
	if o.PerAddressPerMinute <= 0 {
		o.PerAddressPerMinute = DefaultPerAddressPerMinute
	}
	return &Endpoint{
		o:         o,
		byAccount: ratelimit.New(o.PerAccountPerMinute, 0, o.Now),
		byAddress: ratelimit.New(o.PerAddressPerMinute, 0, o.Now),
	}
}

// ServeHTTP dispatches on method and path: POST Path registers; GET, PUT
// and DELETE Path/{client_id} read, update and delete a registration.
func (e *Endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.EscapedPath()
	if p == Path {
		if r.Method != http.MethodPost {
			e.methodNotAllowed(w, http.MethodPost)
			return
		}
		e.serve(w, r, "client.register", e.register)
		return
	}
	id, err := url.PathUnescape(strings.TrimPrefix(p, Path+"/"))
	if !strings.HasPrefix(p, Path+"/") || err != nil {
		oauthhttp.WriteJSON(w, http.StatusNotFound, oauth.NewError(oauth.ErrInvalidRequest, "not found"))
		return
	}
	action := map[string]string{http.MethodGet: "client.read", http.MethodPut: "client.update", http.MethodDelete: "client.delete"}[r.Method]
	if action == "" {
		e.methodNotAllowed(w, "GET, PUT, DELETE")
		return
	}
	e.serve(w, r, action, func(w http.ResponseWriter, r *http.Request, ev *store.AuditRecord) (int, any, error) {
		return e.manage(w, r, id, ev)
	})
}

func (e *Endpoint) methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	oauthhttp.WriteJSON(w, http.StatusMethodNotAllowed, oauth.NewError(oauth.ErrInvalidRequest, "the method must be %s", allow))
}

// handler is one operation: it returns the status and body of a success,
// or the error to answer.
type handler func(w http.ResponseWriter, r *http.Request, ev *store.AuditRecord) (int, any, error)

// serve runs h and writes its answer. A refusal is audited here (with the
// error code); a change is audited by the registry that makes it.
func (e *Endpoint) serve(w http.ResponseWriter, r *http.Request, action string, h handler) {
	ev := store.AuditRecord{Action: action, RequestID: r.Header.Get("X-Request-Id"), Remote: r.RemoteAddr}
	var (
		status int
		body   any
		err    error
	)
	if e.o.Accounts == nil || e.o.Clients == nil {
		err = oauth.NewError(oauth.ErrTemporarilyUnavail, "registration is not configured on this server")
	} else {
		status, body, err = h(w, r, &ev)
	}
	if err != nil {
		oe := oauth.AsError(err)
		ev.Time, ev.Decision, ev.Error, ev.Detail = e.o.Now(), store.DecisionRefused, string(oe.Code), oe.Error()
		if e.o.Audit != nil {
			if aerr := e.o.Audit.Record(r.Context(), ev); aerr != nil {
				e.o.Logger.Error("audit of a refused registration request failed", "err", aerr, "request_id", ev.RequestID)
			}
		}
		e.writeError(w, err)
		return
	}
	if status == http.StatusNoContent {
		oauthhttp.NoStore(w.Header())
		w.WriteHeader(status)
		return
	}
	oauthhttp.WriteJSON(w, status, body)
}

// errNoToken answers a request without a bearer token: RFC 6750 §3.1, the
// challenge then carries no error code.
var errNoToken = oauth.NewError(oauth.ErrInvalidToken, "this request needs a bearer token: Authorization: Bearer <initial access token or registration access token>").
	WithStatus(http.StatusUnauthorized)

func (e *Endpoint) writeError(w http.ResponseWriter, err error) {
	var oe *oauth.Error
	if errors.As(err, &oe) && oe == errNoToken {
		w.Header().Set("WWW-Authenticate", oauthhttp.BearerChallenge("", ""))
		oauthhttp.WriteJSON(w, http.StatusUnauthorized, oe)
		return
	}
	oauthhttp.WriteError(w, e.o.Logger, err)
}

// bearer reads an RFC 6750 §2.1 Authorization header.
func bearer(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", false
	}
	return tok, true
}

// limit takes a token from key's bucket or answers 429 with Retry-After.
func (e *Endpoint) limit(w http.ResponseWriter, l *ratelimit.Limiter, key, what string) error {
	ok, wait := l.Allow(key)
	if ok {
		return nil
	}
	secs := int64((wait + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
	return oauth.NewError(oauth.ErrTemporarilyUnavail, "too many registration requests %s; retry later", what).
		WithStatus(http.StatusTooManyRequests)
}

func (e *Endpoint) leeway() time.Duration {
	if e.o.Accounts != nil && e.o.Accounts.Leeway > 0 {
		return e.o.Accounts.Leeway
	}
	return 30 * time.Second
}

// lock serialises registrations of one account on this instance.
func (e *Endpoint) lock(accountID string) func() {
	h := fnv.New32a()
	h.Write([]byte(accountID))
	m := &e.locks[h.Sum32()%uint32(len(e.locks))]
	m.Lock()
	return m.Unlock
}

// register is RFC 7591 §3.1: it creates a client, or re-registers the
// account's client of the same identity.
func (e *Endpoint) register(w http.ResponseWriter, r *http.Request, ev *store.AuditRecord) (int, any, error) {
	// The address limit comes first, before any signature is checked.
	if err := e.limit(w, e.byAddress, clientip.Key(r.RemoteAddr), "from this address"); err != nil {
		return 0, nil, err
	}
	raw, ok := bearer(r)
	if !ok {
		return 0, nil, errNoToken
	}
	ctx := r.Context()
	iat, err := e.o.Accounts.VerifyIAT(ctx, raw)
	if err != nil {
		return 0, nil, err
	}
	acct := iat.Account
	ev.AccountID = acct.ID
	if err := e.limit(w, e.byAccount, acct.ID, "for this account"); err != nil {
		return 0, nil, err
	}
	fields, oe := readObject(w, r)
	if oe != nil {
		return 0, nil, oe
	}
	if oe := e.applyStatement(fields); oe != nil {
		return 0, nil, oe
	}
	md, oe := parseMetadata(fields)
	if oe != nil {
		return 0, nil, oe
	}
	spec, err := md.spec(acct.ID)
	if err != nil {
		return 0, nil, err
	}
	// Everything is checked before the IAT is spent.
	built, err := spec.Build(e.o.Now())
	if err != nil {
		return 0, nil, metadataError(err)
	}
	if probs := clients.WithinAccount(built, acct); len(probs) > 0 {
		return 0, nil, metadataError(probs)
	}
	if err := e.o.Accounts.CheckScopes(iat, built.Scopes); err != nil {
		return 0, nil, err
	}
	if err := e.o.Accounts.Consume(ctx, iat); err != nil {
		return 0, nil, err
	}

	specIdentity(&spec, built, md)
	rat, ratHash := newRegistrationToken()
	unlock := e.lock(acct.ID)
	defer unlock()
	c, secret, reregistered, err := e.registerOrReplace(ctx, acct.ID, spec, ratHash)
	if reregistered {
		ev.Action = "client.reregister"
	}
	if err != nil {
		return 0, nil, metadataError(err)
	}
	ev.ClientID = c.ID
	e.o.Logger.Info("client registered", "client_id", c.ID, "account_id", acct.ID, "status", c.Status, "reregistration", reregistered)
	// RFC 7591 §3.2.1: 201 Created with the client information.
	return http.StatusCreated, e.info(c, secret, rat), nil
}

// registerOrReplace creates the account's client of spec, or re-registers
// the account's client of the same identity: the same client, a new secret
// and a new registration access token (the old ones stop working). It
// reports whether it re-registered.
//
// The lookup and the creation are not atomic across instances sharing the
// database: another one may create the client of the identity in between,
// and then the store refuses the second (ErrConflict) and this becomes a
// re-registration of that client; likewise, when the client found is
// deleted meanwhile, this becomes a new registration. Each happens once: a
// second surprise is an error.
func (e *Endpoint) registerOrReplace(ctx context.Context, accountID string, spec clients.Spec, ratHash []byte) (c *store.Client, secret string, reregistered bool, err error) {
	by := "account:" + accountID
	for attempt := 0; ; attempt++ {
		existing, err := e.find(ctx, accountID, spec.Identity)
		if err != nil {
			return nil, "", false, err
		}
		if existing == nil {
			if spec.AllowImpersonation {
				return nil, "", false, errImpersonation
			}
			status := store.ClientActive
			if e.o.RequireApproval {
				status = store.ClientPending
			}
			c, secret, err = e.o.Clients.Register(ctx, by, spec, status, ratHash)
			if spec.Identity != "" && errors.Is(err, store.ErrConflict) {
				if attempt == 0 {
					e.o.Logger.Info("client of the same identity registered meanwhile elsewhere; re-registering it", "account_id", accountID)
					continue
				}
				err = oauth.NewError(oauth.ErrTemporarilyUnavail, "concurrent registrations of this client kept conflicting; register again").WithCause(err)
			}
			return c, secret, false, err
		}
		c, secret, err = e.o.Clients.Replace(ctx, by, existing.ID, clients.Replacement{
			Action: "client.reregister", Spec: spec, NewSecret: true,
			RegistrationTokenHash: ratHash, Reapprove: e.o.RequireApproval,
			Check: keepImpersonation(spec),
		})
		if attempt == 0 && errors.Is(err, store.ErrNotFound) {
			e.o.Logger.Info("client of the same identity deleted meanwhile; registering anew", "client_id", existing.ID, "account_id", accountID)
			continue
		}
		return c, secret, true, err
	}
}

// errImpersonation refuses a registration that asks to impersonate:
// exchanging tokens without appearing in act is a right an operator grants
// (portal or CLI), never one a client takes for itself.
var errImpersonation = oauth.NewError(oauth.ErrInvalidClientMetadata,
	"allow_impersonation: granted by an operator (portal or CLI), not through registration")

// keepImpersonation lets a re-registration or update keep (or drop) an
// impersonation right an operator granted, but not gain one.
func keepImpersonation(spec clients.Spec) func(*store.Client) error {
	return func(cur *store.Client) error {
		if spec.AllowImpersonation && !cur.AllowImpersonation {
			return errImpersonation
		}
		return nil
	}
}

// find returns the account's client with this identity (the store keeps
// at most one); nil when there is none or the identity is empty.
func (e *Endpoint) find(ctx context.Context, accountID, id string) (*store.Client, error) {
	if id == "" {
		return nil, nil
	}
	c, err := e.o.Store.FindClientByIdentity(ctx, accountID, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return c, err
}

// newRegistrationToken returns a registration access token (256 random
// bits) and the SHA-256 hash that is stored instead of it.
func newRegistrationToken() (string, []byte) {
	var b [32]byte
	rand.Read(b[:])
	t := RegistrationTokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return t, hashToken(t)
}

func hashToken(t string) []byte {
	h := sha256.Sum256([]byte(t))
	return h[:]
}

// clientURI is the client configuration endpoint (RFC 7592 §3).
func (e *Endpoint) clientURI(id string) string {
	return e.o.Issuer + Path + "/" + url.PathEscape(id)
}

// invalidRAT is the answer to every failed RFC 7592 authentication: a
// wrong, unknown or superseded token and an unknown client look the same
// (RFC 7592 §2.1: an unknown client is 401).
func invalidRAT(cause error) *oauth.Error {
	return oauth.NewError(oauth.ErrInvalidToken, "the registration access token is invalid").
		WithStatus(http.StatusUnauthorized).WithCause(cause)
}

var dummyHash = make([]byte, sha256.Size)

// authenticate finds the client the registration access token rat was
// issued for.
func (e *Endpoint) authenticate(ctx context.Context, id, rat string) (*store.Client, error) {
	got := hashToken(rat)
	c, err := e.o.Store.GetClient(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		subtle.ConstantTimeCompare(got, dummyHash)
		return nil, invalidRAT(errors.New("unknown client"))
	case err != nil:
		return nil, err
	}
	if len(c.RegistrationTokenHash) == 0 {
		subtle.ConstantTimeCompare(got, dummyHash)
		return nil, invalidRAT(errors.New("the client has no registration access token"))
	}
	if subtle.ConstantTimeCompare(got, c.RegistrationTokenHash) != 1 {
		return nil, invalidRAT(errors.New("wrong registration access token"))
	}
	return c, nil
}

// manage is RFC 7592 §2: read, update or delete the registration of
// client id, authorised by its registration access token.
func (e *Endpoint) manage(w http.ResponseWriter, r *http.Request, id string, ev *store.AuditRecord) (int, any, error) {
	ev.ClientID = id
	if err := e.limit(w, e.byAddress, clientip.Key(r.RemoteAddr), "from this address"); err != nil {
		return 0, nil, err
	}
	raw, ok := bearer(r)
	if !ok {
		return 0, nil, errNoToken
	}
	ctx := r.Context()
	c, err := e.authenticate(ctx, id, raw)
	if err != nil {
		return 0, nil, err
	}
	ev.AccountID = c.AccountID
	switch r.Method {
	case http.MethodGet:
		// §2.1: the current registration, without the secret (only its
		// hash is stored), with the registration access token.
		return http.StatusOK, e.info(c, "", raw), nil
	case http.MethodDelete:
		// §2.3: 204, and the client id, secret and registration access
		// token stop working.
		err := e.o.Clients.Delete(ctx, "client:"+c.ID, c.ID)
		if errors.Is(err, store.ErrNotFound) {
			return 0, nil, invalidRAT(err)
		}
		if err != nil {
			return 0, nil, err
		}
		e.o.Logger.Info("client deleted its registration", "client_id", c.ID, "account_id", c.AccountID)
		return http.StatusNoContent, nil, nil
	}
	return e.update(w, r, c, raw)
}

// forbiddenInUpdate are the members an update request must not carry
// (RFC 7592 §2.2).
var forbiddenInUpdate = []string{"registration_access_token", "registration_client_uri", "client_secret_expires_at", "client_id_issued_at"}

// update is RFC 7592 §2.2: the request's metadata replaces the client's
// (omitted members are deleted); "rotate_secret": true also issues a new
// secret. The registration access token stays the same.
func (e *Endpoint) update(w http.ResponseWriter, r *http.Request, c *store.Client, rat string) (int, any, error) {
	ctx := r.Context()
	fields, oe := readObject(w, r)
	if oe != nil {
		return 0, nil, oe
	}
	var probs problems
	var gotID string
	if v, ok := fields["client_id"]; !ok || json.Unmarshal(v, &gotID) != nil || gotID != c.ID {
		// "The client MUST include its client_id field in the request, and
		// it MUST be the same as its currently issued client identifier."
		probs.add("client_id", "must be present and equal to the client's id (RFC 7592 §2.2)")
	}
	for _, k := range forbiddenInUpdate {
		if _, ok := fields[k]; ok {
			probs.add(k, "must not be sent in an update (RFC 7592 §2.2)")
		}
	}
	if v, ok := fields["client_secret"]; ok && string(v) != "null" {
		// "If the client includes the client_secret field in the request,
		// the value of this field MUST match the currently issued client
		// secret"; a client never chooses its secret.
		var s string
		if json.Unmarshal(v, &s) != nil ||
			subtle.ConstantTimeCompare(e.o.Clients.Hasher.Hash(s), c.SecretHash) != 1 {
			probs.add("client_secret", "does not match the current secret; a client cannot choose its secret (send \"rotate_secret\": true for a new one)")
		}
	}
	if err := probs.err(); err != nil {
		return 0, nil, err
	}
	if c.AccountID != "" {
		a, err := e.o.Store.GetAccount(ctx, c.AccountID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return 0, nil, err
		}
		if a == nil || a.Status != store.AccountActive {
			// §2.2: "If the client is not allowed to update its records,
			// the server MUST respond with HTTP 403 Forbidden."
			return 0, nil, oauth.NewError(oauth.ErrAccessDenied, "the client's account is not active").WithStatus(http.StatusForbidden)
		}
	}
	if oe := e.applyStatement(fields); oe != nil {
		return 0, nil, oe
	}
	md, oe := parseMetadata(fields)
	if oe != nil {
		return 0, nil, oe
	}
	spec, err := md.spec(c.AccountID)
	if err != nil {
		return 0, nil, err
	}
	built, err := spec.Build(e.o.Now())
	if err != nil {
		return 0, nil, metadataError(err)
	}
	// The identity follows the metadata: a new software_id,
	// hardware_address or client_name is a new identity, refused
	// (invalid_client_metadata) when another client of the account has it.
	specIdentity(&spec, built, md)
	// A scope that needs claims of an initial access token cannot be
	// gained without one.
	for _, sc := range built.Scopes {
		if need := e.o.Accounts.RequiredClaims[sc]; len(need) > 0 && !slices.Contains(c.Scopes, sc) {
			probs.add("scope", "%q needs a registration with an initial access token carrying %s", sc, strings.Join(need, ", "))
		}
	}
	if err := probs.err(); err != nil {
		return 0, nil, err
	}
	n, secret, err := e.o.Clients.Replace(ctx, "client:"+c.ID, c.ID, clients.Replacement{
		Action: "client.update", Spec: spec, NewSecret: md.RotateSecret, Reapprove: e.o.RequireApproval,
		Check: func(cur *store.Client) error {
			// A re-registration may have replaced the token meanwhile.
			if subtle.ConstantTimeCompare(cur.RegistrationTokenHash, c.RegistrationTokenHash) != 1 {
				return invalidRAT(errors.New("registration access token replaced meanwhile"))
			}
			return keepImpersonation(spec)(cur)
		},
	})
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil, invalidRAT(err)
	}
	if err != nil {
		return 0, nil, metadataError(err)
	}
	return http.StatusOK, e.info(n, secret, rat), nil
}
