package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/keybridge/sts/internal/config"
	"github.com/keybridge/sts/internal/setup"
	"github.com/keybridge/sts/internal/store"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// openData opens the data of an operator command (client, key, token
// inspect, migrate). It resolves the configuration over the full set of
// storage and serve settings rather than over the command's own flags, so
// that the YAML file `sts serve` reads (with addr, issuer, ... in it) is
// accepted by every command too; only settings the operator passed as
// flags of the parents (--data-dir, --database-url, --config, --log-*) and
// the server settings a command declares with config.RegisterOnly (the key
// settings of `sts key rotate`, the issuer of `sts account issue-iat`) are
// copied in. Command-local flags such as
// `client create --access-token-ttl` are client settings, not server ones,
// and are deliberately not copied.
func openData(cmd *cobra.Command) (*setup.Env, error) {
	c, err := dataConfig(cmd)
	if err != nil {
		return nil, err
	}
	env, err := setup.Open(cmd.Context(), c, cmd.ErrOrStderr())
	if err != nil {
		return nil, oneLine(err)
	}
	useServerIssuer(cmd, env)
	return env, nil
}

// dataConfig resolves the configuration openData uses.
func dataConfig(cmd *cobra.Command) (*config.Config, error) {
	fs := pflag.NewFlagSet(cmd.CommandPath(), pflag.ContinueOnError)
	config.RegisterStorage(fs)
	config.RegisterServe(fs)
	var errs []string
	// VisitAll and Changed, not Visit: Visit sees only flags set on that
	// very FlagSet, and InheritedFlags returns a new one.
	copyFlag := func(f *pflag.Flag) {
		if !f.Changed || fs.Lookup(f.Name) == nil {
			return
		}
		if err := fs.Set(f.Name, f.Value.String()); err != nil {
			errs = append(errs, fmt.Sprintf("--%s: %v", f.Name, err))
		}
	}
	cmd.InheritedFlags().VisitAll(copyFlag)
	cmd.LocalFlags().VisitAll(func(f *pflag.Flag) {
		if _, ok := f.Annotations[config.ServerSetting]; ok {
			copyFlag(f)
		}
	})
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	c, err := config.Load(fs, os.Getenv)
	if err != nil {
		return nil, oneLine(err)
	}
	return c, nil
}

// useServerIssuer makes the command use the issuer `sts serve` recorded in
// the database when none was given, so that an IAT's audience, a sign-in
// URL or a token endpoint matches the running server rather than this
// command's own default. A given issuer that differs is used, with a
// warning naming both.
func useServerIssuer(cmd *cobra.Command, env *setup.Env) {
	s, err := env.Store.GetSetting(cmd.Context(), store.SettingIssuer)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			env.Logger.Warn("could not read the server's issuer", "err", err)
		}
		return
	}
	c := env.Config
	switch {
	case c.IssuerDefault:
		c.Issuer = s.Value
	case c.Issuer != s.Value:
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: using issuer %s, but the server last ran (%s) with issuer %s\n",
			c.Issuer, s.UpdatedAt.Local().Format(time.DateTime), s.Value)
	}
}

// oneLine joins a multi-line error (errors.Join of several problems) into
// one line, since main prints `sts: <err>` once.
func oneLine(err error) error {
	s := err.Error()
	if !strings.Contains(s, "\n") {
		return err
	}
	return fmt.Errorf("%s", strings.ReplaceAll(s, "\n", "; "))
}

// readArg returns s, or, when s is "-", the first line of in (for tokens
// piped in so they stay out of the shell history and the process list).
func readArg(in io.Reader, s, what string) (string, error) {
	if s != "-" {
		return strings.TrimSpace(s), nil
	}
	b, err := io.ReadAll(io.LimitReader(in, 1<<20))
	if err != nil {
		return "", fmt.Errorf("read %s from stdin: %w", what, err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("no %s on stdin", what)
	}
	return v, nil
}
