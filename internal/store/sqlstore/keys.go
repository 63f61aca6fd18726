package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlcodec"
	"github.com/keybridge/sts/internal/store/sqlrows"
)

// ListKeys implements [store.Keys].
func (s *Store) ListKeys(ctx context.Context, now time.Time) ([]*store.SigningKey, error) {
	out, err := collect(ctx, s.r, sqlrows.ScanKey, s.q.ListKeys, string(store.KeyRetired), sqlcodec.EncTime(now))
	if err != nil {
		return nil, s.errorf("list keys: %w", err)
	}
	return out, nil
}

// RotateKeys implements [store.Keys], and announces the change. The check
// of the current key and every change happen in one transaction that
// excludes other writers of the table from its start — SQLite's immediate
// transaction, or PostgreSQL's table lock (Dialect.LockKeys: a row lock
// would not do, as there is no current key to lock when the first keys are
// installed) — so rotations, from this process or another instance, run
// one after another, and the loser of a race finds a different current key
// and fails with ErrConflict.
func (s *Store) RotateKeys(ctx context.Context, expectCurrent string, now, retiredUntil time.Time, add ...*store.SigningKey) error {
	err := s.inTx(ctx, func(tx Executor) error {
		if s.d.LockKeys != "" {
			if _, err := tx.Exec(ctx, s.d.LockKeys); err != nil {
				return err
			}
		}
		var current string
		err := tx.QueryRow(ctx, s.q.CurrentKey, string(store.KeyCurrent)).Scan(&current)
		if err != nil && !s.d.NoRows(err) {
			return err
		}
		if current != expectCurrent {
			return fmt.Errorf("%w: current key is %q, not %q", store.ErrConflict, current, expectCurrent)
		}
		if current != "" {
			_, err := tx.Exec(ctx, s.q.RetireKey,
				string(store.KeyRetired), sqlcodec.EncTime(now), sqlcodec.EncTime(retiredUntil), current)
			if err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, s.q.ActivateNextKey,
			string(store.KeyCurrent), sqlcodec.EncTime(now), string(store.KeyNext))
		if err != nil {
			return s.mapErr(err)
		}
		for _, k := range add {
			if _, err := tx.Exec(ctx, s.q.InsertKey, sqlrows.KeyValues(k)...); err != nil {
				return fmt.Errorf("add key %q: %w", k.ID, s.mapErr(err))
			}
		}
		return s.notify(ctx, tx, store.ChangeKeys, "")
	})
	if err != nil {
		return s.errorf("rotate keys: %w", err)
	}
	return nil
}

// DeleteExpiredKeys implements [store.Keys].
func (s *Store) DeleteExpiredKeys(ctx context.Context, now time.Time) (int, error) {
	n, err := s.w.Exec(ctx, s.q.DeleteExpiredKeys, string(store.KeyRetired), sqlcodec.EncTime(now))
	if err != nil {
		return 0, s.errorf("delete expired keys: %w", err)
	}
	return int(n), nil
}
