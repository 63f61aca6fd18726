package sqlstore

import (
	"context"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlrows"
)

// CreateAccount implements [store.Accounts].
func (s *Store) CreateAccount(ctx context.Context, a *store.Account) error {
	if _, err := s.w.Exec(ctx, s.q.InsertAccount, sqlrows.AccountValues(a)...); err != nil {
		return s.errorf("create account %q: %w", a.ID, s.mapErr(err))
	}
	return nil
}

// GetAccount implements [store.Accounts].
func (s *Store) GetAccount(ctx context.Context, id string) (*store.Account, error) {
	a, err := sqlrows.ScanAccount(s.r.QueryRow(ctx, s.q.GetAccount, id))
	if err != nil {
		return nil, s.errorf("get account %q: %w", id, s.mapErr(err))
	}
	return a, nil
}

// ListAccounts implements [store.Accounts].
func (s *Store) ListAccounts(ctx context.Context) ([]*store.Account, error) {
	out, err := collect(ctx, s.r, sqlrows.ScanAccount, s.q.ListAccounts)
	if err != nil {
		return nil, s.errorf("list accounts: %w", err)
	}
	return out, nil
}

// UpdateAccount implements [store.Accounts] like UpdateClient.
func (s *Store) UpdateAccount(ctx context.Context, id string, update func(*store.Account) error) (*store.Account, error) {
	return updateRow(ctx, s, sqlrows.AccountRows, s.getAccountForUpdate, s.q.UpdateAccount, id, store.ChangeAccount, update)
}
