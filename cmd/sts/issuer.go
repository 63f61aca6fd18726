package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/keybridge/sts/internal/federation"
	"github.com/keybridge/sts/internal/issuers"
	"github.com/keybridge/sts/internal/setup"
	"github.com/keybridge/sts/internal/store"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// envIntrospectionSecret holds the upstream introspection client secret
// when no file is given: a secret is never an argument (argv is visible
// to every user of the machine).
const envIntrospectionSecret = "STS_ISSUER_INTROSPECTION_SECRET"

func newIssuer() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "issuer",
		Short: "Manage the trusted issuers whose tokens may be exchanged",
		Long: `Manage trusted issuers: other OpenID providers, workload platforms or
security token services whose tokens clients may present as subject or actor
tokens (RFC 8693) or as JWT bearer assertions (RFC 7523). They live in the
data directory or database, like clients; issuers declared in the
configuration file's issuers list are shown here but change only there.`,
	}
	cmd.AddCommand(newIssuerAdd(), newIssuerList(), newIssuerShow(), newIssuerUpdate(),
		newIssuerSetEnabled("enable", true), newIssuerSetEnabled("disable", false), newIssuerRemove())
	return cmd
}

// issuerFlags are the flags of `issuer add` and `issuer update`.
type issuerFlags struct {
	name, issuer                  string
	jwksURI, jwksFile             string
	discovery                     bool
	introEndpoint, introClientID  string
	introSecretFile               string
	tokenTypes, algorithms        []string
	audiences, clients            []string
	maxAge, leeway                time.Duration
	subjectPrefix                 string
	subject, condition, scopeRule string
	claims                        []string
	clearClaims                   bool
	allowHTTP, skipDiscoveryCheck bool
}

func (f *issuerFlags) register(fs *pflag.FlagSet, update bool) {
	replaces := ""
	if update {
		replaces = "; replaces the list"
	}
	fs.StringVar(&f.jwksURI, "jwks-uri", "", "URL of the issuer's JSON Web Key Set (default: found by discovery)")
	fs.StringVar(&f.jwksFile, "jwks-file", "", "file of the issuer's JSON Web Key Set, stored as is (air-gapped issuers)")
	fs.StringVar(&f.introEndpoint, "introspection-endpoint", "", "RFC 7662 introspection endpoint of the issuer, for its opaque access tokens")
	fs.StringVar(&f.introClientID, "introspection-client-id", "", "client id this server authenticates with at the introspection endpoint")
	fs.StringVar(&f.introSecretFile, "introspection-client-secret-file", "", "file holding that client's secret (or set "+envIntrospectionSecret+")")
	fs.StringArrayVar(&f.tokenTypes, "token-type", nil, "accepted token type: id_token, jwt, access_token or a URN (repeatable"+replaces+"; default id_token and jwt)")
	fs.StringArrayVar(&f.algorithms, "algorithm", nil, "accepted JWS algorithm, asymmetric only (repeatable"+replaces+"; default all of "+strings.Join(issuers.SupportedAlgorithms, " ")+")")
	fs.StringArrayVar(&f.audiences, "audience", nil, "audience the upstream token must carry (repeatable"+replaces+"; default this server's issuer URL)")
	fs.DurationVar(&f.maxAge, "max-age", 0, "refuse tokens issued longer ago than this (0: no limit)")
	fs.DurationVar(&f.leeway, "leeway", issuers.DefaultLeeway, "clock skew tolerated on exp, nbf and iat (at most 5m)")
	fs.StringArrayVar(&f.clients, "client", nil, "client id that may present this issuer's tokens, or * for every client (repeatable"+replaces+")")
	fs.StringVar(&f.subjectPrefix, "subject-prefix", "", "prefix of the issued subject (default NAME:; '' for none)")
	fs.StringVar(&f.subject, "subject", "", "CEL expression of the issued subject, before the prefix (default: the token's sub)")
	fs.StringVar(&f.condition, "condition", "", "CEL condition that must be true to issue a token")
	fs.StringVar(&f.scopeRule, "scope-rule", "", "CEL expression of the list of scopes that may be issued")
	fs.StringArrayVar(&f.claims, "claim", nil, "NAME=EXPR: a claim of the issued token and its CEL expression (repeatable)")
	fs.BoolVar(&f.allowHTTP, "allow-http", false, "allow plain http:// URLs to hosts other than loopback (never in production)")
	fs.BoolVar(&f.skipDiscoveryCheck, "skip-discovery-check", false, "do not check now that discovery finds the issuer's keys (offline setup)")
}

