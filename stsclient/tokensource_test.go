package stsclient_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keybridge/sts/oauth"
	"github.com/keybridge/sts/stsclient"
	"golang.org/x/oauth2"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// countingSource hands out numbered subject tokens.
type countingSource struct{ n atomic.Int64 }

func (s *countingSource) Token() (*oauth2.Token, error) {
	s.n.Add(1)
	return &oauth2.Token{AccessToken: "subject", TokenType: "Bearer"}, nil
}

func TestTokenSourceCachesUntilShortlyBeforeExpiry(t *testing.T) {
	o := newOtherSTS(t, "svc", "pw") // answers expires_in 600
	clk := &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	c := o.client()
	c.Now, c.ExpiryDelta = clk.Now, time.Minute
	subj := &countingSource{}
	ts := c.TokenSource(context.Background(), subj, stsclient.ExchangeRequest{Resource: []string{"https://backend.example/api"}})

	tok, err := ts.Token()
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken != "exchanged(subject)" || !tok.Expiry.Equal(clk.Now().Add(600*time.Second)) {
		t.Fatalf("token = %+v", tok)
	}
	form, _ := o.last()
	if form.Get("subject_token_type") != oauth.TokenTypeAccessToken || form.Get("resource") != "https://backend.example/api" {
		t.Errorf("request form %v", form)
	}
	clk.Advance(539 * time.Second) // 61 s before expiry: reused
	if _, err := ts.Token(); err != nil || o.requests.Load() != 1 || subj.n.Load() != 1 {
		t.Fatalf("not reused before expiry-delta: %d requests, err %v", o.requests.Load(), err)
	}
	clk.Advance(2 * time.Second) // 59 s before expiry: renewed
	if _, err := ts.Token(); err != nil || o.requests.Load() != 2 || subj.n.Load() != 2 {
		t.Fatalf("not renewed within expiry-delta: %d requests, err %v", o.requests.Load(), err)
	}
}

// TestTokenSourceShortLifetime: with a lifetime shorter than twice the
// delta, the token is still reused for half of it.
func TestTokenSourceShortLifetime(t *testing.T) {
	o := newOtherSTS(t, "svc", "pw")
	o.answer = func(w http.ResponseWriter, form url.Values) bool {
		writeJSON(w, 200, map[string]any{"access_token": "short", "token_type": "Bearer", "issued_token_type": oauth.TokenTypeAccessToken, "expires_in": 20})
		return true
	}
	clk := &clock{t: time.Unix(1e9, 0)}
	c := o.client()
	c.Now = clk.Now // default delta 30 s > 20 s lifetime
	ts := c.TokenSource(context.Background(), &countingSource{}, stsclient.ExchangeRequest{})
	ts.Token()
	clk.Advance(9 * time.Second)
	ts.Token()
	if n := o.requests.Load(); n != 1 {
		t.Fatalf("%d requests within half the lifetime, want 1", n)
	}
	clk.Advance(2 * time.Second)
	ts.Token()
	if n := o.requests.Load(); n != 2 {
		t.Fatalf("%d requests after half the lifetime, want 2", n)
	}
}

// TestTokenSourceOneRequestInFlight starts many callers while the server
// holds the first request: exactly one exchange is made and all callers get
// its token.
func TestTokenSourceOneRequestInFlight(t *testing.T) {
	o := newOtherSTS(t, "svc", "pw")
	o.gate = make(chan struct{})
	ts := o.client().TokenSource(context.Background(), &countingSource{}, stsclient.ExchangeRequest{})
	const callers = 32
	var wg sync.WaitGroup
	toks := make([]*oauth2.Token, callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Add(1)
		go func() { defer wg.Done(); toks[i], errs[i] = ts.Token() }()
	}
	// Wait until the one request reached the server, give the others time
	// to pile up behind it, then release it.
	for o.requests.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	close(o.gate)
	wg.Wait()
	if n := o.requests.Load(); n != 1 {
		t.Fatalf("%d exchanges for %d concurrent callers, want 1", n, callers)
	}
	for i := range callers {
		if errs[i] != nil || toks[i] == nil || toks[i].AccessToken != "exchanged(subject)" {
			t.Fatalf("caller %d: %v %v", i, toks[i], errs[i])
		}
	}
}

// TestTokenSourceErrors: a refusal is shared by the waiting callers and not
// cached; a failing subject source is reported without an exchange.
func TestTokenSourceErrors(t *testing.T) {
	o := newOtherSTS(t, "svc", "pw")
	var refuse atomic.Bool
	refuse.Store(true)
	o.answer = func(w http.ResponseWriter, form url.Values) bool {
		if refuse.Load() {
			writeJSON(w, 400, map[string]string{"error": "invalid_request", "error_description": "subject token expired"})
			return true
		}
		return false
	}
	ts := o.client().TokenSource(context.Background(), &countingSource{}, stsclient.ExchangeRequest{})
	_, err := ts.Token()
	var e *stsclient.Error
	if !errors.As(err, &e) || e.Code != oauth.ErrInvalidRequest {
		t.Fatalf("err = %v", err)
	}
	refuse.Store(false)
	if tok, err := ts.Token(); err != nil || tok.AccessToken != "exchanged(subject)" {
		t.Fatalf("after a refusal: %v %v", tok, err)
	}

	failing := oauth2.TokenSource(failingSource{})
	before := o.requests.Load()
	if _, err := o.client().TokenSource(context.Background(), failing, stsclient.ExchangeRequest{}).Token(); err == nil || !errors.Is(err, errNoSubject) {
		t.Fatalf("subject failure: %v", err)
	}
	if o.requests.Load() != before {
		t.Error("exchange sent without a subject token")
	}
}

var errNoSubject = errors.New("no subject token")

type failingSource struct{}

func (failingSource) Token() (*oauth2.Token, error) { return nil, errNoSubject }

// TestTokenSourceWithOAuth2Transport uses the token source the way
// golang.org/x/oauth2 users do: an http.Client that adds the exchanged
// token to every request.
func TestTokenSourceWithOAuth2Transport(t *testing.T) {
	o := newOtherSTS(t, "svc", "pw")
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer exchanged(subject)" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		io.WriteString(w, "ok")
	}))
	defer backend.Close()
	ctx := context.Background()
	hc := oauth2.NewClient(ctx, o.client().TokenSource(ctx, &countingSource{}, stsclient.ExchangeRequest{}))
	for range 3 {
		resp, err := hc.Get(backend.URL)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "ok" {
			t.Fatalf("backend answered %d %s", resp.StatusCode, b)
		}
	}
	if n := o.requests.Load(); n != 1 {
		t.Errorf("%d exchanges for 3 calls, want 1", n)
	}
}
