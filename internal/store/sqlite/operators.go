package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlcodec"
)

const operatorCols = `username, password_hash, created_at, updated_at`

const qGetOperator = `SELECT ` + operatorCols + ` FROM operators WHERE username = ?`

func scanOperator(row scanner) (*store.Operator, error) {
	var (
		o                store.Operator
		created, updated int64
	)
	if err := row.Scan(&o.Username, &o.PasswordHash, &created, &updated); err != nil {
		return nil, err
	}
	o.CreatedAt = sqlcodec.DecTime(created)
	o.UpdatedAt = sqlcodec.DecTime(updated)
	return &o, nil
}

// CreateOperator implements [store.Operators].
func (s *Store) CreateOperator(ctx context.Context, o *store.Operator) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO operators (`+operatorCols+`) VALUES (?, ?, ?, ?)`,
		o.Username, o.PasswordHash, sqlcodec.EncTime(o.CreatedAt), sqlcodec.EncTime(o.UpdatedAt))
	if err != nil {
		return fmt.Errorf("sqlite: create operator %q: %w", o.Username, mapErr(err))
	}
	return nil
}

// GetOperator implements [store.Operators].
func (s *Store) GetOperator(ctx context.Context, username string) (*store.Operator, error) {
	o, err := scanOperator(s.r.QueryRowContext(ctx, qGetOperator, username))
	if err != nil {
		return nil, fmt.Errorf("sqlite: get operator %q: %w", username, mapErr(err))
	}
	return o, nil
}

// ListOperators implements [store.Operators].
func (s *Store) ListOperators(ctx context.Context) ([]*store.Operator, error) {
	rows, err := s.r.QueryContext(ctx,
		`SELECT `+operatorCols+` FROM operators ORDER BY username`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list operators: %w", err)
	}
	defer rows.Close()
	var out []*store.Operator
	for rows.Next() {
		o, err := scanOperator(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list operators: %w", err)
		}
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
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
		o, err = scanOperator(tx.QueryRowContext(ctx, qGetOperator, username))
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
		_, err = tx.ExecContext(ctx, `UPDATE operators SET password_hash = ?, created_at = ?,
			updated_at = ? WHERE username = ?`,
			o.PasswordHash, sqlcodec.EncTime(o.CreatedAt), sqlcodec.EncTime(o.UpdatedAt), username)
		return mapErr(err)
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: update operator %q: %w", username, err)
	}
	return o, nil
}