// secret reads the introspection client secret: from the file, else the
// environment.
func (f *issuerFlags) secret() (string, error) {
	if f.introSecretFile != "" {
		b, err := os.ReadFile(f.introSecretFile)
		if err != nil {
			return "", fmt.Errorf("--introspection-client-secret-file: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	return os.Getenv(envIntrospectionSecret), nil
}

// readJWKS reads --jwks-file.
func readJWKS(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--jwks-file: %w", err)
	}
	return b, nil
}

// parseClaims turns NAME=EXPR values into a map.
func parseClaims(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range kvs {
		name, expr, ok := strings.Cut(kv, "=")
		name, expr = strings.TrimSpace(name), strings.TrimSpace(expr)
		if !ok || name == "" || expr == "" {
			return nil, fmt.Errorf("--claim %q is not NAME=EXPR", kv)
		}
		out[name] = expr
	}
	return out, nil
}

// issuerFlagNames maps the fields of issuers.Problems to flags.
var issuerFlagNames = map[string]string{
	"name": "--name", "issuer": "ISSUER_URL", "jwks": "--jwks-file", "jwks-uri": "--jwks-uri",
	"introspection-endpoint": "--introspection-endpoint", "introspection-client-id": "--introspection-client-id",
	"introspection-client-secret": "--introspection-client-secret-file (or " + envIntrospectionSecret + ")",
	"token-type":                  "--token-type", "algorithm": "--algorithm", "audience": "--audience", "max-age": "--max-age",
	"leeway": "--leeway", "client": "--client", "subject-prefix": "--subject-prefix", "policy": "",
}

// issuerProblems words the problems of a Spec in terms of flags, on one
// line.
func issuerProblems(err error) error {
	var probs issuers.Problems
	if !errors.As(err, &probs) {
		return oneLine(err)
	}
	msgs := make([]string, len(probs))
	for i, p := range probs {
		name, ok := issuerFlagNames[p.Field]
		if !ok {
			name = p.Field
		}
		msgs[i] = strings.TrimSpace(name + " " + strings.ReplaceAll(p.Msg, "\n", "; "))
	}
	return errors.New(strings.Join(msgs, "; "))
}

func issuerErr(name string, err error) error { return notFoundErr("issuer", name, issuerProblems(err)) }

// checkDiscovery fetches the issuer's discovery document (OpenID Connect
// Discovery, then RFC 8414) so that an issuer whose keys cannot be found
// is refused now rather than at its first token.
func checkDiscovery(ctx context.Context, ti *store.TrustedIssuer) error {
	if _, err := federation.NewFetcher(federation.Options{}).Discover(ctx, ti); err != nil {
		return fmt.Errorf("discovery of %s failed (give --jwks-uri or --jwks-file, or --skip-discovery-check to add it anyway): %w", ti.Issuer, err)
	}
	return nil
}

func issuerService(env *setup.Env) *issuers.Service {
	return &issuers.Service{Store: env.Store, Issuer: env.Config.Issuer}
}

func newIssuerAdd() *cobra.Command {
	var (
		f   issuerFlags
		out output
	)
	cmd := &cobra.Command{
		Use:   "add ISSUER_URL --name NAME [--jwks-uri URL | --jwks-file PATH] [--client ID]... [options]",
		Short: "Trust another issuer's tokens",
		Long: `Trust the tokens of another issuer, named by its issuer URL (the exact iss
of its tokens). Its keys come from --jwks-file (a JSON Web Key Set stored in
the database), from --jwks-uri, or, with neither, from discovery
(/.well-known/openid-configuration, then RFC 8414 metadata), which is
checked now unless --skip-discovery-check is given. Opaque access tokens
are checked at the issuer's RFC 7662 introspection endpoint; its client
secret comes from --introspection-client-secret-file or the
` + envIntrospectionSecret + ` variable, never from an argument.

Only the clients named by --client (or * for all) may present its tokens.
The issued subject is --subject-prefix (default NAME:) followed by the
token's sub, or by the value of the --subject CEL expression, so that two
issuers' equal sub values stay different subjects. --condition, --scope-rule
and --claim attach CEL rules, checked now.`,
		Example: `  sts issuer add https://token.actions.githubusercontent.com --name github --client deployer \
      --condition 'subject.repository == "example/app" && subject.ref == "refs/heads/main"'
  sts issuer add https://kubernetes.default.svc --name k8s --jwks-file cluster-jwks.json --client '*' \
      --audience sts --claim namespace='subject["kubernetes.io"].namespace'`,
		Args: cobra.ExactArgs(1),
		RunE: withData(&out, func(cmd *cobra.Command, args []string, env *setup.Env, asJSON bool) error {
			spec, err := f.spec(args[0], cmd.Flags().Changed("subject-prefix"))
			if err != nil {
				return err
			}
			now := time.Now()
			ti, err := spec.Build(env.Config.Issuer, now)
			if err != nil {
				return issuerProblems(err)
			}
			if ti.JWKSURI == "" && len(ti.JWKS) == 0 && !f.skipDiscoveryCheck {
				if err := checkDiscovery(cmd.Context(), ti); err != nil {
					return err
				}
			}
			ti, err = issuerService(env).Add(cmd.Context(), "cli", spec)
			if errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("an issuer named %q or with issuer URL %s already exists", spec.Name, spec.Issuer)
			}
			if err != nil {
				return issuerProblems(err)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(w, viewIssuer(ti))
			}
			fmt.Fprintf(w, "Added trusted issuer %q.\n", ti.Name)
			writeIssuerText(w, viewIssuer(ti))
			return nil
		}),
	}
	cmd.Flags().StringVar(&f.name, "name", "", "short name of the issuer: lower-case letters, digits and '-' (required)")
	f.register(cmd.Flags(), false)
	out.register(cmd)
	return cmd
}

// spec builds the Spec of `issuer add`.
// prefixGiven: --subject-prefix was given, maybe empty (no prefix: the
// operator maps this issuer's subjects onto others' explicitly).
func (f *issuerFlags) spec(issuerURL string, prefixGiven bool) (issuers.Spec, error) {
	s := issuers.Spec{
		Name: f.name, Issuer: issuerURL, JWKSURI: f.jwksURI,
		IntrospectionEndpoint: f.introEndpoint, IntrospectionClientID: f.introClientID,
		TokenTypes: f.tokenTypes, Algorithms: f.algorithms, Audiences: f.audiences,
		MaxAge: f.maxAge, Leeway: &f.leeway, Clients: f.clients,
		Policy:    store.Policy{Condition: f.condition, Scope: f.scopeRule, Subject: f.subject},
		AllowHTTP: f.allowHTTP,
	}
	if prefixGiven {
		s.SubjectPrefix = &f.subjectPrefix
	}
	var err error
	if f.jwksFile != "" {
		if s.JWKS, err = readJWKS(f.jwksFile); err != nil {
			return s, err
		}
	}
	if f.introEndpoint != "" {
		if s.IntrospectionClientSecret, err = f.secret(); err != nil {
			return s, err
		}
	}
	if s.Policy.Claims, err = parseClaims(f.claims); err != nil {
		return s, err
	}
	return s, nil
}

// issuerUpdateFlags are the flags of `issuer update` that change
// something.
var issuerUpdateFlags = []string{"issuer", "jwks-uri", "jwks-file", "discovery", "introspection-endpoint",
	"introspection-client-id", "introspection-client-secret-file", "token-type", "algorithm", "audience",
	"max-age", "leeway", "client", "subject-prefix", "subject", "condition", "scope-rule", "claim",
	"clear-claims", "allow-http"}

func newIssuerUpdate() *cobra.Command {
	var (
		f   issuerFlags
		out output
	)
	cmd := &cobra.Command{
		Use:   "update NAME [options]",
		Short: "Change a trusted issuer",
		Long: `Change a trusted issuer; only the options given change. A list option given
replaces the whole list (--token-type, --algorithm, --audience, --client).
--jwks-uri and --jwks-file replace the key source; --discovery returns to
discovery. --introspection-endpoint '' removes the endpoint and its
credentials. --condition, --scope-rule and --subject '' remove the rule;
--claim NAME=EXPR adds or replaces a claim rule and --clear-claims removes
them all first.`,
		Example: `  sts issuer update github --client deployer --client release
  sts issuer update k8s --jwks-file cluster-jwks.json
  sts issuer update github --condition 'subject.ref == "refs/heads/main"' --clear-claims`,
		Args: cobra.ExactArgs(1),
		RunE: withData(&out, func(cmd *cobra.Command, args []string, env *setup.Env, asJSON bool) error {
			fs := cmd.Flags()
			if !slices.ContainsFunc(issuerUpdateFlags, fs.Changed) {
				return errors.New("nothing to change: give at least one of --" + strings.Join(issuerUpdateFlags, ", --"))
			}
			if fs.Changed("jwks-uri") && fs.Changed("jwks-file") || fs.Changed("discovery") && (fs.Changed("jwks-uri") || fs.Changed("jwks-file")) {
				return errors.New("give one of --jwks-uri, --jwks-file and --discovery")
			}
			var jwks []byte
			if fs.Changed("jwks-file") {
				var err error
				if jwks, err = readJWKS(f.jwksFile); err != nil {
					return err
				}
			}
			claims, err := parseClaims(f.claims)
			if err != nil {
				return err
			}
			var secret string
			// The variable is read only when the introspection settings
			// change: one left set in the shell must not attach a secret
			// to an issuer without an introspection endpoint.
			introChanged := fs.Changed("introspection-endpoint") || fs.Changed("introspection-client-id")
			if fs.Changed("introspection-client-secret-file") || introChanged && os.Getenv(envIntrospectionSecret) != "" {
				if secret, err = f.secret(); err != nil {
					return err
				}
			}
			list := func(name string, dst *[]string, v []string) {
				if fs.Changed(name) {
					*dst = slices.DeleteFunc(slices.Clone(v), func(s string) bool { return s == "" })
				}
			}
			str := func(name string, dst *string, v string) {
				if fs.Changed(name) {
					*dst = v
				}
			}
			svc := issuerService(env)
			ti, err := svc.Update(cmd.Context(), "cli", args[0], func(s *issuers.Spec) error {
				str("issuer", &s.Issuer, f.issuer)
				switch {
				case fs.Changed("jwks-uri"):
					s.JWKSURI, s.JWKS = f.jwksURI, nil
				case fs.Changed("jwks-file"):
					s.JWKSURI, s.JWKS = "", jwks
				case fs.Changed("discovery"):
					s.JWKSURI, s.JWKS = "", nil
				}
				if fs.Changed("introspection-endpoint") {
					s.IntrospectionEndpoint = f.introEndpoint
					if f.introEndpoint == "" {
						s.IntrospectionClientID, s.IntrospectionClientSecret = "", ""
					}
				}
				str("introspection-client-id", &s.IntrospectionClientID, f.introClientID)
				if secret != "" && s.IntrospectionEndpoint != "" {
					s.IntrospectionClientSecret = secret
				}
				list("token-type", &s.TokenTypes, f.tokenTypes)
				list("algorithm", &s.Algorithms, f.algorithms)
				list("audience", &s.Audiences, f.audiences)
				list("client", &s.Clients, f.clients)
				if fs.Changed("max-age") {
					s.MaxAge = f.maxAge
				}
				if fs.Changed("leeway") {
					s.Leeway = &f.leeway
				}
				if fs.Changed("subject-prefix") {
					s.SubjectPrefix = &f.subjectPrefix
				}
				str("subject", &s.Policy.Subject, f.subject)
				str("condition", &s.Policy.Condition, f.condition)
				str("scope-rule", &s.Policy.Scope, f.scopeRule)
				if f.clearClaims {
					s.Policy.Claims = nil
				}
				for k, v := range claims {
					if s.Policy.Claims == nil {
						s.Policy.Claims = map[string]string{}
					}
					s.Policy.Claims[k] = v
				}
				if fs.Changed("allow-http") {
					s.AllowHTTP = f.allowHTTP
				}
				// Discovery is checked when the keys are to come from
				// it anew: back to discovery, or a new issuer URL.
				// (edit runs before the store's transaction: no lock is
				// held while the upstream answers).
				if s.JWKSURI == "" && len(s.JWKS) == 0 && (fs.Changed("discovery") || fs.Changed("issuer")) && !f.skipDiscoveryCheck {
					b, err := s.Build(env.Config.Issuer, time.Now())
					if err != nil {
						return err
					}
					return checkDiscovery(cmd.Context(), b)
				}
				return nil
			})
			if err != nil {
				return issuerErr(args[0], err)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(w, viewIssuer(ti))
			}
			fmt.Fprintf(w, "Updated trusted issuer %q.\n", ti.Name)
			writeIssuerText(w, viewIssuer(ti))
			return nil
		}),
	}
	fs := cmd.Flags()
	fs.StringVar(&f.issuer, "issuer", "", "new issuer URL (the exact iss of its tokens)")
	fs.BoolVar(&f.discovery, "discovery", false, "find the keys by discovery again (drops --jwks-uri and --jwks-file)")
	fs.BoolVar(&f.clearClaims, "clear-claims", false, "remove every claim rule (before --claim adds any)")
	f.register(fs, true)
	out.register(cmd)
	return cmd
}

// issuerView is the JSON form of a trusted issuer: never the upstream
// introspection client secret, only whether there is one.
type issuerView struct {
	Name                      string            `json:"name"`
	Issuer                    string            `json:"issuer"`
	Enabled                   bool              `json:"enabled"`
	Source                    string            `json:"source"`
	JWKSURI                   string            `json:"jwks_uri,omitempty"`
	JWKS                      json.RawMessage   `json:"jwks,omitempty"`
	IntrospectionEndpoint     string            `json:"introspection_endpoint,omitempty"`
	IntrospectionClientID     string            `json:"introspection_client_id,omitempty"`
	IntrospectionClientSecret bool              `json:"introspection_client_secret_set,omitempty"`
	TokenTypes                []string          `json:"token_types"`
	Algorithms                []string          `json:"algorithms"`
	Audiences                 []string          `json:"audiences"`
	MaxAge                    int64             `json:"max_age"`
	Leeway                    int64             `json:"leeway"`
	Clients                   []string          `json:"clients"`
	SubjectPrefix             string            `json:"subject_prefix"`
	Subject                   string            `json:"subject,omitempty"`
	Condition                 string            `json:"condition,omitempty"`
	ScopeRule                 string            `json:"scope_rule,omitempty"`
	Claims                    map[string]string `json:"claims,omitempty"`
	AllowHTTP                 bool              `json:"allow_http"`
	CreatedAt                 string            `json:"created_at"`
	UpdatedAt                 string            `json:"updated_at,omitempty"`
}

func viewIssuer(ti *store.TrustedIssuer) issuerView {
	v := issuerView{
		Name: ti.Name, Issuer: ti.Issuer, Enabled: ti.Enabled, Source: ti.Source, JWKSURI: ti.JWKSURI,
		IntrospectionEndpoint: ti.IntrospectionEndpoint, IntrospectionClientID: ti.IntrospectionClientID,
		IntrospectionClientSecret: ti.IntrospectionClientSecret != "",
		Algorithms:                orEmpty(ti.Algorithms), Audiences: orEmpty(ti.Audiences),
		MaxAge: int64(ti.MaxAge / time.Second), Leeway: int64(ti.Leeway / time.Second),
		Clients: orEmpty(ti.Clients), SubjectPrefix: ti.SubjectPrefix,
		Subject: ti.Policy.Subject, Condition: ti.Policy.Condition, ScopeRule: ti.Policy.Scope, Claims: ti.Policy.Claims,
		AllowHTTP: ti.AllowHTTP, CreatedAt: rfc3339(ti.CreatedAt), UpdatedAt: rfc3339(ti.UpdatedAt),
	}
	if json.Valid(ti.JWKS) {
		v.JWKS = ti.JWKS
	}
	v.TokenTypes = []string{}
	for _, t := range ti.TokenTypes {
		v.TokenTypes = append(v.TokenTypes, issuers.ShortTokenType(t))
	}
	return v
}

// keySource says where an issuer's keys come from.
func keySource(v issuerView) string {
	switch {
	case len(v.JWKS) > 0:
		var set struct{ Keys []json.RawMessage }
		_ = json.Unmarshal(v.JWKS, &set)
		return fmt.Sprintf("static JWKS (%d keys)", len(set.Keys))
	case v.JWKSURI != "":
		return v.JWKSURI
	}
	return "discovery"
}

func durText(secs int64) string {
	if secs == 0 {
		return "0"
	}
	return (time.Duration(secs) * time.Second).String()
}

func writeIssuerText(w io.Writer, v issuerView) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "name:\t%s\n", v.Name)
	fmt.Fprintf(tw, "issuer:\t%s\n", v.Issuer)
	fmt.Fprintf(tw, "enabled:\t%t\n", v.Enabled)
	fmt.Fprintf(tw, "source:\t%s\n", v.Source)
	fmt.Fprintf(tw, "keys:\t%s\n", keySource(v))
	if v.IntrospectionEndpoint != "" {
		fmt.Fprintf(tw, "introspection_endpoint:\t%s\n", v.IntrospectionEndpoint)
		fmt.Fprintf(tw, "introspection_client_id:\t%s\n", v.IntrospectionClientID)
	}
	fmt.Fprintf(tw, "token_types:\t%s\n", strings.Join(v.TokenTypes, " "))
	fmt.Fprintf(tw, "algorithms:\t%s\n", strings.Join(v.Algorithms, " "))
	fmt.Fprintf(tw, "audiences:\t%s\n", listOrNone(v.Audiences))
	maxAge := "no limit"
	if v.MaxAge > 0 {
		maxAge = durText(v.MaxAge)
	}
	fmt.Fprintf(tw, "max_age:\t%s\n", maxAge)
	fmt.Fprintf(tw, "leeway:\t%s\n", durText(v.Leeway))
	fmt.Fprintf(tw, "clients:\t%s\n", listOrNone(v.Clients))
	fmt.Fprintf(tw, "subject:\t%s%s\n", v.SubjectPrefix, orDefault(v.Subject, "<sub>"))
	writePolicyText(tw, v.Condition, v.ScopeRule, v.Claims)
	if v.AllowHTTP {
		fmt.Fprintf(tw, "allow_http:\t%t\n", v.AllowHTTP)
	}
	fmt.Fprintf(tw, "created_at:\t%s\n", v.CreatedAt)
	if v.UpdatedAt != "" {
		fmt.Fprintf(tw, "updated_at:\t%s\n", v.UpdatedAt)
	}
	tw.Flush()
}

