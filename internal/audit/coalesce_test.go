package audit_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/audit"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlite"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "sts.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func list(t *testing.T, st store.Audit) []store.AuditRecord {
	t.Helper()
	recs, err := st.ListAudit(context.Background(), store.AuditFilter{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// refusal is an unauthenticated refusal of request i from remote.
func refusal(i int, remote string) store.AuditRecord {
	return store.AuditRecord{
		Time: time.Unix(1_700_000_000, int64(i)), Action: "token.client_credentials", Decision: store.DecisionRefused,
		ClientID: "nobody", Error: "invalid_client", Detail: "invalid_client: client authentication failed (unknown client)",
		RequestID: fmt.Sprint("req-", i), Remote: remote,
	}
}

func record(t *testing.T, w *audit.Writer, rec store.AuditRecord) {
	t.Helper()
	if err := w.Record(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
}

// The first refusal of a kind is written at once; its repeats in the
// window become one record with their count, carrying the last repeat's
// request id, written on Close.
func TestRepeatedRefusalsCoalesced(t *testing.T) {
	st := openStore(t)
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	w := audit.NewWriter(st, audit.Options{Now: c.now, Window: time.Minute})
	for i := range 1000 {
		// Each connection has its own port: the source is the address.
		record(t, w, refusal(i, fmt.Sprintf("192.0.2.7:%d", 1024+i)))
	}
	if recs := list(t, st); len(recs) != 1 || recs[0].RequestID != "req-0" || recs[0].Count != 1 {
		t.Fatalf("during the window: %+v, want the first refusal alone", recs)
	}
	w.Close()
	recs := list(t, st)
	if len(recs) != 2 {
		t.Fatalf("%d records after Close, want 2", len(recs))
	}
	if r := recs[0]; r.Count != 999 || r.RequestID != "req-999" || r.Remote != "192.0.2.7:2023" {
		t.Errorf("coalesced record %+v, want count 999 and the last request", r)
	}
}

// What makes refusals different kinds: the source address (IPv6 by /64),
// the client id, the error, the detail, the action.
func TestCoalescingKey(t *testing.T) {
	st := openStore(t)
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	w := audit.NewWriter(st, audit.Options{Now: c.now})
	base := refusal(0, "192.0.2.7:1")
	kinds := []func(r *store.AuditRecord){
		func(r *store.AuditRecord) {},
		func(r *store.AuditRecord) { r.Remote = "192.0.2.8:1" },
		func(r *store.AuditRecord) { r.Remote = "[2001:db8:1:2::1]:1" },
		func(r *store.AuditRecord) { r.ClientID = "other" },
		func(r *store.AuditRecord) { r.Error = "invalid_request" },
		func(r *store.AuditRecord) { r.Detail = "other" },
		func(r *store.AuditRecord) { r.Action = "token.revoke" },
		func(r *store.AuditRecord) { r.Audience = []string{"a"} },
	}
	for _, k := range kinds {
		for range 3 {
			r := base
			k(&r)
			record(t, w, r)
		}
	}
	// Same /64 as the IPv6 kind, another port: a repeat.
	r := base
	r.Remote = "[2001:db8:1:2:ffff::9]:7"
	record(t, w, r)
	if n := len(list(t, st)); n != len(kinds) {
		t.Errorf("%d records in the window, want one per kind (%d)", n, len(kinds))
	}
	w.Close()
	total := 0
	for _, r := range list(t, st) {
		total += r.Count
	}
	if total != 3*len(kinds)+1 {
		t.Errorf("records account for %d refusals, want %d", total, 3*len(kinds)+1)
	}
}

// Granted decisions are each written, however alike.
func TestGrantsNeverCoalesced(t *testing.T) {
	st := openStore(t)
	w := audit.NewWriter(st, audit.Options{})
	for range 50 {
		record(t, w, store.AuditRecord{Time: time.Now(), Action: "token.exchange", Decision: store.DecisionGranted, ClientID: "c", Remote: "192.0.2.1:1"})
	}
	if n := len(list(t, st)); n != 50 {
		t.Errorf("%d records of 50 grants", n)
	}
	w.Close()
}

// When the window ends, the next refusal of the kind writes the counted
// repeats and opens a new window with a record of its own.
func TestWindowEnds(t *testing.T) {
	st := openStore(t)
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	w := audit.NewWriter(st, audit.Options{Now: c.now, Window: time.Minute})
	defer w.Close()
	for i := range 5 {
		record(t, w, refusal(i, "192.0.2.7:1"))
	}
	c.add(time.Minute)
	record(t, w, refusal(5, "192.0.2.7:1"))
	var got []string
	for _, r := range list(t, st) {
		got = append(got, fmt.Sprint(r.RequestID, "×", r.Count))
	}
	slices.Sort(got)
	if want := []string{"req-0×1", "req-4×4", "req-5×1"}; !slices.Equal(got, want) {
		t.Errorf("records %v, want %v", got, want)
	}
}

// The counts of ended windows are written in the background too, without
// waiting for another refusal of the kind.
func TestWindowEndsInBackground(t *testing.T) {
	st := openStore(t)
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	w := audit.NewWriter(st, audit.Options{Now: c.now, Window: 4 * time.Millisecond})
	defer w.Close()
	for i := range 3 {
		record(t, w, refusal(i, "192.0.2.7:1"))
	}
	c.add(time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		recs := list(t, st)
		if len(recs) == 2 {
			if recs[0].Count != 2 {
				t.Errorf("background record count %d, want 2", recs[0].Count)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ended window's count was not written: %+v", recs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Memory is bounded: when the table of kinds is full, every pending count
// is written and the table starts afresh; nothing is lost.
func TestPendingTableBounded(t *testing.T) {
	st := openStore(t)
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	w := audit.NewWriter(st, audit.Options{Now: c.now, MaxPending: 4})
	const kinds, repeats = 10, 3
	for k := range kinds {
		for i := range repeats {
			r := refusal(k*repeats+i, fmt.Sprintf("192.0.2.%d:1", k))
			record(t, w, r)
		}
	}
	pending := 0
	for _, r := range list(t, st) {
		pending += r.Count
	}
	// At most 4 kinds' repeats (2 each) are still in memory.
	if pending < kinds*repeats-4*(repeats-1) {
		t.Errorf("only %d of %d refusals written with a table of 4 kinds", pending, kinds*repeats)
	}
	w.Close()
	total := 0
	for _, r := range list(t, st) {
		total += r.Count
	}
	if total != kinds*repeats {
		t.Errorf("records account for %d refusals, want %d", total, kinds*repeats)
	}
}

// Close waits for concurrent refusals: each is written or counted, and
// the counts are written.
func TestCloseFlushesConcurrentRefusals(t *testing.T) {
	st := openStore(t)
	w := audit.NewWriter(st, audit.Options{})
	const n = 500
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := 0
	for i := range n {
		wg.Go(func() {
			if w.Record(context.Background(), refusal(i, fmt.Sprintf("192.0.2.%d:1", i%3))) == nil {
				mu.Lock()
				acked++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	w.Close()
	total := 0
	for _, r := range list(t, st) {
		total += r.Count
	}
	if total != acked || acked != n {
		t.Errorf("%d refusals acknowledged, %d recorded, want %d", acked, total, n)
	}
}

// Flush writes the pending counts at once, and the window starts again.
func TestFlush(t *testing.T) {
	st := openStore(t)
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	w := audit.NewWriter(st, audit.Options{Now: c.now, Window: time.Hour})
	defer w.Close()
	for i := range 5 {
		record(t, w, refusal(i, "192.0.2.1:1"))
	}
	if recs := list(t, st); len(recs) != 1 {
		t.Fatalf("before Flush: %d records, want the first alone", len(recs))
	}
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	recs := list(t, st)
	if len(recs) != 2 || recs[0].Count+recs[1].Count != 5 {
		t.Fatalf("after Flush: %+v, want two records counting 5", recs)
	}
	record(t, w, refusal(5, "192.0.2.1:1")) // a new window: written at once
	if recs := list(t, st); len(recs) != 3 {
		t.Errorf("after Flush, the next refusal: %d records, want 3", len(recs))
	}
	w.Close()
	if err := w.Flush(context.Background()); err != audit.ErrClosed {
		t.Errorf("Flush after Close: %v", err)
	}
}

// TestNewKindsBudget (review of issue 8): a caller with many addresses (a
// whole IPv6 /48) cannot write a record per address: past MaxKinds new
// kinds a window, refusals are counted in one record per action and
// error, without what the caller chose; nothing is lost from the counts.
func TestNewKindsBudget(t *testing.T) {
	st := openStore(t)
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	w := audit.NewWriter(st, audit.Options{Now: c.now, Window: time.Hour, MaxKinds: 10})
	defer w.Close()
	const n = 500
	for i := range n {
		rec := refusal(i, fmt.Sprintf("[2001:db8:0:%x::1]:443", i))
		rec.ClientID = fmt.Sprint("made-up-", i)
		record(t, w, rec)
	}
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	recs := list(t, st)
	total, overflowed := 0, 0
	for _, r := range recs {
		total += max(r.Count, 1)
		if r.Detail == audit.OverflowDetail {
			overflowed += max(r.Count, 1)
			if r.ClientID != "" || r.Remote != "" || r.Error != "invalid_client" {
				t.Errorf("overflow record keeps caller input: %+v", r)
			}
		}
	}
	if total != n || overflowed != n-10 || len(recs) > 12 {
		t.Errorf("%d records counting %d refusals (%d past the budget), want ≤ 12 counting %d (%d)", len(recs), total, overflowed, n, n-10)
	}
	// The next window has a budget again.
	c.add(time.Hour)
	record(t, w, refusal(n, "[2001:db8:1::1]:443"))
	if recs := list(t, st); recs[0].Remote != "[2001:db8:1::1]:443" {
		t.Errorf("a refusal in the next window: %+v", recs[0])
	}
}
