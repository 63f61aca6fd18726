package storetest

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/keybridge/sts/internal/store"
)

var auditTests = []test{
	{"AppendList", testAuditAppendList},
	{"Empty", testAuditEmpty},
	{"Filters", testAuditFilters},
	{"Limit", testAuditLimit},
	{"AppendConcurrent", testAuditAppendConcurrent},
	{"ActionPrefix", testAuditActionPrefix},
	{"DeleteBefore", testAuditDeleteBefore},
	{"DeleteBeforeBatches", testAuditDeleteBeforeBatches},
	{"FieldCaps", testAuditFieldCaps},
	{"Checkpoint", testAuditCheckpoint},
	{"DeleteOutOfOrder", testAuditDeleteOutOfOrder},
	{"Visit", testAuditVisit},
	{"Chain", testAuditChain},
	{"ChainRetention", testAuditChainRetention},
	{"ChainCoalesced", testAuditChainCoalesced},
	{"ChainVerifyConcurrent", testAuditChainVerifyConcurrent},
	{"Bytes", testAuditBytes},
}

// AppendAuditCheckpoint stores the records and the checkpoint together,
// and a checkpoint alone (no records) too.
func testAuditCheckpoint(t *testing.T, s store.Store) {
	a, ok := s.(store.AuditCheckpointer)
	if !ok {
		t.Skip("the store does not implement the optional store.AuditCheckpointer")
	}
	ctx := t.Context()
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	recs := []store.AuditRecord{sampleAudit(0, base), sampleAudit(1, base.Add(time.Second))}
	cp := &store.Setting{Name: "audit.journal.test", Value: "1:4096", UpdatedAt: base}
	if err := a.AppendAuditCheckpoint(ctx, recs, cp); err != nil {
		t.Fatal(err)
	}
	got, err := s.ListAudit(ctx, store.AuditFilter{})
	if err != nil || len(got) != 2 || got[0].JTI != "jti-001" {
		t.Fatalf("ListAudit after AppendAuditCheckpoint = %v, %v; want the two records", got, err)
	}
	if st, err := s.GetSetting(ctx, cp.Name); err != nil || st.Value != "1:4096" {
		t.Fatalf("checkpoint = %+v, %v; want 1:4096", st, err)
	}
	if err := a.AppendAuditCheckpoint(ctx, nil, &store.Setting{Name: cp.Name, Value: "2:0", UpdatedAt: base}); err != nil {
		t.Fatal(err)
	}
	if st, err := s.GetSetting(ctx, cp.Name); err != nil || st.Value != "2:0" {
		t.Fatalf("checkpoint after an empty append = %+v, %v; want 2:0", st, err)
	}
}

func sampleAudit(i int, t time.Time) store.AuditRecord {
	return store.AuditRecord{
		Time:      t,
		Action:    "token.exchange",
		Decision:  store.DecisionGranted,
		ClientID:  "client-1",
		AccountID: "acct-1",
		Subject:   "alice",
		Actor:     "svc-a",
		Audience:  []string{"https://api.example.com", "urn:example:billing"},
		JTI:       fmt.Sprintf("jti-%03d", i),
		Error:     "",
		Detail:    "granted by rule 3",
		RequestID: fmt.Sprintf("req-%03d", i),
		Remote:    "192.0.2.1:4711",
		Count:     1 + i%3,
	}
}

// normAudit also clears the ID and the place in the chain, which the
// store assigns.
func normAudit(rs []store.AuditRecord) []store.AuditRecord {
	var out []store.AuditRecord
	for _, r := range rs {
		r.ID, r.Chain, r.Seq, r.Hash = 0, "", 0, ""
		r.Time = normTime(r.Time)
		r.Audience = normList(r.Audience)
		r.Count = max(r.Count, 1) // a record stands for one decision at least
		out = append(out, r)
	}
	return out
}

// jtis lists the records' JTIs in order, which identify them in this suite.
func jtis(rs []store.AuditRecord) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.JTI)
	}
	return out
}

func listAudit(t *testing.T, s store.Store, f store.AuditFilter) []store.AuditRecord {
	t.Helper()
	rs, err := s.ListAudit(t.Context(), f)
	must(t, err)
	return rs
}

