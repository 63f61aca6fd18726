package bench_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/bench"
	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
)

func TestRunAgainstRealServer(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	caller := s.CreateClient(func(c *store.Client) { c.Audiences = []string{"https://rs.example.com"} })
	rs := s.CreateClient(func(c *store.Client) {
		c.Audiences, c.Resources = []string{"https://backend.example.com/api"}, []string{"https://rs.example.com"}
	})
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

// With Rate, requests are sent on a schedule, not as fast as answers come:
// 40 requests at 100/s cannot complete in less than 0.39 s (the last is due
// 39/100 s after the first of the load), however fast the server is.
func TestRunPacedByRate(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	caller := s.CreateClient(func(c *store.Client) { c.Audiences = []string{"https://rs.example.com"} })
	rs := s.CreateClient(func(c *store.Client) {
		c.Audiences, c.Resources = []string{"https://backend.example.com/api"}, []string{"https://rs.example.com"}
	})
	r, err := bench.Run(context.Background(), bench.Config{
		TokenEndpoint: s.URL + server.TokenPath,
		ClientID:      rs.ID, ClientSecret: rs.Secret,
		SubjectToken: s.ClientCredentials(caller, nil),
		Resource:     "https://backend.example.com/api",
		Concurrency:  8, Duration: 30 * time.Second, Requests: 41, Rate: 100,
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 41 || r.Errors != 0 {
		t.Fatalf("%+v", r)
	}
	if r.Elapsed < 390*time.Millisecond {
		t.Fatalf("41 requests (one first, then 40 at 100/s) took %v: the rate was not kept", r.Elapsed)
	}
}

// TestRunFailsFast (issue 9, item 9): a wrong secret is reported at once
// with the server's error description, not after the whole duration.
func TestRunFailsFast(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	rs := s.CreateClient(nil)
	start := time.Now()
	r, err := bench.Run(context.Background(), bench.Config{
		TokenEndpoint: s.URL + server.TokenPath,
		ClientID:      rs.ID, ClientSecret: "wrong",
		SubjectToken: "x", Concurrency: 2, Duration: time.Minute,
	})
	if err == nil || !strings.Contains(err.Error(), "did not start") || !strings.Contains(err.Error(), "invalid_client: ") || r.Requests != 0 {
		t.Fatalf("a run with a wrong secret: %+v, %v", r, err)
	}
	if time.Since(start) > 30*time.Second {
		t.Errorf("the run with a wrong secret took %v of its minute", time.Since(start))
	}
}

// TestRunStopsWhenEverythingFails: a server that answers the first
// exchange and then only errors ends the run after failFast requests.
func TestRunStopsWhenEverythingFails(t *testing.T) {
	var n atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if n.Add(1) == 1 {
			w.Write([]byte(`{"access_token":"x","token_type":"Bearer"}`))
			return
		}
		w.WriteHeader(http.StatusTooManyRequests)
		w.Write([]byte(`{"error":"temporarily_unavailable","error_description":"slow down"}`))
	}))
	defer ts.Close()
	r, err := bench.Run(context.Background(), bench.Config{
		TokenEndpoint: ts.URL, ClientID: "a", ClientSecret: "b", SubjectToken: "x",
		Concurrency: 4, Duration: time.Minute,
	})
	if err == nil || !strings.Contains(err.Error(), "stopped early") || !strings.Contains(r.FirstError, "temporarily_unavailable: slow down") {
		t.Fatalf("run against a failing server: %+v, %v", r, err)
	}
	if r.Errors < 100 || r.Errors > 110 {
		t.Errorf("errors %d, want about 100 before stopping", r.Errors)
	}
}

