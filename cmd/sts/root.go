package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/keybridge/sts/internal/config"
	"github.com/keybridge/sts/internal/setup"
	"github.com/spf13/cobra"
)

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "sts",
		Short:         "Key Bridge STS: an OAuth 2.0 security token service (RFC 8693 token exchange)",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	config.RegisterStorage(root.PersistentFlags())
	root.AddCommand(newServe(), newClient(), newKey(), newToken(), newMigrate(), newBench(), newOperator(), newAccount(), newIssuer(), newDevice(), newPolicy(), newAudit(), newVersion(), newConfig(), newData())
	strictArgs(root)
	return root
}

// strictArgs makes every command refuse what it does not understand, so
// that a script never takes a typo for success: a group (a command with
// subcommands and nothing to run) fails on an unknown subcommand with
// cobra's suggestions, and a command that declares no argument rule takes
// no arguments. Without this, cobra prints the group's help and exits 0.
func strictArgs(cmd *cobra.Command) {
	for _, sub := range cmd.Commands() {
		strictArgs(sub)
	}
	if cmd.HasSubCommands() && !cmd.Runnable() {
		cmd.Args = cobra.ArbitraryArgs
		cmd.SuggestionsMinimumDistance = 2
		cmd.RunE = func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
			}
			return fmt.Errorf("%s\nRun '%s --help' for usage", msg, cmd.CommandPath())
		}
		return
	}
	if cmd.Args == nil {
		cmd.Args = cobra.NoArgs
	}
}

// loadConfig resolves the configuration of cmd (its flags, STS_* variables
// and the optional file).
func loadConfig(cmd *cobra.Command) (*config.Config, error) {
	return config.Load(cmd.Flags(), os.Getenv)
}

// openEnv loads the configuration and opens the data it names; logs go to
// stderr.
func openEnv(cmd *cobra.Command) (*setup.Env, error) {
	c, err := loadConfig(cmd)
	if err != nil {
		return nil, err
	}
	return setup.Open(cmd.Context(), c, cmd.ErrOrStderr())
}

// output is the --output flag of commands that scripts call.
type output struct{ format string }

func (o *output) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&o.format, "output", "o", "text", "output format: text or json")
}

func (o *output) json() (bool, error) {
	switch o.format {
	case "text":
		return false, nil
	case "json":
		return true, nil
	}
	return false, fmt.Errorf("--output must be text or json, not %q", o.format)
}

// withData returns the RunE of a command with --output that works on the
// data: it checks --output, opens the data (openData), runs run and closes
// the data again.
func withData(out *output, run func(cmd *cobra.Command, args []string, env *setup.Env, asJSON bool) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		asJSON, err := out.json()
		if err != nil {
			return err
		}
		env, err := openData(cmd)
		if err != nil {
			return err
		}
		defer env.Close()
		return run(cmd, args, env, asJSON)
	}
}

// writeList writes the views of items: as a JSON array, or as a table of
// one row a view under header, or, when there are none, the line none.
func writeList[T, V any](w io.Writer, asJSON bool, items []T, view func(T) V, none string, header []string, row func(V) []string) error {
	vs := make([]V, 0, len(items))
	for _, it := range items {
		vs = append(vs, view(it))
	}
	if asJSON {
		return writeJSON(w, vs)
	}
	if len(vs) == 0 {
		fmt.Fprintln(w, none)
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, v := range vs {
		fmt.Fprintln(tw, strings.Join(row(v), "\t"))
	}
	return tw.Flush()
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
