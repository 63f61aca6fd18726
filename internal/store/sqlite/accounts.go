package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlcodec"
)

const accountCols = `id, kind, name, status, shared_secret, audiences, scopes, created_at, updated_at`

const qGetAccount = `SELECT ` + accountCols + ` FROM accounts WHERE id = ?`

func scanAccount(row scanner) (*store.Account, error) {
	var (
		a                store.Account
		kind, status     string
		auds, scopes     string
		created, updated int64
	)
	if err := row.Scan(&a.ID, &kind, &a.Name, &status, &a.SharedSecret, &auds, &scopes, &created, &updated); err != nil {
		return nil, err
	}
	var err error
	if a.Audiences, err = sqlcodec.DecList(auds); err != nil {
		return nil, err
	}
	if a.Scopes, err = sqlcodec.DecList(scopes); err != nil {
		return nil, err
	}
	a.Kind = store.AccountKind(kind)
	a.Status = store.AccountStatus(status)
	a.CreatedAt = sqlcodec.DecTime(created)
	a.UpdatedAt = sqlcodec.DecTime(updated)
	return &a, nil
}

// CreateAccount implements [store.Accounts].
func (s *Store) CreateAccount(ctx context.Context, a *store.Account) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO accounts (`+accountCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		a.ID, string(a.Kind), a.Name, string(a.Status), sqlcodec.EncBytes(a.SharedSecret),
		sqlcodec.EncList(a.Audiences), sqlcodec.EncList(a.Scopes), sqlcodec.EncTime(a.CreatedAt), sqlcodec.EncTime(a.UpdatedAt))
	if err != nil {
		return fmt.Errorf("sqlite: create account %q: %w", a.ID, mapErr(err))
	}
	return nil
}

// GetAccount implements [store.Accounts].
func (s *Store) GetAccount(ctx context.Context, id string) (*store.Account, error) {
	a, err := scanAccount(s.r.QueryRowContext(ctx, qGetAccount, id))
	if err != nil {
		return nil, fmt.Errorf("sqlite: get account %q: %w", id, mapErr(err))
	}
	return a, nil
}

// ListAccounts implements [store.Accounts].
func (s *Store) ListAccounts(ctx context.Context) ([]*store.Account, error) {
	rows, err := s.r.QueryContext(ctx,
		`SELECT `+accountCols+` FROM accounts ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list accounts: %w", err)
	}
	defer rows.Close()
	var out []*store.Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list accounts: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list accounts: %w", err)
	}
	return out, nil
}

// UpdateAccount implements [store.Accounts] like UpdateClient: in one
// immediate transaction, with the same restrictions on update, and
// UpdatedAt set to s.Now() after update returns.
func (s *Store) UpdateAccount(ctx context.Context, id string, update func(*store.Account) error) (*store.Account, error) {
	var a *store.Account
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		a, err = scanAccount(tx.QueryRowContext(ctx, qGetAccount, id))
		if err != nil {
			return mapErr(err)
		}
		if err := update(a); err != nil {
			return err
		}
		if a.ID != id {
			return fmt.Errorf("update changed the account ID to %q", a.ID)
		}
		a.UpdatedAt = s.Now().UTC().Truncate(time.Microsecond)
		_, err = tx.ExecContext(ctx, `UPDATE accounts SET kind = ?, name = ?, status = ?,
			shared_secret = ?, audiences = ?, scopes = ?, created_at = ?, updated_at = ? WHERE id = ?`,
			string(a.Kind), a.Name, string(a.Status), sqlcodec.EncBytes(a.SharedSecret),
			sqlcodec.EncList(a.Audiences), sqlcodec.EncList(a.Scopes), sqlcodec.EncTime(a.CreatedAt), sqlcodec.EncTime(a.UpdatedAt), id)
		return mapErr(err)
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: update account %q: %w", id, err)
	}
	return a, nil
}
