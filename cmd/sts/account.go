package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/keybridge/sts/internal/account"
	"github.com/keybridge/sts/internal/config"
	"github.com/keybridge/sts/internal/setup"
	"github.com/keybridge/sts/internal/store"
	"github.com/spf13/cobra"
)

func newAccount() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "account",
		Short: "Manage the accounts that own clients and register them with initial access tokens",
		Long: `Manage accounts. Clients belong to accounts: an individual account, whose
initial access tokens (IATs) are signed with its shared secret (HS256), or an
organization, whose IATs are signed with the private key of one of its X.509
certificates (ES256 or RS256) - a certificate this server issued (the server
keeps the key and can sign IATs for it) or one the organization uploaded (it
signs its own). An IAT registers one client at POST /register (RFC 7591).

Only active accounts may register clients; a suspended account can be
activated again, a closed one cannot.`,
	}
	cmd.AddCommand(newAccountCreate(), newAccountList(), newAccountShow(),
		newAccountSetStatus("suspend", store.AccountSuspended), newAccountSetStatus("activate", store.AccountActive),
		newAccountSetStatus("close", store.AccountClosed), newAccountRotateSecret(), newAccountIssueIAT(), newAccountCert())
	return cmd
}

// accountView is the JSON form of an account: never its sealed secret.
type accountView struct {
	AccountID string   `json:"account_id"`
	Kind      string   `json:"kind"`
	Name      string   `json:"name"`
	Status    string   `json:"status"`
	Audiences []string `json:"audiences"`
	Scopes    []string `json:"scopes"`
	CreatedAt string   `json:"created_at"`
	UpdatedAt string   `json:"updated_at,omitempty"`
	// SharedSecret is an individual account's secret, only when created.
	SharedSecret string `json:"shared_secret,omitempty"`
}

func viewAccount(a *store.Account) accountView {
	return accountView{
		AccountID: a.ID, Kind: string(a.Kind), Name: a.Name, Status: string(a.Status),
		Audiences: orEmpty(a.Audiences), Scopes: orEmpty(a.Scopes),
		CreatedAt: rfc3339(a.CreatedAt), UpdatedAt: rfc3339(a.UpdatedAt),
	}
}

// accountDetail is `account show`: the account, its certificates and its
// clients.
type accountDetail struct {
	accountView
	Certificates []certView   `json:"certificates"`
	Clients      []clientView `json:"clients"`
}

// certView is the JSON form of a certificate: never its private key.
type certView struct {
	CertificateID  string `json:"certificate_id"`
	AccountID      string `json:"account_id"`
	Subject        string `json:"subject"`
	Algorithm      string `json:"alg"`
	NotBefore      string `json:"not_before"`
	NotAfter       string `json:"not_after"`
	IssuedByServer bool   `json:"issued_by_server"`
	CreatedAt      string `json:"created_at"`
	PEM            string `json:"pem"`
}

func viewCert(c *store.Certificate) certView {
	v := certView{
		CertificateID: c.ID, AccountID: c.AccountID, NotBefore: rfc3339(c.NotBefore), NotAfter: rfc3339(c.NotAfter),
		IssuedByServer: c.PrivateKey != nil, CreatedAt: rfc3339(c.CreatedAt), PEM: string(account.PEM(c)),
	}
	if x, err := x509.ParseCertificate(c.DER); err == nil {
		v.Subject = x.Subject.String()
		switch x.PublicKey.(type) {
		case *ecdsa.PublicKey:
			v.Algorithm = "ES256"
		case *rsa.PublicKey:
			v.Algorithm = "RS256"
		}
	}
	return v
}

// accountErr turns ErrNotFound into the one line an operator needs.
func accountErr(id string, err error) error { return notFoundErr("account", id, err) }

// auditAccount records an operator's change to an account (never a
// secret or token).
func auditAccount(ctx context.Context, env *setup.Env, action, accountID, jti, detail string) error {
	err := env.Store.AppendAudit(ctx, []store.AuditRecord{{
		Time: time.Now(), Action: action, Decision: store.DecisionGranted,
		AccountID: accountID, Subject: "cli", JTI: jti, Detail: detail,
	}})
	if err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	return nil
}

