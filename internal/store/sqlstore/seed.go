package sqlstore

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlcodec"
	"github.com/keybridge/sts/internal/store/sqlrows"
)

var _ store.Seeder = (*Store)(nil)

// Sizes of the seeder's statements and transactions. A statement's
// parameters stay under both databases' limits (SQLite 32,766, PostgreSQL
// 65,535); a transaction of 100,000 rows makes the commit's cost
// negligible without holding the write lock for more than a second or so.
const (
	seedParams  = 30_000
	seedPerTx   = 100_000
	seedIDWidth = 7
)

// SeedClients implements [store.Seeder].
func (s *Store) SeedClients(ctx context.Context, n int, template *store.Client) error {
	ncols := len(sqlrows.ClientValues(template))
	err := s.seed(ctx, n, "clients", sqlrows.ClientCols, ncols, func(i int, args []any) []any {
		c := *template
		suffix := fmt.Sprintf("%0*d", seedIDWidth, i)
		c.ID += suffix
		if c.Name != "" {
			c.Name += " " + suffix
		}
		if c.Identity != "" {
			c.Identity += suffix
		}
		return append(args, sqlrows.ClientValues(&c)...)
	})
	if err != nil {
		return s.errorf("seed clients: %w", s.mapErr(err))
	}
	return nil
}

// SeedRevocations implements [store.Seeder].
func (s *Store) SeedRevocations(ctx context.Context, n int, expiresAt, now time.Time) error {
	exp, at := sqlcodec.EncTime(expiresAt), sqlcodec.EncTime(now)
	var b [16]byte
	err := s.seed(ctx, n, "revoked_jtis", sqlrows.RevocationCols, 3, func(_ int, args []any) []any {
		rand.Read(b[:])
		return append(args, base64.RawURLEncoding.EncodeToString(b[:]), exp, at)
	})
	if err != nil {
		return s.errorf("seed revocations: %w", s.mapErr(err))
	}
	return nil
}

// seed inserts n rows into table, row(i, args) appending the ncols values
// of row i to args, with multi-row INSERTs of up to seedParams parameters
// in transactions of up to seedPerTx rows.
func (s *Store) seed(ctx context.Context, n int, table, cols string, ncols int, row func(i int, args []any) []any) error {
	perStmt := seedParams / ncols
	tuple := "(" + sqlrows.Marks(ncols) + ")"
	stmts := map[int]string{} // by rows per statement: the full one, and the last
	stmt := func(rows int) string {
		if q, ok := stmts[rows]; ok {
			return q
		}
		q := s.q.Rebind(`INSERT INTO ` + table + ` (` + cols + `) VALUES ` +
			strings.TrimSuffix(strings.Repeat(tuple+", ", rows), ", "))
		stmts[rows] = q
		return q
	}
	args := make([]any, 0, perStmt*ncols)
	for start := 0; start < n; start += seedPerTx {
		end := min(start+seedPerTx, n)
		err := s.inTx(ctx, func(tx Executor) error {
			for i := start; i < end; i += perStmt {
				rows := min(perStmt, end-i)
				args = args[:0]
				for j := i; j < i+rows; j++ {
					args = row(j, args)
				}
				if _, err := tx.Exec(ctx, stmt(rows), args...); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
