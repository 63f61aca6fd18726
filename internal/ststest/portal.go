package ststest

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/keybridge/sts/internal/portal"
)

// cheapPassword are argon2id parameters for tests: the portal verifies a
// password with the parameters stored in its hash, so operators created
// with these are quick to create and to sign in the first time, even
// under the race detector (that sign-in rehashes the password with
// portal.DefaultPasswordParams).
var cheapPassword = portal.PasswordParams{Time: 1, MemoryKiB: 64, Threads: 1}

// CreateOperator stores a portal operator with a generated password (hashed
// at a low cost) and returns the password.
func (s *STS) CreateOperator(name string) string {
	s.T.Helper()
	pw := portal.GeneratePassword()
	if err := portal.CreateOperator(context.Background(), s.Store, name, pw, cheapPassword, time.Now()); err != nil {
		s.T.Fatal(err)
	}
	return pw
}

// PortalSession is a browser-like HTTP client of the portal: it keeps
// cookies, does not follow redirects (tests look at them) and sends the
// CSRF token of the last page it read with every form.
type PortalSession struct {
	s      *STS
	Client *http.Client
	// CSRF is the token of the last page read; Post sends it.
	CSRF string
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// NewPortalSession returns a session that is not signed in.
func (s *STS) NewPortalSession() *PortalSession {
	jar, _ := cookiejar.New(nil)
	return &PortalSession{s: s, Client: &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// PortalSignIn signs in (an operator's name and password, or an account id
// and its shared secret) and fails the test unless that succeeds.
func (s *STS) PortalSignIn(username, password string) *PortalSession {
	s.T.Helper()
	p := s.NewPortalSession()
	if r := p.SignIn(username, password); r.Status != http.StatusSeeOther {
		s.T.Fatalf("portal sign-in as %s: %d\n%s", username, r.Status, r.Body)
	}
	p.Get("/portal/clients") // reads the session's CSRF token
	return p
}

// SignIn reads the sign-in form and posts it; the answer is returned as is
// (303 on success).
func (p *PortalSession) SignIn(username, password string) *Response {
	p.s.T.Helper()
	p.Get("/portal/signin")
	return p.Post("/portal/signin", url.Values{"username": {username}, "password": {password}})
}

// Get fetches a portal page and remembers its CSRF token.
func (p *PortalSession) Get(path string) *Response {
	p.s.T.Helper()
	req, err := http.NewRequest(http.MethodGet, p.s.URL+path, nil)
	if err != nil {
		p.s.T.Fatal(err)
	}
	return p.do(req)
}

// Post posts form to a portal path with the current CSRF token (unless the
// form has its own "csrf").
func (p *PortalSession) Post(path string, form url.Values) *Response {
	p.s.T.Helper()
	f := url.Values{}
	for k, v := range form {
		f[k] = v
	}
	if _, ok := f["csrf"]; !ok && p.CSRF != "" {
		f.Set("csrf", p.CSRF)
	}
	req, err := http.NewRequest(http.MethodPost, p.s.URL+path, strings.NewReader(f.Encode()))
	if err != nil {
		p.s.T.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return p.do(req)
}

func (p *PortalSession) do(req *http.Request) *Response {
	p.s.T.Helper()
	resp, err := p.Client.Do(req)
	if err != nil {
		p.s.T.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		p.s.T.Fatal(err)
	}
	r := &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
	if m := csrfField.FindSubmatch(r.Body); m != nil {
		p.CSRF = string(m[1])
	}
	return r
}
