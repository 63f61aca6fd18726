package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlcodec"
	"github.com/keybridge/sts/internal/store/sqlrows"
)

// rotateAttempts bounds how often RotateRefreshToken runs its transaction
// when PostgreSQL aborts it to break a deadlock.
const rotateAttempts = 3

// CreateToken implements [store.Tokens].
func (s *Store) CreateToken(ctx context.Context, t *store.TokenRecord) error {
	if _, err := s.pool.Exec(ctx, queries.InsertToken, sqlrows.TokenValues(t)...); err != nil {
		return fmt.Errorf("postgres: create token: %w", mapErr(err))
	}
	return nil
}

// GetToken implements [store.Tokens] with one primary-key query.
func (s *Store) GetToken(ctx context.Context, hash []byte) (*store.TokenRecord, error) {
	t, err := sqlrows.ScanToken(s.pool.QueryRow(ctx, queries.GetToken, hash))
	if err != nil {
		return nil, fmt.Errorf("postgres: get token: %w", mapErr(err))
	}
	return t, nil
}

// RotateRefreshToken implements [store.Tokens] in one transaction that
// reads the old token with SELECT … FOR UPDATE: of two concurrent rotations
// of the same token one wins and the other, once the winner commits, reads
// the token consumed and is a replay. A token that is not a refresh token
// is reported ErrNotFound.
//
// Two replays of different tokens of one family can deadlock (each holds
// its token and revokes the other's); PostgreSQL aborts one, which is run
// again.
func (s *Store) RotateRefreshToken(ctx context.Context, oldHash []byte, now time.Time, next *store.TokenRecord) error {
	if next == nil {
		return errors.New("postgres: rotate refresh token: nil successor")
	}
	var err error
	for range rotateAttempts {
		if err = s.rotateRefreshToken(ctx, oldHash, now, next); !retryable(err) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("postgres: rotate refresh token: %w", err)
	}
	return nil
}

func (s *Store) rotateRefreshToken(ctx context.Context, oldHash []byte, now time.Time, next *store.TokenRecord) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	// Rolls back unless committed.
	defer tx.Rollback(ctx)

	var (
		kind, family               string
		expires, revoked, consumed int64
	)
	err = tx.QueryRow(ctx, qRefreshStateForUpdate, oldHash).
		Scan(&kind, &family, &expires, &revoked, &consumed)
	if err != nil {
		return mapErr(err)
	}
	if store.TokenKind(kind) != store.TokenRefresh {
		return fmt.Errorf("%w: a %s token", store.ErrNotFound, kind)
	}
	if consumed != 0 {
		// RFC 9700 §4.14.2: reuse of a rotated refresh token means it
		// leaked; revoke the whole family. The revocation is committed
		// although the caller gets an error.
		if family != "" {
			err = s.revokeFamily(ctx, tx, family, now)
		} else {
			_, err = tx.Exec(ctx, queries.RevokeUnrevoked, sqlcodec.EncTime(now), oldHash)
		}
		if err == nil {
			err = tx.Commit(ctx)
		}
		if err != nil {
			return fmt.Errorf("revoke family: %w", err)
		}
		return store.ErrTokenReplayed
	}
	if revoked != 0 || expires <= sqlcodec.EncTime(now) {
		return store.ErrTokenInactive
	}
	_, err = tx.Exec(ctx, queries.ConsumeToken, sqlcodec.EncTime(now), oldHash)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, queries.InsertToken, sqlrows.TokenValues(next)...); err != nil {
		return fmt.Errorf("insert successor: %w", mapErr(err))
	}
	return tx.Commit(ctx)
}

// RevokeToken implements [store.Tokens]. Revoking a revoked token succeeds
// and keeps the first revocation time.
func (s *Store) RevokeToken(ctx context.Context, hash []byte, now time.Time) error {
	n, err := rowsAffected(s.pool.Exec(ctx, queries.RevokeToken, sqlcodec.EncTime(now), hash))
	if err != nil {
		return fmt.Errorf("postgres: revoke token: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("postgres: revoke token: %w", store.ErrNotFound)
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
	err := s.inTx(ctx, func(tx pgx.Tx) error { return s.revokeFamily(ctx, tx, familyID, now) })
	if err != nil {
		return fmt.Errorf("postgres: revoke family %q: %w", familyID, err)
	}
	return nil
}

// revokeFamily marks the family's tokens revoked, records the family among
// the revocations, for its JWTs (see [store.Tokens.RevokeFamily]), and
// announces it on commit, so that every instance refuses the family's
// JWTs at once.
func (s *Store) revokeFamily(ctx context.Context, tx pgx.Tx, familyID string, now time.Time) error {
	if _, err := tx.Exec(ctx, queries.RevokeFamily, sqlcodec.EncTime(now), familyID); err != nil {
		return err
	}
	key := store.FamilyRevocation(familyID)
	if _, err := tx.Exec(ctx, queries.RecordFamilyRevocation, key, sqlcodec.EncTime(now), familyID); err != nil {
		return err
	}
	return s.notify(ctx, tx, store.ChangeRevocation, key)
}

// DeleteExpiredTokens implements [store.Tokens].
func (s *Store) DeleteExpiredTokens(ctx context.Context, now time.Time) (int, error) {
	n, err := rowsAffected(s.pool.Exec(ctx, queries.DeleteExpiredTokens, sqlcodec.EncTime(now)))
	if err != nil {
		return 0, fmt.Errorf("postgres: delete expired tokens: %w", err)
	}
	return n, nil
}
