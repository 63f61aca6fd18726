package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/keybridge/sts/internal/clientauth"
	"github.com/keybridge/sts/internal/clients"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/token"
	"github.com/spf13/cobra"
)

// newBenchSeed is `sts bench seed`: the database of the scale benchmarks
// (issue 12: a million clients and a million unexpired revocations), built
// with the store's Seeder in seconds rather than hours of CreateClient.
func newBenchSeed() *cobra.Command {
	var (
		nClients, nRevocations int
		prefix, secret         string
		revocationTTL          time.Duration
	)
	cmd := &cobra.Command{
		Use:   "seed",
		Short: "Fill the database with many clients and revocations, for scale benchmarks",
		Long: `Add synthetic clients and revocations to the configured data directory or
--database-url, with multi-row INSERTs in large transactions, to measure a
server at scale (start-up time, memory of the revocation set, throughput).

The clients are copies of one template, with IDs PREFIX0000000,
PREFIX0000001, …, all with the same secret (printed, or --secret) and the
grants, audience and scope of the clients "sts bench" registers. The
revocations are of random JWT identifiers, revoked now, expiring after
--revocation-ttl; a running server loads them at its next revocation poll.

Run it against a test database only: the rows stay until deleted.`,
		Example: `  sts bench seed --data-dir /tmp/scale --clients 1000000 --revocations 1000000
  sts bench seed --database-url postgres://sts@db/scale --clients 1000000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if nClients < 0 || nRevocations < 0 || nClients+nRevocations == 0 {
				return errors.New("give --clients and/or --revocations, each a positive count")
			}
			if nClients > 10_000_000 {
				return errors.New("--clients: at most 10,000,000 (the IDs have seven digits)")
			}
			env, err := openData(cmd)
			if err != nil {
				return err
			}
			defer env.Close()
			sd, ok := env.Store.(store.Seeder)
			if !ok {
				return fmt.Errorf("the %T store cannot seed", env.Store)
			}
			ctx, out := cmd.Context(), cmd.OutOrStdout()
			now := time.Now().UTC()
			if nClients > 0 {
				if prefix == "" {
					prefix = "seed-" + strings.ToLower(token.NewID()[:6]) + "-"
				}
				if secret == "" {
					secret = clientauth.NewSecret()
				}
				tmpl := &store.Client{
					ID: prefix, Name: "sts bench seed", SecretHash: env.Hasher.Hash(secret),
					Status: store.ClientActive, GrantTypes: slices.Clone(clients.DefaultGrantTypes),
					Audiences: []string{"https://bench.invalid/api"}, Resources: []string{"https://bench-service.invalid"},
					Scopes: []string{"bench"}, TokenFormat: store.TokenFormatJWT, CreatedAt: now, UpdatedAt: now,
				}
				start := time.Now()
				err := sd.SeedClients(ctx, nClients, tmpl)
				if errors.Is(err, store.ErrConflict) {
					return fmt.Errorf("a client with one of the IDs %s… already exists: choose another --prefix", prefix)
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "clients: %d in %.1f s, IDs %s%07d … %s%07d, secret %s\n",
					nClients, time.Since(start).Seconds(), prefix, 0, prefix, nClients-1, secret)
			}
			if nRevocations > 0 {
				start := time.Now()
				if err := sd.SeedRevocations(ctx, nRevocations, now.Add(revocationTTL), now); err != nil {
					return err
				}
				fmt.Fprintf(out, "revocations: %d in %.1f s, expiring %s\n",
					nRevocations, time.Since(start).Seconds(), now.Add(revocationTTL).Format(time.RFC3339))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&nClients, "clients", 0, "clients to add")
	f.IntVar(&nRevocations, "revocations", 0, "revocations to add")
	f.StringVar(&prefix, "prefix", "", `prefix of the clients' IDs (default "seed-" and six random characters and "-")`)
	f.StringVar(&secret, "secret", "", "secret of every seeded client (default: a new random one, printed)")
	f.DurationVar(&revocationTTL, "revocation-ttl", 24*time.Hour, "how long the revoked tokens remain unexpired")
	return cmd
}
