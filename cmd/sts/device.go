package main

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/keybridge/sts/internal/devices"
	"github.com/keybridge/sts/internal/setup"
	"github.com/keybridge/sts/internal/store"
)

func newDevice() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "device",
		Short: "Manage device trust profiles and domain proxies' delegations",
		Long: `Manage radio devices' identities (issue 14): the device trust profiles say
which device PKIs (the WInnForum CBRS PKI, or any X.509 PKI) this server
trusts and what the devices' tokens may hold; the delegations say which
devices (FCC ID and serial number) a domain proxy may obtain tokens for in
a batch. Profiles declared in the configuration file's device-profiles list
are shown here but change only there.`,
	}
	profile := &cobra.Command{
		Use:   "profile",
		Short: "Manage the device trust profiles",
	}
	profile.AddCommand(newDeviceProfileAdd(), newDeviceProfileUpdate(), newDeviceProfileList(), newDeviceProfileShow(),
		newDeviceProfileRemove(), newDeviceProfileSetEnabled("enable", true), newDeviceProfileSetEnabled("disable", false))
	cmd.AddCommand(profile, newDeviceDelegate(), newDeviceUndelegate(), newDeviceList(), newDeviceImport())
	return cmd
}

func deviceService(env *setup.Env) *devices.Service { return &devices.Service{Store: env.Store} }

// deviceProfileFlags are the flags of `device profile add` and `update`.
type deviceProfileFlags struct {
	kind, anchors, identity, eku, ocsp string
	crls, fccIDs, audiences, scopes    []string
	condition, scopeRule               string
	claims                             []string
	clearClaims                        bool
	tokenTTL                           time.Duration
	maxBatch                           int
}

func (f *deviceProfileFlags) register(fs *pflag.FlagSet, update bool) {
	replaces := ""
	if update {
		replaces = "; replaces the list, '' empties it"
	}
	fs.StringVar(&f.kind, "kind", store.DeviceKindCBRS, "cbrs (WInnForum CBRS roles and identifiers) or x509 (identity from --identity)")
	fs.StringVar(&f.anchors, "anchors", "", "PEM file of the trust anchors (root CA certificates)")
	fs.StringVar(&f.identity, "identity", "", "x509 profiles: CEL expression of the device's identity over cert (e.g. cert.subject.cn)")
	fs.StringVar(&f.eku, "eku", store.EKUClientAuth, "what the leaf's extended key usage must allow: clientAuth, any or none")
	fs.StringArrayVar(&f.crls, "crl", nil, "CRL file (DER or PEM), reread when it changes (repeatable"+replaces+")")
	fs.StringVar(&f.ocsp, "ocsp", "", "OCSP responder URL asked about each leaf")
	fs.StringArrayVar(&f.fccIDs, "fcc-id", nil, "FCC ID allowed (repeatable"+replaces+"; default: any)")
	fs.StringArrayVar(&f.audiences, "audience", nil, "audience the tokens may be issued for; the first is the default (repeatable"+replaces+")")
	fs.StringArrayVar(&f.scopes, "scope", nil, "scope the tokens may carry (repeatable"+replaces+")")
	fs.StringVar(&f.condition, "condition", "", "CEL condition that must be true to issue a token (sees device)")
	fs.StringVar(&f.scopeRule, "scope-rule", "", "CEL expression of the list of scopes that may be issued")
	fs.StringArrayVar(&f.claims, "claim", nil, "NAME=EXPR: a claim of the issued token and its CEL expression (repeatable)")
	fs.DurationVar(&f.tokenTTL, "token-ttl", 0, "cap of the tokens' lifetime, never after the certificate's notAfter (0: the server's default; at most 24h)")
	fs.IntVar(&f.maxBatch, "max-batch", devices.DefaultMaxBatch, fmt.Sprintf("most devices in a domain proxy's batch (1 to %d)", devices.MaxBatch))
}

