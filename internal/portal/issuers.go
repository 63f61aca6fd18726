package portal

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/keybridge/sts/internal/issuers"
	"github.com/keybridge/sts/internal/store"
)

// --- Trusted issuers (operators only) ---

func issuerPath(name string) string { return Path + "/issuers/" + url.PathEscape(name) }

// keySource says where an issuer's token keys come from, as the list and
// the detail page show it.
func keySource(ti *store.TrustedIssuer) string {
	var s string
	switch {
	case len(ti.JWKS) > 0:
		s = "static JWKS"
	case ti.JWKSURI != "":
		s = "JWKS URI"
	default:
		s = "discovery"
	}
	if ti.IntrospectionEndpoint != "" {
		s += " + introspection"
	}
	return s
}

// shortTypes names token type URNs as operators type them.
func shortTypes(urns []string) string {
	out := make([]string, len(urns))
	for i, u := range urns {
		out[i] = issuers.ShortTokenType(u)
	}
	return strings.Join(out, ", ")
}

// issuerService is the service, or a page error when the portal was built
// without one (tests of other pages).
func (p *Portal) issuerService() (*issuers.Service, error) {
	if p.o.Issuers == nil {
		return nil, &pageError{http.StatusNotFound, "Trusted issuers are not managed by this portal."}
	}
	return p.o.Issuers, nil
}

// trustChanged lets the server apply a change at once instead of at its
// next poll.
func (p *Portal) trustChanged(ctx context.Context) {
	if p.o.TrustChanged == nil {
		return
	}
	if err := p.o.TrustChanged(ctx); err != nil {
		p.o.Logger.Warn("portal: reload trusted issuers", "err", err)
	}
}

func (p *Portal) issuerList(w http.ResponseWriter, r *http.Request, u *user) error {
	svc, err := p.issuerService()
	if err != nil {
		return err
	}
	list, err := svc.List(r.Context())
	if err != nil {
		return err
	}
	return p.ok(w, r, "issuers", &view{Title: "Trusted issuers", Nav: "issuers", User: u, Data: list})
}

// issuerForm is the add and edit form, as typed.
type issuerForm struct {
	Name, Issuer, JWKSURI, JWKS                  string
	IntrospectionEndpoint, IntrospectionClientID string
	IntrospectionClientSecret                    string
	TokenTypes                                   []string
	Algorithms, Audiences, Clients               string
	MaxAge, Leeway, SubjectPrefix                string
	Condition, ScopeRule, SubjectRule, Claims    string
	AllowHTTP                                    bool
	// SecretSet: editing an issuer whose introspection secret is stored
	// (never shown; an empty field keeps it).
	SecretSet bool
	// Errors by field name (the Problem fields of internal/issuers).
	Errors map[string]string
}

func (f *issuerForm) HasType(short string) bool { return slices.Contains(f.TokenTypes, short) }

// issuerFormOf shows a stored issuer's settings.
func issuerFormOf(ti *store.TrustedIssuer) *issuerForm {
	f := &issuerForm{
		Name: ti.Name, Issuer: ti.Issuer, JWKSURI: ti.JWKSURI, JWKS: string(ti.JWKS),
		IntrospectionEndpoint: ti.IntrospectionEndpoint, IntrospectionClientID: ti.IntrospectionClientID,
		SecretSet:  ti.IntrospectionClientSecret != "",
		Algorithms: strings.Join(ti.Algorithms, " "), Audiences: strings.Join(ti.Audiences, "\n"),
		Clients: strings.Join(ti.Clients, "\n"), MaxAge: durationText(ti.MaxAge), Leeway: ti.Leeway.String(),
		SubjectPrefix: ti.SubjectPrefix,
		Condition:     ti.Policy.Condition, ScopeRule: ti.Policy.Scope, SubjectRule: ti.Policy.Subject,
		Claims:    claimsText(ti.Policy.Claims),
		AllowHTTP: ti.AllowHTTP, Errors: map[string]string{},
	}
	for _, t := range ti.TokenTypes {
		f.TokenTypes = append(f.TokenTypes, issuers.ShortTokenType(t))
	}
	return f
}

