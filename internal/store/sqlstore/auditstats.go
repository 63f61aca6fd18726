package sqlstore

import (
	"context"
	"errors"
	"time"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlcodec"
)

// AuditStats implements [store.AuditStats] with three aggregate queries
// on the read pool (sqlrows.Queries.AuditStats).
func (s *Store) AuditStats(ctx context.Context, q store.AuditStatsQuery) (*store.AuditSummary, error) {
	if q.Bucket < time.Second {
		return nil, errors.New("audit stats: the bucket must be at least a second")
	}
	out := &store.AuditSummary{}
	if len(q.Actions) == 0 || !q.Since.Before(q.Until) {
		return out, nil
	}
	bq, rq, cq, args := s.q.AuditStats(q)
	width := q.Bucket.Microseconds()
	err := s.r.Query(ctx, bq, args, func(r Row) error {
		var b store.AuditBucket
		var n int64
		if err := r.Scan(&n, &b.Granted, &b.Refused); err != nil {
			return err
		}
		b.Start = sqlcodec.DecTime(n * width)
		out.Buckets = append(out.Buckets, b)
		return nil
	})
	if err != nil {
		return nil, s.errorf("audit stats by time: %w", err)
	}
	counts := func(query string, into *[]store.AuditCount) error {
		if query == "" {
			return nil
		}
		return s.r.Query(ctx, query, args, func(r Row) error {
			var c store.AuditCount
			var total int64
			if err := r.Scan(&c.Key, &c.Granted, &c.Refused, &total); err != nil {
				return err
			}
			*into = append(*into, c)
			return nil
		})
	}
	if err := counts(rq, &out.Reasons); err != nil {
		return nil, s.errorf("audit stats by reason: %w", err)
	}
	if err := counts(cq, &out.Clients); err != nil {
		return nil, s.errorf("audit stats by client: %w", err)
	}
	return out, nil
}
