// Package bench is the load generator behind `sts bench`: it drives a
// running STS's token endpoint with concurrent RFC 8693 exchanges over
// keep-alive HTTP connections for a fixed time and reports throughput and
// latency percentiles and a latency histogram (as text or an SVG plot),
// optionally beside the machine's ES256 crypto ceiling (Ceiling). It sends
// traffic only to the URLs it is given: one server, or several instances
// of one (workers spread round-robin).
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
	// Concurrency is the number of requests in flight (at most, with
	// Rate).
	Concurrency int
	// Rate, when positive, paces the run at this many requests per second
	// (an open loop): request k is due at k/Rate after the start, and its
	// latency counts from when it was due, so a server that falls behind
	// is charged for the queue it causes (no coordinated omission).
	// Without it, each connection sends its next request as soon as the
	// previous one is answered (a closed loop, as wrk does).
	Rate float64
	// Duration bounds the run; Requests, when positive, too.
	Duration time.Duration
	Requests int
	// HTTPClient sends the requests; a keep-alive client sized for
	// Concurrency when nil.
	HTTPClient *http.Client
	// Ceiling, when positive, is how long to measure the ES256 ceiling
	// (see Ceiling) on this machine, after the first exchange succeeded
	// and before the load, so that a misconfigured run fails at once
	// and the ceiling is measured while the server is idle.
	Ceiling time.Duration
	// Progress, if set, is called about once a second while the load
	// runs, from one goroutine at a time.
	Progress func(Progress)
}

// Progress is the state of a run, reported each second.
type Progress struct {
	Elapsed time.Duration
	// Requests and Errors are the completed requests so far and how many
	// of them failed.
	Requests, Errors int64
	// Rate is the requests completed per second since the last report.
	Rate float64
}

func (p Progress) String() string {
	return fmt.Sprintf("%5.0fs  %6.0f/s  %d requests  %d errors",
		p.Elapsed.Seconds(), p.Rate, p.Requests, p.Errors)
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
	// Histogram counts the latencies of all completed requests.
	Histogram Histogram `json:"histogram"`
	// Ceiling is the ES256 verify+sign ceiling measured in the run
	// (Config.Ceiling), in operations per second; zero if not measured.
	Ceiling float64 `json:"es256_ceiling_per_second,omitempty"`
	// PercentOfCeiling is PerSecond as a percentage of Ceiling.
	PercentOfCeiling float64 `json:"percent_of_ceiling,omitempty"`
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
	if r.Ceiling > 0 {
		// The shared exchange-vs-ceiling script's wording, so that the
		// two figures read alike.
		s += fmt.Sprintf("\nexchange: %.0f/s = %.0f%% of the ES256 ceiling %.0f/s", r.PerSecond, r.PercentOfCeiling, r.Ceiling)
	}
	return s
}

