package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/keybridge/sts/internal/bench"
	"github.com/keybridge/sts/internal/clients"
	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
	"github.com/spf13/cobra"
)

func newBench() *cobra.Command {
	var (
		out          output
		servers      serverFlag
		urls         []string // --url, the deprecated form of --server
		clientID     string
		clientSecret string
		subject      string
		resource     string
		concurrency  int
		duration     time.Duration
		requests     int
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure token exchanges per second and latency against a running server",
		Long: `Send concurrent RFC 8693 token exchanges to a running server for a fixed
time and report exchanges per second and latency percentiles.

With no client flags, bench registers two temporary clients in this data
directory (a caller and an exchanging service), obtains the caller's token
from the server, runs, and deletes the clients again; the server must use
the same data directory or database. With --client-id, --client-secret and
--subject-token it uses yours and changes nothing.

--server may be repeated to spread the load over several instances sharing one
database (see "Running several instances" in the README): the connections
are divided among them round-robin, and the report gives each one's share.`,
		Example: `  sts bench --duration 30s --concurrency 32
  sts bench --server http://10.0.0.1:8080 --server http://10.0.0.2:8080 --server http://10.0.0.3:8080 --concurrency 48
  sts bench --server https://sts.example.com --client-id rs08 --client-secret "$S" --subject-token "$T" --resource https://backend.example.com/api`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := out.json()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if clientSecret == "" {
				clientSecret = os.Getenv("STS_CLIENT_SECRET")
			}
			cfg := bench.Config{
				ClientID: clientID, ClientSecret: clientSecret, SubjectToken: subject, Resource: resource,
				Concurrency: concurrency, Duration: duration, Requests: requests,
			}
			var caller *benchCaller
			if len(servers.urls) == 0 {
				servers.urls = urls
			}
			bases, err := servers.all(cmd)
			if err != nil {
				return err
			}
			if clientID == "" {
				c, cleanup, err := benchClients(cmd, &cfg)
				if err != nil {
					return err
				}
				defer cleanup()
				caller = c
			} else if subject == "" || clientSecret == "" {
				return errors.New("with --client-id, give --client-secret (or STS_CLIENT_SECRET) and --subject-token too")
			}
			for _, u := range bases {
				cfg.URLs = append(cfg.URLs, u+server.TokenPath)
			}
			if caller != nil {
				// One instance issues the subject token; the others
				// accept it, as they share the keys.
				if cfg.SubjectToken, err = caller.token(ctx, cfg.URLs[0]); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "exchanging at %s with %d connections for %v...\n", strings.Join(cfg.URLs, ", "), cfg.Concurrency, cfg.Duration)
			r, err := bench.Run(ctx, cfg)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), r)
			}
			fmt.Fprintln(cmd.OutOrStdout(), r)
			return nil
		},
	}
	f := cmd.Flags()
	servers.register(cmd, true)
	f.StringArrayVar(&urls, "url", nil, "base URL of the server")
	f.MarkDeprecated("url", "use --server")
	f.StringVar(&clientID, "client-id", "", "exchanging client (default: a temporary one)")
	f.StringVar(&clientSecret, "client-secret", "", "its secret (or STS_CLIENT_SECRET)")
	f.StringVar(&subject, "subject-token", "", "subject token to exchange")
	f.StringVar(&resource, "resource", "", "resource to request")
	f.IntVar(&concurrency, "concurrency", 16, "requests in flight")
	f.DurationVar(&duration, "duration", 10*time.Second, "how long to run")
	f.IntVar(&requests, "requests", 0, "stop after this many requests (0: no limit)")
	out.register(cmd)
	cmd.AddCommand(newBenchSeed())
	return cmd
}

// benchCaller is the temporary client whose token is exchanged.
type benchCaller struct{ id, secret string }

// benchClients registers a temporary caller and exchanging client in the
// data directory and returns the caller and a function that deletes both.
func benchClients(cmd *cobra.Command, cfg *bench.Config) (*benchCaller, func(), error) {
	env, err := openData(cmd)
	if err != nil {
		return nil, nil, err
	}
	ctx := cmd.Context()
	reg := env.Clients()
	// The caller's tokens are for the service, which serves that resource
	// and so may exchange them (policy.MayExchange).
	const backend, service = "https://bench.invalid/api", "https://bench-service.invalid"
	caller, callerSecret, err := reg.Create(ctx, "cli", clients.Spec{Name: "sts bench caller", Audiences: []string{service}, Scopes: []string{"bench"}}, store.ClientActive)
	if err != nil {
		env.Close()
		return nil, nil, err
	}
	svc, svcSecret, err := reg.Create(ctx, "cli", clients.Spec{Name: "sts bench service", Audiences: []string{backend}, Resources: []string{service}, Scopes: []string{"bench"}}, store.ClientActive)
	if err != nil {
		reg.Delete(ctx, "cli", caller.ID)
		env.Close()
		return nil, nil, err
	}
	cfg.ClientID, cfg.ClientSecret, cfg.Resource = svc.ID, svcSecret, backend
	return &benchCaller{caller.ID, callerSecret}, func() {
		bg := context.Background()
		reg.Delete(bg, "cli", caller.ID)
		reg.Delete(bg, "cli", svc.ID)
		env.Close()
	}, nil
}

// token obtains the caller's token by client_credentials.
func (c *benchCaller) token(ctx context.Context, endpoint string) (string, error) {
	h := http.Header{}
	h.Set("Authorization", oauth.BasicAuth(c.id, c.secret))
	tr, _, err := postToken(ctx, endpoint, h, url.Values{"grant_type": {oauth.GrantTypeClientCredentials}})
	var ue *url.Error
	switch {
	case errors.As(err, &ue):
		return "", fmt.Errorf("obtain the subject token: no server answers at %s (start one, or give --server): %w", endpoint, err)
	case err != nil:
		// The server answered but does not know the temporary client: it
		// runs on other data than this command.
		return "", fmt.Errorf("obtain the subject token: %w (does the server at %s use this command's --data-dir or --database-url?)", err, endpoint)
	}
	return tr.AccessToken, nil
}
