package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// buildVersion describes the binary from the build information Go embeds:
// the module version (a tag for `go install ...@vX`, "(devel)" for a build
// in a checkout), the VCS revision and time, and whether the tree had
// uncommitted changes.
func buildVersion() (version, commit, when string, dirty bool, goVersion string) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown", "", "", false, ""
	}
	version = bi.Main.Version
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			commit = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	return version, commit, when, dirty, bi.GoVersion
}

func newVersion() *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version and commit this binary was built from",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := out.json()
			if err != nil {
				return err
			}
			v, commit, when, dirty, gov := buildVersion()
			w := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(w, map[string]any{"version": v, "commit": commit, "commit_time": when, "modified": dirty, "go": gov})
			}
			line := "sts " + v
			if commit != "" {
				line += " (commit " + commit
				if dirty {
					line += ", modified"
				}
				if when != "" {
					line += ", " + when
				}
				line += ")"
			} else {
				line += " (no commit recorded: built with -buildvcs=false or outside a checkout)"
			}
			fmt.Fprintln(w, line+" "+gov)
			return nil
		},
	}
	out.register(cmd)
	return cmd
}
