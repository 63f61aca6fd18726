package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/keybridge/sts/internal/celpolicy"
	"github.com/keybridge/sts/internal/clients"
	"github.com/keybridge/sts/internal/setup"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func newClient() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "client",
		Short: "Manage the OAuth clients allowed to obtain tokens",
		Long: `Manage registered OAuth clients directly in the data directory or database,
whether or not a server is running. Secrets are stored only as keyed hashes
and are shown once, when created or rotated.`,
	}
	cmd.AddCommand(newClientCreate(), newClientUpdate(), newClientList(), newClientShow(), newClientRotateSecret(),
		newClientSetStatus("disable", store.ClientDisabled), newClientSetStatus("enable", store.ClientActive),
		newClientSetStatus("approve", store.ClientActive),
		newClientDelete())
	return cmd
}

// clientSpec is what `client create` was asked for, before it is checked.
type clientSpec struct {
	id, name              string
	audiences, scopes     []string
	grantTypes            []string
	tokenFormat           string
	allowImpersonation    bool
	resources             []string
	exchangeAny           bool
	introspectAny         bool
	accessTTL, refreshTTL time.Duration
	accountID             string
	// The operator's CEL rules (store.Policy; no subject rule for a
	// client).
	condition, scopeRule string
	claims               []string
	clearPolicy          bool
}

