package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/keybridge/sts/internal/bench"
	"github.com/keybridge/sts/internal/clients"
	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
	"github.com/spf13/cobra"
	"golang.org/x/term"
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
		rate         float64
		progress     bool
		ceiling      bool
		ceilingFor   time.Duration
		histogram    bool
		plot         string
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
are divided among them round-robin, and the report gives each one's share.

On a terminal, bench shows the elapsed time, the rate in the last second,
and the requests and errors so far, once a second (--progress forces this,
one line a second, when stderr is not a terminal; --progress=false silences
it). A run stops at once, exiting non-zero with the server's error, when
the first exchange fails, when 100 in a row fail, or when every exchange
in a second fails.

--ceiling first measures the ES256 verify+sign ceiling on all cores of
this machine (what every exchange must do: parse and verify the subject
token, sign the new one) and reports the exchange rate as a share of it:
meaningful when the server runs on this machine. --histogram prints the
latency histogram, --plot writes it as an SVG chart; -o json includes it.`,
		Example: `  sts bench --duration 30s --concurrency 32
  sts bench --ceiling --histogram --plot latency.svg
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
				Concurrency: concurrency, Duration: duration, Requests: requests, Rate: rate,
			}
			if ceiling {
				cfg.Ceiling = ceilingFor
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
			stderr := cmd.ErrOrStderr()
			tty := isTerminal(stderr)
			if !cmd.Flags().Changed("progress") {
				progress = tty
			}
			if progress {
				cfg.Progress = progressPrinter(stderr, tty)
			}
			if cfg.Ceiling > 0 {
				fmt.Fprintf(stderr, "measuring the ES256 ceiling on %d cores for %v, then ", runtime.GOMAXPROCS(0), cfg.Ceiling)
			}
			fmt.Fprintf(stderr, "exchanging at %s with %d connections for %v...\n", strings.Join(cfg.URLs, ", "), cfg.Concurrency, cfg.Duration)
			r, err := bench.Run(ctx, cfg)
			if progress && tty {
				fmt.Fprint(stderr, "\r\x1b[K") // the last progress line gives way to the report
			}
			if err != nil {
				return err
			}
			if plot != "" {
				if err := writePlot(plot, r); err != nil {
					return err
				}
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), r)
			}
			fmt.Fprintln(cmd.OutOrStdout(), r)
			if histogram {
				fmt.Fprint(cmd.OutOrStdout(), "\n", r.Histogram)
			}
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
	f.Float64Var(&rate, "rate", 0, "send this many requests per second, whatever the answers' speed (open loop; latency counts from when each was due); 0: as fast as the connections allow")
	f.BoolVar(&progress, "progress", false, "show the rate and errors each second (default: when stderr is a terminal)")
	f.BoolVar(&ceiling, "ceiling", false, "measure the ES256 verify+sign ceiling on this machine first and report the rate as a share of it")
	f.DurationVar(&ceilingFor, "ceiling-duration", 3*time.Second, "how long to measure the ceiling")
	f.BoolVar(&histogram, "histogram", false, "print the latency histogram")
	f.StringVar(&plot, "plot", "", "write the latency histogram as an SVG chart to this file")
	out.register(cmd)
	cmd.AddCommand(newBenchSeed())
	return cmd
}

// isTerminal reports whether w is a terminal, where progress can be
// redrawn in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressPrinter returns a bench.Config.Progress that writes each report
// to w: redrawn in place on a terminal, one line each otherwise.
func progressPrinter(w io.Writer, tty bool) func(bench.Progress) {
	return func(p bench.Progress) {
		if tty {
			fmt.Fprintf(w, "\r\x1b[K%s", p)
			return
		}
		fmt.Fprintln(w, p)
	}
}

// writePlot writes r's latency histogram as an SVG chart to path.
func writePlot(path string, r bench.Result) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := r.WriteSVG(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
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
