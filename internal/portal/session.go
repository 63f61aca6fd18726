package portal

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keybridge/sts/internal/store"
)

// Cookie names. Both are confined to the portal's path, HttpOnly and
// SameSite=Strict, so that no cross-site request carries them.
const (
	// sessionCookie holds 256 random bits; the store keeps only their
	// SHA-256 hash.
	sessionCookie = "sts_session"
	// signinCookie is the sign-in form's CSRF token (double submit): a
	// cross-site page can neither read it nor make the browser send it.
	signinCookie = "sts_signin"
)

// user is who is signed in.
type user struct {
	Subject string
	// Operator is the operator's name; empty for account holders.
	Operator string
	// Account is the account holder's account; nil for operators.
	Account *store.Account
	csrf    string
	hash    []byte
}

// IsOperator reports whether the user is an operator.
func (u *user) IsOperator() bool { return u.Operator != "" }

// Name is how the navigation bar names the user.
func (u *user) Name() string {
	if u.IsOperator() {
		return u.Operator
	}
	return u.Account.Name + " (" + u.Account.ID + ")"
}

// by is who acts, as the client registry and the audit log name it.
func (u *user) by() string { return u.Subject }

// access says who may use a page.
type access int

const (
	anyone access = iota
	operators
)

type handler func(w http.ResponseWriter, r *http.Request, u *user) error

// auth wraps a page: it requires a session (GET pages send the browser to
// the sign-in page), refuses account holders on operator pages as if they
// did not exist, and checks the CSRF token of every POST before the handler
// runs.
func (p *Portal) auth(who access, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, err := p.session(r)
		if err != nil {
			p.fail(w, r, nil, err)
			return
		}
		if u == nil {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				to := Path + "/signin"
				if r.URL.Path != Path+"/" {
					to += "?next=" + url.QueryEscape(r.URL.RequestURI())
				}
				http.Redirect(w, r, to, http.StatusSeeOther)
				return
			}
			p.fail(w, r, nil, errForbidden)
			return
		}
		if who == operators && !u.IsOperator() {
			p.fail(w, r, u, errNotFound)
			return
		}
		if r.Method == http.MethodPost {
			if err := p.checkPost(w, r, u.csrf); err != nil {
				p.fail(w, r, u, err)
				return
			}
		}
		if err := h(w, r, u); err != nil {
			p.fail(w, r, u, err)
		}
	}
}

// Body limits of portal forms.
const (
	maxForm      = 256 << 10
	maxMultipart = 1 << 20
)

// checkPost parses the form and checks its CSRF token against want in
// constant time. A request a browser marks as cross-site is refused
// whatever it carries.
func (p *Portal) checkPost(w http.ResponseWriter, r *http.Request, want string) error {
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return errForbidden
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "multipart/form-data":
		r.Body = http.MaxBytesReader(w, r.Body, maxMultipart)
		if err := r.ParseMultipartForm(maxMultipart); err != nil {
			return badRequest("The form could not be read: %v.", err)
		}
	case "application/x-www-form-urlencoded":
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		if err := r.ParseForm(); err != nil {
			return badRequest("The form could not be read: %v.", err)
		}
	default:
		return badRequest("Forms must be posted as application/x-www-form-urlencoded or multipart/form-data.")
	}
	got := r.PostFormValue("csrf")
	if want == "" || got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return errForbidden
	}
	return nil
}

func hashCookie(v string) []byte {
	h := sha256.Sum256([]byte(v))
	return h[:]
}

func randomToken() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// session returns the signed-in user, or nil. An operator who no longer
// exists, or an account that is no longer active, has no session.
func (p *Portal) session(r *http.Request) (*user, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" || len(c.Value) > 100 {
		return nil, nil
	}
	ctx := r.Context()
	hash := hashCookie(c.Value)
	s, err := p.o.Store.GetSession(ctx, hash, p.o.Now())
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	u := &user{Subject: s.Subject, csrf: s.CSRF, hash: hash}
	switch kind, id, _ := strings.Cut(s.Subject, ":"); kind {
	case "operator":
		if _, err := p.o.Store.GetOperator(ctx, id); errors.Is(err, store.ErrNotFound) {
			return nil, nil
		} else if err != nil {
			return nil, err
		}
		u.Operator = id
	case "account":
		a, err := p.o.Store.GetAccount(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil
		} else if err != nil {
			return nil, err
		}
		if a.Status != store.AccountActive {
			return nil, nil
		}
		u.Account = a
	default:
		return nil, nil
	}
	return u, nil
}

func (p *Portal) cookie(name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name: name, Value: value, Path: Path, MaxAge: maxAge,
		HttpOnly: true, Secure: p.o.Secure, SameSite: http.SameSiteStrictMode,
	}
}

// remoteHost is the client's address without port. The portal does not
// trust forwarding headers: behind a proxy, the proxy's address is
// throttled, which is the conservative choice.
func remoteHost(r *http.Request) string {
	h, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return h
}

// safeNext accepts only a path inside the portal as the page to go to
// after signing in, so that the sign-in page cannot redirect elsewhere.
func safeNext(next string) string {
	if !strings.HasPrefix(next, Path+"/") || strings.ContainsAny(next, "\\\r\n") || strings.Contains(next, "//") ||
		strings.HasPrefix(next, Path+"/signin") || strings.HasPrefix(next, Path+"/signout") {
		return Path + "/clients"
	}
	return next
}