// readAnchors reads --anchors.
func readAnchors(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--anchors: %w", err)
	}
	return b, nil
}

// absPaths makes the CRL paths absolute: the server reads them from its
// own working directory.
func absPaths(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		if p == "" {
			continue
		}
		a, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("--crl %s: %w", p, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// deviceFlagNames maps the fields of devices.Problems to flags.
var deviceFlagNames = map[string]string{
	"name": "NAME", "kind": "--kind", "anchors": "--anchors", "identity": "--identity", "eku": "--eku",
	"crl": "--crl", "ocsp": "--ocsp", "fcc-id": "--fcc-id", "audience": "--audience", "scope": "--scope",
	"condition": "--condition", "scope-rule": "--scope-rule", "token-ttl": "--token-ttl", "max-batch": "--max-batch",
	"proxy": "--proxy", "serial": "--serial", "account": "--account", "policy": "", "": "",
}

// deviceProblems words the problems of a Spec or delegation in terms of
// flags, on one line.
func deviceProblems(err error) error {
	var probs devices.Problems
	if !errors.As(err, &probs) {
		return oneLine(err)
	}
	msgs := make([]string, len(probs))
	for i, p := range probs {
		name, ok := deviceFlagNames[p.Field]
		if !ok {
			name = "--" + p.Field // "claim NAME"
		}
		msgs[i] = strings.TrimSpace(name + " " + strings.ReplaceAll(p.Msg, "\n", "; "))
	}
	return errors.New(strings.Join(msgs, "; "))
}

func deviceProfileErr(name string, err error) error {
	return notFoundErr("device profile", name, deviceProblems(err))
}

func newDeviceProfileAdd() *cobra.Command {
	var (
		f   deviceProfileFlags
		out output
	)
	cmd := &cobra.Command{
		Use:   "add NAME --anchors ROOTS.pem [options]",
		Short: "Trust a device PKI",
		Long: `Trust the device certificates that chain to the anchors of --anchors (PEM).
A cbrs profile reads the WInnForum CBRS PKI: the role (CBSD or domain proxy)
from certificatePolicies, the FCC ID, serial number and FRN from the
SubjectAltName; an x509 profile names the device by the --identity CEL
expression over the certificate. Leaves are checked against --eku, the CRL
files (--crl, reread when they change; a stale CRL refuses) and --ocsp.
Tokens carry at most the --audience and --scope values, subject to the CEL
rules (--condition, --scope-rule, --claim); the profile is compiled now.`,
		Example: `  sts device profile add cbrs --anchors cbrs-roots.pem --crl cbsd-ca.crl --eku any \
      --audience https://sas.example.com --scope spectrum
  sts device profile add lab --kind x509 --anchors lab-ca.pem --identity 'cert.subject.cn'`,
		Args: cobra.ExactArgs(1),
		RunE: withData(&out, func(cmd *cobra.Command, args []string, env *setup.Env, asJSON bool) error {
			if f.anchors == "" {
				return errors.New("--anchors is required: the PEM file of the root certificates")
			}
			anchors, err := readAnchors(f.anchors)
			if err != nil {
				return err
			}
			crls, err := absPaths(f.crls)
			if err != nil {
				return err
			}
			claims, err := parseClaims(f.claims)
			if err != nil {
				return err
			}
			spec := devices.Spec{
				Name: args[0], Kind: f.kind, Anchors: anchors, Identity: f.identity, EKU: f.eku,
				CRLFiles: crls, OCSPURL: f.ocsp, FCCIDs: f.fccIDs, Audiences: f.audiences, Scopes: f.scopes,
				Policy:   store.Policy{Condition: f.condition, Scope: f.scopeRule, Claims: claims},
				TokenTTL: f.tokenTTL, MaxBatch: f.maxBatch,
			}
			p, err := deviceService(env).Add(cmd.Context(), "cli", spec)
			if errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("a device profile named %q already exists", spec.Name)
			}
			if err != nil {
				return deviceProblems(err)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(w, viewDeviceProfile(p))
			}
			fmt.Fprintf(w, "Added device profile %q.\n", p.Name)
			writeDeviceProfileText(w, viewDeviceProfile(p))
			return nil
		}),
	}
	f.register(cmd.Flags(), false)
	out.register(cmd)
	return cmd
}

// deviceProfileUpdateFlags are the flags of `device profile update` that
// change something.
var deviceProfileUpdateFlags = []string{"kind", "anchors", "identity", "eku", "crl", "ocsp", "fcc-id", "audience",
	"scope", "condition", "scope-rule", "claim", "clear-claims", "token-ttl", "max-batch"}

func newDeviceProfileUpdate() *cobra.Command {
	var (
		f   deviceProfileFlags
		out output
	)
	cmd := &cobra.Command{
		Use:   "update NAME [options]",
		Short: "Change a device trust profile",
		Long: `Change a device trust profile; only the options given change. A list option
given replaces the whole list (--crl, --fcc-id, --audience, --scope; '' empties
it). --condition and --scope-rule '' remove the rule; --claim NAME=EXPR adds or
replaces a claim rule and --clear-claims removes them all first.`,
		Example: `  sts device profile update cbrs --anchors new-roots.pem
  sts device profile update cbrs --fcc-id ABC123 --fcc-id XYZ-9 --max-batch 200`,
		Args: cobra.ExactArgs(1),
		RunE: withData(&out, func(cmd *cobra.Command, args []string, env *setup.Env, asJSON bool) error {
			fs := cmd.Flags()
			if !slices.ContainsFunc(deviceProfileUpdateFlags, fs.Changed) {
				return errors.New("nothing to change: give at least one of --" + strings.Join(deviceProfileUpdateFlags, ", --"))
			}
			var anchors []byte
			if fs.Changed("anchors") {
				var err error
				if anchors, err = readAnchors(f.anchors); err != nil {
					return err
				}
			}
			crls, err := absPaths(f.crls)
			if err != nil {
				return err
			}
			claims, err := parseClaims(f.claims)
			if err != nil {
				return err
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
			p, err := deviceService(env).Update(cmd.Context(), "cli", args[0], func(s *devices.Spec) error {
				str("kind", &s.Kind, f.kind)
				if anchors != nil {
					s.Anchors = anchors
				}
				str("identity", &s.Identity, f.identity)
				str("eku", &s.EKU, f.eku)
				if fs.Changed("crl") {
					s.CRLFiles = crls
				}
				str("ocsp", &s.OCSPURL, f.ocsp)
				list("fcc-id", &s.FCCIDs, f.fccIDs)
				list("audience", &s.Audiences, f.audiences)
				list("scope", &s.Scopes, f.scopes)
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
				if fs.Changed("token-ttl") {
					s.TokenTTL = f.tokenTTL
				}
				if fs.Changed("max-batch") {
					s.MaxBatch = f.maxBatch
				}
				return nil
			})
			if err != nil {
				return deviceProfileErr(args[0], err)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(w, viewDeviceProfile(p))
			}
			fmt.Fprintf(w, "Updated device profile %q.\n", p.Name)
			writeDeviceProfileText(w, viewDeviceProfile(p))
			return nil
		}),
	}
	cmd.Flags().BoolVar(&f.clearClaims, "clear-claims", false, "remove every claim rule (before --claim adds any)")
	f.register(cmd.Flags(), true)
	out.register(cmd)
	return cmd
}

// anchorView names one trust anchor.
type anchorView struct {
	Subject  string `json:"subject"`
	NotAfter string `json:"not_after"`
	SHA256   string `json:"sha256"`
}

// deviceProfileView is the JSON form of a profile: the anchors by subject
// and fingerprint (the PEM is in the file the operator gave).
type deviceProfileView struct {
	Name       string            `json:"name"`
	Kind       string            `json:"kind"`
	Enabled    bool              `json:"enabled"`
	Source     string            `json:"source"`
	Anchors    []anchorView      `json:"anchors"`
	Identity   string            `json:"identity,omitempty"`
	EKU        string            `json:"eku"`
	CRLFiles   []string          `json:"crl_files"`
	OCSPURL    string            `json:"ocsp_url,omitempty"`
	FCCIDs     []string          `json:"fcc_ids"`
	Audiences  []string          `json:"audiences"`
	Scopes     []string          `json:"scopes"`
	Condition  string            `json:"condition,omitempty"`
	ScopeRule  string            `json:"scope_rule,omitempty"`
	Claims     map[string]string `json:"claims,omitempty"`
	TokenTTL   int64             `json:"token_ttl"`
	MaxBatch   int               `json:"max_batch"`
	CreatedAt  string            `json:"created_at"`
	UpdatedAt  string            `json:"updated_at,omitempty"`
	FromConfig bool              `json:"-"`
}

func deviceSource(fromConfig bool) string {
	if fromConfig {
		return store.IssuerSourceConfig
	}
	return store.IssuerSourceStore
}

// anchorViews lists the certificates of a PEM bundle.
func anchorViews(b []byte) []anchorView {
	out := []anchorView{}
	for rest := b; ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			return out
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			continue
		}
		sum := sha256.Sum256(c.Raw)
		out = append(out, anchorView{Subject: c.Subject.String(), NotAfter: rfc3339(c.NotAfter), SHA256: hex.EncodeToString(sum[:])})
	}
}

