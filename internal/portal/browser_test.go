package portal_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/oauth"
)

// chromiumEnv names the Chromium binary the browser tests drive; they are
// skipped when it is unset. .ci/run sets it to /usr/bin/chromium.
const chromiumEnv = "STS_TEST_CHROMIUM"

// browser drives one Chromium tab against a running STS.
type browser struct {
	t   *testing.T
	ctx context.Context
	s   *ststest.STS
	// shots is where screenshots go; n numbers them in order.
	shots string
	n     int
}

func newBrowser(t *testing.T, s *ststest.STS) *browser {
	t.Helper()
	bin := os.Getenv(chromiumEnv)
	if bin == "" {
		t.Skipf("browser tests skipped: set %s to the path of a Chromium binary (e.g. /usr/bin/chromium) to run them", chromiumEnv)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start %s: %v", bin, err)
	}
	dir := filepath.Join(os.TempDir(), "sts-portal-screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, ctx: ctx, s: s, shots: dir}
}

// run runs steps with a time limit.
func (b *browser) run(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// open loads a portal page and returns the HTTP status of the document.
func (b *browser) open(path string) int64 {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(b.s.URL+path))
	if err != nil {
		b.t.Fatalf("open %s: %v", path, err)
	}
	return resp.Status
}

// submit clicks a button that submits a form, waits for the next page and
// returns its HTTP status (after redirects).
func (b *browser) submit(sel string) int64 {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		b.t.Fatalf("submit %s: %v", sel, err)
	}
	return resp.Status
}

// fill sets a field's value as typing would (input and change events).
// (SetValue cannot set "": chromedp passes an empty argument as undefined.)
func (b *browser) fill(sel, value string) {
	b.t.Helper()
	if value == "" {
		b.run("clear "+sel, chromedp.Clear(chromedp.CSS(sel)))
		return
	}
	b.run("fill "+sel, chromedp.SetValue(chromedp.CSS(sel), value))
}

func (b *browser) value(sel string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Value(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("value of %s: %v", sel, err)
	}
	return v
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return v
}

// has reports whether the page shows text.
func (b *browser) has(text string) bool {
	b.t.Helper()
	return strings.Contains(b.text("body"), text)
}

// shot saves a screenshot of the whole page.
func (b *browser) shot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	b.n++
	file := filepath.Join(b.shots, fmt.Sprintf("%02d-%s.png", b.n, name))
	if err := os.WriteFile(file, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot %s", file)
}

// cookies returns the browser's cookies for the portal.
func (b *browser) cookies() []*network.Cookie {
	b.t.Helper()
	cs, err := chromedp.Run(b.ctx, func(ctx context.Context, t *chromedp.Target) ([]*network.Cookie, error) {
		res, err := cdp.Call(ctx, t, network.GetCookies, network.GetCookiesParams{URLs: []string{b.s.URL + "/portal/"}})
		return res.Cookies, err
	})
	if err != nil {
		b.t.Fatalf("cookies: %v", err)
	}
	return cs
}

func (b *browser) signIn(user, password string) int64 {
	b.t.Helper()
	if st := b.open("/portal/signin"); st != http.StatusOK {
		b.t.Fatalf("sign-in page: %d", st)
	}
	b.fill("#username", user)
	b.fill("#password", password)
	return b.submit(`form[action="/portal/signin"] button[type=submit]`)
}

func (b *browser) signOut() {
	b.t.Helper()
	if st := b.submit("form.signout button"); st != http.StatusOK || !b.has("You are signed out") {
		b.t.Fatalf("sign out: %d", st)
	}
}

