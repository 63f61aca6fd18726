package server_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/keybridge/sts/internal/clientauth"
	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/oauth"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// tracedSTS starts a server whose spans go to an in-memory exporter.
func tracedSTS(t *testing.T, o ststest.Options) (*ststest.STS, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { tp.Shutdown(t.Context()) })
	o.TracerProvider = tp
	return ststest.Start(t, o), exp
}

// spansOf returns the spans of trace id, by name.
func spansOf(exp *tracetest.InMemoryExporter, id trace.TraceID) map[string][]tracetest.SpanStub {
	out := map[string][]tracetest.SpanStub{}
	for _, s := range exp.GetSpans() {
		if s.SpanContext.TraceID() == id {
			out[s.Name] = append(out[s.Name], s)
		}
	}
	return out
}

// rootSpan is the one server span named name.
func rootSpan(t *testing.T, exp *tracetest.InMemoryExporter, name string) tracetest.SpanStub {
	t.Helper()
	var found []tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		if s.Name == name && s.SpanKind == trace.SpanKindServer {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d server spans named %q, want 1 (all: %v)", len(found), name, names(exp.GetSpans()))
	}
	return found[0]
}

func names(spans tracetest.SpanStubs) []string {
	var n []string
	for _, s := range spans {
		n = append(n, s.Name)
	}
	return n
}

// One exchange is one server span with a child span per pipeline step,
// and its trace id is in the exchange's audit record.
func TestTraceExchangeSteps(t *testing.T) {
	s, exp := tracedSTS(t, ststest.Options{})
	c := s.CreateClient(func(c *store.Client) { c.Audiences = []string{backend} })
	subject := s.ClientCredentials(c, nil)
	exp.Reset()

	r := s.Exchange(c, subject, oauth.TokenTypeAccessToken, url.Values{"audience": {backend}})
	if r.Status != http.StatusOK {
		t.Fatalf("exchange: %d %s", r.Status, r.Body)
	}
	root := rootSpan(t, exp, "token")
	spans := spansOf(exp, root.SpanContext.TraceID())
	for _, step := range []string{"authenticate", "validate_subject", "policy", "sign", "audit"} {
		got := spans[step]
		if len(got) != 1 {
			t.Fatalf("%d spans %q in the exchange's trace, want 1 (all: %v)", len(got), step, names(exp.GetSpans()))
		}
		if got[0].Parent.SpanID() != root.SpanContext.SpanID() {
			t.Errorf("span %q is not a child of the request's span", step)
		}
		if got[0].StartTime.Before(root.StartTime) || got[0].EndTime.After(root.EndTime) {
			t.Errorf("span %q is outside the request's span", step)
		}
	}
	if root.Parent.IsValid() {
		t.Errorf("a request without traceparent has a parent span %v", root.Parent)
	}

	// The audit record of the exchange holds the trace id.
	want := root.SpanContext.TraceID().String()
	var rec *store.AuditRecord
	for _, a := range s.Audit() {
		if a.Action == "token.exchange" && a.ClientID == c.ID {
			rec = &a
			break
		}
	}
	if rec == nil || rec.TraceID != want {
		t.Fatalf("audit record of the exchange: %+v, want trace id %s", rec, want)
	}
}

