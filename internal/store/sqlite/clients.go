package sqlite

import (
	"context"
	"fmt"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlrows"
)

// CreateClient implements [store.Clients].
func (s *Store) CreateClient(ctx context.Context, c *store.Client) error {
	if _, err := s.w.ExecContext(ctx, queries.InsertClient, sqlrows.ClientValues(c)...); err != nil {
		return fmt.Errorf("sqlite: create client %q: %w", c.ID, mapErr(err))
	}
	return nil
}

// GetClient implements [store.Clients].
func (s *Store) GetClient(ctx context.Context, id string) (*store.Client, error) {
	c, err := sqlrows.ScanClient(s.getClient.QueryRowContext(ctx, id))
	if err != nil {
		return nil, fmt.Errorf("sqlite: get client %q: %w", id, mapErr(err))
	}
	return c, nil
}

// ListClients implements [store.Clients].
func (s *Store) ListClients(ctx context.Context) ([]*store.Client, error) {
	rows, err := s.r.QueryContext(ctx, queries.ListClients)
	out, err := collect(rows, err, sqlrows.ScanClient)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list clients: %w", err)
	}
	return out, nil
}

// ListAccountClients implements [store.Clients]. An empty accountID lists
// the clients outside any account.
func (s *Store) ListAccountClients(ctx context.Context, accountID string) ([]*store.Client, error) {
	rows, err := s.r.QueryContext(ctx, queries.ListAccountClients, accountID)
	out, err := collect(rows, err, sqlrows.ScanClient)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list clients of account %q: %w", accountID, err)
	}
	return out, nil
}

// FindClientByIdentity implements [store.Clients] with one query of the
// unique index on (account_id, identity).
func (s *Store) FindClientByIdentity(ctx context.Context, accountID, identity string) (*store.Client, error) {
	if identity == "" {
		return nil, fmt.Errorf("sqlite: find client by an empty identity: %w", store.ErrNotFound)
	}
	c, err := sqlrows.ScanClient(s.r.QueryRowContext(ctx, queries.FindClientByIdentity, accountID, identity))
	if err != nil {
		return nil, fmt.Errorf("sqlite: find client of account %q by identity: %w", accountID, mapErr(err))
	}
	return c, nil
}

// UpdateClient implements [store.Clients]: one immediate transaction reads
// the client, applies update and writes it (see updateRow).
func (s *Store) UpdateClient(ctx context.Context, id string, update func(*store.Client) error) (*store.Client, error) {
	return updateRow(ctx, s, sqlrows.ClientRows, queries.GetClient, queries.UpdateClient, id, update)
}

// DeleteClient implements [store.Clients].
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	n, err := rowsAffected(s.w.ExecContext(ctx, queries.DeleteClient, id))
	if err != nil {
		return fmt.Errorf("sqlite: delete client %q: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("sqlite: delete client %q: %w", id, store.ErrNotFound)
	}
	return nil
}