func testAuditAppendList(t *testing.T, s store.Store) {
	ctx := t.Context()
	r0, r1, r2 := sampleAudit(0, at(0)), sampleAudit(1, at(time.Second)), sampleAudit(2, at(2*time.Second))
	r1.Decision, r1.Error, r1.Detail = store.DecisionRefused, "invalid_target", "audience not allowed"
	r2.Audience, r2.Actor, r2.AccountID = nil, "", ""
	// Appended out of time order, listed newest first.
	must(t, s.AppendAudit(ctx, []store.AuditRecord{r1, r0}))
	must(t, s.AppendAudit(ctx, []store.AuditRecord{r2}))
	got := listAudit(t, s, store.AuditFilter{})
	equal(t, "ListAudit", got, []store.AuditRecord{r2, r1, r0}, normAudit)

	ids := map[int64]bool{}
	for _, r := range got {
		if r.ID == 0 || ids[r.ID] {
			t.Errorf("record %s has ID %d, want a distinct non-zero ID", r.JTI, r.ID)
		}
		ids[r.ID] = true
	}
	// Later appends get greater IDs.
	if len(got) == 3 && (got[0].ID <= got[1].ID || got[1].ID >= got[2].ID) {
		t.Errorf("IDs in append order r1, r0, r2 = %d, %d, %d, want increasing", got[1].ID, got[2].ID, got[0].ID)
	}
}

func testAuditEmpty(t *testing.T, s store.Store) {
	must(t, s.AppendAudit(t.Context(), nil))
	if got := listAudit(t, s, store.AuditFilter{}); len(got) != 0 {
		t.Fatalf("ListAudit on an empty store = %d records", len(got))
	}
}

// testAuditFilters checks each filter, alone and combined, against a
// reference: Since is inclusive and Until exclusive.
func testAuditFilters(t *testing.T, s store.Store) {
	var recs []store.AuditRecord
	for i := range 12 {
		r := sampleAudit(i, at(time.Duration(i)*time.Minute))
		r.ClientID = []string{"client-a", "client-b", "client-c"}[i%3]
		r.Action = []string{"token.exchange", "token.revoke"}[i%2]
		r.AccountID = []string{"acct-a", "acct-b", "", "acct-a"}[i%4]
		recs = append(recs, r)
	}
	// Appended shuffled, in two batches.
	shuffled := slices.Clone(recs)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) {
		shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
	})
	must(t, s.AppendAudit(t.Context(), shuffled[:5]))
	must(t, s.AppendAudit(t.Context(), shuffled[5:]))

	reference := func(f store.AuditFilter) []string {
		var out []store.AuditRecord
		for _, r := range recs {
			if (f.ClientID == "" || r.ClientID == f.ClientID) &&
				(f.AccountID == "" || r.AccountID == f.AccountID) &&
				actionMatches(f.Action, r.Action) &&
				(f.Since.IsZero() || !r.Time.Before(f.Since)) &&
				(f.Until.IsZero() || r.Time.Before(f.Until)) {
				out = append(out, r)
			}
		}
		slices.SortFunc(out, func(a, b store.AuditRecord) int { return b.Time.Compare(a.Time) })
		limit := cmp.Or(f.Limit, 100)
		return jtis(out[:min(limit, len(out))])
	}
	for _, f := range []store.AuditFilter{
		{},
		{ClientID: "client-a"},
		{ClientID: "absent"},
		{Action: "token.revoke"},
		{Since: at(4 * time.Minute)},
		{Until: at(4 * time.Minute)},
		{Since: at(3 * time.Minute), Until: at(7 * time.Minute)},
		{Since: at(3*time.Minute + time.Second), Until: at(7*time.Minute + time.Second)},
		{ClientID: "client-b", Action: "token.exchange"},
		{ClientID: "client-c", Action: "token.exchange", Since: at(2 * time.Minute), Until: at(9 * time.Minute)},
		{Limit: 3},
		{ClientID: "client-a", Limit: 2},
		{Action: "token.exchange", Since: at(time.Minute), Limit: 4},
		{Action: "token"},
		{Action: "token", Since: at(5 * time.Minute), Limit: 3},
		{Action: "tok"},
		{AccountID: "acct-a"},
		{AccountID: "acct-b", Action: "token.revoke"},
		{AccountID: "acct-a", ClientID: "client-b", Since: at(time.Minute), Until: at(10 * time.Minute)},
		{AccountID: "absent"},
	} {
		got, want := jtis(listAudit(t, s, f)), reference(f)
		if !slices.Equal(got, want) {
			t.Errorf("ListAudit(%+v) = %v, want %v", f, got, want)
		}
	}
}