// TestBrowser walks through the portal in Chromium: an operator signs in
// and creates an account; its holder signs in, registers a client in the
// portal and issues an IAT; software registers a second client with the
// IAT through /register; the operator approves both, and the first one's
// secret works in the seed's token exchange; rotation refuses the old
// secret; disabling refuses the client; the audit log shows all of it; a
// bad password and a forged CSRF token fail. Screenshots of every page go
// to $TMPDIR/sts-portal-screenshots/.
func TestBrowser(t *testing.T) {
	s := ststest.Start(t, ststest.Options{RequireApproval: true})
	b := newBrowser(t, s)
	ctx := context.Background()
	adminPassword := s.CreateOperator("admin")
	backend := "https://backend.example.com/api"
	// The caller whose token rs08 exchanges (the seed's story).
	// frontend's tokens are for rs08 (the resource it serves, which the
	// operator grants below); rs08 exchanges them for the backend.
	const rs08Resource = "https://rs08.example.com"
	frontend := s.CreateClient(func(c *store.Client) {
		c.Name, c.Scopes, c.Audiences = "frontend", []string{"api"}, []string{rs08Resource}
	})

	// 1. A bad password fails with the one message and no session.
	if st := b.signIn("admin", "not-the-password"); st != http.StatusUnauthorized {
		t.Fatalf("bad password: status %d", st)
	}
	if msg := b.text(".alert"); msg != signinMessage {
		t.Fatalf("bad password: message %q", msg)
	}
	for _, c := range b.cookies() {
		if c.Name == "sts_session" {
			t.Fatal("a bad password set a session cookie")
		}
	}
	b.shot("signin-bad-password")

	// 2. The operator signs in.
	if st := b.signIn("admin", adminPassword); st != http.StatusOK || !b.has("Operator: admin") {
		t.Fatalf("operator sign-in: %d", st)
	}
	var session *network.Cookie
	for _, c := range b.cookies() {
		if c.Name == "sts_session" {
			session = c
		}
	}
	if session == nil || !session.HTTPOnly || session.SameSite != network.CookieSameSiteStrict || session.Path != "/portal" {
		t.Fatalf("session cookie %+v", session)
	}
	b.shot("clients-empty")

	// 3. A forged CSRF token is refused and changes nothing.
	b.open("/portal/accounts")
	b.fill("#account-name", "Forged Inc")
	b.run("forge the CSRF token", chromedp.SetValue(chromedp.CSS(`form[action="/portal/accounts"] input[name=csrf]`), "forged-token"))
	if st := b.submit("#create-account"); st != http.StatusForbidden || !b.has("CSRF") {
		t.Fatalf("forged CSRF token: %d", st)
	}
	b.shot("csrf-forged")
	if as, _ := s.Store.ListAccounts(ctx); len(as) != 0 {
		t.Fatalf("a forged form created %d accounts", len(as))
	}

	// 4. Create an individual account; its secret is shown once.
	b.open("/portal/accounts")
	b.fill("#account-name", "Acme Radio")
	b.fill("#limit-audiences", backend)
	b.fill("#limit-scopes", "api")
	b.shot("account-form")
	if st := b.submit("#create-account"); st != http.StatusOK {
		t.Fatalf("create account: %d", st)
	}
	accountID, accountSecret := b.value("#account-id"), b.value("#account-secret")
	if !strings.HasPrefix(accountID, "acct-") || len(accountSecret) < 43 {
		t.Fatalf("account %q secret %q", accountID, accountSecret)
	}
	b.run("copy buttons appear with JavaScript", chromedp.WaitVisible(chromedp.CSS(`button[data-copy="account-secret"]`)))
	b.shot("account-created")
	b.signOut()

	// 5. The account holder signs in with the account id and secret, and
	// registers a client in the portal: the secret is shown once.
	if st := b.signIn(accountID, accountSecret); st != http.StatusOK || !b.has("Acme Radio") {
		t.Fatalf("account holder sign-in: %d", st)
	}
	b.open("/portal/clients/new")
	b.fill("#name", "rs08")
	b.fill("#audiences", backend)
	b.fill("#scopes", "api")
	b.shot("register-form")
	if st := b.submit(`form[action="/portal/clients/new"] button[type=submit]`); st != http.StatusOK {
		t.Fatalf("register: %d", st)
	}
	rs08 := &ststest.Client{Client: &store.Client{ID: b.value("#client-id")}, Secret: b.value("#client-secret")}
	if rs08.ID == "" || len(rs08.Secret) < 43 || !b.has("waits for an operator's approval") {
		t.Fatalf("registered client %q secret %q", rs08.ID, rs08.Secret)
	}
	b.run("copy button", chromedp.WaitVisible(chromedp.CSS(`button[data-copy="client-secret"]`)), chromedp.Click(chromedp.CSS(`button[data-copy="client-secret"]`)))
	// Try it: the client's own id and the server's token endpoint, the
	// secret read from the terminal (issue 9).
	if try := b.text("#try-it"); !strings.Contains(try, `"`+rs08.ID+`:$CLIENT_SECRET"`) || !strings.Contains(try, s.URL+"/token/oauth2") ||
		strings.Contains(try, "$CLIENT_ID") || strings.Contains(try, rs08.Secret) || !strings.HasPrefix(try, "read -rs CLIENT_SECRET") {
		t.Errorf("Try it snippet:\n%s", try)
	}
	b.shot("client-secret-once")
	// The detail page never shows the secret again.
	b.open("/portal/clients/" + rs08.ID)
	if b.has(rs08.Secret) {
		t.Fatal("the secret is shown again")
	}

	// 6. The holder issues an IAT (shown once).
	b.open("/portal/iat")
	if st := b.submit("#issue-iat"); st != http.StatusOK {
		t.Fatalf("issue IAT: %d", st)
	}
	iat := b.value("#iat-token")
	if strings.Count(iat, ".") != 2 {
		t.Fatalf("IAT %q", iat)
	}
	b.shot("iat-issued")
	b.signOut()

	// 7. Software registers a second client with the IAT (RFC 7591).
	r := s.Register(iat, map[string]any{"client_name": "radio-7", "grant_types": []string{"client_credentials"}, "scope": "api"})
	if r.Status != http.StatusCreated {
		t.Fatalf("register with the portal's IAT: %d %s", r.Status, r.Body)
	}
	radio := r.Registration()
	if radio.ClientID == "" || radio.ClientSecret == "" {
		t.Fatalf("registration %s", r.Body)
	}
	// Pending: it cannot obtain tokens yet.
	if r := s.PostForm("/token/oauth2", radio.Client(), url.Values{"grant_type": {"client_credentials"}}); r.Status != http.StatusUnauthorized {
		t.Fatalf("pending client obtained a token: %d", r.Status)
	}

	// 8. The operator approves both pending clients.
	b.signIn("admin", adminPassword)
	b.open("/portal/clients?status=pending")
	if !b.has("2 clients wait for approval") || !b.has("rs08") || !b.has("radio-7") {
		t.Fatalf("pending list: %s", b.text("main"))
	}
	b.shot("clients-pending")
	for _, id := range []string{rs08.ID, radio.ClientID} {
		b.open("/portal/clients/" + id)
		if id == rs08.ID {
			b.shot("client-detail-pending")
		}
		if st := b.submit("#approve"); st != http.StatusOK || !b.has("approved") {
			t.Fatalf("approve %s: %d", id, st)
		}
	}
	b.shot("client-approved")
	// Which resource rs08 serves is an operator's grant (issue 8): the
	// field is on the operator's form only.
	b.open("/portal/clients/" + rs08.ID)
	b.fill("#resources", rs08Resource)
	if st := b.submit("#save"); st != http.StatusOK || !b.has("The changes are saved") {
		t.Fatalf("grant rs08 its resource: %d", st)
	}

	// 9. The portal's secret works in the seed's exchange.
	subject := s.ClientCredentials(frontend, nil)
	exchange := func(c *ststest.Client) *ststest.Response {
		return s.Exchange(c, subject, oauth.TokenTypeAccessToken, url.Values{"resource": {backend}})
	}
	if r := exchange(rs08); r.Status != http.StatusOK || r.Token().IssuedTokenType != oauth.TokenTypeJWT {
		t.Fatalf("seed exchange with the portal's client: %d %s", r.Status, r.Body)
	}
	if r := s.PostForm("/token/oauth2", radio.Client(), url.Values{"grant_type": {"client_credentials"}}); r.Status != http.StatusOK {
		t.Fatalf("approved registered client: %d %s", r.Status, r.Body)
	}

	// 10. Rotate the secret: the new one is shown once, the old one refused.
	b.open("/portal/clients/" + rs08.ID)
	if st := b.submit("#rotate"); st != http.StatusOK {
		t.Fatalf("rotate: %d", st)
	}
	newSecret := b.value("#client-secret")
	b.shot("secret-rotated")
	if r := exchange(rs08); r.Status != http.StatusUnauthorized || r.Error() != "invalid_client" {
		t.Fatalf("old secret after rotation: %d %s", r.Status, r.Body)
	}
	rs08.Secret = newSecret
	if r := exchange(rs08); r.Status != http.StatusOK {
		t.Fatalf("new secret: %d %s", r.Status, r.Body)
	}

	// 11. Edit what it may obtain: a second audience.
	b.open("/portal/clients/" + rs08.ID)
	b.fill("#audiences", backend+"\n"+"https://other.example.com")
	b.fill("#scopes", "api read")
	if st := b.submit("#save"); st != http.StatusUnprocessableEntity || !b.has("is not among the audiences") {
		t.Fatalf("edit beyond the account's limits: %d", st)
	}
	b.shot("client-edit-error")
	b.fill("#audiences", backend)
	b.fill("#scopes", "api")
	b.fill("#access_ttl", "15m")
	if st := b.submit("#save"); st != http.StatusOK || !b.has("The changes are saved") || !b.has("access 15m0s") {
		t.Fatalf("edit: %d", st)
	}

	// 12. Disable it: the client is refused.
	if st := b.submit("#disable"); st != http.StatusOK || b.text("#detail-status") != "disabled" {
		t.Fatalf("disable: %d", st)
	}
	b.shot("client-disabled")
	if r := exchange(rs08); r.Status != http.StatusUnauthorized {
		t.Fatalf("disabled client: %d %s", r.Status, r.Body)
	}

	// 13. The audit log has all of it, filtered by client, action, account
	// and time.
	b.open("/portal/audit")
	b.fill("#f-client", rs08.ID)
	b.fill("#f-action", "client")
	if st := b.submit(`form[action="/portal/audit"] button[type=submit]`); st != http.StatusOK {
		t.Fatalf("audit filter: %d", st)
	}
	log := b.text("table.audit")
	for _, a := range []string{"client.create", "client.approve", "client.rotate_secret", "client.update", "client.status"} {
		if !strings.Contains(log, a) {
			t.Errorf("audit log by client lacks %s:\n%s", a, log)
		}
	}
	if strings.Contains(log, "token.exchange") || strings.Contains(log, radio.ClientID) {
		t.Errorf("audit filter lets other records through:\n%s", log)
	}
	b.shot("audit-client")
	b.open("/portal/audit?action=token.exchange&client=" + url.QueryEscape(rs08.ID))
	if log := b.text("table.audit"); !strings.Contains(log, "granted") || !strings.Contains(log, "refused") {
		t.Errorf("exchanges of rs08 (granted and refused) missing:\n%s", log)
	}
	since := time.Now().UTC().Add(-time.Hour).Format("2006-01-02T15:04")
	b.open("/portal/audit?account=" + accountID + "&since=" + since)
	if log := b.text("table.audit"); !strings.Contains(log, "account.create") || !strings.Contains(log, "account.issue_iat") || !strings.Contains(log, "client.register") {
		t.Errorf("audit log of the account:\n%s", log)
	}
	b.shot("audit-account")
	b.open("/portal/audit?action=portal.signin")
	if log := b.text("table.audit"); !strings.Contains(log, "refused") || !strings.Contains(log, "operator:admin") || !strings.Contains(log, "account:"+accountID) {
		t.Errorf("sign-ins missing from the audit log:\n%s", log)
	}

	// 14. Signing keys: list and rotate.
	before := s.Keys.Snapshot().Current.ID
	b.open("/portal/keys")
	if !b.has(before) {
		t.Fatal("keys page lacks the current key")
	}
	if st := b.submit("#rotate-keys"); st != http.StatusOK || s.Keys.Snapshot().Current.ID == before || !b.has("retired") {
		t.Fatalf("rotate keys: %d", st)
	}
	b.shot("keys")

	// 15. Delete the registered client, after the confirmation step.
	b.open("/portal/clients/" + radio.ClientID)
	b.run("delete link", chromedp.Click(chromedp.CSS("#delete"), chromedp.NodeVisible), chromedp.WaitVisible(chromedp.CSS("#confirm-delete")))
	b.shot("delete-confirm")
	if st := b.submit("#confirm-delete"); st != http.StatusOK || !b.has("The client is deleted") {
		t.Fatalf("delete: %d", st)
	}
	if _, err := s.Store.GetClient(ctx, radio.ClientID); err == nil {
		t.Fatal("deleted client still stored")
	}

	// 16. The remaining pages, for the record.
	b.open("/portal/accounts/" + accountID)
	b.shot("account-detail")
	b.open("/portal/clients")
	b.shot("clients")
	b.open("/portal/accounts")
	b.shot("accounts")
}