func newAccountCreate() *cobra.Command {
	var (
		name              string
		audiences, scopes []string
		out               output
	)
	cmd := &cobra.Command{
		Use:   "create individual|organization --name NAME [--audience A]... [--scope S]...",
		Short: "Create an account (an individual's shared secret is shown once)",
		Long: `Create an active account. An individual account gets a shared secret (256
bits), printed once: it is the HMAC key (its characters as they are) with
which the account holder signs HS256 initial access tokens, and it signs the
holder in to the portal. An organization gets no secret: give it a
certificate with "sts account cert issue" or "sts account cert upload".

--audience and --scope bound what the account's clients may be registered
for; without them, only the server's own rules apply.`,
		Example: `  sts account create individual --name "Alice Example"
  sts account create organization --name "Example Radio Co" --audience https://sas.example.com --scope spectrum -o json`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"individual", "organization"},
		RunE: withData(&out, func(cmd *cobra.Command, args []string, env *setup.Env, asJSON bool) error {
			kind, err := account.ParseKind(args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			a, secret, err := env.Accounts().Create(ctx, kind, name, audiences, scopes)
			if err != nil {
				return fmt.Errorf("create account: %w", err)
			}
			if err := auditAccount(ctx, env, account.ActionCreate, a.ID, "", string(a.Kind)+" "+a.Name); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				v := viewAccount(a)
				v.SharedSecret = secret
				return writeJSON(w, v)
			}
			fmt.Fprintf(w, "Created %s account %q.\n", a.Kind, a.Name)
			fmt.Fprintf(w, "  account_id:    %s\n", a.ID)
			if secret != "" {
				fmt.Fprintf(w, "  shared_secret: %s\n", secret)
				fmt.Fprintln(w, "The shared secret is shown only this once; store it now. It signs the account's")
				fmt.Fprintln(w, "initial access tokens (HS256), or let the server issue one: sts account issue-iat "+a.ID)
			} else {
				fmt.Fprintln(w, "Next: give it a certificate: sts account cert issue "+a.ID+" (or cert upload --file cert.pem)")
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "name of the person or organization (required)")
	f.StringArrayVar(&audiences, "audience", nil, "audience or resource the account's clients may be registered for (repeatable; default: any)")
	f.StringArrayVar(&scopes, "scope", nil, "scope the account's clients may be registered for (repeatable; default: any)")
	out.register(cmd)
	return cmd
}

func newAccountList() *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the accounts",
		Args:  cobra.NoArgs,
		RunE: withData(&out, func(cmd *cobra.Command, _ []string, env *setup.Env, asJSON bool) error {
			as, err := env.Store.ListAccounts(cmd.Context())
			if err != nil {
				return fmt.Errorf("list accounts: %w", err)
			}
			return writeList(cmd.OutOrStdout(), asJSON, as, viewAccount,
				"No accounts. Create one with `sts account create individual|organization --name NAME`.",
				[]string{"ACCOUNT ID", "KIND", "NAME", "STATUS", "CREATED"},
				func(v accountView) []string { return []string{v.AccountID, v.Kind, v.Name, v.Status, v.CreatedAt} })
		}),
	}
	out.register(cmd)
	return cmd
}

func newAccountShow() *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:   "show ACCOUNT_ID",
		Short: "Show an account with its certificates and clients",
		Args:  cobra.ExactArgs(1),
		RunE: withData(&out, func(cmd *cobra.Command, args []string, env *setup.Env, asJSON bool) error {
			ctx := cmd.Context()
			a, err := env.Store.GetAccount(ctx, args[0])
			if err != nil {
				return accountErr(args[0], err)
			}
			certs, err := env.Store.ListCertificates(ctx, a.ID)
			if err != nil {
				return err
			}
			cs, err := env.Store.ListAccountClients(ctx, a.ID)
			if err != nil {
				return err
			}
			d := accountDetail{accountView: viewAccount(a), Certificates: []certView{}, Clients: []clientView{}}
			for _, c := range certs {
				d.Certificates = append(d.Certificates, viewCert(c))
			}
			now := time.Now()
			for _, c := range cs {
				d.Clients = append(d.Clients, viewClient(c, now))
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(w, d)
			}
			writeAccountText(w, d)
			return nil
		}),
	}
	out.register(cmd)
	return cmd
}

