package cached_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/store/cached"
	"github.com/keybridge/sts/internal/store/sqlite"
)

// BenchmarkLoadRevocations loads the revocation set at start (cached.New)
// from a SQLite database of n unexpired revocations (100,000, seeded
// here; or the database STS_BENCH_SCALE_DB names, e.g. one `sts bench
// seed --revocations 1000000` built) and reports the heap the loaded set
// holds, per million entries, beside the time of a load.
func BenchmarkLoadRevocations(b *testing.B) {
	ctx := context.Background()
	path := os.Getenv("STS_BENCH_SCALE_DB")
	if path == "" {
		path = filepath.Join(b.TempDir(), "sts.db")
	}
	inner, err := sqlite.Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	defer inner.Close()
	now := time.Now()
	if os.Getenv("STS_BENCH_SCALE_DB") == "" {
		if err := inner.SeedRevocations(ctx, 100_000, now.Add(time.Hour), now); err != nil {
			b.Fatal(err)
		}
	}
	n, err := inner.ListRevocations(ctx, time.Time{}, now)
	if err != nil {
		b.Fatal(err)
	}
	entries := len(n)
	n = nil
	var before, after runtime.MemStats
	var s *cached.Store
	b.ReportAllocs()
	for b.Loop() {
		s = nil
		runtime.GC()
		runtime.ReadMemStats(&before)
		if s, err = cached.New(ctx, inner, cached.Options{}); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if revoked, _ := s.IsRevoked(ctx, "not revoked"); revoked {
		b.Fatal("an unknown jti is revoked")
	}
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20)*1e6/float64(entries), "MiB/1e6-revocations")
	b.ReportMetric(float64(entries), "revocations")
	runtime.KeepAlive(s)
}