func testAuditLimit(t *testing.T, s store.Store) {
	var recs []store.AuditRecord
	for i := range 150 {
		recs = append(recs, sampleAudit(i, at(time.Duration(i)*time.Second)))
	}
	must(t, s.AppendAudit(t.Context(), recs))
	for _, tc := range []struct {
		limit, want int
	}{
		{0, 100}, // the default
		{1, 1},
		{120, 120},
		{500, 150},
	} {
		got := listAudit(t, s, store.AuditFilter{Limit: tc.limit})
		if len(got) != tc.want {
			t.Errorf("ListAudit with Limit %d = %d records, want %d", tc.limit, len(got), tc.want)
			continue
		}
		// The newest ones.
		if len(got) > 0 && (got[0].JTI != "jti-149" || got[len(got)-1].JTI != fmt.Sprintf("jti-%03d", 150-tc.want)) {
			t.Errorf("ListAudit with Limit %d returned %s..%s, want the newest", tc.limit, got[0].JTI, got[len(got)-1].JTI)
		}
	}
}

// testAuditAppendConcurrent appends batches from several goroutines, as
// more than one group-commit writer might.
func testAuditAppendConcurrent(t *testing.T, s store.Store) {
	const batch = 10
	errs := make([]error, concurrency)
	var wg sync.WaitGroup
	for g := range concurrency {
		wg.Go(func() {
			var recs []store.AuditRecord
			for i := range batch {
				recs = append(recs, sampleAudit(g*batch+i, at(time.Duration(g*batch+i)*time.Millisecond)))
			}
			errs[g] = s.AppendAudit(t.Context(), recs)
		})
	}
	wg.Wait()
	for g, err := range errs {
		if err != nil {
			t.Fatalf("AppendAudit in goroutine %d: %v", g, err)
		}
	}
	// Appends that raced for the chain's head left it whole.
	mustVerify(t, s, concurrency*batch)
	got := listAudit(t, s, store.AuditFilter{Limit: concurrency * batch})
	if len(got) != concurrency*batch {
		t.Fatalf("ListAudit = %d records, want %d", len(got), concurrency*batch)
	}
	ids := map[int64]bool{}
	for i, r := range got {
		if want := fmt.Sprintf("jti-%03d", concurrency*batch-1-i); r.JTI != want {
			t.Fatalf("record %d is %s, want %s", i, r.JTI, want)
		}
		if ids[r.ID] {
			t.Fatalf("ID %d assigned twice", r.ID)
		}
		ids[r.ID] = true
	}
}

// actionMatches is the reference rule of AuditFilter.Action: the action
// itself, or a prefix followed by a dot.
func actionMatches(filter, action string) bool {
	return filter == "" || action == filter || strings.HasPrefix(action, filter+".")
}

// testAuditActionPrefix checks that Action matches whole dot-separated
// segments only, case-sensitively, with no character taken as a wildcard.
func testAuditActionPrefix(t *testing.T, s store.Store) {
	actions := []string{
		"client", "client.create", "client.secret.rotate", "clients",
		"clients.list", "client-x.create", "clientX.create", "CLIENT.create",
		"client_.create", "client%.create", "token.exchange", "registration.client.create",
		"client.", "x.client.y",
	}
	var recs []store.AuditRecord
	for i, a := range actions {
		r := sampleAudit(i, at(time.Duration(i)*time.Second))
		r.Action = a
		recs = append(recs, r)
	}
	must(t, s.AppendAudit(t.Context(), recs))
	for _, filter := range []string{
		"client", "client.secret", "client.create", "clients", "CLIENT", "Client",
		"client_", "client%", "client.", "clie", "registration", "token.exchange",
		"token.exchange.more", "c", "x", "%", "_",
	} {
		var want []string
		for i := len(recs) - 1; i >= 0; i-- {
			if actionMatches(filter, recs[i].Action) {
				want = append(want, recs[i].Action)
			}
		}
		var got []string
		for _, r := range listAudit(t, s, store.AuditFilter{Action: filter}) {
			got = append(got, r.Action)
		}
		if !slices.Equal(got, want) {
			t.Errorf("ListAudit(Action %q) = %q, want %q", filter, got, want)
		}
	}
}

