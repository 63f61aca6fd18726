// Package audit records every decision of the server (each issuance and
// each refusal) durably before the answer is sent, within bounds no caller
// can push: every field is capped ([Bound]), and repeated identical
// refusals from one source are coalesced into one record with a count.
//
// A [Writer] batches the records of concurrent requests into one
// transaction (group commit), so auditing costs one write per batch rather
// than one per request while no acknowledged request goes unrecorded.
//
// Coalescing: the first refusal of a kind (same action, client, subject,
// audience, error and detail, from the same source address as
// [clientip.Key] sees it) in a window is written at once, like any record.
// Its repeats within the window are only counted in memory and written as
// one record whose Count is their number, carrying the time, request id
// and remote address of the last of them, when the window ends, when the
// in-memory table is full, and on Close. So a flood of identical refusals
// costs a record or two per window, not a row per request. Granted
// decisions are never coalesced. A crash loses the counts not yet written
// (never a first refusal); a graceful shutdown loses nothing.
package audit

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/keybridge/sts/internal/clientip"
	"github.com/keybridge/sts/internal/store"
)

// MaxBatch bounds the records written in one transaction.
const MaxBatch = 512

// Defaults of [Options].
const (
	DefaultWindow     = time.Minute
	DefaultMaxPending = 4096
	DefaultMaxKinds   = 1000
)

// OverflowDetail is the detail of the record that counts the refusals
// past the budget of new kinds (see Options.MaxKinds).
const OverflowDetail = "more distinct refusals than the audit budget allows: counted here without their client, subject or address"

// ErrClosed is returned by Record after Close.
var ErrClosed = errors.New("audit: writer closed")

// Options tune a Writer; zero values take the defaults.
type Options struct {
	Logger *slog.Logger
	// Now is the clock of the coalescing windows (time.Now when nil).
	Now func() time.Time
	// Window is how long repeats of a refusal are counted before they are
	// written as one record (DefaultWindow).
	Window time.Duration
	// MaxPending bounds the kinds of refusal counted in memory
	// (DefaultMaxPending); when full, every pending count is written.
	MaxPending int
	// MaxKinds bounds the new kinds of refusal written per window, over
	// all sources (DefaultMaxKinds): past it, a refusal is counted in one
	// record per action and error, without its client, subject or
	// address. Coalescing per source bounds one address; this bounds many
	// (a caller with a whole IPv6 /48 has 65,536 /64s).
	MaxKinds int
	// Journal, when set, takes the store write off the request's path:
	// a record is acknowledged once it is in the journal, and applied to
	// the store in the background (see [Journal]).
	Journal *Journal
	// ObserveBatch, when set, is told the size of each batch written
	// (metrics).
	ObserveBatch func(n int)
}

type pending struct {
	rec  store.AuditRecord
	done chan error
	// barrier is not a record: done is answered once every record queued
	// before it is in the store (Flush with a journal).
	barrier bool
}

// drainItem is a journaled batch for the background loop to apply, or a
// barrier to answer once everything before it is applied.
type drainItem struct {
	recs    []store.AuditRecord
	pos     journalPos
	barrier chan error
}

// repeat is a kind of refusal seen in the current window.
type repeat struct {
	start time.Time         // of the window: the first refusal, written
	n     int               // repeats since, not yet written
	last  store.AuditRecord // the latest repeat
}

// Writer is a group-commit, coalescing audit writer.
type Writer struct {
	store store.Audit
	o     Options
	queue chan pending

	mu     sync.RWMutex // guards closed against Record racing Close
	closed bool

	cmu   sync.Mutex // guards seen, kinds and kindsFrom
	seen  map[[32]byte]*repeat
	kinds int // new kinds opened since kindsFrom
	// kindsFrom starts the window of the MaxKinds budget.
	kindsFrom time.Time
	stopped   chan struct{}
	wg        sync.WaitGroup

	drain chan drainItem // with a journal: batches to apply to the store
}

// NewWriter starts a writer over s; call Close to flush and stop it.
func NewWriter(s store.Audit, o Options) *Writer {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.MaxPending <= 0 {
		o.MaxPending = DefaultMaxPending
	}
	if o.MaxKinds <= 0 {
		o.MaxKinds = DefaultMaxKinds
	}
	w := &Writer{
		store: s, o: o, queue: make(chan pending, MaxBatch),
		seen: map[[32]byte]*repeat{}, stopped: make(chan struct{}),
	}
	w.wg.Add(2)
	if o.Journal != nil {
		w.drain = make(chan drainItem, 256)
		w.wg.Add(1)
		go w.drainLoop()
	}
	go w.loop()
	go w.tick()
	return w
}

// QueueLen is the number of records queued for the writer (metrics).
func (w *Writer) QueueLen() int { return len(w.queue) }

