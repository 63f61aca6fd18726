package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlcodec"
)

const auditCols = `id, time, action, decision, client_id, account_id, subject, actor,
	audience, jti, error, detail, request_id, remote`

const qInsertAudit = `INSERT INTO audit (time, action, decision, client_id, account_id,
	subject, actor, audience, jti, error, detail, request_id, remote)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`

// defaultAuditLimit is the number of records ListAudit returns when the
// filter sets no limit.
const defaultAuditLimit = 100

// AppendAudit implements [store.Audit]. The records' ID fields are ignored:
// the identity column numbers records in the order they are appended. The
// inserts go in one batch, one round trip, in one transaction.
func (s *Store) AppendAudit(ctx context.Context, recs []store.AuditRecord) error {
	if len(recs) == 0 {
		return nil
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for i := range recs {
			r := &recs[i]
			b.Queue(qInsertAudit, sqlcodec.EncTime(r.Time), r.Action, r.Decision,
				r.ClientID, r.AccountID, r.Subject, r.Actor, sqlcodec.EncList(r.Audience), r.JTI,
				r.Error, r.Detail, r.RequestID, r.Remote)
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("postgres: append audit: %w", err)
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
	// arg adds a parameter and returns its placeholder.
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.ClientID != "" {
		where = append(where, "client_id = "+arg(f.ClientID))
	}
	if f.AccountID != "" {
		where = append(where, "account_id = "+arg(f.AccountID))
	}
	if f.Action != "" {
		// The action itself, or a prefix of it ending at a dot. Compared
		// with substr rather than LIKE, which would take "_" and "%" in
		// the filter as wildcards; substr counts characters, as
		// RuneCountInString does.
		prefix := f.Action + "."
		where = append(where, fmt.Sprintf("(action = %s OR substr(action, 1, %s) = %s)",
			arg(f.Action), arg(utf8.RuneCountInString(prefix)), arg(prefix)))
	}
	if !f.Since.IsZero() {
		where = append(where, "time >= "+arg(sqlcodec.EncTime(f.Since)))
	}
	if !f.Until.IsZero() {
		where = append(where, "time < "+arg(sqlcodec.EncTime(f.Until)))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultAuditLimit
	}
	q := `SELECT ` + auditCols + ` FROM audit`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY time DESC, id DESC LIMIT ` + arg(limit)

	rows, err := s.pool.Query(ctx, q, args...)
	out, err := collect(rows, err, func(row scanner) (store.AuditRecord, error) {
		var (
			r   store.AuditRecord
			t   int64
			aud string
		)
		err := row.Scan(&r.ID, &t, &r.Action, &r.Decision, &r.ClientID, &r.AccountID,
			&r.Subject, &r.Actor, &aud, &r.JTI, &r.Error, &r.Detail, &r.RequestID, &r.Remote)
		if err != nil {
			return r, err
		}
		r.Time = sqlcodec.DecTime(t)
		r.Audience, err = sqlcodec.DecList(aud)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list audit: %w", err)
	}
	return out, nil
}
