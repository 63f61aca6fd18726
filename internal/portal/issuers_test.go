package portal_test

import (
	"context"
	"encoding/json"
	"errors"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/oauth"
)

// issuerForm is a valid add form for an issuer at iss for client.
func issuerForm(name, iss, client string) url.Values {
	return url.Values{
		"name": {name}, "issuer": {iss}, "token-type": {"jwt", "id_token"},
		"client": {client}, "leeway": {"30s"},
		"condition": {`subject["kubernetes.io"].namespace == "prod"`},
		"claims":    {"ns=subject[\"kubernetes.io\"].namespace\n"},
	}
}

func auditActions(t *testing.T, s *ststest.STS, prefix string) []store.AuditRecord {
	t.Helper()
	if err := s.Server.FlushAudit(context.Background()); err != nil {
		t.Fatal(err)
	}
	recs, err := s.ListAudit(context.Background(), store.AuditFilter{Action: prefix, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// TestIssuerPages adds, lists, shows, edits, disables, enables and
// removes a trusted issuer through the portal's forms, each change audited
// with the operator's name and announced after the redirect.
func TestIssuerPages(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	ctx := context.Background()
	pw := s.CreateOperator("alice")
	c := s.CreateClient(nil)
	idp := ststest.StartIdP(t)
	p := s.PortalSignIn("alice", pw)

	if r := p.Get("/portal/issuers"); r.Status != http.StatusOK || !strings.Contains(string(r.Body), "No issuer is trusted") ||
		!strings.Contains(string(r.Body), `href="/portal/issuers"`) {
		t.Fatalf("empty list: %d\n%s", r.Status, r.Body)
	}
	checkHeaders(t, "issuers", p.Get("/portal/issuers/new"), true)

	// Add.
	r := p.Post("/portal/issuers/new", issuerForm("k8s", idp.URL, c.ID))
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/portal/issuers/k8s?msg=issueradded" {
		t.Fatalf("add: %d %s\n%s", r.Status, r.Header.Get("Location"), r.Body)
	}
	ti, err := s.Store.GetIssuer(ctx, "k8s")
	if err != nil || !ti.Enabled || ti.Source != store.IssuerSourceStore || ti.SubjectPrefix != "k8s:" ||
		ti.Audiences[0] != s.URL || ti.Policy.Claims["ns"] == "" || len(ti.TokenTypes) != 2 {
		t.Fatalf("stored issuer %+v, %v", ti, err)
	}
	// The server accepts its tokens at once (the portal reloads it).
	if s.Server.Trust.Get("k8s") == nil {
		t.Fatal("the server's registry does not know the new issuer")
	}
	page := string(p.Get("/portal/issuers/k8s?msg=issueradded").Body)
	for _, want := range []string{"The issuer is added", idp.URL, "discovery", "k8s:", `id="rule-condition"`, "namespace == &#34;prod&#34;", "ns=subject", `id="disable"`, `id="save-issuer"`} {
		if !strings.Contains(page, want) {
			t.Errorf("detail page lacks %q", want)
		}
	}
	checkHeaders(t, "issuer detail", p.Get("/portal/issuers/k8s"), true)
	if r := p.Get("/portal/issuers/nope"); r.Status != http.StatusNotFound {
		t.Errorf("unknown issuer: %d", r.Status)
	}
	if r := p.Post("/portal/issuers/nope/status", url.Values{"action": {"disable"}}); r.Status != http.StatusNotFound {
		t.Errorf("disable an unknown issuer: %d", r.Status)
	}
	list := string(p.Get("/portal/issuers").Body)
	for _, want := range []string{`href="/portal/issuers/k8s"`, idp.URL, "enabled", "store", "discovery", "jwt, id_token", c.ID, "condition", "claims (1)"} {
		if !strings.Contains(list, want) {
			t.Errorf("list lacks %q", want)
		}
	}

	// Edit: a static JWKS pasted instead of discovery, a subject prefix;
	// the name cannot change.
	jwks, _ := json.Marshal(idp.JWKS())
	f := issuerForm("renamed", idp.URL, c.ID)
	f.Set("jwks", string(jwks))
	f.Set("subject-prefix", "cluster/")
	if r := p.Post("/portal/issuers/k8s", f); r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/portal/issuers/k8s?msg=issuerupd" {
		t.Fatalf("edit: %d\n%s", r.Status, r.Body)
	}
	ti, _ = s.Store.GetIssuer(ctx, "k8s")
	if len(ti.JWKS) == 0 || ti.SubjectPrefix != "cluster/" {
		t.Fatalf("edited issuer %+v", ti)
	}
	if page := string(p.Get("/portal/issuers/k8s").Body); !strings.Contains(page, "static JWKS") {
		t.Error("the detail page does not show the static JWKS")
	}

	// Disable, enable.
	if r := p.Post("/portal/issuers/k8s/status", url.Values{"action": {"disable"}}); r.Header.Get("Location") != "/portal/issuers/k8s?msg=issuerdisabled" {
		t.Fatalf("disable: %d %s", r.Status, r.Body)
	}
	if ti, _ = s.Store.GetIssuer(ctx, "k8s"); ti.Enabled {
		t.Fatal("still enabled")
	}
	if got := s.Server.Trust.Get("k8s"); got != nil && got.Enabled {
		t.Fatal("the server still accepts the disabled issuer")
	}
	if r := p.Post("/portal/issuers/k8s/status", url.Values{"action": {"enable"}}); r.Header.Get("Location") != "/portal/issuers/k8s?msg=issuerenabled" {
		t.Fatalf("enable: %d %s", r.Status, r.Body)
	}
	if ti, _ = s.Store.GetIssuer(ctx, "k8s"); !ti.Enabled {
		t.Fatal("not enabled")
	}

	// Remove: only with the name typed.
	if r := p.Post("/portal/issuers/k8s/delete", url.Values{"confirm": {"other"}}); r.Status != http.StatusBadRequest {
		t.Fatalf("unconfirmed removal: %d", r.Status)
	}
	if r := p.Post("/portal/issuers/k8s/delete", url.Values{"confirm": {"k8s"}}); r.Header.Get("Location") != "/portal/issuers?msg=issuerremoved" {
		t.Fatalf("remove: %d %s", r.Status, r.Body)
	}
	if _, err := s.Store.GetIssuer(ctx, "k8s"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("removed issuer: %v", err)
	}
	if s.Server.Trust.Get("k8s") != nil {
		t.Fatal("the server still knows the removed issuer")
	}

	// Each change is audited with the operator's name.
	want := map[string]bool{"issuer.add": false, "issuer.update": false, "issuer.disable": false, "issuer.enable": false, "issuer.remove": false}
	for _, rec := range auditActions(t, s, "issuer") {
		if _, ok := want[rec.Action]; ok && rec.Subject == "operator:alice" && strings.Contains(rec.Detail, "k8s") {
			want[rec.Action] = true
		}
	}
	for a, seen := range want {
		if !seen {
			t.Errorf("no audit record %s by operator:alice", a)
		}
	}
}

// TestIssuerProblems: the service's problems are shown beside their
// fields, the operator's input is kept, and nothing is stored; a bad CEL
// rule is refused with the issuer and the position named.
func TestIssuerProblems(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	pw := s.CreateOperator("alice")
	p := s.PortalSignIn("alice", pw)

	f := url.Values{
		"name": {"Bad Name"}, "issuer": {"ftp://example.com"}, "jwks-uri": {"https://example.com/keys"},
		"jwks": {`{"keys": []}`}, "token-type": {"jwt"}, "algorithm": {"HS256"},
		"client": {"no-such-client"}, "leeway": {"1h"},
		"condition": {`subject.sub ==`}, "claims": {"broken line"},
	}
	r := p.Post("/portal/issuers/new", f)
	body := html.UnescapeString(string(r.Body))
	if r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("bad form: %d", r.Status)
	}
	for _, want := range []string{
		`id="name-error"`, `id="issuer-error"`, `id="jwks-error"`, `id="algorithm-error"`, `id="leeway-error"`, `id="claims-error"`,
		"never accepted", "not NAME=EXPRESSION", `value="Bad Name"`, `value="ftp://example.com"`, "subject.sub ==", `{"keys": []}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the refused form lacks %q", want)
		}
	}

	// The claims fixed, the CEL error comes from the service, naming the
	// issuer and the position.
	f = issuerForm("k8s", "https://k8s.example.com", "no-such-client")
	f.Set("condition", `subject.sub ==`)
	r = p.Post("/portal/issuers/new", f)
	body = html.UnescapeString(string(r.Body))
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(body, `id="policy-error"`) ||
		!strings.Contains(body, `issuer "k8s": condition: 1:15:`) {
		t.Fatalf("bad CEL rule: %d\n%s", r.Status, body)
	}
	// A valid spec naming a client that does not exist.
	r = p.Post("/portal/issuers/new", issuerForm("k8s", "https://k8s.example.com", "no-such-client"))
	if body = html.UnescapeString(string(r.Body)); r.Status != http.StatusUnprocessableEntity ||
		!strings.Contains(body, `id="client-error">no client "no-such-client"`) {
		t.Fatalf("missing client: %d\n%s", r.Status, body)
	}
	if l, _ := s.Store.ListIssuers(context.Background()); len(l) != 0 {
		t.Fatalf("refused forms stored %d issuers", len(l))
	}
}

// TestIssuerConfigReadOnly: an issuer declared in the configuration file
// is shown without forms, and posts against it are refused by the
// service and change nothing.
func TestIssuerConfigReadOnly(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	pw := s.CreateOperator("alice")
	c := s.CreateClient(nil)
	idp := ststest.StartIdP(t)
	s.Trust(idp, "gh", s.URL, []string{c.ID}, func(ti *store.TrustedIssuer) { ti.Source = store.IssuerSourceConfig })
	p := s.PortalSignIn("alice", pw)

	page := string(p.Get("/portal/issuers/gh").Body)
	if !strings.Contains(page, "declared in the configuration file") || strings.Contains(page, `id="save-issuer"`) ||
		strings.Contains(page, `id="disable"`) || strings.Contains(page, `id="remove"`) {
		t.Fatalf("config issuer page offers changes:\n%s", page)
	}
	if list := string(p.Get("/portal/issuers").Body); !strings.Contains(list, "configuration file") {
		t.Error("the list does not show the source")
	}
	for path, form := range map[string]url.Values{
		"/portal/issuers/gh":        issuerForm("gh", idp.URL, c.ID),
		"/portal/issuers/gh/status": {"action": {"disable"}},
		"/portal/issuers/gh/delete": {"confirm": {"gh"}},
	} {
		r := p.Post(path, form)
		if r.Status != http.StatusConflict || !strings.Contains(string(r.Body), "configuration file") {
			t.Errorf("POST %s: %d\n%s", path, r.Status, r.Body)
		}
	}
	ti, err := s.Store.GetIssuer(context.Background(), "gh")
	if err != nil || !ti.Enabled || ti.Policy.Condition != "" {
		t.Fatalf("config issuer changed: %+v %v", ti, err)
	}
}

// TestIssuerAccess: account holders do not see the issuer and explain
// pages, and every form needs the session's CSRF token.
func TestIssuerAccess(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	pw := s.CreateOperator("alice")
	c := s.CreateClient(nil)
	idp := ststest.StartIdP(t)
	s.Trust(idp, "k8s", s.URL, []string{c.ID}, nil)
	acct, secret, err := s.Accounts.Create(context.Background(), store.AccountIndividual, "Acme", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := s.PortalSignIn(acct.ID, secret)
	if nav := string(h.Get("/portal/clients").Body); strings.Contains(nav, "/portal/issuers") || strings.Contains(nav, "/portal/explain") {
		t.Error("an account holder's navigation links the operators' pages")
	}
	for _, path := range []string{"/portal/issuers", "/portal/issuers/new", "/portal/issuers/k8s", "/portal/explain"} {
		if r := h.Get(path); r.Status != http.StatusNotFound {
			t.Errorf("account holder GET %s: %d", path, r.Status)
		}
	}
	for path, form := range map[string]url.Values{
		"/portal/issuers/new":        issuerForm("x", "https://x.example.com", c.ID),
		"/portal/issuers/k8s/status": {"action": {"disable"}},
		"/portal/issuers/k8s/delete": {"confirm": {"k8s"}},
		"/portal/explain":            {"client_id": {c.ID}, "grant": {"token-exchange"}, "subject_token": {"x"}},
	} {
		if r := h.Post(path, form); r.Status != http.StatusNotFound {
			t.Errorf("account holder POST %s: %d", path, r.Status)
		}
	}

	p := s.PortalSignIn("alice", pw)
	for path, form := range map[string]url.Values{
		"/portal/issuers/new":        issuerForm("x", "https://x.example.com", c.ID),
		"/portal/issuers/k8s":        issuerForm("k8s", idp.URL, c.ID),
		"/portal/issuers/k8s/status": {"action": {"disable"}},
		"/portal/issuers/k8s/delete": {"confirm": {"k8s"}},
		"/portal/explain":            {"client_id": {c.ID}, "grant": {"token-exchange"}, "subject_token": {"x"}},
	} {
		for _, csrf := range []string{"", "forged"} {
			form.Set("csrf", csrf)
			if r := p.Post(path, form); r.Status != http.StatusForbidden {
				t.Errorf("POST %s with csrf %q: %d", path, csrf, r.Status)
			}
		}
	}
	if l, _ := s.Store.ListIssuers(context.Background()); len(l) != 1 || !l[0].Enabled {
		t.Fatalf("refused posts changed the issuers: %+v", l)
	}
}

// TestExplainPage explains a real upstream token for a client: the steps
// with the CEL rule's value, the claims it would issue; then a refusal;
// nothing issued nor audited, the page never cached.
func TestExplainPage(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	pw := s.CreateOperator("alice")
	const backend = "https://backend.example.com"
	c := s.CreateClient(func(c *store.Client) { c.Name, c.Audiences = "deployer", []string{backend} })
	k8s := ststest.StartIdP(t)
	s.Trust(k8s, "k8s", s.URL, []string{c.ID}, func(ti *store.TrustedIssuer) {
		ti.Policy.Condition = `subject["kubernetes.io"].namespace == "prod"`
		ti.Policy.Claims = map[string]string{"ns": `subject["kubernetes.io"].namespace`}
	})
	p := s.PortalSignIn("alice", pw)
	if r := p.Get("/portal/explain?client=" + c.ID); r.Status != http.StatusOK || !strings.Contains(string(r.Body), `selected>deployer`) {
		t.Fatalf("explain form: %d\n%s", r.Status, r.Body)
	}
	before := len(s.Audit())

	tok := k8s.Sign(k8s.Kubernetes("prod", "deployer", s.URL))
	r := p.Post("/portal/explain", url.Values{
		"client_id": {c.ID}, "grant": {"token-exchange"}, "subject_token": {tok},
		"subject_token_type": {oauth.TokenTypeJWT}, "audience": {backend},
	})
	body := html.UnescapeString(string(r.Body))
	checkHeaders(t, "explain result", r, true)
	if r.Status != http.StatusOK {
		t.Fatalf("explain: %d\n%s", r.Status, body)
	}
	for _, want := range []string{
		`id="verdict">would issue`, `subject["kubernetes.io"].namespace == "prod"`, `<pre class="rule value">true</pre>`,
		`"sub": "k8s:system:serviceaccount:prod:deployer"`, `"ns": "prod"`, k8s.Key().KeyID,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("explanation lacks %q", want)
		}
	}

	r = p.Post("/portal/explain", url.Values{
		"client_id": {c.ID}, "grant": {"token-exchange"}, "subject_token": {k8s.Sign(k8s.Kubernetes("dev", "deployer", s.URL))},
		"subject_token_type": {oauth.TokenTypeJWT}, "audience": {backend},
	})
	body = html.UnescapeString(string(r.Body))
	if !strings.Contains(body, `id="verdict">refused`) || !strings.Contains(body, `<pre class="rule value">false</pre>`) ||
		!strings.Contains(body, "condition") || strings.Contains(body, `id="claims-json"`) {
		t.Fatalf("refusal:\n%s", body)
	}
	if !strings.Contains(body, "<code>"+string(oauth.ErrInvalidGrant)+"</code>") && !strings.Contains(body, "<code>"+string(oauth.ErrInvalidRequest)+"</code>") {
		t.Errorf("the refusal does not name its error code")
	}

	// The JWT bearer grant (RFC 7523 §2.1): the token is the assertion,
	// addressed to this server; it takes no actor token.
	s.Store.UpdateClient(context.Background(), c.ID, func(cl *store.Client) error {
		cl.GrantTypes = append(cl.GrantTypes, oauth.GrantTypeJWTBearer)
		return nil
	})
	s.ExpireClientCache()
	r = p.Post("/portal/explain", url.Values{
		"client_id": {c.ID}, "grant": {"jwt-bearer"}, "subject_token": {k8s.Sign(k8s.Kubernetes("prod", "deployer", s.URL))}, "audience": {backend},
	})
	if body = html.UnescapeString(string(r.Body)); !strings.Contains(body, `id="verdict">would issue`) {
		t.Fatalf("JWT bearer:\n%s", body)
	}
	r = p.Post("/portal/explain", url.Values{"client_id": {c.ID}, "grant": {"jwt-bearer"}, "subject_token": {tok}, "actor_token": {tok}})
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(string(r.Body), "takes no actor token") {
		t.Fatalf("JWT bearer with an actor token: %d", r.Status)
	}

	// Problems of the form itself; an unknown client.
	r = p.Post("/portal/explain", url.Values{"client_id": {"nobody"}, "grant": {"token-exchange"}, "subject_token": {tok}})
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(string(r.Body), "there is no such client") {
		t.Fatalf("unknown client: %d", r.Status)
	}

	// Nothing issued or audited, and no token in any record.
	after := s.Audit()
	for _, rec := range after[:len(after)-before] {
		if strings.HasPrefix(rec.Action, "token") || strings.Contains(rec.Detail, tok[:40]) {
			t.Fatalf("explaining left an audit record: %+v", rec)
		}
	}
}

// TestClientPolicy: an operator sets a client's CEL rules in its edit
// form; the detail page shows them; a bad rule is refused naming the
// client and the position.
func TestClientPolicy(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	pw := s.CreateOperator("alice")
	c := s.CreateClient(func(c *store.Client) { c.Name = "svc" })
	p := s.PortalSignIn("alice", pw)
	if page := string(p.Get("/portal/clients/" + c.ID).Body); !strings.Contains(page, `id="no-rules"`) || !strings.Contains(page, `name="scope_rule"`) {
		t.Fatal("the client page shows neither the empty rules nor the fields")
	}
	form := url.Values{
		"name": {"svc"}, "grant_type": {oauth.GrantTypeTokenExchange}, "token_format": {"jwt"},
		"condition": {`subject_issuer == "https://k8s.example.com"`}, "scope_rule": {`["read"]`},
		"claims": {"team=\"ops\"\n"},
	}
	if r := p.Post("/portal/clients/"+c.ID, form); r.Status != http.StatusSeeOther {
		t.Fatalf("save rules: %d\n%s", r.Status, r.Body)
	}
	got, _ := s.Store.GetClient(context.Background(), c.ID)
	if got.Policy.Condition != form.Get("condition") || got.Policy.Scope != `["read"]` || got.Policy.Claims["team"] != `"ops"` {
		t.Fatalf("stored policy %+v", got.Policy)
	}
	page := html.UnescapeString(string(p.Get("/portal/clients/" + c.ID).Body))
	if !strings.Contains(page, `<pre class="rule" id="rule-condition">subject_issuer == "https://k8s.example.com"</pre>`) || !strings.Contains(page, `team="ops"`) {
		t.Fatal("the detail page does not show the rules")
	}

	form.Set("condition", `subject.sub +`)
	r := p.Post("/portal/clients/"+c.ID, form)
	body := html.UnescapeString(string(r.Body))
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(body, `id="policy-error"`) || !strings.Contains(body, `client "`+c.ID+`"`) ||
		!strings.Contains(body, "subject.sub +") {
		t.Fatalf("bad rule: %d\n%s", r.Status, body)
	}
	if got, _ = s.Store.GetClient(context.Background(), c.ID); got.Policy.Condition != `subject_issuer == "https://k8s.example.com"` {
		t.Fatal("a bad rule was saved")
	}

	// Registering a client, an operator sets its rules too, checked alike.
	reg := url.Values{"name": {"svc2"}, "client_id": {"svc2"}, "grant_type": {oauth.GrantTypeTokenExchange}, "token_format": {"jwt"},
		"scope_rule": {`["read"] +`}}
	r = p.Post("/portal/clients/new", reg)
	if body = html.UnescapeString(string(r.Body)); r.Status != http.StatusUnprocessableEntity || !strings.Contains(body, `client "svc2": scope`) {
		t.Fatalf("register with a bad rule: %d\n%s", r.Status, body)
	}
	reg.Set("scope_rule", `["read"]`)
	if r = p.Post("/portal/clients/new", reg); r.Status != http.StatusOK {
		t.Fatalf("register with rules: %d\n%s", r.Status, r.Body)
	}
	if got, err := s.Store.GetClient(context.Background(), "svc2"); err != nil || got.Policy.Scope != `["read"]` {
		t.Fatalf("registered client's rules: %+v %v", got, err)
	}
}