// Record stores rec, its fields bounded, and returns once it is committed;
// the repeat of a refusal already recorded in the current window is only
// counted, and Record returns at once. The caller's context bounds only
// the wait: a record handed over is written even if the caller gives up.
func (w *Writer) Record(ctx context.Context, rec store.AuditRecord) error {
	rec = Bound(rec)
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return ErrClosed
	}
	var flush []store.AuditRecord
	if rec.Decision == store.DecisionRefused {
		var counted bool
		if rec, flush, counted = w.coalesce(rec); counted {
			w.mu.RUnlock()
			return nil
		}
	}
	for _, f := range flush {
		// Nobody waits for these: a failure is logged by the loop.
		w.queue <- pending{rec: f, done: make(chan error, 1)}
	}
	p := pending{rec: rec, done: make(chan error, 1)}
	select {
	case w.queue <- p:
		w.mu.RUnlock()
	case <-ctx.Done():
		w.mu.RUnlock()
		return ctx.Err()
	}
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// coalesce counts rec when it repeats a refusal of the current window
// (counted), or else opens a window for it and returns the records of
// pending counts that must be written first: its own kind's from the
// window that ended, or every one when the table is full. It returns rec
// as it is counted: past the budget of new kinds, its overflow form.
func (w *Writer) coalesce(rec store.AuditRecord) (_ store.AuditRecord, flush []store.AuditRecord, counted bool) {
	k := key(&rec)
	now := w.o.Now()
	w.cmu.Lock()
	defer w.cmu.Unlock()
	if _, ok := w.seen[k]; !ok {
		if now.Sub(w.kindsFrom) >= w.o.Window {
			w.kinds, w.kindsFrom = 0, now
		}
		if w.kinds >= w.o.MaxKinds {
			rec = overflow(rec)
			k = key(&rec)
		} else {
			w.kinds++
		}
	}
	if r, ok := w.seen[k]; ok {
		if now.Sub(r.start) < w.o.Window {
			r.n++
			r.last = rec
			return rec, nil, true
		}
		if r.n > 0 {
			flush = append(flush, r.record())
		}
		delete(w.seen, k)
	}
	if len(w.seen) >= w.o.MaxPending {
		flush = append(flush, w.takeLocked(func(*repeat) bool { return true })...)
	}
	w.seen[k] = &repeat{start: now}
	return rec, flush, false
}

// takeLocked removes the windows done says are over and returns the
// records of their pending counts.
func (w *Writer) takeLocked(done func(*repeat) bool) []store.AuditRecord {
	var out []store.AuditRecord
	for k, r := range w.seen {
		if !done(r) {
			continue
		}
		if r.n > 0 {
			out = append(out, r.record())
		}
		delete(w.seen, k)
	}
	return out
}

// record is the one record of a window's repeats.
func (r *repeat) record() store.AuditRecord {
	rec := r.last
	rec.Count = r.n
	return rec
}

