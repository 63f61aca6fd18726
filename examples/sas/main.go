// Command sas is an example "SAS-like" resource server: it accepts only
// device tokens of Key Bridge STS bound to the certificate the caller
// presents (a CBSD's own, or its domain proxy's), and answers with the
// device the token names.
//
//	go run ./examples/sas --issuer https://127.0.0.1:8443 --tls-cert sas.pem --tls-key sas-key.pem
//
// GET /v1.3/whoami answers the device (sub, FCC ID, serial, role, the
// proxy that obtained the token, if any); POST /v1.3/registration takes
// {"registrationRequest":[{"fccId","cbsdSerialNumber"}]} and answers
// SUCCESS (0) for the token's device, INVALID_VALUE (103) for others.
// Refusals are RFC 6750 challenges. The certificate is asked for in the
// TLS handshake (not verified: the token names it by thumbprint, RFC 8705
// §3) or, behind a TLS-terminating proxy, read from --client-cert-header.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
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

	"github.com/keybridge/sts/examples/sas/sasapi"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8082", "listen address")
	issuer := flag.String("issuer", "https://127.0.0.1:8443", "the STS's issuer URL")
	audience := flag.String("audience", sasapi.DefaultAudience, "this SAS's audience: tokens must name it in aud")
	scope := flag.String("scope", "", "scope every token must carry (empty: none)")
	stsCA := flag.String("sts-ca", "", "PEM bundle verifying the STS's TLS certificate (default: the system's)")
	tlsCert := flag.String("tls-cert", "", "this server's certificate (PEM); HTTPS is needed unless --client-cert-header")
	tlsKey := flag.String("tls-key", "", "the key of --tls-cert (PEM)")
	certHeader := flag.String("client-cert-header", "", "header in which a TLS-terminating proxy forwards the client certificate (URL-encoded PEM)")
	proxies := flag.String("trusted-proxies", "", "comma-separated addresses or CIDR prefixes of the proxies believed for --client-cert-header")
	verbose := flag.Bool("v", false, "log why tokens are refused")
	flag.Parse()
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if *tlsCert == "" && *certHeader == "" {
		fmt.Fprintln(os.Stderr, "sas: device tokens are bound to certificates: give --tls-cert and --tls-key, or --client-cert-header")
		os.Exit(2)
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	if *stsCA != "" {
		pem, err := os.ReadFile(*stsCA)
		pool := x509.NewCertPool()
		if err != nil || !pool.AppendCertsFromPEM(pem) {
			fmt.Fprintln(os.Stderr, "sas: --sts-ca: no PEM certificate read from", *stsCA)
			os.Exit(2)
		}
		hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	h, err := sasapi.New(ctx, sasapi.Options{
		Issuer: *issuer, Audience: *audience, Scope: *scope,
		ClientCertHeader: *certHeader, TrustedProxies: splitList(*proxies),
		HTTPClient: hc, Logger: log,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "sas:", err)
		os.Exit(1)
	}
	srv := &http.Server{Addr: *addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	scheme, serve := "http", srv.ListenAndServe
	if *tlsCert != "" {
		srv.TLSConfig = &tls.Config{ClientAuth: tls.RequestClientCert, MinVersion: tls.VersionTLS12}
		scheme = "https"
		serve = func() error { return srv.ListenAndServeTLS(*tlsCert, *tlsKey) }
	}
	log.Info("SAS listening", "url", scheme+"://"+*addr+"/v1.3/whoami", "audience", *audience, "issuer", *issuer)
	if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "sas:", err)
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
