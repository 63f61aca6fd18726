package sqlite

import (
	"context"
	"fmt"
	"time"
)

const qIsRevoked = `SELECT EXISTS (SELECT 1 FROM revoked_jtis WHERE jti = ?)`

// RevokeJTI implements [store.Revocations]. Revoking again extends the
// entry to the later expiry, never shortens it.
func (s *Store) RevokeJTI(ctx context.Context, jti string, expiresAt time.Time) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO revoked_jtis (jti, expires_at) VALUES (?, ?)
		ON CONFLICT (jti) DO UPDATE SET expires_at = excluded.expires_at
		WHERE excluded.expires_at > revoked_jtis.expires_at`,
		jti, encTime(expiresAt))
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
	n, err := rowsAffected(s.w.ExecContext(ctx,
		`DELETE FROM revoked_jtis WHERE expires_at < ?`, encTime(now)))
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete expired revocations: %w", err)
	}
	return n, nil
}
