package portal_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/portal"
	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/oauth"
)

const wantCSP = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// signinMessage is the one answer to every wrong credential.
const signinMessage = "The user name or password is incorrect."

func checkHeaders(t *testing.T, what string, r *ststest.Response, noStore bool) {
	t.Helper()
	h := r.Header
	if got := h.Get("Content-Security-Policy"); got != wantCSP {
		t.Errorf("%s: CSP %q", what, got)
	}
	if strings.Contains(h.Get("Content-Security-Policy"), "unsafe-inline") {
		t.Errorf("%s: CSP allows unsafe-inline", what)
	}
	for k, want := range map[string]string{"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"} {
		if got := h.Get(k); got != want {
			t.Errorf("%s: %s = %q, want %q", what, k, got, want)
		}
	}
	if noStore && h.Get("Cache-Control") != "no-store" {
		t.Errorf("%s: Cache-Control %q, want no-store", what, h.Get("Cache-Control"))
	}
}

func TestSecurityHeaders(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	pw := s.CreateOperator("alice")
	anon := s.NewPortalSession()
	checkHeaders(t, "sign-in page", anon.Get("/portal/signin"), true)
	checkHeaders(t, "not signed in", anon.Get("/portal/clients"), true)
	p := s.PortalSignIn("alice", pw)
	for _, path := range []string{"/portal/clients", "/portal/clients/new", "/portal/accounts", "/portal/iat", "/portal/keys", "/portal/audit", "/portal/nowhere"} {
		checkHeaders(t, path, p.Get(path), true)
	}
	css := p.Get("/portal/static/style.css")
	if css.Status != http.StatusOK || !strings.HasPrefix(css.Header.Get("Content-Type"), "text/css") {
		t.Fatalf("style.css: %d %s", css.Status, css.Header.Get("Content-Type"))
	}
	checkHeaders(t, "style.css", css, false)
	js := p.Get("/portal/static/portal.js")
	if js.Status != http.StatusOK || !strings.Contains(js.Header.Get("Content-Type"), "javascript") {
		t.Fatalf("portal.js: %d %s", js.Status, js.Header.Get("Content-Type"))
	}
	// No inline script or style anywhere: the CSP would block it.
	for _, path := range []string{"/portal/signin", "/portal/clients", "/portal/clients/new", "/portal/accounts", "/portal/keys", "/portal/audit", "/portal/iat", "/portal/issuers", "/portal/issuers/new", "/portal/explain"} {
		body := string(p.Get(path).Body)
		if strings.Contains(body, "<script>") || strings.Contains(body, "style=") || strings.Contains(body, "<style") || regexp.MustCompile(`\son[a-z]+=`).MatchString(body) {
			t.Errorf("%s has inline script or style", path)
		}
	}
}

func sessionCookie(r *ststest.Response) *http.Cookie {
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		if c.Name == "sts_session" && c.Value != "" {
			return c
		}
	}
	return nil
}

