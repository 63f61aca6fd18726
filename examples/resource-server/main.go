// Command resource-server plays https://backend.example.com/api from the
// seed: a resource server that accepts the tokens Key Bridge STS issues
// for it.
//
//	go run ./examples/resource-server --issuer http://127.0.0.1:8080
//
// It discovers the STS's jwks_uri from its RFC 8414 metadata and verifies
// JWT access tokens offline. With --client-id (and the secret in
// --client-secret or $CLIENT_SECRET) it also introspects opaque tokens.
// GET /api answers 200 with the caller's identity, or 401/403 with an
// RFC 6750 WWW-Authenticate challenge.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/keybridge/sts/examples/resource-server/backend"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "listen address")
	issuer := flag.String("issuer", "http://127.0.0.1:8080", "the STS's issuer URL (metadata at /.well-known/oauth-authorization-server)")
	audience := flag.String("audience", backend.DefaultAudience, "this resource server's audience: tokens must name it in aud")
	scope := flag.String("scope", "api", "scope every token must carry (empty: none)")
	clientID := flag.String("client-id", "", "client id for introspecting opaque tokens (optional)")
	clientSecret := flag.String("client-secret", "", "its secret (default $CLIENT_SECRET)")
	verbose := flag.Bool("v", false, "log why tokens are refused")
	flag.Parse()
	if *clientSecret == "" {
		*clientSecret = os.Getenv("CLIENT_SECRET")
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	h, err := backend.New(ctx, backend.Options{
		Issuer: *issuer, Audience: *audience, Scope: *scope,
		ClientID: *clientID, ClientSecret: *clientSecret,
		HTTPClient: &http.Client{Timeout: 10 * time.Second}, Logger: log,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "resource-server:", err)
		os.Exit(1)
	}
	srv := &http.Server{Addr: *addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	log.Info("resource server listening", "url", "http://"+*addr+"/api", "audience", *audience, "issuer", *issuer)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "resource-server:", err)
		os.Exit(1)
	}
}
