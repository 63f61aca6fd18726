package audit_test

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/audit"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlite"
)

func benchRecord(i int) store.AuditRecord {
	return store.AuditRecord{
		Time: time.Now(), Action: "token.exchange", Decision: store.DecisionGranted,
		ClientID: "rs08", Subject: "alice", Actor: "rs08", Audience: []string{"https://backend.example.com/api"},
		JTI: strconv.Itoa(i), RequestID: "req-" + strconv.Itoa(i), Remote: "127.0.0.1",
	}
}

func benchStore(b *testing.B) *sqlite.Store {
	b.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "sts.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

// BenchmarkAuditRecord is the acknowledged write of a granted exchange's
// record against a real SQLite file, from 40 goroutines at once (the
// load generator's connections), so that group commit shows: ns/op is per
// record, whose wait includes a share of one commit.
func BenchmarkAuditRecord(b *testing.B) {
	w := audit.NewWriter(benchStore(b), audit.Options{})
	defer w.Close()
	ctx := context.Background()
	b.SetParallelism(20) // × GOMAXPROCS (2 here): 40 writers
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			if err := w.Record(ctx, benchRecord(i)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkAuditRecordSerial is one writer at a time: each record waits
// for a commit of its own, the worst case of group commit.
func BenchmarkAuditRecordSerial(b *testing.B) {
	w := audit.NewWriter(benchStore(b), audit.Options{})
	defer w.Close()
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if err := w.Record(ctx, benchRecord(i)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendAudit is store.AppendAudit of a batch of 64 records in
// one transaction, the size of a batch under load; ns/op is per batch.
func BenchmarkAppendAudit(b *testing.B) {
	st := benchStore(b)
	ctx := context.Background()
	batch := make([]store.AuditRecord, 64)
	for i := range batch {
		batch[i] = benchRecord(i)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := st.AppendAudit(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkChainHash is the hash of one typical record (audit.ChainHash),
// which AppendAudit computes for each record it appends.
func BenchmarkChainHash(b *testing.B) {
	r := benchRecord(1)
	r.Chain, r.Seq = "host", 1
	prev := strings.Repeat("ab", 32)
	b.ReportAllocs()
	for b.Loop() {
		audit.ChainHash(prev, &r)
	}
}

// BenchmarkVerify walks a chain of 10,000 records in SQLite, one page of
// 1,000 at a time; ns/op is per record.
func BenchmarkVerify(b *testing.B) {
	st := benchStore(b)
	ctx := context.Background()
	const n = 10000
	batch := make([]store.AuditRecord, 0, 500)
	for i := range n {
		batch = append(batch, benchRecord(i))
		if len(batch) == cap(batch) {
			if err := st.AppendAudit(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		rep, err := audit.Verify(ctx, st, audit.VerifyOptions{})
		if err != nil || !rep.OK() || rep.Records() != n {
			b.Fatalf("Verify = %v, %v", rep, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
}

// BenchmarkAuditRecordJournal is BenchmarkAuditRecord with the journal
// (the default with SQLite): a record is acknowledged once in the journal,
// and applied to the store in the background, where the chain is
// computed; the time includes a final Sync, so that the store's work is
// counted.
func BenchmarkAuditRecordJournal(b *testing.B) {
	st := benchStore(b)
	j, err := audit.OpenJournal(context.Background(), b.TempDir(), st, false)
	if err != nil {
		b.Fatal(err)
	}
	w := audit.NewWriter(st, audit.Options{Journal: j})
	defer w.Close()
	ctx := context.Background()
	b.SetParallelism(20)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			if err := w.Record(ctx, benchRecord(i)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	if err := w.Sync(ctx); err != nil {
		b.Fatal(err)
	}
}