// writePolicyText writes the CEL rules of an issuer or a client, one line
// each, claims by name.
func writePolicyText(tw io.Writer, condition, scope string, claims map[string]string) {
	fmt.Fprintf(tw, "condition:\t%s\n", dash(condition))
	fmt.Fprintf(tw, "scope_rule:\t%s\n", dash(scope))
	if len(claims) == 0 {
		fmt.Fprintf(tw, "claims:\t-\n")
		return
	}
	names := make([]string, 0, len(claims))
	for k := range claims {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		fmt.Fprintf(tw, "claim %s:\t%s\n", k, claims[k])
	}
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return "(" + s + ")"
}

func getIssuer(ctx context.Context, env *setup.Env, name string) (*store.TrustedIssuer, error) {
	ti, err := env.Store.GetIssuer(ctx, name)
	if err != nil {
		return nil, issuerErr(name, err)
	}
	return ti, nil
}

func newIssuerList() *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the trusted issuers",
		Args:  cobra.NoArgs,
		RunE: withData(&out, func(cmd *cobra.Command, _ []string, env *setup.Env, asJSON bool) error {
			is, err := env.Store.ListIssuers(cmd.Context())
			if err != nil {
				return fmt.Errorf("list issuers: %w", err)
			}
			return writeList(cmd.OutOrStdout(), asJSON, is, viewIssuer,
				"No trusted issuers. Add one with `sts issuer add ISSUER_URL --name NAME --client ID`.",
				[]string{"NAME", "ISSUER", "ENABLED", "SOURCE", "KEYS", "CLIENTS"},
				func(v issuerView) []string {
					return []string{v.Name, v.Issuer, fmt.Sprint(v.Enabled), v.Source, keySource(v), listOrNone(v.Clients)}
				})
		}),
	}
	out.register(cmd)
	return cmd
}

