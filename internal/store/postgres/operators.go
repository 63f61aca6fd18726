package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlcodec"
)

const operatorCols = `username, password_hash, created_at, updated_at`

const qGetOperator = `SELECT ` + operatorCols + ` FROM operators WHERE username = $1`

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
	_, err := s.pool.Exec(ctx, `INSERT INTO operators (`+operatorCols+`) VALUES ($1, $2, $3, $4)`,
		o.Username, o.PasswordHash, sqlcodec.EncTime(o.CreatedAt), sqlcodec.EncTime(o.UpdatedAt))
	if err != nil {
		return fmt.Errorf("postgres: create operator %q: %w", o.Username, mapErr(err))
	}
	return nil
}

// GetOperator implements [store.Operators].
func (s *Store) GetOperator(ctx context.Context, username string) (*store.Operator, error) {
	o, err := scanOperator(s.pool.QueryRow(ctx, qGetOperator, username))
	if err != nil {
		return nil, fmt.Errorf("postgres: get operator %q: %w", username, mapErr(err))
	}
	return o, nil
}

// ListOperators implements [store.Operators]. Usernames are ordered by
// their bytes (COLLATE "C"), as SQLite orders them, not by the database's
// collation.
func (s *Store) ListOperators(ctx context.Context) ([]*store.Operator, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+operatorCols+` FROM operators ORDER BY username COLLATE "C"`)
	out, err := collect(rows, err, scanOperator)
	if err != nil {
		return nil, fmt.Errorf("postgres: list operators: %w", err)
	}
	return out, nil
}

// UpdateOperator implements [store.Operators] like UpdateClient: under a
// row lock (SELECT … FOR UPDATE) in one transaction, with the same
// restrictions on update, and UpdatedAt set to s.Now() after update
// returns.
func (s *Store) UpdateOperator(ctx context.Context, username string, update func(*store.Operator) error) (*store.Operator, error) {
	var o *store.Operator
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		o, err = scanOperator(tx.QueryRow(ctx, qGetOperator+` FOR UPDATE`, username))
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
		_, err = tx.Exec(ctx, `UPDATE operators SET password_hash = $1, created_at = $2,
			updated_at = $3 WHERE username = $4`,
			o.PasswordHash, sqlcodec.EncTime(o.CreatedAt), sqlcodec.EncTime(o.UpdatedAt), username)
		return mapErr(err)
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: update operator %q: %w", username, err)
	}
	return o, nil
}
