package postgres

import (
	"context"
	"fmt"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlrows"
)

// CreateAccount implements [store.Accounts].
func (s *Store) CreateAccount(ctx context.Context, a *store.Account) error {
	if _, err := s.pool.Exec(ctx, queries.InsertAccount, sqlrows.AccountValues(a)...); err != nil {
		return fmt.Errorf("postgres: create account %q: %w", a.ID, mapErr(err))
	}
	return nil
}

// GetAccount implements [store.Accounts].
func (s *Store) GetAccount(ctx context.Context, id string) (*store.Account, error) {
	a, err := sqlrows.ScanAccount(s.pool.QueryRow(ctx, queries.GetAccount, id))
	if err != nil {
		return nil, fmt.Errorf("postgres: get account %q: %w", id, mapErr(err))
	}
	return a, nil
}

// ListAccounts implements [store.Accounts].
func (s *Store) ListAccounts(ctx context.Context) ([]*store.Account, error) {
	rows, err := s.pool.Query(ctx, queries.ListAccounts)
	out, err := collect(rows, err, sqlrows.ScanAccount)
	if err != nil {
		return nil, fmt.Errorf("postgres: list accounts: %w", err)
	}
	return out, nil
}

// UpdateAccount implements [store.Accounts] like UpdateClient.
func (s *Store) UpdateAccount(ctx context.Context, id string, update func(*store.Account) error) (*store.Account, error) {
	return updateRow(ctx, s, sqlrows.AccountRows, qGetAccountForUpdate, queries.UpdateAccount, id, store.ChangeAccount, update)
}
