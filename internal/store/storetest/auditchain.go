package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/audit"
	"github.com/keybridge/sts/internal/store"
)

// verifyAudit runs audit.Verify with small pages, so that page boundaries
// are crossed, and fails on an error.
func verifyAudit(t *testing.T, s store.Audit) *audit.Report {
	t.Helper()
	rep, err := audit.Verify(t.Context(), s, audit.VerifyOptions{PageSize: 7})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return rep
}

// mustVerify fails unless the audit trail verifies with want records
// checked.
func mustVerify(t *testing.T, s store.Audit, want int64) *audit.Report {
	t.Helper()
	rep := verifyAudit(t, s)
	if !rep.OK() {
		t.Fatalf("Verify: %v, want no problem", rep.Problems())
	}
	if got := rep.Records(); got != want {
		t.Fatalf("Verify checked %d records, want %d", got, want)
	}
	return rep
}

// testAuditChain appends in batches and checks that the records form one
// chain: consecutive seqs from 1, each hash over its predecessor's, the
// head the last record, and that Verify agrees.
func testAuditChain(t *testing.T, s store.Store) {
	ctx := t.Context()
	var recs []store.AuditRecord
	for i := range 23 {
		recs = append(recs, sampleAudit(i, at(time.Duration(i)*time.Second)))
	}
	// What is hashed is what is stored: an audience entry that is not
	// UTF-8 (escaped by audit.Bound) and an oversized field (cut) still
	// verify.
	recs[5].Audience = []string{"bad \xff utf-8"}
	recs[6].Detail = strings.Repeat("d", 10000)
	must(t, s.AppendAudit(ctx, recs[:10]))
	must(t, s.AppendAudit(ctx, recs[10:11]))
	must(t, s.AppendAudit(ctx, recs[11:]))
	chains, err := s.AuditChains(ctx)
	must(t, err)
	if len(chains) != 1 || chains[0].Name == "" || chains[0].Seq != 23 || chains[0].Version != audit.ChainVersion {
		t.Fatalf("AuditChains = %+v, want one chain of head seq 23", chains)
	}
	c := chains[0]
	got, err := s.AuditChainRecords(ctx, c.Name, 0, 100)
	must(t, err)
	prev := ""
	for i, r := range got {
		if r.Chain != c.Name || r.Seq != int64(i+1) || r.JTI != recs[i].JTI || r.ID == 0 {
			t.Fatalf("record %d: chain %q seq %d jti %s, want %q %d %s", i, r.Chain, r.Seq, r.JTI, c.Name, i+1, recs[i].JTI)
		}
		if h := audit.ChainHash(prev, &r); r.Hash != h || len(h) != 64 {
			t.Fatalf("record %d: hash %s, want %s", i, r.Hash, h)
		}
		prev = r.Hash
	}
	if len(got) != 23 || c.Hash != prev {
		t.Fatalf("%d records, head hash %s, want 23 and %s", len(got), c.Hash, prev)
	}
	// Pages: after a seq, up to a limit.
	if page, err := s.AuditChainRecords(ctx, c.Name, 20, 2); err != nil || len(page) != 2 || page[0].Seq != 21 {
		t.Fatalf("AuditChainRecords(after 20, 2) = %d records, %v", len(page), err)
	}
	// ListAudit shows the chain fields too.
	if l := listAudit(t, s, store.AuditFilter{Limit: 1}); len(l) != 1 || l[0].Seq != 23 || l[0].Hash != c.Hash {
		t.Fatalf("ListAudit's newest = %+v, want seq 23 of hash %s", l, c.Hash)
	}
	rep := mustVerify(t, s, 23)
	if rep.Legacy != 0 || rep.Stray != nil {
		t.Errorf("Verify: legacy %d, stray %v; want none", rep.Legacy, rep.Stray)
	}
	// A tail check reads only the tail.
	tail, err := audit.Verify(ctx, s, audit.VerifyOptions{Tail: 5})
	must(t, err)
	if !tail.OK() || tail.Records() != 6 {
		t.Errorf("Verify(Tail 5) = ok %v, %d records; want ok, 6 (the tail and its predecessor)", tail.OK(), tail.Records())
	}
}

