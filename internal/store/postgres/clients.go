package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlcodec"
)

const clientCols = `id, name, secret_hash, prev_secret_hash, prev_secret_expires_at,
	status, grant_types, audiences, scopes, token_format, allow_impersonation,
	access_token_ttl, refresh_token_ttl, created_at, updated_at, account_id,
	auth_method, software_id, software_version, hardware_address,
	registration_token_hash, metadata, identity`

const (
	qGetClient    = `SELECT ` + clientCols + ` FROM clients WHERE id = $1`
	qInsertClient = `INSERT INTO clients (` + clientCols + `)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
			$17, $18, $19, $20, $21, $22, $23)`
	qUpdateClient = `UPDATE clients SET name = $1, secret_hash = $2, prev_secret_hash = $3,
		prev_secret_expires_at = $4, status = $5, grant_types = $6, audiences = $7,
		scopes = $8, token_format = $9, allow_impersonation = $10, access_token_ttl = $11,
		refresh_token_ttl = $12, created_at = $13, updated_at = $14, account_id = $15,
		auth_method = $16, software_id = $17, software_version = $18, hardware_address = $19,
		registration_token_hash = $20, metadata = $21, identity = $22
		WHERE id = $23`
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
	if _, err := s.pool.Exec(ctx, qInsertClient, args...); err != nil {
		return fmt.Errorf("postgres: create client %q: %w", c.ID, mapErr(err))
	}
	return nil
}

// GetClient implements [store.Clients] with one primary-key query, whose
// prepared statement pgx caches on each connection.
func (s *Store) GetClient(ctx context.Context, id string) (*store.Client, error) {
	c, err := scanClient(s.pool.QueryRow(ctx, qGetClient, id))
	if err != nil {
		return nil, fmt.Errorf("postgres: get client %q: %w", id, mapErr(err))
	}
	return c, nil
}

// ListClients implements [store.Clients].
func (s *Store) ListClients(ctx context.Context) ([]*store.Client, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+clientCols+` FROM clients ORDER BY created_at, id COLLATE "C"`)
	out, err := collect(rows, err, scanClient)
	if err != nil {
		return nil, fmt.Errorf("postgres: list clients: %w", err)
	}
	return out, nil
}

// ListAccountClients implements [store.Clients]. An empty accountID lists
// the clients outside any account.
func (s *Store) ListAccountClients(ctx context.Context, accountID string) ([]*store.Client, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+clientCols+` FROM clients
		WHERE account_id = $1 ORDER BY created_at, id COLLATE "C"`, accountID)
	out, err := collect(rows, err, scanClient)
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
	c, err := scanClient(s.pool.QueryRow(ctx, `SELECT `+clientCols+` FROM clients
		WHERE account_id = $1 AND identity = $2 AND identity <> ''`, accountID, identity))
	if err != nil {
		return nil, fmt.Errorf("postgres: find client of account %q by identity: %w", accountID, mapErr(err))
	}
	return c, nil
}

// UpdateClient implements [store.Clients]. It reads the client with SELECT …
// FOR UPDATE and writes it in the same transaction, so concurrent updates
// of a client queue and never lose each other's changes. update must not
// change the ID, nor call the Store: the transaction holds the row lock and
// a connection while update runs. UpdatedAt is set to s.Now() after update
// returns.
func (s *Store) UpdateClient(ctx context.Context, id string, update func(*store.Client) error) (*store.Client, error) {
	var c *store.Client
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		c, err = scanClient(tx.QueryRow(ctx, qGetClient+` FOR UPDATE`, id))
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
		if _, err = tx.Exec(ctx, qUpdateClient, append(clientValues(c), id)...); err != nil {
			return mapErr(err)
		}
		return s.notify(ctx, tx, store.ChangeClient, id)
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: update client %q: %w", id, err)
	}
	return c, nil
}

// DeleteClient implements [store.Clients].
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		n, err := rowsAffected(tx.Exec(ctx, `DELETE FROM clients WHERE id = $1`, id))
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
