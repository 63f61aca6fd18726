package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/keybridge/sts/internal/config"
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
	// The algorithm of new keys and how long retired keys stay published
	// (max-token-ttl + leeway) are serve settings; `key rotate` needs them.
	config.RegisterServe(cmd.PersistentFlags())
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
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := out.json()
			if err != nil {
				return err
			}
			env, err := openData(cmd)
			if err != nil {
				return err
			}
			defer env.Close()
			// Read the store rather than build a key manager: listing must
			// not create keys, nor need to decrypt them.
			ks, err := env.Store.ListKeys(cmd.Context(), time.Now())
			if err != nil {
				return fmt.Errorf("list keys: %w", err)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				vs := make([]keyView, 0, len(ks))
				for _, k := range ks {
					vs = append(vs, viewKey(k))
				}
				return writeJSON(w, vs)
			}
			if len(ks) == 0 {
				fmt.Fprintln(w, "No signing keys yet: `sts serve` or `sts key rotate` creates them.")
				return nil
			}
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "KID\tALG\tSTATE\tCREATED\tACTIVATED\tRETIRED\tEXPIRES")
			for _, k := range ks {
				v := viewKey(k)
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.KID, v.Algorithm, v.State,
					dash(v.CreatedAt), dash(v.ActivatedAt), dash(v.RetiredAt), dash(v.ExpiresAt))
			}
			return tw.Flush()
		},
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
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := out.json()
			if err != nil {
				return err
			}
			env, err := openData(cmd)
			if err != nil {
				return err
			}
			defer env.Close()
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
		},
	}
	out.register(cmd)
	return cmd
}
