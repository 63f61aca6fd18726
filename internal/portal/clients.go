package portal

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/keybridge/sts/internal/celpolicy"
	"github.com/keybridge/sts/internal/clients"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
)

// maxListed bounds the rows of one list page.
const maxListed = 500

type clientListData struct {
	Query, Status, Account string
	Clients                []*store.Client
	Pending                int
	Truncated              bool
	Total                  int
}

// visibleClients are the clients u may see.
func (p *Portal) visibleClients(ctx context.Context, u *user) ([]*store.Client, error) {
	if u.IsOperator() {
		return p.o.Store.ListClients(ctx)
	}
	return p.o.Store.ListAccountClients(ctx, u.Account.ID)
}

func (p *Portal) clientList(w http.ResponseWriter, r *http.Request, u *user) error {
	q := r.URL.Query()
	d := clientListData{Query: strings.TrimSpace(q.Get("q")), Status: q.Get("status"), Account: q.Get("account")}
	all, err := p.visibleClients(r.Context(), u)
	if err != nil {
		return err
	}
	needle := strings.ToLower(d.Query)
	// Newest first: the client just registered is at the top.
	for _, c := range slices.Backward(all) {
		if c.Status == store.ClientPending {
			d.Pending++
		}
		if d.Status != "" && string(c.Status) != d.Status {
			continue
		}
		if d.Account != "" && c.AccountID != d.Account {
			continue
		}
		if needle != "" && !strings.Contains(strings.ToLower(c.Name), needle) && !strings.Contains(strings.ToLower(c.ID), needle) {
			continue
		}
		d.Total++
		if len(d.Clients) < maxListed {
			d.Clients = append(d.Clients, c)
		}
	}
	d.Truncated = d.Total > len(d.Clients)
	return p.ok(w, r, "clients", &view{Title: "Clients", Nav: "clients", User: u, Data: d})
}

// ok renders a page with status 200.
func (p *Portal) ok(w http.ResponseWriter, r *http.Request, name string, v *view) error {
	p.render(w, r, http.StatusOK, name, v)
	return nil
}

// clientForm is the register and edit form, as typed.
type clientForm struct {
	Name, ClientID, AccountID string
	Audiences, Scopes         string
	GrantTypes                []string
	TokenFormat               string
	AllowImpersonation        bool
	// Resources, ExchangeAny and IntrospectAny are operators' grants; the
	// form shows them to operators only, and apply ignores them otherwise.
	Resources                  string
	ExchangeAny, IntrospectAny bool
	AccessTTL, RefreshTTL      string
	// The operator's CEL rules (store.Client.Policy; a client has no
	// subject rule); Claims is NAME=EXPR lines. Operators only.
	Condition, ScopeRule, Claims string
	// How the client authenticates and binds its tokens.
	bindingForm
	// Errors by field name, shown next to each field.
	Errors map[string]string
}

func (f *clientForm) HasGrant(g string) bool { return slices.Contains(f.GrantTypes, g) }

// formOf is the form showing an existing client's settings.
func formOf(c *store.Client) *clientForm {
	return &clientForm{
		Name: c.Name, ClientID: c.ID, AccountID: c.AccountID,
		Audiences: strings.Join(c.Audiences, "\n"), Scopes: strings.Join(c.Scopes, " "),
		GrantTypes: slices.Clone(c.GrantTypes), TokenFormat: c.TokenFormat,
		AllowImpersonation: c.AllowImpersonation,
		Resources:          strings.Join(c.Resources, "\n"), ExchangeAny: c.ExchangeAny, IntrospectAny: c.IntrospectAny,
		AccessTTL: durationText(c.AccessTokenTTL), RefreshTTL: durationText(c.RefreshTokenTTL),
		Condition: c.Policy.Condition, ScopeRule: c.Policy.Scope, Claims: claimsText(c.Policy.Claims),
		bindingForm: bindingFormOf(c),
	}
}

