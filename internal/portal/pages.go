package portal

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/keybridge/sts/internal/account"
	"github.com/keybridge/sts/internal/audit"
	"github.com/keybridge/sts/internal/clients"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
)

// --- Initial access tokens ---

// iatLifetimes are the lifetimes the IAT form offers; the account service
// caps them at its maximum.
var iatLifetimes = []struct {
	Value string
	Label string
}{{"5m", "5 minutes"}, {"15m", "15 minutes"}, {"1h", "1 hour"}}

type iatForm struct {
	AccountID string
	TTL       string
	Claims    string
	Errors    map[string]string
}

type iatData struct {
	Form      *iatForm
	Accounts  []*store.Account // operators choose one
	Lifetimes any
	// The issued token, shown once.
	Token   string
	Account *store.Account
	Expires string
	// RegisterURL is the registration endpoint the IAT is for.
	RegisterURL string
}

func (p *Portal) iatData(ctx context.Context, u *user, f *iatForm) (*iatData, error) {
	d := &iatData{Form: f, Lifetimes: iatLifetimes, RegisterURL: p.o.Issuer + "/register"}
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

func (p *Portal) iatForm(w http.ResponseWriter, r *http.Request, u *user) error {
	f := &iatForm{AccountID: r.URL.Query().Get("account"), TTL: "15m", Errors: map[string]string{}}
	d, err := p.iatData(r.Context(), u, f)
	if err != nil {
		return err
	}
	return p.ok(w, r, "iat", &view{Title: "Issue an initial access token", Nav: "iat", User: u, Data: d})
}

func (p *Portal) iatIssue(w http.ResponseWriter, r *http.Request, u *user) error {
	ctx := r.Context()
	f := &iatForm{AccountID: r.PostFormValue("account"), TTL: r.PostFormValue("ttl"), Claims: strings.TrimSpace(r.PostFormValue("claims")), Errors: map[string]string{}}
	if !u.IsOperator() {
		f.AccountID = u.Account.ID
	}
	ttl, err := time.ParseDuration(f.TTL)
	if err != nil || ttl <= 0 {
		f.Errors["ttl"] = "choose a lifetime"
	}
	var extra map[string]any
	if f.Claims != "" {
		if err := json.Unmarshal([]byte(f.Claims), &extra); err != nil || extra == nil {
			f.Errors["claims"] = "must be a JSON object, such as {\"software_id\": \"radio-7\"}"
		}
		for _, k := range []string{"iss", "aud", "exp", "iat", "nbf", "jti"} {
			if _, ok := extra[k]; ok {
				f.Errors["claims"] = fmt.Sprintf("%q is set by the server", k)
			}
		}
	}
	var a *store.Account
	if f.AccountID == "" {
		f.Errors["account"] = "choose an account"
	} else if a, err = p.o.Store.GetAccount(ctx, f.AccountID); errors.Is(err, store.ErrNotFound) {
		f.Errors["account"] = "there is no such account"
	} else if err != nil {
		return err
	}
	var token string
	if len(f.Errors) == 0 {
		token, err = p.o.Accounts.IssueIAT(ctx, a.ID, ttl, extra)
		if err != nil {
			f.Errors["account"] = "no token can be issued for this account: " + err.Error()
		}
	}
	d, derr := p.iatData(ctx, u, f)
	if derr != nil {
		return derr
	}
	if len(f.Errors) > 0 {
		p.render(w, r, http.StatusUnprocessableEntity, "iat", &view{Title: "Issue an initial access token", Nav: "iat", User: u, Data: d,
			Error: "No token was issued: correct the fields marked below."})
		return nil
	}
	jti, exp := iatClaims(token)
	p.audit(ctx, r, store.AuditRecord{Action: account.ActionIssueIAT, AccountID: a.ID, Subject: u.by(), JTI: jti, Detail: "expires " + exp.UTC().Format(time.RFC3339)})
	d.Token, d.Account, d.Expires = token, a, exp.UTC().Format(timeLayout)
	// Shown once: the answer is the page itself, not a redirect.
	return p.ok(w, r, "iat", &view{Title: "Initial access token", Nav: "iat", User: u, Data: d})
}

// iatClaims reads jti and exp of a token this server just signed.
func iatClaims(token string) (string, time.Time) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", time.Time{}
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", time.Time{}
	}
	var c struct {
		JTI string `json:"jti"`
		Exp int64  `json:"exp"`
	}
	json.Unmarshal(b, &c)
	return c.JTI, time.Unix(c.Exp, 0)
}