func newClientCreate() *cobra.Command {
	var (
		spec clientSpec
		bind bindingSpec
		out  output
	)
	cmd := &cobra.Command{
		Use:   "create --name NAME [--audience A]... [--scope S]...",
		Short: "Register a client and print its secret (shown once)",
		Long: `Register a client. Its id is random unless --client-id is given; its
secret is generated and printed once: only its keyed hash is stored.

Grant types (--grant-type, repeatable or comma-separated) take the full
values or the short names token-exchange (exchange), client-credentials and
refresh-token; the default is client_credentials and token-exchange.
Audiences are the audience and resource values the client may obtain tokens
for; a URI must be absolute and without fragment (RFC 8693 §2.1).

A client exchanges and introspects only tokens issued to it or addressed to
it: their audience names its client id or a resource it serves. --resource
registers the resource URIs the client serves as a resource server (the
audience of the tokens its callers present to it). --exchange-any lets it
exchange any subject token, --introspect-any introspect any access token;
grant these only to trusted infrastructure.

A client may authenticate with a key instead of a secret (--auth-method),
and then gets no secret: tls_client_auth (a certificate from the server's
--client-ca carrying exactly one registered name: --tls-subject-dn or one
--tls-san-*), self_signed_tls_client_auth or private_key_jwt (keys of
--jwks-file or --jwks-uri). Tokens of the two TLS methods are bound to the
certificate unless --tls-bound-tokens=false (RFC 8705).`,
		Example: `  sts client create --name billing --audience https://backend.example.com/api --scope read
  sts client create --name rs08 --resource https://rs08.example.com --audience https://backend.example.com/api
  sts client create --name gateway --grant-type exchange --allow-impersonation -o json
  sts client create --name radio-7 --auth-method tls_client_auth --tls-subject-dn 'CN=radio-7,O=Example'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := out.json()
			if err != nil {
				return err
			}
			s, err := spec.toSpec()
			if err != nil {
				return err
			}
			if err := bind.apply(&s); err != nil {
				return err
			}
			if s.ID == "" {
				// Chosen now, so that the policy's errors name it.
				s.ID = clients.NewID()
			}
			if _, err := s.Build(time.Now()); err != nil {
				return flagProblems(err)
			}
			if err := checkClientPolicy(s.ID, s.Policy); err != nil {
				return err
			}
			env, err := openData(cmd)
			if err != nil {
				return err
			}
			defer env.Close()
			c, secret, err := env.Clients().Create(cmd.Context(), "cli", s, store.ClientActive)
			if errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("client %q already exists", spec.id)
			}
			if err != nil {
				return fmt.Errorf("create client: %w", flagProblems(err))
			}
			w := cmd.OutOrStdout()
			if asJSON {
				v := viewClient(c, time.Now())
				v.ClientSecret = secret
				return writeJSON(w, v)
			}
			fmt.Fprintf(w, "Created client %q.\n", c.Name)
			fmt.Fprintf(w, "  client_id:     %s\n", c.ID)
			if secret == "" {
				fmt.Fprintf(w, "  auth method:   %s (no secret)\n", c.AuthMethod)
				return nil
			}
			fmt.Fprintf(w, "  client_secret: %s\n", secret)
			fmt.Fprintln(w, "The secret is shown only this once; store it now (it can be replaced with `sts client rotate-secret`).")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&spec.name, "name", "", "human-readable name of the client (required)")
	f.StringVar(&spec.id, "client-id", "", "client id (default: random)")
	f.StringArrayVar(&spec.audiences, "audience", nil, "audience or resource the client may obtain tokens for (repeatable)")
	f.StringArrayVar(&spec.scopes, "scope", nil, "scope the client may obtain (repeatable; or several separated by spaces)")
	f.StringSliceVar(&spec.grantTypes, "grant-type", nil, "grant type the client may use (repeatable): token-exchange, client-credentials, refresh-token, jwt-bearer (default client-credentials,token-exchange)")
	f.BoolVar(&spec.allowImpersonation, "allow-impersonation", false, "let the client exchange a subject token without becoming its actor (RFC 8693 §1.1)")
	f.StringVar(&spec.tokenFormat, "token-format", store.TokenFormatJWT, "format of the client's access tokens: jwt or opaque")
	f.DurationVar(&spec.accessTTL, "access-token-ttl", 0, "lifetime of the client's access tokens (0: server default)")
	f.DurationVar(&spec.refreshTTL, "refresh-token-ttl", 0, "lifetime of the client's refresh tokens (0: server default)")
	f.StringVar(&spec.accountID, "account", "", "account the client belongs to (its audiences and scopes must lie within the account's)")
	grantFlags(f, &spec)
	policyFlags(f, &spec)
	bindingFlags(f, &bind)
	out.register(cmd)
	return cmd
}

// grantFlags are the flags of an operator's grants, shared by create and
// update.
func grantFlags(f *pflag.FlagSet, spec *clientSpec) {
	f.StringArrayVar(&spec.resources, "resource", nil, "resource URI (or audience name) the client serves as a resource server: it may exchange and introspect tokens whose audience names it (repeatable)")
	f.BoolVar(&spec.exchangeAny, "exchange-any", false, "let the client exchange any subject token, not only those issued or addressed to it")
	f.BoolVar(&spec.introspectAny, "introspect-any", false, "let the client introspect any access token, not only those issued or addressed to it (RFC 7662 §2.1)")
}

// policyFlags are the flags of the operator's CEL rules, shared by create
// and update.
func policyFlags(f *pflag.FlagSet, spec *clientSpec) {
	f.StringVar(&spec.condition, "condition", "", "CEL condition that must be true for the client to be issued a token")
	f.StringVar(&spec.scopeRule, "scope-rule", "", "CEL expression of the list of scopes the client may be issued")
	f.StringArrayVar(&spec.claims, "claim", nil, "NAME=EXPR: a claim of the client's issued tokens and its CEL expression (repeatable)")
}

// checkClientPolicy type-checks a client's CEL rules, so that a bad one is
// refused when saved; the message names the client, the rule and the
// position.
func checkClientPolicy(id string, p store.Policy) error {
	if _, err := celpolicy.Compile(fmt.Sprintf("client %q", id), p); err != nil {
		return oneLine(err)
	}
	return nil
}

// updateSettings are the flags of `client update` that change something.
var updateSettings = []string{"name", "audience", "scope", "grant-type", "allow-impersonation", "token-format",
	"access-token-ttl", "refresh-token-ttl", "resource", "exchange-any", "introspect-any",
	"condition", "scope-rule", "claim", "clear-policy"}

func newClientUpdate() *cobra.Command {
	var (
		spec clientSpec
		bind bindingSpec
		out  output
	)
	cmd := &cobra.Command{
		Use:   "update CLIENT_ID [--resource URI]... [--exchange-any[=false]] [--introspect-any[=false]] ...",
		Short: "Change what a client may obtain",
		Long: `Change the settings of a client; only the flags given change. A list flag
given replaces the whole list (--audience, --scope, --grant-type,
--resource); give it once with an empty value to clear the list, e.g.
--resource ''. Boolean flags take =false to withdraw a right. A client in an
account stays within the account's bounds.`,
		Example: `  sts client update rs08 --resource https://rs08.example.com
  sts client update introspector --introspect-any
  sts client update gateway --allow-impersonation=false --exchange-any=false`,
		Args: cobra.ExactArgs(1),
		RunE: withData(&out, func(cmd *cobra.Command, args []string, env *setup.Env, asJSON bool) error {
			f := cmd.Flags()
			settings := append(slices.Clone(updateSettings), bindingSettings...)
			if !slices.ContainsFunc(settings, f.Changed) {
				return errors.New("nothing to change: give at least one of --" + strings.Join(settings, ", --"))
			}
			list := func(name string, dst *[]string, v []string) {
				if f.Changed(name) {
					*dst = slices.DeleteFunc(slices.Clone(v), func(s string) bool { return s == "" })
				}
			}
			claims, err := parseClaims(spec.claims)
			if err != nil {
				return err
			}
			c, err := env.Clients().Update(cmd.Context(), "cli", args[0], func(s *clients.Spec) error {
				if f.Changed("name") {
					s.Name = spec.name
				}
				list("audience", &s.Audiences, spec.audiences)
				list("scope", &s.Scopes, spec.scopes)
				list("grant-type", &s.GrantTypes, spec.grantTypes)
				list("resource", &s.Resources, spec.resources)
				if f.Changed("grant-type") && len(s.GrantTypes) == 0 {
					return clients.Problems{{Field: "grant_types", Msg: "must not be empty"}}
				}
				if f.Changed("token-format") {
					s.TokenFormat = spec.tokenFormat
				}
				if f.Changed("access-token-ttl") {
					s.AccessTTL = spec.accessTTL
				}
				if f.Changed("refresh-token-ttl") {
					s.RefreshTTL = spec.refreshTTL
				}
				for name, dst := range map[string]*bool{"allow-impersonation": &s.AllowImpersonation, "exchange-any": &s.ExchangeAny, "introspect-any": &s.IntrospectAny} {
					if f.Changed(name) {
						v, _ := f.GetBool(name)
						*dst = v
					}
				}
				if err := bind.edit(f, s); err != nil {
					return err
				}
				return editPolicy(f, &spec, claims, s)
			})
			if err != nil {
				return clientErr(args[0], flagProblems(err))
			}
			v := viewClient(c, time.Now())
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), v)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Updated client %q.\n", c.ID)
			writeClientText(cmd.OutOrStdout(), v)
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&spec.name, "name", "", "human-readable name of the client")
	f.StringArrayVar(&spec.audiences, "audience", nil, "audience or resource the client may obtain tokens for (repeatable; replaces the list)")
	f.StringArrayVar(&spec.scopes, "scope", nil, "scope the client may obtain (repeatable; replaces the list)")
	f.StringSliceVar(&spec.grantTypes, "grant-type", nil, "grant type the client may use (repeatable; replaces the list)")
	f.BoolVar(&spec.allowImpersonation, "allow-impersonation", false, "let the client exchange a subject token without becoming its actor (RFC 8693 §1.1)")
	f.StringVar(&spec.tokenFormat, "token-format", "", "format of the client's access tokens: jwt or opaque")
	f.DurationVar(&spec.accessTTL, "access-token-ttl", 0, "lifetime of the client's access tokens (0: server default)")
	f.DurationVar(&spec.refreshTTL, "refresh-token-ttl", 0, "lifetime of the client's refresh tokens (0: server default)")
	grantFlags(f, &spec)
	policyFlags(f, &spec)
	f.BoolVar(&spec.clearPolicy, "clear-policy", false, "remove every CEL rule of the client (before --condition, --scope-rule and --claim set any)")
	bindingFlags(f, &bind)
	out.register(cmd)
	return cmd
}

