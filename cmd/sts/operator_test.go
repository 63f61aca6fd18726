package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/portal"
	"github.com/keybridge/sts/internal/store"
)

// checkOperatorPassword reports whether pw is the stored password of name.
func (c *cli) checkOperatorPassword(name, pw string) bool {
	c.t.Helper()
	env := c.env()
	o, err := env.Store.GetOperator(context.Background(), name)
	if err != nil {
		c.t.Fatal(err)
	}
	return portal.CheckPassword(o.PasswordHash, pw)
}

func TestOperatorCommands(t *testing.T) {
	c := newCLI(t, testKEK)
	if out := c.ok("operator", "list"); !strings.Contains(out, "No operators yet") {
		t.Errorf("empty list: %q", out)
	}

	var created operatorView
	c.okJSON(&created, "operator", "create", "alice", "-o", "json")
	if created.Username != "alice" || len(created.Password) != 24 || !strings.HasSuffix(created.Portal, "/portal/") {
		t.Fatalf("create -o json: %+v", created)
	}
	if !c.checkOperatorPassword("alice", created.Password) {
		t.Fatal("the printed password is not the stored one")
	}
	c.fail("already exists", "operator", "create", "alice")
	c.fail("acct-", "operator", "create", "acct-x")
	c.fail("letters, digits", "operator", "create", "bad name")

	// A password from stdin is not printed.
	out, stderr, err := c.runIn("a long enough password\n", "operator", "create", "bob", "--password-stdin")
	if err != nil {
		t.Fatalf("create --password-stdin: %v %s", err, stderr)
	}
	if strings.Contains(out, "a long enough password") || strings.Contains(out, "password:") {
		t.Errorf("--password-stdin printed the password: %q", out)
	}
	if !c.checkOperatorPassword("bob", "a long enough password") {
		t.Fatal("stdin password not stored")
	}
	if _, _, err := c.runIn("short\n", "operator", "create", "carol", "--password-stdin"); err == nil || !strings.Contains(err.Error(), "12 characters") {
		t.Errorf("short stdin password: %v", err)
	}

	// Listing never shows a hash.
	var list []operatorView
	c.okJSON(&list, "operator", "list", "-o", "json")
	if len(list) != 2 || list[0].Username != "alice" || list[1].Username != "bob" || list[0].Password != "" || list[0].CreatedAt == "" {
		t.Fatalf("list: %+v", list)
	}
	if text := c.ok("operator", "list"); strings.Contains(text, "argon2") || !strings.Contains(text, "alice") {
		t.Errorf("list text: %q", text)
	}

	// reset-password: a new password, the old one refused, sessions gone.
	env := c.env()
	ctx := context.Background()
	if err := env.Store.CreateSession(ctx, &store.Session{Hash: bytes.Repeat([]byte{1}, 32), Subject: "operator:alice", CSRF: "x", CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	out = c.ok("operator", "reset-password", "alice")
	m := regexp.MustCompile(`password: (\S+)`).FindStringSubmatch(out)
	if m == nil || m[1] == created.Password {
		t.Fatalf("reset-password output: %q", out)
	}
	if !c.checkOperatorPassword("alice", m[1]) || c.checkOperatorPassword("alice", created.Password) {
		t.Fatal("reset did not replace the password")
	}
	if _, err := env.Store.GetSession(ctx, bytes.Repeat([]byte{1}, 32), time.Now()); err == nil {
		t.Error("reset-password left the operator's session")
	}
	c.fail("no operator", "operator", "reset-password", "nobody")
}

// syncBuffer is a bytes.Buffer safe for the server goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serve runs `sts serve [extra...]` until the returned stop is called,
// and returns what it printed once it is listening.
func (c *cli) serve(extra ...string) (out string, addr string, stop func()) {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var buf syncBuffer
	root := newRoot()
	root.SetOut(&buf)
	root.SetErr(io.Discard)
	root.SetArgs(append([]string{"--data-dir", c.dir, "--log-level", "error", "serve", "--addr", "127.0.0.1:0"}, extra...))
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	re := regexp.MustCompile(`listening on (\S+)`)
	deadline := time.Now().Add(20 * time.Second)
	for {
		s := buf.String()
		if m := re.FindStringSubmatch(s); m != nil && strings.Contains(s, "Next:") {
			return s, m[1], func() {
				cancel()
				if err := <-done; err != nil {
					c.t.Errorf("serve: %v", err)
				}
			}
		}
		select {
		case err := <-done:
			c.t.Fatalf("serve ended: %v\n%s", err, s)
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			c.t.Fatalf("serve did not start:\n%s", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestServeCreatesAdmin(t *testing.T) {
	c := newCLI(t, testKEK)
	out, addr, stop := c.serve()
	m := regexp.MustCompile(`created the portal operator "admin". Its password, shown only this once:\n  (\S+)\n`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "/portal/") {
		stop()
		t.Fatalf("first start does not print the admin password:\n%s", out)
	}
	pw := m[1]

	// The printed password signs in to the running portal.
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	base := "http://" + addr
	resp, err := hc.Get(base + "/portal/signin")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(body)
	if csrf == nil {
		t.Fatalf("sign-in page:\n%s", body)
	}
	resp, err = hc.PostForm(base+"/portal/signin", url.Values{"csrf": {string(csrf[1])}, "username": {"admin"}, "password": {pw}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/portal/clients" {
		t.Errorf("admin sign-in: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	stop()

	// The next start prints no password.
	out, _, stop = c.serve()
	stop()
	if strings.Contains(out, "password") {
		t.Errorf("second start mentions a password:\n%s", out)
	}
}
