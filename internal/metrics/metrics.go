// Package metrics is the server's Prometheus instrumentation: one registry
// per server (never the global one, so that many servers in one process do
// not collide), served on the admin listener with net/http/pprof.
//
// Every label value is one of a fixed set decided here, never a caller's
// input: endpoints, grant types (an unknown one is "other"), outcomes,
// OAuth error codes (an unknown one is "other") and pipeline steps. The
// request path resolves its counters and histograms once (see requestKey),
// so that counting a request allocates nothing.
//
// A nil *Metrics is valid and measures nothing.
package metrics

import (
	"context"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"

	"github.com/keybridge/sts/dpop"
	"github.com/keybridge/sts/internal/tracing"
	"github.com/keybridge/sts/oauth"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"
)

// Namespace prefixes every metric of the server.
const Namespace = "sts"

// Endpoint is the bounded label of a request's endpoint.
type Endpoint uint8

// The endpoints; EndpointOther is every path the server does not serve.
const (
	EndpointToken Endpoint = iota
	EndpointIntrospect
	EndpointRevoke
	EndpointRegister
	EndpointPortal
	EndpointDiscovery
	EndpointJWKS
	EndpointHealth
	EndpointOther
	numEndpoints
)

var endpointNames = [numEndpoints]string{"token", "introspect", "revoke", "register", "portal", "discovery", "jwks", "health", "other"}

func (e Endpoint) String() string { return endpointNames[e] }

// Grant is the bounded label of a token request's grant type.
type Grant uint8

// The grant types; GrantNone is a request that named none (and every
// request to another endpoint), GrantOther one this server does not know.
const (
	GrantNone Grant = iota
	GrantTokenExchange
	GrantClientCredentials
	GrantRefreshToken
	GrantJWTBearer
	GrantOther
	numGrants
)

var grantNames = [numGrants]string{"none", "token_exchange", "client_credentials", "refresh_token", "jwt_bearer", "other"}

func (g Grant) String() string { return grantNames[g] }

// GrantOf maps a grant_type parameter to its label.
func GrantOf(gt string) Grant {
	switch gt {
	case "":
		return GrantNone
	case oauth.GrantTypeTokenExchange:
		return GrantTokenExchange
	case oauth.GrantTypeClientCredentials:
		return GrantClientCredentials
	case oauth.GrantTypeRefreshToken:
		return GrantRefreshToken
	case oauth.GrantTypeJWTBearer:
		return GrantJWTBearer
	}
	return GrantOther
}

// Outcomes of a request: ok (2xx, 3xx: for the token endpoint, a token
// issued), refused (4xx), error (5xx).
const (
	outcomeOK = iota
	outcomeRefused
	outcomeError
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"ok", "refused", "error"}

// errorCodes are the OAuth error codes used as label values; "none" is an
// answer without one, "other" any code not listed.
var errorCodes = []oauth.ErrorCode{
	"none",
	oauth.ErrInvalidRequest, oauth.ErrInvalidClient, oauth.ErrInvalidGrant, oauth.ErrUnauthorizedClient,
	oauth.ErrUnsupportedGrantType, oauth.ErrInvalidScope, oauth.ErrInvalidTarget, oauth.ErrUnsupportedTokenType,
	oauth.ErrInvalidToken, oauth.ErrInsufficientScope, oauth.ErrServerError, oauth.ErrTemporarilyUnavail,
	oauth.ErrAccessDenied, oauth.ErrInvalidClientMetadata, oauth.ErrInvalidSoftwareStatement,
	oauth.ErrUnapprovedSoftwareStatement, dpop.CodeInvalidProof, dpop.CodeUseNonce,
	"other",
}

var errorIndex = func() map[oauth.ErrorCode]int {
	m := make(map[oauth.ErrorCode]int, len(errorCodes))
	for i, c := range errorCodes {
		m[c] = i
	}
	return m
}()

func errorOf(code oauth.ErrorCode) int {
	if code == "" {
		return 0
	}
	if i, ok := errorIndex[code]; ok {
		return i
	}
	return len(errorCodes) - 1
}