type signinData struct {
	Username string
	Next     string
}

// signinMessage is the one answer to every wrong credential, whatever was
// wrong: an unknown name, a wrong password, a suspended account.
const signinMessage = "The user name or password is incorrect."

func (p *Portal) signinForm(w http.ResponseWriter, r *http.Request) {
	if u, err := p.session(r); err == nil && u != nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	p.renderSignin(w, r, http.StatusOK, "", signinData{Next: r.URL.Query().Get("next")})
}

func (p *Portal) renderSignin(w http.ResponseWriter, r *http.Request, status int, msg string, d signinData) {
	token := randomToken()
	http.SetCookie(w, p.cookie(signinCookie, token, 3600))
	p.render(w, r, status, "signin", &view{Title: "Sign in", CSRF: token, Error: msg, Data: d})
}

func (p *Portal) signin(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(signinCookie)
	want := ""
	if err == nil {
		want = c.Value
	}
	if err := p.checkPost(w, r, want); err != nil {
		p.fail(w, r, nil, err)
		return
	}
	ctx := r.Context()
	name := strings.TrimSpace(r.PostFormValue("username"))
	password := r.PostFormValue("password")
	d := signinData{Username: name, Next: r.PostFormValue("next")}
	now := p.o.Now()
	userKey, addrKey := "u:"+strings.ToLower(name), "a:"+remoteHost(r)
	rec := store.AuditRecord{Action: "portal.signin", Subject: "unknown"}

	if wait := max(p.users.wait(userKey, now), p.addrs.wait(addrKey, now)); wait > 0 {
		rec.Decision, rec.Error, rec.Detail = store.DecisionRefused, "throttled", "too many failed sign-ins"
		p.audit(ctx, r, rec)
		secs := int((wait + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", fmt.Sprint(secs))
		p.renderSignin(w, r, http.StatusTooManyRequests,
			fmt.Sprintf("Too many failed sign-ins. Wait %d seconds and try again.", secs), d)
		return
	}

	var subject string
	ok := false
	if strings.HasPrefix(strings.ToLower(name), "acct-") {
		// An account holder: account id and the account's shared secret.
		a, err := p.o.Accounts.CheckSecret(ctx, name, password)
		if err == nil {
			ok, subject = true, accountSubject(a.ID)
		}
		if a, gerr := p.o.Store.GetAccount(ctx, name); gerr == nil {
			rec.Subject, rec.AccountID = accountSubject(a.ID), a.ID
		}
	} else {
		o, err := p.o.Store.GetOperator(ctx, name)
		switch {
		case err == nil:
			rec.Subject = operatorSubject(o.Username)
			ok, subject = CheckPassword(o.PasswordHash, password), operatorSubject(o.Username)
		case errors.Is(err, store.ErrNotFound):
			// Spend the same time as for a real operator, so that the
			// answer's delay does not tell which names exist.
			CheckPassword(dummyHash, password)
		default:
			p.fail(w, r, nil, err)
			return
		}
	}
	if !ok {
		p.users.fail(userKey, now)
		p.addrs.fail(addrKey, now)
		rec.Decision, rec.Error, rec.Detail = store.DecisionRefused, "bad_credentials", "wrong user name or password"
		p.audit(ctx, r, rec)
		p.renderSignin(w, r, http.StatusUnauthorized, signinMessage, d)
		return
	}
	p.users.reset(userKey)

	// A fresh session every time: a session id set before sign-in is
	// never reused (no session fixation).
	if old, err := r.Cookie(sessionCookie); err == nil {
		p.o.Store.DeleteSession(ctx, hashCookie(old.Value))
	}
	value := randomToken()
	s := &store.Session{Hash: hashCookie(value), Subject: subject, CSRF: randomToken(), CreatedAt: now, ExpiresAt: now.Add(p.o.SessionTTL)}
	if err := p.o.Store.CreateSession(ctx, s); err != nil {
		p.fail(w, r, nil, err)
		return
	}
	http.SetCookie(w, p.cookie(sessionCookie, value, 0))
	http.SetCookie(w, p.cookie(signinCookie, "", -1))
	rec.Subject, rec.Detail = subject, "signed in"
	p.audit(ctx, r, rec)
	http.Redirect(w, r, safeNext(d.Next), http.StatusSeeOther)
}

func (p *Portal) signout(w http.ResponseWriter, r *http.Request, u *user) error {
	if err := p.o.Store.DeleteSession(r.Context(), u.hash); err != nil {
		return err
	}
	http.SetCookie(w, p.cookie(sessionCookie, "", -1))
	rec := store.AuditRecord{Action: "portal.signout", Subject: u.Subject}
	if u.Account != nil {
		rec.AccountID = u.Account.ID
	}
	p.audit(r.Context(), r, rec)
	return redirect(w, r, Path+"/signin", "signedout")
}

// dummyHash is an argon2id hash with the default parameters of a password
// nobody knows; checking a password against it takes as long as checking
// a real operator's.
const dummyHash = "$argon2id$v=19$m=65536,t=1,p=2$Zeh9Dy/k88tpLUFfYQKAEA$mQ78TjC5T19H4OykTvxl0aa2xBZhUIuQEyXpNa1mxLk"
