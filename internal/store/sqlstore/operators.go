package sqlstore

import (
	"context"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlrows"
)

// CreateOperator implements [store.Operators].
func (s *Store) CreateOperator(ctx context.Context, o *store.Operator) error {
	if _, err := s.w.Exec(ctx, s.q.InsertOperator, sqlrows.OperatorValues(o)...); err != nil {
		return s.errorf("create operator %q: %w", o.Username, s.mapErr(err))
	}
	return nil
}

// GetOperator implements [store.Operators].
func (s *Store) GetOperator(ctx context.Context, username string) (*store.Operator, error) {
	o, err := sqlrows.ScanOperator(s.r.QueryRow(ctx, s.q.GetOperator, username))
	if err != nil {
		return nil, s.errorf("get operator %q: %w", username, s.mapErr(err))
	}
	return o, nil
}

// ListOperators implements [store.Operators]. Usernames are ordered by
// their bytes, whatever the database's collation.
func (s *Store) ListOperators(ctx context.Context) ([]*store.Operator, error) {
	out, err := collect(ctx, s.r, sqlrows.ScanOperator, s.q.ListOperators)
	if err != nil {
		return nil, s.errorf("list operators: %w", err)
	}
	return out, nil
}

// UpdateOperator implements [store.Operators] like UpdateClient (operators
// are not cached, so nothing is announced).
func (s *Store) UpdateOperator(ctx context.Context, username string, update func(*store.Operator) error) (*store.Operator, error) {
	return updateRow(ctx, s, sqlrows.OperatorRows, s.getOperatorForUpdate, s.q.UpdateOperator, username, "", update)
}
