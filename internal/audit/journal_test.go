package audit_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/audit"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlite"
)

// downStore is a real SQLite store whose database is "down" while down is
// set: appending fails.
type downStore struct {
	*sqlite.Store
	down atomic.Bool
}

func (d *downStore) AppendAuditCheckpoint(ctx context.Context, recs []store.AuditRecord, cp *store.Setting) error {
	if d.down.Load() {
		return errors.New("database unreachable")
	}
	return d.Store.AppendAuditCheckpoint(ctx, recs, cp)
}

func openStoreIn(t *testing.T, dir string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "sts.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func journaledWriter(t *testing.T, dir string, st store.Audit) *audit.Writer {
	t.Helper()
	j, err := audit.OpenJournal(t.Context(), filepath.Join(dir, "journal"), st, false)
	if err != nil {
		t.Fatal(err)
	}
	return audit.NewWriter(st, audit.Options{Journal: j})
}

// recordN records n granted records with JTIs prefix-0..n-1 from 8
// goroutines, failing the test on any unacknowledged one.
func recordN(t *testing.T, w *audit.Writer, prefix string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := g; i < n; i += 8 {
				rec := benchRecord(i)
				rec.JTI = fmt.Sprintf("%s-%d", prefix, i)
				if err := w.Record(context.Background(), rec); err != nil {
					t.Errorf("Record: %v", err)
				}
			}
		})
	}
	wg.Wait()
}

// jtiCounts counts the stored records per JTI.
func jtiCounts(t *testing.T, st store.Audit) map[string]int {
	t.Helper()
	recs, err := st.ListAudit(context.Background(), store.AuditFilter{Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, r := range recs {
		out[r.JTI]++
	}
	return out
}

func wantEach(t *testing.T, got map[string]int, prefix string, n int) {
	t.Helper()
	for i := range n {
		if c := got[fmt.Sprintf("%s-%d", prefix, i)]; c != 1 {
			t.Errorf("record %s-%d stored %d times, want once", prefix, i, c)
			return
		}
	}
}

func segments(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "journal", "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// With a journal, Record answers once the record is journaled; Sync waits
// until it is in the store; Close applies the rest and leaves no segment
// with records behind.
func TestJournalAppliesAndSyncs(t *testing.T) {
	dir := t.TempDir()
	st := openStoreIn(t, dir)
	w := journaledWriter(t, dir, st)
	recordN(t, w, "a", 500)
	if err := w.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	wantEach(t, jtiCounts(t, st), "a", 500)
	recordN(t, w, "b", 100)
	w.Close()
	got := jtiCounts(t, st)
	wantEach(t, got, "b", 100)
	if len(got) != 600 {
		t.Errorf("%d records stored, want 600", len(got))
	}
	if s := segments(t, dir); len(s) != 0 {
		t.Errorf("segments left after a clean close: %v", s)
	}
}

// While the database is down, records are still acknowledged (they are in
// the journal); what could not be applied by Close is applied at the next
// start, once, and a torn frame at the end of a segment (a crash in the
// middle of a write, never acknowledged) is skipped.
func TestJournalReplaysAfterStoreFailure(t *testing.T) {
	dir := t.TempDir()
	st := &downStore{Store: openStoreIn(t, dir)}
	w := journaledWriter(t, dir, st)
	recordN(t, w, "before", 50)
	if err := w.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	st.down.Store(true)
	recordN(t, w, "down", 200)
	time.Sleep(3 * audit.DrainDelay) // the background loop is retrying now
	w.Close()                        // and gives up: the records stay in the journal
	if got := jtiCounts(t, st); len(got) != 50 {
		t.Fatalf("%d records in the store while it was down, want the 50 from before", len(got))
	}
	segs := segments(t, dir)
	if len(segs) == 0 {
		t.Fatal("no journal segment kept for the records not applied")
	}
	f, err := os.OpenFile(segs[len(segs)-1], os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0, 0, 1, 0, 0xde, 0xad}) // a torn frame header
	f.Close()

	st.down.Store(false)
	w = journaledWriter(t, dir, st) // the next start
	got := jtiCounts(t, st)
	wantEach(t, got, "before", 50)
	wantEach(t, got, "down", 200)
	if len(got) != 250 {
		t.Errorf("%d records after the replay, want 250", len(got))
	}
	recordN(t, w, "after", 10)
	w.Close()
	w = journaledWriter(t, dir, st) // and once more: nothing applied twice
	w.Close()
	got = jtiCounts(t, st)
	if len(got) != 260 {
		t.Errorf("%d distinct records, want 260", len(got))
	}
	for jti, c := range got {
		if c != 1 {
			t.Errorf("record %s stored %d times", jti, c)
		}
	}
	// The replayed records are chained like the others: the trail
	// verifies, every record in it.
	rep, err := audit.Verify(t.Context(), st, audit.VerifyOptions{PageSize: 64})
	if err != nil || !rep.OK() || rep.Records() != 260 {
		t.Errorf("Verify after the replays = %v, %v (%d records), want 260 records verified", rep.Problems(), err, rep.Records())
	}
}

// A journal rotates its segments and deletes the ones applied; with sync
// (--audit-sync) every write is flushed and nothing changes for the caller.
func TestJournalRotatesAndSyncs(t *testing.T) {
	defer audit.SetSegmentSize(4096)()
	dir := t.TempDir()
	st := openStoreIn(t, dir)
	j, err := audit.OpenJournal(t.Context(), filepath.Join(dir, "journal"), st, true)
	if err != nil {
		t.Fatal(err)
	}
	w := audit.NewWriter(st, audit.Options{Journal: j})
	recordN(t, w, "r", 300) // about 90 KB of journal: many segments
	if err := w.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if s := segments(t, dir); len(s) > 2 {
		t.Errorf("%d segments kept after everything was applied: %v", len(s), s)
	}
	w.Close()
	wantEach(t, jtiCounts(t, st), "r", 300)
}

// A journal needs a store that records its checkpoint with the records.
func TestJournalNeedsCheckpointer(t *testing.T) {
	_, err := audit.OpenJournal(t.Context(), t.TempDir(), failing{}, false)
	if err == nil || !strings.Contains(err.Error(), "checkpoint") {
		t.Fatalf("OpenJournal over a store without checkpoints: %v", err)
	}
}