// Step is a step of the token endpoint's pipeline.
type Step uint8

// The steps, in order.
const (
	StepAuthenticate Step = iota
	StepValidateSubject
	StepPolicy
	StepSign
	StepAudit
	numSteps
)

var stepNames = [numSteps]string{"authenticate", "validate_subject", "policy", "sign", "audit"}

func (s Step) String() string { return stepNames[s] }

// LatencyBuckets are the buckets of the request and step histograms, in
// seconds: the token endpoint answers in well under a millisecond on a
// warm cache, a store round trip or an upstream fetch in milliseconds.
var LatencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

// Metrics holds a server's registry and its instruments.
type Metrics struct {
	// Registry holds every metric of the server, the Go runtime and
	// process collectors included.
	Registry *prometheus.Registry
	// Tracer starts the spans of the pipeline steps; nil: not traced.
	Tracer *tracing.Tracer

	requests    *prometheus.CounterVec
	reqChildren []atomic.Pointer[counter] // by requestKey
	duration    [numEndpoints]prometheus.Observer
	steps       [numSteps]prometheus.Observer
	rateLimited [numEndpoints]prometheus.Counter
	auditBatch  prometheus.Observer
	storeCalls  *prometheus.HistogramVec
	storeOps    map[string]prometheus.Observer

	tokenWindow window
}

type counter struct{ prometheus.Counter }

// New returns the instruments of one server, in a registry of its own with
// the Go runtime and process collectors.
func New(tracer *tracing.Tracer) *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{Registry: reg, Tracer: tracer}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "requests_total",
		Help: "Requests answered, by endpoint, grant type (token endpoint), outcome (ok, refused, error) and OAuth error code.",
	}, []string{"endpoint", "grant", "outcome", "error"})
	m.reqChildren = make([]atomic.Pointer[counter], int(numEndpoints)*int(numGrants)*numOutcomes*len(errorCodes))
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "request_duration_seconds",
		Help:    "Time to answer a request, by endpoint.",
		Buckets: LatencyBuckets,
	}, []string{"endpoint"})
	steps := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "token_step_duration_seconds",
		Help:    "Time spent in each step of the token endpoint's pipeline (authenticate, validate_subject, policy, sign, audit).",
		Buckets: LatencyBuckets,
	}, []string{"step"})
	limited := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "rate_limited_total",
		Help: "Requests refused by a rate limit (429 Too Many Requests), by endpoint.",
	}, []string{"endpoint"})
	batch := prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: Namespace, Subsystem: "audit", Name: "batch_size",
		Help:    "Audit records written per batch (group commit).",
		Buckets: prometheus.ExponentialBuckets(1, 2, 10),
	})
	m.storeCalls = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Subsystem: "store", Name: "call_duration_seconds",
		Help:    "Time of database calls, by operation (exec, query, query_row, exec_batch, tx).",
		Buckets: LatencyBuckets,
	}, []string{"op"})
	reg.MustRegister(m.requests, dur, steps, limited, batch, m.storeCalls)
	for e := range numEndpoints {
		m.duration[e] = dur.WithLabelValues(e.String())
		m.rateLimited[e] = limited.WithLabelValues(e.String())
	}
	for s := range numSteps {
		m.steps[s] = steps.WithLabelValues(s.String())
	}
	m.auditBatch = batch
	m.storeOps = map[string]prometheus.Observer{}
	for _, op := range StoreOps {
		m.storeOps[op] = m.storeCalls.WithLabelValues(op)
	}
	return m
}

// StoreOps are the operations of sts_store_call_duration_seconds.
var StoreOps = []string{"exec", "query", "query_row", "exec_batch", "tx"}

// requestKey is the index of a label combination in reqChildren.
func requestKey(e Endpoint, g Grant, outcome, errIdx int) int {
	return ((int(e)*int(numGrants)+int(g))*numOutcomes+outcome)*len(errorCodes) + errIdx
}