func parseIssuerForm(r *http.Request) *issuerForm {
	v := func(k string) string { return strings.TrimSpace(r.PostFormValue(k)) }
	return &issuerForm{
		Name: v("name"), Issuer: v("issuer"), JWKSURI: v("jwks-uri"), JWKS: v("jwks"),
		IntrospectionEndpoint: v("introspection-endpoint"), IntrospectionClientID: v("introspection-client-id"),
		IntrospectionClientSecret: r.PostFormValue("introspection-client-secret"),
		TokenTypes:                r.PostForm["token-type"],
		Algorithms:                v("algorithm"), Audiences: r.PostFormValue("audience"), Clients: r.PostFormValue("client"),
		MaxAge: v("max-age"), Leeway: v("leeway"), SubjectPrefix: r.PostFormValue("subject-prefix"),
		Condition: v("condition"), ScopeRule: v("scope-rule"), SubjectRule: v("subject-rule"),
		Claims: r.PostFormValue("claims"), AllowHTTP: r.PostFormValue("allow-http") == "on",
		Errors: map[string]string{},
	}
}

// apply writes the form into s (a new Spec, or the current settings when
// editing), recording the problems it sees itself; the service checks the
// rest.
func (f *issuerForm) apply(s *issuers.Spec, editing bool) {
	s.Name, s.Issuer, s.JWKSURI = f.Name, f.Issuer, f.JWKSURI
	s.JWKS = nil
	if f.JWKS != "" {
		s.JWKS = []byte(f.JWKS)
	}
	s.IntrospectionEndpoint, s.IntrospectionClientID = f.IntrospectionEndpoint, f.IntrospectionClientID
	// The stored secret is never shown: an empty field keeps it, unless
	// the endpoint is removed.
	if f.IntrospectionClientSecret != "" || !editing || f.IntrospectionEndpoint == "" {
		s.IntrospectionClientSecret = f.IntrospectionClientSecret
	}
	s.TokenTypes = slices.Clone(f.TokenTypes)
	s.Algorithms = strings.Fields(f.Algorithms)
	s.Audiences = f.lines("audience", f.Audiences, "audience")
	s.Clients = strings.Fields(f.Clients)
	var err error
	if s.MaxAge, err = parseTTL(f.MaxAge); err != nil {
		f.Errors["max-age"] = err.Error()
	}
	s.Leeway = nil
	if f.Leeway != "" {
		d, err := parseTTL(f.Leeway)
		if err != nil {
			f.Errors["leeway"] = err.Error()
		}
		s.Leeway = &d
	}
	// An empty prefix field means the default (NAME:); a prefix of
	// white space alone is refused by nothing, so it is trimmed away.
	s.SubjectPrefix = nil
	if pre := strings.TrimSpace(f.SubjectPrefix); pre != "" {
		s.SubjectPrefix = &pre
	}
	claims, msg := parseClaimLines(f.Claims)
	if msg != "" {
		f.Errors["claims"] = msg
	}
	s.Policy = store.Policy{Condition: f.Condition, Scope: f.ScopeRule, Subject: f.SubjectRule, Claims: claims}
	s.AllowHTTP = f.AllowHTTP
}

func (f *issuerForm) lines(field, text, what string) []string {
	vals, bad := splitLines(text)
	if bad != "" {
		f.Errors[field] = lineError(bad, what)
	}
	return vals
}

