package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/keybridge/sts/internal/server"
	"github.com/spf13/cobra"
)

func newTokenIntrospect() *cobra.Command {
	var (
		tc   tokenClient
		hint string
	)
	cmd := &cobra.Command{
		Use:   "introspect TOKEN|- --client-id ID [flags]",
		Short: "Ask the server whether a token is active (RFC 7662)",
		Long: `Send an RFC 7662 introspection request, authenticated as a client, and print
the answer. The server tells only clients entitled to the token (its own
client, its audiences, or a resource server an operator marked) that it is
active. The command exits non-zero when the token is not active, after
printing the answer. "-" reads the token from stdin.`,
		Example: `  STS_CLIENT_SECRET="$RS08_SECRET" sts token introspect --client-id rs08 "$TOKEN"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, body, err := tc.postToken(cmd, server.IntrospectPath, args[0], hint)
			if err != nil {
				return err
			}
			var ans map[string]any
			if err := json.Unmarshal(body, &ans); err != nil {
				return fmt.Errorf("introspection endpoint answered 200 without JSON: %w", err)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				if err := writeIndented(w, body); err != nil {
					return err
				}
			} else {
				writeIntrospection(w, ans)
			}
			if active, _ := ans["active"].(bool); !active {
				return errors.New("token is not active (unknown, expired, revoked, or not this client's to see)")
			}
			return nil
		},
	}
	tc.register(cmd)
	cmd.Flags().StringVar(&hint, "token-type-hint", "", "access_token or refresh_token (RFC 7662 §2.1)")
	return cmd
}

// writeIntrospection lays out an introspection answer, active first and
// times as dates.
func writeIntrospection(w interface{ Write([]byte) (int, error) }, ans map[string]any) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "active:\t%v\n", ans["active"])
	keys := make([]string, 0, len(ans))
	for k := range ans {
		if k != "active" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := ans[k]
		switch k {
		case "exp", "iat", "nbf":
			if f, ok := v.(float64); ok {
				v = time.Unix(int64(f), 0).UTC().Format(time.RFC3339)
			}
		}
		if m, ok := v.(map[string]any); ok {
			b, _ := json.Marshal(m)
			v = string(b)
		}
		fmt.Fprintf(tw, "%s:\t%v\n", k, v)
	}
	tw.Flush()
}

func newTokenRevoke() *cobra.Command {
	var (
		tc   tokenClient
		hint string
	)
	cmd := &cobra.Command{
		Use:   "revoke TOKEN|- --client-id ID [flags]",
		Short: "Revoke a token at the server (RFC 7009)",
		Long: `Send an RFC 7009 revocation request, authenticated as the client the token
was issued to. Revoking a refresh token revokes its whole family. The server
answers the same for a token it does not know or that was already invalid
(RFC 7009 §2.2), so success means only that the token is not valid now.
"-" reads the token from stdin.`,
		Example: `  STS_CLIENT_SECRET="$FRONTEND_SECRET" sts token revoke --client-id "$FRONTEND_ID" "$SUBJECT"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, _, err := tc.postToken(cmd, server.RevokePath, args[0], hint)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), map[string]bool{"revoked": true})
			}
			fmt.Fprintln(cmd.OutOrStdout(), "Revoked (or already not valid): the server no longer accepts the token.")
			return nil
		},
	}
	tc.register(cmd)
	cmd.Flags().StringVar(&hint, "token-type-hint", "", "access_token or refresh_token (RFC 7009 §2.1)")
	return cmd
}

// postToken sends a token (the argument, or stdin for "-") with its type
// hint to the introspection or revocation endpoint (RFC 7662 §2.1, RFC
// 7009 §2.1), authenticated as the client, and returns whether -o json was
// asked and the answer's body.
func (tc *tokenClient) postToken(cmd *cobra.Command, path, arg, hint string) (asJSON bool, body []byte, err error) {
	if asJSON, err = tc.asJSON(); err != nil {
		return false, nil, err
	}
	raw, err := readArg(cmd.InOrStdin(), arg, "token")
	if err != nil {
		return false, nil, err
	}
	endpoint, err := tc.url(cmd, path)
	if err != nil {
		return false, nil, err
	}
	form := url.Values{"token": {raw}}
	if hint != "" {
		form.Set("token_type_hint", hint)
	}
	header := make(http.Header)
	if err := tc.authenticate(header, form); err != nil {
		return false, nil, err
	}
	body, err = postForm(cmd.Context(), endpoint, header, form)
	return asJSON, body, err
}
