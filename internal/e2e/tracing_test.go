package e2e_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// A real `sts serve` with OTEL_EXPORTER_OTLP_ENDPOINT exports the spans of
// an exchange over OTLP/HTTP: the request span and each pipeline step
// reach the collector.
func TestTracesExportedOverOTLP(t *testing.T) {
	var (
		mu     sync.Mutex
		bodies [][]byte
	)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/v1/traces" && r.Header.Get("Content-Type") == "application/x-protobuf" {
			mu.Lock()
			bodies = append(bodies, b)
			mu.Unlock()
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	t.Cleanup(collector.Close)
	// The processes inherit the environment (t.Setenv: not parallel).
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
	t.Setenv("OTEL_SERVICE_NAME", "sts-e2e")
	c := newCluster(t, clusterOptions{SQLite: true}, "A")
	n := c.Nodes[0]
	ctx := t.Context()
	rs08 := c.CreateClient("--name", "rs08", "--resource", rs08Aud, "--audience", backendAud, "--scope", "api")
	frontend := c.CreateClient("--name", "frontend", "--audience", rs08Aud, "--scope", "api")
	accessToken(t, n.Exchange(ctx, rs08, accessToken(t, n.ClientCredentials(ctx, frontend)), backendAud))

	want := []string{"sts-e2e", "token", "authenticate", "validate_subject", "policy", "sign", "audit"}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		all := bytes.Join(bodies, nil)
		mu.Unlock()
		var missing []string
		for _, w := range want {
			// Protocol buffers keep strings as they are.
			if !bytes.Contains(all, []byte(w)) {
				missing = append(missing, w)
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the collector received %d exports without %v", len(bodies), missing)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
