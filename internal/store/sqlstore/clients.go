package sqlstore

import (
	"context"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlrows"
)

// CreateClient implements [store.Clients].
func (s *Store) CreateClient(ctx context.Context, c *store.Client) error {
	if _, err := s.w.Exec(ctx, s.q.InsertClient, sqlrows.ClientValues(c)...); err != nil {
		return s.errorf("create client %q: %w", c.ID, s.mapErr(err))
	}
	return nil
}

// GetClient implements [store.Clients] with one primary-key query (a
// prepared statement: SQLite's is prepared at Open, pgx caches one on each
// connection).
func (s *Store) GetClient(ctx context.Context, id string) (*store.Client, error) {
	c, err := sqlrows.ScanClient(s.r.QueryRow(ctx, s.q.GetClient, id))
	if err != nil {
		return nil, s.errorf("get client %q: %w", id, s.mapErr(err))
	}
	return c, nil
}

// ListClients implements [store.Clients].
func (s *Store) ListClients(ctx context.Context) ([]*store.Client, error) {
	out, err := collect(ctx, s.r, sqlrows.ScanClient, s.q.ListClients)
	if err != nil {
		return nil, s.errorf("list clients: %w", err)
	}
	return out, nil
}

// ListAccountClients implements [store.Clients]. An empty accountID lists
// the clients outside any account.
func (s *Store) ListAccountClients(ctx context.Context, accountID string) ([]*store.Client, error) {
	out, err := collect(ctx, s.r, sqlrows.ScanClient, s.q.ListAccountClients, accountID)
	if err != nil {
		return nil, s.errorf("list clients of account %q: %w", accountID, err)
	}
	return out, nil
}

// FindClientByIdentity implements [store.Clients] with one query of the
// unique index on (account_id, identity).
func (s *Store) FindClientByIdentity(ctx context.Context, accountID, identity string) (*store.Client, error) {
	if identity == "" {
		return nil, s.errorf("find client by an empty identity: %w", store.ErrNotFound)
	}
	c, err := sqlrows.ScanClient(s.r.QueryRow(ctx, s.q.FindClientByIdentity, accountID, identity))
	if err != nil {
		return nil, s.errorf("find client of account %q by identity: %w", accountID, s.mapErr(err))
	}
	return c, nil
}

// UpdateClient implements [store.Clients]: one transaction reads the client
// (locking it), applies update, writes it and announces the change (see
// updateRow).
func (s *Store) UpdateClient(ctx context.Context, id string, update func(*store.Client) error) (*store.Client, error) {
	return updateRow(ctx, s, sqlrows.ClientRows, s.getClientForUpdate, s.q.UpdateClient, id, store.ChangeClient, update)
}

// DeleteClient implements [store.Clients], and announces the change.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	err := s.announced(ctx, store.ChangeClient, id, func(e Executor) error {
		n, err := e.Exec(ctx, s.q.DeleteClient, id)
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return s.errorf("delete client %q: %w", id, err)
	}
	return nil
}