func TestSignIn(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	pw := s.CreateOperator("alice")
	acct, secret, err := s.Accounts.Create(context.Background(), store.AccountIndividual, "Acme", nil, nil)
	if err != nil {
		t.Fatal(err)
	}

	// Every wrong credential gets the same answer and no session.
	for _, c := range []struct{ name, user, pw string }{
		{"wrong password", "alice", pw + "x"},
		{"unknown operator", "mallory", pw},
		{"empty password", "alice", ""},
		{"wrong account secret", acct.ID, secret + "x"},
		{"unknown account", "acct-doesnotexist", secret},
		{"operator password for account", acct.ID, pw},
	} {
		p := s.NewPortalSession()
		r := p.SignIn(c.user, c.pw)
		if r.Status != http.StatusUnauthorized || !strings.Contains(string(r.Body), signinMessage) {
			t.Errorf("%s: %d, want 401 with the one message\n%s", c.name, r.Status, r.Body)
		}
		if sessionCookie(r) != nil {
			t.Errorf("%s: a session cookie was set", c.name)
		}
		if got := p.Get("/portal/clients"); got.Status != http.StatusSeeOther || !strings.HasPrefix(got.Header.Get("Location"), "/portal/signin") {
			t.Errorf("%s: after the failure, /portal/clients = %d %s", c.name, got.Status, got.Header.Get("Location"))
		}
	}

	// The right password: a session cookie with the right attributes.
	p := s.NewPortalSession()
	r := p.SignIn("alice", pw)
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/portal/clients" {
		t.Fatalf("sign-in: %d %s", r.Status, r.Header.Get("Location"))
	}
	c := sessionCookie(r)
	if c == nil || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/portal" || c.Secure || len(c.Value) < 43 {
		t.Fatalf("session cookie %+v", c)
	}
	if raw := r.Header.Values("Set-Cookie"); !strings.Contains(strings.Join(raw, "\n"), "SameSite=Strict") {
		t.Errorf("Set-Cookie %q lacks SameSite=Strict", raw)
	}
	page := p.Get("/portal/clients")
	if page.Status != http.StatusOK || !strings.Contains(string(page.Body), "alice") {
		t.Fatalf("signed in: %d", page.Status)
	}

	// An account holder signs in with the account id and shared secret.
	h := s.PortalSignIn(acct.ID, secret)
	if page := h.Get("/portal/clients"); !strings.Contains(string(page.Body), "Acme") {
		t.Errorf("account holder's page does not name the account")
	}

	// Sign-ins are audited, granted and refused.
	if err := s.Server.FlushAudit(context.Background()); err != nil {
		t.Fatal(err)
	}
	recs, err := s.ListAudit(context.Background(), store.AuditFilter{Action: "portal.signin", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var granted, refused int
	for _, rec := range recs {
		switch rec.Decision {
		case store.DecisionGranted:
			granted += max(rec.Count, 1)
		case store.DecisionRefused:
			refused += max(rec.Count, 1) // repeats are coalesced
		}
		if strings.Contains(rec.Detail+rec.Subject, pw) || strings.Contains(rec.Detail+rec.Subject, secret) {
			t.Errorf("audit record %+v holds a password", rec)
		}
	}
	if granted != 2 || refused != 6 {
		t.Errorf("portal.signin audit: %d granted, %d refused; want 2 and 6", granted, refused)
	}

	// ?next= leads back inside the portal only.
	for next, want := range map[string]string{
		"/portal/keys":          "/portal/keys",
		"//evil.example/portal": "/portal/clients",
		"https://evil.example/": "/portal/clients",
		"/portal//evil.example": "/portal/clients",
		"/elsewhere":            "/portal/clients",
	} {
		q := s.NewPortalSession()
		q.Get("/portal/signin")
		r := q.Post("/portal/signin", url.Values{"username": {"alice"}, "password": {pw}, "next": {next}})
		if got := r.Header.Get("Location"); got != want {
			t.Errorf("next=%q: redirected to %q, want %q", next, got, want)
		}
	}
}

func TestSignInBackoff(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	pw := s.CreateOperator("alice")
	p := s.NewPortalSession()
	// Five free failures for a name from one address, and the attempt
	// after them; its failure locks the pair for 1 s.
	for i := range 6 {
		if r := p.SignIn("alice", "wrong"); r.Status != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i+1, r.Status)
		}
	}
	r := p.SignIn("alice", pw)
	if r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") != "1" || sessionCookie(r) != nil {
		t.Fatalf("right password while locked: %d Retry-After %q", r.Status, r.Header.Get("Retry-After"))
	}
	s.Clock.Advance(time.Second)
	if r := p.SignIn("alice", pw); r.Status != http.StatusSeeOther {
		t.Fatalf("after the wait: %d", r.Status)
	}
	// The success forgot the pair's failures; each failure beyond the free
	// ones doubles the wait: 1 s, 2 s, 4 s, ...
	p = s.NewPortalSession()
	for range 6 {
		p.SignIn("alice", "wrong")
	}
	s.Clock.Advance(time.Second)
	p.SignIn("alice", "wrong") // the 7th: locked for 2 s
	if r := p.SignIn("alice", pw); r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") != "2" {
		t.Fatalf("after 7 failures: %d Retry-After %q", r.Status, r.Header.Get("Retry-After"))
	}
	s.Clock.Advance(time.Second)
	if r := p.SignIn("alice", pw); r.Status != http.StatusTooManyRequests {
		t.Fatalf("1 s into a 2 s wait: %d", r.Status)
	}
	s.Clock.Advance(time.Second)
	if r := p.SignIn("alice", pw); r.Status != http.StatusSeeOther {
		t.Fatalf("after the 2 s wait: %d", r.Status)
	}
	// Another user name from the same address is not locked by alice's
	// failures until the address has failed more than twenty times.
	bob := s.CreateOperator("bob")
	if r := s.NewPortalSession().SignIn("bob", bob); r.Status != http.StatusSeeOther {
		t.Fatalf("bob: %d", r.Status)
	}
}