// addProblems records the service's problems beside their fields (a
// claim's problem beside the claims); it reports whether err was such a
// list.
func (f *issuerForm) addProblems(err error) bool {
	var probs issuers.Problems
	if !errors.As(err, &probs) {
		return false
	}
	known := map[string]bool{
		"name": true, "issuer": true, "jwks-uri": true, "jwks": true, "introspection-endpoint": true,
		"introspection-client-id": true, "introspection-client-secret": true, "token-type": true,
		"algorithm": true, "audience": true, "max-age": true, "leeway": true, "client": true,
		"subject-prefix": true, "policy": true,
	}
	for _, pr := range probs {
		field, msg := pr.Field, pr.Msg
		switch {
		case strings.HasPrefix(field, "claim"):
			field, msg = "claims", pr.Field+": "+pr.Msg
		case !known[field]:
			field, msg = "general", pr.Field+": "+pr.Msg
		}
		if f.Errors[field] == "" {
			f.Errors[field] = msg
		} else {
			f.Errors[field] += "; " + msg
		}
	}
	return true
}

// parseClaimLines reads "NAME=EXPR" lines (the expression may itself hold
// "="); empty lines are skipped. It returns a message about the first bad
// line.
func parseClaimLines(text string) (map[string]string, string) {
	var claims map[string]string
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		name, expr, ok := strings.Cut(l, "=")
		name, expr = strings.TrimSpace(name), strings.TrimSpace(expr)
		switch {
		case !ok || name == "" || expr == "":
			return claims, fmt.Sprintf("%q is not NAME=EXPRESSION", l)
		case strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' }):
			return claims, fmt.Sprintf("the claim name %q contains white space", name)
		case claims[name] != "":
			return claims, fmt.Sprintf("the claim %q is given twice", name)
		}
		if claims == nil {
			claims = map[string]string{}
		}
		claims[name] = expr
	}
	return claims, ""
}

