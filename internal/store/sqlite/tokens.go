package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlcodec"
	"github.com/keybridge/sts/internal/store/sqlrows"
)

// CreateToken implements [store.Tokens].
func (s *Store) CreateToken(ctx context.Context, t *store.TokenRecord) error {
	if _, err := s.w.ExecContext(ctx, queries.InsertToken, sqlrows.TokenValues(t)...); err != nil {
		return fmt.Errorf("sqlite: create token: %w", mapErr(err))
	}
	return nil
}

// GetToken implements [store.Tokens].
func (s *Store) GetToken(ctx context.Context, hash []byte) (*store.TokenRecord, error) {
	t, err := sqlrows.ScanToken(s.getToken.QueryRowContext(ctx, hash))
	if err != nil {
		return nil, fmt.Errorf("sqlite: get token: %w", mapErr(err))
	}
	return t, nil
}

// RotateRefreshToken implements [store.Tokens] in one immediate transaction,
// so of two concurrent rotations of the same token one wins and the other
// is a replay. A token that is not a refresh token is reported ErrNotFound.
func (s *Store) RotateRefreshToken(ctx context.Context, oldHash []byte, now time.Time, next *store.TokenRecord) error {
	if next == nil {
		return errors.New("sqlite: rotate refresh token: nil successor")
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: rotate refresh token: %w", err)
	}
	defer tx.Rollback()

	var (
		kind, family               string
		expires, revoked, consumed int64
	)
	err = tx.QueryRowContext(ctx, queries.RefreshState, oldHash).
		Scan(&kind, &family, &expires, &revoked, &consumed)
	if err != nil {
		return fmt.Errorf("sqlite: rotate refresh token: %w", mapErr(err))
	}
	if store.TokenKind(kind) != store.TokenRefresh {
		return fmt.Errorf("sqlite: rotate refresh token: %w: a %s token", store.ErrNotFound, kind)
	}
	if consumed != 0 {
		// RFC 9700 §4.14.2: reuse of a rotated refresh token means it
		// leaked; revoke the whole family. The revocation is committed
		// although the caller gets an error.
		if family != "" {
			err = revokeFamily(ctx, tx, family, now)
		} else {
			_, err = tx.ExecContext(ctx, queries.RevokeUnrevoked, sqlcodec.EncTime(now), oldHash)
		}
		if err == nil {
			err = tx.Commit()
		}
		if err != nil {
			return fmt.Errorf("sqlite: rotate refresh token: revoke family: %w", err)
		}
		return fmt.Errorf("sqlite: rotate refresh token: %w", store.ErrTokenReplayed)
	}
	if revoked != 0 || expires <= sqlcodec.EncTime(now) {
		return fmt.Errorf("sqlite: rotate refresh token: %w", store.ErrTokenInactive)
	}
	_, err = tx.ExecContext(ctx, queries.ConsumeToken, sqlcodec.EncTime(now), oldHash)
	if err != nil {
		return fmt.Errorf("sqlite: rotate refresh token: %w", err)
	}
	if _, err := tx.ExecContext(ctx, queries.InsertToken, sqlrows.TokenValues(next)...); err != nil {
		return fmt.Errorf("sqlite: rotate refresh token: insert successor: %w", mapErr(err))
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: rotate refresh token: %w", err)
	}
	return nil
}

// RevokeToken implements [store.Tokens]. Revoking a revoked token succeeds
// and keeps the first revocation time.
func (s *Store) RevokeToken(ctx context.Context, hash []byte, now time.Time) error {
	n, err := rowsAffected(s.w.ExecContext(ctx, queries.RevokeToken, sqlcodec.EncTime(now), hash))
	if err != nil {
		return fmt.Errorf("sqlite: revoke token: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("sqlite: revoke token: %w", store.ErrNotFound)
	}
	return nil
}

// RevokeFamily implements [store.Tokens] in one transaction. Tokens
// without a family belong to none: an empty familyID revokes nothing.
func (s *Store) RevokeFamily(ctx context.Context, familyID string, now time.Time) error {
	if familyID == "" {
		return nil
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error { return revokeFamily(ctx, tx, familyID, now) })
	if err != nil {
		return fmt.Errorf("sqlite: revoke family %q: %w", familyID, err)
	}
	return nil
}

// revokeFamily marks the family's tokens revoked and records the family
// among the revocations, for its JWTs (see [store.Tokens.RevokeFamily]).
func revokeFamily(ctx context.Context, tx *sql.Tx, familyID string, now time.Time) error {
	if _, err := tx.ExecContext(ctx, queries.RevokeFamily, sqlcodec.EncTime(now), familyID); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, queries.RecordFamilyRevocation,
		store.FamilyRevocation(familyID), sqlcodec.EncTime(now), familyID)
	return err
}

// DeleteExpiredTokens implements [store.Tokens].
func (s *Store) DeleteExpiredTokens(ctx context.Context, now time.Time) (int, error) {
	n, err := rowsAffected(s.w.ExecContext(ctx, queries.DeleteExpiredTokens, sqlcodec.EncTime(now)))
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete expired tokens: %w", err)
	}
	return n, nil
}
