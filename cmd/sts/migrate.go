package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newMigrate() *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Bring the database schema up to date",
		Long: `Open the database, applying any pending schema migrations, and exit. Every
command (and "sts serve") migrates when it opens the database; running this
first makes an upgrade an explicit step, e.g. before starting several
instances on a shared database.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env, err := openData(cmd)
			if err != nil {
				return err
			}
			defer env.Close()
			where := env.Config.SQLitePath()
			if env.Config.DatabaseURL != "" {
				where = "the database"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "The schema of %s is up to date.\n", where)
			return nil
		},
	}
}