func writeAccountText(w io.Writer, d accountDetail) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "account_id:\t%s\n", d.AccountID)
	fmt.Fprintf(tw, "kind:\t%s\n", d.Kind)
	fmt.Fprintf(tw, "name:\t%s\n", d.Name)
	fmt.Fprintf(tw, "status:\t%s\n", d.Status)
	fmt.Fprintf(tw, "audiences:\t%s\n", boundText(d.Audiences))
	fmt.Fprintf(tw, "scopes:\t%s\n", boundText(d.Scopes))
	fmt.Fprintf(tw, "created_at:\t%s\n", d.CreatedAt)
	if d.Kind == string(store.AccountOrganization) {
		fmt.Fprintf(tw, "certificates:\t%d\n", len(d.Certificates))
		for _, c := range d.Certificates {
			fmt.Fprintf(tw, "  %s\t%s, valid %s to %s, %s\n", c.CertificateID, c.Algorithm, c.NotBefore, c.NotAfter, certOrigin(c))
		}
	}
	fmt.Fprintf(tw, "clients:\t%d\n", len(d.Clients))
	for _, c := range d.Clients {
		fmt.Fprintf(tw, "  %s\t%s (%s)\n", c.ClientID, c.Name, c.Status)
	}
	tw.Flush()
}

func boundText(s []string) string {
	if len(s) == 0 {
		return "(any)"
	}
	return strings.Join(s, " ")
}

func certOrigin(c certView) string {
	if c.IssuedByServer {
		return "issued by this server"
	}
	return "uploaded"
}

func newAccountSetStatus(verb string, status store.AccountStatus) *cobra.Command {
	var out output
	short := map[string]string{
		"suspend":  "Suspend an account: its IATs are refused until it is activated again",
		"activate": "Activate a suspended account",
		"close":    "Close an account for good: its IATs are refused and it cannot be reopened",
	}[verb]
	cmd := &cobra.Command{
		Use:   verb + " ACCOUNT_ID",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: withData(&out, func(cmd *cobra.Command, args []string, env *setup.Env, asJSON bool) error {
			ctx := cmd.Context()
			before, err := env.Store.GetAccount(ctx, args[0])
			if err != nil {
				return accountErr(args[0], err)
			}
			a, err := env.Accounts().SetStatus(ctx, args[0], status)
			if err != nil {
				return accountErr(args[0], err)
			}
			if err := auditAccount(ctx, env, account.StatusAction(status), a.ID, "", string(before.Status)+" → "+string(a.Status)); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(w, viewAccount(a))
			}
			if writeStatusChange(w, "Account", a.ID, before.Status, status) && status != store.AccountActive {
				fmt.Fprintln(w, "Its initial access tokens are refused; its clients keep working (disable them with `sts client disable`).")
			}
			return nil
		}),
	}
	out.register(cmd)
	return cmd
}

func newAccountRotateSecret() *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:   "rotate-secret ACCOUNT_ID",
		Short: "Replace an individual account's shared secret (the new one is shown once)",
		Long: `Replace the shared secret of an individual account, for a holder who lost it
or may have leaked it. The new secret is printed once. The old one stops
working at once: initial access tokens signed with it are refused and the
holder's portal sessions end. Clients already registered keep working.`,
		Args: cobra.ExactArgs(1),
		RunE: withData(&out, func(cmd *cobra.Command, args []string, env *setup.Env, asJSON bool) error {
			ctx := cmd.Context()
			a, secret, err := env.Accounts().RotateSecret(ctx, args[0])
			if err != nil {
				return accountErr(args[0], err)
			}
			if err := auditAccount(ctx, env, account.ActionRotateSecret, a.ID, "", "new shared secret; the previous one is refused"); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				v := viewAccount(a)
				v.SharedSecret = secret
				return writeJSON(w, v)
			}
			fmt.Fprintf(w, "New shared secret of account %s:\n  shared_secret: %s\n", a.ID, secret)
			fmt.Fprintln(w, "It is shown only this once; store it now. The previous secret, and IATs signed with it, are refused.")
			return nil
		}),
	}
	out.register(cmd)
	return cmd
}

// iatView is the JSON output of issue-iat.
type iatView struct {
	IAT       string `json:"iat"`
	AccountID string `json:"account_id"`
	JTI       string `json:"jti"`
	ExpiresAt string `json:"expires_at"`
	Audience  string `json:"aud"`
}

