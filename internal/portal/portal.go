package portal

import (
	"bytes"
	"context"
	"crypto/rand"
	"embed"
	"errors"
	"fmt"
	"github.com/keybridge/sts/internal/audit"
	"html/template"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/keybridge/sts/internal/account"
	"github.com/keybridge/sts/internal/clients"
	"github.com/keybridge/sts/internal/devices"
	tokenep "github.com/keybridge/sts/internal/endpoint/token"
	"github.com/keybridge/sts/internal/issuers"
	"github.com/keybridge/sts/internal/keys"
	"github.com/keybridge/sts/internal/store"
)

// Path is the prefix the portal is served under.
const Path = "/portal"

// defaultTokenPath is the server's token endpoint path (server.TokenPath,
// which this package cannot import).
const defaultTokenPath = "/token/oauth2"

// Options are the portal's dependencies and settings.
type Options struct {
	Issuer string
	// TokenEndpoint is the token endpoint's URL, as the server's metadata
	// publishes it; Issuer + "/token/oauth2" when empty.
	TokenEndpoint string
	Store         store.Store
	Accounts      *account.Service
	Clients       *clients.Registry
	Keys          *keys.Manager
	// Issuers manages the trusted issuers (the operators' issuers pages);
	// nil hides them.
	Issuers *issuers.Service
	// TrustChanged, when set, is called after the portal changed a
	// trusted issuer, so that the server applies it at once rather than
	// at its next poll.
	TrustChanged func(context.Context) error
	// Devices manages device trust profiles and delegations (issue 14;
	// the operators' device pages and an account's CSV import); nil
	// hides them. Its writes recompile the server's device trust.
	Devices *devices.Service
	// Explain reports the token endpoint's decisions for a request of a
	// client without issuing or auditing anything (server.Explain); nil
	// hides the explain page.
	Explain func(ctx context.Context, clientID string, form url.Values) (*tokenep.Explanation, error)
	// RequireApproval puts clients that account holders register in the
	// portal in the pending state until an operator approves them, as
	// dynamic registrations are. Clients operators register are active.
	RequireApproval bool
	// Audit, when set, records the portal's decisions through the server's
	// audit writer, which caps fields and coalesces repeated refusals from
	// one source (sign-in floods); without it records go to Store.
	Audit *audit.Writer
	// Latency reports the token endpoint's latency for the dashboard;
	// nil shows it as not measured.
	Latency LatencySource
	// IssuerKeys reports what the server holds of a trusted issuer's
	// keys, for the dashboard (federation.Fetcher.KeyStatus); nil shows
	// that it is not reported.
	IssuerKeys IssuerKeysFunc
	// KeyRotation is the signing keys' rotation period, to show the next
	// scheduled rotation; zero: none is shown.
	KeyRotation time.Duration
	// Secure marks cookies Secure (the server runs behind TLS).
	Secure bool
	// SessionTTL is how long a sign-in lasts; 12 hours when zero.
	SessionTTL time.Duration
	Logger     *slog.Logger
	Now        func() time.Time
}

// DefaultSessionTTL is how long a sign-in lasts unless Options say
// otherwise.
const DefaultSessionTTL = 12 * time.Hour

