package server_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/oauth"
)

// Failed client authentication is throttled per source address and per
// client id at the token, introspection and revocation endpoints, and the
// throttle cannot lock anyone out: correct credentials always pass, from
// the throttled address and for the throttled client.
func TestFailedAuthThrottledNeverLocksOut(t *testing.T) {
	s := ststest.Start(t, ststest.Options{AuthFailuresPerAddress: 3, AuthFailuresPerClient: 100})
	victim := s.CreateClient(nil)
	wrong := &ststest.Client{Client: victim.Client, Secret: victim.Secret + "x"}
	ccForm := url.Values{"grant_type": {oauth.GrantTypeClientCredentials}}
	for i := range 3 {
		if r := s.PostForm(server.TokenPath, wrong, ccForm); r.Status != http.StatusUnauthorized || r.Error() != string(oauth.ErrInvalidClient) {
			t.Fatalf("failure %d within the budget: %d %s", i, r.Status, r.Body)
		}
	}
	for _, path := range []string{server.TokenPath, server.IntrospectPath, server.RevokePath} {
		form := url.Values{"token": {"x"}}
		if path == server.TokenPath {
			form = ccForm
		}
		r := s.PostForm(path, wrong, form)
		if r.Status != http.StatusTooManyRequests || r.Error() != string(oauth.ErrTemporarilyUnavail) {
			t.Errorf("%s past the budget: %d %s, want 429 temporarily_unavailable", path, r.Status, r.Body)
		}
		if secs, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || secs < 1 || secs > 60 {
			t.Errorf("%s: Retry-After %q, want 1..60 seconds", path, r.Header.Get("Retry-After"))
		}
		// The right secret, from the same address, passes.
		if r := s.PostForm(path, victim, form); r.Status != http.StatusOK {
			t.Errorf("%s with the right secret from the throttled address: %d %s", path, r.Status, r.Body)
		}
	}
	// A request that is not even well-formed counts as a failure too.
	req, _ := http.NewRequest(http.MethodPost, s.URL+server.TokenPath, strings.NewReader("%zz"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if r := s.Do(req); r.Status != http.StatusTooManyRequests {
		t.Errorf("malformed request from the throttled address: %d %s", r.Status, r.Body)
	}
}

// The per-client budget throttles failures for one client id from any
// number of addresses, and the client itself still gets in.
func TestFailedAuthThrottledPerClient(t *testing.T) {
	s := ststest.Start(t, ststest.Options{AuthFailuresPerAddress: 100, AuthFailuresPerClient: 2})
	victim := s.CreateClient(nil)
	wrong := &ststest.Client{Client: victim.Client, Secret: "guess"}
	form := url.Values{"grant_type": {oauth.GrantTypeClientCredentials}}
	var last *ststest.Response
	for range 4 {
		last = s.PostForm(server.TokenPath, wrong, form)
	}
	if last.Status != http.StatusTooManyRequests || !strings.Contains(string(last.Body), "for this client") {
		t.Fatalf("4th failure for one client: %d %s", last.Status, last.Body)
	}
	// Another client from the same address is not affected.
	other := s.CreateClient(nil)
	if r := s.PostForm(server.TokenPath, &ststest.Client{Client: other.Client, Secret: "guess"}, form); r.Status != http.StatusUnauthorized {
		t.Errorf("another client's failure: %d %s, want 401", r.Status, r.Body)
	}
	s.ClientCredentials(victim, nil)
}

// A flood of refusals with huge, distinct client ids from one address
// leaves a handful of small records: ids are bounded, the address's
// budget caps the distinct refusals, and the throttled ones are one kind,
// coalesced.
func TestRefusalFloodBounded(t *testing.T) {
	s := ststest.Start(t, ststest.Options{AuthFailuresPerAddress: 5})
	const n = 200
	for i := range n {
		id := strings.Repeat("A", 60000) + strconv.Itoa(i)
		form := url.Values{"grant_type": {oauth.GrantTypeClientCredentials}, "client_id": {id}, "client_secret": {"x"}}
		r := s.PostForm(server.TokenPath, nil, form)
		if r.Status != http.StatusUnauthorized && r.Status != http.StatusTooManyRequests {
			t.Fatalf("request %d: %d %s", i, r.Status, r.Body)
		}
	}
	recs := s.Audit()
	size := 0
	for _, r := range recs {
		size += len(r.ClientID) + len(r.Detail) + len(r.Remote) + len(r.RequestID)
	}
	if len(recs) > 7 || size > 4<<10 {
		t.Errorf("%d records, %d bytes of fields for %d refusals; want at most 7 records, 4 KiB", len(recs), size, n)
	}
	s.Server.Close()
	total := 0
	for _, r := range s.Audit() {
		if r.Decision == store.DecisionRefused {
			total += r.Count
		}
	}
	if total != n {
		t.Errorf("the audit accounts for %d refusals, want %d", total, n)
	}
}

// Retention deletes the records older than the setting, never a younger
// one.
func TestAuditRetention(t *testing.T) {
	s := ststest.Start(t, ststest.Options{AuditRetention: 24 * time.Hour})
	ctx := context.Background()
	now := s.Clock.Now()
	rec := func(age time.Duration, jti string) store.AuditRecord {
		return store.AuditRecord{Time: now.Add(-age), Action: "test", Decision: store.DecisionGranted, JTI: jti}
	}
	if err := s.Store.AppendAudit(ctx, []store.AuditRecord{
		rec(48*time.Hour, "old"), rec(25*time.Hour, "older-than-a-day"), rec(23*time.Hour, "young"), rec(0, "new"),
	}); err != nil {
		t.Fatal(err)
	}
	n, err := s.Server.PruneAudit(ctx)
	if err != nil || n != 2 {
		t.Fatalf("PruneAudit = %d, %v; want 2", n, err)
	}
	left := map[string]bool{}
	for _, r := range s.Audit() {
		left[r.JTI] = true
	}
	if !left["young"] || !left["new"] || left["old"] || left["older-than-a-day"] {
		t.Errorf("left after retention: %v", left)
	}
	// Two hours later the 23-hour-old record is past retention.
	s.Clock.Advance(2 * time.Hour)
	if n, err := s.Server.PruneAudit(ctx); err != nil || n != 1 {
		t.Errorf("PruneAudit two hours later = %d, %v; want 1", n, err)
	}
}