func newAccountIssueIAT() *cobra.Command {
	var (
		out       output
		expiresIn time.Duration
		claims    []string
	)
	cmd := &cobra.Command{
		Use:   "issue-iat ACCOUNT_ID [--expires-in DURATION] [--claim NAME=VALUE]...",
		Short: "Issue an initial access token that registers one client",
		Long: `Issue an initial access token (IAT) for an active account: a JWT signed with
an individual account's shared secret (HS256), or with the key of a valid
certificate this server issued to an organization (an organization with only
uploaded certificates signs its own IATs). Its audience is the issuer
(--issuer, STS_ISSUER or the configuration file: it must match the server's),
it lives --expires-in (at most --iat-max-lifetime, 1h by default) and
registers one client: send it as "Authorization: Bearer <IAT>" to POST
/register. --claim adds claims that the server requires for some scopes
(--iat-required-claims).

In text mode only the token is printed on stdout, so that
IAT=$(sts account issue-iat ACCOUNT_ID) works.`,
		Example: `  sts account issue-iat acct-abc123 --expires-in 10m
  sts account issue-iat acct-abc123 --claim fcc_id=2AS3K-1 -o json`,
		Args: cobra.ExactArgs(1),
		RunE: withData(&out, func(cmd *cobra.Command, args []string, env *setup.Env, asJSON bool) error {
			svc := env.Accounts()
			maxLife := svc.MaxIATLifetime
			if maxLife <= 0 {
				maxLife = account.DefaultMaxIATLifetime
			}
			if expiresIn < 0 || expiresIn > maxLife {
				return fmt.Errorf("--expires-in must be between 0 (the maximum) and %v", maxLife)
			}
			extra := map[string]any{}
			for _, c := range claims {
				k, v, ok := strings.Cut(c, "=")
				if !ok || k == "" {
					return fmt.Errorf("--claim %q is not NAME=VALUE", c)
				}
				switch k {
				case "iss", "aud", "exp", "iat", "nbf", "jti", "sub":
					return fmt.Errorf("--claim %s: the server sets this claim", k)
				}
				extra[k] = v
			}
			ctx := cmd.Context()
			tok, err := svc.IssueIAT(ctx, args[0], expiresIn, extra)
			if errors.Is(err, account.ErrInactive) {
				return fmt.Errorf("account %q is not active", args[0])
			}
			if err != nil {
				return accountErr(args[0], err)
			}
			var c struct {
				JTI string `json:"jti"`
				Exp int64  `json:"exp"`
				Aud string `json:"aud"`
			}
			if parts := strings.Split(tok, "."); len(parts) == 3 {
				if b, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
					_ = json.Unmarshal(b, &c)
				}
			}
			if err := auditAccount(ctx, env, account.ActionIssueIAT, args[0], c.JTI, "expires "+rfc3339(time.Unix(c.Exp, 0))); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(w, iatView{IAT: tok, AccountID: args[0], JTI: c.JTI, ExpiresAt: rfc3339(time.Unix(c.Exp, 0)), Audience: c.Aud})
			}
			fmt.Fprintln(w, tok)
			fmt.Fprintf(cmd.ErrOrStderr(), "Initial access token for %s (aud %s), valid until %s; it registers one client.\n",
				args[0], c.Aud, rfc3339(time.Unix(c.Exp, 0)))
			return nil
		}),
	}
	cmd.Flags().DurationVar(&expiresIn, "expires-in", 0, "lifetime of the token (0: the maximum, --iat-max-lifetime)")
	cmd.Flags().StringArrayVar(&claims, "claim", nil, "extra claim NAME=VALUE (repeatable), e.g. a claim a scope requires")
	out.register(cmd)
	// The IAT's audience is the issuer; its lifetime is bounded by the server's.
	config.RegisterOnly(cmd.Flags(), config.FlagIssuer, config.FlagIATMaxLifetime)
	cmd.Flags().Lookup(config.FlagIssuer).Usage = "issuer URL, the IAT's audience (default: the issuer `sts serve` recorded in this data)"
	return cmd
}

func newAccountCert() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cert",
		Short: "Manage an organization's certificates (the keys of its initial access tokens)",
	}
	cmd.AddCommand(newCertIssue(), newCertUpload(), newCertList(), newCertDelete())
	return cmd
}

func writeCert(cmd *cobra.Command, asJSON bool, what string, c *store.Certificate) error {
	w := cmd.OutOrStdout()
	v := viewCert(c)
	if asJSON {
		return writeJSON(w, v)
	}
	fmt.Fprintf(w, "%s certificate for account %s.\n", what, c.AccountID)
	fmt.Fprintf(w, "  certificate_id: %s\n", v.CertificateID)
	fmt.Fprintf(w, "  alg:            %s\n", v.Algorithm)
	fmt.Fprintf(w, "  valid:          %s to %s\n", v.NotBefore, v.NotAfter)
	fmt.Fprintln(w, "IATs signed with its key may name it in their x5t#S256 or kid header.")
	fmt.Fprint(w, v.PEM)
	return nil
}

