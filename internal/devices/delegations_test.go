package devices_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/devices"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlite"
)

const proxy = "dp:FRN0001:proxy.example.com"

// newService returns a Service over a fresh SQLite store holding the
// account "acct".
func newService(t *testing.T) (*devices.Service, *sqlite.Store) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "sts.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Now()
	if err := st.CreateAccount(context.Background(), &store.Account{ID: "acct", Name: "Fleet", Kind: store.AccountOrganization, Status: store.AccountActive, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	return &devices.Service{Store: st}, st
}

func audited(t *testing.T, st store.Store, action string) []store.AuditRecord {
	t.Helper()
	recs, err := st.ListAudit(context.Background(), store.AuditFilter{Action: action})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestDelegate(t *testing.T) {
	ctx := context.Background()
	s, st := newService(t)
	d := store.DeviceRef{FCCID: "ABC123", Serial: "SN:1/2"}
	added, err := s.Delegate(ctx, "cli", "acct", proxy, d)
	if err != nil || !added {
		t.Fatalf("Delegate = %v, %v", added, err)
	}
	added, err = s.Delegate(ctx, "cli", "acct", proxy, d)
	if err != nil || added {
		t.Fatalf("Delegate again = %v, %v; want false, nil", added, err)
	}
	got, err := s.Delegated(ctx, proxy, []store.DeviceRef{d, {FCCID: "ABC123", Serial: "SN:1"}})
	if err != nil || !got[0] || got[1] {
		t.Fatalf("Delegated = %v, %v", got, err)
	}
	recs := audited(t, st, "device.delegate")
	if len(recs) != 1 || recs[0].Subject != "cli" || recs[0].AccountID != "acct" || !strings.Contains(recs[0].Detail, proxy) {
		t.Errorf("audit: %+v", recs)
	}
	// Escapes are compared in upper case, as certificates' are written.
	if _, err := s.Delegate(ctx, "cli", "", "dp:F%3a1:cn%2fx", d); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Delegated(ctx, "dp:F%3A1:cn%2Fx", []store.DeviceRef{d}); !got[0] {
		t.Error("a delegation typed with lower-case escapes does not match")
	}
	if err := s.Undelegate(ctx, "operator:alice", proxy, d); err != nil {
		t.Fatal(err)
	}
	if err := s.Undelegate(ctx, "operator:alice", proxy, d); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Undelegate twice: %v", err)
	}
	if recs := audited(t, st, "device.undelegate"); len(recs) != 1 || recs[0].Subject != "operator:alice" {
		t.Errorf("audit: %+v", recs)
	}
}

func TestDelegateRefusals(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t)
	long := strings.Repeat("S", devices.MaxSerialLen+1)
	for _, c := range []struct {
		name, account, proxy string
		dev                  store.DeviceRef
		field                string
	}{
		{"proxy not dp", "", "cbsd:A:B", store.DeviceRef{FCCID: "A", Serial: "B"}, "proxy"},
		{"proxy with raw colon", "", "dp:F:a:b", store.DeviceRef{FCCID: "A", Serial: "B"}, "proxy"},
		{"proxy bad escape", "", "dp:F:a%zz", store.DeviceRef{FCCID: "A", Serial: "B"}, "proxy"},
		{"proxy slash", "", "dp:F:a/b", store.DeviceRef{FCCID: "A", Serial: "B"}, "proxy"},
		{"empty FCC ID", "", proxy, store.DeviceRef{Serial: "B"}, "fcc-id"},
		{"long FCC ID", "", proxy, store.DeviceRef{FCCID: strings.Repeat("F", devices.MaxFCCIDLen+1), Serial: "B"}, "fcc-id"},
		{"FCC ID tab", "", proxy, store.DeviceRef{FCCID: "A\tB", Serial: "B"}, "fcc-id"},
		{"FCC ID zero-width", "", proxy, store.DeviceRef{FCCID: "A\u200bB", Serial: "B"}, "fcc-id"},
		{"empty serial", "", proxy, store.DeviceRef{FCCID: "A"}, "serial"},
		{"long serial", "", proxy, store.DeviceRef{FCCID: "A", Serial: long}, "serial"},
		{"non-UTF-8 serial", "", proxy, store.DeviceRef{FCCID: "A", Serial: "\xff"}, "serial"},
		{"control in serial", "", proxy, store.DeviceRef{FCCID: "A", Serial: "a\nb"}, "serial"},
		{"no such account", "nobody", proxy, store.DeviceRef{FCCID: "A", Serial: "B"}, "account"},
	} {
		_, err := s.Delegate(ctx, "cli", c.account, c.proxy, c.dev)
		var probs devices.Problems
		if !errors.As(err, &probs) || probs[0].Field != c.field {
			t.Errorf("%s: err = %v, want a problem of %s", c.name, err, c.field)
		}
	}
	ds, err := s.ListDelegations(ctx, store.DelegationFilter{})
	if err != nil || len(ds) != 0 {
		t.Errorf("after refusals: %v, %v", ds, err)
	}
}

