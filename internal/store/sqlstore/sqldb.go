package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// sqlQuerier is what *sql.DB, *sql.Conn and *sql.Tx have in common.
type sqlQuerier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
}

// SQLExecutor is an [Executor] over database/sql: a pool, or a transaction
// (see [SQLInTx]), with statements prepared once for the hottest queries.
type SQLExecutor struct {
	q        sqlQuerier
	prepared []preparedStmt
}

type preparedStmt struct {
	query string
	stmt  *sql.Stmt
}

// NewSQLExecutor returns an Executor over q (a *sql.DB or *sql.Tx).
func NewSQLExecutor(q sqlQuerier) *SQLExecutor { return &SQLExecutor{q: q} }

// Prepare prepares queries on the pool (database/sql prepares each on every
// connection as it is used); QueryRow and Exec of one of them use the
// prepared statement. Call it before the executor is first used.
func (e *SQLExecutor) Prepare(ctx context.Context, queries ...string) error {
	for _, q := range queries {
		st, err := e.q.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", q, err)
		}
		e.prepared = append(e.prepared, preparedStmt{q, st})
	}
	return nil
}

// Close closes the prepared statements.
func (e *SQLExecutor) Close() error {
	var errs []error
	for _, p := range e.prepared {
		errs = append(errs, p.stmt.Close())
	}
	e.prepared = nil
	return errors.Join(errs...)
}

// stmt returns the statement prepared for query, or nil. The list is a
// few entries long: comparing strings of a different length costs nothing,
// and those of the same one are usually the same string.
func (e *SQLExecutor) stmt(query string) *sql.Stmt {
	for _, p := range e.prepared {
		if p.query == query {
			return p.stmt
		}
	}
	return nil
}

// Exec implements [Executor].
func (e *SQLExecutor) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	var (
		res sql.Result
		err error
	)
	if st := e.stmt(query); st != nil {
		res, err = st.ExecContext(ctx, args...)
	} else {
		res, err = e.q.ExecContext(ctx, query, args...)
	}
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// QueryRow implements [Executor]; Scan returns sql.ErrNoRows for no row.
func (e *SQLExecutor) QueryRow(ctx context.Context, query string, args ...any) Row {
	if st := e.stmt(query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return e.q.QueryRowContext(ctx, query, args...)
}

// Query implements [Executor].
func (e *SQLExecutor) Query(ctx context.Context, query string, args []any, each func(Row) error) error {
	rows, err := e.q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	return EachRow(rows, each)
}

// ExecBatch implements [Executor] with one statement prepared for the
// batch.
func (e *SQLExecutor) ExecBatch(ctx context.Context, query string, args [][]any) error {
	st, err := e.q.PrepareContext(ctx, query)
	if err != nil {
		return err
	}
	defer st.Close()
	for _, a := range args {
		if _, err := st.ExecContext(ctx, a...); err != nil {
			return err
		}
	}
	return nil
}

// SQLInTx returns a [Config.InTx] over db: each transaction begins with
// db's default options (SQLite's _txlock=immediate makes them BEGIN
// IMMEDIATE) and commits if fn returns nil.
func SQLInTx(db *sql.DB) func(context.Context, func(Executor) error) error {
	return func(ctx context.Context, fn func(Executor) error) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		// Rolls back if fn fails or panics; a no-op after Commit.
		defer tx.Rollback()
		if err := fn(&SQLExecutor{q: tx}); err != nil {
			return err
		}
		return tx.Commit()
	}
}

// SQLNoRows is the Dialect.NoRows of database/sql.
func SQLNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }
