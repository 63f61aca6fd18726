package audit

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/keybridge/sts/internal/store"
)

// Kinds of [Problem].
const (
	// ProblemChanged: the record's hash is not the hash of its content
	// and of its predecessor's hash (the record, or its hash, was edited).
	ProblemChanged = "changed"
	// ProblemMissing: records between the last good one and this one are
	// gone (a deleted record), or the chain ends before its head.
	ProblemMissing = "missing"
	// ProblemInserted: a record the chain does not account for: a second
	// record of a sequence number, one past the head or before the
	// retention anchor, one without a chain written after chaining began,
	// one in a chain the store does not know.
	ProblemInserted = "inserted"
	// ProblemHead: the chain's last record is not the head the store
	// recorded with it.
	ProblemHead = "head mismatch"
)

// A Problem is the first broken record of a chain.
type Problem struct {
	Kind  string
	Chain string
	Seq   int64
	// ID is the record's id, 0 when there is no record (a missing tail).
	ID     int64
	Detail string
}

func (p *Problem) String() string {
	return fmt.Sprintf("%s: record id %d, chain %q, seq %d: %s", p.Kind, p.ID, p.Chain, p.Seq, p.Detail)
}

// ChainReport is the result of verifying one chain.
type ChainReport struct {
	Chain store.AuditChain
	// Records is how many records were checked.
	Records int64
	// Problem is the first broken record, nil when the chain verifies.
	Problem *Problem
}

// Report is the result of [Verify].
type Report struct {
	Chains []ChainReport
	// Legacy counts the records written before chaining began, which
	// cannot be verified ("unchained"; not a problem).
	Legacy int64
	// Stray is a record outside every chain that is not one of them.
	Stray *Problem
	// Tail is VerifyOptions.Tail: 0 when every record was checked.
	Tail int64
	// Skipped counts the chains left out by VerifyOptions.MaxChains.
	Skipped int
}

// OK reports whether nothing is broken.
func (r *Report) OK() bool {
	if r.Stray != nil {
		return false
	}
	for _, c := range r.Chains {
		if c.Problem != nil {
			return false
		}
	}
	return true
}

// Problems lists the first problem of each broken chain, and the stray.
func (r *Report) Problems() []*Problem {
	var out []*Problem
	for _, c := range r.Chains {
		if c.Problem != nil {
			out = append(out, c.Problem)
		}
	}
	if r.Stray != nil {
		out = append(out, r.Stray)
	}
	return out
}

// Records is the number of records checked, over all chains.
func (r *Report) Records() int64 {
	var n int64
	for _, c := range r.Chains {
		n += c.Records
	}
	return n
}

// VerifyOptions tune [Verify].
type VerifyOptions struct {
	// Tail, when positive, checks only the last Tail records of each
	// chain (their links, and the last against the head), and not the
	// records outside the chains: a cheap check for each page view.
	Tail int64
	// PageSize is how many records are read per query (DefaultPageSize).
	PageSize int
	// MaxChains, when positive, checks only the chains appended to last,
	// at most MaxChains of them (Report.Skipped counts the others).
	MaxChains int
}

// DefaultPageSize is the records Verify reads per query: its memory is
// one page, whatever the number of records.
const DefaultPageSize = 1000

// Verify walks every chain of st from its anchor (or its last o.Tail
// records) to its head, one page of records at a time, and reports the
// first broken record of each. Records appended or pruned while it walks
// are taken into account: neither makes a chain look broken.
func Verify(ctx context.Context, st store.Audit, o VerifyOptions) (*Report, error) {
	if o.PageSize <= 0 {
		o.PageSize = DefaultPageSize
	}
	chains, err := st.AuditChains(ctx)
	if err != nil {
		return nil, err
	}
	rep := &Report{Tail: max(o.Tail, 0)}
	if o.MaxChains > 0 && len(chains) > o.MaxChains {
		slices.SortStableFunc(chains, func(a, b store.AuditChain) int { return b.UpdatedAt.Compare(a.UpdatedAt) })
		rep.Skipped = len(chains) - o.MaxChains
		chains = chains[:o.MaxChains]
		slices.SortFunc(chains, func(a, b store.AuditChain) int { return cmp.Compare(a.Name, b.Name) })
	}
	for _, c := range chains {
		cr, err := VerifyChain(ctx, st, c, o)
		if err != nil {
			return nil, err
		}
		rep.Chains = append(rep.Chains, cr)
	}
	if o.Tail > 0 || rep.Skipped > 0 {
		return rep, nil
	}
	legacy, stray, err := st.AuditUnchained(ctx)
	if err != nil {
		return nil, err
	}
	rep.Legacy = legacy
	if stray != nil {
		d := "a record without a chain, written after chaining began"
		if stray.Chain != "" {
			d = "a record of a chain the store does not know"
		}
		rep.Stray = &Problem{Kind: ProblemInserted, Chain: stray.Chain, Seq: stray.Seq, ID: stray.ID, Detail: d}
	}
	return rep, nil
}