// With several URLs, the workers are spread round-robin over them: here
// two listeners in front of one server, as two instances would be.
func TestRunSpreadsOverURLs(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	second := httptest.NewServer(s.Server.Handler())
	t.Cleanup(second.Close)
	caller := s.CreateClient(func(c *store.Client) { c.Audiences = []string{"https://rs.example.com"} })
	rs := s.CreateClient(func(c *store.Client) {
		c.Audiences, c.Resources = []string{"https://backend.example.com/api"}, []string{"https://rs.example.com"}
	})
	urls := []string{s.URL + server.TokenPath, second.URL + server.TokenPath}
	r, err := bench.Run(context.Background(), bench.Config{
		URLs:     urls,
		ClientID: rs.ID, ClientSecret: rs.Secret,
		SubjectToken: s.ClientCredentials(caller, nil),
		Resource:     "https://backend.example.com/api",
		Concurrency:  4, Duration: 5 * time.Second, Requests: 200,
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 200 || r.Errors != 0 || len(r.Endpoints) != 2 {
		t.Fatalf("%+v", r)
	}
	total := 0
	for i, e := range r.Endpoints {
		if e.URL != urls[i] || e.Requests == 0 || e.Errors != 0 {
			t.Errorf("endpoint %d: %+v", i, e)
		}
		total += e.Requests
	}
	if total != r.Requests {
		t.Errorf("endpoints add up to %d requests, want %d", total, r.Requests)
	}
	if !strings.Contains(r.String(), second.URL) {
		t.Errorf("the summary does not break the run down by URL:\n%s", r)
	}
}

func TestRunNeedsOneWayToTheEndpoint(t *testing.T) {
	for _, c := range []bench.Config{
		{},
		{TokenEndpoint: "http://127.0.0.1:1/token/oauth2", URLs: []string{"http://127.0.0.1:2/token/oauth2"}},
	} {
		if _, err := bench.Run(context.Background(), c); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}

// TestRunReportsProgress: a run of a few seconds reports each second, with
// counts that only grow.
func TestRunReportsProgress(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	caller := s.CreateClient(func(c *store.Client) { c.Audiences = []string{"https://rs.example.com"} })
	rs := s.CreateClient(func(c *store.Client) {
		c.Audiences, c.Resources = []string{"https://backend.example.com/api"}, []string{"https://rs.example.com"}
	})
	var reports []bench.Progress // Progress is called from one goroutine at a time
	r, err := bench.Run(context.Background(), bench.Config{
		TokenEndpoint: s.URL + server.TokenPath,
		ClientID:      rs.ID, ClientSecret: rs.Secret,
		SubjectToken: s.ClientCredentials(caller, nil),
		Resource:     "https://backend.example.com/api",
		Concurrency:  2, Duration: 2500 * time.Millisecond,
		Progress: func(p bench.Progress) { reports = append(reports, p) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(reports) == 0 {
		t.Fatal("no progress reported in a run of 2.5s")
	}
	for i, p := range reports {
		if p.Errors != 0 || p.Requests <= 0 || p.Rate <= 0 || p.Elapsed <= 0 || int(p.Requests) > r.Requests+2 {
			t.Errorf("report %d: %+v (the run: %d requests)", i, p, r.Requests)
		}
		if i > 0 && (p.Requests < reports[i-1].Requests || p.Elapsed <= reports[i-1].Elapsed) {
			t.Errorf("report %d went back: %+v after %+v", i, p, reports[i-1])
		}
		if !strings.Contains(p.String(), "requests") {
			t.Errorf("report %q", p)
		}
	}
	if r.Histogram.Total() != r.Requests {
		t.Errorf("histogram counts %d latencies, the run %d", r.Histogram.Total(), r.Requests)
	}
}

// TestRunStopsAfterASecondOfFailures: a server that fails slowly (fewer
// than 100 errors a second) still ends the run once a whole second has
// passed with nothing but failures.
func TestRunStopsAfterASecondOfFailures(t *testing.T) {
	var n atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if n.Add(1) == 1 {
			w.Write([]byte(`{"access_token":"x","token_type":"Bearer"}`))
			return
		}
		time.Sleep(30 * time.Millisecond) // at most 33 failures a second
		w.WriteHeader(http.StatusTooManyRequests)
		w.Write([]byte(`{"error":"temporarily_unavailable","error_description":"slow down"}`))
	}))
	defer ts.Close()
	_, err := bench.Run(context.Background(), bench.Config{
		TokenEndpoint: ts.URL, ClientID: "a", ClientSecret: "b", SubjectToken: "x",
		Concurrency: 1, Duration: time.Minute,
	})
	if err == nil || !strings.Contains(err.Error(), "every exchange failed for a second") ||
		!strings.Contains(err.Error(), "temporarily_unavailable: slow down") {
		t.Fatalf("run against a slowly failing server: %v", err)
	}
}

// TestRunMeasuresTheCeiling: with Config.Ceiling the result carries the
// ceiling and the exchange rate as a share of it.
func TestRunMeasuresTheCeiling(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	caller := s.CreateClient(func(c *store.Client) { c.Audiences = []string{"https://rs.example.com"} })
	rs := s.CreateClient(func(c *store.Client) {
		c.Audiences, c.Resources = []string{"https://backend.example.com/api"}, []string{"https://rs.example.com"}
	})
	r, err := bench.Run(context.Background(), bench.Config{
		TokenEndpoint: s.URL + server.TokenPath,
		ClientID:      rs.ID, ClientSecret: rs.Secret,
		SubjectToken: s.ClientCredentials(caller, nil),
		Resource:     "https://backend.example.com/api",
		Concurrency:  2, Duration: 5 * time.Second, Requests: 50, Ceiling: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Ceiling <= 0 || r.PercentOfCeiling <= 0 || !strings.Contains(r.String(), "% of the ES256 ceiling ") {
		t.Fatalf("%+v\n%s", r, r)
	}
}
