package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlcodec"
)

const auditCols = `id, time, action, decision, client_id, account_id, subject, actor,
	audience, jti, error, detail, request_id, remote`

// defaultAuditLimit is the number of records ListAudit returns when the
// filter sets no limit.
const defaultAuditLimit = 100

// AppendAudit implements [store.Audit]. The records' ID fields are ignored:
// the database numbers records in the order they are appended.
func (s *Store) AppendAudit(ctx context.Context, recs []store.AuditRecord) error {
	if len(recs) == 0 {
		return nil
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `INSERT INTO audit (time, action, decision,
			client_id, account_id, subject, actor, audience, jti, error, detail,
			request_id, remote)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer st.Close()
		for i := range recs {
			r := &recs[i]
			_, err := st.ExecContext(ctx, sqlcodec.EncTime(r.Time), r.Action, r.Decision,
				r.ClientID, r.AccountID, r.Subject, r.Actor, sqlcodec.EncList(r.Audience), r.JTI,
				r.Error, r.Detail, r.RequestID, r.Remote)
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: append audit: %w", err)
	}
	return nil
}

// ListAudit implements [store.Audit]. Since is inclusive and Until
// exclusive; records of the same time are listed last appended first.
func (s *Store) ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditRecord, error) {
	var (
		where []string
		args  []any
	)
	if f.ClientID != "" {
		where = append(where, "client_id = ?")
		args = append(args, f.ClientID)
	}
	if f.AccountID != "" {
		where = append(where, "account_id = ?")
		args = append(args, f.AccountID)
	}
	if f.Action != "" {
		// The action itself, or a prefix of it ending at a dot. Compared
		// with substr rather than LIKE, which would take "_" and "%" in
		// the filter as wildcards and is case-insensitive in SQLite but
		// not in PostgreSQL; both count substr's length in characters.
		where = append(where, "(action = ? OR substr(action, 1, ?) = ?)")
		prefix := f.Action + "."
		args = append(args, f.Action, utf8.RuneCountInString(prefix), prefix)
	}
	if !f.Since.IsZero() {
		where = append(where, "time >= ?")
		args = append(args, sqlcodec.EncTime(f.Since))
	}
	if !f.Until.IsZero() {
		where = append(where, "time < ?")
		args = append(args, sqlcodec.EncTime(f.Until))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultAuditLimit
	}
	q := `SELECT ` + auditCols + ` FROM audit`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY time DESC, id DESC LIMIT ?`
	args = append(args, limit)

	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list audit: %w", err)
	}
	defer rows.Close()
	var out []store.AuditRecord
	for rows.Next() {
		var (
			r   store.AuditRecord
			t   int64
			aud string
		)
		err := rows.Scan(&r.ID, &t, &r.Action, &r.Decision, &r.ClientID, &r.AccountID,
			&r.Subject, &r.Actor, &aud, &r.JTI, &r.Error, &r.Detail, &r.RequestID, &r.Remote)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list audit: %w", err)
		}
		r.Time = sqlcodec.DecTime(t)
		if r.Audience, err = sqlcodec.DecList(aud); err != nil {
			return nil, fmt.Errorf("sqlite: list audit: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list audit: %w", err)
	}
	return out, nil
}
