package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlcodec"
)

// CreateSession implements [store.Sessions]. A session whose hash exists is
// ErrConflict: it never replaces another.
func (s *Store) CreateSession(ctx context.Context, ss *store.Session) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO sessions (hash, subject, csrf, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5)`,
		ss.Hash, ss.Subject, ss.CSRF, sqlcodec.EncTime(ss.CreatedAt), sqlcodec.EncTime(ss.ExpiresAt))
	if err != nil {
		return fmt.Errorf("postgres: create session: %w", mapErr(err))
	}
	return nil
}

// GetSession implements [store.Sessions]. A session expiring at now is still
// returned, as DeleteExpiredSessions at now keeps it.
func (s *Store) GetSession(ctx context.Context, hash []byte, now time.Time) (*store.Session, error) {
	var (
		ss               store.Session
		created, expires int64
	)
	err := s.pool.QueryRow(ctx, `SELECT hash, subject, csrf, created_at, expires_at
		FROM sessions WHERE hash = $1 AND expires_at >= $2`, hash, sqlcodec.EncTime(now)).
		Scan(&ss.Hash, &ss.Subject, &ss.CSRF, &created, &expires)
	if err != nil {
		return nil, fmt.Errorf("postgres: get session: %w", mapErr(err))
	}
	ss.CreatedAt = sqlcodec.DecTime(created)
	ss.ExpiresAt = sqlcodec.DecTime(expires)
	return &ss, nil
}

// DeleteSession implements [store.Sessions].
func (s *Store) DeleteSession(ctx context.Context, hash []byte) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE hash = $1`, hash); err != nil {
		return fmt.Errorf("postgres: delete session: %w", err)
	}
	return nil
}

// DeleteSubjectSessions implements [store.Sessions].
func (s *Store) DeleteSubjectSessions(ctx context.Context, subject string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE subject = $1`, subject); err != nil {
		return fmt.Errorf("postgres: delete sessions of %q: %w", subject, err)
	}
	return nil
}

// DeleteExpiredSessions implements [store.Sessions].
func (s *Store) DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error) {
	n, err := rowsAffected(s.pool.Exec(ctx,
		`DELETE FROM sessions WHERE expires_at < $1`, sqlcodec.EncTime(now)))
	if err != nil {
		return 0, fmt.Errorf("postgres: delete expired sessions: %w", err)
	}
	return n, nil
}