// testAuditDeleteBefore checks retention: every record older than the
// cut-off goes, every record at or after it stays, records appended in
// the order of their times (as a writer appends them, but for the few
// milliseconds of its queue: see testAuditDeleteOutOfOrder).
func testAuditDeleteBefore(t *testing.T, s store.Store) {
	ctx := t.Context()
	var recs []store.AuditRecord
	for i := range 20 {
		recs = append(recs, sampleAudit(i, at(time.Duration(i)*time.Minute)))
	}
	must(t, s.AppendAudit(ctx, recs[:5]))
	must(t, s.AppendAudit(ctx, recs[5:]))

	n, err := s.DeleteAuditBefore(ctx, at(-time.Hour))
	must(t, err)
	if n != 0 {
		t.Errorf("DeleteAuditBefore before every record deleted %d", n)
	}
	// A cut-off between two microseconds of a record's time keeps it.
	n, err = s.DeleteAuditBefore(ctx, at(7*time.Minute))
	must(t, err)
	if n != 7 {
		t.Errorf("DeleteAuditBefore(7 min) deleted %d, want 7", n)
	}
	var want []string
	for i := 19; i >= 7; i-- {
		want = append(want, recs[i].JTI)
	}
	if got := jtis(listAudit(t, s, store.AuditFilter{})); !slices.Equal(got, want) {
		t.Errorf("after DeleteAuditBefore(7 min): %v, want %v", got, want)
	}
	// Again: nothing more to delete.
	n, err = s.DeleteAuditBefore(ctx, at(7*time.Minute))
	must(t, err)
	if n != 0 {
		t.Errorf("second DeleteAuditBefore(7 min) deleted %d", n)
	}
	// Everything; then the table still takes records, listed after.
	n, err = s.DeleteAuditBefore(ctx, at(time.Hour))
	must(t, err)
	if n != 13 {
		t.Errorf("DeleteAuditBefore(1 h) deleted %d, want 13", n)
	}
	must(t, s.AppendAudit(ctx, []store.AuditRecord{sampleAudit(99, at(2*time.Hour))}))
	if got := jtis(listAudit(t, s, store.AuditFilter{})); !slices.Equal(got, []string{"jti-099"}) {
		t.Errorf("after emptying and appending: %v", got)
	}
}

// testAuditDeleteBeforeBatches deletes more records than one batch holds,
// with records of the same time on both sides of the cut-off's batches.
func testAuditDeleteBeforeBatches(t *testing.T, s store.Store) {
	ctx := t.Context()
	const old, young = 2345, 30
	recs := make([]store.AuditRecord, 0, old+young)
	for i := range old {
		recs = append(recs, sampleAudit(i, at(time.Duration(i%50)*time.Millisecond)))
	}
	for i := range young {
		recs = append(recs, sampleAudit(old+i, at(time.Second+time.Duration(i)*time.Millisecond)))
	}
	must(t, s.AppendAudit(ctx, recs))
	n, err := s.DeleteAuditBefore(ctx, at(time.Second))
	must(t, err)
	if n != old {
		t.Errorf("DeleteAuditBefore deleted %d, want %d", n, old)
	}
	got := listAudit(t, s, store.AuditFilter{Limit: old + young})
	if len(got) != young {
		t.Fatalf("%d records left, want %d", len(got), young)
	}
	for _, r := range got {
		if r.Time.Before(normTime(at(time.Second))) {
			t.Errorf("record %s of %v survived", r.JTI, r.Time)
		}
	}
}

// testAuditFieldCaps appends a record whose every field is oversized
// straight to the store, as a writer that bypasses the audit package
// would: the backend stores it within the caps, a long id truncated with a
// hash so that two long ids sharing a prefix stay distinct.
func testAuditFieldCaps(t *testing.T, s store.Store) {
	ctx := t.Context()
	long := strings.Repeat("x", 65000)
	big := store.AuditRecord{
		Time: at(0), Action: long, Decision: store.DecisionRefused, ClientID: long + "1",
		AccountID: long, Subject: long, Actor: long, JTI: long, Error: long,
		Detail: strings.Repeat("é", 40000), RequestID: long, Remote: long,
	}
	for range 40 {
		big.Audience = append(big.Audience, long)
	}
	other := big
	other.ClientID = long + "2"
	other.Time = at(time.Second)
	must(t, s.AppendAudit(ctx, []store.AuditRecord{big, other}))
	got := listAudit(t, s, store.AuditFilter{})
	if len(got) != 2 {
		t.Fatalf("%d records, want 2", len(got))
	}
	for _, r := range got {
		size := len(r.Action) + len(r.Decision) + len(r.ClientID) + len(r.AccountID) + len(r.Subject) +
			len(r.Actor) + len(r.JTI) + len(r.Error) + len(r.Detail) + len(r.RequestID) + len(r.Remote)
		for _, a := range r.Audience {
			size += len(a)
		}
		if size > 8<<10 {
			t.Errorf("stored record holds %d bytes of fields, want at most 8 KiB", size)
		}
		if !utf8.ValidString(r.Detail) {
			t.Errorf("detail cut inside a UTF-8 sequence")
		}
		if r.Count != 1 {
			t.Errorf("count %d, want 1", r.Count)
		}
	}
	if got[0].ClientID == got[1].ClientID {
		t.Errorf("two long client ids stored alike: %q", got[0].ClientID)
	}
	// Filtering by the stored form finds the record.
	if f := listAudit(t, s, store.AuditFilter{ClientID: got[1].ClientID}); len(f) != 1 || f[0].Time.After(at(time.Millisecond)) {
		t.Errorf("filter by stored client id found %d records", len(f))
	}
}
