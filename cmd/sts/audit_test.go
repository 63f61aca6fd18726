package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keybridge/sts/internal/audit"
	"github.com/keybridge/sts/internal/clientauth"
	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/postgres"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/oauth"
)

// auditBackend is a CLI and a real server sharing one database, and a way
// to edit that database behind their backs.
type auditBackend struct {
	cli   *cli
	sts   *ststest.STS
	store store.Store
	// exec runs SQL on the database directly (? placeholders).
	exec func(t *testing.T, q string, args ...any)
}

// auditBackends starts one backend per database: SQLite in the CLI's data
// directory, and PostgreSQL in a fresh schema when STS_TEST_DATABASE_URL
// is set.
func auditBackends(t *testing.T) map[string]func(t *testing.T) *auditBackend {
	return map[string]func(t *testing.T) *auditBackend{
		"SQLite": func(t *testing.T) *auditBackend {
			c := newCLI(t, zeroKEK)
			s := ststest.Start(t, ststest.Options{Dir: c.dir})
			db, err := sql.Open("sqlite", filepath.Join(c.dir, "sts.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return &auditBackend{cli: c, sts: s, store: s.Store, exec: func(t *testing.T, q string, args ...any) {
				t.Helper()
				if _, err := db.ExecContext(context.Background(), q, args...); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}}
		},
		"PostgreSQL": func(t *testing.T) *auditBackend {
			base := os.Getenv("STS_TEST_DATABASE_URL")
			if base == "" {
				t.Skip("STS_TEST_DATABASE_URL is not set")
			}
			b := make([]byte, 8)
			rand.Read(b)
			schema := "sts_audit_" + hex.EncodeToString(b)
			pgExec(t, base, `CREATE SCHEMA `+schema)
			t.Cleanup(func() { pgExec(t, base, `DROP SCHEMA `+schema+` CASCADE`) })
			u, err := url.Parse(base)
			if err != nil {
				t.Fatal(err)
			}
			q := u.Query()
			q.Set("search_path", schema)
			u.RawQuery = q.Encode()
			c := newCLI(t, zeroKEK)
			t.Setenv("STS_DATABASE_URL", u.String())
			st, err := postgres.Open(context.Background(), u.String())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			s := ststest.StartOn(t, st, ststest.Options{AuditJournal: filepath.Join(c.dir, "audit-journal")})
			return &auditBackend{cli: c, sts: s, store: st, exec: func(t *testing.T, q string, args ...any) {
				t.Helper()
				pgExec(t, u.String(), numbered(q), args...)
			}}
		},
	}
}

