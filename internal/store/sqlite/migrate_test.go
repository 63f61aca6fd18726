package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/pressly/goose/v3"

	"github.com/keybridge/sts/internal/store/sqlite"
	"github.com/keybridge/sts/internal/store/storetest"
)

// TestMigrations runs the migration suite on database files.
func TestMigrations(t *testing.T) {
	storetest.RunMigrations(t, storetest.SQLBackend{
		New: func(t *testing.T) string { return filepath.Join(t.TempDir(), "sts.db") },
		Connect: func(t *testing.T, path string) *sql.DB {
			db, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			return db
		},
		Dialect: goose.DialectSQLite3,
		Open: func(ctx context.Context, path string) (storetest.MigratedStore, error) {
			return sqlite.Open(ctx, path)
		},
		Rebind: func(q string) string { return q },
		CountTables: `SELECT count(*) FROM sqlite_master
			WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'goose_db_version'`,
		Parallel: true,
	})
}
