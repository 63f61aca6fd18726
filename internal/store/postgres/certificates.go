package postgres

import (
	"context"
	"fmt"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlcodec"
)

const certCols = `id, account_id, der, private_key, not_before, not_after, created_at`

// AddCertificate implements [store.Certificates]. A certificate's ID is its
// thumbprint, so the same certificate cannot belong to two accounts: adding
// it to another one is ErrConflict too.
func (s *Store) AddCertificate(ctx context.Context, c *store.Certificate) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO certificates (`+certCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		c.ID, c.AccountID, sqlcodec.EncBytes(c.DER), sqlcodec.EncBytes(c.PrivateKey),
		sqlcodec.EncTime(c.NotBefore), sqlcodec.EncTime(c.NotAfter), sqlcodec.EncTime(c.CreatedAt))
	if err != nil {
		return fmt.Errorf("postgres: add certificate %q: %w", c.ID, mapErr(err))
	}
	return nil
}

// ListCertificates implements [store.Certificates].
func (s *Store) ListCertificates(ctx context.Context, accountID string) ([]*store.Certificate, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+certCols+` FROM certificates
		WHERE account_id = $1 ORDER BY created_at DESC, id COLLATE "C" DESC`, accountID)
	out, err := collect(rows, err, func(row scanner) (*store.Certificate, error) {
		var (
			c                          store.Certificate
			notBefore, notAfter, added int64
		)
		err := row.Scan(&c.ID, &c.AccountID, &c.DER, &c.PrivateKey, &notBefore, &notAfter, &added)
		if err != nil {
			return nil, err
		}
		c.NotBefore = sqlcodec.DecTime(notBefore)
		c.NotAfter = sqlcodec.DecTime(notAfter)
		c.CreatedAt = sqlcodec.DecTime(added)
		return &c, nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list certificates of %q: %w", accountID, err)
	}
	return out, nil
}

// DeleteCertificate implements [store.Certificates]. A certificate of
// another account is reported ErrNotFound and left alone.
func (s *Store) DeleteCertificate(ctx context.Context, accountID, id string) error {
	n, err := rowsAffected(s.pool.Exec(ctx,
		`DELETE FROM certificates WHERE account_id = $1 AND id = $2`, accountID, id))
	if err != nil {
		return fmt.Errorf("postgres: delete certificate %q: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("postgres: delete certificate %q of %q: %w", id, accountID, store.ErrNotFound)
	}
	return nil
}
