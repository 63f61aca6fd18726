package portal_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/keybridge/sts/internal/clients"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
)

// viewport emulates a window width pixels wide.
func (b *browser) viewport(width int64) {
	b.t.Helper()
	b.run(fmt.Sprintf("viewport %d", width), chromedp.EmulateViewport(width, 900))
}

// layoutReport is what checkLayout measures on a page.
type layoutReport struct {
	ScrollWidth int `json:"scrollWidth"`
	InnerWidth  int `json:"innerWidth"`
	// IDs counts the ids (class "id") on the page; Wrapped lists those laid
	// out on more than one line or allowed to wrap.
	IDs     int      `json:"ids"`
	Wrapped []string `json:"wrapped"`
	// Scrolled lists the table wrappers whose table is wider than they
	// are (they scroll sideways).
	Scrolled []string `json:"scrolled"`
}

const measureLayout = `(() => {
  const r = {scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth, ids: 0, wrapped: [], scrolled: []};
  for (const el of document.querySelectorAll(".id:not(.long)")) {
    r.ids++;
    // A wrapped inline element has one client rectangle per line.
    if (getComputedStyle(el).whiteSpace !== "nowrap" || el.getClientRects().length !== 1) {
      r.wrapped.push(el.textContent);
    }
  }
  for (const w of document.querySelectorAll(".table-wrap")) {
    if (w.scrollWidth > w.clientWidth) {
      const t = w.querySelector("table");
      r.scrolled.push((t && t.className) + " " + w.scrollWidth + ">" + w.clientWidth);
    }
  }
  return r;
})()`

// checkLayout asserts that the page does not scroll sideways, that no id
// wraps, and, where tableFits, that no table needs its wrapper's scroll
// bar; then it takes a screenshot.
func (b *browser) checkLayout(name string, width int64, tableFits, hasIDs bool) {
	b.t.Helper()
	r, err := chromedp.Run(b.ctx, chromedp.Evaluate[layoutReport](measureLayout))
	if err != nil {
		b.t.Fatalf("%s: measure: %v", name, err)
	}
	if r.InnerWidth != int(width) {
		b.t.Errorf("%s at %d: window is %d wide", name, width, r.InnerWidth)
	}
	if r.ScrollWidth > r.InnerWidth {
		b.t.Errorf("%s at %d: the page scrolls sideways (%d > %d)", name, width, r.ScrollWidth, r.InnerWidth)
	}
	if hasIDs && r.IDs == 0 {
		b.t.Errorf("%s at %d: no ids on the page", name, width)
	}
	if len(r.Wrapped) > 0 {
		b.t.Errorf("%s at %d: ids wrap: %q", name, width, r.Wrapped)
	}
	if tableFits && len(r.Scrolled) > 0 {
		b.t.Errorf("%s at %d: tables scroll inside their wrapper: %q", name, width, r.Scrolled)
	}
	b.shot(fmt.Sprintf("w%d-%s", width, name))
}

