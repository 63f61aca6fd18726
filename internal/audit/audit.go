// Package audit records every decision of the server (each issuance and
// each refusal) durably before the answer is sent. A [Writer] batches the
// records of concurrent requests into one transaction (group commit), so
// auditing costs one write per batch rather than one per request while no
// acknowledged request goes unrecorded.
package audit

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/keybridge/sts/internal/store"
)

// MaxBatch bounds the records written in one transaction.
const MaxBatch = 512

// ErrClosed is returned by Record after Close.
var ErrClosed = errors.New("audit: writer closed")

type pending struct {
	rec  store.AuditRecord
	done chan error
}

// Writer is a group-commit audit writer.
type Writer struct {
	store  store.Audit
	log    *slog.Logger
	queue  chan pending
	mu     sync.RWMutex // guards closed against Record racing Close
	closed bool
	wg     sync.WaitGroup
}

// NewWriter starts a writer over s; call Close to flush and stop it.
func NewWriter(s store.Audit, log *slog.Logger) *Writer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Writer{store: s, log: log, queue: make(chan pending, MaxBatch)}
	w.wg.Add(1)
	go w.loop()
	return w
}

// Record stores rec and returns once it is committed. The caller's context
// bounds only the wait: a record handed over is written even if the caller
// gives up.
func (w *Writer) Record(ctx context.Context, rec store.AuditRecord) error {
	p := pending{rec: rec, done: make(chan error, 1)}
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return ErrClosed
	}
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

func (w *Writer) loop() {
	defer w.wg.Done()
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
			recs = append(recs, q.rec)
		}
		// Not bound to any request: the batch is written even when the
		// requests that queued it were cancelled.
		err := w.store.AppendAudit(context.Background(), recs)
		if err != nil {
			w.log.Error("audit write failed", "records", len(recs), "err", err)
		}
		for _, q := range batch {
			q.done <- err
		}
	}
}

// Close writes what is queued and stops the writer.
func (w *Writer) Close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.queue)
	}
	w.mu.Unlock()
	w.wg.Wait()
}
