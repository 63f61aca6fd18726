package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlcodec"
)

// RevokeJTI implements [store.Revocations]. Revoking again extends the
// entry to the later expiry, never shortens it.
func (s *Store) RevokeJTI(ctx context.Context, jti string, expiresAt, now time.Time) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO revoked_jtis (jti, expires_at, revoked_at) VALUES ($1, $2, $3)
			ON CONFLICT (jti) DO UPDATE SET expires_at = excluded.expires_at
			WHERE excluded.expires_at > revoked_jtis.expires_at`,
			jti, sqlcodec.EncTime(expiresAt), sqlcodec.EncTime(now))
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
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM revoked_jtis WHERE jti = $1)`, jti).
		Scan(&revoked)
	if err != nil {
		return false, fmt.Errorf("postgres: is revoked: %w", err)
	}
	return revoked, nil
}

// DeleteExpiredRevocations implements [store.Revocations].
func (s *Store) DeleteExpiredRevocations(ctx context.Context, now time.Time) (int, error) {
	n, err := rowsAffected(s.pool.Exec(ctx,
		`DELETE FROM revoked_jtis WHERE expires_at < $1`, sqlcodec.EncTime(now)))
	if err != nil {
		return 0, fmt.Errorf("postgres: delete expired revocations: %w", err)
	}
	return n, nil
}

// ListRevocations implements [store.Revocations].
func (s *Store) ListRevocations(ctx context.Context, since, now time.Time) ([]store.Revocation, error) {
	rows, err := s.pool.Query(ctx, `SELECT jti, expires_at, revoked_at FROM revoked_jtis
		WHERE revoked_at >= $1 AND expires_at >= $2 ORDER BY revoked_at`,
		sqlcodec.EncTime(since), sqlcodec.EncTime(now))
	out, err := collect(rows, err, func(row scanner) (store.Revocation, error) {
		var (
			r       store.Revocation
			exp, at int64
		)
		if err := row.Scan(&r.JTI, &exp, &at); err != nil {
			return r, err
		}
		r.ExpiresAt, r.RevokedAt = sqlcodec.DecTime(exp), sqlcodec.DecTime(at)
		return r, nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list revocations: %w", err)
	}
	return out, nil
}
