package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
)

// Migrate applies the goose migrations of fsys (a backend's own, in its
// dialect) to db, each in its own transaction, and returns the provider,
// for [Config.Migrator]. name prefixes errors. It refuses a database whose
// schema is newer than the newest migration fsys holds: a newer binary
// migrated it, and this one would misread or corrupt what it does not know.
// The provider is not to be closed: that would close db.
func Migrate(ctx context.Context, name string, dialect goose.Dialect, db *sql.DB, fsys fs.FS, opts ...goose.ProviderOption) (*goose.Provider, error) {
	p, err := goose.NewProvider(dialect, db, fsys,
		append([]goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("%s: migrate: %w", name, err)
	}
	current, known, err := p.GetVersions(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: migrate: %w", name, err)
	}
	if current > known {
		return nil, fmt.Errorf("%s: database schema version %d is newer than this binary knows (%d); upgrade sts", name, current, known)
	}
	if _, err := p.Up(ctx); err != nil {
		return nil, fmt.Errorf("%s: migrate: %w", name, err)
	}
	return p, nil
}

// Version returns the schema version of the database: the newest migration
// applied.
func (s *Store) Version(ctx context.Context) (int64, error) {
	v, _, err := s.migrator.GetVersions(ctx)
	if err != nil {
		return 0, s.errorf("schema version: %w", err)
	}
	return v, nil
}