// Request counts one answered request, which started at start and took
// d. status is the HTTP status, code the OAuth error code of the answer
// ("" for none).
func (m *Metrics) Request(e Endpoint, g Grant, status int, code oauth.ErrorCode, start time.Time, d time.Duration) {
	if m == nil {
		return
	}
	if e >= numEndpoints {
		e = EndpointOther
	}
	if g >= numGrants {
		g = GrantOther
	}
	outcome := outcomeOK
	switch {
	case status >= 500:
		outcome = outcomeError
	case status >= 400:
		outcome = outcomeRefused
	}
	ei := errorOf(code)
	k := requestKey(e, g, outcome, ei)
	c := m.reqChildren[k].Load()
	if c == nil {
		c = &counter{m.requests.WithLabelValues(e.String(), g.String(), outcomeNames[outcome], string(errorCodes[ei]))}
		m.reqChildren[k].Store(c)
	}
	c.Inc()
	m.duration[e].Observe(d.Seconds())
	if status == http.StatusTooManyRequests {
		m.rateLimited[e].Inc()
	}
	if e == EndpointToken {
		m.tokenWindow.observe(start, d)
	}
}

// TokenLatency is the token endpoint's median and 99th percentile latency
// over the last few minutes (window), and how many requests they are of;
// zero when there were none. The percentiles are the upper bounds of
// buckets about 10% wide.
func (m *Metrics) TokenLatency() (p50, p99 time.Duration, n uint64) {
	if m == nil {
		return 0, 0, 0
	}
	return m.tokenWindow.quantiles(time.Now())
}

// StepTimer times one step of the token endpoint's pipeline, and is its
// span when traced.
type StepTimer struct {
	m     *Metrics
	obs   prometheus.Observer
	start time.Time
	span  trace.Span
}

// StartStep starts timing step s (and its span, a child of ctx's).
func (m *Metrics) StartStep(ctx context.Context, s Step) (context.Context, StepTimer) {
	if m == nil {
		return ctx, StepTimer{}
	}
	return m.startAt(ctx, s, time.Now())
}

func (m *Metrics) startAt(ctx context.Context, s Step, now time.Time) (context.Context, StepTimer) {
	var span trace.Span
	if m.Tracer != nil {
		ctx, span = m.Tracer.Start(ctx, s.String())
	}
	return ctx, StepTimer{m: m, obs: m.steps[s], start: now, span: span}
}

// End records the step's time; err, a refusal or failure, marks its span.
func (t StepTimer) End(err error) {
	if t.obs == nil {
		return
	}
	t.end(time.Now(), err)
}

func (t StepTimer) end(now time.Time, err error) {
	t.obs.Observe(now.Sub(t.start).Seconds())
	tracing.End(t.span, err)
}

// Next ends the step, successful, and starts step s at the same instant
// (one clock read for both), its span a child of ctx's.
func (t StepTimer) Next(ctx context.Context, s Step) (context.Context, StepTimer) {
	if t.obs == nil {
		return ctx, StepTimer{}
	}
	now := time.Now()
	t.end(now, nil)
	return t.m.startAt(ctx, s, now)
}

// AuditBatch records the size of one audit batch.
func (m *Metrics) AuditBatch(n int) {
	if m == nil {
		return
	}
	m.auditBatch.Observe(float64(n))
}

// StoreCall records one database call of operation op (one of StoreOps).
func (m *Metrics) StoreCall(op string, d time.Duration) {
	if m == nil {
		return
	}
	o, ok := m.storeOps[op]
	if !ok {
		return
	}
	o.Observe(d.Seconds())
}

// Handler serves the registry at /metrics and net/http/pprof at
// /debug/pprof/: the admin listener's handler, never the public one's.
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("Key Bridge STS admin listener: /metrics, /debug/pprof/\n"))
	})
	return mux
}

// GrantNoter is a ResponseWriter that wants to know the grant type of the
// token request answered through it (the server's middleware).
type GrantNoter interface {
	NoteGrant(g Grant)
}

// NoteGrant tells w, if it is a GrantNoter, the grant type gt (a caller's
// parameter, mapped to its bounded label).
func NoteGrant(w http.ResponseWriter, gt string) {
	if n, ok := w.(GrantNoter); ok {
		n.NoteGrant(GrantOf(gt))
	}
}
