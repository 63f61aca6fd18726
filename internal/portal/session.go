package portal

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keybridge/sts/internal/clientip"
	"github.com/keybridge/sts/internal/store"
)

// Cookie names. Both are confined to the portal's path, HttpOnly and
// SameSite=Strict, so that no cross-site request carries them.
const (
	// sessionCookie holds 256 random bits; the store keeps only their
	// SHA-256 hash.
	sessionCookie = "sts_session"
	// signinCookie holds the random pre-session value that the sign-in
	// form's signed CSRF token is bound to (see csrf.go): a cross-site page
	// can neither read it nor make the browser send it.
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
		if _, bad := store.NonText(r.URL.Query()); bad || !store.ValidText(r.URL.Path) {
			// A path or query value that is not text names no record
			// (PostgreSQL could not even look it up).
			p.fail(w, r, u, errNotText)
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

// checkPost parses the form and checks its CSRF token against want (the
// session's) in constant time.
func (p *Portal) checkPost(w http.ResponseWriter, r *http.Request, want string) error {
	if err := p.readForm(w, r); err != nil {
		return err
	}
	got := r.PostFormValue("csrf")
	if want == "" || got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return errForbidden
	}
	// Every field is text: a byte that is not UTF-8, or NUL, would be
	// refused by PostgreSQL at the first lookup or write (a server
	// error), while SQLite would store it. (The sign-in form checks its
	// fields itself: a name that is not text is a malformed name.)
	if _, bad := store.NonText(r.Form); bad {
		return errNotText
	}
	return nil
}

// readForm parses a posted form within the body limits. A request a
// browser marks as cross-site is refused whatever it carries.
func (p *Portal) readForm(w http.ResponseWriter, r *http.Request) error {
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return errForbidden
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "multipart/form-data":
		limit := int64(maxMultipart)
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/delegations/import") {
			// A CSV of devices (issue 14): the service bounds the file
			// itself; parts beyond maxMultipart go to a temporary file.
			limit = maxImportBody
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
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
	return nil
}

// errNotText refuses a form or an address holding bytes that are not text.
var errNotText = badRequest("The form or the address holds bytes that are not UTF-8 text, or NUL.")

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
	// Keep the browser's pre-session value if it has one, so that a form
	// left open in another tab stays valid; the token is fresh either way.
	nonce := randomToken()
	if c, err := r.Cookie(signinCookie); err == nil && validNonce(c.Value) {
		nonce = c.Value
	}
	http.SetCookie(w, p.cookie(signinCookie, nonce, int(signinTokenTTL/time.Second)))
	p.render(w, r, status, "signin", &view{Title: "Sign in", CSRF: p.signinToken(nonce, p.o.Now()), Error: msg, Data: d})
}

func validNonce(v string) bool {
	if len(v) != signinNonceLen {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(v)
	return err == nil
}

// maxPasswordLen bounds a password or account secret presented at sign-in
// (CheckNewPassword allows no longer one).
const maxPasswordLen = 1024

// signinName is who a sign-in names: an operator or an account.
type signinName struct {
	account bool
	// id is the operator's name as typed, or the account id in lower case.
	id string
}

// key is the name under which the throttle counts attempts: case does
// not make another name.
func (n signinName) key() string { return strings.ToLower(n.id) }

// parseSigninName reads the user name field: an account id ("acct-" and
// up to 59 lower-case letters and digits; ids are base32) or an operator
// name (CheckUsername). A name that cannot exist is refused before any
// password is hashed or any throttle slot taken.
func parseSigninName(name string) (signinName, bool) {
	if len(name) >= 5 && strings.EqualFold(name[:5], "acct-") {
		id := strings.ToLower(name)
		if len(id) == 5 || len(id) > 64 {
			return signinName{}, false
		}
		for _, c := range id[5:] {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
				return signinName{}, false
			}
		}
		return signinName{account: true, id: id}, true
	}
	if CheckUsername(name) != nil {
		return signinName{}, false
	}
	return signinName{id: name}, true
}

