package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/keybridge/sts/internal/store/sqlstore"
)

// querier is what *pgxpool.Pool and pgx.Tx have in common.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// executor is a [sqlstore.Executor] straight over pgx, without
// database/sql in between: a pool or a transaction. pgx prepares and
// caches each query on each connection.
type executor struct{ q querier }

func (e *executor) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := e.q.Exec(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

func (e *executor) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Row {
	return e.q.QueryRow(ctx, query, args...)
}

func (e *executor) Query(ctx context.Context, query string, args []any, each func(sqlstore.Row) error) error {
	rows, err := e.q.Query(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	return sqlstore.EachRow(rows, each)
}

// ExecBatch sends the statements in one batch: one round trip.
func (e *executor) ExecBatch(ctx context.Context, query string, args [][]any) error {
	b := &pgx.Batch{}
	for _, a := range args {
		b.Queue(query, a...)
	}
	return e.q.SendBatch(ctx, b).Close()
}
