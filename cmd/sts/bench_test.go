package main

import (
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
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
