package sqlite

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
	_, err := s.w.ExecContext(ctx, `INSERT INTO certificates (`+certCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.AccountID, sqlcodec.EncBytes(c.DER), sqlcodec.EncBytes(c.PrivateKey),
		sqlcodec.EncTime(c.NotBefore), sqlcodec.EncTime(c.NotAfter), sqlcodec.EncTime(c.CreatedAt))
	if err != nil {
		return fmt.Errorf("sqlite: add certificate %q: %w", c.ID, mapErr(err))
	}
	return nil
}

// ListCertificates implements [store.Certificates].
func (s *Store) ListCertificates(ctx context.Context, accountID string) ([]*store.Certificate, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+certCols+` FROM certificates
		WHERE account_id = ? ORDER BY created_at DESC, id DESC`, accountID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list certificates of %q: %w", accountID, err)
	}
	defer rows.Close()
	var out []*store.Certificate
	for rows.Next() {
		var (
			c                          store.Certificate
			notBefore, notAfter, added int64
		)
		err := rows.Scan(&c.ID, &c.AccountID, &c.DER, &c.PrivateKey,
			&notBefore, &notAfter, &added)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list certificates of %q: %w", accountID, err)
		}
		c.NotBefore = sqlcodec.DecTime(notBefore)
		c.NotAfter = sqlcodec.DecTime(notAfter)
		c.CreatedAt = sqlcodec.DecTime(added)
		out = append(out, &c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list certificates of %q: %w", accountID, err)
	}
	return out, nil
}

// DeleteCertificate implements [store.Certificates]. A certificate of
// another account is reported ErrNotFound and left alone.
func (s *Store) DeleteCertificate(ctx context.Context, accountID, id string) error {
	n, err := rowsAffected(s.w.ExecContext(ctx,
		`DELETE FROM certificates WHERE account_id = ? AND id = ?`, accountID, id))
	if err != nil {
		return fmt.Errorf("sqlite: delete certificate %q: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("sqlite: delete certificate %q of %q: %w", id, accountID, store.ErrNotFound)
	}
	return nil
}