func viewDeviceProfile(p *store.DeviceProfile) deviceProfileView {
	return deviceProfileView{
		Name: p.Name, Kind: p.Kind, Enabled: p.Enabled, Source: deviceSource(p.FromConfig),
		Anchors: anchorViews(p.Anchors), Identity: p.Identity, EKU: p.EKU, CRLFiles: orEmpty(p.CRLFiles),
		OCSPURL: p.OCSPURL, FCCIDs: orEmpty(p.FCCIDs), Audiences: orEmpty(p.Audiences), Scopes: orEmpty(p.Scopes),
		Condition: p.Policy.Condition, ScopeRule: p.Policy.Scope, Claims: p.Policy.Claims,
		TokenTTL: int64(p.TokenTTL / time.Second), MaxBatch: p.MaxBatch,
		CreatedAt: rfc3339(p.CreatedAt), UpdatedAt: rfc3339(p.UpdatedAt), FromConfig: p.FromConfig,
	}
}

func writeDeviceProfileText(w io.Writer, v deviceProfileView) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "name:\t%s\n", v.Name)
	fmt.Fprintf(tw, "kind:\t%s\n", v.Kind)
	fmt.Fprintf(tw, "enabled:\t%t\n", v.Enabled)
	fmt.Fprintf(tw, "source:\t%s\n", v.Source)
	for _, a := range v.Anchors {
		fmt.Fprintf(tw, "anchor:\t%s (until %s, sha256 %s)\n", a.Subject, a.NotAfter, a.SHA256)
	}
	if v.Identity != "" {
		fmt.Fprintf(tw, "identity:\t%s\n", v.Identity)
	}
	fmt.Fprintf(tw, "eku:\t%s\n", v.EKU)
	fmt.Fprintf(tw, "crl_files:\t%s\n", listOrNone(v.CRLFiles))
	fmt.Fprintf(tw, "ocsp:\t%s\n", dash(v.OCSPURL))
	fmt.Fprintf(tw, "fcc_ids:\t%s\n", orAny(v.FCCIDs))
	fmt.Fprintf(tw, "audiences:\t%s\n", listOrNone(v.Audiences))
	fmt.Fprintf(tw, "scopes:\t%s\n", listOrNone(v.Scopes))
	writePolicyText(tw, v.Condition, v.ScopeRule, v.Claims)
	ttl := "server default"
	if v.TokenTTL > 0 {
		ttl = durText(v.TokenTTL)
	}
	fmt.Fprintf(tw, "token_ttl:\t%s\n", ttl)
	fmt.Fprintf(tw, "max_batch:\t%d\n", v.MaxBatch)
	fmt.Fprintf(tw, "created_at:\t%s\n", v.CreatedAt)
	if v.UpdatedAt != "" {
		fmt.Fprintf(tw, "updated_at:\t%s\n", v.UpdatedAt)
	}
	tw.Flush()
}