func pgExec(t *testing.T, databaseURL, q string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// numbered writes ? placeholders as $1, $2, ….
func numbered(q string) string {
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// downAudit is a store whose audit appends fail while down is set, as
// when the database is unreachable.
type downAudit struct {
	store.Store
	down atomic.Bool
}

func (d *downAudit) AppendAuditCheckpoint(ctx context.Context, recs []store.AuditRecord, cp *store.Setting) error {
	if d.down.Load() {
		return errors.New("database unreachable")
	}
	return d.Store.(store.AuditCheckpointer).AppendAuditCheckpoint(ctx, recs, cp)
}

// TestAuditVerifyListExport runs a real server on each backend, then
// verifies, lists and exports its audit trail with the CLI; verify
// passes on the server's records (granted, coalesced refusals, records a
// journal replays after a restart, pruned by retention) and fails, naming
// the record, once a record is edited or the tail deleted in SQL.
func TestAuditVerifyListExport(t *testing.T) {
	for name, start := range auditBackends(t) {
		t.Run(name, func(t *testing.T) { testAuditCLI(t, start(t)) })
	}
}

func testAuditCLI(t *testing.T, b *auditBackend) {
	ctx := context.Background()
	c, s := b.cli, b.sts
	// Records of 2020 first, for retention and the time filters; one with
	// a subject that needs CSV quoting.
	old := time.Date(2020, 1, 1, 12, 0, 0, 0, time.UTC)
	var olds []store.AuditRecord
	for i := range 4 {
		olds = append(olds, store.AuditRecord{Time: old.Add(time.Duration(i) * time.Hour), Action: "client.create",
			Decision: store.DecisionGranted, ClientID: "old-" + string(rune('a'+i)), Subject: "op"})
	}
	olds[3].Subject, olds[3].Time = "a,\"b\"\r\nc\x1b[31m", time.Date(2020, 1, 3, 0, 0, 0, 0, time.UTC)
	if err := b.store.AppendAudit(ctx, olds); err != nil {
		t.Fatal(err)
	}

	// The server's records: grants, and refusals of one kind, coalesced.
	secret := clientauth.NewSecret()
	sc := &store.Client{ID: "c-audit", Name: "audit test", Status: store.ClientActive,
		GrantTypes: []string{oauth.GrantTypeClientCredentials}, TokenFormat: store.TokenFormatJWT,
		SecretHash: s.Hasher.Hash(secret), CreatedAt: time.Now(), UpdatedAt: time.Now()}
	if err := b.store.CreateClient(ctx, sc); err != nil {
		t.Fatal(err)
	}
	cl := &ststest.Client{Client: sc, Secret: secret}
	for range 5 {
		s.ClientCredentials(cl, nil)
	}
	bad := &ststest.Client{Client: cl.Client, Secret: "wrong"}
	for range 6 {
		if r := s.PostForm(server.TokenPath, bad, url.Values{"grant_type": {oauth.GrantTypeClientCredentials}}); r.Status != http.StatusUnauthorized {
			t.Fatalf("bad secret: %d %s", r.Status, r.Body)
		}
	}
	if err := s.Server.FlushAudit(ctx); err != nil {
		t.Fatal(err)
	}

	// A writer with a journal whose store is down keeps its records in
	// the journal; the next start replays them into the chain.
	dir := t.TempDir()
	down := &downAudit{Store: b.store}
	j, err := audit.OpenJournal(ctx, dir, down, false)
	if err != nil {
		t.Fatal(err)
	}
	w := audit.NewWriter(down, audit.Options{Journal: j})
	down.down.Store(true)
	for i := range 20 {
		if err := w.Record(ctx, store.AuditRecord{Time: time.Now(), Action: "token.exchange", Decision: store.DecisionGranted,
			ClientID: "journaled", JTI: "j" + string(rune('a'+i))}); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	if j, err = audit.OpenJournal(ctx, dir, b.store, false); err != nil { // the restart: replays
		t.Fatal(err)
	}
	audit.NewWriter(b.store, audit.Options{Journal: j}).Close()

	all, err := b.store.ListAudit(ctx, store.AuditFilter{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	var coalesced bool
	for _, r := range all {
		counts[r.ClientID]++
		coalesced = coalesced || r.Count > 1
	}
	if counts["journaled"] != 20 || !coalesced {
		t.Fatalf("records: %v, coalesced %v; want the 20 replayed and a coalesced refusal", counts, coalesced)
	}

	out := c.ok("audit", "verify")
	if !strings.Contains(out, "The audit trail verifies") {
		t.Fatalf("audit verify:\n%s", out)
	}
	var v verifyView
	c.okJSON(&v, "audit", "verify", "-o", "json")
	if !v.OK || v.Records != int64(len(all)) || len(v.Problems) != 0 || len(v.Chains) != 1 {
		t.Fatalf("audit verify -o json = %+v, want ok with %d records in one chain", v, len(all))
	}
	c.okJSON(&v, "audit", "verify", "--tail", "3", "-o", "json")
	if !v.OK || v.Records != 4 {
		t.Fatalf("audit verify --tail 3 = %+v, want ok with 4 records read", v)
	}

	// list: newest first, filtered, limited; text output escapes what a
	// caller chose.
	var listed []auditView
	c.okJSON(&listed, "audit", "list", "--limit", "3", "-o", "json")
	if len(listed) != 3 || listed[0].ID != all[0].ID || listed[0].Hash == "" {
		t.Fatalf("audit list --limit 3 = %+v", listed)
	}
	c.okJSON(&listed, "audit", "list", "--client", "old-b", "-o", "json")
	if len(listed) != 1 || listed[0].Time != "2020-01-01T13:00:00Z" {
		t.Fatalf("audit list --client old-b = %+v", listed)
	}
	if text := c.ok("audit", "list", "--since", "2020-01-03", "--until", "2020-01-03"); strings.Contains(text, "\x1b") || !strings.Contains(text, `\x1b[31m`) {
		t.Errorf("audit list shows a control character raw:\n%q", text)
	}
	c.fail("--until is before --since", "audit", "list", "--since", "2021-01-01", "--until", "2020-01-01")
	c.fail("not a date", "audit", "export", "--since", "yesterday")
	// A time ago: the records of the last day are every one but 2020's.
	c.okJSON(&listed, "audit", "list", "--since", "24h", "--limit", "10000", "-o", "json")
	if len(listed) != len(all)-len(olds) {
		t.Errorf("audit list --since 24h: %d records, want the %d of today", len(listed), len(all)-len(olds))
	}
	c.okJSON(&listed, "audit", "list", "--since", "3000d", "--until", "7d", "--limit", "10000", "-o", "json")
	if len(listed) != len(olds) {
		t.Errorf("audit list --since 3000d --until 7d: %d records, want the %d of 2020", len(listed), len(olds))
	}
	c.fail("a time ago must be positive", "audit", "list", "--since", "-1h")
	c.fail("--format must be jsonl or csv", "audit", "export", "--format", "xml")

	// export: every record, oldest first, as JSON lines and as CSV.
	jl := c.ok("audit", "export", "--format", "jsonl")
	lines := strings.Split(strings.TrimSuffix(jl, "\n"), "\n")
	if len(lines) != len(all) {
		t.Fatalf("export jsonl: %d lines, want %d", len(lines), len(all))
	}
	var first, last auditView
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatal(err)
	}
	if first.ClientID != "old-a" || first.Seq != 1 || last.Time < first.Time {
		t.Errorf("export jsonl: first %+v, last %+v; want oldest first", first, last)
	}
	raw := c.ok("audit", "export", "--format", "csv")
	if !strings.HasPrefix(raw, strings.Join(csvHeader, ",")+"\r\n") || !strings.Contains(raw, `,"a,""b""`+"\r\nc\x1b[31m\",") {
		t.Errorf("export csv: no header line or the subject is not quoted as RFC 4180 says:\n%q", raw)
	}
	rows, err := csv.NewReader(strings.NewReader(raw)).ReadAll()
	if err != nil {
		t.Fatalf("export csv does not parse: %v", err)
	}
	if len(rows) != len(all)+1 || !slices.Equal(rows[0], csvHeader) {
		t.Fatalf("export csv: %d rows, header %v", len(rows), rows[0])
	}
	// encoding/csv reads a quoted CRLF as LF.
	if got := rows[4][6]; got != strings.ReplaceAll(olds[3].Subject, "\r\n", "\n") {
		t.Errorf("CSV subject = %q, want %q", got, olds[3].Subject)
	}
	day := c.ok("audit", "export", "--since", "2020-01-01", "--until", "2020-01-01", "--format", "jsonl")
	if n := strings.Count(day, "\n"); n != 3 {
		t.Errorf("export of 2020-01-01: %d records, want 3", n)
	}

	// Retention prunes the 2020 records and anchors the chain: it still
	// verifies.
	if n, err := b.store.DeleteAuditBefore(ctx, time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil || n != 4 {
		t.Fatalf("DeleteAuditBefore(2021) = %d, %v; want the 4 records of 2020", n, err)
	}
	c.okJSON(&v, "audit", "verify", "-o", "json")
	if !v.OK || v.Records != int64(len(all)-4) || v.Chains[0].AnchorSeq != 4 {
		t.Fatalf("audit verify after retention = %+v", v)
	}

	// An edited record: named, and the command fails.
	victim := all[len(all)/2]
	b.exec(t, `UPDATE audit SET subject = ? WHERE id = ?`, "mallory", victim.ID)
	msg := c.fail("changed: record id "+strconv.FormatInt(victim.ID, 10), "audit", "verify")
	if !strings.Contains(msg, "does not verify") {
		t.Errorf("audit verify of an edited record: %s", msg)
	}
	b.exec(t, `UPDATE audit SET subject = ? WHERE id = ?`, victim.Subject, victim.ID)
	c.ok("audit", "verify")
	// A deleted tail.
	b.exec(t, `DELETE FROM audit WHERE id = ?`, all[0].ID)
	c.fail("missing", "audit", "verify")
}
