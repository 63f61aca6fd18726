package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/keybridge/sts/internal/audit"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlcodec"
	"github.com/keybridge/sts/internal/store/sqlrows"
)

// The audit trail is hash-chained (package audit explains the choice of a
// chain per writer): AppendAudit locks the head of the store's chain
// (AuditChainName) in its transaction, gives each record the next seq and its
// hash (audit.ChainHash of the record as stored), inserts them and moves
// the head. Records are never updated once stored: a coalesced refusal is
// a record of its own with its count.

// UnchainedMaxIDSetting is the setting migration 00015 writes: the greatest
// id of the records written before chaining began.
const UnchainedMaxIDSetting = "audit.chain.unchained_max_id"

// maxChainName bounds a chain's name.
const maxChainName = 64

// DefaultAuditChain is the name of the chain of a store opened on this
// host: the host name ("sts" without one), so that instances on different
// hosts never share a head row (and its lock), and one host keeps one
// chain across restarts. Two processes on one host share it: their
// transactions then take turns on its head, which keeps it whole.
func DefaultAuditChain() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "sts"
	}
	if len(h) > maxChainName {
		h = h[:maxChainName]
	}
	return h
}

// auditHead is the head of the store's chain as the store last committed
// it, so that an append usually needs one statement beyond its inserts:
// the compare-and-swap of the head (MoveAuditHead), which fails, and the
// append reads the head, when another writer moved it since.
type auditHead struct {
	mu   sync.Mutex
	ok   bool
	seq  int64
	hash string
}

func (h *auditHead) get() (seq int64, hash string, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seq, h.hash, h.ok
}

// set records a committed head, never going back.
func (h *auditHead) set(seq int64, hash string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.ok || seq > h.seq {
		h.ok, h.seq, h.hash = true, seq, hash
	}
}

// AppendAudit implements [store.Audit]. The records' ID, Chain, Seq and
// Hash fields are ignored: the store numbers and chains records in the
// order they are appended. The inserts go in one batch
// (Executor.ExecBatch), in one transaction with the chain's head.
func (s *Store) AppendAudit(ctx context.Context, recs []store.AuditRecord) error {
	if len(recs) == 0 {
		return nil
	}
	var head chained
	err := s.inTx(ctx, func(tx Executor) (err error) {
		head, err = s.appendChained(ctx, tx, recs)
		return err
	})
	if err != nil {
		return s.errorf("append audit: %w", err)
	}
	s.head.set(head.seq, head.hash)
	return nil
}

// AppendAuditCheckpoint implements [store.AuditCheckpointer].
func (s *Store) AppendAuditCheckpoint(ctx context.Context, recs []store.AuditRecord, cp *store.Setting) error {
	var head chained
	err := s.inTx(ctx, func(tx Executor) (err error) {
		if len(recs) > 0 {
			if head, err = s.appendChained(ctx, tx, recs); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, s.q.PutSetting, cp.Name, cp.Value, sqlcodec.EncTime(cp.UpdatedAt))
		return err
	})
	if err != nil {
		return s.errorf("append audit at %s: %w", cp.Name, err)
	}
	if len(recs) > 0 {
		s.head.set(head.seq, head.hash)
	}
	return nil
}

// chained is a chain's head after an append.
type chained struct {
	seq  int64
	hash string
}

// appendChained appends recs to the store's chain in tx and returns the
// new head, to be recorded once tx commits. From the head last committed,
// it computes the records' seqs and hashes before it moves the head (so
// that PostgreSQL's row lock is held for the inserts only); if another
// writer moved the head since, it locks and reads the head and computes
// them again.
func (s *Store) appendChained(ctx context.Context, tx Executor, recs []store.AuditRecord) (chained, error) {
	name := s.AuditChainName
	bounded := make([]store.AuditRecord, len(recs))
	for i := range recs {
		r := audit.Bound(recs[i])
		r.ID = 0
		r.Chain = name
		bounded[i] = r
	}
	args := make([][]any, len(recs))
	link := func(seq int64, prev string) chained {
		for i := range bounded {
			r := &bounded[i]
			seq++
			r.Seq = seq
			r.Hash = audit.ChainHash(prev, r)
			prev = r.Hash
			args[i] = sqlrows.BoundAuditValues(r)
		}
		return chained{seq, prev}
	}
	now := sqlcodec.EncTime(s.Now())
	moved := false
	var head chained
	if seq, hash, ok := s.head.get(); ok {
		head = link(seq, hash)
		n, err := tx.Exec(ctx, s.q.MoveAuditHead, head.seq, head.hash, now, name, seq, hash)
		if err != nil {
			return head, err
		}
		moved = n == 1
	}
	if !moved {
		c, err := s.lockChain(ctx, tx, name)
		if err != nil {
			return head, err
		}
		head = link(c.Seq, c.Hash)
		if _, err := tx.Exec(ctx, s.q.UpdateAuditHead, head.seq, head.hash, now, name); err != nil {
			return head, err
		}
	}
	return head, tx.ExecBatch(ctx, s.q.InsertAudit, args)
}