// editPolicy applies the policy flags of `client update` to s: the rules
// given replace those of the same kind (an empty --condition or
// --scope-rule removes it; --claim adds or replaces one claim), after
// --clear-policy removed them all. The result is compiled.
func editPolicy(f *pflag.FlagSet, spec *clientSpec, claims map[string]string, s *clients.Spec) error {
	p := s.Policy
	if spec.clearPolicy {
		p = store.Policy{}
	}
	if f.Changed("condition") {
		p.Condition = spec.condition
	}
	if f.Changed("scope-rule") {
		p.Scope = spec.scopeRule
	}
	if len(claims) > 0 {
		merged := make(map[string]string, len(p.Claims)+len(claims))
		maps.Copy(merged, p.Claims)
		maps.Copy(merged, claims)
		p.Claims = merged
	}
	if err := checkClientPolicy(s.ID, p); err != nil {
		return err
	}
	s.Policy = p
	return nil
}

// toSpec turns the flags into a clients.Spec; the registry checks it.
func (s *clientSpec) toSpec() (clients.Spec, error) {
	claims, err := parseClaims(s.claims)
	if err != nil {
		return clients.Spec{}, err
	}
	return clients.Spec{
		Policy: store.Policy{Condition: s.condition, Scope: s.scopeRule, Claims: claims},
		ID:     s.id, Name: s.name, Audiences: s.audiences, Scopes: s.scopes,
		GrantTypes: s.grantTypes, TokenFormat: s.tokenFormat,
		AllowImpersonation: s.allowImpersonation,
		Resources:          s.resources, ExchangeAny: s.exchangeAny, IntrospectAny: s.introspectAny,
		AccessTTL: s.accessTTL, RefreshTTL: s.refreshTTL,
		AccountID: s.accountID,
	}, nil
}

