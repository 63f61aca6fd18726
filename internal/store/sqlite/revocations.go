package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlcodec"
)

const qIsRevoked = `SELECT EXISTS (SELECT 1 FROM revoked_jtis WHERE jti = ?)`

// RevokeJTI implements [store.Revocations]. Revoking again extends the
// entry to the later expiry, never shortens it.
func (s *Store) RevokeJTI(ctx context.Context, jti string, expiresAt, now time.Time) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO revoked_jtis (jti, expires_at, revoked_at) VALUES (?, ?, ?)
		ON CONFLICT (jti) DO UPDATE SET expires_at = excluded.expires_at
		WHERE excluded.expires_at > revoked_jtis.expires_at`,
		jti, sqlcodec.EncTime(expiresAt), sqlcodec.EncTime(now))
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
		`DELETE FROM revoked_jtis WHERE expires_at < ?`, sqlcodec.EncTime(now)))
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete expired revocations: %w", err)
	}
	return n, nil
}

// ListRevocations implements [store.Revocations].
func (s *Store) ListRevocations(ctx context.Context, since, now time.Time) ([]store.Revocation, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT jti, expires_at, revoked_at FROM revoked_jtis
		WHERE revoked_at >= ? AND expires_at >= ? ORDER BY revoked_at`, sqlcodec.EncTime(since), sqlcodec.EncTime(now))
	if err != nil {
		return nil, fmt.Errorf("sqlite: list revocations: %w", err)
	}
	defer rows.Close()
	var out []store.Revocation
	for rows.Next() {
		var r store.Revocation
		var exp, at int64
		if err := rows.Scan(&r.JTI, &exp, &at); err != nil {
			return nil, fmt.Errorf("sqlite: list revocations: %w", err)
		}
		r.ExpiresAt, r.RevokedAt = sqlcodec.DecTime(exp), sqlcodec.DecTime(at)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list revocations: %w", err)
	}
	return out, nil
}
