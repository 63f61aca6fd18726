package sqlstore

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlrows"
)

// Row is a row to scan: what QueryRow returns, and each row Query visits.
// Scan of a QueryRow that found nothing returns an error the Dialect's
// NoRows recognises.
type Row = sqlrows.Scanner

// Executor runs statements on a pool, a connection or a transaction. pgx and
// database/sql differ in the types of results, rows and rows affected; an
// Executor hides them: Exec returns the count of rows changed, and Query
// visits each row with a callback and closes the rows itself.
type Executor interface {
	// Exec runs a statement and returns how many rows it changed.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
	// QueryRow runs a query of at most one row; errors come from Scan.
	QueryRow(ctx context.Context, query string, args ...any) Row
	// Query runs a query and calls each for every row, in order, stopping
	// at the first error.
	Query(ctx context.Context, query string, args []any, each func(Row) error) error
	// ExecBatch runs query once per argument list, in order, in as few
	// round trips as the database allows (one pgx batch; one prepared
	// statement in database/sql).
	ExecBatch(ctx context.Context, query string, args [][]any) error
}

// Rows is what a *sql.Rows and a pgx.Rows have in common, but Close, whose
// signatures differ.
type Rows interface {
	Row
	Next() bool
	Err() error
}

// EachRow calls each for every row of rows, in order, stopping at the first
// error, for an Executor's Query; the caller closes rows.
func EachRow(rows Rows, each func(Row) error) error {
	for rows.Next() {
		if err := each(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Dialect is what differs between the databases beyond the column
// encodings, which are the same (package sqlcodec).
type Dialect struct {
	// Text is the dialect of the query text: placeholders, collations.
	Text sqlrows.Dialect
	// ForUpdate follows the read of a read-modify-write transaction, to
	// lock the row it reads (" FOR UPDATE"), or is empty where the
	// transaction holds the database's write lock from its start (SQLite's
	// BEGIN IMMEDIATE).
	ForUpdate string
	// LockKeys, if not empty, is the first statement of RotateKeys'
	// transaction: a table lock, where there may be no row to lock.
	LockKeys string
	// NoRows reports the error of a QueryRow that found no row.
	NoRows func(error) bool
	// Unique reports a unique-constraint violation.
	Unique func(error) bool
	// Retryable, if not nil, reports an error that aborted a transaction
	// only because of another one (deadlock, serialization failure): the
	// transaction of RotateRefreshToken is then run again.
	Retryable func(error) bool
}

// Config is what a backend gives [New].
type Config struct {
	// Name prefixes error messages: "sqlite", "postgres".
	Name    string
	Dialect Dialect
	// Read runs single-statement reads; Write single-statement writes.
	// They may be the same pool.
	Read, Write Executor
	// InTx runs fn in a write transaction on an Executor of its own and
	// commits if fn returns nil, rolls back otherwise.
	InTx func(ctx context.Context, fn func(tx Executor) error) error
	// Migrator is the provider that migrated the database (see
	// [Migrate]), for Version.
	Migrator *goose.Provider
	// OnChange, if not nil, announces a change of cached data (a
	// store.Change kind and key) from inside the transaction that makes
	// it, so that it is heard on commit and never after a rollback. The
	// writes it announces then always run in a transaction.
	OnChange func(ctx context.Context, tx Executor, kind, key string) error
}

// Store implements every table of [store.Store] but Close over a Config. A
// backend embeds it. It is safe for concurrent use.
type Store struct {
	// Now is the clock UpdateClient, UpdateAccount and UpdateOperator stamp
	// UpdatedAt with. New sets it to time.Now; replace it before the Store
	// is first used.
	Now func() time.Time
	// AuditChainName names the hash chain the store appends audit records to
	// (see audit.go); New sets it to DefaultAuditChain().
	AuditChainName string
	// head is the last head of AuditChain this store committed.
	head auditHead

	name     string
	d        Dialect
	r, w     Executor
	inTx     func(context.Context, func(Executor) error) error
	onChange func(ctx context.Context, tx Executor, kind, key string) error
	migrator *goose.Provider
	q        *sqlrows.Queries
	// obs, when set, is told of each database call (ObserveCalls);
	// rawTx is Config.InTx, which inTx times.
	obs   *atomic.Pointer[CallObserver]
	rawTx func(context.Context, func(Executor) error) error

	// The reads of read-modify-write transactions, with d.ForUpdate.
	getClientForUpdate, getAccountForUpdate, getOperatorForUpdate string
	getIssuerForUpdate, refreshStateForUpdate                     string
	getDeviceProfileForUpdate                                     string
}

// New returns a Store over c; it builds the query text of c.Dialect once.
func New(c Config) *Store {
	q := sqlrows.NewQueries(c.Dialect.Text)
	obs := new(atomic.Pointer[CallObserver])
	s := &Store{
		Now:            time.Now,
		AuditChainName: DefaultAuditChain(),
		name:           c.Name, d: c.Dialect, r: observed{c.Read, obs}, w: observed{c.Write, obs}, onChange: c.OnChange,
		obs: obs, rawTx: c.InTx,
		migrator:              c.Migrator,
		q:                     q,
		getClientForUpdate:    q.GetClient + c.Dialect.ForUpdate,
		getAccountForUpdate:   q.GetAccount + c.Dialect.ForUpdate,
		getOperatorForUpdate:  q.GetOperator + c.Dialect.ForUpdate,
		getIssuerForUpdate:    q.GetIssuer + c.Dialect.ForUpdate,
		refreshStateForUpdate: q.RefreshState + c.Dialect.ForUpdate,

		getDeviceProfileForUpdate: q.GetDeviceProfile + c.Dialect.ForUpdate,
	}
	s.inTx = s.observedTx
	return s
}

// Queries returns the query text of the Store's dialect, for a backend's
// prepared statements.
func (s *Store) Queries() *sqlrows.Queries { return s.q }

// errorf formats an error message prefixed with the backend's name.
func (s *Store) errorf(format string, args ...any) error {
	return fmt.Errorf(s.name+": "+format, args...)
}

// mapErr turns "no rows" into store.ErrNotFound and a unique violation into
// store.ErrConflict, keeping the cause of the latter in the message.
func (s *Store) mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case s.d.NoRows(err):
		return store.ErrNotFound
	case s.d.Unique(err):
		return fmt.Errorf("%w (%v)", store.ErrConflict, err)
	}
	return err
}

// announced runs a write that changes cached data and announces it. With
// no OnChange hook it is a single statement on the writer; with one, the
// write and its notice share a transaction.
func (s *Store) announced(ctx context.Context, kind, key string, write func(Executor) error) error {
	if s.onChange == nil {
		return write(s.w)
	}
	return s.inTx(ctx, func(tx Executor) error {
		if err := write(tx); err != nil {
			return err
		}
		return s.onChange(ctx, tx, kind, key)
	})
}

// notify announces a change from inside tx, if the backend has a feed.
func (s *Store) notify(ctx context.Context, tx Executor, kind, key string) error {
	if s.onChange == nil {
		return nil
	}
	return s.onChange(ctx, tx, kind, key)
}

// collect runs a query on e and scans every row with scan.
func collect[T any](ctx context.Context, e Executor, scan func(Row) (T, error), query string, args ...any) ([]T, error) {
	var out []T
	err := e.Query(ctx, query, args, func(r Row) error {
		v, err := scan(r)
		if err != nil {
			return err
		}
		out = append(out, v)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// updateRow is the read-modify-write of UpdateClient, UpdateAccount,
// UpdateOperator and UpdateIssuer: in one transaction it reads the row (get, which locks it
// per the dialect, so that concurrent updates queue and never lose each
// other's changes), applies update, writes the row (put) with UpdatedAt
// set to s.Now() and, when change is not empty, announces it. update must
// not change the key nor call the Store: the transaction holds the lock
// meanwhile.
func updateRow[T any](ctx context.Context, s *Store, u sqlrows.Updatable[T], get, put, key, change string, update func(*T) error) (*T, error) {
	var v *T
	err := s.inTx(ctx, func(tx Executor) error {
		var err error
		if v, err = u.Scan(tx.QueryRow(ctx, get, key)); err != nil {
			return s.mapErr(err)
		}
		if err := u.Apply(v, key, s.Now(), update); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, put, sqlrows.UpdateArgs(u.Values(v), key)...); err != nil {
			return s.mapErr(err)
		}
		if change == "" {
			return nil
		}
		return s.notify(ctx, tx, change, key)
	})
	if err != nil {
		return nil, s.errorf("update %s %q: %w", u.What, key, err)
	}
	return v, nil
}