// testAuditChainRetention prunes the oldest records: the chain is anchored
// on the last pruned and still verifies, with new records appended after,
// and when every record is gone.
func testAuditChainRetention(t *testing.T, s store.Store) {
	ctx := t.Context()
	var recs []store.AuditRecord
	for i := range 30 {
		recs = append(recs, sampleAudit(i, at(time.Duration(i)*time.Minute)))
	}
	must(t, s.AppendAudit(ctx, recs[:17]))
	must(t, s.AppendAudit(ctx, recs[17:]))
	n, err := s.DeleteAuditBefore(ctx, at(10*time.Minute))
	must(t, err)
	if n != 10 {
		t.Fatalf("DeleteAuditBefore(10 min) deleted %d, want 10", n)
	}
	chains, err := s.AuditChains(ctx)
	must(t, err)
	if len(chains) != 1 || chains[0].AnchorSeq != 10 || chains[0].AnchorHash == "" {
		t.Fatalf("chain after retention = %+v, want anchored at seq 10", chains)
	}
	mustVerify(t, s, 20)
	must(t, s.AppendAudit(ctx, []store.AuditRecord{sampleAudit(30, at(40*time.Minute))}))
	mustVerify(t, s, 21)
	n, err = s.DeleteAuditBefore(ctx, at(time.Hour))
	must(t, err)
	if n != 21 {
		t.Fatalf("DeleteAuditBefore(1 h) deleted %d, want 21", n)
	}
	// Empty, and its last append before the cut-off: the chain is
	// retired, and starts afresh with the next append.
	if chains, err := s.AuditChains(ctx); err != nil || len(chains) != 0 {
		t.Fatalf("chains after pruning every record = %+v, %v; want the chain retired", chains, err)
	}
	if _, err := s.AuditChain(ctx, chains[0].Name); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("AuditChain of a retired chain: %v, want ErrNotFound", err)
	}
	mustVerify(t, s, 0)
	must(t, s.AppendAudit(ctx, []store.AuditRecord{sampleAudit(31, at(2*time.Hour))}))
	rep := mustVerify(t, s, 1)
	if c := rep.Chains[0].Chain; c.Seq != 1 || c.AnchorSeq != 0 {
		t.Fatalf("the chain after retirement = %+v, want it afresh at seq 1", c)
	}
}

// testAuditDeleteOutOfOrder: a record older than the cut-off that follows
// a younger one in its chain stays until the younger one goes; a record
// at or after the cut-off never goes.
func testAuditDeleteOutOfOrder(t *testing.T, s store.Store) {
	ctx := t.Context()
	r1, r10, r2 := sampleAudit(1, at(time.Minute)), sampleAudit(10, at(10*time.Minute)), sampleAudit(2, at(2*time.Minute))
	must(t, s.AppendAudit(ctx, []store.AuditRecord{r1, r10, r2}))
	n, err := s.DeleteAuditBefore(ctx, at(5*time.Minute))
	must(t, err)
	if got := jtis(listAudit(t, s, store.AuditFilter{})); n != 1 || !slices.Equal(got, []string{"jti-010", "jti-002"}) {
		t.Fatalf("DeleteAuditBefore(5 min) deleted %d, left %v; want 1, [jti-010 jti-002]", n, got)
	}
	mustVerify(t, s, 2)
	n, err = s.DeleteAuditBefore(ctx, at(11*time.Minute))
	must(t, err)
	if n != 2 {
		t.Fatalf("DeleteAuditBefore(11 min) deleted %d, want 2", n)
	}
	mustVerify(t, s, 0)
}

// testAuditChainCoalesced: the records of coalesced refusals, written by
// the audit writer with their counts, verify.
func testAuditChainCoalesced(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := audit.NewWriter(s, audit.Options{Window: time.Hour})
	refusal := sampleAudit(0, time.Now())
	refusal.Count = 0
	refusal.Decision, refusal.Error, refusal.Detail = store.DecisionRefused, "invalid_client", "bad secret"
	for range 7 {
		must(t, w.Record(ctx, refusal))
	}
	granted := sampleAudit(1, time.Now())
	granted.Count = 0
	must(t, w.Record(ctx, granted))
	must(t, w.Flush(ctx))
	w.Close()
	var counts []int
	for _, r := range listAudit(t, s, store.AuditFilter{}) {
		counts = append(counts, r.Count)
	}
	slices.Sort(counts)
	if !slices.Equal(counts, []int{1, 1, 6}) {
		t.Fatalf("counts %v, want [1 1 6]: the first refusal, the granted, the 6 repeats", counts)
	}
	mustVerify(t, s, 3)
}

