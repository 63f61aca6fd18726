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

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlrows"
	"github.com/keybridge/sts/internal/store/sqlstore"
)

// dialect is PostgreSQL's: $n placeholders and byte-ordered text
// (sqlrows.PostgreSQL); reads that lock the rows they read (SELECT … FOR
// UPDATE) and a table lock for key rotation, so that concurrent
// read-modify-writes queue as they do on SQLite's single writer; pgx's and
// the server's errors.
var dialect = sqlstore.Dialect{
	Text:      sqlrows.PostgreSQL,
	ForUpdate: ` FOR UPDATE`,
	LockKeys:  `LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE`,
	NoRows:    func(err error) bool { return errors.Is(err, pgx.ErrNoRows) },
	Unique:    func(err error) bool { return sqlState(err) == uniqueViolation },
	Retryable: retryable,
}

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
	// Store is every table, over the pool; its Now is the clock of
	// UpdateClient, UpdateAccount and UpdateOperator.
	*sqlstore.Store

	pool *pgxpool.Pool
	// schema is the schema the tables live in (the first of the search
	// path); it scopes migrations, change notices and elections.
	schema string
	// db is a database/sql view of pool, for goose only.
	db *sql.DB
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

	s := &Store{}
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
	migrator, err := s.migrate(ctx)
	if err != nil {
		return nil, err
	}
	pool := &executor{s.pool}
	s.Store = sqlstore.New(sqlstore.Config{
		Name:     "postgres",
		Dialect:  dialect,
		Read:     pool,
		Write:    pool,
		InTx:     s.inTx,
		Migrator: migrator,
		OnChange: s.notify,
	})
	ok = true
	return s, nil
}

// migrate applies the embedded migrations (see sqlstore.Migrate) to the
// first schema of the search path, under that schema's session advisory
// lock, and returns the provider.
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
	return sqlstore.Migrate(ctx, "postgres", goose.DialectPostgres, s.db, fsys,
		goose.WithSessionLocker(locker))
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
func (s *Store) inTx(ctx context.Context, fn func(sqlstore.Executor) error) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return fn(&executor{tx}) })
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

// PoolStats reports the connection pool, for metrics.
func (s *Store) PoolStats() []sqlstore.PoolStats {
	st := s.pool.Stat()
	return []sqlstore.PoolStats{{Pool: "main", InUse: int(st.AcquiredConns()), Idle: int(st.IdleConns()), Max: int(st.MaxConns()),
		Waits: uint64(st.EmptyAcquireCount()), WaitTime: st.EmptyAcquireWaitTime()}}
}

// Backend names the store's database, for metrics.
func (s *Store) Backend() string { return "postgres" }
