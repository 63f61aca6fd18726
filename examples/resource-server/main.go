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
// RFC 6750 WWW-Authenticate challenge (RFC 9449 §7.1 DPoP challenges for
// DPoP-bound tokens). Certificate-bound tokens need --tls-cert/--tls-key
// (the caller's certificate is asked for in the handshake) or, behind a
// TLS-terminating proxy, --client-cert-header and --trusted-proxies.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
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
	tlsCert := flag.String("tls-cert", "", "serve HTTPS with this certificate (PEM), asking callers for a client certificate (for certificate-bound tokens)")
	tlsKey := flag.String("tls-key", "", "the key of --tls-cert (PEM)")
	certHeader := flag.String("client-cert-header", "", "header in which a TLS-terminating proxy forwards the client certificate (URL-encoded PEM)")
	proxies := flag.String("trusted-proxies", "", "comma-separated addresses or CIDR prefixes of the proxies believed for --client-cert-header")
	publicURL := flag.String("public-url", "", "scheme and host callers use, for DPoP htu checks behind a proxy (default: the request's)")
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
		ClientCertHeader: *certHeader, TrustedProxies: splitList(*proxies), PublicURL: *publicURL,
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
	scheme := "http"
	serve := srv.ListenAndServe
	if *tlsCert != "" {
		// The certificate is asked for, not required nor verified: a
		// certificate-bound token names it by thumbprint (RFC 8705 §3), and
		// callers with bearer tokens need none.
		srv.TLSConfig = &tls.Config{ClientAuth: tls.RequestClientCert, MinVersion: tls.VersionTLS12}
		scheme = "https"
		serve = func() error { return srv.ListenAndServeTLS(*tlsCert, *tlsKey) }
	}
	log.Info("resource server listening", "url", scheme+"://"+*addr+"/api", "audience", *audience, "issuer", *issuer)
	if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "resource-server:", err)
		os.Exit(1)
	}
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}