// flagNames maps the fields of clients.Problems to this command's flags.
var flagNames = map[string]string{
	"client_id": "--client-id", "name": "--name", "grant_types": "--grant-type",
	"audience": "--audience", "scope": "--scope", "token_format": "--token-format",
	"token_lifetime": "token lifetimes", "account": "--account", "resource": "--resource",
}

// flagProblems words a registry's problems in terms of flags, on one line.
func flagProblems(err error) error {
	var probs clients.Problems
	if !errors.As(err, &probs) {
		return err
	}
	msgs := make([]string, len(probs))
	for i, p := range probs {
		name, ok := flagNames[p.Field]
		if !ok {
			name = p.Field
		}
		msgs[i] = name + " " + p.Msg
	}
	return errors.New(strings.Join(msgs, "; "))
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// clientView is the JSON form of a client: never its secret hash.
type clientView struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret,omitempty"`
	// PrevSecretExpiresAt is when the secret before the last rotation
	// stops working, while it still does.
	PrevSecretExpiresAt string `json:"previous_secret_expires_at,omitempty"`
	// The names and forms of RFC 7591 §2 where it has them (client_name;
	// scope, a space-separated string), as the registration endpoint
	// answers, so that a script reads one vocabulary.
	Name               string   `json:"client_name"`
	Status             string   `json:"status"`
	GrantTypes         []string `json:"grant_types"`
	AuthMethod         string   `json:"token_endpoint_auth_method,omitempty"`
	Audiences          []string `json:"audiences"`
	Scope              string   `json:"scope"`
	TokenFormat        string   `json:"token_format"`
	AllowImpersonation bool     `json:"allow_impersonation"`
	// Resources, ExchangeAny and IntrospectAny: what the client may
	// exchange and introspect beyond its own tokens.
	Resources       []string `json:"resources"`
	ExchangeAny     bool     `json:"exchange_any"`
	IntrospectAny   bool     `json:"introspect_any"`
	AccessTokenTTL  int64    `json:"access_token_ttl"`
	RefreshTokenTTL int64    `json:"refresh_token_ttl"`
	CreatedAt       string   `json:"created_at"`
	UpdatedAt       string   `json:"updated_at,omitempty"`
	AccountID       string   `json:"account_id,omitempty"`
	// The operator's CEL rules, when the client has any.
	Condition string            `json:"condition,omitempty"`
	ScopeRule string            `json:"scope_rule,omitempty"`
	Claims    map[string]string `json:"claims,omitempty"`
	// The key-based registration, in RFC 7591 / RFC 8705 names.
	bindingView
}