func TestCSRF(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	pw := s.CreateOperator("alice")
	p := s.PortalSignIn("alice", pw)
	c := s.CreateClient(nil)
	path := "/portal/clients/" + c.ID + "/status"
	for name, form := range map[string]url.Values{
		"missing": {"action": {"disable"}, "csrf": {""}},
		"forged":  {"action": {"disable"}, "csrf": {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}},
		"other session's": {"action": {"disable"}, "csrf": {func() string {
			q := s.PortalSignIn("alice", pw)
			return q.CSRF
		}()}},
	} {
		r := p.Post(path, form)
		if r.Status != http.StatusForbidden || !strings.Contains(string(r.Body), "CSRF") {
			t.Errorf("%s CSRF token: %d", name, r.Status)
		}
	}
	if got, _ := s.Store.GetClient(context.Background(), c.ID); got.Status != store.ClientActive {
		t.Fatalf("a forged form changed the client: %s", got.Status)
	}

	// A request the browser marks cross-site is refused even with the token.
	req, _ := http.NewRequest(http.MethodPost, s.URL+path, strings.NewReader(url.Values{"action": {"disable"}, "csrf": {p.CSRF}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := p.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site POST: %d", resp.StatusCode)
	}

	// The right token works.
	if r := p.Post(path, url.Values{"action": {"disable"}}); r.Status != http.StatusSeeOther {
		t.Fatalf("with the session's token: %d %s", r.Status, r.Body)
	}

	// Signing out needs the token too.
	if r := p.Post("/portal/signout", url.Values{"csrf": {"x"}}); r.Status != http.StatusForbidden {
		t.Errorf("sign-out with a forged token: %d", r.Status)
	}

	// The sign-in form has its own token, signed by the server and bound
	// to a pre-session cookie: see TestSignInCSRF.
	q := s.NewPortalSession()
	if r := q.Post("/portal/signin", url.Values{"username": {"alice"}, "password": {pw}, "csrf": {"x"}}); r.Status != http.StatusForbidden || sessionCookie(r) != nil {
		t.Errorf("sign-in without the form's cookie: %d", r.Status)
	}
	q.Get("/portal/signin")
	if r := q.Post("/portal/signin", url.Values{"username": {"alice"}, "password": {pw}, "csrf": {"forged"}}); r.Status != http.StatusForbidden || sessionCookie(r) != nil {
		t.Errorf("sign-in with a forged token: %d", r.Status)
	}
}

func TestSignOutAndReset(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	ctx := context.Background()
	pw := s.CreateOperator("alice")
	p := s.PortalSignIn("alice", pw)
	if r := p.Post("/portal/signout", nil); r.Status != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/portal/signin") {
		t.Fatalf("sign-out: %d %s", r.Status, r.Header.Get("Location"))
	}
	if r := p.Get("/portal/clients"); r.Status != http.StatusSeeOther {
		t.Fatalf("after sign-out: %d", r.Status)
	}

	// A password reset ends every session of the operator.
	p = s.PortalSignIn("alice", pw)
	if err := portal.ResetPassword(ctx, s.Store, "alice", "a-new-password-1234", portal.PasswordParams{Time: 1, MemoryKiB: 64, Threads: 1}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if r := p.Get("/portal/clients"); r.Status != http.StatusSeeOther {
		t.Fatalf("after a password reset: %d", r.Status)
	}
	if r := s.NewPortalSession().SignIn("alice", pw); r.Status != http.StatusUnauthorized {
		t.Fatalf("old password after reset: %d", r.Status)
	}
	s.PortalSignIn("alice", "a-new-password-1234")

	// Suspending an account signs its holders out.
	a, secret, err := s.Accounts.Create(ctx, store.AccountIndividual, "Acme", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := s.PortalSignIn(a.ID, secret)
	op := s.PortalSignIn("alice", "a-new-password-1234")
	op.Get("/portal/accounts/" + a.ID)
	if r := op.Post("/portal/accounts/"+a.ID+"/status", url.Values{"action": {"suspend"}}); r.Status != http.StatusSeeOther {
		t.Fatalf("suspend: %d %s", r.Status, r.Body)
	}
	if r := h.Get("/portal/clients"); r.Status != http.StatusSeeOther {
		t.Fatalf("holder of a suspended account: %d", r.Status)
	}
	if r := s.NewPortalSession().SignIn(a.ID, secret); r.Status != http.StatusUnauthorized || !strings.Contains(string(r.Body), signinMessage) {
		t.Fatalf("sign-in to a suspended account: %d", r.Status)
	}
}

func TestAccountHolderSeesOnlyTheirAccount(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	ctx := context.Background()
	a, secretA, err := s.Accounts.Create(ctx, store.AccountIndividual, "Acme", []string{"https://backend.example.com/api"}, []string{"api"})
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := s.Accounts.Create(ctx, store.AccountIndividual, "Globex", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	theirs := s.CreateClient(func(c *store.Client) { c.AccountID, c.Name = b.ID, "globex-secret-client" })
	lone := s.CreateClient(func(c *store.Client) { c.Name = "operators-client" })

	h := s.PortalSignIn(a.ID, secretA)
	// The operators' grants are not for account holders: posted anyway,
	// they are ignored.
	r := h.Post("/portal/clients/new", url.Values{"name": {"acme-svc"}, "audiences": {"https://backend.example.com/api"}, "scopes": {"api"},
		"grant_type": {oauth.GrantTypeClientCredentials}, "token_format": {"jwt"},
		"resources": {"https://backend.example.com/api"}, "exchange_any": {"on"}, "introspect_any": {"on"}, "allow_impersonation": {"on"}})
	if r.Status != http.StatusOK {
		t.Fatalf("holder registers a client: %d\n%s", r.Status, r.Body)
	}
	mine := extractValue(t, r.Body, "client-id")
	if c, err := s.Store.GetClient(ctx, mine); err != nil || len(c.Resources) != 0 || c.ExchangeAny || c.IntrospectAny || c.AllowImpersonation {
		t.Fatalf("holder granted itself an operator's right: %+v %v", c, err)
	}
	if form := string(h.Get("/portal/clients/new").Body); strings.Contains(form, `name="resources"`) || strings.Contains(form, `name="exchange_any"`) || strings.Contains(form, `name="introspect_any"`) {
		t.Error("the holder's form offers operators' grants")
	}

	list := string(h.Get("/portal/clients").Body)
	if !strings.Contains(list, mine) || strings.Contains(list, theirs.ID) || strings.Contains(list, lone.ID) {
		t.Errorf("holder's client list: mine %v, other account's %v, operator's %v",
			strings.Contains(list, mine), strings.Contains(list, theirs.ID), strings.Contains(list, lone.ID))
	}
	for _, c := range []string{theirs.ID, lone.ID} {
		for _, g := range []string{"/portal/clients/" + c, "/portal/clients/" + c + "/delete"} {
			if r := h.Get(g); r.Status != http.StatusNotFound {
				t.Errorf("GET %s: %d, want 404", g, r.Status)
			}
		}
		for _, post := range []struct {
			path string
			form url.Values
		}{
			{"/portal/clients/" + c + "/rotate", url.Values{"grace": {"0"}}},
			{"/portal/clients/" + c + "/status", url.Values{"action": {"disable"}}},
			{"/portal/clients/" + c + "/delete", url.Values{"confirm": {c}}},
			{"/portal/clients/" + c, url.Values{"name": {"x"}}},
		} {
			if r := h.Post(post.path, post.form); r.Status != http.StatusNotFound {
				t.Errorf("POST %s: %d, want 404", post.path, r.Status)
			}
		}
	}
	if got, _ := s.Store.GetClient(ctx, theirs.ID); got.Status != store.ClientActive {
		t.Fatal("another account's client was changed")
	}
	// Operators' pages do not exist for account holders.
	for _, g := range []string{"/portal/accounts", "/portal/accounts/" + b.ID, "/portal/keys"} {
		if r := h.Get(g); r.Status != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", g, r.Status)
		}
	}
	if r := h.Post("/portal/keys/rotate", nil); r.Status != http.StatusNotFound {
		t.Errorf("POST /portal/keys/rotate: %d", r.Status)
	}
	if r := h.Get("/portal/accounts/" + a.ID); r.Status != http.StatusOK {
		t.Errorf("own account page: %d", r.Status)
	}
	// An IAT for another account is issued for their own instead.
	r = h.Post("/portal/iat", url.Values{"account": {b.ID}, "ttl": {"5m"}})
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), "Initial access token for Acme") {
		t.Errorf("holder IAT: %d", r.Status)
	}
	// The audit log shows only their account's records.
	audit := string(h.Get("/portal/audit?account=" + b.ID).Body)
	if strings.Contains(audit, b.ID) || !strings.Contains(audit, mine) {
		t.Errorf("holder's audit log shows other accounts or misses their own")
	}
	// The account's limits apply.
	r = h.Post("/portal/clients/new", url.Values{"name": {"wide"}, "audiences": {"https://elsewhere.example.com"}, "grant_type": {oauth.GrantTypeClientCredentials}})
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(string(r.Body), "https://elsewhere.example.com") {
		t.Errorf("client outside the account's audiences: %d", r.Status)
	}
	// Holders may disable but not re-enable or approve.
	h.Get("/portal/clients/" + mine)
	if r := h.Post("/portal/clients/"+mine+"/status", url.Values{"action": {"disable"}}); r.Status != http.StatusSeeOther {
		t.Errorf("holder disables own client: %d", r.Status)
	}
	if r := h.Post("/portal/clients/"+mine+"/status", url.Values{"action": {"enable"}}); r.Status != http.StatusConflict {
		t.Errorf("holder enables own client: %d", r.Status)
	}
}

var valueOf = regexp.MustCompile(`id="([a-z-]+)"[^>]*value="([^"]*)"`)

// extractValue reads the value of the input with this id.
func extractValue(t *testing.T, body []byte, id string) string {
	t.Helper()
	for _, m := range valueOf.FindAllSubmatch(body, -1) {
		if string(m[1]) == id {
			return string(m[2])
		}
	}
	t.Fatalf("no input %q in\n%s", id, body)
	return ""
}

func TestClientLifecycle(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	ctx := context.Background()
	p := s.PortalSignIn("alice", s.CreateOperator("alice"))
	// The caller's token is for rs08's resource.
	subject := s.CreateClient(func(c *store.Client) { c.Scopes, c.Audiences = []string{"api"}, []string{"https://rs08.example.com"} })
	subjectToken := s.ClientCredentials(subject, nil)

	// Field errors are shown next to their fields; nothing is created.
	r := p.Post("/portal/clients/new", url.Values{"name": {""}, "audiences": {"https://x.example/#frag"}, "scopes": {`bad"scope`}, "access_ttl": {"soon"}})
	body := string(r.Body)
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(body, `id="name-error"`) || !strings.Contains(body, `id="audiences-error"`) ||
		!strings.Contains(body, `id="scopes-error"`) || !strings.Contains(body, `id="access-error"`) || !strings.Contains(body, `id="grant-error"`) {
		t.Fatalf("invalid form: %d\n%s", r.Status, body)
	}

	// Register: the secret is shown once, on a no-store page.
	r = p.Post("/portal/clients/new", url.Values{"name": {"rs08"}, "client_id": {"rs08"}, "audiences": {"https://backend.example.com/api"},
		"resources": {"https://rs08.example.com"}, "introspect_any": {"on"},
		"scopes": {"api"}, "grant_type": {oauth.GrantTypeClientCredentials, oauth.GrantTypeTokenExchange}, "token_format": {"jwt"}})
	if r.Status != http.StatusOK || r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("register: %d %q", r.Status, r.Header.Get("Cache-Control"))
	}
	secret := extractValue(t, r.Body, "client-secret")
	if extractValue(t, r.Body, "client-id") != "rs08" || len(secret) < 43 {
		t.Fatalf("secret page: id %q secret %q", extractValue(t, r.Body, "client-id"), secret)
	}
	detail := p.Get("/portal/clients/rs08")
	if strings.Contains(string(detail.Body), secret) {
		t.Fatal("the detail page shows the secret again")
	}
	if b := string(detail.Body); !strings.Contains(b, ">https://rs08.example.com</textarea>") || !strings.Contains(b, `name="introspect_any" checked`) {
		t.Error("the edit form does not show the resources and grants")
	}
	rs08 := &ststest.Client{Client: &store.Client{ID: "rs08"}, Secret: secret}
	exchange := func(c *ststest.Client) *ststest.Response {
		return s.Exchange(c, subjectToken, oauth.TokenTypeAccessToken, url.Values{"resource": {"https://backend.example.com/api"}})
	}
	if r := exchange(rs08); r.Status != http.StatusOK {
		t.Fatalf("exchange with the portal's secret: %d %s", r.Status, r.Body)
	}
	// A duplicate id is a field error.
	r = p.Post("/portal/clients/new", url.Values{"name": {"again"}, "client_id": {"rs08"}, "grant_type": {oauth.GrantTypeClientCredentials}})
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(string(r.Body), "exists already") {
		t.Errorf("duplicate id: %d", r.Status)
	}

	// Edit what it may obtain.
	p.Get("/portal/clients/rs08")
	r = p.Post("/portal/clients/rs08", url.Values{"name": {"rs08"}, "audiences": {"https://backend.example.com/api\nhttps://other.example.com"},
		"resources": {"https://rs08.example.com\nhttps://rs08.example.net"}, "exchange_any": {"on"},
		"scopes": {"api read"}, "grant_type": {oauth.GrantTypeTokenExchange}, "token_format": {"opaque"}, "access_ttl": {"15m"}, "refresh_ttl": {""}})
	if r.Status != http.StatusSeeOther {
		t.Fatalf("edit: %d\n%s", r.Status, r.Body)
	}
	c, _ := s.Store.GetClient(ctx, "rs08")
	if len(c.Audiences) != 2 || len(c.Scopes) != 2 || c.TokenFormat != "opaque" || c.AccessTokenTTL != 15*time.Minute || len(c.GrantTypes) != 1 ||
		len(c.Resources) != 2 || !c.ExchangeAny || c.IntrospectAny {
		t.Fatalf("after edit: %+v", c)
	}
	r = p.Post("/portal/clients/rs08", url.Values{"name": {"rs08"}, "audiences": {"https://x.example/#frag"}, "grant_type": {oauth.GrantTypeTokenExchange}})
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(string(r.Body), `id="audiences-error"`) {
		t.Errorf("invalid edit: %d", r.Status)
	}
	r = p.Post("/portal/clients/rs08", url.Values{"name": {"rs08"}, "resources": {"https://x.example/#frag"}, "grant_type": {oauth.GrantTypeTokenExchange}})
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(string(r.Body), `id="resources-error"`) {
		t.Errorf("invalid resource: %d", r.Status)
	}

	// Rotate: the new secret is shown once; the old one is refused.
	r = p.Post("/portal/clients/rs08/rotate", url.Values{"grace": {"0"}})
	if r.Status != http.StatusOK || r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("rotate: %d", r.Status)
	}
	newSecret := extractValue(t, r.Body, "client-secret")
	if r := exchange(rs08); r.Status != http.StatusUnauthorized {
		t.Errorf("old secret after rotation: %d", r.Status)
	}
	rs08.Secret = newSecret
	if r := exchange(rs08); r.Status != http.StatusOK {
		t.Errorf("new secret: %d %s", r.Status, r.Body)
	}

	// Disable, then enable.
	p.Get("/portal/clients/rs08")
	if r := p.Post("/portal/clients/rs08/status", url.Values{"action": {"disable"}}); r.Status != http.StatusSeeOther || !strings.Contains(r.Header.Get("Location"), "msg=disabled") {
		t.Fatalf("disable: %d %s", r.Status, r.Header.Get("Location"))
	}
	if r := exchange(rs08); r.Status != http.StatusUnauthorized {
		t.Errorf("disabled client: %d", r.Status)
	}
	if r := p.Post("/portal/clients/rs08/status", url.Values{"action": {"approve"}}); r.Status != http.StatusConflict {
		t.Errorf("approve a disabled client: %d", r.Status)
	}
	if r := p.Post("/portal/clients/rs08/status", url.Values{"action": {"enable"}}); r.Status != http.StatusSeeOther {
		t.Errorf("enable: %d", r.Status)
	}

	// Approve a pending client.
	pending := s.CreateClient(func(c *store.Client) { c.Status = store.ClientPending })
	list := string(p.Get("/portal/clients?status=pending").Body)
	if !strings.Contains(list, pending.ID) || strings.Contains(list, ">rs08<") || !strings.Contains(list, "waits for approval") {
		t.Errorf("pending filter:\n%s", list)
	}
	if r := p.Post("/portal/clients/"+pending.ID+"/status", url.Values{"action": {"approve"}}); r.Status != http.StatusSeeOther {
		t.Fatalf("approve: %d", r.Status)
	}
	if got, _ := s.Store.GetClient(ctx, pending.ID); got.Status != store.ClientActive {
		t.Fatalf("approved client is %s", got.Status)
	}
	// Search by name and id.
	if body := string(p.Get("/portal/clients?q=RS0").Body); !strings.Contains(body, "rs08") || strings.Contains(body, pending.ID) {
		t.Errorf("search by name")
	}

	// Delete needs the confirmation step.
	if r := p.Get("/portal/clients/rs08/delete"); r.Status != http.StatusOK || !strings.Contains(string(r.Body), "Delete permanently") {
		t.Fatalf("confirmation page: %d", r.Status)
	}
	if r := p.Post("/portal/clients/rs08/delete", nil); r.Status != http.StatusBadRequest {
		t.Errorf("delete without confirmation: %d", r.Status)
	}
	if r := p.Post("/portal/clients/rs08/delete", url.Values{"confirm": {"rs08"}}); r.Status != http.StatusSeeOther {
		t.Fatalf("delete: %d", r.Status)
	}
	if _, err := s.Store.GetClient(ctx, "rs08"); err == nil {
		t.Fatal("client still there")
	}

	// Every change is in the audit log, which the portal filters.
	audit := string(p.Get("/portal/audit?client=rs08&action=client").Body)
	for _, a := range []string{"client.create", "client.update", "client.rotate_secret", "client.status", "client.delete"} {
		if !strings.Contains(audit, `<code class="action">`+a+"</code>") {
			t.Errorf("audit page lacks %s", a)
		}
	}
	if strings.Contains(audit, `<code class="action">token.exchange</code>`) || strings.Contains(audit, pending.ID) {
		t.Errorf("audit filter by client and action lets other records through")
	}
	if r := p.Get("/portal/audit?since=yesterday"); r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), `id="f-since-error"`) {
		t.Errorf("bad since: %d", r.Status)
	}
	future := time.Now().Add(time.Hour).UTC().Format("2006-01-02T15:04")
	if body := string(p.Get("/portal/audit?since=" + future).Body); strings.Contains(body, `<code class="action">client.create</code>`) {
		t.Errorf("since in the future still lists records")
	}
}