func durationText(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

// parseClientForm reads the posted form.
func parseClientForm(r *http.Request) *clientForm {
	f := &clientForm{
		Name:               strings.TrimSpace(r.PostFormValue("name")),
		ClientID:           strings.TrimSpace(r.PostFormValue("client_id")),
		AccountID:          strings.TrimSpace(r.PostFormValue("account")),
		Audiences:          r.PostFormValue("audiences"),
		Scopes:             r.PostFormValue("scopes"),
		GrantTypes:         r.PostForm["grant_type"],
		TokenFormat:        r.PostFormValue("token_format"),
		AllowImpersonation: r.PostFormValue("allow_impersonation") == "on",
		Resources:          r.PostFormValue("resources"),
		ExchangeAny:        r.PostFormValue("exchange_any") == "on",
		IntrospectAny:      r.PostFormValue("introspect_any") == "on",
		AccessTTL:          strings.TrimSpace(r.PostFormValue("access_ttl")),
		RefreshTTL:         strings.TrimSpace(r.PostFormValue("refresh_ttl")),
		Condition:          strings.TrimSpace(r.PostFormValue("condition")),
		ScopeRule:          strings.TrimSpace(r.PostFormValue("scope_rule")),
		Claims:             r.PostFormValue("claims"),
		bindingForm:        parseBindingForm(r.PostFormValue),
		Errors:             map[string]string{},
	}
	return f
}

// parseTTL accepts a Go duration ("1h30m") or a number of seconds; empty
// is zero (the server default).
func parseTTL(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 || n > 1<<31 {
			return 0, errors.New("must be between 0 and 2147483648 seconds")
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, errors.New(`must be a duration such as "15m" or "1h", or a number of seconds`)
	}
	if d%time.Second != 0 {
		return 0, errors.New("must be a whole number of seconds")
	}
	return d, nil
}

// fieldOf maps the registry's problem fields to the form's.
var fieldOf = map[string]string{
	"client_id": "client_id", "name": "name", "grant_types": "grant_type",
	"audience": "audiences", "scope": "scopes", "token_format": "token_format",
	"token_lifetime": "access_ttl", "account": "account", "resource": "resources",
}

// apply writes the form into spec, recording problems it can see itself.
// The registry checks the rest, the account's limits included.
func (f *clientForm) apply(s *clients.Spec, operator bool) {
	s.Name = f.Name
	s.Audiences = f.lines("audiences", f.Audiences, "audience")
	// RFC 6749 §3.3: scope is a list of space-delimited tokens.
	s.Scopes = strings.Fields(f.Scopes)
	s.GrantTypes = f.GrantTypes
	if len(s.GrantTypes) == 0 {
		f.Errors["grant_type"] = "choose at least one grant type"
	}
	s.TokenFormat = f.TokenFormat
	f.applyBinding(s)
	if operator {
		// Operators' grants: an account holder can neither set them nor
		// declare the resources it serves, which would entitle its client
		// to exchange and introspect other parties' tokens.
		s.AllowImpersonation = f.AllowImpersonation
		s.Resources = f.lines("resources", f.Resources, "resource")
		s.ExchangeAny, s.IntrospectAny = f.ExchangeAny, f.IntrospectAny
		f.applyPolicy(s)
	}
	var err error
	if s.AccessTTL, err = parseTTL(f.AccessTTL); err != nil {
		f.Errors["access_ttl"] = err.Error()
	}
	if s.RefreshTTL, err = parseTTL(f.RefreshTTL); err != nil {
		f.Errors["refresh_ttl"] = err.Error()
	}
}

// applyPolicy sets the operator's CEL rules of s from the form and
// type-checks them (the registry does not), so that a bad rule is refused
// when saved, with the client, the rule and the position named, never
// when a token is requested.
func (f *clientForm) applyPolicy(s *clients.Spec) {
	claims, msg := parseClaimLines(f.Claims)
	if msg != "" {
		f.Errors["claims"] = msg
		return
	}
	p := store.Policy{Condition: f.Condition, Scope: f.ScopeRule, Claims: claims, Subject: s.Policy.Subject}
	id := s.ID
	if id == "" {
		id = f.ClientID
	}
	if _, err := celpolicy.Compile(fmt.Sprintf("client %q", id), p); err != nil {
		f.Errors["policy"] = err.Error()
		return
	}
	s.Policy = p
}

// lines splits a "one per line" field: each line, trimmed, is one value,
// and empty lines are skipped. A line with white space inside is not split
// further (a value cannot hold a space, and splitting would silently turn
// one mistyped value into two): it is refused with a field error naming it.
func (f *clientForm) lines(field, text, what string) []string {
	vals, bad := splitLines(text)
	if bad != "" {
		f.Errors[field] = lineError(bad, what)
	}
	return vals
}

// splitLines returns the trimmed non-empty lines of text, and the first one
// holding white space (which it leaves out).
func splitLines(text string) (vals []string, bad string) {
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case l == "":
		case strings.ContainsFunc(l, unicode.IsSpace):
			if bad == "" {
				bad = l
			}
		default:
			vals = append(vals, l)
		}
	}
	return vals, bad
}