func viewClient(c *store.Client, now time.Time) clientView {
	v := clientView{
		ClientID:           c.ID,
		Name:               c.Name,
		Status:             string(c.Status),
		GrantTypes:         orEmpty(c.GrantTypes),
		Audiences:          orEmpty(c.Audiences),
		Scope:              strings.Join(c.Scopes, " "),
		AuthMethod:         c.AuthMethod,
		TokenFormat:        c.TokenFormat,
		AllowImpersonation: c.AllowImpersonation,
		Resources:          orEmpty(c.Resources),
		ExchangeAny:        c.ExchangeAny,
		IntrospectAny:      c.IntrospectAny,
		AccessTokenTTL:     int64(c.AccessTokenTTL / time.Second),
		RefreshTokenTTL:    int64(c.RefreshTokenTTL / time.Second),
		CreatedAt:          rfc3339(c.CreatedAt),
		UpdatedAt:          rfc3339(c.UpdatedAt),
		AccountID:          c.AccountID,
		Condition:          c.Policy.Condition,
		ScopeRule:          c.Policy.Scope,
		Claims:             c.Policy.Claims,
		bindingView:        viewBinding(c.Binding),
	}
	if v.TokenFormat == "" {
		v.TokenFormat = store.TokenFormatJWT
	}
	if len(c.PrevSecretHash) > 0 && now.Before(c.PrevSecretExpiresAt) {
		v.PrevSecretExpiresAt = rfc3339(c.PrevSecretExpiresAt)
	}
	return v
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// shortGrants names grant types as an operator types them.
func shortGrants(gs []string) string {
	out := make([]string, len(gs))
	for i, g := range gs {
		switch g {
		case oauth.GrantTypeTokenExchange:
			out[i] = "token-exchange"
		case oauth.GrantTypeClientCredentials:
			out[i] = "client-credentials"
		case oauth.GrantTypeRefreshToken:
			out[i] = "refresh-token"
		case oauth.GrantTypeJWTBearer:
			out[i] = "jwt-bearer"
		default:
			out[i] = g
		}
	}
	return strings.Join(out, ",")
}

func ttlText(d time.Duration) string {
	if d == 0 {
		return "server default"
	}
	return d.String()
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "(none)"
	}
	return strings.Join(s, " ")
}