// --- Signing keys ---

func (p *Portal) keyList(w http.ResponseWriter, r *http.Request, u *user) error {
	ks, err := p.o.Store.ListKeys(r.Context(), p.o.Now())
	if err != nil {
		return err
	}
	order := map[store.KeyState]int{store.KeyCurrent: 0, store.KeyNext: 1, store.KeyRetired: 2}
	slices.SortStableFunc(ks, func(a, b *store.SigningKey) int { return order[a.State] - order[b.State] })
	return p.ok(w, r, "keys", &view{Title: "Signing keys", Nav: "keys", User: u, Data: ks})
}

func (p *Portal) keyRotate(w http.ResponseWriter, r *http.Request, u *user) error {
	ctx := r.Context()
	before := ""
	if c := p.o.Keys.Snapshot().Current; c != nil {
		before = c.ID
	}
	if err := p.o.Keys.Rotate(ctx); err != nil {
		return err
	}
	after := ""
	if c := p.o.Keys.Snapshot().Current; c != nil {
		after = c.ID
	}
	p.audit(ctx, r, store.AuditRecord{Action: "key.rotate", Subject: u.by(), Detail: "retired " + before + ", current " + after})
	return redirect(w, r, Path+"/keys", "rotated")
}

// --- Audit log ---

type auditData struct {
	Account, Client, Action, Since, Until, Limit string
	Records                                      []store.AuditRecord
	Errors                                       map[string]string
	// Fixed: the account filter is the holder's own account.
	AccountFixed bool
	// Chain is the check of the hash chains, for operators only.
	Chain *auditChainStatus
}

// ChainTail is how many of the last records of each audit chain the audit
// page verifies on each view, with the chain's head: a cheap check (a few
// milliseconds a chain) that catches an edit, deletion or insertion among
// the recent records and a deleted tail. `sts audit verify` walks every
// record. At most ChainMax chains are checked, those appended to last.
const (
	ChainTail = 256
	ChainMax  = 16
)

// auditChainStatus is what the audit page says of the hash chains.
type auditChainStatus struct {
	OK      bool
	Chains  int
	Tail    int64
	Skipped int
	Problem string
	// Err: the check itself failed (the database), not the chain.
	Err string
}

// checkChains verifies the tail of every audit chain (ChainTail).
func (p *Portal) checkChains(ctx context.Context) *auditChainStatus {
	rep, err := audit.Verify(ctx, p.o.Store, audit.VerifyOptions{Tail: ChainTail, MaxChains: ChainMax})
	if err != nil {
		p.o.Logger.Error("portal: verifying the audit chains", "err", err)
		return &auditChainStatus{Err: "the chains could not be read"}
	}
	st := &auditChainStatus{OK: rep.OK(), Chains: len(rep.Chains), Tail: ChainTail, Skipped: rep.Skipped}
	if ps := rep.Problems(); len(ps) > 0 {
		st.Problem = ps[0].String()
	}
	return st
}

// auditLimits are the page sizes the audit page offers.
var auditLimits = []string{"50", "100", "500", "1000"}

