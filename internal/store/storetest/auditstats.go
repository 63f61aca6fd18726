package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/store"
)

var auditStatsTests = []test{
	{"Counts", testAuditStatsCounts},
	{"Empty", testAuditStatsEmpty},
}

// tokenActions are the actions the stats tests count.
var tokenActions = []string{"token.exchange", "token.client_credentials"}

// AuditStats counts decisions (a coalesced record as its count) by
// bucket, reason and client, within the window and of the given actions
// only.
func testAuditStatsCounts(t *testing.T, s store.Store) {
	ctx := t.Context()
	// The window [w0, w0+10m) in minute buckets; w0 is on a minute.
	w0 := time.Date(2030, 3, 4, 5, 0, 0, 0, time.UTC)
	rec := func(d time.Duration, action, decision, client, errCode string, count int) store.AuditRecord {
		return store.AuditRecord{Time: w0.Add(d), Action: action, Decision: decision, ClientID: client, Error: errCode, Count: count}
	}
	g, r := store.DecisionGranted, store.DecisionRefused
	recs := []store.AuditRecord{
		rec(-time.Microsecond, "token.exchange", g, "a", "", 1), // before the window
		rec(0, "token.exchange", g, "a", "", 1),                 // first instant: in
		rec(10*time.Second, "token.exchange", g, "b", "", 1),
		rec(59*time.Second, "token.exchange", r, "a", "invalid_grant", 5), // coalesced: counts 5
		rec(60*time.Second, "token.client_credentials", g, "c", "", 1),
		rec(3*time.Minute, "token.exchange", r, "b", "invalid_target", 1),
		rec(3*time.Minute+time.Second, "token.exchange", r, "b", "invalid_grant", 1),
		rec(4*time.Minute, "token.revoke", g, "a", "", 1),                  // another action
		rec(5*time.Minute, "client.create", g, "z", "", 1),                 // another action
		rec(10*time.Minute, "token.exchange", g, "a", "", 1),               // Until: out
		rec(9*time.Minute+59*time.Second, "token.exchange", g, "c", "", 2), // last bucket
	}
	if err := s.AppendAudit(ctx, recs); err != nil {
		t.Fatal(err)
	}
	got, err := s.AuditStats(ctx, store.AuditStatsQuery{
		Since: w0, Until: w0.Add(10 * time.Minute), Bucket: time.Minute,
		Actions: tokenActions, TopReasons: 5, TopClients: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	wantBuckets := []store.AuditBucket{
		{Start: w0, Granted: 2, Refused: 5},
		{Start: w0.Add(time.Minute), Granted: 1},
		{Start: w0.Add(3 * time.Minute), Refused: 2},
		{Start: w0.Add(9 * time.Minute), Granted: 2},
	}
	if !slices.EqualFunc(got.Buckets, wantBuckets, func(a, b store.AuditBucket) bool {
		return a.Start.Equal(b.Start) && a.Granted == b.Granted && a.Refused == b.Refused
	}) {
		t.Errorf("buckets = %+v, want %+v", got.Buckets, wantBuckets)
	}
	wantReasons := []store.AuditCount{{Key: "invalid_grant", Refused: 6}, {Key: "invalid_target", Refused: 1}}
	if !slices.Equal(got.Reasons, wantReasons) {
		t.Errorf("reasons = %+v, want %+v", got.Reasons, wantReasons)
	}
	// a: 1 granted + 5 refused = 6; c: 1 + 2 = 3; b: 1 granted + 2
	// refused = 3; ties by client id, and only the top 2.
	wantClients := []store.AuditCount{{Key: "a", Granted: 1, Refused: 5}, {Key: "b", Granted: 1, Refused: 2}}
	if !slices.Equal(got.Clients, wantClients) {
		t.Errorf("clients = %+v, want %+v", got.Clients, wantClients)
	}

	// Hour buckets start on the hour, whatever Since is.
	got, err = s.AuditStats(ctx, store.AuditStatsQuery{
		Since: w0.Add(-30 * time.Minute), Until: w0.Add(time.Hour), Bucket: time.Hour, Actions: tokenActions,
	})
	if err != nil {
		t.Fatal(err)
	}
	// The record 1µs before w0 is in the hour before; the one at w0+10m
	// is in the window now.
	wantBuckets = []store.AuditBucket{{Start: w0.Add(-time.Hour), Granted: 1}, {Start: w0, Granted: 6, Refused: 7}}
	if !slices.EqualFunc(got.Buckets, wantBuckets, func(a, b store.AuditBucket) bool {
		return a.Start.Equal(b.Start) && a.Granted == b.Granted && a.Refused == b.Refused
	}) || got.Reasons != nil || got.Clients != nil {
		t.Errorf("hour buckets = %+v, reasons %v, clients %v; want %+v and none", got.Buckets, got.Reasons, got.Clients, wantBuckets)
	}
}

// An empty log, an empty window, or no actions count nothing; a bucket
// under a second is refused.
func testAuditStatsEmpty(t *testing.T, s store.Store) {
	ctx := t.Context()
	q := store.AuditStatsQuery{Since: base, Until: base.Add(time.Hour), Bucket: time.Minute, Actions: tokenActions, TopReasons: 3, TopClients: 3}
	got, err := s.AuditStats(ctx, q)
	if err != nil || len(got.Buckets)+len(got.Reasons)+len(got.Clients) != 0 {
		t.Fatalf("AuditStats of an empty log = %+v, %v", got, err)
	}
	if err := s.AppendAudit(ctx, []store.AuditRecord{{Time: base, Action: "token.exchange", Decision: store.DecisionGranted, ClientID: "a"}}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []store.AuditStatsQuery{
		{Since: base, Until: base, Bucket: time.Minute, Actions: tokenActions},
		{Since: base, Until: base.Add(time.Hour), Bucket: time.Minute},
	} {
		if got, err := s.AuditStats(ctx, q); err != nil || len(got.Buckets) != 0 {
			t.Errorf("AuditStats(%+v) = %+v, %v; want nothing", q, got, err)
		}
	}
	q.Bucket = time.Millisecond
	if _, err := s.AuditStats(ctx, q); err == nil {
		t.Error("a millisecond bucket was accepted")
	}
}

// AuditRowsEnv names the number of audit records TestAuditStatsCost of
// each backend seeds (such as 1000000); the test is skipped when it is
// unset, as seeding takes a while.
const AuditRowsEnv = "STS_TEST_AUDIT_ROWS"

// AuditStatsCost measures the dashboard's query on a large audit table:
// seed inserts n token-exchange records spread evenly over the 24 hours
// before now (one in 50 refused with invalid_grant, 20 clients), by SQL
// of the backend (seed gets n, the first time and the step between
// records, in the stored unit, microseconds). Then AuditStats over those
// 24 hours must count them all, and its time is logged. It fails if the
// query takes longer than limit, the time the portal gives it.
func AuditStatsCost(t *testing.T, s store.Store, n int, limit time.Duration, seed func(n int, start, step int64) error) {
	now := time.Now().UTC().Truncate(time.Minute)
	since := now.Add(-24 * time.Hour)
	step := (24 * time.Hour).Microseconds() / int64(n)
	t0 := time.Now()
	if err := seed(n, since.UnixMicro(), step); err != nil {
		t.Fatal(err)
	}
	t.Logf("seeded %d audit records in %s", n, time.Since(t0).Round(time.Millisecond))
	q := store.AuditStatsQuery{Since: since, Until: now.Add(time.Minute), Bucket: time.Minute,
		Actions: []string{"token", "token.exchange"}, TopReasons: 10, TopClients: 10}
	for run := range 3 {
		t0 = time.Now()
		got, err := s.AuditStats(t.Context(), q)
		d := time.Since(t0)
		if err != nil {
			t.Fatal(err)
		}
		var granted, refused int64
		for _, b := range got.Buckets {
			granted += b.Granted
			refused += b.Refused
		}
		wantRefused := int64((n + 49) / 50)
		if granted+refused != int64(n) || refused != wantRefused || len(got.Buckets) != 1440 || len(got.Clients) != 10 ||
			len(got.Reasons) != 1 || got.Reasons[0].Refused != wantRefused {
			t.Fatalf("AuditStats counted %d granted, %d refused in %d buckets, %d clients, reasons %v; want %d records, %d refused, 1440 buckets",
				granted, refused, len(got.Buckets), len(got.Clients), got.Reasons, n, wantRefused)
		}
		t.Logf("run %d: AuditStats over %d records (24 h, 1440 buckets, top 10 clients and reasons) took %s", run+1, n, d.Round(time.Millisecond))
		if d > limit {
			t.Errorf("AuditStats took %s, more than the %s the portal gives it", d, limit)
		}
	}
}
