package sqlstore

import (
	"context"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlrows"
)

// Every write of a trusted issuer is announced (store.ChangeIssuer), its
// creation too: an instance may remember that no issuer has some iss
// value, or hold the keys of one, and must hear of any change at once.

// CreateIssuer implements [store.Issuers]; the unique name and the unique
// issuer make a duplicate of either ErrConflict.
func (s *Store) CreateIssuer(ctx context.Context, i *store.TrustedIssuer) error {
	err := s.announced(ctx, store.ChangeIssuer, i.Name, func(e Executor) error {
		_, err := e.Exec(ctx, s.q.InsertIssuer, sqlrows.IssuerValues(i)...)
		return s.mapErr(err)
	})
	if err != nil {
		return s.errorf("create trusted issuer %q: %w", i.Name, err)
	}
	return nil
}

// GetIssuer implements [store.Issuers].
func (s *Store) GetIssuer(ctx context.Context, name string) (*store.TrustedIssuer, error) {
	i, err := sqlrows.ScanIssuer(s.r.QueryRow(ctx, s.q.GetIssuer, name))
	if err != nil {
		return nil, s.errorf("get trusted issuer %q: %w", name, s.mapErr(err))
	}
	return i, nil
}

// ListIssuers implements [store.Issuers]. Names are ordered by their bytes,
// whatever the database's collation.
func (s *Store) ListIssuers(ctx context.Context) ([]*store.TrustedIssuer, error) {
	out, err := collect(ctx, s.r, sqlrows.ScanIssuer, s.q.ListIssuers)
	if err != nil {
		return nil, s.errorf("list trusted issuers: %w", err)
	}
	return out, nil
}

// UpdateIssuer implements [store.Issuers] like UpdateClient: one
// transaction reads the issuer (locking it), applies update, writes it and
// announces the change.
func (s *Store) UpdateIssuer(ctx context.Context, name string, update func(*store.TrustedIssuer) error) (*store.TrustedIssuer, error) {
	return updateRow(ctx, s, sqlrows.IssuerRows, s.getIssuerForUpdate, s.q.UpdateIssuer, name, store.ChangeIssuer, update)
}

// DeleteIssuer implements [store.Issuers], and announces the change.
func (s *Store) DeleteIssuer(ctx context.Context, name string) error {
	err := s.announced(ctx, store.ChangeIssuer, name, func(e Executor) error {
		n, err := e.Exec(ctx, s.q.DeleteIssuer, name)
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return s.errorf("delete trusted issuer %q: %w", name, err)
	}
	return nil
}