func orAny(s []string) string {
	if len(s) == 0 {
		return "(any)"
	}
	return strings.Join(s, " ")
}

func newDeviceProfileList() *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the device trust profiles",
		Args:  cobra.NoArgs,
		RunE: withData(&out, func(cmd *cobra.Command, _ []string, env *setup.Env, asJSON bool) error {
			ps, err := deviceService(env).List(cmd.Context())
			if err != nil {
				return fmt.Errorf("list device profiles: %w", err)
			}
			return writeList(cmd.OutOrStdout(), asJSON, ps, viewDeviceProfile,
				"No device profiles. Add one with `sts device profile add NAME --anchors ROOTS.pem`.",
				[]string{"NAME", "KIND", "ENABLED", "SOURCE", "ANCHORS", "EKU", "MAX BATCH"},
				func(v deviceProfileView) []string {
					return []string{v.Name, v.Kind, fmt.Sprint(v.Enabled), v.Source, fmt.Sprint(len(v.Anchors)), v.EKU, fmt.Sprint(v.MaxBatch)}
				})
		}),
	}
	out.register(cmd)
	return cmd
}

func newDeviceProfileShow() *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show one device trust profile",
		Args:  cobra.ExactArgs(1),
		RunE: withData(&out, func(cmd *cobra.Command, args []string, env *setup.Env, asJSON bool) error {
			p, err := deviceService(env).Get(cmd.Context(), args[0])
			if err != nil {
				return deviceProfileErr(args[0], err)
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), viewDeviceProfile(p))
			}
			writeDeviceProfileText(cmd.OutOrStdout(), viewDeviceProfile(p))
			return nil
		}),
	}
	out.register(cmd)
	return cmd
}

