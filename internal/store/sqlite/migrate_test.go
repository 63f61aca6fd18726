package sqlite_test

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlite"
)

// migrator returns a goose provider of the migrations directory for the
// database file at path, and the database; the caller closes the latter.
func migrator(t *testing.T, path string) (*goose.Provider, *sql.DB) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, os.DirFS("migrations"),
		goose.WithDisableGlobalRegistry(true))
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	return p, db
}

// TestMigrateRegistration upgrades a database holding rows written under
// the first schema, then migrates down and up again.
func TestMigrateRegistration(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "sts.db")
	now := time.Now().UTC().Truncate(time.Microsecond)

	p, db := migrator(t, path)
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
		if _, err := db.ExecContext(ctx, q, now.UnixMicro()); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
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
	p, db = migrator(t, path)
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
	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("migrating up again: %v", err)
	}
	if pending, err := p.HasPending(ctx); err != nil || pending {
		t.Errorf("migrations pending after migrating up again: %v, %v", pending, err)
	}
}

// TestMigrateIdentity upgrades a database holding dynamically registered
// clients of the second schema, two of them of one software and device in
// one account (which the in-process lock alone did not prevent across
// processes): the migration keeps them, with empty identities, and the
// identities set from then on are unique per account. Then it migrates
// down to the second schema and up again.
func TestMigrateIdentity(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "sts.db")
	p, db := migrator(t, path)
	if _, err := p.UpTo(ctx, 2); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"twin-1", "twin-2"} {
		if _, err := db.ExecContext(ctx, `INSERT INTO clients (id, name, status, token_format, account_id,
			software_id, hardware_address) VALUES (?, 'radio', 'active', 'jwt', 'a', 'fw', '02:00:00:00:00:01')`, id); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
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

	p, db = migrator(t, path)
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

// TestSchemaTooNew checks that a binary refuses a database that a newer
// binary migrated past the newest migration this one knows, and that
// Version reports the schema version.
func TestSchemaTooNew(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "sts.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	known, err := s.Version(ctx)
	if err != nil || known < 2 {
		t.Fatalf("Version = %d, %v; want the newest migration", known, err)
	}
	newer := known + 1
	if _, err := s.DB().ExecContext(ctx,
		`INSERT INTO goose_db_version (version_id, is_applied) VALUES (?, 1)`, newer); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = sqlite.Open(ctx, path)
	if err == nil {
		s.Close()
		t.Fatal("Open of a database with a newer schema succeeded")
	}
	want := fmt.Sprintf("database schema version %d is newer than this binary knows (%d); upgrade sts", newer, known)
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("Open of a database with a newer schema: %v; want %q", err, want)
	}
}