// Run sends exchanges until Duration passes (or Requests are sent) and
// reports. It fails fast: a first exchange that fails at any URL stops the
// run before it starts, with the server's error; so do failFast failures
// in a row, or a whole second in which every completed request failed,
// with the error that began the failures. The run's figures would say
// nothing about the server's speed then.
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

	var (
		mu       sync.Mutex
		lat      []time.Duration
		errs     int
		firstErr string
		sent     int
		wg       sync.WaitGroup
		perURL   = make([]EndpointResult, len(urls))
		firstDur time.Duration
	)
	// One exchange at each URL first, counted in the run: a wrong secret
	// or subject token is reported at once, not after a whole run of
	// failures.
	for i, u := range urls {
		perURL[i].URL = u
		t0 := time.Now()
		if err := exchange(ctx, hc, u, auth, body); err != nil {
			return Result{}, fmt.Errorf("the first exchange at %s failed, so the run did not start: %w", u, err)
		}
		d := time.Since(t0)
		firstDur += d
		lat = append(lat, d)
		perURL[i].Requests++
		sent++
	}
	var ceiling float64
	if c.Ceiling > 0 {
		var err error
		if ceiling, err = Ceiling(ctx, c.Ceiling); err != nil {
			return Result{}, err
		}
	}
	// The run's clock counts the first exchanges but not the ceiling
	// measured between them and the load.
	start := time.Now().Add(-firstDur)
	ctx, cancel := context.WithTimeout(ctx, c.Duration-firstDur)
	defer cancel()

	// Fail fast. streak counts the failures since the last success;
	// streakErr is the error that began it. A run stops (stopReason set)
	// when the streak reaches failFast, or when a whole second of
	// completed requests failed.
	var (
		completed, failed atomic.Int64
		streak            atomic.Int64
		streakErr         atomic.Pointer[string]
		stopReason        atomic.Pointer[string]
	)
	stop := func(reason string) {
		if stopReason.CompareAndSwap(nil, &reason) {
			cancel()
		}
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
	var pace chan time.Time
	if c.Rate > 0 {
		pace = make(chan time.Time, c.Concurrency)
		interval := time.Duration(float64(time.Second) / c.Rate)
		go func() {
			t0 := time.Now()
			for k := 0; ; k++ {
				select {
				case pace <- t0.Add(time.Duration(k) * interval):
				case <-ctx.Done():
					return
				}
			}
		}()
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
				if pace != nil {
					select {
					case t0 = <-pace:
					case <-ctx.Done():
					}
					if ctx.Err() != nil {
						break
					}
					if d := time.Until(t0); d > 0 {
						time.Sleep(d)
					}
				}
				err := exchange(ctx, hc, urls[endpoint], auth, body)
				if ctx.Err() != nil {
					break // cut off by the end of the run: not a result
				}
				local = append(local, time.Since(t0))
				completed.Add(1)
				if err == nil {
					if streak.Load() != 0 {
						streak.Store(0)
					}
					continue
				}
				failed.Add(1)
				msg := err.Error()
				if len(urls) > 1 {
					msg = urls[endpoint] + ": " + msg
				}
				n := streak.Add(1)
				if n == 1 {
					streakErr.Store(&msg)
				}
				if n == failFast {
					stop(fmt.Sprintf("%d exchanges in a row failed", failFast))
				}
				lerrs++
				if lfirst == "" {
					lfirst = msg
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
	// Each second: report progress, and stop a run in which a whole
	// second's requests failed.
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		base := int64(len(urls)) // the first exchanges, all successful
		lastDone, lastFailed, lastAt := int64(0), int64(0), start
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tick.C:
				done, bad := completed.Load(), failed.Load()
				if done > lastDone && bad-lastFailed == done-lastDone {
					stop("every exchange failed for a second")
				}
				if c.Progress != nil {
					c.Progress(Progress{
						Elapsed:  now.Sub(start),
						Requests: base + done, Errors: bad,
						Rate: float64(done-lastDone) / now.Sub(lastAt).Seconds(),
					})
				}
				lastDone, lastFailed, lastAt = done, bad, now
			}
		}
	}()
	wg.Wait()
	cancel()
	<-watched
	r := Result{Requests: len(lat), Errors: errs, Elapsed: time.Since(start), FirstError: firstErr, Histogram: NewHistogram()}
	if len(urls) > 1 {
		r.Endpoints = perURL
	}
	if r.Requests == 0 {
		return r, errors.New("no request completed")
	}
	slices.Sort(lat)
	for _, d := range lat {
		r.Histogram.Add(d)
	}
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	r.P50, r.P90, r.P99, r.Max = pct(0.50), pct(0.90), pct(0.99), lat[len(lat)-1]
	r.PerSecond = float64(r.Requests-r.Errors) / r.Elapsed.Seconds()
	if ceiling > 0 {
		r.Ceiling, r.PercentOfCeiling = ceiling, 100*r.PerSecond/ceiling
	}
	if reason := stopReason.Load(); reason != nil {
		first := r.FirstError
		if e := streakErr.Load(); e != nil {
			first = *e
		}
		return r, fmt.Errorf("stopped early after %d exchanges: %s; the first of those failures: %s", r.Requests, *reason, first)
	}
	return r, nil
}

// failFast is how many failed exchanges in a row end a run early.
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
