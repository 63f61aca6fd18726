//go:build pprof

// Profiling build: go build -tags pprof ./cmd/sts, then set STS_PPROF_ADDR
// (e.g. 127.0.0.1:6060) to serve net/http/pprof there. Used to profile the
// real server under load (BENCHMARKS.md); never part of a release build.
package main

import (
	"log/slog"
	"net/http"
	_ "net/http/pprof"
	"os"
)

func init() {
	addr := os.Getenv("STS_PPROF_ADDR")
	if addr == "" {
		return
	}
	go func() {
		slog.Warn("pprof listening", "addr", addr, "err", http.ListenAndServe(addr, nil))
	}()
}
