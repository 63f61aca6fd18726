package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/postgres"
	"github.com/keybridge/sts/internal/store/storetest"
)

// envURL names the variable holding the URL of the test database.
const envURL = "STS_TEST_DATABASE_URL"

func TestConformance(t *testing.T) {
	databaseURL(t) // skips the whole suite at once
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, newSchema(t)) })
}

// databaseURL returns the URL of the test database, or skips the test.
func databaseURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv(envURL)
	if u == "" {
		t.Skip(envURL + " is not set: set it to a PostgreSQL URL, e.g. " +
			"postgres://postgres@127.0.0.1:5432/test?sslmode=disable, to run the PostgreSQL tests")
	}
	return u
}

// newSchema creates a fresh schema sts_t_<random> in the test database,
// dropped with everything in it when the test ends, and returns its name.
func newSchema(t *testing.T) string {
	t.Helper()
	u := databaseURL(t)
	b := make([]byte, 8)
	rand.Read(b)
	schema := "sts_t_" + hex.EncodeToString(b)
	exec(t, u, `CREATE SCHEMA `+pgx.Identifier{schema}.Sanitize())
	t.Cleanup(func() { exec(t, u, `DROP SCHEMA `+pgx.Identifier{schema}.Sanitize()+` CASCADE`) })
	return schema
}

// exec runs one statement on a connection of its own. It does not use
// t.Context, which is done when cleanups run.
func exec(t *testing.T, databaseURL, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// inSchema connects with schema first on the search path.
func inSchema(schema string) postgres.Option {
	return postgres.WithPoolConfig(func(c *pgxpool.Config) {
		c.ConnConfig.RuntimeParams["search_path"] = schema
	})
}

// open opens the store on schema; the caller closes it.
func open(t *testing.T, schema string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), databaseURL(t), inSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