// lockChain reads chain name in tx, locking its row until tx ends, and
// creates it if it does not exist.
func (s *Store) lockChain(ctx context.Context, tx Executor, name string) (store.AuditChain, error) {
	q := s.q.GetAuditChain + s.d.ForUpdate
	c, err := sqlrows.ScanAuditChain(tx.QueryRow(ctx, q, name))
	if err == nil || !s.d.NoRows(err) {
		return c, err
	}
	now := s.Now()
	fresh := store.AuditChain{Name: name, Version: audit.ChainVersion, CreatedAt: now, UpdatedAt: now}
	if _, err := tx.Exec(ctx, s.q.InsertAuditChain, sqlrows.AuditChainValues(&fresh)...); err != nil {
		return c, err
	}
	return sqlrows.ScanAuditChain(tx.QueryRow(ctx, q, name))
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

// VisitAudit implements [store.Audit] with one query whose rows are read
// as each consumes them.
func (s *Store) VisitAudit(ctx context.Context, f store.AuditFilter, each func(*store.AuditRecord) error) error {
	q, args := s.q.VisitAudit(f)
	err := s.r.Query(ctx, q, args, func(row Row) error {
		r, err := sqlrows.ScanAudit(row)
		if err != nil {
			return err
		}
		return each(&r)
	})
	if err != nil {
		return s.errorf("visit audit: %w", err)
	}
	return nil
}

// AuditChains implements [store.Audit].
func (s *Store) AuditChains(ctx context.Context) ([]store.AuditChain, error) {
	out, err := collect(ctx, s.r, sqlrows.ScanAuditChain, s.q.ListAuditChains)
	if err != nil {
		return nil, s.errorf("audit chains: %w", err)
	}
	return out, nil
}

// AuditChain implements [store.Audit].
func (s *Store) AuditChain(ctx context.Context, name string) (*store.AuditChain, error) {
	c, err := sqlrows.ScanAuditChain(s.r.QueryRow(ctx, s.q.GetAuditChain, name))
	if err != nil {
		if err = s.mapErr(err); !errors.Is(err, store.ErrNotFound) {
			err = s.errorf("audit chain %q: %w", name, err)
		}
		return nil, err
	}
	return &c, nil
}

// AuditChainRecords implements [store.Audit].
func (s *Store) AuditChainRecords(ctx context.Context, chain string, after int64, limit int) ([]store.AuditRecord, error) {
	out, err := collect(ctx, s.r, sqlrows.ScanAudit, s.q.AuditChainRecords, chain, after, limit)
	if err != nil {
		return nil, s.errorf("audit chain %q: %w", chain, err)
	}
	return out, nil
}

// AuditUnchained implements [store.Audit]. Without the setting of
// migration 00015 (deleted), every record without a chain is a stray.
func (s *Store) AuditUnchained(ctx context.Context) (int64, *store.AuditRecord, error) {
	var maxID int64
	switch st, err := s.GetSetting(ctx, UnchainedMaxIDSetting); {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return 0, nil, err
	default:
		if maxID, err = strconv.ParseInt(st.Value, 10, 64); err != nil {
			maxID = 0
		}
	}
	var legacy int64
	if err := s.r.QueryRow(ctx, s.q.CountUnchainedAudit, maxID).Scan(&legacy); err != nil {
		return 0, nil, s.errorf("unchained audit: %w", err)
	}
	var stray *store.AuditRecord
	for _, q := range []struct {
		query string
		args  []any
	}{{s.q.UnchainedAfter, []any{maxID}}, {s.q.UnknownChainAudit, nil}} {
		r, err := sqlrows.ScanAudit(s.r.QueryRow(ctx, q.query, q.args...))
		switch {
		case err == nil:
			if stray == nil || r.ID < stray.ID {
				stray = &r
			}
		case !s.d.NoRows(err):
			return 0, nil, s.errorf("unchained audit: %w", err)
		}
	}
	return legacy, stray, nil
}

// errBrokenChain stops retention on a chain whose oldest records do not
// verify: pruning them would erase the evidence.
var errBrokenChain = errors.New("does not verify; run sts audit verify")

// DeleteAuditBefore implements [store.Audit]. Each chain is pruned in
// batches of sqlrows.AuditDeleteBatch records from its anchor on, each in
// a transaction that locks the chain's head, checks the records it
// deletes, deletes them and moves the anchor to the last; then the
// unchained records (written before chaining) by time, a batch per
// statement. A chain left empty whose last append is older than before
// is retired: a host that has gone (a container's name) leaves no row
// behind for ever. Should it append again, it starts the chain afresh. No lock is held for long, and writers go in between.
func (s *Store) DeleteAuditBefore(ctx context.Context, before time.Time) (int, error) {
	chains, err := s.AuditChains(ctx)
	if err != nil {
		return 0, err
	}
	total := 0
	var broken error
	for _, c := range chains {
		for {
			n, more, err := s.pruneChain(ctx, c.Name, before)
			total += n
			if errors.Is(err, errBrokenChain) {
				broken = errors.Join(broken, err)
				break
			}
			if err != nil {
				return total, s.errorf("delete audit: %w", err)
			}
			if !more {
				break
			}
		}
	}
	if _, err := s.w.Exec(ctx, s.q.RetireAuditChains, sqlcodec.EncTime(before)); err != nil {
		return total, s.errorf("delete audit: %w", err)
	}
	for {
		n, err := s.w.Exec(ctx, s.q.DeleteUnchainedAuditBatch, sqlcodec.EncTime(before))
		total += int(n)
		if err != nil {
			return total, s.errorf("delete audit: %w", err)
		}
		if n < sqlrows.AuditDeleteBatch {
			break
		}
	}
	if broken != nil {
		return total, s.errorf("delete audit: %w", broken)
	}
	return total, nil
}

// pruneChain deletes one batch of chain's oldest records before before
// and anchors the chain on the last of them. more: there may be more.
func (s *Store) pruneChain(ctx context.Context, chain string, before time.Time) (n int, more bool, err error) {
	cut := sqlcodec.EncTime(before)
	err = s.inTx(ctx, func(tx Executor) error {
		n, more = 0, false
		c, err := sqlrows.ScanAuditChain(tx.QueryRow(ctx, s.q.GetAuditChain+s.d.ForUpdate, chain))
		if s.d.NoRows(err) {
			return nil // retired meanwhile
		}
		if err != nil {
			return err
		}
		recs, err := collect(ctx, tx, sqlrows.ScanAudit, s.q.AuditChainRecords, chain, c.AnchorSeq, sqlrows.AuditDeleteBatch)
		if err != nil {
			return err
		}
		prev, next := c.AnchorHash, c.AnchorSeq+1
		k, bad := 0, false
		for ; k < len(recs) && sqlcodec.EncTime(recs[k].Time) < cut; k++ {
			r := &recs[k]
			if r.Seq != next || audit.ChainHash(prev, r) != r.Hash {
				if k == 0 {
					return fmt.Errorf("chain %q at seq %d %w", chain, next, errBrokenChain)
				}
				bad = true // prune the good ones; the next batch reports it
				break
			}
			prev, next = r.Hash, r.Seq+1
		}
		if k == 0 {
			return nil
		}
		last := recs[k-1]
		deleted, err := tx.Exec(ctx, s.q.DeleteAuditChainPrefix, chain, c.AnchorSeq, last.Seq)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, s.q.UpdateAuditAnchor, last.Seq, last.Hash, chain); err != nil {
			return err
		}
		n, more = int(deleted), bad || (k == len(recs) && len(recs) == sqlrows.AuditDeleteBatch)
		return nil
	})
	return n, more, err
}

// UseAuditChain makes the store append audit records to chain name (by
// default DefaultAuditChain()). Call it before the store is first used.
func (s *Store) UseAuditChain(name string) {
	s.AuditChainName = name
	s.head = auditHead{}
}