func lineError(line, what string) string {
	return strconv.Quote(line) + " contains white space: put each " + what + " on a line of its own"
}

// addProblems records the registry's problems next to their fields; it
// reports whether err was such a list.
func (f *clientForm) addProblems(err error) bool {
	var probs clients.Problems
	if !errors.As(err, &probs) {
		return false
	}
	for _, pr := range probs {
		field, ok := fieldOf[pr.Field]
		if !ok {
			field, pr.Msg = "general", pr.Field+": "+pr.Msg
		}
		if f.Errors[field] == "" {
			f.Errors[field] = pr.Msg
		} else {
			f.Errors[field] += "; " + pr.Msg
		}
	}
	return true
}

type clientNewData struct {
	Form     *clientForm
	Accounts []*store.Account
}

func (p *Portal) clientNewData(ctx context.Context, u *user, f *clientForm) (*clientNewData, error) {
	d := &clientNewData{Form: f}
	if u.IsOperator() {
		as, err := p.o.Store.ListAccounts(ctx)
		if err != nil {
			return nil, err
		}
		for _, a := range as {
			if a.Status == store.AccountActive {
				d.Accounts = append(d.Accounts, a)
			}
		}
	}
	return d, nil
}

func (p *Portal) clientNewForm(w http.ResponseWriter, r *http.Request, u *user) error {
	f := &clientForm{
		GrantTypes:  slices.Clone(clients.DefaultGrantTypes),
		TokenFormat: store.TokenFormatJWT,
		// Certificate-bound tokens by default when a certificate
		// method is chosen (RFC 8705 §3).
		bindingForm: bindingForm{TLSBound: true},
		AccountID:   r.URL.Query().Get("account"),
		Errors:      map[string]string{},
	}
	d, err := p.clientNewData(r.Context(), u, f)
	if err != nil {
		return err
	}
	return p.ok(w, r, "client_new", &view{Title: "Register a client", Nav: "new", User: u, Data: d})
}

type secretData struct {
	Client *store.Client
	Secret string
	// RegistrationToken is the new RFC 7592 registration access token a
	// rotation issues to a dynamically registered client.
	RegistrationToken string
	Rotated           bool
	Grace             string
	// TokenEndpoint is where the client obtains tokens; TryIt a shell
	// snippet doing so (see tryIt).
	TokenEndpoint, TryIt string
}

func (p *Portal) secretData(c *store.Client, secret string) secretData {
	d := secretData{Client: c, Secret: secret, TokenEndpoint: p.o.TokenEndpoint}
	if !clients.KeyBased(c.AuthMethod) {
		// The snippet pastes a secret; a key-based client has none.
		d.TryIt = tryIt(c, p.o.TokenEndpoint)
	}
	return d
}

