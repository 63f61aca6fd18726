package sqlstore

import (
	"context"
	"time"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlcodec"
	"github.com/keybridge/sts/internal/store/sqlrows"
)

// RevokeJTI implements [store.Revocations], and announces the revocation.
// Revoking again extends the entry to the later expiry, never shortens it.
func (s *Store) RevokeJTI(ctx context.Context, jti string, expiresAt, now time.Time) error {
	err := s.announced(ctx, store.ChangeRevocation, jti, func(e Executor) error {
		_, err := e.Exec(ctx, s.q.RevokeJTI, jti, sqlcodec.EncTime(expiresAt), sqlcodec.EncTime(now))
		return err
	})
	if err != nil {
		return s.errorf("revoke jti: %w", err)
	}
	return nil
}

// IsRevoked implements [store.Revocations] with one primary-key query.
func (s *Store) IsRevoked(ctx context.Context, jti string) (bool, error) {
	var revoked bool
	if err := s.r.QueryRow(ctx, s.q.IsRevoked, jti).Scan(&revoked); err != nil {
		return false, s.errorf("is revoked: %w", err)
	}
	return revoked, nil
}

// DeleteExpiredRevocations implements [store.Revocations].
func (s *Store) DeleteExpiredRevocations(ctx context.Context, now time.Time) (int, error) {
	n, err := s.w.Exec(ctx, s.q.DeleteExpiredRevocations, sqlcodec.EncTime(now))
	if err != nil {
		return 0, s.errorf("delete expired revocations: %w", err)
	}
	return int(n), nil
}

// ListRevocations implements [store.Revocations].
func (s *Store) ListRevocations(ctx context.Context, since, now time.Time) ([]store.Revocation, error) {
	out, err := collect(ctx, s.r, sqlrows.ScanRevocation, s.q.ListRevocations,
		sqlcodec.EncTime(since), sqlcodec.EncTime(now))
	if err != nil {
		return nil, s.errorf("list revocations: %w", err)
	}
	return out, nil
}

var _ store.RevocationVisitor = (*Store)(nil)

// EachRevocation implements [store.RevocationVisitor].
func (s *Store) EachRevocation(ctx context.Context, since, now time.Time, each func(store.Revocation) error) error {
	err := s.r.Query(ctx, s.q.ListRevocations, []any{sqlcodec.EncTime(since), sqlcodec.EncTime(now)}, func(r Row) error {
		v, err := sqlrows.ScanRevocation(r)
		if err != nil {
			return err
		}
		return each(v)
	})
	if err != nil {
		return s.errorf("list revocations: %w", err)
	}
	return nil
}
