package main

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
)

func newData() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "data",
		Short: "Back up the data",
	}
	cmd.AddCommand(newDataBackup())
	return cmd
}

// sqliteDB is the SQLite store's maintenance handle.
type sqliteDB interface{ DB() *sql.DB }

func newDataBackup() *cobra.Command {
	return &cobra.Command{
		Use:   "backup FILE",
		Short: "Write a consistent copy of the SQLite database, while the server runs",
		Long: `Write a consistent copy of the SQLite database in --data-dir to FILE (a new
file, mode 0600) with VACUUM INTO: a snapshot of one moment, taken while
` + "`sts serve`" + ` keeps serving (it only reads). Restore it by stopping the server,
replacing sts.db in the data directory with the copy (and deleting sts.db-wal
and sts.db-shm) and starting again.

The copy holds no key-encryption key: the signing keys in it are encrypted
with it, and the client secrets hashed with a key derived from it. Keep the
KEK (the kek file in --data-dir, or STS_KEY_ENCRYPTION_KEY) apart from the
copy, and with it: without it the copy cannot sign, verify its clients'
secrets, or be read.

With PostgreSQL (--database-url), use pg_dump and pg_restore
(docs/operations.md).`,
		Example: `  sts data backup --data-dir /var/lib/sts /var/backups/sts/sts-$(date +%F).db`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			target, err := filepath.Abs(args[0])
			if err != nil {
				return err
			}
			env, err := openData(cmd)
			if err != nil {
				return err
			}
			defer env.Close()
			if env.Config.DatabaseURL != "" {
				return errors.New("data backup copies the SQLite database; back up PostgreSQL with pg_dump (see docs/operations.md)")
			}
			db, ok := env.Store.(sqliteDB)
			if !ok {
				return errors.New("data backup: this store is not SQLite")
			}
			// VACUUM INTO writes only to a new or empty file: create it
			// first, private, so that the copy is never readable by
			// others, and so that an existing file is never replaced.
			f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("data backup: %w", err)
			}
			f.Close()
			if _, err := db.DB().ExecContext(cmd.Context(), `VACUUM INTO ?`, target); err != nil {
				os.Remove(target)
				return fmt.Errorf("data backup: %w", err)
			}
			fi, err := os.Stat(target)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Backed up %s to %s (%d bytes).\n", env.Config.SQLitePath(), target, fi.Size())
			if env.Config.KeyEncryptionKey != "" {
				fmt.Fprintln(out, "The key-encryption key (STS_KEY_ENCRYPTION_KEY) is not in the copy: keep it apart from the copy, and keep it.")
			} else {
				fmt.Fprintf(out, "The key-encryption key (%s) is not in the copy: keep a copy of it apart from the database copy.\n", env.Config.KEKPath())
			}
			return nil
		},
	}
}