// signin checks a sign-in in this order, cheapest first, so that nothing
// an unauthenticated caller sends can make the server spend without bound:
// the form and its CSRF token; the user name's syntax and the password's
// length; a slot in the throttle, reserved before the password is checked
// (see throttle); a slot of the hash gate, or 503 at once; then the
// password check itself.
func (p *Portal) signin(w http.ResponseWriter, r *http.Request) {
	if err := p.readForm(w, r); err != nil {
		p.fail(w, r, nil, err)
		return
	}
	nonce := ""
	if c, err := r.Cookie(signinCookie); err == nil {
		nonce = c.Value
	}
	if !p.checkSigninToken(nonce, r.PostFormValue("csrf"), p.o.Now()) {
		p.fail(w, r, nil, errForbidden)
		return
	}
	ctx := r.Context()
	name := strings.TrimSpace(r.PostFormValue("username"))
	password := r.PostFormValue("password")
	d := signinData{Username: name, Next: r.PostFormValue("next")}
	rec := store.AuditRecord{Action: "portal.signin", Subject: "unknown"}

	who, ok := parseSigninName(name)
	if !ok || len(password) > maxPasswordLen {
		rec.Decision, rec.Error, rec.Detail = store.DecisionRefused, "bad_credentials", "malformed user name or password"
		p.audit(ctx, r, rec)
		p.renderSignin(w, r, http.StatusUnauthorized, signinMessage, d)
		return
	}

	att, wait := p.throttle.reserve(who.key(), clientip.Key(r.RemoteAddr), p.o.Now())
	if att == nil {
		rec.Decision, rec.Error, rec.Detail = store.DecisionRefused, "throttled", "too many failed sign-ins"
		p.audit(ctx, r, rec)
		secs := int((wait + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", fmt.Sprint(secs))
		p.renderSignin(w, r, http.StatusTooManyRequests,
			fmt.Sprintf("Too many failed sign-ins. Wait %d seconds and try again.", secs), d)
		return
	}
	if !p.gate.enter(ctx) {
		// Not a decision about the credentials: nothing is counted.
		att.cancel(p.o.Now())
		w.Header().Set("Retry-After", fmt.Sprint(busyRetryAfter))
		p.renderSignin(w, r, http.StatusServiceUnavailable, "The server is busy checking other sign-ins. Try again in a moment.", d)
		return
	}
	subject, err := p.checkCredentials(ctx, who, password, &rec)
	p.gate.leave()
	now := p.o.Now()
	if err != nil {
		att.cancel(now)
		p.fail(w, r, nil, err)
		return
	}
	if subject == "" {
		att.fail(now)
		rec.Decision, rec.Error, rec.Detail = store.DecisionRefused, "bad_credentials", "wrong user name or password"
		p.audit(ctx, r, rec)
		p.renderSignin(w, r, http.StatusUnauthorized, signinMessage, d)
		return
	}
	att.succeed(now)

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

// checkCredentials checks the password of who, holding a slot of the hash
// gate, and returns the subject signed in, or "" when the credentials are
// wrong; rec learns whom the attempt named, when that exists. Every
// operator name costs one argon2id check, known or not, so that the
// answer's delay does not tell which names exist.
func (p *Portal) checkCredentials(ctx context.Context, who signinName, password string, rec *store.AuditRecord) (string, error) {
	if who.account {
		// An account holder: account id and the account's shared secret
		// (256 random bits, compared in constant time; no hash).
		a, err := p.o.Accounts.CheckSecret(ctx, who.id, password)
		if g, gerr := p.o.Store.GetAccount(ctx, who.id); gerr == nil {
			rec.Subject, rec.AccountID = accountSubject(g.ID), g.ID
		}
		if err != nil {
			return "", nil
		}
		return accountSubject(a.ID), nil
	}
	o, err := p.o.Store.GetOperator(ctx, who.id)
	if errors.Is(err, store.ErrNotFound) {
		CheckPassword(dummyHash, password)
		return "", nil
	}
	if err != nil {
		return "", err
	}
	rec.Subject = operatorSubject(o.Username)
	if !CheckPassword(o.PasswordHash, password) {
		return "", nil
	}
	if NeedsRehash(o.PasswordHash, DefaultPasswordParams) {
		p.rehash(ctx, o, password)
	}
	return operatorSubject(o.Username), nil
}

var errPasswordChanged = errors.New("the password changed meanwhile")

// rehash stores a new hash of an operator's password, with the current
// parameters, after a successful sign-in with a hash made with others:
// hashes move to the current parameters as their owners sign in. It
// changes nothing if the password was changed meanwhile; a failure is
// only logged, since the old hash still works.
func (p *Portal) rehash(ctx context.Context, o *store.Operator, password string) {
	h, err := HashPassword(password, DefaultPasswordParams)
	if err == nil {
		_, err = p.o.Store.UpdateOperator(ctx, o.Username, func(cur *store.Operator) error {
			if cur.PasswordHash != o.PasswordHash {
				return errPasswordChanged
			}
			cur.PasswordHash = h
			return nil
		})
	}
	if err != nil && !errors.Is(err, errPasswordChanged) {
		p.o.Logger.Error("portal: rehash password", "operator", o.Username, "err", err)
	}
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

// dummyHash is an argon2id hash with DefaultPasswordParams of a password
// nobody knows; checking a password against it takes as long as checking
// a real operator's.
const dummyHash = "$argon2id$v=19$m=19456,t=2,p=1$pOqWCvbKxxDiGwtA+TcP4g$CKjdXU14O7rv/KjR97r2q3cojgC+Q4OVh8gKEwJ7sxA"
