package main

import (
	"fmt"
	"time"

	"github.com/keybridge/sts/internal/config"
	"github.com/keybridge/sts/internal/setup"
	"github.com/keybridge/sts/internal/store"
	"github.com/spf13/cobra"
)

func newKey() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "List and rotate the token-signing keys",
		Long: `List and rotate the keys that sign tokens. There is one current key
(it signs), one next key (already published in the JWKS so that resource
servers know it before it signs) and retired keys, published until every
token they signed has expired.`,
	}
	cmd.AddCommand(newKeyList(), newKeyRotate())
	return cmd
}

// keyView is the JSON form of a signing key: never its private part.
type keyView struct {
	KID         string `json:"kid"`
	Algorithm   string `json:"alg"`
	State       string `json:"state"`
	CreatedAt   string `json:"created_at"`
	ActivatedAt string `json:"activated_at,omitempty"`
	RetiredAt   string `json:"retired_at,omitempty"`
	ExpiresAt   string `json:"expires_at,omitempty"`
}

func viewKey(k *store.SigningKey) keyView {
	return keyView{
		KID:         k.ID,
		Algorithm:   k.Algorithm,
		State:       string(k.State),
		CreatedAt:   rfc3339(k.CreatedAt),
		ActivatedAt: rfc3339(k.ActivatedAt),
		RetiredAt:   rfc3339(k.RetiredAt),
		ExpiresAt:   rfc3339(k.ExpiresAt),
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newKeyList() *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the published signing keys",
		Args:  cobra.NoArgs,
		RunE: withData(&out, func(cmd *cobra.Command, _ []string, env *setup.Env, asJSON bool) error {
			// Read the store rather than build a key manager: listing must
			// not create keys, nor need to decrypt them.
			ks, err := env.Store.ListKeys(cmd.Context(), time.Now())
			if err != nil {
				return fmt.Errorf("list keys: %w", err)
			}
			return writeList(cmd.OutOrStdout(), asJSON, ks, viewKey,
				"No signing keys yet: `sts serve` or `sts key rotate` creates them.",
				[]string{"KID", "ALG", "STATE", "CREATED", "ACTIVATED", "RETIRED", "EXPIRES"},
				func(v keyView) []string {
					return []string{v.KID, v.Algorithm, v.State, dash(v.CreatedAt), dash(v.ActivatedAt), dash(v.RetiredAt), dash(v.ExpiresAt)}
				})
		}),
	}
	out.register(cmd)
	return cmd
}

func newKeyRotate() *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Make the next key current, retire the current one and create a new next key",
		Long: `Rotate the signing keys: the next key, already published, starts signing;
the current key is retired (still published until the tokens it signed have
expired, max-token-ttl + leeway); a new next key is created. New keys use
--key-algorithm. With no keys yet, the first current and next keys are
created. Running servers pick the change up when they next reload their
keys (within seconds).`,
		Args: cobra.NoArgs,
		RunE: withData(&out, func(cmd *cobra.Command, _ []string, env *setup.Env, asJSON bool) error {
			ctx := cmd.Context()
			before, err := env.Store.ListKeys(ctx, time.Now())
			if err != nil {
				return fmt.Errorf("list keys: %w", err)
			}
			var retired string
			for _, k := range before {
				if k.State == store.KeyCurrent {
					retired = k.ID
				}
			}
			// NewManager creates the first keys when there are none; only
			// an existing current key is rotated.
			km, err := env.Keys(ctx)
			if err != nil {
				return err
			}
			if retired != "" {
				if err := km.Rotate(ctx); err != nil {
					return err
				}
			}
			snap := km.Snapshot()
			var current, next string
			if snap.Current != nil {
				current = snap.Current.ID
			}
			if retired != "" {
				// The same record as a rotation in the portal.
				if err := env.Store.AppendAudit(ctx, []store.AuditRecord{{
					Time: time.Now(), Action: "key.rotate", Decision: store.DecisionGranted,
					Subject: "cli", Detail: "retired " + retired + ", current " + current,
				}}); err != nil {
					return fmt.Errorf("audit key.rotate: %w", err)
				}
			}
			for _, k := range snap.Keys() {
				if k.State == store.KeyNext {
					next = k.ID
				}
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(w, struct {
					Current string `json:"current"`
					Next    string `json:"next"`
					Retired string `json:"retired,omitempty"`
				}{current, next, retired})
			}
			if retired == "" {
				fmt.Fprintln(w, "Created the first signing keys.")
			} else {
				fmt.Fprintf(w, "Rotated the signing keys; %s is retired (published until its tokens expire).\n", retired)
			}
			fmt.Fprintf(w, "  current: %s\n", current)
			fmt.Fprintf(w, "  next:    %s\n", next)
			return nil
		}),
	}
	out.register(cmd)
	// The algorithm of new keys and how long retired keys stay published
	// (max-token-ttl + leeway) are server settings.
	config.RegisterOnly(cmd.Flags(), config.FlagKeyAlgorithm, config.FlagKeyRotationPeriod, config.FlagMaxTokenTTL, config.FlagLeeway)
	return cmd
}
