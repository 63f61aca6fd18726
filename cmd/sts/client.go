package main

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/keybridge/sts/internal/clientauth"
	"github.com/keybridge/sts/internal/policy"
	"github.com/keybridge/sts/internal/setup"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
	"github.com/spf13/cobra"
)

func newClient() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "client",
		Short: "Manage the OAuth clients allowed to obtain tokens",
		Long: `Manage registered OAuth clients directly in the data directory or database,
whether or not a server is running. Secrets are stored only as keyed hashes
and are shown once, when created or rotated.`,
	}
	cmd.AddCommand(newClientCreate(), newClientList(), newClientShow(), newClientRotateSecret(),
		newClientSetStatus("disable", store.ClientDisabled), newClientSetStatus("enable", store.ClientActive),
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
	accessTTL, refreshTTL time.Duration
}

func newClientCreate() *cobra.Command {
	var (
		spec clientSpec
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
for; a URI must be absolute and without fragment (RFC 8693 §2.1).`,
		Example: `  sts client create --name billing --audience https://backend.example.com/api --scope read
  sts client create --name gateway --grant-type exchange --allow-impersonation -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := out.json()
			if err != nil {
				return err
			}
			c, err := spec.build(time.Now())
			if err != nil {
				return err
			}
			secret := clientauth.NewSecret()
			env, err := openData(cmd)
			if err != nil {
				return err
			}
			defer env.Close()
			c.SecretHash = env.Hasher.Hash(secret)
			err = env.Store.CreateClient(cmd.Context(), c)
			if errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("client %q already exists", c.ID)
			}
			if err != nil {
				return fmt.Errorf("create client: %w", err)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				v := viewClient(c, time.Now())
				v.ClientSecret = secret
				return writeJSON(w, v)
			}
			fmt.Fprintf(w, "Created client %q.\n", c.Name)
			fmt.Fprintf(w, "  client_id:     %s\n", c.ID)
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
	f.StringSliceVar(&spec.grantTypes, "grant-type", nil, "grant type the client may use (repeatable): token-exchange, client-credentials, refresh-token (default client-credentials,token-exchange)")
	f.BoolVar(&spec.allowImpersonation, "allow-impersonation", false, "let the client exchange a subject token without becoming its actor (RFC 8693 §1.1)")
	f.StringVar(&spec.tokenFormat, "token-format", store.TokenFormatJWT, "format of the client's access tokens: jwt or opaque")
	f.DurationVar(&spec.accessTTL, "access-token-ttl", 0, "lifetime of the client's access tokens (0: server default)")
	f.DurationVar(&spec.refreshTTL, "refresh-token-ttl", 0, "lifetime of the client's refresh tokens (0: server default)")
	out.register(cmd)
	return cmd
}

// build checks every field and returns the client record to store, or one
// error naming every problem found.
func (s *clientSpec) build(now time.Time) (*store.Client, error) {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }

	id := s.id
	if id == "" {
		id = newClientID()
	} else if err := checkClientID(id); err != nil {
		bad("--client-id: %v", err)
	}
	name := strings.TrimSpace(s.name)
	switch {
	case name == "":
		bad("--name is required")
	case strings.ContainsFunc(name, isControl):
		bad("--name must not contain control characters")
	}
	grants, err := parseGrantTypes(s.grantTypes)
	if err != nil {
		bad("%v", err)
	}
	var auds []string
	for _, a := range s.audiences {
		if err := checkAudience(a); err != nil {
			bad("--audience %q: %v", a, err)
		} else if !slices.Contains(auds, a) {
			auds = append(auds, a)
		}
	}
	var scopes []string
	for _, group := range s.scopes {
		fields := strings.Fields(group)
		if len(fields) == 0 {
			bad("--scope: empty")
		}
		for _, sc := range fields {
			if !oauth.ValidScopeToken(sc) {
				bad("--scope %q: not a scope token (RFC 6749 §3.3: printable ASCII except space, '\"' and '\\')", sc)
			} else if !slices.Contains(scopes, sc) {
				scopes = append(scopes, sc)
			}
		}
	}
	format := s.tokenFormat
	if format != store.TokenFormatJWT && format != store.TokenFormatOpaque {
		bad("--token-format must be jwt or opaque, not %q", format)
	}
	if s.accessTTL < 0 || s.refreshTTL < 0 {
		bad("token lifetimes must not be negative")
	}
	if len(errs) > 0 {
		return nil, errors.New(strings.Join(errs, "; "))
	}
	now = now.UTC()
	return &store.Client{
		ID:                 id,
		Name:               name,
		Status:             store.ClientActive,
		GrantTypes:         grants,
		Audiences:          orEmpty(auds),
		Scopes:             orEmpty(scopes),
		TokenFormat:        format,
		AllowImpersonation: s.allowImpersonation,
		AccessTokenTTL:     s.accessTTL,
		RefreshTokenTTL:    s.refreshTTL,
		CreatedAt:          now,
		UpdatedAt:          now,
	}, nil
}

