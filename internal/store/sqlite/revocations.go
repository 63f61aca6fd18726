package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlcodec"
	"github.com/keybridge/sts/internal/store/sqlrows"
)

// RevokeJTI implements [store.Revocations]. Revoking again extends the
// entry to the later expiry, never shortens it.
func (s *Store) RevokeJTI(ctx context.Context, jti string, expiresAt, now time.Time) error {
	_, err := s.w.ExecContext(ctx, queries.RevokeJTI, jti, sqlcodec.EncTime(expiresAt), sqlcodec.EncTime(now))
	if err != nil {
		return fmt.Errorf("sqlite: revoke jti: %w", err)
	}
	return nil
}

// IsRevoked implements [store.Revocations].
func (s *Store) IsRevoked(ctx context.Context, jti string) (bool, error) {
	var revoked bool
	if err := s.isRevoked.QueryRowContext(ctx, jti).Scan(&revoked); err != nil {
		return false, fmt.Errorf("sqlite: is revoked: %w", err)
	}
	return revoked, nil
}

// DeleteExpiredRevocations implements [store.Revocations].
func (s *Store) DeleteExpiredRevocations(ctx context.Context, now time.Time) (int, error) {
	n, err := rowsAffected(s.w.ExecContext(ctx, queries.DeleteExpiredRevocations, sqlcodec.EncTime(now)))
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete expired revocations: %w", err)
	}
	return n, nil
}

// ListRevocations implements [store.Revocations].
func (s *Store) ListRevocations(ctx context.Context, since, now time.Time) ([]store.Revocation, error) {
	rows, err := s.r.QueryContext(ctx, queries.ListRevocations, sqlcodec.EncTime(since), sqlcodec.EncTime(now))
	out, err := collect(rows, err, sqlrows.ScanRevocation)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list revocations: %w", err)
	}
	return out, nil
}
