package sqlstore

import (
	"context"
	"time"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlcodec"
	"github.com/keybridge/sts/internal/store/sqlrows"
)

// AppendAudit implements [store.Audit]. The records' ID fields are ignored:
// the database numbers records in the order they are appended. The inserts
// go in one batch (Executor.ExecBatch), in one transaction.
func (s *Store) AppendAudit(ctx context.Context, recs []store.AuditRecord) error {
	if len(recs) == 0 {
		return nil
	}
	args := make([][]any, len(recs))
	for i := range recs {
		args[i] = sqlrows.AuditValues(&recs[i])
	}
	err := s.inTx(ctx, func(tx Executor) error { return tx.ExecBatch(ctx, s.q.InsertAudit, args) })
	if err != nil {
		return s.errorf("append audit: %w", err)
	}
	return nil
}

// AppendAuditCheckpoint implements [store.AuditCheckpointer].
func (s *Store) AppendAuditCheckpoint(ctx context.Context, recs []store.AuditRecord, cp *store.Setting) error {
	args := make([][]any, len(recs))
	for i := range recs {
		args[i] = sqlrows.AuditValues(&recs[i])
	}
	err := s.inTx(ctx, func(tx Executor) error {
		if len(args) > 0 {
			if err := tx.ExecBatch(ctx, s.q.InsertAudit, args); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, s.q.PutSetting, cp.Name, cp.Value, sqlcodec.EncTime(cp.UpdatedAt))
		return err
	})
	if err != nil {
		return s.errorf("append audit at %s: %w", cp.Name, err)
	}
	return nil
}

// ListAudit implements [store.Audit]. Since is inclusive and Until
// exclusive; records of the same time are listed last appended first.
func (s *Store) ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditRecord, error) {
	q, args := s.q.ListAudit(f)
	out, err := collect(ctx, s.r, sqlrows.ScanAudit, q, args...)
	if err != nil {
		return nil, s.errorf("list audit: %w", err)
	}
	return out, nil
}

// DeleteAuditBefore implements [store.Audit], one batch of
// sqlrows.AuditDeleteBatch records per statement (its own transaction),
// so that no lock is held for long and other writers go in between.
func (s *Store) DeleteAuditBefore(ctx context.Context, before time.Time) (int, error) {
	total := 0
	for {
		n, err := s.w.Exec(ctx, s.q.DeleteAuditBatch, sqlcodec.EncTime(before))
		total += int(n)
		if err != nil {
			return total, s.errorf("delete audit: %w", err)
		}
		if n < sqlrows.AuditDeleteBatch {
			return total, nil
		}
	}
}
