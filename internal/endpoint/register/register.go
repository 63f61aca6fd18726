package register

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
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
	"github.com/keybridge/sts/internal/clientip"
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
const RegistrationTokenPrefix = clients.RegistrationTokenPrefix

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
	return e.refuseIfEmpty(w, ok, wait, what)
}

// refuseIfEmpty answers 429 with Retry-After unless ok.
func (e *Endpoint) refuseIfEmpty(w http.ResponseWriter, ok bool, wait time.Duration, what string) error {
	if ok {
		return nil
	}
	secs := int64((wait + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
	return oauth.NewError(oauth.ErrTemporarilyUnavail, "too many registration requests %s; retry later", what).
		WithStatus(http.StatusTooManyRequests)
}

// unauthenticated answers a request that has no valid bearer token (err),
// and counts it against its source address: the address limit counts
// these failures only, so that a caller with a valid token is never
// refused because others behind the same address (a load balancer, a NAT)
// sent junk first. The token is checked before the limit is looked at; a
// failure beyond the limit is answered 429 instead of err.
func (e *Endpoint) unauthenticated(w http.ResponseWriter, r *http.Request, err error) error {
	if lerr := e.limit(w, e.byAddress, clientip.Key(r.RemoteAddr), "without a valid token from this address"); lerr != nil {
		return lerr
	}
	return err
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

// MaxIATClaimsBytes bounds the JSON of the claims of one initial access
// token that --iat-required-claims makes the server store with a client.
const MaxIATClaimsBytes = 4096

// mRegistrationToken is the member of a registration request that carries
// the registration access token of the client it re-registers (see
// continuity). It travels in the body, beside the metadata it authorises,
// because the Authorization header holds the initial access token.
const mRegistrationToken = "registration_access_token"

// register is RFC 7591 §3.1: it creates a client, or re-registers the
// account's client of the same identity when the request proves
// continuity with it (see continuity).
func (e *Endpoint) register(w http.ResponseWriter, r *http.Request, ev *store.AuditRecord) (status int, body any, err error) {
	raw, ok := bearer(r)
	if !ok {
		return 0, nil, e.unauthenticated(w, r, errNoToken)
	}
	ctx := r.Context()
	iat, err := e.o.Accounts.VerifyIAT(ctx, raw)
	if err != nil {
		return 0, nil, e.unauthenticated(w, r, err)
	}
	acct := iat.Account
	ev.AccountID = acct.ID
	// The account's limit is charged for registrations made, not for
	// refused ones: otherwise one leaked IAT, which a refusal leaves
	// unspent, could keep the account's devices at 429 (review of issue
	// 8). A refusal counts against the source address instead.
	if ok, wait := e.byAccount.Peek(acct.ID); !ok {
		return 0, nil, e.refuseIfEmpty(w, ok, wait, "for this account")
	}
	defer func() {
		if err == nil {
			e.byAccount.Allow(acct.ID)
		} else {
			e.byAddress.Allow(clientip.Key(r.RemoteAddr))
		}
	}()
	fields, oe := readObject(w, r)
	if oe != nil {
		return 0, nil, oe
	}
	// The registration access token is not metadata: taken out before a
	// software statement could supply one.
	var p proof
	if v, ok := fields[mRegistrationToken]; ok {
		delete(fields, mRegistrationToken)
		if string(v) != "null" && (json.Unmarshal(v, &p.rat) != nil || p.rat == "") {
			return 0, nil, oauth.NewError(oauth.ErrInvalidRequest, "%s must be a non-empty string", mRegistrationToken)
		}
	}
	if oe := e.applyStatement(fields); oe != nil {
		return 0, nil, oe
	}
	md, oe := parseMetadata(fields)
	if oe != nil {
		return 0, nil, oe
	}
	if md.AllowImpersonation {
		return 0, nil, errImpersonation
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
	specIdentity(&spec, built, md)
	if p.identity, err = iatIdentity(iat); err != nil {
		return 0, nil, err
	}
	p.claims, p.all = e.requiredClaims(iat, built.Scopes), iat.Claims
	if b, err := json.Marshal(p.claims); err != nil || len(b) > MaxIATClaimsBytes {
		// They are stored with the client: bounded like the metadata.
		return 0, nil, oauth.NewError(oauth.ErrInvalidToken, "the initial access token's required claims take more than %d bytes", MaxIATClaimsBytes).
			WithStatus(http.StatusUnauthorized).WithCause(err)
	}

	unlock := e.lock(acct.ID)
	defer unlock()
	c, secret, rat, reregistered, err := e.registerOrReplace(ctx, iat, spec, p, ev)
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

// proof is what a registration request shows of the client it may
// re-register: the client's registration access token, the identity its
// initial access token names, and the IAT's claims that
// --iat-required-claims asks for the requested scopes.
type proof struct {
	rat      string
	identity string
	// claims are the IAT's claims that --iat-required-claims asks for the
	// scopes requested, stored with the client; all are all of its
	// claims, compared with those stored.
	claims, all map[string]any
}

// errNoContinuity refuses the re-registration of an existing client by a
// request that does not show it is that client. invalid_client_metadata
// (RFC 7591 §3.2.2): the registration endpoint's own code for metadata the
// server will not register, which every RFC 7591 client understands; the
// identity members name a client the caller has not shown to be. The
// caller is authenticated (a valid IAT of the account), so saying that the
// account has a client of this identity tells it nothing it could not
// learn otherwise.
func errNoContinuity(c *store.Client) *oauth.Error {
	return oauth.NewError(oauth.ErrInvalidClientMetadata,
		"software_id/hardware_address/client_name: this account already has a client of this identity (%s); "+
			"re-registering it needs its %s in the request, or an initial access token whose claims name it "+
			"(software_id and hardware_address, or client_name)",
		describeIdentity(c.Identity), mRegistrationToken)
}

// continuity decides whether p may re-register c, the account's client of
// the identity the registration names. RFC 7591 re-registration replaces a
// client's secret, so it must come from the client or from whoever the
// account entrusted with this very client:
//   - with c's registration access token (RFC 7592 §3), unexpired: the
//     holder of the current credentials;
//   - with an initial access token whose claims name c's identity: the
//     account issued it for this client (a device that lost its secret
//     gets a new IAT bound to its identity and keeps its client id).
//
// An IAT that names no client registers new identities only. And the
// claims the client was registered with (--iat-required-claims) must not
// differ in the new IAT.
func (e *Endpoint) continuity(c *store.Client, p proof) error {
	switch {
	case p.rat != "":
		if subtle.ConstantTimeCompare(clients.HashRegistrationToken(p.rat), c.RegistrationTokenHash) != 1 {
			return invalidRAT(errors.New("not the registration access token of the client re-registered"))
		}
		if e.o.Clients.RegistrationTokenExpired(c, e.o.Now()) {
			return invalidRAT(errors.New("expired registration access token"))
		}
	case p.identity == "" || p.identity != c.Identity:
		return errNoContinuity(c)
	}
	return compareClaims(c.IATClaims, p.all)
}

// compareClaims refuses an IAT whose claims differ from those stored: a
// claim a client was registered with (its FCC id, a serial number) cannot
// be changed by registering it again, whatever scopes the new registration
// asks for; it can only be stated once more, or left out where no scope
// requested needs it (CheckScopes).
func compareClaims(stored []byte, claims map[string]any) error {
	if len(stored) == 0 {
		return nil
	}
	var old map[string]any
	if err := json.Unmarshal(stored, &old); err != nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(old)) {
		if now, ok := claims[k]; ok && !jsonEqual(old[k], now) {
			return oauth.NewError(oauth.ErrInvalidToken,
				"the initial access token's %q claim differs from the one this client was registered with", k).
				WithStatus(http.StatusUnauthorized)
		}
	}
	return nil
}

// jsonEqual compares two decoded JSON values.
func jsonEqual(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

// mergeClaims is the JSON of the stored claims with claims added (equal
// values, checked by compareClaims, are not changed): nil when both are
// empty.
func mergeClaims(stored []byte, claims map[string]any) ([]byte, error) {
	all := map[string]any{}
	if len(stored) > 0 {
		if err := json.Unmarshal(stored, &all); err != nil {
			return nil, err
		}
	}
	maps.Copy(all, claims)
	if len(all) == 0 {
		return nil, nil
	}
	return json.Marshal(all)
}

// requiredClaims are the claims of iat that --iat-required-claims asks for
// the scopes requested (CheckScopes made sure each is there).
func (e *Endpoint) requiredClaims(iat *account.IAT, scopes []string) map[string]any {
	out := map[string]any{}
	for _, sc := range scopes {
		for _, k := range e.o.Accounts.RequiredClaims[sc] {
			if v, ok := iat.Claims[k]; ok {
				out[k] = v
			}
		}
	}
	return out
}

// iatIdentity is the identity of the client an IAT is for, from its
// software_id and hardware_address claims, or else its client_name claim,
// in the form identity gives the metadata's; "" when it names none.
func iatIdentity(iat *account.IAT) (string, error) {
	str := func(k string) (string, error) {
		v, ok := iat.Claims[k]
		if !ok || v == nil {
			return "", nil
		}
		s, ok := v.(string)
		if !ok {
			return "", oauth.NewError(oauth.ErrInvalidToken, "the initial access token's %s claim must be a string", k).
				WithStatus(http.StatusUnauthorized)
		}
		return s, nil
	}
	sw, err := str("software_id")
	if err != nil {
		return "", err
	}
	hw, err := str(mHardwareAddress)
	if err != nil {
		return "", err
	}
	name, err := str("client_name")
	if err != nil {
		return "", err
	}
	if hw != "" {
		n, ok := clients.NormalizeHardwareAddress(hw)
		if !ok {
			return "", oauth.NewError(oauth.ErrInvalidToken, "the initial access token's hardware_address claim is not a MAC address").
				WithStatus(http.StatusUnauthorized)
		}
		hw = n
		if sw == "" {
			return "", oauth.NewError(oauth.ErrInvalidToken, "the initial access token names a hardware_address without a software_id").
				WithStatus(http.StatusUnauthorized)
		}
	}
	name = strings.TrimSpace(name)
	return identity(sw, hw, name, name != ""), nil
}

// describeIdentity words a stored identity for an error description.
func describeIdentity(id string) string {
	if rest, ok := strings.CutPrefix(id, "software:"); ok {
		sw, hw, _ := strings.Cut(rest, "|")
		if hw == "" {
			return fmt.Sprintf("software_id %q", sw)
		}
		return fmt.Sprintf("software_id %q, hardware_address %s", sw, hw)
	}
	if name, ok := strings.CutPrefix(id, "name:"); ok {
		return fmt.Sprintf("client_name %q", name)
	}
	return "none"
}

// registerOrReplace creates the account's client of spec, or re-registers
// the account's client of the same identity when p proves continuity with
// it: the same client, a new secret and a new registration access token
// (the old ones stop working). It reports whether it re-registered. The
// IAT is spent once the request is known to be acceptable, before the
// write, so that a refused request leaves it unspent.
//
// The lookup and the creation are not atomic across instances sharing the
// database: another one may create the client of the identity in between,
// and then the store refuses the second (ErrConflict) and this becomes a
// re-registration of that client, if p proves continuity with it; likewise,
// when the client found is deleted meanwhile, this becomes a new
// registration. Each happens once: a second surprise is an error. In these
// races (only) a refusal comes after the IAT was spent.
func (e *Endpoint) registerOrReplace(ctx context.Context, iat *account.IAT, spec clients.Spec, p proof, ev *store.AuditRecord) (c *store.Client, secret, rat string, reregistered bool, err error) {
	accountID := iat.Account.ID
	by := "account:" + accountID
	spent := false
	spend := func() error {
		if spent {
			return nil
		}
		spent = true
		return e.o.Accounts.Consume(ctx, iat)
	}
	rat, ratHash := clients.NewRegistrationToken()
	for attempt := 0; ; attempt++ {
		existing, err := e.find(ctx, accountID, spec.Identity)
		if err != nil {
			return nil, "", "", false, err
		}
		if existing != nil {
			ev.ClientID = existing.ID // a refusal is audited against it
		}
		if p.identity != "" && p.identity != spec.Identity {
			// An IAT issued for one client registers that client only.
			return nil, "", "", existing != nil, oauth.NewError(oauth.ErrInvalidClientMetadata,
				"software_id/hardware_address/client_name: the initial access token is for another client (%s) than the metadata names (%s)",
				describeIdentity(p.identity), describeIdentity(spec.Identity))
		}
		if existing == nil {
			if p.rat != "" {
				// The token names a client, but not one of this identity:
				// a change of identity is an RFC 7592 update.
				return nil, "", "", false, oauth.NewError(oauth.ErrInvalidClientMetadata,
					"%s: the account has no client of this identity (%s) to re-register; to change a client's software_id, hardware_address or client_name, update it (RFC 7592 PUT)",
					mRegistrationToken, describeIdentity(spec.Identity))
			}
			if err := spend(); err != nil {
				return nil, "", "", false, err
			}
			status := store.ClientActive
			if e.o.RequireApproval {
				status = store.ClientPending
			}
			claims, err := mergeClaims(nil, p.claims)
			if err != nil {
				return nil, "", "", false, err
			}
			c, secret, err = e.o.Clients.Register(ctx, by, spec, status, ratHash, claims)
			if spec.Identity != "" && errors.Is(err, store.ErrConflict) {
				if attempt == 0 {
					e.o.Logger.Info("client of the same identity registered meanwhile elsewhere; re-registering it", "account_id", accountID)
					continue
				}
				err = oauth.NewError(oauth.ErrTemporarilyUnavail, "concurrent registrations of this client kept conflicting; register again").WithCause(err)
			}
			return c, secret, rat, false, err
		}
		if err := e.continuity(existing, p); err != nil {
			e.o.Logger.Warn("re-registration refused: no proof of continuity", "client_id", existing.ID, "account_id", accountID, "err", err)
			return nil, "", "", true, err
		}
		if err := spend(); err != nil {
			return nil, "", "", true, err
		}
		claims, err := mergeClaims(existing.IATClaims, p.claims)
		if err != nil {
			return nil, "", "", true, err
		}
		c, secret, err = e.o.Clients.Replace(ctx, by, existing.ID, clients.Replacement{
			Action: "client.reregister", Spec: spec, NewSecret: true,
			RegistrationTokenHash: ratHash, IATClaims: claims,
			Reregistration: true, NewHolder: p.rat == "", Reapprove: e.o.RequireApproval,
			Check: func(cur *store.Client) error {
				// What was proven must still hold at the write (a
				// concurrent re-registration may have replaced the token),
				// and the claims merged must still be the stored ones.
				if err := e.continuity(cur, p); err != nil {
					return err
				}
				if !bytes.Equal(cur.IATClaims, existing.IATClaims) {
					return oauth.NewError(oauth.ErrTemporarilyUnavail, "the client was re-registered meanwhile; register again")
				}
				return nil
			},
		})
		if attempt == 0 && errors.Is(err, store.ErrNotFound) {
			e.o.Logger.Info("client of the same identity deleted meanwhile; registering anew", "client_id", existing.ID, "account_id", accountID)
			continue
		}
		return c, secret, rat, true, err
	}
}

// errImpersonation refuses a registration that asks to impersonate:
// exchanging tokens without appearing in act is a right an operator grants
// (portal or CLI), never one a client takes for itself, nor keeps across a
// re-registration.
var errImpersonation = oauth.NewError(oauth.ErrInvalidClientMetadata,
	"allow_impersonation: granted by an operator (portal or CLI), not through registration")

// keepImpersonation lets an update keep (or drop) an impersonation right
// an operator granted, but not gain one.
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

var dummyHash = make([]byte, len(clients.HashRegistrationToken("")))

// errUnknownClient: the path names no client. Its refusal is audited
// without the id, which the caller chose freely: otherwise each request
// with a new id would be a new audit record, which coalescing cannot merge.
var errUnknownClient = errors.New("unknown client")

// authenticate finds the client the registration access token rat was
// issued for.
func (e *Endpoint) authenticate(ctx context.Context, id, rat string) (*store.Client, error) {
	got := clients.HashRegistrationToken(rat)
	var (
		c   *store.Client
		err error = store.ErrNotFound // an id that is not text names no client
	)
	if store.ValidText(id) {
		c, err = e.o.Store.GetClient(ctx, id)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		subtle.ConstantTimeCompare(got, dummyHash)
		return nil, invalidRAT(errUnknownClient)
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
	if e.o.Clients.RegistrationTokenExpired(c, e.o.Now()) {
		// --registration-token-ttl: a token that leaked and lay unused
		// stops working; the client renews it by rotating its secret, or
		// re-registers.
		return nil, invalidRAT(errors.New("expired registration access token"))
	}
	return c, nil
}

// manage is RFC 7592 §2: read, update or delete the registration of
// client id, authorised by its registration access token.
func (e *Endpoint) manage(w http.ResponseWriter, r *http.Request, id string, ev *store.AuditRecord) (int, any, error) {
	raw, ok := bearer(r)
	if !ok {
		return 0, nil, e.unauthenticated(w, r, errNoToken)
	}
	ctx := r.Context()
	c, err := e.authenticate(ctx, id, raw)
	if !errors.Is(err, errUnknownClient) {
		// A refusal about an existing client is audited against it.
		ev.ClientID = id
	}
	if err != nil {
		if oauth.AsError(err).Code == oauth.ErrInvalidToken {
			return 0, nil, e.unauthenticated(w, r, err)
		}
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
// secret and a new registration access token. Without it the registration
// access token stays the same. What an operator granted the client is
// kept (clients.Replacement.Reregistration is false): the holder of the
// registration access token is the same client.
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
	// A new secret comes with a new registration access token (RFC 7592
	// §3: the server "MAY issue a new registration access token" on an
	// update), which renews its lifetime (--registration-token-ttl): a
	// client that rotates its secret keeps managing its registration.
	var ratHash []byte
	if md.RotateSecret {
		rat, ratHash = clients.NewRegistrationToken()
	}
	n, secret, err := e.o.Clients.Replace(ctx, "client:"+c.ID, c.ID, clients.Replacement{
		Action: "client.update", Spec: spec, NewSecret: md.RotateSecret, RegistrationTokenHash: ratHash,
		Reapprove: e.o.RequireApproval,
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
