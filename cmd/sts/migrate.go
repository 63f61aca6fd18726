package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/keybridge/sts/internal/setup"
)

// versioned is a store that reports its schema version (both SQL backends).
type versioned interface {
	Version(ctx context.Context) (int64, error)
}

func newMigrate() *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Bring the database schema up to date",
		Long: `Open the database (SQLite in --data-dir, or PostgreSQL with --database-url),
apply any pending schema migrations, print the schema version and exit.
Every command (and "sts serve") migrates when it opens the database; running
this first makes an upgrade an explicit step, e.g. before starting several
instances on a shared database (they would migrate it once anyway, under a
database lock). A binary refuses a schema newer than it knows.`,
		Args: cobra.NoArgs,
		RunE: withData(&out, func(cmd *cobra.Command, _ []string, env *setup.Env, asJSON bool) error {
			vs, ok := env.Store.(versioned)
			if !ok {
				return errors.New("migrate: this store has no schema version")
			}
			v, err := vs.Version(cmd.Context())
			if err != nil {
				return err
			}
			backend, where := "sqlite", env.Config.SQLitePath()
			if env.Config.DatabaseURL != "" {
				backend, where = "postgres", databaseName(env.Config.DatabaseURL)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(w, struct {
					Backend  string `json:"backend"`
					Database string `json:"database"`
					Version  int64  `json:"version"`
				}{backend, where, v})
			}
			fmt.Fprintf(w, "The schema of %s is up to date: version %d.\n", where, v)
			return nil
		}),
	}
	out.register(cmd)
	return cmd
}

// databaseName names a database URL by host and path, without its
// credentials and parameters (which may hold a password).
func databaseName(databaseURL string) string {
	u, err := url.Parse(databaseURL)
	if err != nil || u.Host == "" {
		return "the PostgreSQL database"
	}
	return u.Host + u.Path
}
