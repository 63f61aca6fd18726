package sqlstore

import (
	"context"
	"time"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlcodec"
	"github.com/keybridge/sts/internal/store/sqlrows"
)

// CreateSession implements [store.Sessions]. A session whose hash exists is
// ErrConflict: it never replaces another.
func (s *Store) CreateSession(ctx context.Context, ss *store.Session) error {
	if _, err := s.w.Exec(ctx, s.q.InsertSession, sqlrows.SessionValues(ss)...); err != nil {
		return s.errorf("create session: %w", s.mapErr(err))
	}
	return nil
}

// GetSession implements [store.Sessions]. A session expiring at now is still
// returned, as DeleteExpiredSessions at now keeps it.
func (s *Store) GetSession(ctx context.Context, hash []byte, now time.Time) (*store.Session, error) {
	ss, err := sqlrows.ScanSession(s.r.QueryRow(ctx, s.q.GetSession, hash, sqlcodec.EncTime(now)))
	if err != nil {
		return nil, s.errorf("get session: %w", s.mapErr(err))
	}
	return ss, nil
}

// DeleteSession implements [store.Sessions].
func (s *Store) DeleteSession(ctx context.Context, hash []byte) error {
	if _, err := s.w.Exec(ctx, s.q.DeleteSession, hash); err != nil {
		return s.errorf("delete session: %w", err)
	}
	return nil
}

// DeleteSubjectSessions implements [store.Sessions].
func (s *Store) DeleteSubjectSessions(ctx context.Context, subject string) error {
	if _, err := s.w.Exec(ctx, s.q.DeleteSubjectSessions, subject); err != nil {
		return s.errorf("delete sessions of %q: %w", subject, err)
	}
	return nil
}

// DeleteExpiredSessions implements [store.Sessions].
func (s *Store) DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error) {
	n, err := s.w.Exec(ctx, s.q.DeleteExpiredSessions, sqlcodec.EncTime(now))
	if err != nil {
		return 0, s.errorf("delete expired sessions: %w", err)
	}
	return int(n), nil
}