func TestImportCSV(t *testing.T) {
	ctx := context.Background()
	s, st := newService(t)
	if _, err := s.Delegate(ctx, "cli", "", proxy, store.DeviceRef{FCCID: "ABC123", Serial: "1"}); err != nil {
		t.Fatal(err)
	}
	in := "\ufefffcc_id,serial\r\nABC123,1\r\n\r\nABC123, 2\r\n\"XYZ-9\",\"a,b:c/d\"\r\nABC123,2\r\n"
	got, err := s.ImportCSV(ctx, "operator:alice", "acct", proxy, strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if got != (devices.Imported{Rows: 4, Added: 2, Existing: 2}) {
		t.Errorf("ImportCSV = %+v", got)
	}
	ok, err := s.Delegated(ctx, proxy, []store.DeviceRef{{FCCID: "ABC123", Serial: "2"}, {FCCID: "XYZ-9", Serial: "a,b:c/d"}})
	if err != nil || !ok[0] || !ok[1] {
		t.Errorf("Delegated after import = %v, %v", ok, err)
	}
	ds, err := s.ListDelegations(ctx, store.DelegationFilter{AccountID: "acct"})
	if err != nil || len(ds) != 2 {
		t.Errorf("account's delegations = %v, %v", ds, err)
	}
	recs := audited(t, st, "device.import")
	if len(recs) != 1 || recs[0].AccountID != "acct" || recs[0].Subject != "operator:alice" || !strings.Contains(recs[0].Detail, "4 devices, 2 new") {
		t.Errorf("audit: %+v", recs)
	}
}

// Every bad row is named by its line, and nothing is written.
func TestImportCSVBadRows(t *testing.T) {
	ctx := context.Background()
	s, st := newService(t)
	in := strings.Join([]string{
		"fcc_id,serial",                // 1
		"GOOD1,1",                      // 2
		strings.Repeat("F", 65) + ",1", // 3
		"GOOD1",                        // 4
		"GOOD1,",                       // 5
		"GOOD2,a,b",                    // 6
		"GOOD3,\xff",                   // 7
		"GOOD4,4",                      // 8
	}, "\n")
	_, err := s.ImportCSV(ctx, "cli", "acct", proxy, strings.NewReader(in))
	var ie *devices.ImportError
	if !errors.As(err, &ie) {
		t.Fatalf("err = %v, want an ImportError", err)
	}
	var lines []int
	for _, r := range ie.Rows {
		lines = append(lines, r.Line)
	}
	if fmt.Sprint(lines) != "[3 4 5 6 7]" {
		t.Errorf("bad lines = %v (%v)", lines, err)
	}
	ds, _ := s.ListDelegations(ctx, store.DelegationFilter{})
	if len(ds) != 0 {
		t.Errorf("a bad import wrote %d delegations", len(ds))
	}
	if recs := audited(t, st, "device.import"); len(recs) != 0 {
		t.Errorf("a refused import was audited as done: %+v", recs)
	}
}

func TestImportCSVLimits(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t)
	var b strings.Builder
	for i := range devices.MaxImportRows + 1 {
		fmt.Fprintf(&b, "F,%d\n", i)
	}
	_, err := s.ImportCSV(ctx, "cli", "acct", proxy, strings.NewReader(b.String()))
	var ie *devices.ImportError
	if !errors.As(err, &ie) || !strings.Contains(ie.Fatal, "more than 100000 rows") {
		t.Errorf("too many rows: %v", err)
	}
	big := strings.Repeat("F,"+strings.Repeat("s", 200)+"\n", devices.MaxImportSize/200)
	_, err = s.ImportCSV(ctx, "cli", "acct", proxy, strings.NewReader(big))
	if !errors.As(err, &ie) || !strings.Contains(ie.Fatal, "larger than") {
		t.Errorf("too large: %v", err)
	}
	_, err = s.ImportCSV(ctx, "cli", "acct", proxy, strings.NewReader("a,\"b\nc"))
	if !errors.As(err, &ie) || ie.Fatal == "" {
		t.Errorf("not CSV: %v", err)
	}
	_, err = s.ImportCSV(ctx, "cli", "acct", proxy, strings.NewReader("fcc_id,serial\n"))
	if err == nil {
		t.Error("an empty file was accepted")
	}
	_, err = s.ImportCSV(ctx, "cli", "other", proxy, strings.NewReader("F,1\n"))
	if err == nil {
		t.Error("an unknown account was accepted")
	}
	ds, _ := s.ListDelegations(ctx, store.DelegationFilter{})
	if len(ds) != 0 {
		t.Errorf("refused imports wrote %d delegations", len(ds))
	}
	// The largest file accepted, in one transaction.
	b.Reset()
	for i := range devices.MaxImportRows {
		fmt.Fprintf(&b, "FCC%d,%d\n", i%7, i)
	}
	start := time.Now()
	got, err := s.ImportCSV(ctx, "cli", "acct", proxy, strings.NewReader(b.String()))
	if err != nil || got.Added != devices.MaxImportRows {
		t.Fatalf("largest import = %+v, %v", got, err)
	}
	t.Logf("imported %d rows (%d bytes) in %v", got.Rows, b.Len(), time.Since(start))
}