// Portal is the web portal.
type Portal struct {
	o     Options
	mux   *http.ServeMux
	pages map[string]*template.Template
	// static holds the embedded assets by name.
	static map[string][]byte
	// throttle slows down password guessing; gate bounds the password
	// checks running at once.
	throttle *throttle
	gate     *hashGate
	// csrfKey signs the sign-in form's CSRF tokens.
	csrfKey []byte
	// stats caches the dashboard's audit aggregates; statsTimeout bounds
	// one count (statsTimeout, the constant, when zero).
	stats        statsCache
	statsTimeout time.Duration
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Security headers of every portal response. The CSP allows only the
// portal's own style sheet and script: no inline code, no framing, forms
// that post only to this origin.
const csp = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// New returns the portal.
func New(o Options) (*Portal, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = DefaultSessionTTL
	}
	if o.TokenEndpoint == "" {
		o.TokenEndpoint = o.Issuer + defaultTokenPath
	}
	p := &Portal{
		o:        o,
		static:   map[string][]byte{},
		throttle: newThrottle(),
		gate:     newHashGate(0, waitersPerSlot*defaultHashSlots(), maxHashWait),
	}
	if o.Accounts != nil && o.Accounts.Sealer != nil {
		// Derived from the key-encryption key, which every instance
		// sharing the database has: a form served by one is accepted by
		// another behind the same load balancer.
		p.csrfKey = o.Accounts.Sealer.Derive("portal-signin-csrf")
	} else {
		p.csrfKey = make([]byte, 32)
		rand.Read(p.csrfKey)
	}
	if err := p.parseTemplates(); err != nil {
		return nil, err
	}
	err := fs.WalkDir(staticFS, "static", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(name)
		p.static[path.Base(name)] = b
		return err
	})
	if err != nil {
		return nil, err
	}
	p.routes()
	return p, nil
}

func (p *Portal) parseTemplates() error {
	p.pages = map[string]*template.Template{}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return err
	}
	// Files whose names start with "_" hold parts several pages share.
	partials, err := fs.Glob(templateFS, "templates/_*.html")
	if err != nil {
		return err
	}
	for _, n := range names {
		base := path.Base(n)
		if base == "layout.html" || strings.HasPrefix(base, "_") {
			continue
		}
		files := append([]string{"templates/layout.html", n}, partials...)
		t, err := template.New(base).Funcs(funcs).ParseFS(templateFS, files...)
		if err != nil {
			return fmt.Errorf("portal template %s: %w", base, err)
		}
		p.pages[strings.TrimSuffix(base, ".html")] = t
	}
	return nil
}

