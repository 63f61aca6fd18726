package main

import (
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
	c.okJSON(&r, "bench", "--url", issuer, "--requests", "50", "--concurrency", "4", "-o", "json")
	if r.Requests != 50 || r.Errors != 0 || r.PerSecond <= 0 || r.P99 < r.P50 {
		t.Fatalf("bench result %+v", r)
	}
	var list []clientView
	c.okJSON(&list, "client", "list", "-o", "json")
	if len(list) != 0 {
		t.Fatalf("temporary clients left behind: %+v", list)
	}
	c.fail("--client-secret", "bench", "--url", issuer, "--client-id", "x")
}