func writeClientText(w io.Writer, v clientView) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "client_id:\t%s\n", v.ClientID)
	fmt.Fprintf(tw, "name:\t%s\n", v.Name)
	fmt.Fprintf(tw, "status:\t%s\n", v.Status)
	fmt.Fprintf(tw, "grant_types:\t%s\n", strings.Join(v.GrantTypes, " "))
	fmt.Fprintf(tw, "audiences:\t%s\n", listOrNone(v.Audiences))
	fmt.Fprintf(tw, "scope:\t%s\n", dash(v.Scope))
	fmt.Fprintf(tw, "token_format:\t%s\n", v.TokenFormat)
	fmt.Fprintf(tw, "allow_impersonation:\t%t\n", v.AllowImpersonation)
	fmt.Fprintf(tw, "resources:\t%s\n", listOrNone(v.Resources))
	fmt.Fprintf(tw, "exchange_any:\t%t\n", v.ExchangeAny)
	fmt.Fprintf(tw, "introspect_any:\t%t\n", v.IntrospectAny)
	fmt.Fprintf(tw, "access_token_ttl:\t%s\n", ttlText(time.Duration(v.AccessTokenTTL)*time.Second))
	fmt.Fprintf(tw, "refresh_token_ttl:\t%s\n", ttlText(time.Duration(v.RefreshTokenTTL)*time.Second))
	if v.AccountID != "" {
		fmt.Fprintf(tw, "account_id:\t%s\n", v.AccountID)
	}
	if v.AuthMethod != "" {
		fmt.Fprintf(tw, "token_endpoint_auth_method:\t%s\n", v.AuthMethod)
	}
	writeBindingText(tw, v.bindingView)
	writePolicyText(tw, v.Condition, v.ScopeRule, v.Claims)
	fmt.Fprintf(tw, "created_at:\t%s\n", v.CreatedAt)
	if v.UpdatedAt != "" {
		fmt.Fprintf(tw, "updated_at:\t%s\n", v.UpdatedAt)
	}
	if v.PrevSecretExpiresAt != "" {
		fmt.Fprintf(tw, "previous secret valid until:\t%s\n", v.PrevSecretExpiresAt)
	}
	tw.Flush()
}

// getClient reads one client, turning ErrNotFound into the one line an
// operator needs.
func getClient(ctx context.Context, env *setup.Env, id string) (*store.Client, error) {
	c, err := env.Store.GetClient(ctx, id)
	if err != nil {
		return nil, clientErr(id, err)
	}
	return c, nil
}

func clientErr(id string, err error) error { return notFoundErr("client", id, err) }

// notFoundErr turns ErrNotFound on the what (account, client) named id
// into the one line an operator needs.
func notFoundErr(what, id string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%s %q not found", what, id)
	}
	return err
}

// writeStatusChange tells that what (Account, Client) id went from was to
// now, or already was now; it reports whether the status changed.
func writeStatusChange[S ~string](w io.Writer, what, id string, was, now S) bool {
	if was == now {
		fmt.Fprintf(w, "%s %q was already %s.\n", what, id, now)
		return false
	}
	fmt.Fprintf(w, "%s %q is now %s (was %s).\n", what, id, now, was)
	return true
}

func newClientList() *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the registered clients",
		Args:  cobra.NoArgs,
		RunE: withData(&out, func(cmd *cobra.Command, _ []string, env *setup.Env, asJSON bool) error {
			cs, err := env.Store.ListClients(cmd.Context())
			if err != nil {
				return fmt.Errorf("list clients: %w", err)
			}
			now := time.Now()
			return writeList(cmd.OutOrStdout(), asJSON, cs, func(c *store.Client) clientView { return viewClient(c, now) },
				"No clients. Register one with `sts client create --name NAME`.",
				[]string{"CLIENT ID", "NAME", "STATUS", "GRANTS", "AUDIENCES", "CREATED"},
				func(v clientView) []string {
					return []string{v.ClientID, v.Name, v.Status, shortGrants(v.GrantTypes), listOrNone(v.Audiences), v.CreatedAt}
				})
		}),
	}
	out.register(cmd)
	return cmd
}

func newClientShow() *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:   "show CLIENT_ID",
		Short: "Show one client (never its secret)",
		Args:  cobra.ExactArgs(1),
		RunE: withData(&out, func(cmd *cobra.Command, args []string, env *setup.Env, asJSON bool) error {
			c, err := getClient(cmd.Context(), env, args[0])
			if err != nil {
				return err
			}
			v := viewClient(c, time.Now())
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), v)
			}
			writeClientText(cmd.OutOrStdout(), v)
			return nil
		}),
	}
	out.register(cmd)
	return cmd
}

