// Command exchange plays rs08 from the seed: a service that receives a
// caller's token, exchanges it at Key Bridge STS for a token aimed at the
// backend (RFC 8693 token exchange), and calls the backend with it.
//
//	CLIENT_SECRET=... go run ./examples/exchange --issuer http://127.0.0.1:8080 \
//	    --client-id rs08 --backend-url http://127.0.0.1:8081/api
//
// GET / with "Authorization: Bearer <token for https://rs08.example.com>"
// answers with the backend's answer.
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

	"github.com/keybridge/sts/examples/exchange/gateway"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8082", "listen address")
	issuer := flag.String("issuer", "http://127.0.0.1:8080", "the STS's issuer URL")
	audience := flag.String("audience", gateway.DefaultAudience, "this service's audience: callers' tokens must name it")
	clientID := flag.String("client-id", "rs08", "this service's client id at the STS")
	clientSecret := flag.String("client-secret", "", "its secret (default $CLIENT_SECRET)")
	backendURL := flag.String("backend-url", "http://127.0.0.1:8081/api", "the backend to call")
	backendAudience := flag.String("backend-audience", gateway.DefaultBackendAudience, "resource requested in the exchange")
	scope := flag.String("scope", "", "scope requested in the exchange (default: the server's choice)")
	flag.Parse()
	if *clientSecret == "" {
		*clientSecret = os.Getenv("CLIENT_SECRET")
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	h, err := gateway.New(ctx, gateway.Options{
		Issuer: *issuer, Audience: *audience, ClientID: *clientID, ClientSecret: *clientSecret,
		BackendURL: *backendURL, BackendAudience: *backendAudience, Scope: *scope,
		HTTPClient: &http.Client{Timeout: 10 * time.Second}, Logger: log,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "exchange:", err)
		os.Exit(1)
	}
	srv := &http.Server{Addr: *addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	log.Info("exchange service listening", "url", "http://"+*addr+"/", "audience", *audience, "backend", *backendURL)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "exchange:", err)
		os.Exit(1)
	}
}
