package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlcodec"
)

const keyCols = `id, algorithm, state, private_key, public_key, created_at,
	activated_at, retired_at, expires_at`

func scanKey(row scanner) (*store.SigningKey, error) {
	var (
		k                                    store.SigningKey
		state                                string
		created, activated, retired, expires int64
	)
	err := row.Scan(&k.ID, &k.Algorithm, &state, &k.PrivateKey, &k.PublicKey,
		&created, &activated, &retired, &expires)
	if err != nil {
		return nil, err
	}
	k.State = store.KeyState(state)
	k.CreatedAt = sqlcodec.DecTime(created)
	k.ActivatedAt = sqlcodec.DecTime(activated)
	k.RetiredAt = sqlcodec.DecTime(retired)
	k.ExpiresAt = sqlcodec.DecTime(expires)
	return &k, nil
}

// ListKeys implements [store.Keys].
func (s *Store) ListKeys(ctx context.Context, now time.Time) ([]*store.SigningKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+keyCols+` FROM signing_keys
		WHERE state <> $1 OR expires_at > $2
		ORDER BY created_at DESC, id COLLATE "C" DESC`,
		string(store.KeyRetired), sqlcodec.EncTime(now))
	out, err := collect(rows, err, scanKey)
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
		err := tx.QueryRow(ctx, `SELECT id FROM signing_keys WHERE state = $1`,
			string(store.KeyCurrent)).Scan(&current)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if current != expectCurrent {
			return fmt.Errorf("%w: current key is %q, not %q", store.ErrConflict, current, expectCurrent)
		}
		if current != "" {
			_, err := tx.Exec(ctx, `UPDATE signing_keys
				SET state = $1, retired_at = $2, expires_at = $3 WHERE id = $4`,
				string(store.KeyRetired), sqlcodec.EncTime(now), sqlcodec.EncTime(retiredUntil), current)
			if err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `UPDATE signing_keys
			SET state = $1, activated_at = $2 WHERE state = $3`,
			string(store.KeyCurrent), sqlcodec.EncTime(now), string(store.KeyNext))
		if err != nil {
			return mapErr(err)
		}
		for _, k := range add {
			_, err := tx.Exec(ctx, `INSERT INTO signing_keys (`+keyCols+`)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
				k.ID, k.Algorithm, string(k.State), sqlcodec.EncBytes(k.PrivateKey),
				sqlcodec.EncBytes(k.PublicKey), sqlcodec.EncTime(k.CreatedAt), sqlcodec.EncTime(k.ActivatedAt),
				sqlcodec.EncTime(k.RetiredAt), sqlcodec.EncTime(k.ExpiresAt))
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
	n, err := rowsAffected(s.pool.Exec(ctx,
		`DELETE FROM signing_keys WHERE state = $1 AND expires_at < $2`,
		string(store.KeyRetired), sqlcodec.EncTime(now)))
	if err != nil {
		return 0, fmt.Errorf("postgres: delete expired keys: %w", err)
	}
	return n, nil
}
