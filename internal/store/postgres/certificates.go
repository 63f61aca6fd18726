package postgres

import (
	"context"
	"fmt"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlrows"
)

// AddCertificate implements [store.Certificates]. A certificate's ID is its
// thumbprint, so the same certificate cannot belong to two accounts: adding
// it to another one is ErrConflict too.
func (s *Store) AddCertificate(ctx context.Context, c *store.Certificate) error {
	if _, err := s.pool.Exec(ctx, queries.InsertCertificate, sqlrows.CertificateValues(c)...); err != nil {
		return fmt.Errorf("postgres: add certificate %q: %w", c.ID, mapErr(err))
	}
	return nil
}

// ListCertificates implements [store.Certificates].
func (s *Store) ListCertificates(ctx context.Context, accountID string) ([]*store.Certificate, error) {
	rows, err := s.pool.Query(ctx, queries.ListCertificates, accountID)
	out, err := collect(rows, err, sqlrows.ScanCertificate)
	if err != nil {
		return nil, fmt.Errorf("postgres: list certificates of %q: %w", accountID, err)
	}
	return out, nil
}

// DeleteCertificate implements [store.Certificates]. A certificate of
// another account is reported ErrNotFound and left alone.
func (s *Store) DeleteCertificate(ctx context.Context, accountID, id string) error {
	n, err := rowsAffected(s.pool.Exec(ctx, queries.DeleteCertificate, accountID, id))
	if err != nil {
		return fmt.Errorf("postgres: delete certificate %q: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("postgres: delete certificate %q of %q: %w", id, accountID, store.ErrNotFound)
	}
	return nil
}