// timeInputs are the forms the audit filters accept, each with the
// precision it names: the table's own form (so that a time can be copied
// from it), the same with "T", shorter, or a date alone. RFC 3339 with an
// offset is accepted too.
var timeInputs = []struct {
	layout    string
	precision time.Duration
}{
	{"2006-01-02 15:04:05", time.Second},
	{"2006-01-02T15:04:05", time.Second},
	{"2006-01-02 15:04", time.Minute},
	{"2006-01-02T15:04", time.Minute},
	{"2006-01-02", 24 * time.Hour},
}

// timeHint says what parseTime accepts.
const timeHint = "use YYYY-MM-DD or YYYY-MM-DD HH:MM[:SS], in UTC, such as 2026-01-31 or 2026-01-31 13:45"

// parseTime reads an audit filter's time (UTC unless it says otherwise)
// and returns the instant it names and the end of the period it names at
// its precision: "2026-01-31" is that whole day, so that "until" it
// includes the day, as a person reading it expects.
func parseTime(s string) (start, end time.Time, err error) {
	s = strings.TrimSpace(s)
	trimmed := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(s, "UTC"), "Z"), " ")
	for _, in := range timeInputs {
		if t, err := time.ParseInLocation(in.layout, trimmed, time.UTC); err == nil {
			return t, t.Add(in.precision), nil
		}
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, t.Add(time.Second), nil
	}
	return time.Time{}, time.Time{}, fmt.Errorf("%q is not a date or time: %s", s, timeHint)
}

// ParseAuditTime reads a time as the audit page's filters do (see
// parseTime), for `sts audit list` and `sts audit export`.
func ParseAuditTime(s string) (start, end time.Time, err error) { return parseTime(s) }

