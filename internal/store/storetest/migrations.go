package storetest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/keybridge/sts/internal/store"
)

// SQLBackend is what [RunMigrations] needs of an SQL backend.
type SQLBackend struct {
	// New returns a fresh, empty database: whatever names it to Migrator
	// and Open (a file path, a schema).
	New func(t *testing.T) string
	// Connect opens db as a database/sql pool, without migrating it.
	Connect func(t *testing.T, db string) *sql.DB
	// Dialect is goose's dialect of the backend, whose migrations are the
	// migrations directory beside the test.
	Dialect goose.Dialect
	// Open opens the backend's store on db, migrating it.
	Open func(ctx context.Context, db string) (MigratedStore, error)
	// Rebind turns the ? placeholders of a statement into the backend's.
	Rebind func(query string) string
	// CountTables is a query of the number of tables of the database but
	// goose's own.
	CountTables string
	// Parallel lets the tests run in parallel (each on its own database).
	Parallel bool
}

// MigratedStore is a store that reports its schema version.
type MigratedStore interface {
	store.Store
	Version(ctx context.Context) (int64, error)
}

// RunMigrations checks a backend's migrations on databases of older
// schemas, in its dialect: upgrades keep the rows written under them,
// downgrades and upgrades again work, a schema newer than the binary's is
// refused, and reopening migrates nothing.
func RunMigrations(t *testing.T, b SQLBackend) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, SQLBackend, string)
	}{
		{"Registration", migrateRegistration},
		{"Identity", migrateIdentity},
		{"Issuers", migrateIssuers},
		{"SchemaTooNew", schemaTooNew},
		{"Reopen", reopen},
		{"AuditChain", migrateAuditChain},
		{"AuditTamper", tamperAudit},
		{"AuditInstances", auditInstances},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := b.New(t)
			if b.Parallel {
				t.Parallel()
			}
			tc.fn(t, b, db)
		})
	}
}

// Migrator returns a goose provider of the backend's migrations over db,
// and db as a database/sql pool, which the caller closes.
func (b SQLBackend) Migrator(t *testing.T, db string) (*goose.Provider, *sql.DB) {
	t.Helper()
	conn := b.Connect(t, db)
	p, err := goose.NewProvider(b.Dialect, conn, os.DirFS("migrations"),
		goose.WithDisableGlobalRegistry(true))
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	return p, conn
}

