package postgres

import (
	"context"
	"fmt"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlrows"
)

// CreateOperator implements [store.Operators].
func (s *Store) CreateOperator(ctx context.Context, o *store.Operator) error {
	if _, err := s.pool.Exec(ctx, queries.InsertOperator, sqlrows.OperatorValues(o)...); err != nil {
		return fmt.Errorf("postgres: create operator %q: %w", o.Username, mapErr(err))
	}
	return nil
}

// GetOperator implements [store.Operators].
func (s *Store) GetOperator(ctx context.Context, username string) (*store.Operator, error) {
	o, err := sqlrows.ScanOperator(s.pool.QueryRow(ctx, queries.GetOperator, username))
	if err != nil {
		return nil, fmt.Errorf("postgres: get operator %q: %w", username, mapErr(err))
	}
	return o, nil
}

// ListOperators implements [store.Operators]. Usernames are ordered by
// their bytes (COLLATE "C"), as SQLite orders them, not by the database's
// collation.
func (s *Store) ListOperators(ctx context.Context) ([]*store.Operator, error) {
	rows, err := s.pool.Query(ctx, queries.ListOperators)
	out, err := collect(rows, err, sqlrows.ScanOperator)
	if err != nil {
		return nil, fmt.Errorf("postgres: list operators: %w", err)
	}
	return out, nil
}

// UpdateOperator implements [store.Operators] like UpdateClient (operators
// are not cached, so nothing is announced).
func (s *Store) UpdateOperator(ctx context.Context, username string, update func(*store.Operator) error) (*store.Operator, error) {
	return updateRow(ctx, s, sqlrows.OperatorRows, qGetOperatorForUpdate, queries.UpdateOperator, username, "", update)
}
