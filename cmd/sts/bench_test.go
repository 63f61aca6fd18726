package main

import (
	"encoding/xml"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keybridge/sts/internal/bench"
	"github.com/keybridge/sts/internal/server"
)

// `sts bench` with no client flags registers temporary clients in the data
// directory, runs against the server on the same data, and removes them.
func TestBenchTemporaryClients(t *testing.T) {
	c := newCLI(t, testKEK)
	endpoint := startServer(t, c)
	issuer := strings.TrimSuffix(endpoint, server.TokenPath)
	var r bench.Result
	c.okJSON(&r, "bench", "--server", issuer, "--requests", "50", "--concurrency", "4", "-o", "json")
	if r.Requests != 50 || r.Errors != 0 || r.PerSecond <= 0 || r.P99 < r.P50 {
		t.Fatalf("bench result %+v", r)
	}
	if len(r.Endpoints) != 0 {
		t.Fatalf("one URL, yet a breakdown by URL: %+v", r.Endpoints)
	}
	if r.Histogram.Total() != 50 || r.Ceiling != 0 {
		t.Fatalf("JSON histogram of %d latencies, ceiling %v; want 50 and none", r.Histogram.Total(), r.Ceiling)
	}
	var list []clientView
	c.okJSON(&list, "client", "list", "-o", "json")
	if len(list) != 0 {
		t.Fatalf("temporary clients left behind: %+v", list)
	}
	c.fail("--client-secret", "bench", "--server", issuer, "--client-id", "x")
}

// A repeated --server spreads the connections over several instances; here the
// server and a proxy in front of it stand for two instances on one database.
func TestBenchSeveralURLs(t *testing.T) {
	c := newCLI(t, testKEK)
	issuer := strings.TrimSuffix(startServer(t, c), server.TokenPath)
	u, err := url.Parse(issuer)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httptest.NewServer(httputil.NewSingleHostReverseProxy(u))
	t.Cleanup(proxy.Close)
	var r bench.Result
	c.okJSON(&r, "bench", "--server", issuer, "--server", proxy.URL+"/", "--requests", "60", "--concurrency", "4", "-o", "json")
	if r.Requests != 60 || r.Errors != 0 || len(r.Endpoints) != 2 {
		t.Fatalf("bench result %+v", r)
	}
	want := []string{issuer + server.TokenPath, proxy.URL + server.TokenPath}
	for i, e := range r.Endpoints {
		if e.URL != want[i] || e.Requests == 0 || e.Errors != 0 {
			t.Errorf("endpoint %d: %+v, want %s with requests and no errors", i, e, want[i])
		}
	}
}

// --ceiling, --histogram and --plot: the ratio to the ES256 ceiling in the
// shared script's words, the text histogram, and an SVG chart.
func TestBenchCeilingAndHistogram(t *testing.T) {
	c := newCLI(t, testKEK)
	issuer := strings.TrimSuffix(startServer(t, c), server.TokenPath)
	svg := filepath.Join(t.TempDir(), "latency.svg")
	out, stderr, err := c.run("bench", "--server", issuer, "--requests", "50", "--concurrency", "2",
		"--ceiling", "--ceiling-duration", "200ms", "--histogram", "--plot", svg)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	for _, want := range []string{"50 exchanges in ", "\nexchange: ", "% of the ES256 ceiling ", "\nlatency ", " #"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in the report:\n%s", want, out)
		}
	}
	if !strings.Contains(stderr, "measuring the ES256 ceiling on ") {
		t.Errorf("stderr does not announce the ceiling: %q", stderr)
	}
	b, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		XMLName xml.Name
		Rects   []struct {
			Class string `xml:"class,attr"`
		} `xml:"rect"`
	}
	if err := xml.Unmarshal(b, &doc); err != nil || doc.XMLName.Local != "svg" {
		t.Fatalf("the plot is not SVG (%v):\n%s", err, b)
	}
	bars := 0
	for _, r := range doc.Rects {
		if r.Class == "bar" {
			bars++
		}
	}
	if bars == 0 {
		t.Errorf("the plot has no bars:\n%s", b)
	}
}

// Progress goes to stderr each second when asked for (or on a terminal),
// and not otherwise: the test's stderr is no terminal.
func TestBenchProgress(t *testing.T) {
	c := newCLI(t, testKEK)
	issuer := strings.TrimSuffix(startServer(t, c), server.TokenPath)
	_, stderr, err := c.run("bench", "--server", issuer, "--concurrency", "2", "--duration", "1500ms", "--progress")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, " requests  0 errors\n") || strings.Contains(stderr, "\r") {
		t.Errorf("--progress off a terminal: want a line a second, got %q", stderr)
	}
	_, stderr, err = c.run("bench", "--server", issuer, "--concurrency", "2", "--duration", "1500ms")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if strings.Contains(stderr, "requests") {
		t.Errorf("progress written to a pipe without --progress: %q", stderr)
	}
}

// A run whose exchanges fail ends at once with the server's OAuth error.
func TestBenchFailsFast(t *testing.T) {
	c := newCLI(t, testKEK)
	issuer := strings.TrimSuffix(startServer(t, c), server.TokenPath)
	c.fail("invalid_client: ", "bench", "--server", issuer, "--client-id", "nobody", "--client-secret", "wrong", "--subject-token", "x", "--duration", "1m")
}