func newDeviceProfileSetEnabled(verb string, on bool) *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use: verb + " NAME",
		Short: map[bool]string{
			true:  "Trust a disabled profile's devices again",
			false: "Stop trusting a profile's devices at once (its settings are kept)",
		}[on],
		Args: cobra.ExactArgs(1),
		RunE: withData(&out, func(cmd *cobra.Command, args []string, env *setup.Env, asJSON bool) error {
			svc := deviceService(env)
			var (
				p   *store.DeviceProfile
				was bool
				err error
			)
			if on {
				p, was, err = svc.Enable(cmd.Context(), "cli", args[0])
			} else {
				p, was, err = svc.Disable(cmd.Context(), "cli", args[0])
			}
			if err != nil {
				return deviceProfileErr(args[0], err)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(w, viewDeviceProfile(p))
			}
			state := map[bool]string{true: "enabled", false: "disabled"}
			writeStatusChange(w, "Device profile", p.Name, state[was], state[on])
			return nil
		}),
	}
	out.register(cmd)
	return cmd
}

func newDeviceProfileRemove() *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:   "remove NAME",
		Short: "Stop trusting a device PKI and forget the profile",
		Args:  cobra.ExactArgs(1),
		RunE: withData(&out, func(cmd *cobra.Command, args []string, env *setup.Env, asJSON bool) error {
			if err := deviceService(env).Remove(cmd.Context(), "cli", args[0]); err != nil {
				return deviceProfileErr(args[0], err)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(w, map[string]any{"name": args[0], "removed": true})
			}
			fmt.Fprintf(w, "Removed device profile %q; its devices are refused from now on.\n", args[0])
			return nil
		}),
	}
	out.register(cmd)
	return cmd
}

