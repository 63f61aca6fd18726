package sqlstore

import (
	"context"
	"sync/atomic"
	"time"
)

// PoolStats describes one connection pool of a backend, for metrics.
type PoolStats struct {
	// Pool names the pool ("read", "write"; "main" for one pool).
	Pool string
	// InUse and Idle count the open connections; Max is the most the
	// pool opens.
	InUse, Idle, Max int
	// Waits counts the times a caller waited for a connection, WaitTime
	// their total wait.
	Waits    uint64
	WaitTime time.Duration
}

// CallObserver is told the operation ("exec", "query", "query_row",
// "exec_batch", "tx") and duration of each database call.
type CallObserver func(op string, d time.Duration)

// observed wraps an Executor to time its calls when an observer is set;
// without one each call costs an atomic load.
type observed struct {
	e   Executor
	obs *atomic.Pointer[CallObserver]
}

func (o observed) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	f := o.obs.Load()
	if f == nil {
		return o.e.Exec(ctx, query, args...)
	}
	start := time.Now()
	n, err := o.e.Exec(ctx, query, args...)
	(*f)("exec", time.Since(start))
	return n, err
}

func (o observed) QueryRow(ctx context.Context, query string, args ...any) Row {
	f := o.obs.Load()
	if f == nil {
		return o.e.QueryRow(ctx, query, args...)
	}
	start := time.Now()
	r := o.e.QueryRow(ctx, query, args...)
	(*f)("query_row", time.Since(start))
	return r
}

func (o observed) Query(ctx context.Context, query string, args []any, each func(Row) error) error {
	f := o.obs.Load()
	if f == nil {
		return o.e.Query(ctx, query, args, each)
	}
	start := time.Now()
	err := o.e.Query(ctx, query, args, each)
	(*f)("query", time.Since(start))
	return err
}

func (o observed) ExecBatch(ctx context.Context, query string, args [][]any) error {
	f := o.obs.Load()
	if f == nil {
		return o.e.ExecBatch(ctx, query, args)
	}
	start := time.Now()
	err := o.e.ExecBatch(ctx, query, args)
	(*f)("exec_batch", time.Since(start))
	return err
}

// ObserveCalls has obs told of every later database call of the Store
// (statements outside transactions one by one, a transaction as a whole);
// nil stops it. Safe to call while the Store is in use.
func (s *Store) ObserveCalls(obs CallObserver) {
	if obs == nil {
		s.obs.Store(nil)
		return
	}
	s.obs.Store(&obs)
}

func (s *Store) observedTx(ctx context.Context, fn func(Executor) error) error {
	f := s.obs.Load()
	if f == nil {
		return s.rawTx(ctx, fn)
	}
	start := time.Now()
	err := s.rawTx(ctx, fn)
	(*f)("tx", time.Since(start))
	return err
}
