package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlcodec"
	"github.com/keybridge/sts/internal/store/sqlrows"
)

// RevokeJTI implements [store.Revocations]. Revoking again extends the
// entry to the later expiry, never shortens it.
func (s *Store) RevokeJTI(ctx context.Context, jti string, expiresAt, now time.Time) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, queries.RevokeJTI, jti, sqlcodec.EncTime(expiresAt), sqlcodec.EncTime(now))
		if err != nil {
			return err
		}
		return s.notify(ctx, tx, store.ChangeRevocation, jti)
	})
	if err != nil {
		return fmt.Errorf("postgres: revoke jti: %w", err)
	}
	return nil
}

// IsRevoked implements [store.Revocations] with one primary-key query.
func (s *Store) IsRevoked(ctx context.Context, jti string) (bool, error) {
	var revoked bool
	if err := s.pool.QueryRow(ctx, queries.IsRevoked, jti).Scan(&revoked); err != nil {
		return false, fmt.Errorf("postgres: is revoked: %w", err)
	}
	return revoked, nil
}

// DeleteExpiredRevocations implements [store.Revocations].
func (s *Store) DeleteExpiredRevocations(ctx context.Context, now time.Time) (int, error) {
	n, err := rowsAffected(s.pool.Exec(ctx, queries.DeleteExpiredRevocations, sqlcodec.EncTime(now)))
	if err != nil {
		return 0, fmt.Errorf("postgres: delete expired revocations: %w", err)
	}
	return n, nil
}

// ListRevocations implements [store.Revocations].
func (s *Store) ListRevocations(ctx context.Context, since, now time.Time) ([]store.Revocation, error) {
	rows, err := s.pool.Query(ctx, queries.ListRevocations, sqlcodec.EncTime(since), sqlcodec.EncTime(now))
	out, err := collect(rows, err, sqlrows.ScanRevocation)
	if err != nil {
		return nil, fmt.Errorf("postgres: list revocations: %w", err)
	}
	return out, nil
}
