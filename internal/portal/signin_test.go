package portal_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/clientip"
	"github.com/keybridge/sts/internal/clients"
	"github.com/keybridge/sts/internal/portal"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
)

// standalone serves a portal of its own on the store and accounts of s,
// behind a resolver that believes X-Forwarded-For from loopback (as `sts
// serve --trusted-proxies 127.0.0.1` does), so that a test can sign in
// from several addresses and reach the portal's internals.
func standalone(t *testing.T, s *ststest.STS) (*portal.Portal, string) {
	t.Helper()
	p, err := portal.New(portal.Options{
		Issuer: s.URL, Store: s.Store, Accounts: s.Accounts, Keys: s.Keys, Now: s.Clock.Now,
		Clients: &clients.Registry{Store: s.Store, Hasher: s.Hasher, Now: s.Clock.Now},
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := clientip.Parse("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(res.Middleware(p))
	t.Cleanup(srv.Close)
	return p, srv.URL
}

// visitor is a browser at one address: a cookie jar, redirects not
// followed, X-Forwarded-For set to its address (when not empty). Its
// methods return errors rather than failing the test, so that it can be
// used from several goroutines.
type visitor struct {
	base, from string
	c          *http.Client
	// mu guards csrf: a test may load pages from several goroutines.
	mu   sync.Mutex
	csrf string
}

func newVisitor(base, from string) *visitor {
	jar, _ := cookiejar.New(nil)
	return &visitor{base: base, from: from, c: &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

type answer struct {
	status int
	header http.Header
	body   string
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *visitor) do(method, path string, form url.Values) (answer, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		return answer{}, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if b.from != "" {
		req.Header.Set("X-Forwarded-For", b.from)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if m := csrfInput.FindSubmatch(raw); m != nil {
		b.mu.Lock()
		b.csrf = string(m[1])
		b.mu.Unlock()
	}
	return answer{resp.StatusCode, resp.Header, string(raw)}, err
}

// form reads the sign-in form (its token and cookie).
func (b *visitor) form() error {
	a, err := b.do(http.MethodGet, "/portal/signin", nil)
	if err == nil && a.status != http.StatusOK {
		err = fmt.Errorf("sign-in form: %d", a.status)
	}
	return err
}

// post posts the sign-in form read last.
func (b *visitor) post(user, password string) (answer, error) {
	return b.do(http.MethodPost, "/portal/signin", url.Values{"username": {user}, "password": {password}, "csrf": {b.csrf}})
}

// signIn reads the form and posts it, failing the test on a transport
// error.
func (b *visitor) signIn(t *testing.T, user, password string) answer {
	t.Helper()
	if err := b.form(); err != nil {
		t.Fatal(err)
	}
	a, err := b.post(user, password)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func signedIn(a answer) bool {
	return a.status == http.StatusSeeOther && strings.Contains(strings.Join(a.header.Values("Set-Cookie"), "\n"), "sts_session=")
}

// burst posts n sign-ins at once, each from its own browser at from (its
// form read beforehand), and counts the answers by status; 429 and 503
// answers must carry Retry-After.
func burst(t *testing.T, base, from, user, password string, n int) map[int]int {
	t.Helper()
	bs := make([]*visitor, n)
	for i := range bs {
		bs[i] = newVisitor(base, from)
		if err := bs[i].form(); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	counts := map[int]int{}
	var errs []error
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, b := range bs {
		wg.Go(func() {
			<-start
			a, err := b.post(user, password)
			mu.Lock()
			defer mu.Unlock()
			if err == nil && (a.status == http.StatusTooManyRequests || a.status == http.StatusServiceUnavailable) && a.header.Get("Retry-After") == "" {
				err = fmt.Errorf("%d without Retry-After", a.status)
			}
			if err != nil {
				errs = append(errs, err)
				return
			}
			counts[a.status]++
		})
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	return counts
}

// A parallel burst of wrong guesses cannot pass the throttle: slots are
// reserved before the password is checked, so at most the free failures
// (and the one attempt after them) are checked at all.
func TestSignInBurst(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	pw := s.CreateOperator("alice")
	_, base := standalone(t, s)
	// An operator that does not exist, so that each check takes a full
	// argon2id with the default parameters and the attempts overlap.
	counts := burst(t, base, "192.0.2.1", "mallory", "guess", 20)
	// Under load (the race detector, a busy CI machine) a guess may also
	// find every slot of the hash gate taken: 503, refused unchecked,
	// which is as good as 429 here (TestSignInBusy).
	if counts[http.StatusUnauthorized] > 6 || counts[http.StatusUnauthorized]+counts[http.StatusTooManyRequests]+counts[http.StatusServiceUnavailable] != 20 {
		t.Fatalf("20 parallel wrong guesses: %v; want at most 6 checked (401), the rest 429 (or 503 when the hash gate is full)", counts)
	}
	// alice, from the same address, is not concerned.
	if a := newVisitor(base, "192.0.2.1").signIn(t, "alice", pw); !signedIn(a) {
		t.Fatalf("alice: %d", a.status)
	}
}

// When every slot of the hash gate is taken, a sign-in is answered 503
// with Retry-After at once, and counts as no failure.
func TestSignInBusy(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	pw := s.CreateOperator("alice")
	p, base := standalone(t, s)
	release := portal.SaturateHashGate(p)
	b := newVisitor(base, "192.0.2.1")
	for range 10 {
		a := b.signIn(t, "alice", pw)
		if a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") != "1" || signedIn(a) {
			t.Fatalf("saturated: %d Retry-After %q", a.status, a.header.Get("Retry-After"))
		}
		if !strings.Contains(a.body, "busy") {
			t.Fatalf("saturated: the page does not say the server is busy:\n%s", a.body)
		}
	}
	// Account holders' sign-ins pass through the same gate.
	acct, secret, err := s.Accounts.Create(context.Background(), store.AccountIndividual, "Acme", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a := b.signIn(t, acct.ID, secret); a.status != http.StatusServiceUnavailable {
		t.Fatalf("account holder while saturated: %d", a.status)
	}
	// A name that cannot exist is refused before the gate: 401, not 503.
	if a := b.signIn(t, "not a name", pw); a.status != http.StatusUnauthorized {
		t.Fatalf("malformed name while saturated: %d", a.status)
	}
	release()
	// Ten refusals for want of a slot did not count as failures.
	if a := b.signIn(t, "alice", pw); !signedIn(a) {
		t.Fatalf("after the burst: %d", a.status)
	}
	if a := newVisitor(base, "192.0.2.1").signIn(t, acct.ID, secret); !signedIn(a) {
		t.Fatalf("account holder after the burst: %d", a.status)
	}
}

// Limits an attacker cannot turn against the user: guesses from one
// address (IPv4, or an IPv6 /64) throttle that address, never the user
// signing in from another.
func TestSignInSources(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	pw := s.CreateOperator("alice")
	_, base := standalone(t, s)

	counts := burst(t, base, "203.0.113.7", "alice", "wrong", 20)
	if counts[http.StatusUnauthorized] > 6 || counts[http.StatusTooManyRequests] < 14 {
		t.Fatalf("20 parallel wrong guesses: %v", counts)
	}
	// One more guess spends what the burst left of the free failures (401,
	// or 429 if the burst already did); then the attacker's address is
	// locked, even with the right password ...
	if a := newVisitor(base, "203.0.113.7").signIn(t, "alice", "wrong"); a.status != http.StatusUnauthorized && a.status != http.StatusTooManyRequests {
		t.Fatalf("a guess after the burst: %d", a.status)
	}
	if a := newVisitor(base, "203.0.113.7").signIn(t, "alice", pw); a.status != http.StatusTooManyRequests {
		t.Fatalf("right password from the guessing address: %d", a.status)
	}
	// ... alice elsewhere is not.
	if a := newVisitor(base, "198.51.100.9").signIn(t, "alice", pw); !signedIn(a) {
		t.Fatalf("right password from another address: %d", a.status)
	}

	// IPv6 addresses count by /64: one host commonly holds a whole /64.
	bob := s.CreateOperator("bob")
	for range 6 {
		newVisitor(base, "2001:db8::1").signIn(t, "bob", "wrong")
	}
	if a := newVisitor(base, "2001:db8::2").signIn(t, "bob", bob); a.status != http.StatusTooManyRequests {
		t.Fatalf("the same /64: %d", a.status)
	}
	if a := newVisitor(base, "2001:db8:0:1::1").signIn(t, "bob", bob); !signedIn(a) {
		t.Fatalf("another /64: %d", a.status)
	}

	// Many addresses guessing together reach the per-user ceiling: then an
	// address that has failed for carol waits although its own failures
	// are still free, while carol, from an address that has not failed,
	// signs in.
	carol := s.CreateOperator("carol")
	for i := range 7 {
		for range 3 {
			if a := newVisitor(base, fmt.Sprintf("10.1.0.%d", i)).signIn(t, "carol", "wrong"); a.status != http.StatusUnauthorized {
				t.Fatalf("guess from 10.1.0.%d: %d", i, a.status)
			}
		}
	}
	if a := newVisitor(base, "10.1.0.0").signIn(t, "carol", "wrong"); a.status != http.StatusTooManyRequests {
		t.Fatalf("a guessing address past the user's ceiling: %d", a.status)
	}
	if a := newVisitor(base, "10.2.0.1").signIn(t, "carol", carol); !signedIn(a) {
		t.Fatalf("carol from a clean address past the ceiling: %d", a.status)
	}
}

// Names that cannot exist are refused before any throttle slot or hash;
// so they cannot lock an address either.
func TestSignInMalformed(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	pw := s.CreateOperator("alice")
	p := s.NewPortalSession()
	for _, name := range []string{"", "with space", strings.Repeat("a", 65), "acct-", "acct-x/y", "acct-" + strings.Repeat("a", 60), "ünicode", "a\x00b"} {
		for range 3 {
			r := p.SignIn(name, pw)
			if r.Status != http.StatusUnauthorized || !strings.Contains(string(r.Body), signinMessage) {
				t.Fatalf("%q: %d", name, r.Status)
			}
		}
	}
	// A password longer than any password is refused before hashing too.
	if r := p.SignIn("alice", strings.Repeat("x", 1025)); r.Status != http.StatusUnauthorized {
		t.Fatalf("1025-byte password: %d", r.Status)
	}
	// 25 refusals from one address, none counted: alice signs in.
	if r := p.SignIn("alice", pw); r.Status != http.StatusSeeOther {
		t.Fatalf("alice: %d", r.Status)
	}
	// Case does not make another throttle key: ALICE and alice share one.
	q := s.NewPortalSession()
	for range 3 {
		q.SignIn("ALICE", "wrong")
		q.SignIn("alice", "wrong")
	}
	if r := q.SignIn("alice", pw); r.Status != http.StatusTooManyRequests {
		t.Fatalf("after 6 failures as ALICE and alice: %d", r.Status)
	}
}

// The sign-in form's token is signed by the server and bound to the
// browser's pre-session cookie and to an expiry.
func TestSignInCSRF(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	pw := s.CreateOperator("alice")
	u, _ := url.Parse(s.URL + "/portal/")
	signinCookie := func(b *visitor) string {
		for _, c := range b.c.Jar.Cookies(u) {
			if c.Name == "sts_signin" {
				return c.Value
			}
		}
		return ""
	}
	refused := func(name string, b *visitor, csrf string) {
		t.Helper()
		a, err := b.do(http.MethodPost, "/portal/signin", url.Values{"username": {"alice"}, "password": {pw}, "csrf": {csrf}})
		if err != nil {
			t.Fatal(err)
		}
		if a.status != http.StatusForbidden || signedIn(a) {
			t.Errorf("%s: %d, want 403", name, a.status)
		}
	}

	// A plain double submit: the same value in the cookie and the field.
	b := newVisitor(s.URL, "")
	b.c.Jar.SetCookies(u, []*http.Cookie{{Name: "sts_signin", Value: strings.Repeat("A", 43), Path: "/portal"}})
	refused("equal cookie and field", b, strings.Repeat("A", 43))
	// The browser's own cookie with its value in the field.
	if err := b.form(); err != nil {
		t.Fatal(err)
	}
	refused("the cookie's value as token", b, signinCookie(b))
	// Another browser's token with this browser's cookie.
	other := newVisitor(s.URL, "")
	if err := other.form(); err != nil {
		t.Fatal(err)
	}
	refused("another browser's token", b, other.csrf)
	// An expired form.
	s.Clock.Advance(time.Hour + time.Second)
	refused("an expired token", other, other.csrf)

	// A second tab keeps the cookie, so both forms stay valid.
	tab1 := newVisitor(s.URL, "")
	if err := tab1.form(); err != nil {
		t.Fatal(err)
	}
	first, cookie := tab1.csrf, signinCookie(tab1)
	if err := tab1.form(); err != nil {
		t.Fatal(err)
	}
	if signinCookie(tab1) != cookie || len(cookie) != 43 || tab1.csrf == cookie {
		t.Fatalf("second form: cookie %q then %q, token %q", cookie, signinCookie(tab1), tab1.csrf)
	}
	tab1.csrf = first
	s.Clock.Advance(59 * time.Minute)
	if a, err := tab1.post("alice", pw); err != nil || !signedIn(a) {
		t.Fatalf("the first tab's form, 59 minutes old: %d %v", a.status, err)
	}
}

// A successful sign-in moves a hash made with other parameters to the
// current ones, and the password keeps working.
func TestSignInRehash(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	ctx := context.Background()
	pw := "a-legacy-password-1234"
	legacy := portal.PasswordParams{Time: 1, MemoryKiB: 64 * 1024, Threads: 2}
	if err := portal.CreateOperator(ctx, s.Store, "legacy", pw, legacy, time.Now()); err != nil {
		t.Fatal(err)
	}
	get := func() *store.Operator {
		o, err := s.Store.GetOperator(ctx, "legacy")
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	before := get()
	if r := s.NewPortalSession().SignIn("legacy", "wrong-password-5678"); r.Status != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", r.Status)
	}
	if get().PasswordHash != before.PasswordHash {
		t.Fatal("a failed sign-in changed the hash")
	}
	s.PortalSignIn("legacy", pw)
	after := get()
	if !strings.HasPrefix(before.PasswordHash, "$argon2id$v=19$m=65536,t=1,p=2$") ||
		!strings.HasPrefix(after.PasswordHash, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash before %q, after %q", before.PasswordHash, after.PasswordHash)
	}
	s.PortalSignIn("legacy", pw)
	if get().PasswordHash != after.PasswordHash {
		t.Fatal("a hash with the current parameters was rehashed")
	}
}