func (p *Portal) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /portal/static/{name}", p.serveStatic)
	m.HandleFunc("GET /portal/signin", p.signinForm)
	m.HandleFunc("POST /portal/signin", p.signin)
	m.HandleFunc("POST /portal/signout", p.auth(anyone, p.signout))
	// The home page: the dashboard for operators, the clients for
	// account holders.
	m.HandleFunc("GET /portal/{$}", p.auth(anyone, p.dashboard))

	m.HandleFunc("GET /portal/clients", p.auth(anyone, p.clientList))
	m.HandleFunc("GET /portal/clients/new", p.auth(anyone, p.clientNewForm))
	m.HandleFunc("POST /portal/clients/new", p.auth(anyone, p.clientCreate))
	m.HandleFunc("GET /portal/clients/{id}", p.auth(anyone, p.clientDetail))
	m.HandleFunc("POST /portal/clients/{id}", p.auth(operators, p.clientUpdate))
	m.HandleFunc("POST /portal/clients/{id}/rotate", p.auth(anyone, p.clientRotate))
	m.HandleFunc("POST /portal/clients/{id}/status", p.auth(anyone, p.clientStatus))
	m.HandleFunc("GET /portal/clients/{id}/delete", p.auth(anyone, p.clientDeleteForm))
	m.HandleFunc("POST /portal/clients/{id}/delete", p.auth(anyone, p.clientDelete))

	m.HandleFunc("GET /portal/issuers", p.auth(operators, p.issuerList))
	m.HandleFunc("GET /portal/issuers/new", p.auth(operators, p.issuerNewForm))
	m.HandleFunc("POST /portal/issuers/new", p.auth(operators, p.issuerCreate))
	m.HandleFunc("GET /portal/issuers/{name}", p.auth(operators, p.issuerDetail))
	m.HandleFunc("POST /portal/issuers/{name}", p.auth(operators, p.issuerUpdate))
	m.HandleFunc("POST /portal/issuers/{name}/status", p.auth(operators, p.issuerStatus))
	m.HandleFunc("POST /portal/issuers/{name}/delete", p.auth(operators, p.issuerDelete))

	m.HandleFunc("GET /portal/devices", p.auth(operators, p.deviceList))
	m.HandleFunc("GET /portal/devices/new", p.auth(operators, p.deviceNewForm))
	m.HandleFunc("POST /portal/devices/new", p.auth(operators, p.deviceCreate))
	m.HandleFunc("GET /portal/devices/{name}", p.auth(operators, p.deviceDetail))
	m.HandleFunc("POST /portal/devices/{name}", p.auth(operators, p.deviceUpdate))
	m.HandleFunc("POST /portal/devices/{name}/status", p.auth(operators, p.deviceStatus))
	m.HandleFunc("POST /portal/devices/{name}/delete", p.auth(operators, p.deviceDelete))
	m.HandleFunc("GET /portal/delegations", p.auth(operators, p.delegationList))
	m.HandleFunc("POST /portal/delegations/delete", p.auth(operators, p.delegationDelete))
	m.HandleFunc("POST /portal/accounts/{id}/delegations/import", p.auth(operators, p.delegationImport))

	m.HandleFunc("GET /portal/explain", p.auth(operators, p.explainPage))
	m.HandleFunc("POST /portal/explain", p.auth(operators, p.explainRun))

	m.HandleFunc("GET /portal/accounts", p.auth(operators, p.accountList))
	m.HandleFunc("POST /portal/accounts", p.auth(operators, p.accountCreate))
	m.HandleFunc("GET /portal/accounts/{id}", p.auth(anyone, p.accountDetail))
	m.HandleFunc("POST /portal/accounts/{id}", p.auth(operators, p.accountUpdate))
	m.HandleFunc("POST /portal/accounts/{id}/status", p.auth(operators, p.accountStatus))
	m.HandleFunc("POST /portal/accounts/{id}/secret", p.auth(anyone, p.accountRotateSecret))
	m.HandleFunc("POST /portal/accounts/{id}/certificates", p.auth(operators, p.certificateIssue))
	m.HandleFunc("POST /portal/accounts/{id}/certificates/upload", p.auth(operators, p.certificateUpload))
	m.HandleFunc("GET /portal/accounts/{id}/certificates/{cert}", p.auth(operators, p.certificatePEM))

	m.HandleFunc("GET /portal/iat", p.auth(anyone, p.iatForm))
	m.HandleFunc("POST /portal/iat", p.auth(anyone, p.iatIssue))

	m.HandleFunc("GET /portal/keys", p.auth(operators, p.keyList))
	m.HandleFunc("POST /portal/keys/rotate", p.auth(operators, p.keyRotate))

	m.HandleFunc("GET /portal/audit", p.auth(anyone, p.auditList))

	m.HandleFunc("/portal/", p.auth(anyone, func(w http.ResponseWriter, r *http.Request, u *user) error {
		return errNotFound
	}))
	p.mux = m
}

// ServeHTTP serves the portal's pages.
func (p *Portal) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	// RFC 6797 §7.2: HSTS only on a secure transport: TLS here, or TLS
	// ended by a load balancer in front (X-Forwarded-Proto). Sent over
	// plain HTTP it would be ignored, and it is a misconfiguration signal.
	if p.o.Secure && (r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")) {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
	if r.URL.Path == Path {
		http.Redirect(w, r, Path+"/", http.StatusSeeOther)
		return
	}
	p.mux.ServeHTTP(w, r)
}

