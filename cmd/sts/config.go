package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/keybridge/sts/internal/clientcert"
	"github.com/keybridge/sts/internal/config"
	"github.com/keybridge/sts/internal/keys"
	"github.com/keybridge/sts/internal/setup"
	"github.com/spf13/cobra"
)

func newConfig() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check configuration files",
	}
	cmd.AddCommand(newConfigCheck())
	return cmd
}

func newConfigCheck() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check a configuration file and flags without starting the server",
		Long: `Check the configuration that ` + "`sts serve`" + ` would run with: the file named by
--config (or STS_CONFIG), the STS_* variables and the flags given here, which
are those of ` + "`sts serve`" + `. It reports every problem at once, each with its
key: unknown keys (with the nearest known one), bad values and durations,
addresses, trusted issuers' rules (CEL), certificate, key and JWK set files
that cannot be read, and the key-encryption key. It never opens the
database nor creates anything; it exits 1 if there is any problem.`,
		Example: `  sts config check --config /etc/sts/sts.yaml
  STS_KEY_ENCRYPTION_KEY=... sts config check --config sts.yaml --addr :8443`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, problems := checkConfig(cmd)
			out := cmd.OutOrStdout()
			src := "the flags and environment"
			if f := configFile(cmd); f != "" {
				src = f
			}
			if len(problems) > 0 {
				fmt.Fprintf(out, "%s: %s:\n", src, plural(int64(len(problems)), "problem"))
				for _, p := range problems {
					fmt.Fprintf(out, "  - %s\n", p)
				}
				return fmt.Errorf("the configuration has %s", plural(int64(len(problems)), "problem"))
			}
			fmt.Fprintf(out, "%s: OK (issuer %s, listening on %s, %s, %s)\n",
				src, c.Issuer, c.Addr, storageOf(c), plural(int64(len(c.Issuers)), "trusted issuer"))
			return nil
		},
	}
	config.RegisterServe(cmd.Flags())
	return cmd
}

// configFile is the file the configuration is read from, if any.
func configFile(cmd *cobra.Command) string {
	if f := cmd.Flags().Lookup(config.FlagConfig); f != nil && f.Changed {
		return f.Value.String()
	}
	return os.Getenv(config.EnvName(config.FlagConfig))
}

func storageOf(c *config.Config) string {
	if c.DatabaseURL != "" {
		return "PostgreSQL"
	}
	return "SQLite in " + c.DataDir
}

// checkConfig loads the configuration as `sts serve` does (config.Load:
// unknown keys, values, durations, addresses, trusted issuers and their
// CEL rules) and then checks what serve reads at start before opening
// the database: the TLS and client CA files, the software statement
// publishers' key sets, the database URL's scheme and the key-encryption
// key. Every problem is returned, one line each.
func checkConfig(cmd *cobra.Command) (*config.Config, []string) {
	c, err := config.Load(cmd.Flags(), os.Getenv)
	problems := splitErrors(err)
	if c == nil {
		return nil, problems
	}
	add := func(err error) {
		if err != nil {
			problems = append(problems, splitErrors(err)...)
		}
	}
	if c.TLSCert != "" && c.TLSKey != "" {
		if _, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey); err != nil {
			add(fmt.Errorf("%s/%s: %w", config.FlagTLSCert, config.FlagTLSKey, err))
		}
	}
	if c.ClientCA != "" {
		if _, err := clientcert.LoadCAs(c.ClientCA); err != nil {
			add(err)
		} else if c.TLSCert == "" && c.ClientCertHeader == "" {
			add(fmt.Errorf("%s needs %s (or %s behind a TLS-terminating proxy): without TLS no client presents a certificate",
				config.FlagClientCA, config.FlagTLSCert, config.FlagClientCertHeader))
		}
	}
	if _, err := (&setup.Env{Config: c}).Publishers(); err != nil {
		add(fmt.Errorf("%s: %w", config.FlagPublishers, err))
	}
	// setup.Open's rules, without opening anything.
	switch u := c.DatabaseURL; {
	case u == "":
		if fi, err := os.Stat(c.DataDir); err == nil && !fi.IsDir() {
			add(fmt.Errorf("%s: %s is not a directory", config.FlagDataDir, c.DataDir))
		}
		if c.KeyEncryptionKey == "" {
			if _, err := os.Stat(c.KEKPath()); err == nil {
				if _, err := os.ReadFile(c.KEKPath()); err != nil {
					add(fmt.Errorf("key-encryption key: %w", err))
				}
			}
		}
	case strings.HasPrefix(u, "postgres://"), strings.HasPrefix(u, "postgresql://"):
		if c.KeyEncryptionKey == "" {
			add(errors.New("database-url: with PostgreSQL, set STS_KEY_ENCRYPTION_KEY (32 bytes, base64 or hex), the same on every instance"))
		}
	default:
		scheme, _, _ := strings.Cut(u, ":")
		add(fmt.Errorf("database-url: unsupported scheme %q (use postgres://, or leave it empty for SQLite)", scheme))
	}
	if c.KeyEncryptionKey != "" {
		if _, err := keys.ParseKEK(c.KeyEncryptionKey); err != nil {
			add(fmt.Errorf("STS_KEY_ENCRYPTION_KEY: %w", err))
		}
	}
	return c, problems
}

// splitErrors returns the lines of err: errors.Join puts one problem on
// each.
func splitErrors(err error) []string {
	if err == nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
