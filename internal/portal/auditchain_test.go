package portal_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
)

// The audit page tells an operator whether the hash chains verify, checked
// on each view: verified, then broken once a recent record is edited in
// the database, with the record named.
func TestAuditPageShowsChain(t *testing.T) {
	dir := t.TempDir()
	s := ststest.Start(t, ststest.Options{Dir: dir})
	pw := s.CreateOperator("alice")
	var recs []store.AuditRecord
	for i := range 300 {
		recs = append(recs, store.AuditRecord{Time: time.Now(), Action: "token.exchange", Decision: store.DecisionGranted,
			ClientID: "c", Subject: "s", JTI: "j" + strings.Repeat("x", i%5)})
	}
	if err := s.Store.AppendAudit(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	p := s.PortalSignIn("alice", pw)
	status := func() string {
		t.Helper()
		body := string(p.Get("/portal/audit").Body)
		i := strings.Index(body, `id="chain-status"`)
		if i < 0 {
			t.Fatalf("no chain status on the audit page")
		}
		return body[i:min(len(body), i+400)]
	}
	if st := status(); !strings.Contains(st, "Hash chain verified") || !strings.Contains(st, "last 256 records") {
		t.Fatalf("chain status of an intact trail: %s", st)
	}
	db, err := sql.Open("sqlite", filepath.Join(dir, "sts.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var id int64
	if err := db.QueryRow(`SELECT max(id) - 10 FROM audit`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE audit SET subject = 'mallory' WHERE id = ?`, id); err != nil {
		t.Fatal(err)
	}
	if st := status(); !strings.Contains(st, "Hash chain broken") || !strings.Contains(st, "changed: record id") {
		t.Fatalf("chain status after an edit: %s", st)
	}
}
