package sqlstore

import (
	"context"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlcodec"
)

// GetSetting implements [store.Settings].
func (s *Store) GetSetting(ctx context.Context, name string) (*store.Setting, error) {
	st := store.Setting{Name: name}
	var at int64
	if err := s.r.QueryRow(ctx, s.q.GetSetting, name).Scan(&st.Value, &at); err != nil {
		return nil, s.errorf("setting %q: %w", name, s.mapErr(err))
	}
	st.UpdatedAt = sqlcodec.DecTime(at)
	return &st, nil
}

// PutSetting implements [store.Settings].
func (s *Store) PutSetting(ctx context.Context, st *store.Setting) error {
	if _, err := s.w.Exec(ctx, s.q.PutSetting, st.Name, st.Value, sqlcodec.EncTime(st.UpdatedAt)); err != nil {
		return s.errorf("put setting %q: %w", st.Name, err)
	}
	return nil
}
