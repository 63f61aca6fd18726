package bench_test

import (
	"context"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/bench"
	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
)

func TestRunAgainstRealServer(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	caller := s.CreateClient(nil)
	rs := s.CreateClient(func(c *store.Client) { c.Audiences = []string{"https://backend.example.com/api"} })
	r, err := bench.Run(context.Background(), bench.Config{
		TokenEndpoint: s.URL + server.TokenPath,
		ClientID:      rs.ID, ClientSecret: rs.Secret,
		SubjectToken: s.ClientCredentials(caller, nil),
		Resource:     "https://backend.example.com/api",
		Concurrency:  4, Duration: 5 * time.Second, Requests: 200,
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 200 || r.Errors != 0 || r.PerSecond <= 0 {
		t.Fatalf("%+v", r)
	}
	if !(r.P50 <= r.P90 && r.P90 <= r.P99 && r.P99 <= r.Max && r.P50 > 0) {
		t.Fatalf("percentiles out of order: %+v", r)
	}
	// Every exchange was audited as granted.
	granted := 0
	for _, a := range s.Audit() {
		if a.Action == "token.exchange" && a.Decision == store.DecisionGranted {
			granted++
		}
	}
	if granted != 200 {
		t.Fatalf("%d exchanges audited, want 200", granted)
	}
}

func TestRunReportsFailures(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	rs := s.CreateClient(nil)
	r, err := bench.Run(context.Background(), bench.Config{
		TokenEndpoint: s.URL + server.TokenPath,
		ClientID:      rs.ID, ClientSecret: "wrong",
		SubjectToken: "x", Concurrency: 2, Requests: 10, Duration: 5 * time.Second,
	})
	if err == nil || r.Errors != 10 || r.FirstError == "" {
		t.Fatalf("a run where every request failed: %+v, %v", r, err)
	}
}
