package audit_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/audit"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlite"
)

// Every record acknowledged by Record is in the store, however many
// requests write at once.
func TestGroupCommitKeepsEveryRecord(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "sts.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	w := audit.NewWriter(st, audit.Options{})
	const n = 2000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- w.Record(context.Background(), store.AuditRecord{
				Time: time.Now(), Action: "token.exchange", Decision: store.DecisionGranted,
				ClientID: "c", JTI: fmt.Sprint(i),
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	recs, err := st.ListAudit(context.Background(), store.AuditFilter{Limit: n + 10})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range recs {
		seen[r.JTI] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct records stored, want %d", len(seen), n)
	}
	if err := w.Record(context.Background(), store.AuditRecord{}); !errors.Is(err, audit.ErrClosed) {
		t.Fatalf("Record after Close: %v", err)
	}
}

type failing struct{ store.Audit }

func (failing) AppendAudit(context.Context, []store.AuditRecord) error {
	return errors.New("disk full")
}

// A failed write is reported to the caller, who must then not acknowledge
// the request.
func TestWriteFailureReported(t *testing.T) {
	w := audit.NewWriter(failing{}, audit.Options{})
	defer w.Close()
	if err := w.Record(context.Background(), store.AuditRecord{Action: "x"}); err == nil {
		t.Fatal("a failed audit write was reported as success")
	}
}