func (p *Portal) clientCreate(w http.ResponseWriter, r *http.Request, u *user) error {
	ctx := r.Context()
	f := parseClientForm(r)
	var s clients.Spec
	f.apply(&s, u.IsOperator())
	var acct *store.Account
	status := store.ClientActive
	if u.IsOperator() {
		s.ID = f.ClientID
		if f.AccountID != "" {
			a, err := p.o.Store.GetAccount(ctx, f.AccountID)
			switch {
			case errors.Is(err, store.ErrNotFound):
				f.Errors["account"] = "there is no such account"
			case err != nil:
				return err
			case a.Status != store.AccountActive:
				f.Errors["account"] = "the account is not active"
			default:
				acct = a
			}
		}
	} else {
		acct = u.Account
		if p.o.RequireApproval {
			status = store.ClientPending
		}
	}
	if acct != nil {
		s.AccountID = acct.ID
	}
	if _, err := s.Build(p.o.Now()); err != nil && !f.addProblems(err) {
		return err
	}
	var (
		c      *store.Client
		secret string
	)
	if len(f.Errors) == 0 {
		var err error
		c, secret, err = p.o.Clients.Create(ctx, u.by(), s, status)
		switch {
		case errors.Is(err, store.ErrConflict):
			f.Errors["client_id"] = "a client with this id exists already"
		case err != nil && !f.addProblems(err):
			return err
		}
	}
	if len(f.Errors) > 0 {
		d, err := p.clientNewData(ctx, u, f)
		if err != nil {
			return err
		}
		p.render(w, r, http.StatusUnprocessableEntity, "client_new", &view{
			Title: "Register a client", Nav: "new", User: u, Data: d,
			Error: "The client was not registered: correct the fields marked below.",
		})
		return nil
	}
	// The secret is shown here once, so this answer is not a redirect; the
	// page is no-store like every portal page.
	return p.ok(w, r, "client_secret", &view{Title: "Client registered", Nav: "new", User: u, Data: p.secretData(c, secret)})
}

