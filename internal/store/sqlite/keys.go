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

// ListKeys implements [store.Keys].
func (s *Store) ListKeys(ctx context.Context, now time.Time) ([]*store.SigningKey, error) {
	rows, err := s.r.QueryContext(ctx, queries.ListKeys, string(store.KeyRetired), sqlcodec.EncTime(now))
	out, err := collect(rows, err, sqlrows.ScanKey)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list keys: %w", err)
	}
	return out, nil
}

// RotateKeys implements [store.Keys]. The check of the current key and every
// change happen in one immediate transaction, which holds the write lock
// from its first statement: a concurrent rotation waits, then finds a
// different current key and fails with ErrConflict.
func (s *Store) RotateKeys(ctx context.Context, expectCurrent string, now, retiredUntil time.Time, add ...*store.SigningKey) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var current string
		err := tx.QueryRowContext(ctx, queries.CurrentKey, string(store.KeyCurrent)).Scan(&current)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if current != expectCurrent {
			return fmt.Errorf("%w: current key is %q, not %q", store.ErrConflict, current, expectCurrent)
		}
		if current != "" {
			_, err := tx.ExecContext(ctx, queries.RetireKey,
				string(store.KeyRetired), sqlcodec.EncTime(now), sqlcodec.EncTime(retiredUntil), current)
			if err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, queries.ActivateNextKey,
			string(store.KeyCurrent), sqlcodec.EncTime(now), string(store.KeyNext))
		if err != nil {
			return mapErr(err)
		}
		for _, k := range add {
			_, err := tx.ExecContext(ctx, queries.InsertKey, sqlrows.KeyValues(k)...)
			if err != nil {
				return fmt.Errorf("add key %q: %w", k.ID, mapErr(err))
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: rotate keys: %w", err)
	}
	return nil
}

// DeleteExpiredKeys implements [store.Keys].
func (s *Store) DeleteExpiredKeys(ctx context.Context, now time.Time) (int, error) {
	n, err := rowsAffected(s.w.ExecContext(ctx, queries.DeleteExpiredKeys,
		string(store.KeyRetired), sqlcodec.EncTime(now)))
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete expired keys: %w", err)
	}
	return n, nil
}