// VerifyChain verifies chain c of st (see [Verify]).
func VerifyChain(ctx context.Context, st store.Audit, c store.AuditChain, o VerifyOptions) (ChainReport, error) {
	if o.PageSize <= 0 {
		o.PageSize = DefaultPageSize
	}
	rep := ChainReport{Chain: c}
	for restarts := 0; ; restarts++ {
		p, retry, err := walkChain(ctx, st, c, o, &rep.Records)
		if errors.Is(err, errChainGone) {
			// Retired while it was walked (pruned empty): nothing of it
			// is left to verify. A record left in it would be a stray.
			return rep, nil
		}
		if err != nil {
			return rep, err
		}
		if !retry || restarts == 3 {
			rep.Problem = p
			return rep, nil
		}
		// Retention pruned records under the walk: start again from its
		// new anchor.
		if c, err = chainNamed(ctx, st, c.Name); errors.Is(err, errChainGone) {
			return rep, nil
		} else if err != nil {
			return rep, err
		}
		rep.Chain, rep.Records = c, 0
	}
}

// walkChain walks c once. retry: a gap that retention may have made while
// the walk went on (the anchor has moved past it).
func walkChain(ctx context.Context, st store.Audit, c store.AuditChain, o VerifyOptions, n *int64) (_ *Problem, retry bool, _ error) {
	prev, next := c.AnchorHash, c.AnchorSeq+1
	after := int64(math.MinInt64) // every record: one at or before the anchor is stray
	trustFirst := false
	if o.Tail > 0 && c.Seq-o.Tail > c.AnchorSeq {
		// The record before the tail gives the tail's first link.
		next = c.Seq - o.Tail
		after = next - 1
		trustFirst = true
	}
	head := c
	var lastID int64
	problem := func(kind string, r *store.AuditRecord, format string, args ...any) *Problem {
		return &Problem{Kind: kind, Chain: c.Name, Seq: r.Seq, ID: r.ID, Detail: fmt.Sprintf(format, args...)}
	}
	// pruned reports whether retention has anchored the chain past seq
	// since c was read.
	pruned := func(seq int64) (bool, error) {
		now, err := chainNamed(ctx, st, c.Name)
		return err == nil && now.AnchorSeq > c.AnchorSeq && now.AnchorSeq >= seq, err
	}
	for {
		page, err := st.AuditChainRecords(ctx, c.Name, after, o.PageSize)
		if err != nil {
			return nil, false, err
		}
		if len(page) == 0 {
			// The end: compare with the head, read again, as records
			// may have been appended since. Records up to the head read
			// now are visible to the next query, committed with it.
			if head, err = chainNamed(ctx, st, c.Name); err != nil {
				return nil, false, err
			}
			if head.Seq > next-1 {
				if more, err := st.AuditChainRecords(ctx, c.Name, after, 1); err != nil {
					return nil, false, err
				} else if len(more) > 0 {
					continue
				}
				if ok, err := pruned(head.Seq); err != nil || ok {
					return nil, ok, err
				}
				return &Problem{Kind: ProblemMissing, Chain: c.Name, Seq: next, Detail: fmt.Sprintf(
					"the chain ends at seq %d but its head is seq %d (hash %s): the last records are missing",
					next-1, head.Seq, short(head.Hash))}, false, nil
			}
			if head.Seq == next-1 && head.Hash != prev {
				return &Problem{Kind: ProblemHead, Chain: c.Name, Seq: head.Seq, ID: lastID, Detail: fmt.Sprintf(
					"the last record's hash %s is not the head's %s", short(prev), short(head.Hash))}, false, nil
			}
			return nil, false, nil
		}
		for i := range page {
			r := &page[i]
			*n++
			after = r.Seq
			switch {
			case r.Seq <= c.AnchorSeq:
				return problem(ProblemInserted, r, "a record at or before the retention anchor (seq %d)", c.AnchorSeq), false, nil
			case r.Seq < next:
				return problem(ProblemInserted, r, "a second record of seq %d", r.Seq), false, nil
			case r.Seq > next && !trustFirst:
				if ok, err := pruned(r.Seq - 1); err != nil || ok {
					return nil, ok, err
				}
				if r.Seq-1 == next {
					return problem(ProblemMissing, r, "the record of seq %d before it is missing", next), false, nil
				}
				return problem(ProblemMissing, r, "the records of seq %d to %d before it are missing", next, r.Seq-1), false, nil
			}
			if r.Seq > head.Seq {
				if head, err = chainNamed(ctx, st, c.Name); err != nil {
					return nil, false, err
				}
				if r.Seq > head.Seq {
					return problem(ProblemInserted, r, "a record past the chain's head (seq %d)", head.Seq), false, nil
				}
			}
			if trustFirst {
				trustFirst = false
			} else if h := ChainHash(prev, r); h != r.Hash {
				return problem(ProblemChanged, r, "its content or hash was changed (stored hash %s, computed %s)", short(r.Hash), short(h)), false, nil
			}
			prev, next, lastID = r.Hash, r.Seq+1, r.ID
		}
	}
}

// errChainGone: a chain was retired while Verify walked it.
var errChainGone = errors.New("audit: the chain is gone")

// chainNamed reads chain name again.
func chainNamed(ctx context.Context, st store.Audit, name string) (store.AuditChain, error) {
	c, err := st.AuditChain(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return store.AuditChain{}, fmt.Errorf("%w: %q", errChainGone, name)
	}
	if err != nil {
		return store.AuditChain{}, err
	}
	return *c, nil
}

// short abbreviates a hash for a message.
func short(h string) string {
	if h == "" {
		return `""`
	}
	return strings.Clone(h[:min(len(h), 16)])
}
