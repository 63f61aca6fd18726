package portal

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keybridge/sts/internal/account"
	"github.com/keybridge/sts/internal/clients"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
)

// accountForm is the create form and the limits form of an account.
type accountForm struct {
	Kind, Name        string
	Audiences, Scopes string
	Errors            map[string]string
}

type accountListData struct {
	Accounts []*store.Account
	Clients  map[string]int
	Form     *accountForm
}

func (p *Portal) accountListData(ctx context.Context, f *accountForm) (*accountListData, error) {
	as, err := p.o.Store.ListAccounts(ctx)
	if err != nil {
		return nil, err
	}
	cs, err := p.o.Store.ListClients(ctx)
	if err != nil {
		return nil, err
	}
	d := &accountListData{Accounts: slices.Clone(as), Clients: map[string]int{}, Form: f}
	slices.Reverse(d.Accounts) // newest first
	for _, c := range cs {
		if c.AccountID != "" {
			d.Clients[c.AccountID]++
		}
	}
	return d, nil
}

func (p *Portal) accountList(w http.ResponseWriter, r *http.Request, u *user) error {
	d, err := p.accountListData(r.Context(), &accountForm{Kind: string(store.AccountIndividual), Errors: map[string]string{}})
	if err != nil {
		return err
	}
	return p.ok(w, r, "accounts", &view{Title: "Accounts", Nav: "accounts", User: u, Data: d})
}

// parseLimits checks the audiences and scopes an account's clients are
// limited to.
func parseLimits(f *accountForm) (auds, scopes []string) {
	// One audience per line, as on the client form; scopes are separated
	// by spaces (RFC 6749 §3.3).
	lines, bad := splitLines(f.Audiences)
	if bad != "" {
		f.Errors["audiences"] = lineError(bad, "audience")
	}
	for _, a := range lines {
		if err := clients.CheckAudience(a); err != nil {
			f.Errors["audiences"] = strconvQuote(a) + ": " + err.Error()
		} else if !slices.Contains(auds, a) {
			auds = append(auds, a)
		}
	}
	for _, s := range strings.Fields(f.Scopes) {
		if !oauth.ValidScopeToken(s) {
			f.Errors["scopes"] = strconvQuote(s) + " is not a scope token (RFC 6749 §3.3)"
		} else if !slices.Contains(scopes, s) {
			scopes = append(scopes, s)
		}
	}
	return auds, scopes
}

func strconvQuote(s string) string { return strconv.Quote(s) }

type accountSecretData struct {
	Account *store.Account
	Secret  string
	// Rotated: the secret replaces the account's previous one. SignedOut:
	// the holder rotated their own secret, which ended their session.
	Rotated, SignedOut bool
	// Warning is a problem the rotation had after replacing the secret.
	Warning string
}