// testAuditVisit checks VisitAudit against ListAudit: the same records
// oldest first, past ListAudit's default limit, and stopping at an error.
func testAuditVisit(t *testing.T, s store.Store) {
	ctx := t.Context()
	var recs []store.AuditRecord
	for i := range 130 {
		r := sampleAudit(i, at(time.Duration(i%65)*time.Second))
		r.ClientID = []string{"client-a", "client-b"}[i%2]
		recs = append(recs, r)
	}
	must(t, s.AppendAudit(ctx, recs))
	for _, f := range []store.AuditFilter{
		{},
		{ClientID: "client-b"},
		{Since: at(10 * time.Second), Until: at(20 * time.Second)},
		{Action: "token", Limit: 3}, // Limit is ignored
	} {
		var got []string
		must(t, s.VisitAudit(ctx, f, func(r *store.AuditRecord) error {
			got = append(got, r.JTI)
			return nil
		}))
		lf := f
		lf.Limit = 1000
		want := jtis(listAudit(t, s, lf))
		slices.Reverse(want)
		if !slices.Equal(got, want) {
			t.Errorf("VisitAudit(%+v) = %v, want %v", f, got, want)
		}
	}
	stop := fmt.Errorf("stop")
	n := 0
	err := s.VisitAudit(ctx, store.AuditFilter{}, func(*store.AuditRecord) error { n++; return stop })
	if err == nil || !strings.Contains(err.Error(), "stop") || n != 1 {
		t.Errorf("VisitAudit stopping at an error = %v after %d records", err, n)
	}
}

// migrateAuditChain checks chaining over a database of schema 13 with
// audit records: they are unchained (not broken), the records appended
// after the migration are chained, and a record without a chain inserted
// later is reported.
func migrateAuditChain(t *testing.T, b SQLBackend, path string) {
	ctx := t.Context()
	p, db := b.Migrator(t, path)
	if _, err := p.UpTo(ctx, 13); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := db.ExecContext(ctx, b.Rebind(`INSERT INTO audit (time, action, decision, client_id, subject,
			actor, jti, error, detail, request_id, remote) VALUES (?, 'token.exchange', 'granted', 'c', 's', '', ?, '', '', '', '')`),
			at(time.Duration(i)*time.Second).UnixMicro(), fmt.Sprint("old-", i)); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	s := b.open(t, path)
	defer s.Close()
	must(t, s.AppendAudit(ctx, []store.AuditRecord{sampleAudit(0, at(time.Minute)), sampleAudit(1, at(2*time.Minute))}))
	rep := mustVerify(t, s, 2)
	if rep.Legacy != 3 {
		t.Errorf("Verify: %d unchained records, want 3", rep.Legacy)
	}
	// Retention of the unchained records still works.
	if n, err := s.DeleteAuditBefore(ctx, at(time.Second)); err != nil || n != 1 {
		t.Errorf("DeleteAuditBefore(1 s) = %d, %v; want the oldest unchained record", n, err)
	}
	db = b.Connect(t, path)
	defer db.Close()
	if _, err := db.ExecContext(ctx, `INSERT INTO audit (time, action, decision, client_id, subject,
			actor, jti, error, detail, request_id, remote) VALUES (1, 'token.exchange', 'granted', 'c', 's', '', 'forged', '', '', '', '')`); err != nil {
		t.Fatal(err)
	}
	rep = verifyAudit(t, s)
	if rep.OK() || rep.Stray == nil || rep.Stray.Kind != audit.ProblemInserted || rep.Legacy != 2 {
		t.Fatalf("Verify after inserting a record without a chain = %v (legacy %d), want it inserted", rep.Problems(), rep.Legacy)
	}
	if p, db := b.Migrator(t, path); true {
		defer db.Close()
		if _, err := p.DownTo(ctx, 13); err != nil {
			t.Fatalf("migrating down: %v", err)
		}
		if _, err := p.Up(ctx); err != nil {
			t.Fatalf("migrating up again: %v", err)
		}
	}
}