// clientIDEncoding writes ids in lower-case base32 without padding: no
// characters that need escaping anywhere and none that look alike in
// mixed case.
var clientIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newClientID returns a random client id of 128 bits.
func newClientID() string {
	var b [16]byte
	rand.Read(b[:])
	return clientIDEncoding.EncodeToString(b[:])
}

// checkClientID accepts a chosen id of visible ASCII (RFC 6749 appendix
// A.1: client-id = *VSCHAR), without space so that it can be written on a
// command line and in logs unambiguously. ':' '%' and '+' are fine: Basic
// credentials are form-encoded (RFC 6749 §2.3.1).
func checkClientID(id string) error {
	if len(id) > 255 {
		return errors.New("longer than 255 characters")
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7E {
			return errors.New("must be visible ASCII characters without spaces")
		}
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7F }

// checkAudience accepts a logical name or a URI; a value that looks like a
// URI (it has a scheme) must be one a token request may name: absolute and
// without fragment (RFC 8693 §2.1, RFC 8707 §2).
func checkAudience(a string) error {
	if a == "" {
		return errors.New("empty")
	}
	if strings.ContainsFunc(a, func(r rune) bool { return r <= 0x20 || r == 0x7F }) {
		return errors.New("must not contain white space or control characters")
	}
	if strings.Contains(a, "#") {
		return errors.New("must not contain a fragment ('#')")
	}
	// A value that looks like a URI but does not parse as one is refused
	// too: a token request could never name it as a resource.
	if u, err := url.Parse(a); (err == nil && u.Scheme != "" || strings.Contains(a, "://")) && !policy.ValidTarget(a) {
		return errors.New("a URI must be absolute, well-formed and without fragment")
	}
	return nil
}

// grantAliases maps what an operator may type to grant type values.
var grantAliases = map[string]string{
	oauth.GrantTypeTokenExchange:     oauth.GrantTypeTokenExchange,
	"token-exchange":                 oauth.GrantTypeTokenExchange,
	"token_exchange":                 oauth.GrantTypeTokenExchange,
	"exchange":                       oauth.GrantTypeTokenExchange,
	oauth.GrantTypeClientCredentials: oauth.GrantTypeClientCredentials,
	"client-credentials":             oauth.GrantTypeClientCredentials,
	oauth.GrantTypeRefreshToken:      oauth.GrantTypeRefreshToken,
	"refresh-token":                  oauth.GrantTypeRefreshToken,
}

// parseGrantTypes resolves aliases; none given means client_credentials
// and token exchange.
func parseGrantTypes(in []string) ([]string, error) {
	if len(in) == 0 {
		return []string{oauth.GrantTypeClientCredentials, oauth.GrantTypeTokenExchange}, nil
	}
	var out []string
	for _, g := range in {
		v, ok := grantAliases[strings.TrimSpace(g)]
		if !ok {
			return nil, fmt.Errorf("--grant-type %q is not one of token-exchange, client-credentials, refresh-token", g)
		}
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out, nil
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
	PrevSecretExpiresAt string   `json:"previous_secret_expires_at,omitempty"`
	Name                string   `json:"name"`
	Status              string   `json:"status"`
	GrantTypes          []string `json:"grant_types"`
	Audiences           []string `json:"audiences"`
	Scopes              []string `json:"scopes"`
	TokenFormat         string   `json:"token_format"`
	AllowImpersonation  bool     `json:"allow_impersonation"`
	AccessTokenTTL      int64    `json:"access_token_ttl"`
	RefreshTokenTTL     int64    `json:"refresh_token_ttl"`
	CreatedAt           string   `json:"created_at"`
	UpdatedAt           string   `json:"updated_at,omitempty"`
}

func viewClient(c *store.Client, now time.Time) clientView {
	v := clientView{
		ClientID:           c.ID,
		Name:               c.Name,
		Status:             string(c.Status),
		GrantTypes:         orEmpty(c.GrantTypes),
		Audiences:          orEmpty(c.Audiences),
		Scopes:             orEmpty(c.Scopes),
		TokenFormat:        c.TokenFormat,
		AllowImpersonation: c.AllowImpersonation,
		AccessTokenTTL:     int64(c.AccessTokenTTL / time.Second),
		RefreshTokenTTL:    int64(c.RefreshTokenTTL / time.Second),
		CreatedAt:          rfc3339(c.CreatedAt),
		UpdatedAt:          rfc3339(c.UpdatedAt),
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
	fmt.Fprintf(tw, "scopes:\t%s\n", listOrNone(v.Scopes))
	fmt.Fprintf(tw, "token_format:\t%s\n", v.TokenFormat)
	fmt.Fprintf(tw, "allow_impersonation:\t%t\n", v.AllowImpersonation)
	fmt.Fprintf(tw, "access_token_ttl:\t%s\n", ttlText(time.Duration(v.AccessTokenTTL)*time.Second))
	fmt.Fprintf(tw, "refresh_token_ttl:\t%s\n", ttlText(time.Duration(v.RefreshTokenTTL)*time.Second))
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

func clientErr(id string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("client %q not found", id)
	}
	return err
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
redeployed without downtime; by default it is refused at once.`,
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
			secret := clientauth.NewSecret()
			hash := env.Hasher.Hash(secret)
			now := time.Now()
			c, err := env.Store.UpdateClient(cmd.Context(), args[0], func(c *store.Client) error {
				if grace > 0 {
					c.PrevSecretHash, c.PrevSecretExpiresAt = c.SecretHash, now.Add(grace).UTC()
				} else {
					c.PrevSecretHash, c.PrevSecretExpiresAt = nil, time.Time{}
				}
				c.SecretHash = hash
				return nil
			})
			if err != nil {
				return clientErr(args[0], err)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				v := viewClient(c, now)
				v.ClientSecret = secret
				return writeJSON(w, v)
			}
			fmt.Fprintf(w, "New secret of client %q.\n", c.ID)
			fmt.Fprintf(w, "  client_secret: %s\n", secret)
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
		Use:   verb + " CLIENT_ID",
		Short: map[string]string{"disable": "Stop a client from authenticating", "enable": "Let a disabled or pending client authenticate again"}[verb],
		Args:  cobra.ExactArgs(1),
		RunE: withData(&out, func(cmd *cobra.Command, args []string, env *setup.Env, asJSON bool) error {
			var was store.ClientStatus
			c, err := env.Store.UpdateClient(cmd.Context(), args[0], func(c *store.Client) error {
				was, c.Status = c.Status, status
				return nil
			})
			if err != nil {
				return clientErr(args[0], err)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(w, viewClient(c, time.Now()))
			}
			if was == status {
				fmt.Fprintf(w, "Client %q was already %s.\n", c.ID, status)
				return nil
			}
			fmt.Fprintf(w, "Client %q is now %s (was %s).\n", c.ID, status, was)
			if status == store.ClientDisabled {
				fmt.Fprintln(w, "It can no longer authenticate; tokens already issued stay valid until they expire or are revoked.")
			}
			return nil
		}),
	}
	if verb == "enable" {
		// SPEC §4 names the step that activates a pending client "approve".
		cmd.Aliases = []string{"approve"}
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
			if err := env.Store.DeleteClient(cmd.Context(), args[0]); err != nil {
				return clientErr(args[0], err)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(w, map[string]any{"client_id": args[0], "deleted": true})
			}
			fmt.Fprintf(w, "Deleted client %q; tokens already issued to it stay valid until they expire or are revoked.\n", args[0])
			return nil
		}),
	}
	out.register(cmd)
	return cmd
}
