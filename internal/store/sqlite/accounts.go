package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlrows"
)

// CreateAccount implements [store.Accounts].
func (s *Store) CreateAccount(ctx context.Context, a *store.Account) error {
	if _, err := s.w.ExecContext(ctx, queries.InsertAccount, sqlrows.AccountValues(a)...); err != nil {
		return fmt.Errorf("sqlite: create account %q: %w", a.ID, mapErr(err))
	}
	return nil
}

// GetAccount implements [store.Accounts].
func (s *Store) GetAccount(ctx context.Context, id string) (*store.Account, error) {
	a, err := sqlrows.ScanAccount(s.r.QueryRowContext(ctx, queries.GetAccount, id))
	if err != nil {
		return nil, fmt.Errorf("sqlite: get account %q: %w", id, mapErr(err))
	}
	return a, nil
}

// ListAccounts implements [store.Accounts].
func (s *Store) ListAccounts(ctx context.Context) ([]*store.Account, error) {
	rows, err := s.r.QueryContext(ctx, queries.ListAccounts)
	out, err := collect(rows, err, sqlrows.ScanAccount)
	if err != nil {
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
		a, err = sqlrows.ScanAccount(tx.QueryRowContext(ctx, queries.GetAccount, id))
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
		_, err = tx.ExecContext(ctx, queries.UpdateAccount, sqlrows.UpdateArgs(sqlrows.AccountValues(a), id)...)
		return mapErr(err)
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: update account %q: %w", id, err)
	}
	return a, nil
}
