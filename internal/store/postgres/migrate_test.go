package postgres_test

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/postgres"
)

// migrator returns a goose provider of the migrations directory for schema,
// and its database; the caller closes the latter.
func migrator(t *testing.T, schema string) (*goose.Provider, *sql.DB) {
	t.Helper()
	cfg, err := pgx.ParseConfig(databaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["search_path"] = schema
	db := stdlib.OpenDB(*cfg)
	p, err := goose.NewProvider(goose.DialectPostgres, db, os.DirFS("migrations"),
		goose.WithDisableGlobalRegistry(true))
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	return p, db
}

// TestMigrate upgrades a database holding rows written under the first
// schema, then migrates down to it and up again.
func TestMigrate(t *testing.T) {
	schema := newSchema(t)
	t.Parallel()
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Microsecond)

	p, db := migrator(t, schema)
	if _, err := p.UpTo(ctx, 1); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO clients (id, name, status, token_format, scopes, created_at)
			VALUES ('old', 'Old', 'active', 'jwt', '["read"]', $1)`,
		`INSERT INTO audit (time, action, decision, client_id, subject, actor, jti,
			error, detail, request_id, remote)
			VALUES ($1, 'client.create', 'granted', 'old', '', '', '', '', '', '', '')`,
	} {
		if _, err := db.ExecContext(ctx, q, now.UnixMicro()); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s := open(t, schema)
	vs := migrationVersions(t)
	if v, err := s.Version(ctx); err != nil || v != vs[len(vs)-1] {
		t.Errorf("Version after migrating up = %d, %v; want %d", v, err, vs[len(vs)-1])
	}
	c, err := s.GetClient(ctx, "old")
	if err != nil || c.Name != "Old" || !c.CreatedAt.Equal(now) || c.AccountID != "" ||
		c.AuthMethod != "" || c.SoftwareID != "" || c.RegistrationTokenHash != nil || c.Metadata != nil {
		t.Errorf("GetClient of a client of the first schema = %+v, %v", c, err)
	}
	if cs, err := s.ListAccountClients(ctx, ""); err != nil || len(cs) != 1 {
		t.Errorf("ListAccountClients(\"\") = %v, %v; want the old client", cs, err)
	}
	if rs, err := s.ListAudit(ctx, store.AuditFilter{Action: "client"}); err != nil || len(rs) != 1 || rs[0].AccountID != "" {
		t.Errorf("ListAudit of a record of the first schema = %+v, %v", rs, err)
	}
	if _, err := s.UpdateClient(ctx, "old", func(c *store.Client) error {
		c.AccountID, c.Metadata = "a", []byte(`{}`)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Down to the first schema: the client stays, without its new columns.
	p, db = migrator(t, schema)
	defer db.Close()
	if _, err := p.DownTo(ctx, 1); err != nil {
		t.Fatalf("migrating down: %v", err)
	}
	var name string
	if err := db.QueryRowContext(ctx, `SELECT name FROM clients WHERE id = 'old'`).Scan(&name); err != nil || name != "Old" {
		t.Errorf("the client after migrating down: %q, %v", name, err)
	}
	if _, err := db.ExecContext(ctx, `SELECT account_id FROM clients`); err == nil {
		t.Error("clients.account_id survived migrating down")
	}
	if _, err := db.ExecContext(ctx, `SELECT 1 FROM accounts`); err == nil {
		t.Error("the accounts table survived migrating down")
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("migrating up again: %v", err)
	}
	if pending, err := p.HasPending(ctx); err != nil || pending {
		t.Errorf("migrations pending after migrating up again: %v, %v", pending, err)
	}
	// And down to nothing, so every Down statement has run.
	if _, err := p.DownTo(ctx, 0); err != nil {
		t.Fatalf("migrating down to nothing: %v", err)
	}
	var tables int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pg_tables
		WHERE schemaname = current_schema() AND tablename <> 'goose_db_version'`).Scan(&tables); err != nil || tables != 0 {
		t.Errorf("tables left after migrating down to nothing: %d, %v", tables, err)
	}
}

