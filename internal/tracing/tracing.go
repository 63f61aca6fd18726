// Package tracing is the server's OpenTelemetry tracing: a provider built
// from the standard OTEL_* environment variables (off unless they ask for
// an OTLP exporter), the W3C trace context read from incoming requests and
// written on outbound calls, and the trace id of a request for its log
// line and audit record.
//
// A nil *Tracer is tracing off: every method is then a no-op that
// allocates nothing, so the hot path pays one nil check.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Name is the instrumentation scope of the server's spans.
const Name = "github.com/keybridge/sts"

// Tracer starts the server's spans. nil is tracing off.
type Tracer struct {
	t    trace.Tracer
	prop propagation.TraceContext
}

// New returns a Tracer over tp; nil when tp is nil (tracing off).
func New(tp trace.TracerProvider) *Tracer {
	if tp == nil {
		return nil
	}
	return &Tracer{t: tp.Tracer(Name)}
}

// Enabled reports whether spans are recorded.
func (t *Tracer) Enabled() bool { return t != nil }

// Config is what the OTEL_* environment asks for.
type Config struct {
	// Enabled: an OTLP exporter is configured.
	Enabled bool
	// Protocol is the OTLP protocol ("http/protobuf").
	Protocol string
}

// getenv is os.Getenv, replaced in tests.
var getenv = os.Getenv

// FromEnv reads the standard variables: tracing is on when
// OTEL_TRACES_EXPORTER is "otlp", or when it is unset and
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is
// set; OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none turn it off.
// Only the http/protobuf protocol is built in: another one is an error,
// not a silent lack of traces.
func FromEnv() (Config, error) {
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		return Config{}, nil
	}
	exp := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")))
	switch exp {
	case "none":
		return Config{}, nil
	case "":
		if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
			return Config{}, nil
		}
	case "otlp":
	default:
		return Config{}, fmt.Errorf("OTEL_TRACES_EXPORTER=%q is not supported (use otlp or none)", exp)
	}
	proto := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		proto = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	if proto == "" {
		proto = "http/protobuf"
	}
	if proto != "http/protobuf" {
		return Config{}, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%q is not supported (use http/protobuf)", proto)
	}
	return Config{Enabled: true, Protocol: proto}, nil
}

// Setup builds the tracer provider the environment asks for (see
// FromEnv): an OTLP/HTTP exporter in a batch span processor, the sampler
// of OTEL_TRACES_SAMPLER (parent-based always-on by default), and the
// resource of OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (service name
// "sts" by default). It returns a nil provider when tracing is off; the
// shutdown function flushes the spans not yet exported, and is never nil.
func Setup(ctx context.Context, version string) (trace.TracerProvider, func(context.Context) error, error) {
	none := func(context.Context) error { return nil }
	c, err := FromEnv()
	if err != nil || !c.Enabled {
		return nil, none, err
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, none, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		attribute.String(string(semconv.ServiceVersionKey), version)))
	if err != nil && !errors.Is(err, resource.ErrSchemaURLConflict) {
		return nil, none, err
	}
	if getenv("OTEL_SERVICE_NAME") == "" && !strings.Contains(getenv("OTEL_RESOURCE_ATTRIBUTES"), "service.name=") {
		res, _ = resource.Merge(res, resource.NewSchemaless(semconv.ServiceName("sts")))
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return tp, tp.Shutdown, nil
}

// StartRequest continues the W3C trace context of r's traceparent header
// (if any) in a new server span named name, and returns r with the span in
// its context. Without tracing it returns r and a nil span.
func (t *Tracer) StartRequest(r *http.Request, name string) (*http.Request, trace.Span) {
	if t == nil {
		return r, nil
	}
	ctx := t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := t.t.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(
			attribute.String("http.request.method", r.Method),
			attribute.String("url.path", r.URL.Path),
		))
	return r.WithContext(ctx), span
}

// EndRequest ends a span of StartRequest with the response status.
func EndRequest(span trace.Span, status int) {
	if span == nil {
		return
	}
	span.SetAttributes(attribute.Int("http.response.status_code", status))
	if status >= 500 {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
	span.End()
}

// Start starts a child span of ctx's span; without tracing it returns ctx
// and a nil span, allocating nothing.
func (t *Tracer) Start(ctx context.Context, name string) (context.Context, trace.Span) {
	if t == nil {
		return ctx, nil
	}
	return t.t.Start(ctx, name)
}

// End ends a span of Start, recording err (a refusal or a failure) on it;
// a nil span is ignored.
func End(span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// TraceID is the W3C trace id of ctx's span in hex, or "" when ctx is not
// traced.
func TraceID(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return ""
	}
	return sc.TraceID().String()
}

// Transport wraps rt (http.DefaultTransport when nil) so that each
// outbound request is a client span of the caller's trace and carries its
// traceparent header. Without tracing it returns rt itself.
func (t *Tracer) Transport(rt http.RoundTripper) http.RoundTripper {
	if t == nil {
		return rt
	}
	if rt == nil {
		rt = http.DefaultTransport
	}
	return &transport{t: t, next: rt}
}

type transport struct {
	t    *Tracer
	next http.RoundTripper
}

func (tr *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	ctx := r.Context()
	if !trace.SpanContextFromContext(ctx).IsValid() {
		// Not part of a request's trace (background refresh): nothing
		// to propagate.
		return tr.next.RoundTrip(r)
	}
	ctx, span := tr.t.t.Start(ctx, "HTTP "+r.Method, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("http.request.method", r.Method),
			attribute.String("server.address", r.URL.Host),
			attribute.String("url.path", r.URL.Path),
		))
	defer span.End()
	// RoundTrippers must not change the caller's request.
	r = r.Clone(ctx)
	tr.t.prop.Inject(ctx, propagation.HeaderCarrier(r.Header))
	resp, err := tr.next.RoundTrip(r)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		return nil, err
	}
	span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
	if resp.StatusCode >= 400 {
		span.SetStatus(codes.Error, resp.Status)
	}
	return resp, nil
}