// client returns the client with the path's id if u may see it; an
// account holder is told that another account's client does not exist.
func (p *Portal) client(r *http.Request, u *user) (*store.Client, error) {
	c, err := p.o.Store.GetClient(r.Context(), r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	if !u.IsOperator() && c.AccountID != u.Account.ID {
		return nil, errNotFound
	}
	return c, nil
}

type clientDetailData struct {
	Client  *store.Client
	Account *store.Account
	Form    *clientForm
	// PrevSecretValid is whether the secret before the last rotation is
	// still accepted.
	PrevSecretValid bool
}

func (p *Portal) clientDetailData(r *http.Request, c *store.Client, f *clientForm) (*clientDetailData, error) {
	d := &clientDetailData{Client: c, Form: f, PrevSecretValid: len(c.PrevSecretHash) > 0 && p.o.Now().Before(c.PrevSecretExpiresAt)}
	if c.AccountID != "" {
		a, err := p.o.Store.GetAccount(r.Context(), c.AccountID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		d.Account = a
	}
	if d.Form == nil {
		d.Form = formOf(c)
		d.Form.Errors = map[string]string{}
	}
	return d, nil
}

func (p *Portal) clientDetail(w http.ResponseWriter, r *http.Request, u *user) error {
	c, err := p.client(r, u)
	if err != nil {
		return err
	}
	d, err := p.clientDetailData(r, c, nil)
	if err != nil {
		return err
	}
	return p.ok(w, r, "client", &view{Title: c.Name, Nav: "clients", User: u, Data: d})
}

// clientUpdate saves the edit form (operators only).
func (p *Portal) clientUpdate(w http.ResponseWriter, r *http.Request, u *user) error {
	ctx := r.Context()
	c, err := p.client(r, u)
	if err != nil {
		return err
	}
	f := parseClientForm(r)
	f.ClientID, f.AccountID = c.ID, c.AccountID
	if len(f.Errors) == 0 {
		_, err = p.o.Clients.Update(ctx, u.by(), c.ID, func(s *clients.Spec) error {
			f.apply(s, true)
			if len(f.Errors) > 0 {
				return errFormInvalid
			}
			return nil
		})
		switch {
		case err == nil:
			return redirect(w, r, clientPath(c.ID), "updated")
		case errors.Is(err, errFormInvalid), f.addProblems(err):
		default:
			return err
		}
	}
	d, err := p.clientDetailData(r, c, f)
	if err != nil {
		return err
	}
	p.render(w, r, http.StatusUnprocessableEntity, "client", &view{
		Title: c.Name, Nav: "clients", User: u, Data: d,
		Error: "The changes were not saved: correct the fields marked below.",
	})
	return nil
}

var errFormInvalid = errors.New("form invalid")

// graces are the choices of how long an old secret stays valid.
var graces = map[string]time.Duration{"0": 0, "1h": time.Hour, "24h": 24 * time.Hour, "168h": 7 * 24 * time.Hour}

func (p *Portal) clientRotate(w http.ResponseWriter, r *http.Request, u *user) error {
	c, err := p.client(r, u)
	if err != nil {
		return err
	}
	g := r.PostFormValue("grace")
	grace, ok := graces[g]
	if !ok {
		return badRequest("Choose how long the old secret stays valid.")
	}
	c, secret, rat, err := p.o.Clients.RotateSecret(r.Context(), u.by(), c.ID, grace)
	if err != nil {
		return err
	}
	d := p.secretData(c, secret)
	d.RegistrationToken, d.Rotated = rat, true
	if grace > 0 {
		d.Grace = c.PrevSecretExpiresAt.UTC().Format(timeLayout)
	}
	return p.ok(w, r, "client_secret", &view{Title: "New client secret", Nav: "clients", User: u, Data: d})
}

// clientStatus approves, disables or enables a client. Approving and
// enabling are operators' decisions; an account holder may only disable
// (a pending client too, which withdraws it).
func (p *Portal) clientStatus(w http.ResponseWriter, r *http.Request, u *user) error {
	c, err := p.client(r, u)
	if err != nil {
		return err
	}
	var to store.ClientStatus
	var msg string
	switch a := r.PostFormValue("action"); {
	case a == "approve" && u.IsOperator() && c.Status == store.ClientPending:
		to, msg = store.ClientActive, "approved"
	case a == "enable" && u.IsOperator() && c.Status == store.ClientDisabled:
		to, msg = store.ClientActive, "enabled"
	case a == "disable" && c.Status != store.ClientDisabled:
		to, msg = store.ClientDisabled, "disabled"
	default:
		return &pageError{http.StatusConflict, "This change is not possible for this client now (it may have changed meanwhile)."}
	}
	if _, _, err := p.o.Clients.SetStatus(r.Context(), u.by(), c.ID, to); err != nil {
		return err
	}
	return redirect(w, r, clientPath(c.ID), msg)
}

func (p *Portal) clientDeleteForm(w http.ResponseWriter, r *http.Request, u *user) error {
	c, err := p.client(r, u)
	if err != nil {
		return err
	}
	return p.ok(w, r, "client_delete", &view{Title: "Delete " + c.Name, Nav: "clients", User: u, Data: c})
}

func (p *Portal) clientDelete(w http.ResponseWriter, r *http.Request, u *user) error {
	c, err := p.client(r, u)
	if err != nil {
		return err
	}
	// The confirmation page repeats the id, so that a stale or mistaken
	// form cannot delete another client.
	if r.PostFormValue("confirm") != c.ID {
		return badRequest("The deletion was not confirmed.")
	}
	if err := p.o.Clients.Delete(r.Context(), u.by(), c.ID); err != nil {
		return err
	}
	return redirect(w, r, Path+"/clients", "deleted")
}

// grantChoices are the grant types the forms offer.
var grantChoices = []struct{ Value, Label, Hint string }{
	{oauth.GrantTypeClientCredentials, "client_credentials", "obtain a token for the client itself (RFC 6749 §4.4)"},
	{oauth.GrantTypeTokenExchange, "token-exchange", "exchange a subject token for a narrower one (RFC 8693)"},
	{oauth.GrantTypeRefreshToken, "refresh_token", "receive and use refresh tokens (RFC 6749 §6)"},
	{oauth.GrantTypeJWTBearer, "jwt-bearer", "present a trusted issuer's JWT as the grant (RFC 7523 §2.1, identity chaining)"},
}