// claimsText is the form's text of claims: NAME=EXPR lines, by name.
func claimsText(claims map[string]string) string {
	names := make([]string, 0, len(claims))
	for k := range claims {
		names = append(names, k)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, k := range names {
		b.WriteString(k + "=" + claims[k] + "\n")
	}
	return b.String()
}

// newIssuerForm has the defaults of a new issuer.
func newIssuerForm() *issuerForm {
	return &issuerForm{TokenTypes: []string{"id_token", "jwt"}, Leeway: issuers.DefaultLeeway.String(), Errors: map[string]string{}}
}

type issuerFormData struct {
	Form    *issuerForm
	Issuer  *store.TrustedIssuer // nil on the add page
	Clients []*store.Client
	// DefaultAudience is what Audiences default to.
	DefaultAudience string
}

func (p *Portal) issuerFormData(ctx context.Context, f *issuerForm, ti *store.TrustedIssuer) (*issuerFormData, error) {
	cs, err := p.o.Store.ListClients(ctx)
	if err != nil {
		return nil, err
	}
	return &issuerFormData{Form: f, Issuer: ti, Clients: cs, DefaultAudience: p.o.Issuer}, nil
}

func (p *Portal) issuerNewForm(w http.ResponseWriter, r *http.Request, u *user) error {
	if _, err := p.issuerService(); err != nil {
		return err
	}
	d, err := p.issuerFormData(r.Context(), newIssuerForm(), nil)
	if err != nil {
		return err
	}
	return p.ok(w, r, "issuer_new", &view{Title: "Add a trusted issuer", Nav: "issuers", User: u, Data: d})
}

func (p *Portal) issuerCreate(w http.ResponseWriter, r *http.Request, u *user) error {
	svc, err := p.issuerService()
	if err != nil {
		return err
	}
	ctx := r.Context()
	f := parseIssuerForm(r)
	var s issuers.Spec
	f.apply(&s, false)
	if len(f.Errors) > 0 {
		// Every problem at once: the service's checks too.
		f.addProblems(s.Validate())
	} else {
		ti, err := svc.Add(ctx, u.by(), s)
		switch {
		case err == nil:
			p.trustChanged(ctx)
			return redirect(w, r, issuerPath(ti.Name), "issueradded")
		case errors.Is(err, store.ErrConflict):
			f.Errors["name"] = "an issuer with this name or issuer URL exists already"
		case !f.addProblems(err):
			return err
		}
	}
	d, err := p.issuerFormData(ctx, f, nil)
	if err != nil {
		return err
	}
	p.render(w, r, http.StatusUnprocessableEntity, "issuer_new", &view{
		Title: "Add a trusted issuer", Nav: "issuers", User: u, Data: d,
		Error: "The issuer was not added: correct the fields marked below.",
	})
	return nil
}

func (p *Portal) issuerDetail(w http.ResponseWriter, r *http.Request, u *user) error {
	svc, err := p.issuerService()
	if err != nil {
		return err
	}
	ti, err := svc.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	d, err := p.issuerFormData(r.Context(), issuerFormOf(ti), ti)
	if err != nil {
		return err
	}
	return p.ok(w, r, "issuer", &view{Title: "Issuer " + ti.Name, Nav: "issuers", User: u, Data: d})
}

func (p *Portal) issuerUpdate(w http.ResponseWriter, r *http.Request, u *user) error {
	svc, err := p.issuerService()
	if err != nil {
		return err
	}
	ctx := r.Context()
	name := r.PathValue("name")
	f := parseIssuerForm(r)
	f.Name = name
	_, err = svc.Update(ctx, u.by(), name, func(s *issuers.Spec) error {
		f.apply(s, true)
		if len(f.Errors) > 0 {
			f.addProblems(s.Validate())
			return errFormInvalid
		}
		return nil
	})
	switch {
	case err == nil:
		p.trustChanged(ctx)
		return redirect(w, r, issuerPath(name), "issuerupd")
	case errors.Is(err, issuers.ErrReadOnly):
		return &pageError{http.StatusConflict, err.Error()}
	case errors.Is(err, store.ErrNotFound):
		return errNotFound
	case errors.Is(err, store.ErrConflict):
		f.Errors["general"] = err.Error()
	case errors.Is(err, errFormInvalid), f.addProblems(err):
	default:
		return err
	}
	ti, err := svc.Get(ctx, name)
	if err != nil {
		return err
	}
	f.SecretSet = ti.IntrospectionClientSecret != ""
	d, err := p.issuerFormData(ctx, f, ti)
	if err != nil {
		return err
	}
	p.render(w, r, http.StatusUnprocessableEntity, "issuer", &view{
		Title: "Issuer " + name, Nav: "issuers", User: u, Data: d,
		Error: "The changes were not saved: correct the fields marked below.",
	})
	return nil
}

func (p *Portal) issuerStatus(w http.ResponseWriter, r *http.Request, u *user) error {
	svc, err := p.issuerService()
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	var msg string
	switch r.PostFormValue("action") {
	case "enable":
		_, _, err = svc.Enable(r.Context(), u.by(), name)
		msg = "issuerenabled"
	case "disable":
		_, _, err = svc.Disable(r.Context(), u.by(), name)
		msg = "issuerdisabled"
	default:
		return badRequest("Choose to enable or disable the issuer.")
	}
	if errors.Is(err, issuers.ErrReadOnly) {
		return &pageError{http.StatusConflict, err.Error()}
	}
	if err != nil {
		return err
	}
	p.trustChanged(r.Context())
	return redirect(w, r, issuerPath(name), msg)
}

func (p *Portal) issuerDelete(w http.ResponseWriter, r *http.Request, u *user) error {
	svc, err := p.issuerService()
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	// The operator types the name: a stale or mistaken form cannot remove
	// another issuer.
	if strings.TrimSpace(r.PostFormValue("confirm")) != name {
		return badRequest("The removal was not confirmed: type the issuer's name.")
	}
	err = svc.Remove(r.Context(), u.by(), name)
	if errors.Is(err, issuers.ErrReadOnly) {
		return &pageError{http.StatusConflict, err.Error()}
	}
	if err != nil {
		return err
	}
	p.trustChanged(r.Context())
	return redirect(w, r, Path+"/issuers", "issuerremoved")
}

// durationOrNone is for templates: a duration, or "none".
func durationOrNone(d time.Duration) string {
	if d == 0 {
		return "none"
	}
	return d.String()
}