func newClientRotateSecret() *cobra.Command {
	var (
		out   output
		grace time.Duration
	)
	cmd := &cobra.Command{
		Use:   "rotate-secret CLIENT_ID [--grace DURATION]",
		Short: "Replace a client's secret and print the new one (shown once)",
		Long: `Replace a client's secret and print the new one, once. With --grace the
old secret keeps working for that long, so that the client can be
redeployed without downtime; by default it is refused at once. A client
registered through RFC 7591 also gets a new registration access token
(printed once); its old one is refused at once, whatever --grace says.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, err := out.json()
			if err != nil {
				return err
			}
			if grace < 0 {
				return errors.New("--grace must not be negative")
			}
			env, err := openData(cmd)
			if err != nil {
				return err
			}
			defer env.Close()
			now := time.Now()
			c, secret, rat, err := env.Clients().RotateSecret(cmd.Context(), "cli", args[0], grace)
			if err != nil {
				return clientErr(args[0], err)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				v := struct {
					clientView
					// RegistrationAccessToken is the client's new RFC 7592
					// token, for a dynamically registered client.
					RegistrationAccessToken string `json:"registration_access_token,omitempty"`
				}{viewClient(c, now), rat}
				v.ClientSecret = secret
				return writeJSON(w, v)
			}
			fmt.Fprintf(w, "New secret of client %q.\n", c.ID)
			fmt.Fprintf(w, "  client_secret: %s\n", secret)
			if rat != "" {
				fmt.Fprintf(w, "  registration_access_token: %s\n", rat)
				fmt.Fprintln(w, "The client's registration access token (RFC 7592) is replaced too; the old one no longer works.")
			}
			fmt.Fprintln(w, "The secret is shown only this once; store it now.")
			if grace > 0 {
				fmt.Fprintf(w, "The previous secret stays valid until %s.\n", rfc3339(c.PrevSecretExpiresAt))
			} else {
				fmt.Fprintln(w, "The previous secret no longer works.")
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&grace, "grace", 0, "how long the previous secret keeps working (0: refused at once)")
	out.register(cmd)
	return cmd
}

func newClientSetStatus(verb string, status store.ClientStatus) *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use: verb + " CLIENT_ID",
		Short: map[string]string{
			"disable": "Stop a client from authenticating",
			"enable":  "Let a disabled or pending client authenticate again",
			// SPEC §4 names the step that activates a pending client.
			"approve": "Approve a pending client (the same as enable)",
		}[verb],
		Args: cobra.ExactArgs(1),
		RunE: withData(&out, func(cmd *cobra.Command, args []string, env *setup.Env, asJSON bool) error {
			c, was, err := env.Clients().SetStatus(cmd.Context(), "cli", args[0], status)
			if err != nil {
				return clientErr(args[0], err)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(w, viewClient(c, time.Now()))
			}
			if writeStatusChange(w, "Client", c.ID, was, status) && status == store.ClientDisabled {
				fmt.Fprintln(w, "It can no longer authenticate, and this server refuses its tokens until it is enabled again; resource servers that verify JWTs themselves accept them until they expire.")
			}
			return nil
		}),
	}
	out.register(cmd)
	return cmd
}

func newClientDelete() *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:   "delete CLIENT_ID",
		Short: "Delete a client",
		Args:  cobra.ExactArgs(1),
		RunE: withData(&out, func(cmd *cobra.Command, args []string, env *setup.Env, asJSON bool) error {
			if err := env.Clients().Delete(cmd.Context(), "cli", args[0]); err != nil {
				return clientErr(args[0], err)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(w, map[string]any{"client_id": args[0], "deleted": true})
			}
			fmt.Fprintf(w, "Deleted client %q; this server refuses its tokens, also if the id is created again; resource servers that verify JWTs themselves accept them until they expire.\n", args[0])
			return nil
		}),
	}
	out.register(cmd)
	return cmd
}
