package e2e_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/keybridge/sts/internal/bench"
	"github.com/keybridge/sts/internal/server"
)

// BenchmarkInstances measures token exchanges per second, with the same
// load generator (internal/bench), concurrency and duration, against one
// `sts serve` on SQLite, one on PostgreSQL and three on PostgreSQL (the
// load spread over the three). The three set-ups run side by side in the
// same run and are measured in turns, round after round, each round in a
// different order, so that a noisy machine disturbs them alike; each
// reports the median of its rounds and its ratio to the single SQLite
// instance. Every process, the database and the load generator share the
// machine, so the figures compare configurations; they are not the
// capacity of a real deployment. Run:
//
//	STS_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable \
//	  go test -run XXX -bench Instances -benchtime 1x ./internal/e2e/
//
// STS_BENCH_DURATION (default 5s per measurement), STS_BENCH_ROUNDS
// (default 3) and STS_BENCH_CONCURRENCY (default 32) change the run.
func BenchmarkInstances(b *testing.B) {
	testDatabaseURL(b)
	duration := envDuration(b, "STS_BENCH_DURATION", 5*time.Second)
	rounds := envInt(b, "STS_BENCH_ROUNDS", 3)
	concurrency := envInt(b, "STS_BENCH_CONCURRENCY", 32)
	ceiling := es256Ceiling(time.Second) // before anything else runs
	setups := []*benchSetup{
		{name: "sqlite-1", sqlite: true, nodes: []string{"A"}},
		{name: "postgres-1", nodes: []string{"A"}},
		{name: "postgres-3", nodes: []string{"A", "B", "C"}},
	}
	for _, s := range setups {
		s.start(b, concurrency)
	}
	ctx := context.Background()
	for round := range rounds {
		for i := range setups {
			s := setups[(round+i)%len(setups)]
			cfg := s.cfg
			cfg.Duration = duration
			r, err := bench.Run(ctx, cfg)
			if err != nil {
				b.Fatalf("%s: %v", s.name, err)
			}
			if r.Errors > 0 {
				b.Errorf("%s: %d of %d exchanges failed: %s", s.name, r.Errors, r.Requests, r.FirstError)
			}
			s.runs = append(s.runs, r)
		}
	}
	base := setups[0].median(func(r bench.Result) float64 { return r.PerSecond })
	for _, s := range setups {
		b.Run(s.name, func(b *testing.B) {
			rate := s.median(func(r bench.Result) float64 { return r.PerSecond })
			p50 := s.median(func(r bench.Result) float64 { return ms(r.P50) })
			p99 := s.median(func(r bench.Result) float64 { return ms(r.P99) })
			b.ReportMetric(rate, "exchanges/s")
			b.ReportMetric(p50, "p50-ms")
			b.ReportMetric(p99, "p99-ms")
			b.ReportMetric(rate/base, "x-sqlite-1")
			b.ReportMetric(0, "ns/op")
			var each []string
			for _, r := range s.runs {
				each = append(each, fmt.Sprintf("%.0f/s (p50 %.1f ms, p99 %.1f ms)", r.PerSecond, ms(r.P50), ms(r.P99)))
			}
			b.Logf("%s, %d instance(s): median %.0f exchanges/s = %.2f× sqlite-1 = %.2f of the ES256 sign+verify ceiling (%.0f/s on %d CPUs); concurrency %d, %d rounds of %v: %s",
				s.name, len(s.nodes), rate, rate/base, rate/ceiling, ceiling, runtime.NumCPU(), concurrency, len(s.runs), duration, strings.Join(each, ", "))
		})
	}
}

// benchSetup is one configuration of BenchmarkInstances.
type benchSetup struct {
	name   string
	sqlite bool
	nodes  []string
	cfg    bench.Config
	runs   []bench.Result
}

// start runs the instances (stopped when b's cleanups run), registers a
// caller and an exchanging service, and warms up for a second.
func (s *benchSetup) start(b *testing.B, concurrency int) {
	b.Helper()
	c := newCluster(b, clusterOptions{SQLite: s.sqlite}, s.nodes...)
	ctx := context.Background()
	const resource = "https://bench.example.com/api"
	caller := c.CreateClient("--name", "bench caller", "--scope", "bench")
	svc := c.CreateClient("--name", "bench service", "--audience", resource, "--scope", "bench")
	s.cfg = bench.Config{
		ClientID: svc.ID, ClientSecret: svc.Secret,
		SubjectToken: accessToken(b, c.Nodes[0].ClientCredentials(ctx, caller)),
		Resource:     resource, Concurrency: concurrency, Duration: time.Second,
	}
	for _, n := range c.Nodes {
		s.cfg.URLs = append(s.cfg.URLs, n.URL+server.TokenPath)
	}
	if _, err := bench.Run(ctx, s.cfg); err != nil { // connections, caches
		b.Fatalf("%s: %v", s.name, err)
	}
}

// median of f over the rounds.
func (s *benchSetup) median(f func(bench.Result) float64) float64 {
	v := make([]float64, len(s.runs))
	for i, r := range s.runs {
		v[i] = f(r)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func envDuration(b *testing.B, name string, def time.Duration) time.Duration {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		b.Fatalf("%s: %q is not a duration like 5s", name, s)
	}
	return d
}

func envInt(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		b.Fatalf("%s: %q is not a positive number", name, s)
	}
	return n
}

// es256Ceiling is how many ES256 verifications plus signatures (the
// cryptography of one exchange) all CPUs do per second, measured for d.
func es256Ceiling(d time.Duration) float64 {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, nil)
	payload := []byte(`{"iss":"https://sts.example.com","sub":"caller","aud":"https://bench.example.com/api","exp":2000000000}`)
	obj, _ := signer.Sign(payload)
	compact, _ := obj.CompactSerialize()
	procs := runtime.GOMAXPROCS(0)
	counts := make(chan int, procs)
	deadline := time.Now().Add(d)
	for range procs {
		go func() {
			n := 0
			for time.Now().Before(deadline) {
				o, _ := jose.ParseSignedCompact(compact, []jose.SignatureAlgorithm{jose.ES256})
				o.Verify(&key.PublicKey)
				signer.Sign(payload)
				n++
			}
			counts <- n
		}()
	}
	total := 0
	for range procs {
		total += <-counts
	}
	return float64(total) / d.Seconds()
}
