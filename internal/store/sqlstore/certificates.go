package sqlstore

import (
	"context"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlrows"
)

// AddCertificate implements [store.Certificates]. A certificate's ID is its
// thumbprint, so the same certificate cannot belong to two accounts: adding
// it to another one is ErrConflict too.
func (s *Store) AddCertificate(ctx context.Context, c *store.Certificate) error {
	if _, err := s.w.Exec(ctx, s.q.InsertCertificate, sqlrows.CertificateValues(c)...); err != nil {
		return s.errorf("add certificate %q: %w", c.ID, s.mapErr(err))
	}
	return nil
}

// ListCertificates implements [store.Certificates].
func (s *Store) ListCertificates(ctx context.Context, accountID string) ([]*store.Certificate, error) {
	out, err := collect(ctx, s.r, sqlrows.ScanCertificate, s.q.ListCertificates, accountID)
	if err != nil {
		return nil, s.errorf("list certificates of %q: %w", accountID, err)
	}
	return out, nil
}

// DeleteCertificate implements [store.Certificates]. A certificate of
// another account is reported ErrNotFound and left alone.
func (s *Store) DeleteCertificate(ctx context.Context, accountID, id string) error {
	n, err := s.w.Exec(ctx, s.q.DeleteCertificate, accountID, id)
	if err != nil {
		return s.errorf("delete certificate %q: %w", id, err)
	}
	if n == 0 {
		return s.errorf("delete certificate %q of %q: %w", id, accountID, store.ErrNotFound)
	}
	return nil
}
