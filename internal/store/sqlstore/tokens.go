package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlcodec"
	"github.com/keybridge/sts/internal/store/sqlrows"
)

// rotateAttempts bounds how often RotateRefreshToken runs its transaction
// when the database aborts it to break a deadlock (Dialect.Retryable).
const rotateAttempts = 3

// CreateToken implements [store.Tokens].
func (s *Store) CreateToken(ctx context.Context, t *store.TokenRecord) error {
	if _, err := s.w.Exec(ctx, s.q.InsertToken, sqlrows.TokenValues(t)...); err != nil {
		return s.errorf("create token: %w", s.mapErr(err))
	}
	return nil
}

// GetToken implements [store.Tokens] with one primary-key query.
func (s *Store) GetToken(ctx context.Context, hash []byte) (*store.TokenRecord, error) {
	t, err := sqlrows.ScanToken(s.r.QueryRow(ctx, s.q.GetToken, hash))
	if err != nil {
		return nil, s.errorf("get token: %w", s.mapErr(err))
	}
	return t, nil
}

// RotateRefreshToken implements [store.Tokens] in one transaction that
// locks the old token as it reads it (SQLite's immediate transaction, or
// SELECT … FOR UPDATE): of two concurrent rotations of the same token one
// wins and the other, once the winner commits, reads the token consumed and
// is a replay. A token that is not a refresh token is reported ErrNotFound.
//
// In PostgreSQL two replays of different tokens of one family can deadlock
// (each holds its token and revokes the other's); the database aborts one,
// which is run again.
func (s *Store) RotateRefreshToken(ctx context.Context, oldHash []byte, now time.Time, next *store.TokenRecord) error {
	if next == nil {
		return s.errorf("rotate refresh token: nil successor")
	}
	var err error
	for range rotateAttempts {
		err = s.rotateRefreshToken(ctx, oldHash, now, next)
		if err == nil || s.d.Retryable == nil || !s.d.Retryable(err) {
			break
		}
	}
	if err != nil {
		return s.errorf("rotate refresh token: %w", err)
	}
	return nil
}

func (s *Store) rotateRefreshToken(ctx context.Context, oldHash []byte, now time.Time, next *store.TokenRecord) error {
	// A replay commits the revocation of the family, then fails.
	replayed := false
	err := s.inTx(ctx, func(tx Executor) error {
		var (
			kind, family               string
			expires, revoked, consumed int64
		)
		err := tx.QueryRow(ctx, s.refreshStateForUpdate, oldHash).
			Scan(&kind, &family, &expires, &revoked, &consumed)
		if err != nil {
			return s.mapErr(err)
		}
		if store.TokenKind(kind) != store.TokenRefresh {
			return fmt.Errorf("%w: a %s token", store.ErrNotFound, kind)
		}
		if consumed != 0 {
			// RFC 9700 §4.14.2: reuse of a rotated refresh token means it
			// leaked; revoke the whole family. The revocation is committed
			// although the caller gets an error.
			replayed = true
			if family != "" {
				err = s.revokeFamily(ctx, tx, family, now)
			} else {
				_, err = tx.Exec(ctx, s.q.RevokeUnrevoked, sqlcodec.EncTime(now), oldHash)
			}
			if err != nil {
				return fmt.Errorf("revoke family: %w", err)
			}
			return nil
		}
		if revoked != 0 || expires <= sqlcodec.EncTime(now) {
			return store.ErrTokenInactive
		}
		if _, err := tx.Exec(ctx, s.q.ConsumeToken, sqlcodec.EncTime(now), oldHash); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, s.q.InsertToken, sqlrows.TokenValues(next)...); err != nil {
			return fmt.Errorf("insert successor: %w", s.mapErr(err))
		}
		return nil
	})
	if err == nil && replayed {
		return store.ErrTokenReplayed
	}
	return err
}

// RevokeToken implements [store.Tokens]. Revoking a revoked token succeeds
// and keeps the first revocation time.
func (s *Store) RevokeToken(ctx context.Context, hash []byte, now time.Time) error {
	n, err := s.w.Exec(ctx, s.q.RevokeToken, sqlcodec.EncTime(now), hash)
	if err != nil {
		return s.errorf("revoke token: %w", err)
	}
	if n == 0 {
		return s.errorf("revoke token: %w", store.ErrNotFound)
	}
	return nil
}

// RevokeFamily implements [store.Tokens] in one transaction, which
// announces the family's revocation. Tokens without a family belong to
// none: an empty familyID revokes nothing.
func (s *Store) RevokeFamily(ctx context.Context, familyID string, now time.Time) error {
	if familyID == "" {
		return nil
	}
	err := s.inTx(ctx, func(tx Executor) error { return s.revokeFamily(ctx, tx, familyID, now) })
	if err != nil {
		return s.errorf("revoke family %q: %w", familyID, err)
	}
	return nil
}

// revokeFamily marks the family's tokens revoked, records the family among
// the revocations, for its JWTs (see [store.Tokens.RevokeFamily]), and
// announces it on commit, so that every instance refuses the family's
// JWTs at once.
func (s *Store) revokeFamily(ctx context.Context, tx Executor, familyID string, now time.Time) error {
	prefix := familyID + store.FamilySeparator
	if _, err := tx.Exec(ctx, s.q.RevokeFamily, sqlcodec.EncTime(now), familyID, len(prefix), prefix); err != nil {
		return err
	}
	key := store.FamilyRevocation(familyID)
	if _, err := tx.Exec(ctx, s.q.RecordFamilyRevocation, key, sqlcodec.EncTime(now), familyID, len(prefix), prefix); err != nil {
		return err
	}
	return s.notify(ctx, tx, store.ChangeRevocation, key)
}

// DeleteExpiredTokens implements [store.Tokens].
func (s *Store) DeleteExpiredTokens(ctx context.Context, now time.Time) (int, error) {
	n, err := s.w.Exec(ctx, s.q.DeleteExpiredTokens, sqlcodec.EncTime(now))
	if err != nil {
		return 0, s.errorf("delete expired tokens: %w", err)
	}
	return int(n), nil
}
