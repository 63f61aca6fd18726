package postgres

import (
	"context"
	"hash/fnv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlstore"
)

// changesChannel is the LISTEN/NOTIFY channel of every Key Bridge STS
// schema of a database; payloads start with the schema, so that several
// deployments (or tests) sharing a database ignore each other.
const changesChannel = "sts_changes"

// notify announces a change: it is the sqlstore.Config.OnChange hook, which
// the shared table code calls inside the transaction of every write of
// cached data (clients, accounts, revocations, keys). Inside a transaction,
// PostgreSQL delivers the notice on commit and drops it on rollback, so
// listeners never hear of a change that did not happen.
func (s *Store) notify(ctx context.Context, q sqlstore.Executor, kind, key string) error {
	_, err := q.Exec(ctx, `SELECT pg_notify($1, $2)`, changesChannel, s.schema+"|"+kind+":"+key)
	return err
}

// Listen implements [store.ChangeFeed] on a connection of its own.
func (s *Store) Listen(ctx context.Context, fn func(store.Change)) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// The connection has LISTEN state: never give it back to the pool.
	c := conn.Hijack()
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, `LISTEN `+changesChannel); err != nil {
		return err
	}
	prefix := s.schema + "|"
	for {
		n, err := c.WaitForNotification(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		rest, ok := strings.CutPrefix(n.Payload, prefix)
		if !ok {
			continue
		}
		kind, key, _ := strings.Cut(rest, ":")
		fn(store.Change{Kind: kind, Key: key})
	}
}

// Elector implements [store.Elections] with a session advisory lock: the
// process whose session holds pg_try_advisory_lock(role) leads; if it dies,
// its session ends, the lock is freed and another process takes it.
func (s *Store) Elector(role string) store.Elector {
	h := fnv.New64a()
	h.Write([]byte("github.com/keybridge/sts role\x00" + s.schema + "\x00" + role))
	return &elector{pool: s.pool, key: int64(h.Sum64()), interval: 5 * time.Second}
}

type elector struct {
	pool     *pgxpool.Pool
	key      int64
	interval time.Duration
	leader   atomic.Bool
}

func (e *elector) Leader() bool { return e.leader.Load() }

func (e *elector) Run(ctx context.Context) {
	for ctx.Err() == nil {
		e.hold(ctx)
		e.leader.Store(false)
		select {
		case <-ctx.Done():
		case <-time.After(e.interval):
		}
	}
}

// hold tries to take the lock on a dedicated session and, if it did, keeps
// checking that the session is alive until ctx ends or it fails.
func (e *elector) hold(ctx context.Context) {
	conn, err := e.pool.Acquire(ctx)
	if err != nil {
		return
	}
	// A session that may hold the lock is never reused by the pool.
	c := conn.Hijack()
	defer c.Close(context.Background())
	var got bool
	if err := c.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, e.key).Scan(&got); err != nil || !got {
		return
	}
	e.leader.Store(true)
	t := time.NewTicker(e.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, e.interval)
		err := c.Ping(pctx)
		cancel()
		if err != nil {
			return // the session, and with it the lock, is gone
		}
	}
}