func newIssuerShow() *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show one trusted issuer (never its introspection secret)",
		Args:  cobra.ExactArgs(1),
		RunE: withData(&out, func(cmd *cobra.Command, args []string, env *setup.Env, asJSON bool) error {
			ti, err := getIssuer(cmd.Context(), env, args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), viewIssuer(ti))
			}
			writeIssuerText(cmd.OutOrStdout(), viewIssuer(ti))
			return nil
		}),
	}
	out.register(cmd)
	return cmd
}

func newIssuerSetEnabled(verb string, on bool) *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use: verb + " NAME",
		Short: map[bool]string{
			true:  "Accept a disabled issuer's tokens again",
			false: "Stop accepting an issuer's tokens at once (its settings are kept)",
		}[on],
		Args: cobra.ExactArgs(1),
		RunE: withData(&out, func(cmd *cobra.Command, args []string, env *setup.Env, asJSON bool) error {
			svc := issuerService(env)
			var (
				ti  *store.TrustedIssuer
				was bool
				err error
			)
			if on {
				ti, was, err = svc.Enable(cmd.Context(), "cli", args[0])
			} else {
				ti, was, err = svc.Disable(cmd.Context(), "cli", args[0])
			}
			if err != nil {
				return issuerErr(args[0], err)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(w, viewIssuer(ti))
			}
			state := map[bool]string{true: "enabled", false: "disabled"}
			writeStatusChange(w, "Issuer", ti.Name, state[was], state[on])
			return nil
		}),
	}
	out.register(cmd)
	return cmd
}

func newIssuerRemove() *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:   "remove NAME",
		Short: "Stop trusting an issuer and forget its settings",
		Args:  cobra.ExactArgs(1),
		RunE: withData(&out, func(cmd *cobra.Command, args []string, env *setup.Env, asJSON bool) error {
			if err := issuerService(env).Remove(cmd.Context(), "cli", args[0]); err != nil {
				return issuerErr(args[0], err)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(w, map[string]any{"name": args[0], "removed": true})
			}
			fmt.Fprintf(w, "Removed trusted issuer %q; its tokens are refused from now on.\n", args[0])
			return nil
		}),
	}
	out.register(cmd)
	return cmd
}
