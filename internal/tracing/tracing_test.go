package tracing

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func withEnv(t *testing.T, env map[string]string) {
	t.Helper()
	old := getenv
	getenv = func(k string) string { return env[k] }
	t.Cleanup(func() { getenv = old })
}

// Tracing is on only when the OTEL_* variables ask for an OTLP exporter,
// and an unsupported choice is an error, not silently no traces.
func TestFromEnv(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		on   bool
		fail string
	}{
		{env: nil},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, on: true},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, on: true},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, on: true},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}},
		{env: map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, fail: "OTEL_TRACES_EXPORTER"},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, fail: "http/protobuf"},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, on: true},
	} {
		withEnv(t, tc.env)
		c, err := FromEnv()
		switch {
		case tc.fail != "":
			if err == nil || !strings.Contains(err.Error(), tc.fail) {
				t.Errorf("%v: error %v, want one naming %s", tc.env, err, tc.fail)
			}
		case err != nil:
			t.Errorf("%v: %v", tc.env, err)
		case c.Enabled != tc.on:
			t.Errorf("%v: enabled %v, want %v", tc.env, c.Enabled, tc.on)
		}
	}
}

// Off, nothing is traced and nothing allocated; an outbound call goes
// through the caller's transport untouched.
func TestOffIsFree(t *testing.T) {
	var tr *Tracer
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	ctx := context.Background()
	if a := testing.AllocsPerRun(100, func() {
		r2, span := tr.StartRequest(r, "token")
		c2, s2 := tr.Start(ctx, "sign")
		End(s2, nil)
		EndRequest(span, 200)
		if r2 != r || c2 != ctx || TraceID(c2) != "" {
			t.Fatal("tracing off changed the request")
		}
	}); a != 0 {
		t.Fatalf("%v allocations with tracing off", a)
	}
	rt := http.DefaultTransport
	if tr.Transport(rt) != rt {
		t.Fatal("tracing off wrapped the transport")
	}
	withEnv(t, nil)
	if tp, stop, err := Setup(ctx, "test"); tp != nil || err != nil || stop(ctx) != nil {
		t.Fatalf("Setup without variables: %v %v", tp, err)
	}
}