// key identifies a kind of refusal: everything but the time, the request
// id and the port, with the address as clientip.Key groups it. The fields
// are length-prefixed so that no two kinds share a key.
func key(r *store.AuditRecord) [32]byte {
	h := sha256.New()
	var n [8]byte
	put := func(s string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	put(r.Action)
	put(r.Decision)
	put(r.ClientID)
	put(r.AccountID)
	put(r.Subject)
	put(r.Actor)
	put(r.JTI)
	put(r.Error)
	put(r.Detail)
	put(clientip.Key(r.Remote))
	binary.BigEndian.PutUint64(n[:], uint64(len(r.Audience)))
	h.Write(n[:])
	for _, a := range r.Audience {
		put(a)
	}
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// tick writes the counts of the windows that ended.
func (w *Writer) tick() {
	defer w.wg.Done()
	t := time.NewTicker(max(min(w.o.Window/4, 5*time.Second), time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-w.stopped:
			return
		case <-t.C:
		}
		w.mu.RLock()
		if w.closed {
			w.mu.RUnlock()
			return
		}
		now := w.o.Now()
		w.cmu.Lock()
		flush := w.takeLocked(func(r *repeat) bool { return now.Sub(r.start) >= w.o.Window })
		w.cmu.Unlock()
		for _, f := range flush {
			w.queue <- pending{rec: f, done: make(chan error, 1)}
		}
		w.mu.RUnlock()
	}
}

func (w *Writer) loop() {
	defer w.wg.Done()
	if w.drain != nil {
		defer close(w.drain)
	}
	batch := make([]pending, 0, MaxBatch)
	recs := make([]store.AuditRecord, 0, MaxBatch)
	for p := range w.queue {
		batch = append(batch[:0], p)
	drain:
		for len(batch) < MaxBatch {
			select {
			case q, ok := <-w.queue:
				if !ok {
					break drain
				}
				batch = append(batch, q)
			default:
				break drain
			}
		}
		recs = recs[:0]
		for _, q := range batch {
			if !q.barrier {
				recs = append(recs, q.rec)
			}
		}
		err := w.write(recs)
		for _, q := range batch {
			if q.barrier {
				w.drain <- drainItem{barrier: q.done}
			} else {
				q.done <- err
			}
		}
	}
}

// write makes recs durable: in the journal, and handed to the background
// loop, when there is one; else in the store.
func (w *Writer) write(recs []store.AuditRecord) error {
	if len(recs) == 0 {
		return nil
	}
	if w.o.ObserveBatch != nil {
		w.o.ObserveBatch(len(recs))
	}
	if w.drain == nil {
		// Not bound to any request: the batch is written even when the
		// requests that queued it were cancelled.
		err := w.store.AppendAudit(context.Background(), recs)
		if err != nil {
			w.o.Logger.Error("audit write failed", "records", len(recs), "err", err)
		}
		return err
	}
	pos, err := w.o.Journal.append(recs)
	if err != nil {
		w.o.Logger.Error("audit journal write failed", "records", len(recs), "err", err)
		return err
	}
	w.drain <- drainItem{recs: slices.Clone(recs), pos: pos}
	return nil
}

// drainLoop applies the journaled batches to the store, gathering them
// for up to DrainDelay (or DrainBatch records) into one transaction with
// the journal's checkpoint. A store failure is retried with back-off: the
// records are safe in the journal meanwhile, and the loop's queue, once
// full, holds new requests back. On Close, what cannot be applied stays in
// the journal for the next start.
func (w *Writer) drainLoop() {
	defer w.wg.Done()
	var (
		recs     []store.AuditRecord
		barriers []chan error
		pos      journalPos
		open     = true
	)
	w.o.Journal.mu.Lock()
	applied := journalPos{seg: w.o.Journal.seg}
	w.o.Journal.mu.Unlock()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	// gaveUp: a batch could not be applied while closing. Nothing after
	// it may be applied either, or the checkpoint would pass over it; the
	// journal keeps them all for the next start.
	gaveUp := false
	apply := func() {
		var err error
		if len(recs) > 0 && !gaveUp {
			for wait := 50 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
				if err = w.o.Journal.applied(context.Background(), recs, pos); err == nil {
					applied = pos
					break
				}
				w.o.Logger.Error("audit journal: applying to the store failed; retrying", "records", len(recs), "err", err)
				closing := !open
				if !closing {
					select {
					case <-time.After(wait):
					case <-w.stopped:
						closing = true
					}
				}
				if closing {
					gaveUp = true
					break
				}
			}
		}
		if gaveUp && err == nil {
			err = errors.New("audit: the store is unreachable; records are kept in the journal for the next start")
		}
		for _, b := range barriers {
			b <- err
		}
		recs, barriers = recs[:0], barriers[:0]
	}
	for open {
		var it drainItem
		if len(recs) == 0 && len(barriers) == 0 {
			it, open = <-w.drain
		} else {
			select {
			case it, open = <-w.drain:
			case <-timer.C:
				apply()
				continue
			}
		}
		if !open {
			break
		}
		if len(recs) == 0 && it.barrier == nil {
			timer.Reset(DrainDelay)
		}
		recs = append(recs, it.recs...)
		if it.barrier != nil {
			barriers = append(barriers, it.barrier)
		} else {
			pos = it.pos
		}
		if it.barrier != nil || len(recs) >= DrainBatch {
			timer.Stop()
			apply()
		}
	}
	timer.Stop()
	apply()
	if err := w.o.Journal.close(applied); err != nil {
		w.o.Logger.Error("audit journal close", "err", err)
	}
}

// Flush writes the counts of repeats not yet written, ending their
// windows, and returns once they are committed: for a reader that must see
// every refusal counted now (tests, an operator's export).
func (w *Writer) Flush(ctx context.Context) error {
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return ErrClosed
	}
	w.cmu.Lock()
	flush := w.takeLocked(func(*repeat) bool { return true })
	w.cmu.Unlock()
	dones := make([]chan error, 0, len(flush)+1)
	for _, f := range flush {
		p := pending{rec: f, done: make(chan error, 1)}
		w.queue <- p
		dones = append(dones, p.done)
	}
	if w.drain != nil {
		// With a journal, committed means in the journal: wait until
		// everything queued so far is in the store too.
		p := pending{barrier: true, done: make(chan error, 1)}
		w.queue <- p
		dones = append(dones, p.done)
	}
	w.mu.RUnlock()
	for _, d := range dones {
		select {
		case err := <-d:
			if err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Sync returns once every record acknowledged so far is in the store: at
// once without a journal, else after the background loop has applied
// them.
func (w *Writer) Sync(ctx context.Context) error {
	if w.drain == nil {
		return nil
	}
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return ErrClosed
	}
	p := pending{barrier: true, done: make(chan error, 1)}
	w.queue <- p
	w.mu.RUnlock()
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close writes the pending counts and what is queued, and stops the
// writer.
func (w *Writer) Close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.stopped)
		w.cmu.Lock()
		flush := w.takeLocked(func(*repeat) bool { return true })
		w.cmu.Unlock()
		for _, f := range flush {
			w.queue <- pending{rec: f, done: make(chan error, 1)}
		}
		close(w.queue)
	}
	w.mu.Unlock()
	w.wg.Wait()
}

// overflow is rec as the budget of new kinds counts it: its action,
// decision and error, nothing a caller chooses.
func overflow(rec store.AuditRecord) store.AuditRecord {
	return store.AuditRecord{
		Time: rec.Time, Action: rec.Action, Decision: rec.Decision, Error: rec.Error,
		Detail: OverflowDetail, RequestID: rec.RequestID,
	}
}