func (p *Portal) serveStatic(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	b, ok := p.static[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	// Assets hold nothing secret; let the browser keep them a while.
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Del("Pragma")
	w.Header().Set("Content-Type", mime.TypeByExtension(path.Ext(name)))
	w.Write(b)
}

// pageError is an error whose message the user sees, with its status.
type pageError struct {
	status int
	msg    string
}

func (e *pageError) Error() string { return e.msg }

var (
	errNotFound  = &pageError{http.StatusNotFound, "There is no such page, or you may not see it."}
	errForbidden = &pageError{http.StatusForbidden, "The form could not be accepted: its security token is missing or does not match your session (CSRF check). Reload the page and try again."}
)

func badRequest(format string, args ...any) error {
	return &pageError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// view is what every page template receives.
type view struct {
	Title string
	// Nav names the active item of the navigation bar.
	Nav  string
	User *user
	// CSRF is the token of every form on the page.
	CSRF string
	// Flash is a message about the change just made.
	Flash string
	// Error is a message about the whole form.
	Error  string
	Issuer string
	Data   any
}

// flashes are the messages a redirect after a change may ask for
// (?msg=KEY), so that no text from the URL reaches the page.
var flashes = map[string]string{
	"approved":       "The client is approved and may now obtain tokens.",
	"disabled":       "The client is disabled: it can no longer authenticate.",
	"enabled":        "The client is enabled again.",
	"updated":        "The changes are saved.",
	"deleted":        "The client is deleted.",
	"rotated":        "The signing keys are rotated: the next key now signs, the old one stays published until its tokens expire.",
	"created":        "The account is created.",
	"suspended":      "The account is suspended: its clients cannot register and its holders are signed out.",
	"activated":      "The account is active again.",
	"cert":           "The certificate is added.",
	"signedout":      "You are signed out.",
	"accountupd":     "The account's limits are saved.",
	"issueradded":    "The issuer is added and enabled: its tokens are accepted now.",
	"issuerupd":      "The issuer's settings are saved.",
	"issuerenabled":  "The issuer is enabled: its tokens are accepted again.",
	"issuerdisabled": "The issuer is disabled: its tokens are refused from now on.",
	"issuerremoved":  "The issuer is removed: its tokens are refused from now on.",
	"deviceadded":    "The device profile is added and enabled: its devices are trusted now.",
	"deviceupd":      "The device profile's settings are saved.",
	"deviceenabled":  "The device profile is enabled: its devices are trusted again.",
	"devicedisabled": "The device profile is disabled: its devices are refused from now on.",
	"deviceremoved":  "The device profile is removed: its devices are refused from now on.",
	"undelegated":    "The delegation is removed: the domain proxy can no longer obtain tokens for the device.",
}

// render writes a page: the layout around the named template.
func (p *Portal) render(w http.ResponseWriter, r *http.Request, status int, name string, v *view) {
	t, ok := p.pages[name]
	if !ok {
		p.o.Logger.Error("portal: no template", "name", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if v.User != nil {
		v.CSRF = v.User.csrf
	}
	if v.Flash == "" {
		v.Flash = flashes[r.URL.Query().Get("msg")]
	}
	v.Issuer = p.o.Issuer
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		p.o.Logger.Error("portal: render", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// fail renders err: a pageError as it says, anything else as an internal
// error whose cause is logged, never shown.
func (p *Portal) fail(w http.ResponseWriter, r *http.Request, u *user, err error) {
	var pe *pageError
	if !errors.As(err, &pe) {
		if errors.Is(err, store.ErrNotFound) {
			pe = errNotFound
		} else {
			p.o.Logger.Error("portal", "path", r.URL.Path, "err", err)
			pe = &pageError{http.StatusInternalServerError, "Something went wrong on the server; the error is logged. Try again, or ask an operator."}
		}
	}
	title := http.StatusText(pe.status)
	p.render(w, r, pe.status, "error", &view{Title: title, User: u, Error: pe.msg})
}

// redirect answers a change with 303 See Other (POST/redirect/GET); msg is
// a key of flashes or empty.
func redirect(w http.ResponseWriter, r *http.Request, to, msg string) error {
	if msg != "" {
		sep := "?"
		if strings.Contains(to, "?") {
			sep = "&"
		}
		to += sep + "msg=" + msg
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
	return nil
}

// audit appends one record about a portal action.
func (p *Portal) audit(ctx context.Context, r *http.Request, rec store.AuditRecord) {
	rec.Time = p.o.Now()
	if rec.Decision == "" {
		rec.Decision = store.DecisionGranted
	}
	rec.RequestID = r.Header.Get("X-Request-Id")
	rec.Remote = r.RemoteAddr
	var err error
	if p.o.Audit != nil {
		err = p.o.Audit.Record(ctx, rec)
	} else {
		err = p.o.Store.AppendAudit(ctx, []store.AuditRecord{rec})
	}
	if err != nil {
		p.o.Logger.Error("portal: audit", "action", rec.Action, "err", err)
	}
}
