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

// ListKeys implements [store.Keys].
func (s *Store) ListKeys(ctx context.Context, now time.Time) ([]*store.SigningKey, error) {
	rows, err := s.pool.Query(ctx, queries.ListKeys, string(store.KeyRetired), sqlcodec.EncTime(now))
	out, err := collect(rows, err, sqlrows.ScanKey)
	if err != nil {
		return nil, fmt.Errorf("postgres: list keys: %w", err)
	}
	return out, nil
}

// RotateKeys implements [store.Keys]. The transaction first locks the table
// against other writers (readers go on): a row lock would not do, as there
// is no current key to lock when the first keys are installed. So rotations,
// from this process or another instance, run one after another like on
// SQLite's single writer, and the loser of a race finds a different current
// key and fails with ErrConflict.
func (s *Store) RotateKeys(ctx context.Context, expectCurrent string, now, retiredUntil time.Time, add ...*store.SigningKey) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			return err
		}
		var current string
		err := tx.QueryRow(ctx, queries.CurrentKey, string(store.KeyCurrent)).Scan(&current)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if current != expectCurrent {
			return fmt.Errorf("%w: current key is %q, not %q", store.ErrConflict, current, expectCurrent)
		}
		if current != "" {
			_, err := tx.Exec(ctx, queries.RetireKey,
				string(store.KeyRetired), sqlcodec.EncTime(now), sqlcodec.EncTime(retiredUntil), current)
			if err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, queries.ActivateNextKey,
			string(store.KeyCurrent), sqlcodec.EncTime(now), string(store.KeyNext))
		if err != nil {
			return mapErr(err)
		}
		for _, k := range add {
			_, err := tx.Exec(ctx, queries.InsertKey, sqlrows.KeyValues(k)...)
			if err != nil {
				return fmt.Errorf("add key %q: %w", k.ID, mapErr(err))
			}
		}
		return s.notify(ctx, tx, store.ChangeKeys, "")
	})
	if err != nil {
		return fmt.Errorf("postgres: rotate keys: %w", err)
	}
	return nil
}

// DeleteExpiredKeys implements [store.Keys].
func (s *Store) DeleteExpiredKeys(ctx context.Context, now time.Time) (int, error) {
	n, err := rowsAffected(s.pool.Exec(ctx, queries.DeleteExpiredKeys,
		string(store.KeyRetired), sqlcodec.EncTime(now)))
	if err != nil {
		return 0, fmt.Errorf("postgres: delete expired keys: %w", err)
	}
	return n, nil
}
