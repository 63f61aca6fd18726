package postgres_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/keybridge/sts/internal/store/postgres"
	"github.com/keybridge/sts/internal/store/sqlrows"
	"github.com/keybridge/sts/internal/store/storetest"
)

// TestMigrations runs the migration suite, each test on a schema of its
// own.
func TestMigrations(t *testing.T) {
	databaseURL(t) // skips the whole suite at once
	t.Parallel()
	storetest.RunMigrations(t, storetest.SQLBackend{
		New: newSchema,
		Connect: func(t *testing.T, schema string) *sql.DB {
			cfg, err := pgx.ParseConfig(databaseURL(t))
			if err != nil {
				t.Fatal(err)
			}
			cfg.RuntimeParams["search_path"] = schema
			return stdlib.OpenDB(*cfg)
		},
		Dialect: goose.DialectPostgres,
		Open: func(ctx context.Context, schema string) (storetest.MigratedStore, error) {
			return postgres.Open(ctx, os.Getenv(envURL), inSchema(schema))
		},
		Rebind: sqlrows.Numbered,
		CountTables: `SELECT count(*) FROM pg_tables
			WHERE schemaname = current_schema() AND tablename <> 'goose_db_version'`,
		Parallel: true,
	})
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
