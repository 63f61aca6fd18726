package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/keybridge/sts/internal/portal"
	"github.com/keybridge/sts/internal/setup"
	"github.com/keybridge/sts/internal/store"
	"github.com/spf13/cobra"
)

func newOperator() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "operator",
		Short: "Manage the operators who sign in to the portal",
		Long: `Manage the operators who sign in to the web portal (under /portal). The
first start of ` + "`sts serve`" + ` creates the operator "admin" and prints its
password once. Passwords are stored only as argon2id hashes; a generated
password has 144 random bits and is printed once.`,
	}
	cmd.AddCommand(newOperatorCreate(), newOperatorResetPassword(), newOperatorList())
	return cmd
}

// operatorView is the JSON form of an operator: never the hash.
type operatorView struct {
	Username  string `json:"username"`
	Password  string `json:"password,omitempty"`
	CreatedAt string `json:"created_at,omitempty"`
	UpdatedAt string `json:"updated_at,omitempty"`
	Portal    string `json:"portal,omitempty"`
}

// newPassword is the password of create and reset-password: read from
// stdin with --password-stdin, generated otherwise (generated reports
// whether it must be printed).
func newPassword(in io.Reader, fromStdin bool) (pw string, generated bool, err error) {
	if !fromStdin {
		return portal.GeneratePassword(), true, nil
	}
	line, err := bufio.NewReader(io.LimitReader(in, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", false, fmt.Errorf("read the password from stdin: %w", err)
	}
	pw = strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", false, errors.New("no password on stdin")
	}
	if err := portal.CheckNewPassword(pw); err != nil {
		return "", false, err
	}
	return pw, false, nil
}

// printPassword writes the outcome of create or reset-password.
func printPassword(cmd *cobra.Command, env *setup.Env, asJSON bool, what, name, pw string, generated bool) error {
	w := cmd.OutOrStdout()
	url := env.Config.Issuer + portal.Path + "/"
	if asJSON {
		v := operatorView{Username: name, Portal: url}
		if generated {
			v.Password = pw
		}
		return writeJSON(w, v)
	}
	fmt.Fprintf(w, "%s operator %q.\n", what, name)
	if generated {
		fmt.Fprintf(w, "  password: %s\n", pw)
		fmt.Fprintln(w, "The password is shown only this once; only its argon2id hash is stored.")
	}
	fmt.Fprintf(w, "Sign in at %s\n", url)
	return nil
}

func newOperatorCreate() *cobra.Command {
	var (
		out       output
		fromStdin bool
	)
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create an operator and print a generated password (shown once)",
		Long: `Create a portal operator. Without --password-stdin a password of 144
random bits is generated and printed once. Names have 1 to 64 letters,
digits and . _ - @, and may not start with "acct-" (account ids do).`,
		Example: `  sts operator create alice
  printf '%s\n' "$PASSWORD" | sts operator create alice --password-stdin`,
		Args: cobra.ExactArgs(1),
		RunE: withData(&out, func(cmd *cobra.Command, args []string, env *setup.Env, asJSON bool) error {
			name := args[0]
			if err := portal.CheckUsername(name); err != nil {
				return err
			}
			pw, generated, err := newPassword(cmd.InOrStdin(), fromStdin)
			if err != nil {
				return err
			}
			err = portal.CreateOperator(cmd.Context(), env.Store, name, pw, portal.DefaultPasswordParams, time.Now())
			if errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("operator %q already exists (use `sts operator reset-password %s`)", name, name)
			}
			if err != nil {
				return fmt.Errorf("create operator: %w", err)
			}
			return printPassword(cmd, env, asJSON, "Created", name, pw, generated)
		}),
	}
	cmd.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password (at least 12 characters) from the first line of stdin")
	out.register(cmd)
	return cmd
}

func newOperatorResetPassword() *cobra.Command {
	var (
		out       output
		fromStdin bool
	)
	cmd := &cobra.Command{
		Use:   "reset-password NAME",
		Short: "Give an operator a new password (printed once) and sign out its sessions",
		Args:  cobra.ExactArgs(1),
		RunE: withData(&out, func(cmd *cobra.Command, args []string, env *setup.Env, asJSON bool) error {
			name := args[0]
			pw, generated, err := newPassword(cmd.InOrStdin(), fromStdin)
			if err != nil {
				return err
			}
			err = portal.ResetPassword(cmd.Context(), env.Store, name, pw, portal.DefaultPasswordParams, time.Now())
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("no operator %q", name)
			}
			if err != nil {
				return fmt.Errorf("reset password: %w", err)
			}
			return printPassword(cmd, env, asJSON, "Reset the password of", name, pw, generated)
		}),
	}
	cmd.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password (at least 12 characters) from the first line of stdin")
	out.register(cmd)
	return cmd
}

func newOperatorList() *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the portal operators",
		Args:  cobra.NoArgs,
		RunE: withData(&out, func(cmd *cobra.Command, _ []string, env *setup.Env, asJSON bool) error {
			ops, err := env.Store.ListOperators(cmd.Context())
			if err != nil {
				return fmt.Errorf("list operators: %w", err)
			}
			return writeList(cmd.OutOrStdout(), asJSON, ops,
				func(o *store.Operator) operatorView {
					return operatorView{Username: o.Username, CreatedAt: rfc3339(o.CreatedAt), UpdatedAt: rfc3339(o.UpdatedAt)}
				},
				"No operators yet: `sts serve` creates \"admin\" on first start, or use `sts operator create NAME`.",
				[]string{"USERNAME", "CREATED", "PASSWORD CHANGED"},
				func(v operatorView) []string { return []string{v.Username, v.CreatedAt, v.UpdatedAt} })
		}),
	}
	out.register(cmd)
	return cmd
}