// open opens the store on db or fails the test.
func (b SQLBackend) open(t *testing.T, db string) MigratedStore {
	t.Helper()
	s, err := b.Open(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newest returns the version of p's newest migration.
func newest(t *testing.T, p *goose.Provider) int64 {
	t.Helper()
	srcs := p.ListSources()
	if len(srcs) == 0 {
		t.Fatal("no migrations")
	}
	return srcs[len(srcs)-1].Version
}

// migrateRegistration upgrades a database holding rows written under the
// first schema, then migrates down to it, up again, and down to nothing.
func migrateRegistration(t *testing.T, b SQLBackend, path string) {
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Microsecond)

	p, db := b.Migrator(t, path)
	if _, err := p.UpTo(ctx, 1); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO clients (id, name, status, token_format, scopes, created_at)
			VALUES ('old', 'Old', 'active', 'jwt', '["read"]', ?)`,
		`INSERT INTO audit (time, action, decision, client_id, subject, actor, jti,
			error, detail, request_id, remote)
			VALUES (?, 'client.create', 'granted', 'old', '', '', '', '', '', '', '')`,
	} {
		if _, err := db.ExecContext(ctx, b.Rebind(q), now.UnixMicro()); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s := b.open(t, path)
	if v, err := s.Version(ctx); err != nil || v != newest(t, p) {
		t.Errorf("Version after migrating up = %d, %v; want %d", v, err, newest(t, p))
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
	if err := s.CreateAccount(ctx, &store.Account{ID: "a", Kind: store.AccountIndividual, Status: store.AccountActive}); err != nil {
		t.Fatal(err)
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
	p, db = b.Migrator(t, path)
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
	if err := db.QueryRowContext(ctx, b.CountTables).Scan(&tables); err != nil || tables != 0 {
		t.Errorf("tables left after migrating down to nothing: %d, %v", tables, err)
	}
}

// migrateIdentity upgrades a database holding dynamically registered
// clients of the second schema, two of them of one software and device in
// one account (which the in-process lock alone did not prevent across
// processes or instances): the migration keeps them, with empty
// identities, and the identities set from then on are unique per account.
// Then it migrates down to the second schema and up again.
func migrateIdentity(t *testing.T, b SQLBackend, path string) {
	ctx := t.Context()
	p, db := b.Migrator(t, path)
	if _, err := p.UpTo(ctx, 2); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"twin-1", "twin-2"} {
		if _, err := db.ExecContext(ctx, b.Rebind(`INSERT INTO clients (id, name, status, token_format, account_id,
			software_id, hardware_address) VALUES (?, 'radio', 'active', 'jwt', 'a', 'fw', '02:00:00:00:00:01')`), id); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s := b.open(t, path)
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

	p, db = b.Migrator(t, path)
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
	if pending, err := p.HasPending(ctx); err != nil || pending {
		t.Errorf("migrations pending after migrating up again: %v, %v", pending, err)
	}
}

// migrateIssuers upgrades a database of schema 10 holding a client: it
// reads back with no policy, and takes one; trusted issuers can be
// stored. Migrating down to 10 drops the issuers table and the policy
// column and keeps the client; up again works.
func migrateIssuers(t *testing.T, b SQLBackend, path string) {
	ctx := t.Context()
	p, db := b.Migrator(t, path)
	if _, err := p.UpTo(ctx, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO clients (id, name, status, token_format) VALUES ('old', 'Old', 'active', 'jwt')`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s := b.open(t, path)
	c, err := s.GetClient(ctx, "old")
	if err != nil || !c.Policy.IsZero() || c.Name != "Old" {
		t.Fatalf("GetClient of a client of schema 10 = %+v, %v; want no policy", c, err)
	}
	pol := store.Policy{Condition: "true", Claims: map[string]string{"a": `"b"`}}
	if _, err := s.UpdateClient(ctx, "old", func(c *store.Client) error { c.Policy = pol; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateIssuer(ctx, &store.TrustedIssuer{Name: "g", Issuer: "https://g.example.com", Source: store.IssuerSourceStore}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	p, db = b.Migrator(t, path)
	defer db.Close()
	if _, err := p.DownTo(ctx, 10); err != nil {
		t.Fatalf("migrating down: %v", err)
	}
	if _, err := db.ExecContext(ctx, `SELECT policy FROM clients`); err == nil {
		t.Error("clients.policy survived migrating down")
	}
	if _, err := db.ExecContext(ctx, `SELECT 1 FROM trusted_issuers`); err == nil {
		t.Error("the trusted_issuers table survived migrating down")
	}
	var name string
	if err := db.QueryRowContext(ctx, `SELECT name FROM clients WHERE id = 'old'`).Scan(&name); err != nil || name != "Old" {
		t.Errorf("the client after migrating down: %q, %v", name, err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("migrating up again: %v", err)
	}
	if pending, err := p.HasPending(ctx); err != nil || pending {
		t.Errorf("migrations pending after migrating up again: %v, %v", pending, err)
	}
}

// schemaTooNew checks that a binary refuses a database that a newer
// binary migrated past the newest migration this one knows, and that
// Version reports the schema version.
func schemaTooNew(t *testing.T, b SQLBackend, path string) {
	ctx := t.Context()
	s := b.open(t, path)
	known, err := s.Version(ctx)
	if err != nil || known < 2 {
		t.Fatalf("Version = %d, %v; want the newest migration", known, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	newer := known + 1
	_, db := b.Migrator(t, path)
	_, err = db.ExecContext(ctx, b.Rebind(`INSERT INTO goose_db_version (version_id, is_applied) VALUES (?, ?)`), newer, true)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	s, err = b.Open(ctx, path)
	if err == nil {
		s.Close()
		t.Fatal("Open of a database with a newer schema succeeded")
	}
	want := fmt.Sprintf("database schema version %d is newer than this binary knows (%d); upgrade sts", newer, known)
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("Open of a database with a newer schema: %v; want %q", err, want)
	}
}

// reopen checks that what is written survives Close, and that opening an
// up-to-date database migrates nothing.
func reopen(t *testing.T, b SQLBackend, path string) {
	ctx := t.Context()
	s := b.open(t, path)
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

	s = b.open(t, path)
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
	p, db := b.Migrator(t, path)
	defer db.Close()
	var n int
	want := len(p.ListSources()) + 1 // and goose's version 0
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM goose_db_version`).Scan(&n); err != nil || n != want {
		t.Errorf("goose_db_version rows after reopening = %d, %v; want %d (0 and one per migration)", n, err, want)
	}
}
