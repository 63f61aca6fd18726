package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

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
	root.AddCommand(newServe(), newClient(), newKey(), newToken(), newMigrate())
	return root
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

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
