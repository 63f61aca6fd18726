// Package bench is the load generator behind `sts bench`: it drives a
// running STS's token endpoint with concurrent RFC 8693 exchanges over
// keep-alive HTTP connections for a fixed time and reports throughput and
// latency percentiles. It sends traffic only to the URLs it is given:
// one server, or several instances of one (workers spread round-robin).
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keybridge/sts/oauth"
)

// Config says what to send.
type Config struct {
	// TokenEndpoint is the URL of POST /token/oauth2: shorthand for URLs
	// with one element.
	TokenEndpoint string
	// URLs are the token endpoints of several instances of one server
	// (sharing a database, so that the client and the subject token are
	// valid at each). Worker i sends to URLs[i%len(URLs)], so that the
	// load is spread evenly when Concurrency is a multiple of len(URLs).
	URLs []string
	// ClientID and ClientSecret authenticate the exchanging client
	// (client_secret_basic).
	ClientID, ClientSecret string
	// SubjectToken is exchanged by every request.
	SubjectToken string
	// Resource is the requested resource, if any.
	Resource string
	// Concurrency is the number of requests in flight.
	Concurrency int
	// Duration bounds the run; Requests, when positive, too.
	Duration time.Duration
	Requests int
	// HTTPClient sends the requests; a keep-alive client sized for
	// Concurrency when nil.
	HTTPClient *http.Client
}

// Result is what a run measured.
type Result struct {
	Requests  int           `json:"requests"`
	Errors    int           `json:"errors"`
	Elapsed   time.Duration `json:"elapsed_ns"`
	PerSecond float64       `json:"exchanges_per_second"`
	P50       time.Duration `json:"p50_ns"`
	P90       time.Duration `json:"p90_ns"`
	P99       time.Duration `json:"p99_ns"`
	Max       time.Duration `json:"max_ns"`
	// FirstError describes the first failure, if any.
	FirstError string `json:"first_error,omitempty"`
	// Endpoints breaks the run down by URL when there were several.
	Endpoints []EndpointResult `json:"endpoints,omitempty"`
}

// EndpointResult is the share of one URL in a run.
type EndpointResult struct {
	URL      string `json:"url"`
	Requests int    `json:"requests"`
	Errors   int    `json:"errors"`
}

func (r Result) String() string {
	s := fmt.Sprintf("%d exchanges in %v: %.0f/s; latency p50 %v, p90 %v, p99 %v, max %v; %d errors",
		r.Requests, r.Elapsed.Round(time.Millisecond), r.PerSecond,
		r.P50.Round(time.Microsecond), r.P90.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.Max.Round(time.Microsecond), r.Errors)
	if r.FirstError != "" {
		s += " (first: " + r.FirstError + ")"
	}
	for _, e := range r.Endpoints {
		s += fmt.Sprintf("\n  %s: %d exchanges, %d errors", e.URL, e.Requests, e.Errors)
	}
	return s
}

// Run sends exchanges until Duration passes (or Requests are sent) and
// reports. A run in which every request failed is an error.
func Run(ctx context.Context, c Config) (Result, error) {
	urls := c.URLs
	switch {
	case c.TokenEndpoint != "" && len(urls) > 0:
		return Result{}, errors.New("bench: give TokenEndpoint or URLs, not both")
	case c.TokenEndpoint != "":
		urls = []string{c.TokenEndpoint}
	case len(urls) == 0:
		return Result{}, errors.New("bench: no token endpoint")
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 16
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	hc := c.HTTPClient
	if hc == nil {
		hc = &http.Client{
			Timeout:   30 * time.Second,
			Transport: &http.Transport{MaxIdleConnsPerHost: c.Concurrency, MaxConnsPerHost: c.Concurrency},
		}
	}
	form := url.Values{
		"grant_type":         {oauth.GrantTypeTokenExchange},
		"subject_token":      {c.SubjectToken},
		"subject_token_type": {oauth.TokenTypeAccessToken},
	}
	if c.Resource != "" {
		form.Set("resource", c.Resource)
	}
	body := form.Encode()
	auth := oauth.BasicAuth(c.ClientID, c.ClientSecret)

	ctx, cancel := context.WithTimeout(ctx, c.Duration)
	defer cancel()
	// A run whose first completed requests all fail stops early: nothing
	// more is learnt by repeating them (the server may be rate-limiting
	// or the credentials were revoked mid-run).
	var (
		completed, failed atomic.Int64
		stopped           atomic.Bool
	)
	var (
		mu       sync.Mutex
		lat      []time.Duration
		errs     int
		firstErr string
		sent     int
		wg       sync.WaitGroup
		perURL   = make([]EndpointResult, len(urls))
	)
	// One exchange at each URL first, counted in the run: a wrong secret
	// or subject token is reported at once, not after a whole run of
	// failures.
	start := time.Now()
	for i, u := range urls {
		perURL[i].URL = u
		t0 := time.Now()
		if err := exchange(ctx, hc, u, auth, body); err != nil {
			return Result{}, fmt.Errorf("the first exchange at %s failed, so the run did not start: %w", u, err)
		}
		lat = append(lat, time.Since(t0))
		perURL[i].Requests++
		sent++
	}
	// take reserves one request of the budget.
	take := func() bool {
		mu.Lock()
		defer mu.Unlock()
		if c.Requests > 0 && sent >= c.Requests {
			return false
		}
		sent++
		return true
	}
	for w := range c.Concurrency {
		endpoint := w % len(urls)
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 1024)
			lerrs, lfirst := 0, ""
			for ctx.Err() == nil && take() {
				t0 := time.Now()
				err := exchange(ctx, hc, urls[endpoint], auth, body)
				if ctx.Err() != nil {
					break // cut off by the end of the run: not a result
				}
				local = append(local, time.Since(t0))
				if n := completed.Add(1); err != nil {
					if failed.Add(1) == n && n == failFast {
						stopped.Store(true)
						cancel()
					}
					lerrs++
					if lfirst == "" {
						lfirst = err.Error()
						if len(urls) > 1 {
							lfirst = urls[endpoint] + ": " + lfirst
						}
					}
				}
			}
			mu.Lock()
			lat = append(lat, local...)
			errs += lerrs
			perURL[endpoint].Requests += len(local)
			perURL[endpoint].Errors += lerrs
			if firstErr == "" {
				firstErr = lfirst
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	r := Result{Requests: len(lat), Errors: errs, Elapsed: time.Since(start), FirstError: firstErr}
	if len(urls) > 1 {
		r.Endpoints = perURL
	}
	if r.Requests == 0 {
		return r, errors.New("no request completed")
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	r.P50, r.P90, r.P99, r.Max = pct(0.50), pct(0.90), pct(0.99), lat[len(lat)-1]
	r.PerSecond = float64(r.Requests-r.Errors) / r.Elapsed.Seconds()
	if stopped.Load() {
		return r, fmt.Errorf("stopped early: after the first exchange succeeded, the next %d all failed: %s", failFast, r.FirstError)
	}
	return r, nil
}

// failFast is how many completed requests, all failed, end a run early.
const failFast = 100

func exchange(ctx context.Context, hc *http.Client, endpoint, auth, body string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", auth)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		var oe oauth.Error
		if json.Unmarshal(b, &oe) == nil && oe.Code != "" {
			return fmt.Errorf("status %d: %s: %s", resp.StatusCode, oe.Code, oe.Description)
		}
		return fmt.Errorf("status %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return nil
}
