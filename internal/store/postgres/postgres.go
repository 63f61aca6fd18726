package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlrows"
)

// queries is the text of the queries PostgreSQL shares with SQLite, with
// PostgreSQL's placeholders; built once, here, not per request.
var queries = sqlrows.NewQueries(sqlrows.PostgreSQL)

// The reads that lock the rows they read (SELECT … FOR UPDATE), so that
// concurrent read-modify-writes queue as they do on SQLite's single writer.
var (
	qGetClientForUpdate    = queries.GetClient + ` FOR UPDATE`
	qGetAccountForUpdate   = queries.GetAccount + ` FOR UPDATE`
	qGetOperatorForUpdate  = queries.GetOperator + ` FOR UPDATE`
	qRefreshStateForUpdate = queries.RefreshState + ` FOR UPDATE`
)

//go:embed migrations/*.sql
var migrations embed.FS

// SQLSTATE codes the Store acts on.
const (
	uniqueViolation      = "23505"
	serializationFailure = "40001"
	deadlockDetected     = "40P01"
)

// Store is a [store.Store] backed by a PostgreSQL database. It is safe for
// concurrent use, and several Stores (in several processes) may share one
// database.
type Store struct {
	// Now is the clock UpdateClient, UpdateAccount and UpdateOperator stamp
	// UpdatedAt with. Open sets it to time.Now; replace it before the Store
	// is first used.
	Now func() time.Time

	pool *pgxpool.Pool
	// schema is the schema the tables live in (the first of the search
	// path); it scopes migrations, change notices and elections.
	schema string
	// db is a database/sql view of pool, for goose only.
	db       *sql.DB
	migrator *goose.Provider
}

var _ store.Store = (*Store)(nil)

// Option adjusts how Open connects.
type Option func(*options)

type options struct {
	configure []func(*pgxpool.Config)
}

// WithPoolConfig has Open call configure on the pool configuration parsed
// from the URL before it connects: to bound the pool, set RuntimeParams
// (search_path, say), or add hooks.
func WithPoolConfig(configure func(*pgxpool.Config)) Option {
	return func(o *options) { o.configure = append(o.configure, configure) }
}

// Open connects to the PostgreSQL database at databaseURL (a postgres:// or
// postgresql:// URL, or a key=value connection string, with pgxpool's
// pool_* parameters) and applies pending migrations to the first schema of
// the search path, under a session advisory lock so that instances starting
// at once migrate once. It refuses a schema newer than this binary knows.
// Errors never contain the password.
func Open(ctx context.Context, databaseURL string, opts ...Option) (_ *Store, err error) {
	secrets := passwords(databaseURL)
	defer func() {
		if err != nil {
			err = redact(err, secrets)
		}
	}()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	secrets = append(secrets, cfg.ConnConfig.Password)
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "sts"
	}
	for _, f := range o.configure {
		f(cfg)
	}

	s := &Store{Now: time.Now}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	if s.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	if err := s.pool.Ping(ctx); err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	s.db = stdlib.OpenDBFromPool(s.pool)
	if s.migrator, err = s.migrate(ctx); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// migrate applies the embedded migrations, each in its own transaction,
// and returns the provider, for Version. It refuses a database whose schema
// is newer than the newest migration this binary embeds: a newer binary
// migrated it, and this one would misread or corrupt what it does not know.
func (s *Store) migrate(ctx context.Context) (*goose.Provider, error) {
	// The tables, and goose's version table, go to the first existing
	// schema of the search path; the migration lock is that schema's, so
	// that databases holding several schemas (tests) migrate each at once.
	var schema *string
	if err := s.pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return nil, fmt.Errorf("postgres: migrate: %w", err)
	}
	if schema == nil {
		return nil, errors.New("postgres: migrate: no schema of the search_path exists to create the tables in")
	}
	s.schema = *schema
	h := fnv.New64a()
	h.Write([]byte("github.com/keybridge/sts migrations\x00" + *schema))
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(int64(h.Sum64())),
		// Polled every second for up to five minutes: an instance that
		// waits is usually waiting for another one's migrations, which
		// take well under a second.
		lock.WithLockTimeout(1, 300))
	if err != nil {
		return nil, fmt.Errorf("postgres: migrate: %w", err)
	}
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("postgres: migrate: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, s.db, fsys,
		goose.WithDisableGlobalRegistry(true),
		goose.WithSessionLocker(locker))
	if err != nil {
		return nil, fmt.Errorf("postgres: migrate: %w", err)
	}
	// p.Close would close s.db, which Close closes.
	current, known, err := p.GetVersions(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: migrate: %w", err)
	}
	if current > known {
		return nil, fmt.Errorf("postgres: database schema version %d is newer than this binary knows (%d); upgrade sts", current, known)
	}
	if _, err := p.Up(ctx); err != nil {
		return nil, fmt.Errorf("postgres: migrate: %w", err)
	}
	return p, nil
}

