package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlcodec"
	"github.com/keybridge/sts/internal/store/sqlrows"
)

// AppendAudit implements [store.Audit]. The records' ID fields are ignored:
// the database numbers records in the order they are appended.
func (s *Store) AppendAudit(ctx context.Context, recs []store.AuditRecord) error {
	if len(recs) == 0 {
		return nil
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, queries.InsertAudit)
		if err != nil {
			return err
		}
		defer st.Close()
		for i := range recs {
			if _, err := st.ExecContext(ctx, sqlrows.AuditValues(&recs[i])...); err != nil {
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
	q, args := queries.ListAudit(f)
	rows, err := s.r.QueryContext(ctx, q, args...)
	out, err := collect(rows, err, sqlrows.ScanAudit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list audit: %w", err)
	}
	return out, nil
}

// DeleteAuditBefore implements [store.Audit], one batch of
// sqlrows.AuditDeleteBatch records per statement (its own transaction),
// so that the writer connection is free between batches.
func (s *Store) DeleteAuditBefore(ctx context.Context, before time.Time) (int, error) {
	total := 0
	for {
		n, err := rowsAffected(s.w.ExecContext(ctx, queries.DeleteAuditBatch, sqlcodec.EncTime(before)))
		total += n
		if err != nil {
			return total, fmt.Errorf("sqlite: delete audit: %w", err)
		}
		if n < sqlrows.AuditDeleteBatch {
			return total, nil
		}
	}
}