// tamperAudit checks that Verify names the record an edit of the database
// broke, each case on a database of its own holding one chain of 10
// records appended in two batches.
func tamperAudit(t *testing.T, b SQLBackend, _ string) {
	for _, tc := range []struct {
		name string
		sql  []string
		// want: the problem's kind and seq, or, for a stray, seq -1.
		kind string
		seq  int64
	}{
		{"Edited", []string{`UPDATE audit SET subject = 'mallory' WHERE seq = 4`}, audit.ProblemChanged, 4},
		{"EditedCount", []string{`UPDATE audit SET count = 1000 WHERE seq = 7`}, audit.ProblemChanged, 7},
		{"EditedTime", []string{`UPDATE audit SET time = time + 1 WHERE seq = 1`}, audit.ProblemChanged, 1},
		{"EditedHash", []string{`UPDATE audit SET hash = '` + strings.Repeat("0", 64) + `' WHERE seq = 4`}, audit.ProblemChanged, 4},
		{"CopiedHash", []string{
			`UPDATE audit SET hash = (SELECT hash FROM audit WHERE seq = 6) WHERE seq = 5`,
		}, audit.ProblemChanged, 5},
		{"DeletedMiddle", []string{`DELETE FROM audit WHERE seq = 4`}, audit.ProblemMissing, 5},
		{"DeletedMiddleRange", []string{`DELETE FROM audit WHERE seq IN (4, 5, 6)`}, audit.ProblemMissing, 7},
		{"DeletedFirst", []string{`DELETE FROM audit WHERE seq = 1`}, audit.ProblemMissing, 2},
		{"DeletedTail", []string{`DELETE FROM audit WHERE seq >= 9`}, audit.ProblemMissing, 9},
		{"DeletedAll", []string{`DELETE FROM audit`}, audit.ProblemMissing, 1},
		{"HeadChanged", []string{`UPDATE audit_chains SET hash = 'x'`}, audit.ProblemHead, 10},
		{"HeadMovedBack", []string{`UPDATE audit_chains SET seq = 8`}, audit.ProblemInserted, 9},
		{"InsertedPastHead", []string{insertAudit(`(SELECT chain FROM audit_chains)`, 11)}, audit.ProblemInserted, 11},
		{"InsertedSameSeq", []string{`DROP INDEX audit_chain_seq`, insertAudit(`(SELECT chain FROM audit_chains)`, 4)}, audit.ProblemInserted, 4},
		{"InsertedBeforeAnchor", []string{insertAudit(`(SELECT chain FROM audit_chains)`, 0)}, audit.ProblemInserted, 0},
		{"InsertedUnchained", []string{insertAudit(`''`, 0)}, audit.ProblemInserted, -1},
		{"InsertedUnknownChain", []string{insertAudit(`'elsewhere'`, 1)}, audit.ProblemInserted, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := b.New(t)
			if b.Parallel {
				t.Parallel()
			}
			ctx := t.Context()
			s := b.open(t, path)
			defer s.Close()
			var recs []store.AuditRecord
			for i := range 10 {
				recs = append(recs, sampleAudit(i, at(time.Duration(i)*time.Second)))
			}
			must(t, s.AppendAudit(ctx, recs[:4]))
			must(t, s.AppendAudit(ctx, recs[4:]))
			mustVerify(t, s, 10)
			db := b.Connect(t, path)
			defer db.Close()
			for _, q := range tc.sql {
				if _, err := db.ExecContext(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			rep := verifyAudit(t, s)
			ps := rep.Problems()
			if rep.OK() || len(ps) != 1 {
				t.Fatalf("Verify = %v, want one problem", ps)
			}
			p := ps[0]
			if p.Kind != tc.kind || (tc.seq >= 0 && p.Seq != tc.seq) || (tc.seq < 0) != (rep.Stray != nil) {
				t.Fatalf("Verify = %v, want %s at seq %d", p, tc.kind, tc.seq)
			}
			if p.Kind != audit.ProblemMissing && p.ID == 0 {
				t.Errorf("the problem %v names no record id", p)
			}
			// Retention never prunes a broken run of records.
			if tc.kind == audit.ProblemChanged && tc.seq == 1 {
				if n, err := s.DeleteAuditBefore(ctx, at(time.Hour)); err == nil || n != 0 {
					t.Errorf("DeleteAuditBefore over a changed first record = %d, %v; want an error, nothing deleted", n, err)
				}
			}
		})
	}
}

// insertAudit is the SQL of a forged record of the given chain and seq.
func insertAudit(chain string, seq int64) string {
	return fmt.Sprintf(`INSERT INTO audit (time, action, decision, client_id, subject, actor, jti, error,
		detail, request_id, remote, chain, seq, hash) SELECT 1, 'token.exchange', 'granted', 'c', 'mallory', '',
		'forged', '', '', '', '', %s, %d, '%s'`, chain, seq, strings.Repeat("a", 64))
}

// auditInstances appends from several stores on one database at once, as
// instances sharing PostgreSQL do: two share a chain (their transactions
// take turns on its head), one has its own; every chain verifies after.
func auditInstances(t *testing.T, b SQLBackend, path string) {
	ctx := t.Context()
	chains := []string{"host-a", "host-a", "host-b"}
	stores := make([]MigratedStore, len(chains))
	for i, name := range chains {
		stores[i] = b.open(t, path)
		defer stores[i].Close()
		u, ok := stores[i].(interface{ UseAuditChain(string) })
		if !ok {
			t.Skip("the store cannot choose its audit chain")
		}
		u.UseAuditChain(name)
	}
	const batches, size = 20, 5
	errs := make(chan error, len(stores)*batches)
	var wg sync.WaitGroup
	for i, s := range stores {
		for g := range 2 {
			wg.Go(func() {
				for k := range batches / 2 {
					var recs []store.AuditRecord
					for j := range size {
						recs = append(recs, sampleAudit(((i*2+g)*batches+k)*size+j, at(time.Duration(k)*time.Second)))
					}
					errs <- s.AppendAudit(ctx, recs)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, err)
	}
	rep := mustVerify(t, stores[0], int64(len(stores)*batches*size))
	if len(rep.Chains) != 2 || rep.Chains[0].Chain.Seq != 2*batches*size || rep.Chains[1].Chain.Seq != batches*size {
		t.Fatalf("chains %+v, want host-a with %d records and host-b with %d", rep.Chains, 2*batches*size, batches*size)
	}
	// MaxChains checks the chains appended to last.
	must(t, stores[2].AppendAudit(ctx, []store.AuditRecord{sampleAudit(0, at(time.Hour))}))
	one, err := audit.Verify(ctx, stores[0], audit.VerifyOptions{MaxChains: 1, Tail: 10})
	must(t, err)
	if !one.OK() || len(one.Chains) != 1 || one.Chains[0].Chain.Name != "host-b" || one.Skipped != 1 {
		t.Fatalf("Verify(MaxChains 1) = %d chains (%+v), %d skipped; want host-b, the last written", len(one.Chains), one.Chains, one.Skipped)
	}
}

// testAuditChainVerifyConcurrent verifies while records are appended and
// pruned: neither makes the chain look broken.
func testAuditChainVerifyConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	var seed []store.AuditRecord
	for i := range 200 {
		seed = append(seed, sampleAudit(i, at(time.Duration(i)*time.Millisecond)))
	}
	must(t, s.AppendAudit(ctx, seed))
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // appends
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			r := sampleAudit(1000+i, at(time.Hour+time.Duration(i)*time.Millisecond))
			if err := s.AppendAudit(ctx, []store.AuditRecord{r, r}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Go(func() { // retention, creeping forward
		for i := 1; i <= 20; i++ {
			if _, err := s.DeleteAuditBefore(ctx, at(time.Duration(i*10)*time.Millisecond)); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	})
	for range 10 {
		rep, err := audit.Verify(ctx, s, audit.VerifyOptions{PageSize: 16})
		must(t, err)
		if !rep.OK() {
			t.Errorf("Verify during appends and retention: %v", rep.Problems())
			break
		}
	}
	close(done)
	wg.Wait()
	rep := verifyAudit(t, s)
	if !rep.OK() {
		t.Fatalf("Verify after: %v", rep.Problems())
	}
}

// testAuditBytes stores a record whose every caller-controlled field holds
// bytes a text column may refuse (not UTF-8, NUL) in one batch with a
// well-formed record: both are stored (PostgreSQL refused the whole batch
// before audit.Bound escaped them), every backend reads back the same
// escaped text, and the chain verifies.
func testAuditBytes(t *testing.T, s store.Store) {
	ctx := t.Context()
	bad := "x\xff\xfe y\x00z \xc3"
	r := sampleAudit(0, at(0))
	r.ClientID, r.AccountID, r.Subject, r.Actor = bad, bad, bad, bad
	r.JTI, r.Detail, r.RequestID, r.Remote, r.Error, r.TraceID = bad, bad, bad, bad, bad, bad
	r.Audience = []string{bad, "ok"}
	good := sampleAudit(1, at(time.Second))
	must(t, s.AppendAudit(ctx, []store.AuditRecord{r, good}))
	got, err := s.ListAudit(ctx, store.AuditFilter{Limit: 10})
	must(t, err)
	if len(got) != 2 {
		t.Fatalf("ListAudit: %d records, want 2", len(got))
	}
	const want = `x\xff\xfe y\x00z \xc3`
	for _, g := range got {
		if g.JTI == good.JTI {
			continue
		}
		for name, v := range map[string]string{"client": g.ClientID, "account": g.AccountID, "subject": g.Subject,
			"actor": g.Actor, "jti": g.JTI, "detail": g.Detail, "request id": g.RequestID, "remote": g.Remote,
			"error": g.Error, "trace id": g.TraceID, "audience": g.Audience[0]} {
			if v != want {
				t.Errorf("%s stored as %q, want %q", name, v, want)
			}
		}
	}
	mustVerify(t, s, 2)
}