// delegationFlags name one delegation.
type delegationFlags struct {
	proxy, fccID, serial, account string
}

func (f *delegationFlags) register(fs *pflag.FlagSet, account bool) {
	fs.StringVar(&f.proxy, "proxy", "", "the domain proxy: dp:FRN:CN, as its certificate names it (required)")
	fs.StringVar(&f.fccID, "fcc-id", "", "the device's FCC ID (required)")
	fs.StringVar(&f.serial, "serial", "", "the device's serial number (required)")
	if account {
		fs.StringVar(&f.account, "account", "", "the account the delegation belongs to (default: none, the operator's)")
	}
}

func (f *delegationFlags) check() error {
	var missing []string
	for _, m := range []struct{ name, v string }{{"--proxy", f.proxy}, {"--fcc-id", f.fccID}, {"--serial", f.serial}} {
		if m.v == "" {
			missing = append(missing, m.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s required", strings.Join(missing, ", "))
	}
	return nil
}

// delegationView is the JSON form of a delegation.
type delegationView struct {
	Proxy     string `json:"proxy"`
	FCCID     string `json:"fcc_id"`
	Serial    string `json:"serial"`
	AccountID string `json:"account_id,omitempty"`
	CreatedAt string `json:"created_at"`
}

func viewDelegation(d store.Delegation) delegationView {
	return delegationView{Proxy: d.Proxy, FCCID: d.FCCID, Serial: d.Serial, AccountID: d.AccountID, CreatedAt: rfc3339(d.CreatedAt)}
}

func newDeviceDelegate() *cobra.Command {
	var (
		f   delegationFlags
		out output
	)
	cmd := &cobra.Command{
		Use:   "delegate --proxy dp:FRN:CN --fcc-id FCCID --serial SERIAL [--account ID]",
		Short: "Let a domain proxy obtain tokens for a device",
		Example: `  sts device delegate --proxy dp:FRN0001:proxy.example.com --fcc-id ABC123 --serial SN-0001 --account acct_1
  sts device import --account acct_1 --proxy dp:FRN0001:proxy.example.com fleet.csv`,
		Args: cobra.NoArgs,
		RunE: withData(&out, func(cmd *cobra.Command, _ []string, env *setup.Env, asJSON bool) error {
			if err := f.check(); err != nil {
				return err
			}
			dev := store.DeviceRef{FCCID: f.fccID, Serial: f.serial}
			added, err := deviceService(env).Delegate(cmd.Context(), "cli", f.account, f.proxy, dev)
			if err != nil {
				return deviceProblems(err)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(w, map[string]any{"proxy": f.proxy, "fcc_id": f.fccID, "serial": f.serial, "added": added})
			}
			if added {
				fmt.Fprintf(w, "Domain proxy %s may now obtain tokens for device %s/%s.\n", f.proxy, f.fccID, f.serial)
			} else {
				fmt.Fprintf(w, "Domain proxy %s already speaks for device %s/%s.\n", f.proxy, f.fccID, f.serial)
			}
			return nil
		}),
	}
	f.register(cmd.Flags(), true)
	out.register(cmd)
	return cmd
}

func newDeviceUndelegate() *cobra.Command {
	var (
		f   delegationFlags
		out output
	)
	cmd := &cobra.Command{
		Use:   "undelegate --proxy dp:FRN:CN --fcc-id FCCID --serial SERIAL",
		Short: "Stop a domain proxy obtaining tokens for a device",
		Args:  cobra.NoArgs,
		RunE: withData(&out, func(cmd *cobra.Command, _ []string, env *setup.Env, asJSON bool) error {
			if err := f.check(); err != nil {
				return err
			}
			dev := store.DeviceRef{FCCID: f.fccID, Serial: f.serial}
			err := deviceService(env).Undelegate(cmd.Context(), "cli", f.proxy, dev)
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("domain proxy %s has no delegation for device %s/%s", f.proxy, f.fccID, f.serial)
			}
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(w, map[string]any{"proxy": f.proxy, "fcc_id": f.fccID, "serial": f.serial, "removed": true})
			}
			fmt.Fprintf(w, "Domain proxy %s no longer speaks for device %s/%s.\n", f.proxy, f.fccID, f.serial)
			return nil
		}),
	}
	f.register(cmd.Flags(), false)
	out.register(cmd)
	return cmd
}

