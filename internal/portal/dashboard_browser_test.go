package portal_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/keybridge/sts/internal/clientip"
	"github.com/keybridge/sts/internal/clients"
	"github.com/keybridge/sts/internal/federation"
	"github.com/keybridge/sts/internal/issuers"
	"github.com/keybridge/sts/internal/portal"
	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/oauth"
)

// fedTestOptions make fetches from the test IdP quick to give up.
var fedTestOptions = federation.Options{FetchTimeout: 2 * time.Second, ConnectTimeout: time.Second}

// chartReport is what the dashboard test measures of the charts.
type chartReport struct {
	Granted int     `json:"granted"`
	Refused int     `json:"refused"`
	Fill    string  `json:"fill"`
	KeyBars int     `json:"keyBars"`
	Width   float64 `json:"width"`
}

// fixedLatency is a portal.LatencySource that reports fixed figures (the
// real one is internal/metrics').
type fixedLatency struct {
	p50, p99 time.Duration
	n        uint64
}

func (l fixedLatency) TokenLatency() (time.Duration, time.Duration, uint64) { return l.p50, l.p99, l.n }

// dashboardPortal serves a portal of its own on s's store, as the server
// wires it plus a latency source and the rotation period, for the
// dashboard tests; it returns its URL.
func dashboardPortal(t *testing.T, s *ststest.STS, lat portal.LatencySource) string {
	t.Helper()
	p, err := portal.New(portal.Options{
		Issuer: s.URL, Store: s.Store, Accounts: s.Accounts, Keys: s.Keys,
		Clients:     &clients.Registry{Store: s.Store, Hasher: s.Hasher, Now: time.Now},
		Issuers:     &issuers.Service{Store: s.Store, Issuer: s.URL},
		IssuerKeys:  s.Server.Fetcher.KeyStatus,
		Latency:     lat,
		KeyRotation: 30 * 24 * time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	res, _ := clientip.Parse("127.0.0.1")
	srv := httptest.NewServer(res.Middleware(p))
	t.Cleanup(srv.Close)
	return srv.URL
}

// history appends a day of token-endpoint decisions before now, minute
// by minute (a daily curve, with a burst of refusals), as the audit
// writer would have, and returns how many were granted and refused.
func history(t *testing.T, s *ststest.STS, clientIDs []string, now time.Time) (granted, refused int64) {
	t.Helper()
	var recs []store.AuditRecord
	start := now.Truncate(time.Minute).Add(-24 * time.Hour)
	// Minutes 0 to 2 are left empty: the window slides with the clock, and
	// a minute boundary passed between now and the page's render (a slow,
	// loaded run) must not move a record out of it.
	for i := 3; i < 24*60-10; i++ {
		at := start.Add(time.Duration(i) * time.Minute).Add(7 * time.Second)
		n := int(6 + 5*math.Sin(float64(i)/1440*2*math.Pi*2))
		for j := range n {
			recs = append(recs, store.AuditRecord{Time: at, Action: "token.exchange", Decision: store.DecisionGranted,
				ClientID: clientIDs[(i+j)%len(clientIDs)], Count: 1})
			granted++
		}
		if i%97 == 0 || (i > 900 && i < 930) {
			c := 1 + i%4
			recs = append(recs, store.AuditRecord{Time: at, Action: "token.exchange", Decision: store.DecisionRefused,
				ClientID: clientIDs[0], Error: []string{"invalid_grant", "invalid_target", "invalid_scope"}[i%3], Count: c})
			refused += int64(c)
		}
	}
	if err := s.Store.AppendAudit(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	return granted, refused
}

// TestBrowserDashboard (issue 15): the operators' home page in Chromium,
// with real exchanges at the token endpoint (a trusted issuer's token
// exchanged, client credentials, refusals of several kinds, an unknown
// client) on top of a day of audit history: the totals, the refusal
// reasons, the busiest clients (the unknown one marked), the latency, the
// signing keys' timeline and the trusted issuer's keys are shown; the
// charts' colours come from the embedded style sheet (the CSP lets no
// inline style through); no page scrolls sideways at 1280 or 800 pixels.
// Screenshots go to $TMPDIR/sts-portal-screenshots/ (dashboard-*).
func TestBrowserDashboard(t *testing.T) {
	s := ststest.Start(t, ststest.Options{Federation: fedTestOptions})
	ctx := context.Background()
	pw := s.CreateOperator("admin")
	idp := ststest.StartIdP(t)
	const backend = "https://backend.example.com/api"
	rs08 := s.CreateClient(func(c *store.Client) {
		c.ID, c.Name, c.Audiences, c.Scopes = clients.NewID(), "rs08 recordings gateway", []string{backend}, []string{"read"}
	})
	batch := s.CreateClient(func(c *store.Client) {
		c.ID, c.Name, c.Audiences = clients.NewID(), "nightly batch", []string{backend}
	})
	s.Trust(idp, "k8s", s.URL, []string{rs08.ID}, nil)
	hg, hr := history(t, s, []string{rs08.ID, batch.ID}, time.Now())

	// Real exchanges: 6 granted, 4 refused (3 reasons, one unknown client).
	for range 3 {
		r := s.Exchange(rs08, idp.Sign(idp.Kubernetes("prod", "deployer", s.URL)), oauth.TokenTypeJWT, url.Values{"audience": {backend}})
		if r.Status != http.StatusOK {
			t.Fatalf("exchange: %d %s", r.Status, r.Body)
		}
		s.ClientCredentials(batch, url.Values{"audience": {backend}})
	}
	if r := s.Exchange(rs08, idp.Sign(idp.Kubernetes("prod", "deployer", s.URL)), oauth.TokenTypeJWT, url.Values{"audience": {"https://elsewhere.example.com"}}); r.Status != http.StatusBadRequest {
		t.Fatalf("exchange for another audience: %d %s", r.Status, r.Body)
	}
	if r := s.Exchange(rs08, "not-a-token", oauth.TokenTypeJWT, nil); r.Status != http.StatusBadRequest {
		t.Fatalf("exchange of garbage: %d %s", r.Status, r.Body)
	}
	unknown := &ststest.Client{Client: &store.Client{ID: "made-up-client"}, Secret: "nope"}
	for range 2 {
		if r := s.PostForm(server.TokenPath, unknown, url.Values{"grant_type": {oauth.GrantTypeClientCredentials}}); r.Status != http.StatusUnauthorized {
			t.Fatalf("unknown client: %d %s", r.Status, r.Body)
		}
	}
	if err := s.Server.FlushAudit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Server.SyncAudit(ctx); err != nil {
		t.Fatal(err)
	}
	var real []store.AuditRecord
	real, _ = s.Store.ListAudit(ctx, store.AuditFilter{Action: "token", Since: time.Now().Add(-5 * time.Minute), Limit: 100})
	var rg, rr int64
	for _, a := range real {
		if a.Decision == store.DecisionGranted {
			rg++
		} else {
			rr += int64(a.Count)
		}
	}
	if rg != 6 || rr != 4 {
		t.Fatalf("the real exchanges were audited as %d granted, %d refused: %+v", rg, rr, real)
	}

	// One rotation: a retired, a current and a next key to draw.
	if err := s.Keys.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	base := dashboardPortal(t, s, fixedLatency{p50: 3200 * time.Microsecond, p99: 41 * time.Millisecond, n: 1234})
	view := *s
	view.URL = base
	b := newBrowser(t, &view)
	if st := b.signIn("admin", pw); st != http.StatusOK {
		t.Fatalf("sign in: %d", st)
	}
	// The home page is the dashboard.
	if st := b.open("/portal/"); st != http.StatusOK || b.text("h1") != "Dashboard" {
		t.Fatalf("home page: %d %q", st, b.text("h1"))
	}
	if got, want := b.text("#total-granted"), fmtCount(hg+rg); got != want {
		t.Errorf("granted total %q, want %q", got, want)
	}
	if got, want := b.text("#total-refused"), fmtCount(hr+rr); got != want {
		t.Errorf("refused total %q, want %q", got, want)
	}
	reasons := b.text("#reasons")
	for _, code := range []string{"invalid_client", "invalid_target", "invalid_grant", "invalid_scope"} {
		if !strings.Contains(reasons, code) {
			t.Errorf("refusal reasons lack %s:\n%s", code, reasons)
		}
	}
	busiest := b.text("#clients")
	for _, want := range []string{rs08.ID, "rs08 recordings gateway", batch.ID, "nightly batch", "made-up-client", "unknown"} {
		if !strings.Contains(busiest, want) {
			t.Errorf("busiest clients lack %q:\n%s", want, busiest)
		}
	}
	if p50, p99 := b.text("#p50"), b.text("#p99"); p50 != "3.2 ms" || p99 != "41 ms" {
		t.Errorf("latency p50 %q p99 %q", p50, p99)
	}
	if keys := b.text("#keys"); !strings.Contains(keys, "current") || !strings.Contains(keys, "next") || !strings.Contains(keys, "retired") || !strings.Contains(keys, "until the next rotation") {
		t.Errorf("keys section:\n%s", keys)
	}
	if iss := b.text("#issuers"); !strings.Contains(iss, "k8s") || !strings.Contains(iss, "ok") || !strings.Contains(iss, "1 key, fetched") {
		t.Errorf("issuers section:\n%s", iss)
	}
	// The charts are drawn, and coloured by dashboard.css.
	chart, err := chromedp.Run(b.ctx, chromedp.Evaluate[chartReport](`(() => {
	  const g = document.querySelector("#granted-area"), r = document.querySelector("#refused-area");
	  return {granted: g ? g.getAttribute("d").length : 0, refused: r ? r.getAttribute("d").length : 0,
	    fill: g ? getComputedStyle(g).fill : "", keyBars: document.querySelectorAll("#key-timeline rect").length,
	    width: document.querySelector("#timeline").getBoundingClientRect().width};
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	if chart.Granted < 100 || chart.Refused < 20 || chart.Fill != "rgb(63, 154, 92)" || chart.KeyBars < 6 || chart.Width < 600 {
		t.Errorf("charts: %+v", chart)
	}
	b.checkLayout("dashboard", 1280, true, true)
	b.viewport(800)
	b.open("/portal/")
	b.checkLayout("dashboard", 800, false, true)
	b.viewport(1280)

	// Without a latency source it says so; account holders get their
	// clients instead.
	view.URL = dashboardPortal(t, s, nil)
	b2 := newBrowser(t, &view)
	b2.signIn("admin", pw)
	b2.open("/portal/")
	if !strings.Contains(b2.text("#latency-none"), "Not measured") {
		t.Errorf("latency without a source: %q", b2.text("#latency"))
	}
	acct, secret, err := s.Accounts.Create(ctx, store.AccountIndividual, "Acme Radio", []string{backend}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b2.signOut()
	b2.signIn(acct.ID, secret)
	if st := b2.open("/portal/"); st != http.StatusOK || b2.text("h1") == "Dashboard" {
		t.Errorf("account holder's home page: %d %q", st, b2.text("h1"))
	}
}

// fmtCount writes n as the dashboard does (12,345).
func fmtCount(n int64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