func newCertIssue() *cobra.Command {
	var (
		out      output
		alg      string
		validity time.Duration
	)
	cmd := &cobra.Command{
		Use:   "issue ACCOUNT_ID [--alg ES256|RS256] [--validity DURATION]",
		Short: "Issue a certificate whose key the server keeps, so that it can sign the organization's IATs",
		Args:  cobra.ExactArgs(1),
		RunE: withData(&out, func(cmd *cobra.Command, args []string, env *setup.Env, asJSON bool) error {
			if validity < 0 {
				return errors.New("--validity must not be negative")
			}
			ctx := cmd.Context()
			c, err := env.Accounts().IssueCertificate(ctx, args[0], strings.ToUpper(alg), validity)
			if err != nil {
				return accountErr(args[0], err)
			}
			if err := auditAccount(ctx, env, account.ActionCertIssue, c.AccountID, "", c.ID); err != nil {
				return err
			}
			return writeCert(cmd, asJSON, "Issued", c)
		}),
	}
	cmd.Flags().StringVar(&alg, "alg", "ES256", "key algorithm: ES256 (P-256) or RS256 (RSA 2048)")
	cmd.Flags().DurationVar(&validity, "validity", 365*24*time.Hour, "how long the certificate is valid")
	out.register(cmd)
	return cmd
}

func newCertUpload() *cobra.Command {
	var (
		out  output
		file string
	)
	cmd := &cobra.Command{
		Use:   "upload ACCOUNT_ID --file CERT.pem",
		Short: "Register an organization's own certificate (PEM or DER); it signs its IATs with the matching key",
		Long: `Register a certificate of the organization: PEM or DER, an RSA key of 2048
bits or more (RS256) or an ECDSA P-256 key (ES256), not expired. The
organization signs its initial access tokens with the certificate's private
key, which this server never sees. --file - reads stdin.`,
		Args: cobra.ExactArgs(1),
		RunE: withData(&out, func(cmd *cobra.Command, args []string, env *setup.Env, asJSON bool) error {
			if file == "" {
				return errors.New("--file is required")
			}
			var data []byte
			var err error
			if file == "-" {
				data, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), 1<<20))
			} else {
				data, err = os.ReadFile(file)
			}
			if err != nil {
				return fmt.Errorf("read the certificate: %w", err)
			}
			ctx := cmd.Context()
			c, err := env.Accounts().UploadCertificate(ctx, args[0], data)
			if errors.Is(err, store.ErrConflict) {
				return errors.New("this certificate is already registered")
			}
			if err != nil {
				return accountErr(args[0], err)
			}
			if err := auditAccount(ctx, env, account.ActionCertUpload, c.AccountID, "", c.ID); err != nil {
				return err
			}
			return writeCert(cmd, asJSON, "Uploaded", c)
		}),
	}
	cmd.Flags().StringVar(&file, "file", "", "certificate file, PEM or DER (- for stdin)")
	out.register(cmd)
	return cmd
}

func newCertList() *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:   "list ACCOUNT_ID",
		Short: "List an organization's certificates",
		Args:  cobra.ExactArgs(1),
		RunE: withData(&out, func(cmd *cobra.Command, args []string, env *setup.Env, asJSON bool) error {
			ctx := cmd.Context()
			if _, err := env.Store.GetAccount(ctx, args[0]); err != nil {
				return accountErr(args[0], err)
			}
			certs, err := env.Store.ListCertificates(ctx, args[0])
			if err != nil {
				return err
			}
			return writeList(cmd.OutOrStdout(), asJSON, certs, viewCert,
				"No certificates. Add one with `sts account cert issue "+args[0]+"` or `cert upload`.",
				[]string{"CERTIFICATE ID", "ALG", "NOT AFTER", "ORIGIN"},
				func(v certView) []string { return []string{v.CertificateID, v.Algorithm, v.NotAfter, certOrigin(v)} })
		}),
	}
	out.register(cmd)
	return cmd
}

func newCertDelete() *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:   "delete ACCOUNT_ID CERTIFICATE_ID",
		Short: "Remove a certificate: IATs signed with its key are refused from now on",
		Args:  cobra.ExactArgs(2),
		RunE: withData(&out, func(cmd *cobra.Command, args []string, env *setup.Env, asJSON bool) error {
			ctx := cmd.Context()
			if err := env.Store.DeleteCertificate(ctx, args[0], args[1]); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("account %q has no certificate %q", args[0], args[1])
				}
				return err
			}
			if err := auditAccount(ctx, env, account.ActionCertDelete, args[0], "", args[1]); err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"account_id": args[0], "certificate_id": args[1], "deleted": true})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted certificate %s of account %s.\n", args[1], args[0])
			return nil
		}),
	}
	out.register(cmd)
	return cmd
}