func TestAccountsKeysAndIAT(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	ctx := context.Background()
	p := s.PortalSignIn("alice", s.CreateOperator("alice"))
	p.Get("/portal/accounts")
	r := p.Post("/portal/accounts", url.Values{"kind": {"individual"}, "name": {"Acme Radio"}, "audiences": {"https://backend.example.com/api"}, "scopes": {"api"}})
	if r.Status != http.StatusOK || r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("create account: %d", r.Status)
	}
	id, secret := extractValue(t, r.Body, "account-id"), extractValue(t, r.Body, "account-secret")
	if _, err := s.Accounts.CheckSecret(ctx, id, secret); err != nil {
		t.Fatalf("shown secret: %v", err)
	}
	if r := p.Post("/portal/accounts", url.Values{"kind": {"individual"}, "name": {""}, "audiences": {"x#y"}}); r.Status != http.StatusUnprocessableEntity {
		t.Errorf("invalid account: %d", r.Status)
	}

	// An organization: issue a certificate, then an IAT signed with it.
	r = p.Post("/portal/accounts", url.Values{"kind": {"organization"}, "name": {"Globex"}})
	if r.Status != http.StatusSeeOther {
		t.Fatalf("create organization: %d", r.Status)
	}
	org := strings.TrimPrefix(strings.Split(r.Header.Get("Location"), "?")[0], "/portal/accounts/")
	if r := p.Post("/portal/accounts/"+org+"/certificates", url.Values{"alg": {"ES256"}, "days": {"30"}}); r.Status != http.StatusSeeOther {
		t.Fatalf("issue certificate: %d %s", r.Status, r.Body)
	}
	page := string(p.Get("/portal/accounts/" + org).Body)
	if !strings.Contains(page, "issued here") {
		t.Fatalf("account page lacks the certificate")
	}
	for _, acct := range []string{id, org} {
		r = p.Post("/portal/iat", url.Values{"account": {acct}, "ttl": {"15m"}, "claims": {`{"software_id":"radio-7"}`}})
		if r.Status != http.StatusOK || r.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("IAT for %s: %d\n%s", acct, r.Status, r.Body)
		}
		m := regexp.MustCompile(`id="iat-token"[^>]*>([^<]+)<`).FindSubmatch(r.Body)
		if m == nil {
			t.Fatal("no IAT on the page")
		}
		iat, err := s.Accounts.VerifyIAT(ctx, string(m[1]))
		if err != nil || iat.Account.ID != acct || iat.Claims["software_id"] != "radio-7" {
			t.Fatalf("issued IAT: %v %+v", err, iat)
		}
	}
	if r := p.Post("/portal/iat", url.Values{"account": {id}, "ttl": {"15m"}, "claims": {`{"iss":"x"}`}}); r.Status != http.StatusUnprocessableEntity {
		t.Errorf("IAT overriding iss: %d", r.Status)
	}

	// Keys: list and rotate.
	before := s.Keys.Snapshot().Current.ID
	page = string(p.Get("/portal/keys").Body)
	if !strings.Contains(page, before) || !strings.Contains(page, "current") || !strings.Contains(page, "next") {
		t.Fatalf("keys page")
	}
	if r := p.Post("/portal/keys/rotate", nil); r.Status != http.StatusSeeOther {
		t.Fatalf("rotate keys: %d", r.Status)
	}
	if s.Keys.Snapshot().Current.ID == before {
		t.Fatal("keys not rotated")
	}
	if page := string(p.Get("/portal/keys").Body); !strings.Contains(page, "retired") {
		t.Errorf("keys page lacks the retired key")
	}

	// The token endpoint still works with the rotated keys.
	c := s.CreateClient(nil)
	if r := s.PostForm(server.TokenPath, c, url.Values{"grant_type": {"client_credentials"}}); r.Status != http.StatusOK {
		t.Errorf("token after rotation: %d", r.Status)
	}
	audit := string(p.Get("/portal/audit?action=key").Body)
	if !strings.Contains(audit, `<code class="action">key.rotate</code>`) {
		t.Errorf("audit lacks key.rotate")
	}
	if audit := string(p.Get("/portal/audit?account=" + id).Body); !strings.Contains(audit, `<code class="action">account.create</code>`) || !strings.Contains(audit, `<code class="action">account.issue_iat</code>`) {
		t.Errorf("audit by account lacks account.create or account.issue_iat")
	}
}