func newDeviceList() *cobra.Command {
	var (
		out         output
		proxy, acct string
		fccID       string
		limit       int
	)
	cmd := &cobra.Command{
		Use:   "list [--proxy dp:FRN:CN] [--account ID] [--fcc-id F]",
		Short: "List delegations: which devices each domain proxy speaks for",
		Args:  cobra.NoArgs,
		RunE: withData(&out, func(cmd *cobra.Command, _ []string, env *setup.Env, asJSON bool) error {
			ds, err := deviceService(env).ListDelegations(cmd.Context(), store.DelegationFilter{Proxy: proxy, AccountID: acct, FCCID: fccID, Limit: limit})
			if err != nil {
				return fmt.Errorf("list delegations: %w", err)
			}
			return writeList(cmd.OutOrStdout(), asJSON, ds, viewDelegation,
				"No delegations. Add one with `sts device delegate` or `sts device import`.",
				[]string{"PROXY", "FCC ID", "SERIAL", "ACCOUNT", "CREATED"},
				func(v delegationView) []string {
					return []string{v.Proxy, v.FCCID, v.Serial, dash(v.AccountID), v.CreatedAt}
				})
		}),
	}
	fs := cmd.Flags()
	fs.StringVar(&proxy, "proxy", "", "only this domain proxy's delegations")
	fs.StringVar(&acct, "account", "", "only this account's delegations")
	fs.StringVar(&fccID, "fcc-id", "", "only devices of this FCC ID")
	fs.IntVar(&limit, "limit", 1000, "most delegations listed")
	out.register(cmd)
	return cmd
}

func newDeviceImport() *cobra.Command {
	var (
		out         output
		proxy, acct string
	)
	cmd := &cobra.Command{
		Use:   "import --account ID --proxy dp:FRN:CN FILE.csv",
		Short: "Delegate many devices to a domain proxy from a CSV file",
		Long: fmt.Sprintf(`Delegate to the domain proxy every device of a CSV file of "fcc_id,serial"
rows (a header row naming the columns is optional; '-' reads standard input),
registered by the account. At most %d rows and %d MiB. If any row is bad,
every bad row is named by its line and nothing is written; otherwise all
rows are written in one transaction (a device delegated already is kept).`, devices.MaxImportRows, devices.MaxImportSize>>20),
		Args: cobra.ExactArgs(1),
		RunE: withData(&out, func(cmd *cobra.Command, args []string, env *setup.Env, asJSON bool) error {
			if proxy == "" || acct == "" {
				return errors.New("--account and --proxy are required")
			}
			var r io.Reader = cmd.InOrStdin()
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			got, err := deviceService(env).ImportCSV(cmd.Context(), "cli", acct, proxy, r)
			var ie *devices.ImportError
			if errors.As(err, &ie) {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if err != nil {
				return deviceProblems(err)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(w, map[string]any{"proxy": proxy, "account_id": acct, "rows": got.Rows, "added": got.Added, "existing": got.Existing})
			}
			fmt.Fprintf(w, "Imported %d devices for domain proxy %s: %d new, %d delegated already.\n", got.Rows, proxy, got.Added, got.Existing)
			return nil
		}),
	}
	cmd.Flags().StringVar(&proxy, "proxy", "", "the domain proxy: dp:FRN:CN (required)")
	cmd.Flags().StringVar(&acct, "account", "", "the account registering the devices (required)")
	out.register(cmd)
	return cmd
}