// Version returns the schema version of the database: the newest migration
// applied.
func (s *Store) Version(ctx context.Context) (int64, error) {
	v, _, err := s.migrator.GetVersions(ctx)
	if err != nil {
		return 0, fmt.Errorf("postgres: schema version: %w", err)
	}
	return v, nil
}

// Pool returns the connection pool, for tests and maintenance.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close closes the pool.
func (s *Store) Close() error {
	var err error
	if s.db != nil {
		err = s.db.Close()
	}
	if s.pool != nil {
		s.pool.Close()
	}
	return err
}

// inTx runs fn in a read-committed transaction and commits if fn returns
// nil. Methods that read then write take row locks (SELECT … FOR UPDATE)
// or a table lock, so that concurrent callers queue as they do on SQLite's
// single writer.
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, fn)
}

// mapErr turns a unique violation into store.ErrConflict and pgx.ErrNoRows
// into store.ErrNotFound, keeping the cause in the message.
func mapErr(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	if sqlState(err) == uniqueViolation {
		return fmt.Errorf("%w (%v)", store.ErrConflict, err)
	}
	return err
}

// sqlState returns the SQLSTATE of a server error, or "".
func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// retryable reports whether a transaction failed only because of another
// one (a deadlock or a serialization failure) and may be run again.
func retryable(err error) bool {
	switch sqlState(err) {
	case deadlockDetected, serializationFailure:
		return true
	}
	return false
}

// rowsAffected returns the count of rows changed by a statement.
func rowsAffected(tag pgconn.CommandTag, err error) (int, error) {
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}

// collect scans every row of rows with scan.
func collect[T any](rows pgx.Rows, err error, scan func(sqlrows.Scanner) (T, error)) ([]T, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// passwords returns the passwords written in a connection URL, in its user
// information or its password parameter.
func passwords(databaseURL string) []string {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return nil
	}
	var out []string
	if p, ok := u.User.Password(); ok {
		out = append(out, p)
	}
	return append(out, u.Query()["password"]...)
}

// redact replaces the secrets in err's message; errors.Is and As still see
// err.
func redact(err error, secrets []string) error {
	var keep []string
	for _, s := range secrets {
		if s != "" {
			keep = append(keep, s)
		}
	}
	if len(keep) == 0 {
		return err
	}
	return &redactedError{err: err, secrets: keep}
}

type redactedError struct {
	err     error
	secrets []string
}

func (e *redactedError) Error() string {
	msg := e.err.Error()
	for _, s := range e.secrets {
		msg = strings.ReplaceAll(msg, s, "xxxxx")
		// As it would appear in a URL.
		msg = strings.ReplaceAll(msg, url.PathEscape(s), "xxxxx")
		msg = strings.ReplaceAll(msg, url.QueryEscape(s), "xxxxx")
	}
	return msg
}

func (e *redactedError) Unwrap() error { return e.err }

// updateRow is the read-modify-write of UpdateClient, UpdateAccount and
// UpdateOperator: it reads the row with SELECT … FOR UPDATE (get), so that
// concurrent updates queue and never lose each other's changes, applies
// update, writes the row (put) with UpdatedAt set to s.Now(), and, when
// change is not empty, announces it on commit. update must not change the
// key nor call the Store: the transaction holds the row lock meanwhile.
func updateRow[T any](ctx context.Context, s *Store, u sqlrows.Updatable[T], get, put, key, change string, update func(*T) error) (*T, error) {
	var v *T
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		if v, err = u.Scan(tx.QueryRow(ctx, get, key)); err != nil {
			return mapErr(err)
		}
		if err := u.Apply(v, key, s.Now(), update); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, put, sqlrows.UpdateArgs(u.Values(v), key)...); err != nil {
			return mapErr(err)
		}
		if change == "" {
			return nil
		}
		return s.notify(ctx, tx, change, key)
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: update %s %q: %w", u.What, key, err)
	}
	return v, nil
}