// TestBrowserLayout (issue 9, portal items 1, 2, 6, 7 and 8): the portal
// at 1280 and 800 pixels wide, with long audiences, subjects and details:
// no page scrolls sideways, the clients', audit and account tables fit
// without their scroll bar, and no client, account or key id breaks
// inside. Screenshots at both widths go to $TMPDIR/sts-portal-screenshots/
// (w1280-*, w800-*). Then, in the browser: the audit page's ISO date
// filters, and a holder rotating their own shared secret.
func TestBrowserLayout(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	b := newBrowser(t, s)
	ctx := context.Background()
	pw := s.CreateOperator("admin")
	acct, secret, err := s.Accounts.Create(ctx, store.AccountIndividual, "Acme Radio Broadcasting and Telecommunications",
		[]string{"https://backend.example.com/api/v1/stations/recordings/archive", "https://telemetry.acme-radio.example/ingest"}, []string{"api", "read", "write"})
	if err != nil {
		t.Fatal(err)
	}
	rs08 := s.CreateClient(func(c *store.Client) {
		c.ID, c.Name, c.AccountID = clients.NewID(), "rs08 recordings gateway", acct.ID
		c.Audiences = []string{"https://backend.example.com/api/v1/stations/recordings/archive", "https://telemetry.acme-radio.example/ingest"}
		c.Scopes = []string{"api", "read"}
	})
	for i := range 4 {
		s.CreateClient(func(c *store.Client) {
			c.ID, c.Name, c.AccountID = clients.NewID(), fmt.Sprintf("radio-%d", i), acct.ID
			c.Audiences = []string{"https://backend.example.com/api/v1/stations/recordings/archive"}
			c.Status = []store.ClientStatus{store.ClientActive, store.ClientPending}[i%2]
		})
	}
	// An operator's client with a long chosen id: shortened in tables.
	s.CreateClient(func(c *store.Client) {
		c.ID, c.Name = "infrastructure-gateway-for-the-eu-west-region-primary", "gateway"
	})
	now := time.Now().UTC()
	var recs []store.AuditRecord
	for i := range 6 {
		recs = append(recs, store.AuditRecord{
			Time: now.Add(-time.Duration(i) * time.Minute), Action: "token.exchange", Decision: []string{store.DecisionGranted, store.DecisionRefused}[i%2],
			ClientID: rs08.ID, AccountID: acct.ID,
			Subject:  "user:7f3c9a2e-51d4-4b8e-9c0a-3e6f1d2b8a47@directory.acme-radio.example",
			Actor:    "client:" + rs08.ID,
			Audience: []string{"https://backend.example.com/api/v1/stations/recordings/archive"},
			JTI:      "Qm9va2tlZXBpbmdKVElmb3JUZXN0aW5n",
			Error:    []string{"", "invalid_target"}[i%2],
			Detail:   "the requested resource https://backend.example.com/api/v1/stations/recordings/archive?station=kxyz-fm&from=2026-01-01T00:00:00Z is not among the client's audiences",
			Remote:   "203.0.113.77:51234",
		})
	}
	if err := s.Store.AppendAudit(ctx, recs); err != nil {
		t.Fatal(err)
	}

	// A retired key fills every column of the keys page.
	if err := s.Keys.Rotate(ctx); err != nil {
		t.Fatal(err)
	}

	if st := b.signIn("admin", pw); st != http.StatusOK {
		t.Fatalf("sign in: %d", st)
	}
	for _, w := range []int64{1280, 800} {
		b.viewport(w)
		for _, p := range []struct {
			name, path string
			hasIDs     bool
		}{
			{"clients", "/portal/clients", true},
			{"client", "/portal/clients/" + rs08.ID, true},
			{"audit", "/portal/audit", true},
			{"account", "/portal/accounts/" + acct.ID, true},
			{"accounts", "/portal/accounts", true},
			{"keys", "/portal/keys", true},
			{"register", "/portal/clients/new", false},
			{"iat", "/portal/iat", false},
		} {
			if st := b.open(p.path); st != http.StatusOK {
				t.Fatalf("%s: %d", p.path, st)
			}
			b.checkLayout(p.name, w, true, p.hasIDs)
		}
	}

	// The audit page's date filters are ISO text fields: the browser
	// accepts the table's own form and refuses a locale's mm/dd/yyyy.
	b.open("/portal/audit")
	for v, ok := range map[string]bool{"2026-01-31": true, "2026-01-31 13:45": true, "2026-01-31T13:45:05": true,
		"2026-01-31 13:45:05 UTC": true, "01/31/2026": false, "yesterday": false} {
		b.fill("#f-since", v)
		valid, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`document.querySelector("#f-since").checkValidity()`))
		if err != nil || valid != ok {
			t.Errorf("since %q: valid %v (%v), want %v", v, valid, err, ok)
		}
	}
	since := now.Add(-2*time.Minute).Format("2006-01-02 15:04:05") + " UTC"
	b.fill("#f-since", since)
	b.fill("#f-action", "token")
	if st := b.submit(`form[action="/portal/audit"] button[type=submit]`); st != http.StatusOK {
		t.Fatalf("audit filter: %d", st)
	}
	if got := b.value("#f-since"); got != since {
		t.Errorf("since after filtering: %q", got)
	}
	if n := strings.Count(b.text("table.audit"), "token.exchange"); n != 3 {
		t.Errorf("since %s: %d records, want 3", since, n)
	}
	b.shot("audit-filtered")
	b.signOut()

	// The holder rotates their own shared secret: it is shown, and they
	// are signed out and sign in with it.
	if st := b.signIn(acct.ID, secret); st != http.StatusOK {
		t.Fatalf("holder sign-in: %d", st)
	}
	b.open("/portal/accounts/" + acct.ID)
	b.checkLayout("account-holder", 800, true, true)
	if st := b.submit("#rotate-secret"); st != http.StatusOK || !b.has("You are signed out") {
		t.Fatalf("rotate own secret: %d", st)
	}
	newSecret := b.value("#account-secret")
	if newSecret == secret || len(newSecret) < 43 || b.has("Sign out") {
		t.Fatalf("after rotation: secret %q", newSecret)
	}
	b.run("copy button", chromedp.WaitVisible(chromedp.CSS(`button[data-copy="account-secret"]`)))
	b.shot("w800-account-secret-rotated")
	b.open("/portal/clients")
	if !b.has("Sign in") || b.has("Acme Radio") {
		t.Fatal("the holder is still signed in after rotating the secret")
	}
	if st := b.signIn(acct.ID, secret); st != http.StatusUnauthorized {
		t.Fatalf("old secret: %d", st)
	}
	if st := b.signIn(acct.ID, newSecret); st != http.StatusOK || !b.has("Acme Radio") {
		t.Fatalf("new secret: %d", st)
	}
}