func (p *Portal) accountCreate(w http.ResponseWriter, r *http.Request, u *user) error {
	ctx := r.Context()
	f := &accountForm{
		Kind: r.PostFormValue("kind"), Name: strings.TrimSpace(r.PostFormValue("name")),
		Audiences: r.PostFormValue("audiences"), Scopes: r.PostFormValue("scopes"),
		Errors: map[string]string{},
	}
	kind, err := account.ParseKind(f.Kind)
	if err != nil {
		f.Errors["kind"] = "choose individual or organization"
	}
	switch {
	case f.Name == "":
		f.Errors["name"] = "is required"
	case len(f.Name) > 200 || strings.ContainsFunc(f.Name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		f.Errors["name"] = "must be at most 200 characters, without control characters"
	}
	auds, scopes := parseLimits(f)
	if len(f.Errors) > 0 {
		d, err := p.accountListData(ctx, f)
		if err != nil {
			return err
		}
		p.render(w, r, http.StatusUnprocessableEntity, "accounts", &view{Title: "Accounts", Nav: "accounts", User: u, Data: d,
			Error: "The account was not created: correct the fields marked below."})
		return nil
	}
	a, secret, err := p.o.Accounts.Create(ctx, kind, f.Name, auds, scopes)
	if err != nil {
		return err
	}
	p.audit(ctx, r, store.AuditRecord{Action: account.ActionCreate, AccountID: a.ID, Subject: u.by(), Detail: string(a.Kind) + " " + a.Name})
	if secret == "" {
		return redirect(w, r, accountPath(a.ID), "created")
	}
	return p.ok(w, r, "account_secret", &view{Title: "Account created", Nav: "accounts", User: u, Data: accountSecretData{Account: a, Secret: secret}})
}

// accountOf returns the account with the path's id if u may see it: an
// operator every account, an account holder only their own.
func (p *Portal) accountOf(r *http.Request, u *user) (*store.Account, error) {
	id := r.PathValue("id")
	if !u.IsOperator() && id != u.Account.ID {
		return nil, errNotFound
	}
	return p.o.Store.GetAccount(r.Context(), id)
}

type accountDetailData struct {
	Account      *store.Account
	Clients      []*store.Client
	Certificates []certView
	Form         *accountForm
	// CanIssueIAT: the server can sign IATs for this account.
	CanIssueIAT bool
	// Imports: the portal manages delegations (a CSV import form).
	Imports bool
}

type certView struct {
	*store.Certificate
	Subject string
	Issued  bool // issued by this server (it holds the key)
	Valid   bool
}

func (p *Portal) accountDetailData(r *http.Request, a *store.Account, f *accountForm) (*accountDetailData, error) {
	ctx := r.Context()
	cs, err := p.o.Store.ListAccountClients(ctx, a.ID)
	if err != nil {
		return nil, err
	}
	d := &accountDetailData{Account: a, Clients: cs, Form: f, Imports: p.o.Devices != nil}
	slices.Reverse(d.Clients)
	if d.Form == nil {
		d.Form = &accountForm{Audiences: strings.Join(a.Audiences, "\n"), Scopes: strings.Join(a.Scopes, " "), Errors: map[string]string{}}
	}
	now := p.o.Now()
	d.CanIssueIAT = a.Status == store.AccountActive && a.Kind == store.AccountIndividual
	if a.Kind == store.AccountOrganization {
		certs, err := p.o.Store.ListCertificates(ctx, a.ID)
		if err != nil {
			return nil, err
		}
		for _, c := range certs {
			v := certView{Certificate: c, Issued: c.PrivateKey != nil, Valid: !now.Before(c.NotBefore) && now.Before(c.NotAfter)}
			if x, err := x509.ParseCertificate(c.DER); err == nil {
				v.Subject = x.Subject.String()
			}
			if v.Issued && v.Valid && a.Status == store.AccountActive {
				d.CanIssueIAT = true
			}
			d.Certificates = append(d.Certificates, v)
		}
	}
	return d, nil
}

func (p *Portal) accountDetail(w http.ResponseWriter, r *http.Request, u *user) error {
	a, err := p.accountOf(r, u)
	if err != nil {
		return err
	}
	d, err := p.accountDetailData(r, a, nil)
	if err != nil {
		return err
	}
	nav := "accounts"
	if !u.IsOperator() {
		nav = "account"
	}
	return p.ok(w, r, "account", &view{Title: a.Name, Nav: nav, User: u, Data: d})
}

// accountUpdate saves the account's limits (operators only).
func (p *Portal) accountUpdate(w http.ResponseWriter, r *http.Request, u *user) error {
	ctx := r.Context()
	a, err := p.accountOf(r, u)
	if err != nil {
		return err
	}
	f := &accountForm{Audiences: r.PostFormValue("audiences"), Scopes: r.PostFormValue("scopes"), Errors: map[string]string{}}
	auds, scopes := parseLimits(f)
	if len(f.Errors) > 0 {
		d, err := p.accountDetailData(r, a, f)
		if err != nil {
			return err
		}
		p.render(w, r, http.StatusUnprocessableEntity, "account", &view{Title: a.Name, Nav: "accounts", User: u, Data: d,
			Error: "The limits were not saved: correct the fields marked below."})
		return nil
	}
	if _, err := p.o.Store.UpdateAccount(ctx, a.ID, func(a *store.Account) error {
		a.Audiences, a.Scopes, a.UpdatedAt = orEmpty(auds), orEmpty(scopes), p.o.Now()
		return nil
	}); err != nil {
		return err
	}
	p.audit(ctx, r, store.AuditRecord{Action: account.ActionUpdate, AccountID: a.ID, Subject: u.by(),
		Detail: "audiences [" + strings.Join(auds, " ") + "] scopes [" + strings.Join(scopes, " ") + "]"})
	return redirect(w, r, accountPath(a.ID), "accountupd")
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// accountStatus suspends or reactivates an account; suspending signs its
// holders out.
func (p *Portal) accountStatus(w http.ResponseWriter, r *http.Request, u *user) error {
	ctx := r.Context()
	a, err := p.accountOf(r, u)
	if err != nil {
		return err
	}
	var to store.AccountStatus
	var msg string
	switch r.PostFormValue("action") {
	case "suspend":
		to, msg = store.AccountSuspended, "suspended"
	case "activate":
		to, msg = store.AccountActive, "activated"
	default:
		return badRequest("Unknown action.")
	}
	if _, err := p.o.Accounts.SetStatus(ctx, a.ID, to); err != nil {
		return &pageError{http.StatusConflict, "The status could not be changed: " + err.Error() + "."}
	}
	if to != store.AccountActive {
		if err := p.o.Store.DeleteSubjectSessions(ctx, accountSubject(a.ID)); err != nil {
			return err
		}
	}
	p.audit(ctx, r, store.AuditRecord{Action: account.StatusAction(to), AccountID: a.ID, Subject: u.by(), Detail: string(a.Status) + " → " + string(to)})
	return redirect(w, r, accountPath(a.ID), msg)
}

// accountRotateSecret replaces an individual account's shared secret (an
// operator, or the account's holder) and shows the new one once. The
// account service ends the holders' portal sessions, since they signed in
// with the old secret: a holder rotating their own secret is signed out,
// after the page has shown them the new one.
func (p *Portal) accountRotateSecret(w http.ResponseWriter, r *http.Request, u *user) error {
	ctx := r.Context()
	a, err := p.accountOf(r, u)
	if err != nil {
		return err
	}
	if a.Kind != store.AccountIndividual {
		return &pageError{http.StatusConflict, "An organization has no shared secret: it signs its initial access tokens with the keys of its certificates."}
	}
	a, secret, err := p.o.Accounts.RotateSecret(ctx, a.ID)
	if secret == "" {
		if err == nil || errors.Is(err, store.ErrNotFound) {
			return err
		}
		return &pageError{http.StatusConflict, "The secret was not rotated: " + err.Error() + "."}
	}
	d := accountSecretData{Account: a, Secret: secret, Rotated: true, SignedOut: !u.IsOperator()}
	if err != nil {
		// The secret is replaced already: it must be shown, or it is lost.
		p.o.Logger.Error("portal: rotate account secret", "account", a.ID, "err", err)
		d.Warning = "The holders' portal sessions could not all be ended (the error is logged): those signed in stay signed in until their sessions expire."
	}
	p.audit(ctx, r, store.AuditRecord{Action: account.ActionRotateSecret, AccountID: a.ID, Subject: u.by(), Detail: "holders' portal sessions ended"})
	v := &view{Title: "New shared secret", Nav: "accounts", User: u, Data: d}
	if d.SignedOut {
		// The session is gone from the store; the browser forgets it too,
		// and the page is rendered as for someone signed out.
		http.SetCookie(w, p.cookie(sessionCookie, "", -1))
		v.User, v.Nav = nil, ""
		v.Flash = "You are signed out, since your session was opened with the old secret. Copy the new secret below, then sign in with your account ID and the new secret."
	}
	return p.ok(w, r, "account_secret", v)
}

func (p *Portal) certificateIssue(w http.ResponseWriter, r *http.Request, u *user) error {
	ctx := r.Context()
	a, err := p.accountOf(r, u)
	if err != nil {
		return err
	}
	days, err := strconv.Atoi(r.PostFormValue("days"))
	if err != nil || days < 1 || days > 3650 {
		return badRequest("The validity must be between 1 and 3650 days.")
	}
	c, err := p.o.Accounts.IssueCertificate(ctx, a.ID, r.PostFormValue("alg"), time.Duration(days)*24*time.Hour)
	if err != nil {
		return badRequest("The certificate was not issued: %v.", err)
	}
	p.audit(ctx, r, store.AuditRecord{Action: account.ActionCertIssue, AccountID: a.ID, Subject: u.by(), Detail: c.ID})
	return redirect(w, r, accountPath(a.ID), "cert")
}

func (p *Portal) certificateUpload(w http.ResponseWriter, r *http.Request, u *user) error {
	ctx := r.Context()
	a, err := p.accountOf(r, u)
	if err != nil {
		return err
	}
	data := []byte(strings.TrimSpace(r.PostFormValue("pem")))
	if f, _, err := r.FormFile("file"); err == nil {
		defer f.Close()
		if data, err = io.ReadAll(io.LimitReader(f, 64<<10)); err != nil {
			return err
		}
	}
	if len(data) == 0 {
		return badRequest("Choose a certificate file or paste a PEM certificate.")
	}
	c, err := p.o.Accounts.UploadCertificate(ctx, a.ID, data)
	if errors.Is(err, store.ErrConflict) {
		return &pageError{http.StatusConflict, "This certificate is registered already."}
	}
	if err != nil {
		return badRequest("The certificate was not added: %v.", err)
	}
	p.audit(ctx, r, store.AuditRecord{Action: account.ActionCertUpload, AccountID: a.ID, Subject: u.by(), Detail: c.ID})
	return redirect(w, r, accountPath(a.ID), "cert")
}

// certificatePEM downloads a certificate (never a private key).
func (p *Portal) certificatePEM(w http.ResponseWriter, r *http.Request, u *user) error {
	a, err := p.accountOf(r, u)
	if err != nil {
		return err
	}
	certs, err := p.o.Store.ListCertificates(r.Context(), a.ID)
	if err != nil {
		return err
	}
	for _, c := range certs {
		if c.ID == r.PathValue("cert") {
			w.Header().Set("Content-Type", "application/x-pem-file")
			w.Header().Set("Content-Disposition", `attachment; filename="`+a.ID+`.pem"`)
			w.Write(account.PEM(c))
			return nil
		}
	}
	return errNotFound
}