func TestEnsureAdmin(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	ctx := context.Background()
	pw, created, err := portal.EnsureAdmin(ctx, s.Store, time.Now())
	if err != nil || !created || len(pw) < 24 {
		t.Fatalf("first start: %q %v %v", pw, created, err)
	}
	o, err := s.Store.GetOperator(ctx, "admin")
	if err != nil || !strings.HasPrefix(o.PasswordHash, "$argon2id$v=19$m=19456,t=2,p=1$") || strings.Contains(o.PasswordHash, pw) {
		t.Fatalf("admin: %+v %v", o, err)
	}
	if pw2, created, err := portal.EnsureAdmin(ctx, s.Store, time.Now()); err != nil || created || pw2 != "" {
		t.Fatalf("second start: %q %v %v", pw2, created, err)
	}
	p := s.PortalSignIn("admin", pw)
	if r := p.Get("/portal/accounts"); r.Status != http.StatusOK {
		t.Fatalf("admin's accounts page: %d", r.Status)
	}
}

func TestPasswordHash(t *testing.T) {
	h, err := portal.HashPassword("correct horse", portal.PasswordParams{Time: 2, MemoryKiB: 256, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^\$argon2id\$v=19\$m=256,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`).MatchString(h) {
		t.Fatalf("PHC string %q", h)
	}
	if !portal.CheckPassword(h, "correct horse") || portal.CheckPassword(h, "correct horsf") || portal.CheckPassword(h, "") {
		t.Fatal("CheckPassword")
	}
	h2, _ := portal.HashPassword("correct horse", portal.PasswordParams{Time: 2, MemoryKiB: 256, Threads: 1})
	if h2 == h {
		t.Fatal("no random salt")
	}
	for _, bad := range []string{"", "$argon2i$v=19$m=256,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=16$m=256,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=99999999,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=256,t=0,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		strings.Replace(h, "$m=", "$x=", 1)} {
		if portal.CheckPassword(bad, "correct horse") {
			t.Errorf("malformed hash %q matched", bad)
		}
	}
	// Hashes made with other parameters, such as the portal's earlier
	// default (m=64 MiB, t=1, p=2), still verify: the parameters are read
	// from the hash. They need a rehash; hashes with the current ones do
	// not.
	legacy, err := portal.HashPassword("correct horse", portal.PasswordParams{Time: 1, MemoryKiB: 64 * 1024, Threads: 2})
	if err != nil || !strings.HasPrefix(legacy, "$argon2id$v=19$m=65536,t=1,p=2$") {
		t.Fatal(legacy, err)
	}
	if !portal.CheckPassword(legacy, "correct horse") || portal.CheckPassword(legacy, "correct horsf") {
		t.Fatal("CheckPassword of a hash with the earlier default parameters")
	}
	current, _ := portal.HashPassword("correct horse", portal.DefaultPasswordParams)
	if !portal.NeedsRehash(legacy, portal.DefaultPasswordParams) || !portal.NeedsRehash(h, portal.DefaultPasswordParams) ||
		!portal.NeedsRehash("garbage", portal.DefaultPasswordParams) || portal.NeedsRehash(current, portal.DefaultPasswordParams) {
		t.Error("NeedsRehash")
	}
	// OWASP's argon2id configuration: 19 MiB, two passes, one lane.
	if p := portal.DefaultPasswordParams; p != (portal.PasswordParams{Time: 2, MemoryKiB: 19456, Threads: 1}) {
		t.Errorf("DefaultPasswordParams %+v", p)
	}

	if a, b := portal.GeneratePassword(), portal.GeneratePassword(); a == b || len(a) != 24 {
		t.Errorf("GeneratePassword: %q %q", a, b)
	}
}

func TestCheckUsername(t *testing.T) {
	for name, ok := range map[string]bool{"admin": true, "alice.b@example": true, "": false, "acct-x": false, "ACCT-y": false,
		"with space": false, strings.Repeat("a", 65): false, "ünicode": false} {
		if err := portal.CheckUsername(name); (err == nil) != ok {
			t.Errorf("CheckUsername(%q) = %v", name, err)
		}
	}
}
