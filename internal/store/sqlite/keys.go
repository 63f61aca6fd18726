package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

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
	rows, err := s.r.QueryContext(ctx, `SELECT `+keyCols+` FROM signing_keys
		WHERE state <> ? OR expires_at > ?
		ORDER BY created_at DESC, id DESC`,
		string(store.KeyRetired), sqlcodec.EncTime(now))
	if err != nil {
		return nil, fmt.Errorf("sqlite: list keys: %w", err)
	}
	defer rows.Close()
	var out []*store.SigningKey
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list keys: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
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
		err := tx.QueryRowContext(ctx, `SELECT id FROM signing_keys WHERE state = ?`,
			string(store.KeyCurrent)).Scan(&current)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if current != expectCurrent {
			return fmt.Errorf("%w: current key is %q, not %q", store.ErrConflict, current, expectCurrent)
		}
		if current != "" {
			_, err := tx.ExecContext(ctx, `UPDATE signing_keys
				SET state = ?, retired_at = ?, expires_at = ? WHERE id = ?`,
				string(store.KeyRetired), sqlcodec.EncTime(now), sqlcodec.EncTime(retiredUntil), current)
			if err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `UPDATE signing_keys
			SET state = ?, activated_at = ? WHERE state = ?`,
			string(store.KeyCurrent), sqlcodec.EncTime(now), string(store.KeyNext))
		if err != nil {
			return mapErr(err)
		}
		for _, k := range add {
			_, err := tx.ExecContext(ctx, `INSERT INTO signing_keys (`+keyCols+`)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				k.ID, k.Algorithm, string(k.State), sqlcodec.EncBytes(k.PrivateKey),
				sqlcodec.EncBytes(k.PublicKey), sqlcodec.EncTime(k.CreatedAt), sqlcodec.EncTime(k.ActivatedAt),
				sqlcodec.EncTime(k.RetiredAt), sqlcodec.EncTime(k.ExpiresAt))
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
	n, err := rowsAffected(s.w.ExecContext(ctx,
		`DELETE FROM signing_keys WHERE state = ? AND expires_at < ?`,
		string(store.KeyRetired), sqlcodec.EncTime(now)))
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete expired keys: %w", err)
	}
	return n, nil
}
