package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlcodec"
)

// GetSetting implements [store.Settings].
func (s *Store) GetSetting(ctx context.Context, name string) (*store.Setting, error) {
	st := store.Setting{Name: name}
	var at int64
	err := s.r.QueryRowContext(ctx, queries.GetSetting, name).Scan(&st.Value, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: setting %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: setting %q: %w", name, err)
	}
	st.UpdatedAt = sqlcodec.DecTime(at)
	return &st, nil
}

// PutSetting implements [store.Settings].
func (s *Store) PutSetting(ctx context.Context, st *store.Setting) error {
	if _, err := s.w.ExecContext(ctx, queries.PutSetting, st.Name, st.Value, sqlcodec.EncTime(st.UpdatedAt)); err != nil {
		return fmt.Errorf("sqlite: put setting %q: %w", st.Name, err)
	}
	return nil
}
