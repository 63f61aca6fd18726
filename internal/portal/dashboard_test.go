package portal_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/clientip"
	"github.com/keybridge/sts/internal/clients"
	"github.com/keybridge/sts/internal/portal"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
)

// countingStore counts AuditStats calls; slow ones wait until their
// context ends, as a count over too large a table would.
type countingStore struct {
	store.Store
	calls atomic.Int64
	slow  atomic.Bool
}

func (s *countingStore) AuditStats(ctx context.Context, q store.AuditStatsQuery) (*store.AuditSummary, error) {
	s.calls.Add(1)
	if s.slow.Load() {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	time.Sleep(50 * time.Millisecond) // long enough for the loads to overlap
	return s.Store.AuditStats(ctx, q)
}

// TestDashboardCountsOncePerMinute: however many operators load the
// dashboard at once, the store counts the audit log once, and again only
// after a minute; a count that takes too long is abandoned, said so on
// the page, and not retried on every load, and the rest of the page is
// still shown.
func TestDashboardCountsOncePerMinute(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	pw := s.CreateOperator("admin")
	cs := &countingStore{Store: s.Store}
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	p, err := portal.New(portal.Options{
		Issuer: s.URL, Store: cs, Accounts: s.Accounts, Keys: s.Keys, Now: clock,
		Clients: &clients.Registry{Store: s.Store, Hasher: s.Hasher, Now: clock},
	})
	if err != nil {
		t.Fatal(err)
	}
	portal.SetStatsTimeout(p, 300*time.Millisecond)
	res, _ := clientip.Parse("127.0.0.1")
	srv := httptest.NewServer(res.Middleware(p))
	t.Cleanup(srv.Close)
	v := newVisitor(srv.URL, "")
	if a := v.signIn(t, "admin", pw); !signedIn(a) {
		t.Fatalf("sign in: %d", a.status)
	}

	var wg sync.WaitGroup
	pages := make([]answer, 20)
	for i := range pages {
		wg.Go(func() { pages[i], _ = v.do(http.MethodGet, "/portal/", nil) })
	}
	wg.Wait()
	for i, a := range pages {
		if a.status != http.StatusOK || !strings.Contains(a.body, `id="timeline"`) {
			t.Fatalf("load %d: %d", i, a.status)
		}
	}
	if n := cs.calls.Load(); n != 1 {
		t.Errorf("20 concurrent loads counted %d times, want 1", n)
	}
	advance(30 * time.Second)
	v.do(http.MethodGet, "/portal/", nil)
	if n := cs.calls.Load(); n != 1 {
		t.Errorf("a load 30 s later counted again (%d counts)", n)
	}
	advance(31 * time.Second)
	v.do(http.MethodGet, "/portal/", nil)
	if n := cs.calls.Load(); n != 2 {
		t.Errorf("a load a minute later: %d counts, want 2", n)
	}

	// Too slow: the page says so and shows the keys; the failure is
	// remembered for a while.
	cs.slow.Store(true)
	advance(time.Minute)
	t0 := time.Now()
	a, _ := v.do(http.MethodGet, "/portal/", nil)
	if a.status != http.StatusOK || !strings.Contains(a.body, "took longer than 300ms") || !strings.Contains(a.body, `id="keys"`) ||
		strings.Contains(a.body, `id="timeline"`) {
		t.Errorf("a count that timed out: %d\n%s", a.status, a.body)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("the page took %s", d)
	}
	v.do(http.MethodGet, "/portal/", nil)
	if n := cs.calls.Load(); n != 3 {
		t.Errorf("after a timed-out count: %d counts, want 3 (no retry at once)", n)
	}
}

// What a caller controls reaches the dashboard only as text: a claimed
// client id and an error code full of markup (refused requests are
// audited with what they claimed) are escaped, in the table and the
// charts, and an id of 64 KiB is shortened.
func TestDashboardEscapesWhatCallersChose(t *testing.T) {
	s := ststest.Start(t, ststest.Options{DirectAudit: true})
	pw := s.CreateOperator("admin")
	now := time.Now()
	hostile := []store.AuditRecord{
		{Time: now, Action: "token.client_credentials", Decision: store.DecisionRefused, ClientID: `<img src=x onerror=alert(1)>`, Error: "invalid_client", Count: 3},
		{Time: now, Action: "token.exchange", Decision: store.DecisionRefused, ClientID: strings.Repeat("A", 64<<10), Error: `"><svg onload=alert(2)>`, Count: 2},
	}
	if err := s.Store.AppendAudit(context.Background(), hostile); err != nil {
		t.Fatal(err)
	}
	p, err := portal.New(portal.Options{Issuer: s.URL, Store: s.Store, Accounts: s.Accounts, Keys: s.Keys,
		Clients: &clients.Registry{Store: s.Store, Hasher: s.Hasher, Now: time.Now}})
	if err != nil {
		t.Fatal(err)
	}
	res, _ := clientip.Parse("127.0.0.1")
	srv := httptest.NewServer(res.Middleware(p))
	t.Cleanup(srv.Close)
	v := newVisitor(srv.URL, "")
	v.signIn(t, "admin", pw)
	a, err := v.do(http.MethodGet, "/portal/", nil)
	if err != nil || a.status != http.StatusOK {
		t.Fatalf("dashboard: %d %v", a.status, err)
	}
	for _, raw := range []string{"<img src=x", "<svg onload", strings.Repeat("A", 100)} {
		if strings.Contains(a.body, raw) {
			t.Errorf("the page contains %q unescaped or whole", raw)
		}
	}
	if !strings.Contains(a.body, "&lt;img src=x onerror=alert(1)&gt;") || !strings.Contains(a.body, "&lt;svg onload=alert(2)&gt;") {
		t.Errorf("the hostile values are not shown as text:\n%s", a.body)
	}
	if len(a.body) > 64<<10 {
		t.Errorf("the page is %d bytes: the long id is not shortened", len(a.body))
	}
}
