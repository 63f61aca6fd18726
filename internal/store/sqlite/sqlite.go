package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
	sqlitedriver "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlrows"
	"github.com/keybridge/sts/internal/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// busyTimeout is how long a statement waits for a lock held by another
// connection, e.g. another process writing to the same file.
const busyTimeout = 10 * time.Second

// Store is a [store.Store] backed by one SQLite database file. It is safe for
// concurrent use.
type Store struct {
	// Store is every table, over the two pools; its Now is the clock of
	// UpdateClient, UpdateAccount and UpdateOperator.
	*sqlstore.Store

	w *sql.DB // one connection: every write and write transaction
	r *sql.DB // read-only connections for single-statement reads

	// reads is the executor of r, with the statements of the token
	// endpoint's hot path prepared once per connection.
	reads *sqlstore.SQLExecutor
}

// dialect is SQLite's: ? placeholders, byte-ordered text by default; a
// write transaction is BEGIN IMMEDIATE (see dsn), which takes the write
// lock at once, so a read-modify-write needs no row lock.
var dialect = sqlstore.Dialect{
	Text:   sqlrows.SQLite,
	NoRows: sqlstore.SQLNoRows,
	Unique: func(err error) bool {
		var se *sqlitedriver.Error
		if !errors.As(err, &se) {
			return false
		}
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			return true
		}
		return false
	},
}

var _ store.Store = (*Store)(nil)

// Open opens the SQLite database at path, creating the file and its parent
// directories (mode 0700) if needed, and applies pending migrations. path is a
// file name; in-memory databases are not supported because the Store uses
// several connections. The database, WAL and SHM files are mode 0600
// whatever the directory's mode or the umask: they hold operator password
// hashes, the audit log and client metadata.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("sqlite: open: %q is not a database file path", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	if err := privateFiles(abs); err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}

	s := &Store{}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()

	// The writer is opened, and migrated, first: it switches the file to
	// WAL, which is persistent and which the read-only pool cannot do.
	s.w, err = sql.Open("sqlite", dsn(abs, true))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	s.w.SetMaxOpenConns(1)
	s.w.SetMaxIdleConns(1)
	s.w.SetConnMaxIdleTime(0)
	s.w.SetConnMaxLifetime(0)
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("sqlite: migrate: %w", err)
	}
	migrator, err := sqlstore.Migrate(ctx, "sqlite", goose.DialectSQLite3, s.w, fsys)
	if err != nil {
		return nil, err
	}

	s.r, err = sql.Open("sqlite", dsn(abs, false))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	s.r.SetMaxOpenConns(n)
	s.r.SetMaxIdleConns(n)
	s.r.SetConnMaxIdleTime(0)
	s.r.SetConnMaxLifetime(0)
	if err := s.r.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}

	s.reads = sqlstore.NewSQLExecutor(s.r)
	s.Store = sqlstore.New(sqlstore.Config{
		Name:     "sqlite",
		Dialect:  dialect,
		Read:     s.reads,
		Write:    sqlstore.NewSQLExecutor(s.w),
		InTx:     sqlstore.SQLInTx(s.w),
		Migrator: migrator,
	})
	q := s.Queries()
	if err := s.reads.Prepare(ctx, q.GetClient, q.GetToken, q.IsRevoked); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	ok = true
	return s, nil
}

// FileMode is the mode of the database file and of the WAL and SHM files
// SQLite creates beside it.
const FileMode fs.FileMode = 0o600

// privateFiles creates the database file with FileMode if it does not
// exist, so that SQLite (which gives its WAL and SHM files the mode of the
// database file) never creates any of them readable by others, and
// narrows the mode of files an earlier version left wider.
func privateFiles(abs string) error {
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, FileMode)
	if err != nil {
		return err
	}
	f.Close()
	for _, name := range []string{abs, abs + "-wal", abs + "-shm"} {
		fi, err := os.Stat(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&^FileMode != 0 {
			if err := os.Chmod(name, FileMode); err != nil {
				return err
			}
		}
	}
	return nil
}

// dsn builds the modernc.org/sqlite data source name for the file at the
// absolute path abs. The path is escaped because SQLite decodes file: URIs.
func dsn(abs string, writer bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	// NORMAL is durable against application crashes under WAL; a power
	// loss may lose the last transactions but never corrupts the file.
	q.Add("_pragma", "synchronous(NORMAL)")
	if writer {
		q.Add("_pragma", "journal_mode(WAL)")
		// Fewer, larger checkpoints: the audit table takes a write per
		// batch of requests, and checkpointing every 1000 pages (the
		// default) cost the token endpoint ~10%. The page cache (8 MB)
		// holds the tables' hot pages; audit records, applied from the
		// journal in large batches, are appended.
		q.Add("_pragma", "cache_size(-8000)")
		q.Add("_pragma", "wal_autocheckpoint(8000)")
		// BEGIN IMMEDIATE takes the write lock at once, so a transaction
		// that reads then writes cannot fail to upgrade its lock.
		q.Set("_txlock", "immediate")
	} else {
		q.Add("_pragma", "query_only(1)")
	}
	u := url.URL{Path: filepath.ToSlash(abs)}
	return "file:" + u.EscapedPath() + "?" + q.Encode()
}

// DB returns the write pool, for tests and maintenance. It holds a single
// connection: do not keep a transaction or rows open on it while calling
// the Store's methods.
func (s *Store) DB() *sql.DB { return s.w }

// Close closes the statements and both pools.
func (s *Store) Close() error {
	var errs []error
	if s.reads != nil {
		errs = append(errs, s.reads.Close())
	}
	for _, db := range []*sql.DB{s.r, s.w} {
		if db != nil {
			errs = append(errs, db.Close())
		}
	}
	return errors.Join(errs...)
}

// PoolStats reports the read and write connection pools, for metrics.
func (s *Store) PoolStats() []sqlstore.PoolStats {
	stat := func(name string, db *sql.DB) sqlstore.PoolStats {
		st := db.Stats()
		return sqlstore.PoolStats{Pool: name, InUse: st.InUse, Idle: st.Idle, Max: st.MaxOpenConnections,
			Waits: uint64(st.WaitCount), WaitTime: st.WaitDuration}
	}
	return []sqlstore.PoolStats{stat("read", s.r), stat("write", s.w)}
}

// Backend names the store's database, for metrics.
func (s *Store) Backend() string { return "sqlite" }
