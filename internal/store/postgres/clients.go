package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlrows"
)

// CreateClient implements [store.Clients].
func (s *Store) CreateClient(ctx context.Context, c *store.Client) error {
	if _, err := s.pool.Exec(ctx, queries.InsertClient, sqlrows.ClientValues(c)...); err != nil {
		return fmt.Errorf("postgres: create client %q: %w", c.ID, mapErr(err))
	}
	return nil
}

// GetClient implements [store.Clients] with one primary-key query, whose
// prepared statement pgx caches on each connection.
func (s *Store) GetClient(ctx context.Context, id string) (*store.Client, error) {
	c, err := sqlrows.ScanClient(s.pool.QueryRow(ctx, queries.GetClient, id))
	if err != nil {
		return nil, fmt.Errorf("postgres: get client %q: %w", id, mapErr(err))
	}
	return c, nil
}

// ListClients implements [store.Clients].
func (s *Store) ListClients(ctx context.Context) ([]*store.Client, error) {
	rows, err := s.pool.Query(ctx, queries.ListClients)
	out, err := collect(rows, err, sqlrows.ScanClient)
	if err != nil {
		return nil, fmt.Errorf("postgres: list clients: %w", err)
	}
	return out, nil
}

// ListAccountClients implements [store.Clients]. An empty accountID lists
// the clients outside any account.
func (s *Store) ListAccountClients(ctx context.Context, accountID string) ([]*store.Client, error) {
	rows, err := s.pool.Query(ctx, queries.ListAccountClients, accountID)
	out, err := collect(rows, err, sqlrows.ScanClient)
	if err != nil {
		return nil, fmt.Errorf("postgres: list clients of account %q: %w", accountID, err)
	}
	return out, nil
}

// FindClientByIdentity implements [store.Clients] with one query of the
// unique index on (account_id, identity).
func (s *Store) FindClientByIdentity(ctx context.Context, accountID, identity string) (*store.Client, error) {
	if identity == "" {
		return nil, fmt.Errorf("postgres: find client by an empty identity: %w", store.ErrNotFound)
	}
	c, err := sqlrows.ScanClient(s.pool.QueryRow(ctx, queries.FindClientByIdentity, accountID, identity))
	if err != nil {
		return nil, fmt.Errorf("postgres: find client of account %q by identity: %w", accountID, mapErr(err))
	}
	return c, nil
}

// UpdateClient implements [store.Clients]: it reads the client with SELECT
// … FOR UPDATE, applies update and writes it in one transaction (see
// updateRow), and announces the change.
func (s *Store) UpdateClient(ctx context.Context, id string, update func(*store.Client) error) (*store.Client, error) {
	return updateRow(ctx, s, sqlrows.ClientRows, qGetClientForUpdate, queries.UpdateClient, id, store.ChangeClient, update)
}

// DeleteClient implements [store.Clients].
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		n, err := rowsAffected(tx.Exec(ctx, queries.DeleteClient, id))
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		return s.notify(ctx, tx, store.ChangeClient, id)
	})
	if err != nil {
		return fmt.Errorf("postgres: delete client %q: %w", id, err)
	}
	return nil
}
