package sqlstore

import (
	"context"
	"errors"

	"github.com/keybridge/sts/internal/store"
)

var errIssuersTODO = errors.New("sqlstore: trusted issuers not implemented yet")

// CreateIssuer implements [store.Issuers].
func (s *Store) CreateIssuer(ctx context.Context, i *store.TrustedIssuer) error {
	return errIssuersTODO
}

// GetIssuer implements [store.Issuers].
func (s *Store) GetIssuer(ctx context.Context, name string) (*store.TrustedIssuer, error) {
	return nil, store.ErrNotFound
}

// ListIssuers implements [store.Issuers].
func (s *Store) ListIssuers(ctx context.Context) ([]*store.TrustedIssuer, error) {
	return nil, nil
}

// UpdateIssuer implements [store.Issuers].
func (s *Store) UpdateIssuer(ctx context.Context, name string, update func(*store.TrustedIssuer) error) (*store.TrustedIssuer, error) {
	return nil, store.ErrNotFound
}

// DeleteIssuer implements [store.Issuers].
func (s *Store) DeleteIssuer(ctx context.Context, name string) error {
	return store.ErrNotFound
}