// TestMigrateIdentity upgrades a database holding dynamically registered
// clients of the second schema, two of them of one software and device in
// one account (which the in-process lock alone did not prevent across
// instances): the migration keeps them, with empty identities, and the
// identities set from then on are unique per account. Then it migrates
// down to the second schema and up again.
func TestMigrateIdentity(t *testing.T) {
	schema := newSchema(t)
	t.Parallel()
	ctx := t.Context()
	p, db := migrator(t, schema)
	if _, err := p.UpTo(ctx, 2); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"twin-1", "twin-2"} {
		if _, err := db.ExecContext(ctx, `INSERT INTO clients (id, name, status, token_format, account_id,
			software_id, hardware_address) VALUES ($1, 'radio', 'active', 'jwt', 'a', 'fw', '02:00:00:00:00:01')`, id); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s := open(t, schema)
	for _, id := range []string{"twin-1", "twin-2"} {
		if c, err := s.GetClient(ctx, id); err != nil || c.Identity != "" || c.SoftwareID != "fw" {
			t.Errorf("GetClient(%s) after migrating = %+v, %v; want an empty identity", id, c, err)
		}
	}
	const identity = "software:fw|02:00:00:00:00:01"
	if _, err := s.UpdateClient(ctx, "twin-1", func(c *store.Client) error { c.Identity = identity; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateClient(ctx, "twin-2", func(c *store.Client) error { c.Identity = identity; return nil }); !errors.Is(err, store.ErrConflict) {
		t.Errorf("a second client of the identity: %v, want ErrConflict", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	p, db = migrator(t, schema)
	defer db.Close()
	if _, err := p.DownTo(ctx, 2); err != nil {
		t.Fatalf("migrating down: %v", err)
	}
	if _, err := db.ExecContext(ctx, `SELECT identity FROM clients`); err == nil {
		t.Error("clients.identity survived migrating down")
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM clients`).Scan(&n); err != nil || n != 2 {
		t.Errorf("clients after migrating down: %d, %v; want 2", n, err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("migrating up again: %v", err)
	}
}

// TestOpenConcurrently starts instances at once on a fresh schema: each
// migration is applied once, under the session lock, and all of them open.
func TestOpenConcurrently(t *testing.T) {
	schema := newSchema(t)
	t.Parallel()
	const instances = 6
	stores := make([]*postgres.Store, instances)
	errs := make([]error, instances)
	var wg sync.WaitGroup
	for i := range instances {
		wg.Go(func() {
			stores[i], errs[i] = postgres.Open(t.Context(), databaseURL(t), inSchema(schema))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("instance %d: %v", i, err)
			continue
		}
		defer stores[i].Close()
	}
	if t.Failed() {
		return
	}
	rows, err := stores[0].Pool().Query(t.Context(),
		`SELECT version_id, count(*) FROM goose_db_version GROUP BY version_id ORDER BY version_id`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var v, n int64
		if err := rows.Scan(&v, &n); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d×%d", v, n))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{"0×1"}
	for _, v := range migrationVersions(t) {
		want = append(want, fmt.Sprintf("%d×1", v))
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("goose_db_version = %v, want each version once: %v", got, want)
	}
}

// TestSchemaTooNew checks that a binary refuses a database that a newer
// binary migrated past the newest migration this one knows.
func TestSchemaTooNew(t *testing.T) {
	schema := newSchema(t)
	t.Parallel()
	ctx := t.Context()
	s := open(t, schema)
	known, err := s.Version(ctx)
	if err != nil || known < 2 {
		t.Fatalf("Version = %d, %v; want the newest migration", known, err)
	}
	newer := known + 1
	if _, err := s.Pool().Exec(ctx,
		`INSERT INTO goose_db_version (version_id, is_applied) VALUES ($1, true)`, newer); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = postgres.Open(ctx, databaseURL(t), inSchema(schema))
	if err == nil {
		s.Close()
		t.Fatal("Open of a database with a newer schema succeeded")
	}
	want := fmt.Sprintf("database schema version %d is newer than this binary knows (%d); upgrade sts", newer, known)
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("Open of a database with a newer schema: %v; want %q", err, want)
	}
}

// TestReopen checks that what is written survives Close, and that opening
// an up-to-date schema migrates nothing.
func TestReopen(t *testing.T) {
	schema := newSchema(t)
	t.Parallel()
	ctx := t.Context()
	s := open(t, schema)
	now := time.Now().UTC().Truncate(time.Microsecond)
	hash := []byte("0123456789abcdef0123456789abcdef")
	for _, err := range []error{
		s.CreateClient(ctx, &store.Client{ID: "c1", Status: store.ClientActive, Scopes: []string{"read"}, CreatedAt: now}),
		s.RotateKeys(ctx, "", now, time.Time{}, &store.SigningKey{ID: "k1", Algorithm: "EdDSA", State: store.KeyCurrent, CreatedAt: now}),
		s.CreateToken(ctx, &store.TokenRecord{Hash: hash, Kind: store.TokenRefresh, FamilyID: "f", ExpiresAt: now.Add(time.Hour)}),
		s.RevokeJTI(ctx, "j1", now.Add(time.Hour), now),
		s.AppendAudit(ctx, []store.AuditRecord{{Time: now, Action: "client.create", ClientID: "c1"}}),
		s.CreateAccount(ctx, &store.Account{ID: "a1", Kind: store.AccountIndividual, Status: store.AccountActive, CreatedAt: now}),
		s.CreateOperator(ctx, &store.Operator{Username: "root", PasswordHash: "$argon2id$x", CreatedAt: now}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, schema)
	defer s.Close()
	if c, err := s.GetClient(ctx, "c1"); err != nil || !c.CreatedAt.Equal(now) || len(c.Scopes) != 1 {
		t.Errorf("GetClient after reopening = %+v, %v", c, err)
	}
	if ks, err := s.ListKeys(ctx, now); err != nil || len(ks) != 1 || ks[0].ID != "k1" {
		t.Errorf("ListKeys after reopening = %v, %v", ks, err)
	}
	if tr, err := s.GetToken(ctx, hash); err != nil || tr.FamilyID != "f" {
		t.Errorf("GetToken after reopening = %+v, %v", tr, err)
	}
	if r, err := s.IsRevoked(ctx, "j1"); err != nil || !r {
		t.Errorf("IsRevoked after reopening = %v, %v", r, err)
	}
	if rs, err := s.ListAudit(ctx, store.AuditFilter{}); err != nil || len(rs) != 1 {
		t.Errorf("ListAudit after reopening = %v, %v", rs, err)
	}
	if a, err := s.GetAccount(ctx, "a1"); err != nil || !a.CreatedAt.Equal(now) {
		t.Errorf("GetAccount after reopening = %+v, %v", a, err)
	}
	if o, err := s.GetOperator(ctx, "root"); err != nil || o.PasswordHash != "$argon2id$x" {
		t.Errorf("GetOperator after reopening = %+v, %v", o, err)
	}
	var n int
	want := len(migrationVersions(t)) + 1 // and goose's version 0
	if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM goose_db_version`).Scan(&n); err != nil || n != want {
		t.Errorf("goose_db_version rows after reopening = %d, %v; want %d (0 and one per migration)", n, err, want)
	}
}

// migrationVersions lists the versions of the migrations this package
// embeds (its migrations directory, which the test runs beside), in order.
func migrationVersions(t *testing.T) []int64 {
	t.Helper()
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("embedded migrations: %v, %v", files, err)
	}
	var vs []int64
	for _, f := range files {
		num, _, _ := strings.Cut(filepath.Base(f), "_")
		v, err := strconv.ParseInt(num, 10, 64)
		if err != nil {
			t.Fatalf("migration %s: %v", f, err)
		}
		vs = append(vs, v)
	}
	slices.Sort(vs)
	return vs
}
