// Command sts is the Key Bridge security token service: an OAuth 2.0
// authorization server for RFC 8693 token exchange. `sts serve` runs the
// server; the other commands manage its clients, keys and tokens directly in
// its database, whether or not a server is running.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "sts:", err)
		os.Exit(1)
	}
}
