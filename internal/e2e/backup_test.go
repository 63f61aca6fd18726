package e2e_test

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestBackupRestore follows docs/operations.md "Backup and restore" on
// both backends, with real `sts serve` processes: a client gets a token;
// the data is backed up while the server runs (`sts data backup` for
// SQLite, pg_dump for PostgreSQL); a client registered after the backup
// marks what the restore must lose; the server stops, its data is wiped
// and restored from the backup (with the same key-encryption key), and a
// new server starts on it. The token issued before verifies against the
// restored server's JWKS and introspects active, the client's secret
// still authenticates it, and the client registered after the backup is
// unknown.
func TestBackupRestore(t *testing.T) {
	t.Run("SQLite", func(t *testing.T) {
		t.Parallel()
		c := newCluster(t, clusterOptions{SQLite: true}, "a")
		file := filepath.Join(t.TempDir(), "sts-backup.db")
		backupRestore(t, c, func() {
			out := c.CLI("data", "backup", file)
			if !strings.Contains(out, "Backed up") || !strings.Contains(out, "key-encryption key") {
				t.Errorf("sts data backup printed %q", out)
			}
			if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("backup file: %v, %v; want mode 0600", fi, err)
			}
			// A second backup never replaces the first.
			if _, err := c.cli("data", "backup", file); err == nil || !strings.Contains(err.Error(), "file exists") {
				t.Errorf("a backup over an existing file: %v", err)
			}
		}, func() {
			// The procedure: the server is stopped; the database and its
			// WAL files are replaced by the copy.
			if err := os.RemoveAll(c.data); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(c.data, 0o700); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(c.data, "sts.db"), b, 0o600); err != nil {
				t.Fatal(err)
			}
		})
	})
	t.Run("PostgreSQL", func(t *testing.T) {
		t.Parallel()
		base := testDatabaseURL(t)
		for _, tool := range []string{"pg_dump", "pg_restore"} {
			if _, err := exec.LookPath(tool); err != nil {
				t.Skipf("%s is not installed: the PostgreSQL backup is done with it", tool)
			}
		}
		c := newCluster(t, clusterOptions{}, "a")
		file := filepath.Join(t.TempDir(), "sts.dump")
		run := func(name string, args ...string) {
			t.Helper()
			cmd := exec.Command(name, args...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
			}
		}
		backupRestore(t, c, func() {
			run("pg_dump", "--format=custom", "--schema="+c.schema, "--file="+file, base)
		}, func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			conn, err := pgx.Connect(ctx, base)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			if _, err := conn.Exec(ctx, `DROP SCHEMA `+pgx.Identifier{c.schema}.Sanitize()+` CASCADE`); err != nil {
				t.Fatal(err)
			}
			run("pg_restore", "--no-owner", "--dbname="+base, file)
		})
	})
}

// backupRestore runs the scenario of TestBackupRestore on c: backup takes
// the backup while the server runs; wipeRestore replaces the data with
// it while the server is stopped.
func backupRestore(t *testing.T, c *cluster, backup, wipeRestore func()) {
	ctx := context.Background()
	n := c.Nodes[0]
	before := c.CreateClient("--name", "before")
	tok := accessToken(t, n.ClientCredentials(ctx, before))
	backup()
	after := c.CreateClient("--name", "after")
	accessToken(t, n.ClientCredentials(ctx, after))

	c.stopAll()
	wipeRestore()
	// The restored data is migrated by the binary (the step after
	// restoring an older backup), then served.
	c.CLI("migrate")
	n2, err := c.start("restored")
	if n2 != nil {
		c.Nodes = append(c.Nodes, n2)
	}
	if err != nil {
		t.Fatal(err)
	}
	set, err := n2.JWKS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyWith(tok, set); err != nil {
		t.Errorf("a token issued before the backup does not verify after the restore: %v", err)
	}
	if ir, r := n2.Introspect(ctx, before, tok); r.Err != nil || r.Status != http.StatusOK || !ir.Active {
		t.Errorf("introspection of the token after the restore: %v active=%v", r, ir.Active)
	}
	if r := n2.ClientCredentials(ctx, before); r.Status != http.StatusOK {
		t.Errorf("the client registered before the backup does not authenticate after the restore: %v", r)
	}
	if r := n2.ClientCredentials(ctx, after); r.Status != http.StatusUnauthorized || r.errorCode() != "invalid_client" {
		t.Errorf("the client registered after the backup: %v; want invalid_client (the restore goes back to the backup)", r)
	}
}
