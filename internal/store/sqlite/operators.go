package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

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

// UpdateOperator implements [store.Operators] like UpdateClient: in one
// immediate transaction, with the same restrictions on update, and
// UpdatedAt set to s.Now() after update returns.
func (s *Store) UpdateOperator(ctx context.Context, username string, update func(*store.Operator) error) (*store.Operator, error) {
	var o *store.Operator
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		o, err = sqlrows.ScanOperator(tx.QueryRowContext(ctx, queries.GetOperator, username))
		if err != nil {
			return mapErr(err)
		}
		if err := update(o); err != nil {
			return err
		}
		if o.Username != username {
			return fmt.Errorf("update changed the username to %q", o.Username)
		}
		o.UpdatedAt = s.Now().UTC().Truncate(time.Microsecond)
		_, err = tx.ExecContext(ctx, queries.UpdateOperator, sqlrows.UpdateArgs(sqlrows.OperatorValues(o), username)...)
		return mapErr(err)
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: update operator %q: %w", username, err)
	}
	return o, nil
}
