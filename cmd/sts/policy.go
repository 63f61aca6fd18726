package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/keybridge/sts/internal/policy"
	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/oauth"
	"github.com/spf13/cobra"
)

func newPolicy() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Read and test the rules that decide what is issued",
	}
	cmd.AddCommand(newPolicyExplain())
	return cmd
}

// errRefused makes `policy explain` exit non-zero after printing a refusal.
var errRefused = errors.New("the request would be refused")

func newPolicyExplain() *cobra.Command {
	var (
		clientID, subject, subjectType, actor, actorType, assertion, requested, grant string
		audiences, resources, scopes                                                  []string
		out                                                                           output
	)
	cmd := &cobra.Command{
		Use:   "explain --client ID (--subject-token TOKEN | --assertion JWT) [--actor-token TOKEN] [--audience A]... [--resource URI]... [--scope S]...",
		Short: "Show each step's decision for a token request, without issuing anything",
		Long: `Runs the token endpoint's decisions for a request of the client: which issuer
matched, which key verified the signature, each CEL rule and its value, the
delegation chain, and what would be issued, or the exact reason for refusal.
Nothing is issued, stored, consumed or audited. A token argument may be
@FILE to read it from a file, or - for standard input.

Exits 0 when the request would be granted, 1 when it would be refused.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if clientID == "" {
				return errors.New("--client is required")
			}
			asJSON, err := out.json()
			if err != nil {
				return err
			}
			form := url.Values{}
			switch grant {
			case "token-exchange", "exchange", oauth.GrantTypeTokenExchange:
				form.Set("grant_type", oauth.GrantTypeTokenExchange)
				if subject == "" {
					return errors.New("--subject-token is required (or --grant jwt-bearer with --assertion)")
				}
			case "jwt-bearer", oauth.GrantTypeJWTBearer:
				form.Set("grant_type", oauth.GrantTypeJWTBearer)
				if assertion == "" {
					return errors.New("--assertion is required with --grant jwt-bearer")
				}
			default:
				return fmt.Errorf("--grant %q is not token-exchange or jwt-bearer", grant)
			}
			for name, v := range map[string]*string{"subject-token": &subject, "actor-token": &actor, "assertion": &assertion} {
				if *v, err = readTokenArg(cmd.InOrStdin(), *v); err != nil {
					return fmt.Errorf("--%s: %w", name, err)
				}
			}
			set := func(k, v string) {
				if v != "" {
					form.Set(k, v)
				}
			}
			set("subject_token", subject)
			set("actor_token", actor)
			set("assertion", assertion)
			if subject != "" {
				set("subject_token_type", tokenTypeArg(subjectType))
			}
			if actor != "" {
				set("actor_token_type", tokenTypeArg(actorType))
			}
			if requested != "" {
				set("requested_token_type", tokenTypeArg(requested))
			}
			form["audience"], form["resource"] = audiences, resources
			if len(scopes) > 0 {
				form.Set("scope", strings.Join(scopes, " "))
			}

			env, err := openData(cmd)
			if err != nil {
				return err
			}
			defer env.Close()
			km, err := env.Keys(cmd.Context())
			if err != nil {
				return err
			}
			c := env.Config
			srv, err := server.New(cmd.Context(), server.Options{
				Issuer: c.Issuer, Store: env.Store, Keys: km, Hasher: env.Hasher,
				Limits: policy.Limits{AccessTokenTTL: c.AccessTokenTTL, RefreshTokenTTL: c.RefreshTokenTTL, MaxTokenTTL: c.MaxTokenTTL, MaxActDepth: c.MaxActDepth},
				Leeway: c.Leeway, Logger: env.Logger,
			})
			if err != nil {
				return err
			}
			defer srv.Close()
			x, err := srv.Explain(cmd.Context(), clientID, form)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				if err := enc.Encode(x); err != nil {
					return err
				}
			} else {
				printExplanation(w, x)
			}
			if !x.Granted {
				return errRefused
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&clientID, "client", "", "the client making the request")
	f.StringVar(&grant, "grant", "token-exchange", "grant: token-exchange or jwt-bearer")
	f.StringVar(&subject, "subject-token", "", "subject token (TOKEN, @FILE or -)")
	f.StringVar(&subjectType, "subject-token-type", "jwt", "subject token type: jwt, id_token, access_token or a URN")
	f.StringVar(&actor, "actor-token", "", "actor token (TOKEN, @FILE or -)")
	f.StringVar(&actorType, "actor-token-type", "jwt", "actor token type")
	f.StringVar(&assertion, "assertion", "", "JWT bearer assertion (RFC 7523) with --grant jwt-bearer")
	f.StringVar(&requested, "requested-token-type", "", "requested token type")
	f.StringArrayVar(&audiences, "audience", nil, "requested audience (repeatable)")
	f.StringArrayVar(&resources, "resource", nil, "requested resource URI (repeatable)")
	f.StringArrayVar(&scopes, "scope", nil, "requested scope (repeatable)")
	out.register(cmd)
	return cmd
}

// readTokenArg reads @FILE and - (standard input) arguments.
func readTokenArg(stdin io.Reader, v string) (string, error) {
	var b []byte
	var err error
	switch {
	case v == "-":
		b, err = io.ReadAll(io.LimitReader(stdin, 1<<20))
	case strings.HasPrefix(v, "@"):
		b, err = os.ReadFile(v[1:])
	default:
		return v, nil
	}
	return strings.TrimSpace(string(b)), err
}

// tokenTypeArg takes short token type names.
func tokenTypeArg(s string) string {
	switch s {
	case "jwt", "id_token", "access_token", "refresh_token":
		return "urn:ietf:params:oauth:token-type:" + s
	}
	return s
}

func printExplanation(w io.Writer, x *server.Explanation) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, s := range x.Steps {
		detail := s.Detail
		if s.Rule != "" {
			v, _ := json.Marshal(s.Value)
			detail = s.Rule + "  =>  " + string(v)
			if s.Outcome == "refused" {
				detail += "  (" + s.Detail + ")"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Outcome, s.Step, detail)
	}
	tw.Flush()
	if !x.Granted {
		fmt.Fprintf(w, "\nrefused: %s: %s\n", x.Error.Code, x.Error.Description)
		return
	}
	b, _ := json.MarshalIndent(x.Issued, "", "  ")
	fmt.Fprintf(w, "\nwould issue:\n%s\n", b)
}