func (p *Portal) auditList(w http.ResponseWriter, r *http.Request, u *user) error {
	q := r.URL.Query()
	d := auditData{
		Account: strings.TrimSpace(q.Get("account")), Client: strings.TrimSpace(q.Get("client")),
		Action: strings.TrimSpace(q.Get("action")), Since: q.Get("since"), Until: q.Get("until"),
		Limit: q.Get("limit"), Errors: map[string]string{},
	}
	if !u.IsOperator() {
		d.Account, d.AccountFixed = u.Account.ID, true
	}
	f := store.AuditFilter{AccountID: d.Account, ClientID: d.Client, Action: d.Action, Limit: 100}
	if !slices.Contains(auditLimits, d.Limit) {
		d.Limit = "100"
	}
	f.Limit, _ = strconv.Atoi(d.Limit)
	var err error
	// Since is inclusive; Until includes the period it names (the store's
	// Until is exclusive, so it gets the period's end).
	if d.Since != "" {
		if f.Since, _, err = parseTime(d.Since); err != nil {
			d.Errors["since"] = err.Error()
		}
	}
	if d.Until != "" {
		if _, f.Until, err = parseTime(d.Until); err != nil {
			d.Errors["until"] = err.Error()
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		d.Errors["until"] = "is before since: nothing can match"
	}
	if u.IsOperator() {
		d.Chain = p.checkChains(r.Context())
	}
	status := http.StatusOK
	if len(d.Errors) == 0 {
		if d.Records, err = p.o.Store.ListAudit(r.Context(), f); err != nil {
			return err
		}
	} else {
		status = http.StatusBadRequest
	}
	p.render(w, r, status, "audit", &view{Title: "Audit log", Nav: "audit", User: u, Data: d})
	return nil
}

// --- Template helpers ---

// timeLayout is how pages show times: UTC, to the second.
const timeLayout = "2006-01-02 15:04:05 UTC"

func clientPath(id string) string  { return Path + "/clients/" + url.PathEscape(id) }
func accountPath(id string) string { return Path + "/accounts/" + url.PathEscape(id) }

// maxShownID is the longest id a table shows whole: generated ids (a
// client's 26 characters, an account's 21, a key's 22) always are. A
// longer id an operator chose is shortened visibly, the whole id in its
// title and on its own page (with a copy button).
const maxShownID = 26

// idHTML shows an id that is never broken inside (class "id").
func idHTML(s string) template.HTML {
	e := template.HTMLEscapeString(s)
	if len(s) <= maxShownID {
		return template.HTML(`<code class="id">` + e + `</code>`)
	}
	return template.HTML(`<code class="id" title="` + e + `">` + template.HTMLEscapeString(truncate(s, maxShownID-1)) + `</code>`)
}

// timeHTML shows a time as the "time" function does, breakable only
// between the date and the time of day, so that narrow columns stay
// readable.
func timeHTML(t time.Time) template.HTML {
	if t.IsZero() {
		return "—"
	}
	t = t.UTC()
	return template.HTML(`<time datetime="` + t.Format(time.RFC3339) + `"><span class="nowrap">` + t.Format("2006-01-02") +
		`</span> <span class="nowrap">` + t.Format("15:04:05") + ` UTC</span></time>`)
}

// subjectHTML shows an audit record's subject or actor. One that is an
// id, alone or after a kind ("client:", "account:"), is not broken inside
// the id; any other wraps where it must.
func subjectHTML(s string) template.HTML {
	kind, rest, ok := strings.Cut(s, ":")
	if !ok || strings.ContainsAny(kind, " /") {
		kind, rest = "", s
	} else {
		kind += ":"
	}
	if len(rest) > maxShownID || strings.ContainsFunc(rest, unicode.IsSpace) {
		return template.HTML(template.HTMLEscapeString(truncate(s, 60)))
	}
	return template.HTML(template.HTMLEscapeString(kind) + `<wbr><span class="nowrap">` + template.HTMLEscapeString(rest) + `</span>`)
}

// truncate shortens s to n characters (not bytes: a subject may be any
// text), marking the cut with "…".
func truncate(s string, n int) string {
	i := 0
	for at := range s {
		if i == n {
			return s[:at] + "…"
		}
		i++
	}
	return s
}

var funcs = template.FuncMap{
	"id":                idHTML,
	"subject":           subjectHTML,
	"ts":                timeHTML,
	"clientPath":        clientPath,
	"issuerPath":        issuerPath,
	"devicePath":        devicePath,
	"delegationsPath":   delegationsPath,
	"importPath":        importPath,
	"anchorsOf":         anchorsOf,
	"keySource":         keySource,
	"shortTypes":        shortTypes,
	"orNone":            durationOrNone,
	"claimsText":        claimsText,
	"explainTokenTypes": func() any { return explainTokenTypes },
	"list":              func(v ...string) []string { return v },
	"accountPath":       accountPath,
	"certPath": func(accountID, certID string) string {
		return accountPath(accountID) + "/certificates/" + url.PathEscape(certID)
	},
	"time": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format(timeLayout)
	},
	"ttl": func(d time.Duration) string {
		if d == 0 {
			return "server default"
		}
		return d.String()
	},
	"join": strings.Join,
	"grant": func(g string) string {
		switch g {
		case oauth.GrantTypeTokenExchange:
			return "token-exchange"
		}
		return g
	},
	"grantChoices":      func() any { return grantChoices },
	"authMethodChoices": func() any { return authMethodChoices },
	"tlsNameChoices":    func() any { return tlsNameChoices },
	"keyBased":          clients.KeyBased,
	"auditLimits":       func() []string { return auditLimits },
	"timeHint":          func() string { return timeHint },
	"short":             truncate,
	"lower":             strings.ToLower,
	// dict passes several values to a shared template part.
	"dict": func(kv ...any) (map[string]any, error) {
		if len(kv)%2 != 0 {
			return nil, errors.New("dict: odd number of arguments")
		}
		m := map[string]any{}
		for i := 0; i < len(kv); i += 2 {
			k, ok := kv[i].(string)
			if !ok {
				return nil, errors.New("dict: keys must be strings")
			}
			m[k] = kv[i+1]
		}
		return m, nil
	},
}
