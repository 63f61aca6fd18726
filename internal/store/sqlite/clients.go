package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlcodec"
)

const clientCols = `id, name, secret_hash, prev_secret_hash, prev_secret_expires_at,
	status, grant_types, audiences, scopes, token_format, allow_impersonation,
	access_token_ttl, refresh_token_ttl, created_at, updated_at, account_id,
	auth_method, software_id, software_version, hardware_address,
	registration_token_hash, metadata, identity`

const (
	qGetClient    = `SELECT ` + clientCols + ` FROM clients WHERE id = ?`
	qInsertClient = `INSERT INTO clients (` + clientCols + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qUpdateClient = `UPDATE clients SET name = ?, secret_hash = ?, prev_secret_hash = ?,
		prev_secret_expires_at = ?, status = ?, grant_types = ?, audiences = ?,
		scopes = ?, token_format = ?, allow_impersonation = ?, access_token_ttl = ?,
		refresh_token_ttl = ?, created_at = ?, updated_at = ?, account_id = ?,
		auth_method = ?, software_id = ?, software_version = ?, hardware_address = ?,
		registration_token_hash = ?, metadata = ?, identity = ?
		WHERE id = ?`
)

// clientValues returns c's columns after the id, in clientCols order.
func clientValues(c *store.Client) []any {
	return []any{
		c.Name, sqlcodec.EncBytes(c.SecretHash), sqlcodec.EncBytes(c.PrevSecretHash),
		sqlcodec.EncTime(c.PrevSecretExpiresAt), string(c.Status), sqlcodec.EncList(c.GrantTypes),
		sqlcodec.EncList(c.Audiences), sqlcodec.EncList(c.Scopes), c.TokenFormat,
		sqlcodec.EncBool(c.AllowImpersonation), sqlcodec.EncDuration(c.AccessTokenTTL),
		sqlcodec.EncDuration(c.RefreshTokenTTL), sqlcodec.EncTime(c.CreatedAt), sqlcodec.EncTime(c.UpdatedAt),
		c.AccountID, c.AuthMethod, c.SoftwareID, c.SoftwareVersion, c.HardwareAddress,
		sqlcodec.EncBytes(c.RegistrationTokenHash), sqlcodec.EncBytes(c.Metadata), c.Identity,
	}
}

func scanClient(row scanner) (*store.Client, error) {
	var (
		c                                store.Client
		status, grants, auds, scopes     string
		prevExp, created, updated        int64
		impersonation, accessTTL, refTTL int64
	)
	err := row.Scan(&c.ID, &c.Name, &c.SecretHash, &c.PrevSecretHash, &prevExp,
		&status, &grants, &auds, &scopes, &c.TokenFormat, &impersonation,
		&accessTTL, &refTTL, &created, &updated, &c.AccountID, &c.AuthMethod,
		&c.SoftwareID, &c.SoftwareVersion, &c.HardwareAddress,
		&c.RegistrationTokenHash, &c.Metadata, &c.Identity)
	if err != nil {
		return nil, err
	}
	c.Status = store.ClientStatus(status)
	if c.GrantTypes, err = sqlcodec.DecList(grants); err != nil {
		return nil, err
	}
	if c.Audiences, err = sqlcodec.DecList(auds); err != nil {
		return nil, err
	}
	if c.Scopes, err = sqlcodec.DecList(scopes); err != nil {
		return nil, err
	}
	c.PrevSecretExpiresAt = sqlcodec.DecTime(prevExp)
	c.AllowImpersonation = sqlcodec.DecBool(impersonation)
	c.AccessTokenTTL = sqlcodec.DecDuration(accessTTL)
	c.RefreshTokenTTL = sqlcodec.DecDuration(refTTL)
	c.CreatedAt = sqlcodec.DecTime(created)
	c.UpdatedAt = sqlcodec.DecTime(updated)
	return &c, nil
}

// CreateClient implements [store.Clients].
func (s *Store) CreateClient(ctx context.Context, c *store.Client) error {
	args := append([]any{c.ID}, clientValues(c)...)
	if _, err := s.w.ExecContext(ctx, qInsertClient, args...); err != nil {
		return fmt.Errorf("sqlite: create client %q: %w", c.ID, mapErr(err))
	}
	return nil
}

// GetClient implements [store.Clients].
func (s *Store) GetClient(ctx context.Context, id string) (*store.Client, error) {
	c, err := scanClient(s.getClient.QueryRowContext(ctx, id))
	if err != nil {
		return nil, fmt.Errorf("sqlite: get client %q: %w", id, mapErr(err))
	}
	return c, nil
}

// ListClients implements [store.Clients].
func (s *Store) ListClients(ctx context.Context) ([]*store.Client, error) {
	out, err := s.listClients(ctx, `SELECT `+clientCols+` FROM clients ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list clients: %w", err)
	}
	return out, nil
}

// ListAccountClients implements [store.Clients]. An empty accountID lists
// the clients outside any account.
func (s *Store) ListAccountClients(ctx context.Context, accountID string) ([]*store.Client, error) {
	out, err := s.listClients(ctx, `SELECT `+clientCols+` FROM clients
		WHERE account_id = ? ORDER BY created_at, id`, accountID)
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
	c, err := scanClient(s.r.QueryRowContext(ctx, `SELECT `+clientCols+` FROM clients
		WHERE account_id = ? AND identity = ? AND identity <> ''`, accountID, identity))
	if err != nil {
		return nil, fmt.Errorf("sqlite: find client of account %q by identity: %w", accountID, mapErr(err))
	}
	return c, nil
}

// listClients runs a query of clientCols on the read pool.
func (s *Store) listClients(ctx context.Context, query string, args ...any) ([]*store.Client, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*store.Client
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// UpdateClient implements [store.Clients]. It reads and writes the client in
// one immediate transaction, so concurrent updates never lose each other's
// changes. update must not change the ID, nor call the Store: writes are
// serialised and the transaction holds the write lock while update runs.
// UpdatedAt is set to s.Now() after update returns.
func (s *Store) UpdateClient(ctx context.Context, id string, update func(*store.Client) error) (*store.Client, error) {
	var c *store.Client
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		c, err = scanClient(tx.QueryRowContext(ctx, qGetClient, id))
		if err != nil {
			return mapErr(err)
		}
		if err := update(c); err != nil {
			return err
		}
		if c.ID != id {
			return fmt.Errorf("update changed the client ID to %q", c.ID)
		}
		// Stored to the microsecond; truncate so the result equals what a
		// later GetClient returns.
		c.UpdatedAt = s.Now().UTC().Truncate(time.Microsecond)
		_, err = tx.ExecContext(ctx, qUpdateClient, append(clientValues(c), id)...)
		return mapErr(err)
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: update client %q: %w", id, err)
	}
	return c, nil
}

// DeleteClient implements [store.Clients].
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	n, err := rowsAffected(s.w.ExecContext(ctx, `DELETE FROM clients WHERE id = ?`, id))
	if err != nil {
		return fmt.Errorf("sqlite: delete client %q: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("sqlite: delete client %q: %w", id, store.ErrNotFound)
	}
	return nil
}