// A request's W3C traceparent is continued: the server span is in the
// caller's trace, a child of the caller's span; a refusal is traced and
// audited with it too.
func TestTraceparentContinued(t *testing.T) {
	s, exp := tracedSTS(t, ststest.Options{})
	c := s.CreateClient(nil)
	const (
		traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
		spanID  = "00f067aa0ba902b7"
	)
	send := func(path string, form url.Values, secret string) *ststest.Response {
		req, err := http.NewRequest(http.MethodPost, s.URL+path, strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", ststest.BasicAuth(c.ID, secret))
		req.Header.Set("traceparent", "00-"+traceID+"-"+spanID+"-01")
		return s.Do(req)
	}
	r := send(server.TokenPath, url.Values{"grant_type": {oauth.GrantTypeClientCredentials}}, "wrong")
	if r.Status != http.StatusUnauthorized {
		t.Fatalf("wrong secret: %d %s", r.Status, r.Body)
	}
	root := rootSpan(t, exp, "token")
	if got := root.SpanContext.TraceID().String(); got != traceID {
		t.Fatalf("trace id %s, want the caller's %s", got, traceID)
	}
	if got := root.Parent.SpanID().String(); got != spanID || !root.Parent.IsRemote() {
		t.Fatalf("parent span %s (remote %v), want the caller's %s", got, root.Parent.IsRemote(), spanID)
	}
	// Refused at authentication: the step span is there, marked.
	if a := spansOf(exp, root.SpanContext.TraceID())["authenticate"]; len(a) != 1 || a[0].Status.Code.String() != "Error" {
		t.Fatalf("authenticate span of a refusal: %+v", a)
	}

	// Revocation and introspection records carry it as well.
	tok := s.ClientCredentials(c, nil)
	if r := send(server.RevokePath, url.Values{"token": {tok}}, c.Secret); r.Status != http.StatusOK {
		t.Fatalf("revoke: %d %s", r.Status, r.Body)
	}
	if r := send(server.IntrospectPath, url.Values{"token": {tok}}, "wrong"); r.Status != http.StatusUnauthorized {
		t.Fatalf("introspect with a wrong secret: %d %s", r.Status, r.Body)
	}
	seen := map[string]bool{}
	for _, a := range s.Audit() {
		if a.TraceID == traceID {
			seen[a.Action+"/"+string(a.Decision)] = true
		}
	}
	for _, want := range []string{"token.client_credentials/refused", "token.revoke/granted", "token.introspect/refused"} {
		if !seen[want] {
			t.Errorf("no audit record %s with the caller's trace id (have %v)", want, seen)
		}
	}
}

// The fetch of a trusted issuer's keys made for an exchange carries the
// exchange's trace (traceparent), as a client span of it.
func TestTraceOutboundJWKSFetch(t *testing.T) {
	s, exp := tracedSTS(t, fedOptions)
	p := ststest.StartIdP(t)
	var (
		mu      sync.Mutex
		parents = map[string]string{} // path → traceparent
	)
	// The IdP's answers, recording the traceparent of each request.
	p.Serve(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		parents[r.URL.Path] = r.Header.Get("traceparent")
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			json.NewEncoder(w).Encode(map[string]any{"issuer": p.URL, "jwks_uri": p.URL + "/keys"})
		case "/keys":
			json.NewEncoder(w).Encode(p.JWKS())
		default:
			http.NotFound(w, r)
		}
	})
	c := fedClient(s)
	s.Trust(p, "k8s", s.URL, []string{c.ID}, nil)
	exp.Reset()
	r := s.Exchange(c, p.Sign(p.Kubernetes("prod", "deployer", s.URL)), oauth.TokenTypeJWT, url.Values{"audience": {backend}})
	if r.Status != http.StatusOK {
		t.Fatalf("exchange of the upstream token: %d %s", r.Status, r.Body)
	}
	root := rootSpan(t, exp, "token")
	id := root.SpanContext.TraceID().String()
	mu.Lock()
	defer mu.Unlock()
	if len(parents) == 0 {
		t.Fatal("the IdP saw no request")
	}
	for path, tp := range parents {
		parts := strings.Split(tp, "-")
		if len(parts) != 4 || parts[1] != id {
			t.Errorf("fetch of %s: traceparent %q, want one of trace %s", path, tp, id)
		}
	}
	// The fetches are client spans of the exchange's trace, under the
	// subject's validation.
	spans := spansOf(exp, root.SpanContext.TraceID())
	validate := spans["validate_subject"]
	if len(validate) != 1 {
		t.Fatalf("validate_subject spans: %d", len(validate))
	}
	fetches := spans["HTTP GET"]
	if len(fetches) == 0 {
		t.Fatalf("no client span of the fetches (spans: %v)", names(exp.GetSpans()))
	}
	for _, f := range fetches {
		if f.SpanKind != trace.SpanKindClient || f.Parent.SpanID() != validate[0].SpanContext.SpanID() {
			t.Errorf("fetch span kind %v parent %v, want a client span under validate_subject", f.SpanKind, f.Parent.SpanID())
		}
	}
}

// The fetch of a client's jwks_uri (private_key_jwt) carries the request's
// trace, as a client span under the authenticate step, and the client key
// cache counts it.
func TestTraceClientJWKSURIFetch(t *testing.T) {
	idp := ststest.StartIdP(t) // serves the client's keys at /keys
	var (
		mu     sync.Mutex
		parent string
	)
	idp.Serve(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		parent = r.Header.Get("traceparent")
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(idp.JWKS())
	})
	s, exp := tracedSTS(t, ststest.Options{ClientAssertions: clientauth.AssertionOptions{AllowLoopbackJWKS: true}})
	c := pkClient(s, store.Binding{JWKSURI: idp.URL + "/keys"})
	a := idp.Sign(pkClaims(c.ID, s.URL+server.TokenPath, "trace-1"))
	if r := pkPost(s, server.TokenPath, pkForm(a), ""); r.Status != http.StatusOK {
		t.Fatalf("assertion: %d %s", r.Status, r.Body)
	}
	root := rootSpan(t, exp, "token")
	mu.Lock()
	got := parent
	mu.Unlock()
	if parts := strings.Split(got, "-"); len(parts) != 4 || parts[1] != root.SpanContext.TraceID().String() {
		t.Fatalf("jwks_uri fetch: traceparent %q, want one of trace %s", got, root.SpanContext.TraceID())
	}
	spans := spansOf(exp, root.SpanContext.TraceID())
	auth, fetch := spans["authenticate"], spans["HTTP GET"]
	if len(auth) != 1 || len(fetch) != 1 || fetch[0].Parent.SpanID() != auth[0].SpanContext.SpanID() {
		t.Fatalf("want one HTTP GET span under authenticate; spans: %v", names(exp.GetSpans()))
	}
	mfs, err := s.Server.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if miss := counterValue(mfs, "sts_cache_requests_total", map[string]string{"cache": "client_jwks", "result": "miss"}); miss != 1 {
		t.Fatalf("client_jwks misses = %v, want the one fetch", miss)
	}
}
