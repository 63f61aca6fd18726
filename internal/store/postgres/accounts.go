package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlcodec"
)

const accountCols = `id, kind, name, status, shared_secret, audiences, scopes, created_at, updated_at`

const qGetAccount = `SELECT ` + accountCols + ` FROM accounts WHERE id = $1`

func scanAccount(row scanner) (*store.Account, error) {
	var (
		a                store.Account
		kind, status     string
		auds, scopes     string
		created, updated int64
	)
	if err := row.Scan(&a.ID, &kind, &a.Name, &status, &a.SharedSecret, &auds, &scopes, &created, &updated); err != nil {
		return nil, err
	}
	var err error
	if a.Audiences, err = sqlcodec.DecList(auds); err != nil {
		return nil, err
	}
	if a.Scopes, err = sqlcodec.DecList(scopes); err != nil {
		return nil, err
	}
	a.Kind = store.AccountKind(kind)
	a.Status = store.AccountStatus(status)
	a.CreatedAt = sqlcodec.DecTime(created)
	a.UpdatedAt = sqlcodec.DecTime(updated)
	return &a, nil
}

// CreateAccount implements [store.Accounts].
func (s *Store) CreateAccount(ctx context.Context, a *store.Account) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO accounts (`+accountCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		a.ID, string(a.Kind), a.Name, string(a.Status), sqlcodec.EncBytes(a.SharedSecret),
		sqlcodec.EncList(a.Audiences), sqlcodec.EncList(a.Scopes), sqlcodec.EncTime(a.CreatedAt), sqlcodec.EncTime(a.UpdatedAt))
	if err != nil {
		return fmt.Errorf("postgres: create account %q: %w", a.ID, mapErr(err))
	}
	return nil
}

// GetAccount implements [store.Accounts].
func (s *Store) GetAccount(ctx context.Context, id string) (*store.Account, error) {
	a, err := scanAccount(s.pool.QueryRow(ctx, qGetAccount, id))
	if err != nil {
		return nil, fmt.Errorf("postgres: get account %q: %w", id, mapErr(err))
	}
	return a, nil
}

// ListAccounts implements [store.Accounts].
func (s *Store) ListAccounts(ctx context.Context) ([]*store.Account, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+accountCols+` FROM accounts ORDER BY created_at, id COLLATE "C"`)
	out, err := collect(rows, err, scanAccount)
	if err != nil {
		return nil, fmt.Errorf("postgres: list accounts: %w", err)
	}
	return out, nil
}

// UpdateAccount implements [store.Accounts] like UpdateClient: under a row
// lock (SELECT … FOR UPDATE) in one transaction, with the same restrictions
// on update, and UpdatedAt set to s.Now() after update returns.
func (s *Store) UpdateAccount(ctx context.Context, id string, update func(*store.Account) error) (*store.Account, error) {
	var a *store.Account
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		a, err = scanAccount(tx.QueryRow(ctx, qGetAccount+` FOR UPDATE`, id))
		if err != nil {
			return mapErr(err)
		}
		if err := update(a); err != nil {
			return err
		}
		if a.ID != id {
			return fmt.Errorf("update changed the account ID to %q", a.ID)
		}
		a.UpdatedAt = s.Now().UTC().Truncate(time.Microsecond)
		_, err = tx.Exec(ctx, `UPDATE accounts SET kind = $1, name = $2, status = $3,
			shared_secret = $4, audiences = $5, scopes = $6, created_at = $7, updated_at = $8
			WHERE id = $9`,
			string(a.Kind), a.Name, string(a.Status), sqlcodec.EncBytes(a.SharedSecret),
			sqlcodec.EncList(a.Audiences), sqlcodec.EncList(a.Scopes), sqlcodec.EncTime(a.CreatedAt),
			sqlcodec.EncTime(a.UpdatedAt), id)
		if err != nil {
			return mapErr(err)
		}
		return s.notify(ctx, tx, store.ChangeAccount, id)
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: update account %q: %w", id, err)
	}
	return a, nil
}
