package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/keybridge/sts/internal/clientcert"
	"github.com/keybridge/sts/internal/config"
	"github.com/keybridge/sts/internal/devices"
	"github.com/keybridge/sts/internal/endpoint/discovery"
	"github.com/keybridge/sts/internal/issuers"
	"github.com/keybridge/sts/internal/policy"
	"github.com/keybridge/sts/internal/portal"
	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/setup"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/tracing"
	"github.com/spf13/cobra"
)

func newServe() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the token service",
		Long: `Run the token service. With no configuration it listens on 127.0.0.1:8080,
keeps its data in SQLite under ./sts-data/ and creates its signing keys on
first start. Settings come from flags, STS_* environment variables (e.g.
STS_ADDR) or a YAML file (--config), flags winning.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env, err := openEnv(cmd)
			if err != nil {
				return err
			}
			defer env.Close()
			ctx := cmd.Context()
			c := env.Config
			km, err := env.Keys(ctx)
			if err != nil {
				return err
			}
			publishers, err := env.Publishers()
			if err != nil {
				return err
			}
			certs, err := clientCertSource(c)
			if err != nil {
				return err
			}
			// The configuration file's trusted issuers, before serving:
			// a file that declares an invalid one (an unknown client)
			// stops the start, and one it no longer declares is
			// removed.
			applied, err := (&issuers.Service{Store: env.Store, Issuer: c.Issuer}).ApplyConfig(ctx, c.Issuers)
			if err != nil {
				return fmt.Errorf("configuration file: trusted issuers: %w", oneLine(err))
			}
			if len(c.Issuers) > 0 || len(applied.Removed) > 0 {
				env.Logger.Info("trusted issuers of the configuration file applied",
					"added", applied.Added, "updated", applied.Updated, "unchanged", applied.Unchanged, "removed", applied.Removed)
			}
			// The configuration file's device trust profiles, likewise
			// (each compiled: anchors, CEL, CRL files).
			devApplied, err := (&devices.Service{Store: env.Store}).ApplyConfig(ctx, c.DeviceProfiles)
			if err != nil {
				return fmt.Errorf("configuration file: device profiles: %w", oneLine(err))
			}
			if len(c.DeviceProfiles) > 0 || len(devApplied.Removed) > 0 {
				env.Logger.Info("device profiles of the configuration file applied",
					"added", devApplied.Added, "updated", devApplied.Updated, "unchanged", devApplied.Unchanged, "removed", devApplied.Removed)
			}
			// Traces, when the OTEL_* variables ask for them.
			version, _, _, _, _ := buildVersion()
			tp, stopTracing, err := tracing.Setup(ctx, version)
			if err != nil {
				return fmt.Errorf("tracing: %w", err)
			}
			defer func() {
				sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if err := stopTracing(sctx); err != nil {
					env.Logger.Warn("flush traces", "err", err)
				}
			}()
			if tp != nil {
				env.Logger.Info("tracing on: spans exported over OTLP/HTTP")
			}
			srv, err := server.New(ctx, server.Options{
				Issuer: c.Issuer,
				Store:  env.Store,
				Keys:   km,
				Hasher: env.Hasher,
				Limits: policy.Limits{
					AccessTokenTTL:  c.AccessTokenTTL,
					RefreshTokenTTL: c.RefreshTokenTTL,
					MaxTokenTTL:     c.MaxTokenTTL,
					MaxActDepth:     c.MaxActDepth,
				},
				Leeway:              c.Leeway,
				Accounts:            env.Accounts(),
				RequireApproval:     c.RequireApproval,
				Publishers:          publishers,
				PerAccountPerMinute: c.RegistrationRatePerAccount,
				PerAddressPerMinute: c.RegistrationRatePerAddress,
				TrustedProxies:      c.TrustedProxies,
				ClientCerts:         certs,
				DPoPNonceKey:        dpopNonceKey(c, env),
				// Failed client authentication and audit retention
				// bound what an unauthenticated caller can store.
				AuthFailuresPerAddress: c.AuthFailuresPerAddress,
				AuthFailuresPerClient:  c.AuthFailuresPerClient,
				DeviceBatchesPerMinute: c.DeviceBatchesPerMinute,
				AuditRetention:         c.AuditRetention,
				AuditJournal:           c.JournalDir(),
				AuditSync:              c.AuditSync,
				VerifiedTokenCache:     c.VerifiedTokenCache,
				// RFC 7592 registration access tokens expire.
				RegistrationTokenTTL: c.RegistrationTokenTTL,
				// Secure cookies under TLS, including TLS terminated by a
				// load balancer in front of an https issuer.
				Secure:      c.TLSCert != "" || strings.HasPrefix(c.Issuer, "https://"),
				KeyRotation: c.KeyRotationPeriod,
				Logger:      env.Logger,

				TracerProvider: tp,
			})
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", c.Addr)
			if err != nil {
				return err
			}
			var admin net.Listener
			if c.AdminAddr != "" {
				if admin, err = net.Listen("tcp", c.AdminAddr); err != nil {
					ln.Close()
					return fmt.Errorf("%s: %w", config.FlagAdminAddr, err)
				}
				srv.ServeAdmin(admin)
			}
			// The first start creates the portal's administrator; its
			// password is printed once, below. Only now that the server
			// can start, so that a failed start does not lose it.
			adminPassword, adminCreated, err := portal.EnsureAdmin(ctx, env.Store, time.Now())
			if err != nil {
				ln.Close()
				if admin != nil {
					admin.Close()
				}
				return fmt.Errorf("create the portal administrator: %w", err)
			}
			// The operator commands read these to default to this
			// server's issuer (IAT audiences, portal and token URLs).
			now := time.Now()
			for name, value := range map[string]string{store.SettingIssuer: c.Issuer, store.SettingAddr: ln.Addr().String()} {
				if err := env.Store.PutSetting(ctx, &store.Setting{Name: name, Value: value, UpdatedAt: now}); err != nil {
					env.Logger.Warn("could not record the server's settings for the CLI; CLI commands will need --issuer", "err", err)
				}
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Key Bridge STS listening on %s\n", ln.Addr())
			fmt.Fprintf(out, "  issuer:   %s\n", c.Issuer)
			fmt.Fprintf(out, "  metadata: %s%s\n", c.Issuer, discovery.MetadataPath)
			fmt.Fprintf(out, "  token:    %s%s\n", c.Issuer, server.TokenPath)
			fmt.Fprintf(out, "  portal:   %s%s/\n", c.Issuer, portal.Path)
			if c.DatabaseURL == "" {
				fmt.Fprintf(out, "  data:     %s\n", c.SQLitePath())
			}
			if admin != nil {
				fmt.Fprintf(out, "  admin:    http://%s/metrics (and /debug/pprof/)\n", admin.Addr())
			}
			if adminCreated {
				fmt.Fprintf(out, "First start: created the portal operator %q. Its password, shown only this once:\n  %s\n", portal.AdminName, adminPassword)
				fmt.Fprintf(out, "Sign in at %s%s/ (replace it with `sts operator reset-password %s`).\n", c.Issuer, portal.Path, portal.AdminName)
			}
			fmt.Fprintf(out, "Next: register a client in another terminal (go install ./cmd/sts first, or use go run ./cmd/sts):\n  sts client create --name my-service --audience https://backend.example.com/api\n")
			env.Logger.Info("serving", "addr", ln.Addr().String(), "issuer", c.Issuer, "signing_key", km.Snapshot().Current.ID)
			return srv.Run(ctx, ln, c.TLSCert, c.TLSKey)
		},
	}
	config.RegisterServe(cmd.Flags())
	return cmd
}

// clientCertSource reads the TLS and client certificate settings: the
// server's certificate and key must load, the client CA bundle must hold
// certificates. The source exists when clients can present certificates:
// over TLS, or through a trusted proxy's header; nil otherwise.
func clientCertSource(c *config.Config) (*clientcert.Source, error) {
	if c.TLSCert != "" {
		if _, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey); err != nil {
			return nil, fmt.Errorf("tls-cert/tls-key: %w", err)
		}
	}
	s := &clientcert.Source{Header: c.ClientCertHeader, Proxies: c.TrustedProxies}
	if c.ClientCA != "" {
		pool, err := clientcert.LoadCAs(c.ClientCA)
		if err != nil {
			return nil, err
		}
		s.ClientCAs = pool
	}
	if c.TLSCert == "" && c.ClientCertHeader == "" {
		if c.ClientCA != "" {
			return nil, fmt.Errorf("%s needs %s (or %s behind a TLS-terminating proxy): without TLS no client presents a certificate",
				config.FlagClientCA, config.FlagTLSCert, config.FlagClientCertHeader)
		}
		return nil, nil
	}
	return s, nil
}

// dpopNonceKey is the key of the server's DPoP nonces, derived from the
// key-encryption key that all instances share; nil without --dpop-nonce.
func dpopNonceKey(c *config.Config, env *setup.Env) []byte {
	if !c.DPoPNonce {
		return nil
	}
	return env.Sealer.Derive("dpop-nonce")
}
