package postgres_test

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keybridge/sts/internal/store/sqlite"
)

// table is what the schema test compares of a table: its columns in order,
// its primary key, and its named indexes (those of CREATE INDEX, not the
// ones a database makes for a key), each as "unique? partial? (columns)".
type table struct {
	Columns    []string
	PrimaryKey []string
	Indexes    map[string]string
}

// indexShape describes an index for the comparison.
func indexShape(unique, partial bool, cols []string) string {
	return fmt.Sprintf("unique=%t partial=%t (%s)", unique, partial, strings.Join(cols, ", "))
}

// TestSchemasMatch checks that the migrations of both backends (this one's
// and SQLite's), each in its own dialect, build the same tables, columns, keys and indexes: the shared
// code of package sqlstore runs on both. goose's own version table is left
// out.
func TestSchemasMatch(t *testing.T) {
	schema := newSchema(t) // or skips
	t.Parallel()
	ctx := t.Context()

	lite, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "sts.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	got := sqliteSchema(t, lite)

	pg := open(t, schema)
	defer pg.Close()
	want := postgresSchema(t, pg.Pool(), schema)

	if len(got) == 0 {
		t.Fatal("no SQLite tables")
	}
	for name, l := range got {
		p, ok := want[name]
		if !ok {
			t.Errorf("table %s: in SQLite only", name)
			continue
		}
		if !reflect.DeepEqual(l, p) {
			t.Errorf("table %s:\nSQLite     %+v\nPostgreSQL %+v", name, *l, *p)
		}
	}
	for name := range want {
		if got[name] == nil {
			t.Errorf("table %s: in PostgreSQL only", name)
		}
	}
}

func sqliteSchema(t *testing.T, s *sqlite.Store) map[string]*table {
	t.Helper()
	ctx, db := t.Context(), s.DB()
	// each runs a query and calls scan for every row.
	each := func(scan func(*sql.Rows) error, query string, args ...any) {
		t.Helper()
		rows, err := db.QueryContext(ctx, query, args...)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			if err := scan(rows); err != nil {
				t.Fatal(err)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	out := map[string]*table{}
	each(func(r *sql.Rows) error {
		var name string
		err := r.Scan(&name)
		out[name] = &table{Indexes: map[string]string{}}
		return err
	}, `SELECT name FROM sqlite_master
		WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'goose_db_version'`)
	for name, tb := range out {
		pk := map[int]string{}
		each(func(r *sql.Rows) error {
			var col string
			var n int
			err := r.Scan(&col, &n)
			tb.Columns = append(tb.Columns, col)
			if n > 0 {
				pk[n] = col
			}
			return err
		}, `SELECT name, pk FROM pragma_table_info(?) ORDER BY cid`, name)
		for i := 1; i <= len(pk); i++ {
			tb.PrimaryKey = append(tb.PrimaryKey, pk[i])
		}
		// origin 'c': made by CREATE INDEX, not for a key or constraint.
		// The columns are read after the list: DB is one connection.
		type index struct {
			name            string
			unique, partial bool
		}
		var idx []index
		each(func(r *sql.Rows) error {
			var i index
			err := r.Scan(&i.name, &i.unique, &i.partial)
			idx = append(idx, i)
			return err
		}, `SELECT name, "unique", partial FROM pragma_index_list(?) WHERE origin = 'c'`, name)
		for _, i := range idx {
			var cols []string
			each(func(r *sql.Rows) error {
				var col string
				err := r.Scan(&col)
				cols = append(cols, col)
				return err
			}, `SELECT name FROM pragma_index_info(?) ORDER BY seqno`, i.name)
			tb.Indexes[i.name] = indexShape(i.unique, i.partial, cols)
		}
	}
	return out
}

func postgresSchema(t *testing.T, pool *pgxpool.Pool, schema string) map[string]*table {
	t.Helper()
	ctx := t.Context()
	out := map[string]*table{}
	rows, err := pool.Query(ctx, `SELECT table_name::text, column_name::text FROM information_schema.columns
		WHERE table_schema = $1 AND table_name <> 'goose_db_version'
		ORDER BY table_name, ordinal_position`, schema)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var tname, col string
		if err := rows.Scan(&tname, &col); err != nil {
			t.Fatal(err)
		}
		if out[tname] == nil {
			out[tname] = &table{Indexes: map[string]string{}}
		}
		out[tname].Columns = append(out[tname].Columns, col)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	// Every index of the schema's tables with its columns in order; the
	// primary key's gives the key, those behind other constraints (there
	// are none) would count as named indexes.
	rows, err = pool.Query(ctx, `SELECT i.relname::text, c.relname::text, x.indisprimary, x.indisunique,
			x.indpred IS NOT NULL,
			array(SELECT a.attname::text FROM unnest(x.indkey) WITH ORDINALITY AS k(attnum, ord)
				JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum ORDER BY k.ord)
		FROM pg_index x
		JOIN pg_class i ON i.oid = x.indexrelid
		JOIN pg_class c ON c.oid = x.indrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname <> 'goose_db_version'`, schema)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			iname, tname             string
			primary, unique, partial bool
			cols                     []string
		)
		if err := rows.Scan(&iname, &tname, &primary, &unique, &partial, &cols); err != nil {
			t.Fatal(err)
		}
		tb := out[tname]
		if tb == nil {
			t.Fatalf("index %s of unknown table %s", iname, tname)
		}
		if primary {
			tb.PrimaryKey = cols
		} else {
			tb.Indexes[iname] = indexShape(unique, partial, cols)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
