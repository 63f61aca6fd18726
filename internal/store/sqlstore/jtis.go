package sqlstore

import (
	"context"
	"time"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlcodec"
)

// ConsumeJTI implements [store.UsedJTIs]. The primary key decides: of
// concurrent inserts of the same (issuer, jti) one adds the row and the
// others, once it commits, find it there. ON CONFLICT DO NOTHING (rather
// than a failing insert) keeps a replay from being an SQL error, which in
// PostgreSQL would also abort an enclosing transaction. An entry stays until
// DeleteExpiredJTIs removes it, even past its expiry.
func (s *Store) ConsumeJTI(ctx context.Context, issuer, jti string, expiresAt time.Time) error {
	n, err := s.w.Exec(ctx, s.q.ConsumeJTI, issuer, jti, sqlcodec.EncTime(expiresAt))
	if err != nil {
		return s.errorf("consume jti %q of %q: %w", jti, issuer, err)
	}
	if n == 0 {
		return s.errorf("consume jti %q of %q: %w: used already", jti, issuer, store.ErrConflict)
	}
	return nil
}

// DeleteExpiredJTIs implements [store.UsedJTIs].
func (s *Store) DeleteExpiredJTIs(ctx context.Context, now time.Time) (int, error) {
	n, err := s.w.Exec(ctx, s.q.DeleteExpiredJTIs, sqlcodec.EncTime(now))
	if err != nil {
		return 0, s.errorf("delete expired jtis: %w", err)
	}
	return int(n), nil
}
