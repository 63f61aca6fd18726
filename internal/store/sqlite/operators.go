package sqlite

import (
	"context"
	"fmt"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlrows"
)

// CreateOperator implements [store.Operators].
func (s *Store) CreateOperator(ctx context.Context, o *store.Operator) error {
	if _, err := s.w.ExecContext(ctx, queries.InsertOperator, sqlrows.OperatorValues(o)...); err != nil {
		return fmt.Errorf("sqlite: create operator %q: %w", o.Username, mapErr(err))
	}
	return nil
}

// GetOperator implements [store.Operators].
func (s *Store) GetOperator(ctx context.Context, username string) (*store.Operator, error) {
	o, err := sqlrows.ScanOperator(s.r.QueryRowContext(ctx, queries.GetOperator, username))
	if err != nil {
		return nil, fmt.Errorf("sqlite: get operator %q: %w", username, mapErr(err))
	}
	return o, nil
}

// ListOperators implements [store.Operators].
func (s *Store) ListOperators(ctx context.Context) ([]*store.Operator, error) {
	rows, err := s.r.QueryContext(ctx, queries.ListOperators)
	out, err := collect(rows, err, sqlrows.ScanOperator)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list operators: %w", err)
	}
	return out, nil
}

// UpdateOperator implements [store.Operators] like UpdateClient.
func (s *Store) UpdateOperator(ctx context.Context, username string, update func(*store.Operator) error) (*store.Operator, error) {
	return updateRow(ctx, s, sqlrows.OperatorRows, queries.GetOperator, queries.UpdateOperator, username, update)
}
