package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlcodec"
	"github.com/keybridge/sts/internal/store/sqlrows"
)

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
			b.Queue(queries.InsertAudit, sqlrows.AuditValues(&recs[i])...)
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
	q, args := queries.ListAudit(f)
	rows, err := s.pool.Query(ctx, q, args...)
	out, err := collect(rows, err, sqlrows.ScanAudit)
	if err != nil {
		return nil, fmt.Errorf("postgres: list audit: %w", err)
	}
	return out, nil
}

// DeleteAuditBefore implements [store.Audit], one batch of
// sqlrows.AuditDeleteBatch records per statement (its own transaction),
// so that no lock is held for long.
func (s *Store) DeleteAuditBefore(ctx context.Context, before time.Time) (int, error) {
	total := 0
	for {
		n, err := rowsAffected(s.pool.Exec(ctx, queries.DeleteAuditBatch, sqlcodec.EncTime(before)))
		total += n
		if err != nil {
			return total, fmt.Errorf("postgres: delete audit: %w", err)
		}
		if n < sqlrows.AuditDeleteBatch {
			return total, nil
		}
	}
}
