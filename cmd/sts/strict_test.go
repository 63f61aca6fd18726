package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/token"

	"github.com/spf13/cobra"
)

// TestUnknownSubcommandFails (issue 9): a mistyped subcommand or a stray
// argument is an error with a suggestion, never help with status 0.
func TestUnknownSubcommandFails(t *testing.T) {
	c := newCLI(t, testKEK)
	for _, tc := range []struct {
		args    []string
		want    string
		suggest string
	}{
		{[]string{"client", "aprove", "x"}, `unknown command "aprove" for "sts client"`, "approve"},
		{[]string{"clinet", "list"}, `unknown command "clinet" for "sts"`, "client"},
		{[]string{"key", "rotat"}, `unknown command "rotat" for "sts key"`, "rotate"},
		{[]string{"client", "list", "extra"}, `unknown command "extra" for "sts client list"`, ""},
		{[]string{"migrate", "now"}, `unknown command "now" for "sts migrate"`, ""},
	} {
		_, _, err := c.run(tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.suggest) {
			t.Errorf("sts %s: err = %v, want %q suggesting %q", strings.Join(tc.args, " "), err, tc.want, tc.suggest)
		}
	}
	// A group alone still shows its help.
	if out, _, err := c.run("client"); err != nil || !strings.Contains(out, "Available Commands") {
		t.Errorf("sts client: %v\n%s", err, out)
	}
}

// TestEveryCommandChecksArgs walks the tree: no command accepts arguments
// it never looks at.
func TestEveryCommandChecksArgs(t *testing.T) {
	var walk func(*cobra.Command)
	walk = func(cmd *cobra.Command) {
		if cmd.Args == nil {
			t.Errorf("%s declares no argument rule", cmd.CommandPath())
		}
		for _, sub := range cmd.Commands() {
			walk(sub)
		}
	}
	walk(newRoot())
}

func TestVersion(t *testing.T) {
	c := newCLI(t, testKEK)
	out := c.ok("version")
	if !strings.HasPrefix(out, "sts ") || !strings.Contains(out, "go1.") {
		t.Errorf("sts version = %q", out)
	}
	var v struct {
		Version string `json:"version"`
		Go      string `json:"go"`
	}
	if err := json.Unmarshal([]byte(c.ok("version", "-o", "json")), &v); err != nil || v.Version == "" || !strings.HasPrefix(v.Go, "go1.") {
		t.Errorf("sts version -o json: %+v, %v", v, err)
	}
}

// TestIssuerMismatchWarns (issue 9, item 1): an --issuer that differs from
// the one the server recorded is used, with a warning naming both.
func TestIssuerMismatchWarns(t *testing.T) {
	c := newCLI(t, testKEK)
	env := c.env()
	if err := env.Store.PutSetting(t.Context(), &store.Setting{Name: store.SettingIssuer, Value: "http://127.0.0.1:9090", UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	var acct struct {
		ID string `json:"account_id"`
	}
	c.okJSON(&acct, "account", "create", "individual", "--name", "A", "-o", "json")
	tok, stderr, err := c.run("account", "issue-iat", acct.ID, "--issuer", "https://elsewhere.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr, "https://elsewhere.example.com") || !strings.Contains(stderr, "http://127.0.0.1:9090") {
		t.Errorf("no warning naming both issuers: %q", stderr)
	}
	_, claims, err := token.ParseUnverified(strings.TrimSpace(tok))
	if err != nil || claims["aud"] != "https://elsewhere.example.com" {
		t.Errorf("IAT aud = %v (%v), want the flag's issuer", claims["aud"], err)
	}
	// Without the flag: the server's issuer, and no warning.
	tok, stderr, err = c.run("account", "issue-iat", acct.ID)
	if err != nil || strings.Contains(stderr, "warning") {
		t.Fatalf("%v: %s", err, stderr)
	}
	if _, claims, _ = token.ParseUnverified(strings.TrimSpace(tok)); claims["aud"] != "http://127.0.0.1:9090" {
		t.Errorf("IAT aud = %v, want the server's issuer", claims["aud"])
	}
}

// TestHelpShowsOnlyUsedFlags (issue 9, item 8): a command's help lists the
// server settings it uses, not all of them.
func TestHelpShowsOnlyUsedFlags(t *testing.T) {
	c := newCLI(t, testKEK)
	for _, tc := range []struct {
		args      []string
		want, not []string
	}{
		{[]string{"account", "--help"}, nil, []string{"--addr", "--issuer", "--key-algorithm", "--require-approval"}},
		{[]string{"key", "--help"}, nil, []string{"--addr", "--issuer", "--key-algorithm"}},
		{[]string{"key", "list", "--help"}, nil, []string{"--addr", "--key-algorithm"}},
		{[]string{"key", "rotate", "--help"}, []string{"--key-algorithm", "--max-token-ttl"}, []string{"--addr", "--issuer", "--require-approval"}},
		{[]string{"account", "issue-iat", "--help"}, []string{"--issuer", "--iat-max-lifetime"}, []string{"--addr", "--key-algorithm"}},
		{[]string{"serve", "--help"}, []string{"--addr", "--issuer", "--trusted-proxies"}, nil},
	} {
		out := c.ok(tc.args...)
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("sts %s lacks %s", strings.Join(tc.args, " "), w)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(out, n+" ") {
				t.Errorf("sts %s lists %s, which it does not use", strings.Join(tc.args, " "), n)
			}
		}
	}
	// The settings still reach the command: an algorithm is validated.
	c.fail("key-algorithm", "key", "rotate", "--key-algorithm", "HS256")
}

// TestAccountRotateSecret: the CLI prints the new secret once, audits the
// change under the action the portal uses, and refuses organizations.
func TestAccountRotateSecret(t *testing.T) {
	c := newCLI(t, testKEK)
	var ind, org, rotated struct {
		ID     string `json:"account_id"`
		Secret string `json:"shared_secret"`
	}
	c.okJSON(&ind, "account", "create", "individual", "--name", "A", "-o", "json")
	c.okJSON(&rotated, "account", "rotate-secret", ind.ID, "-o", "json")
	if rotated.ID != ind.ID || rotated.Secret == "" || rotated.Secret == ind.Secret {
		t.Errorf("rotate-secret -o json = %+v (before %+v)", rotated, ind)
	}
	if out := c.ok("account", "rotate-secret", ind.ID); !strings.Contains(out, "shared_secret:") || !strings.Contains(out, "shown only this once") {
		t.Errorf("rotate-secret text:\n%s", out)
	}
	recs, err := c.env().Store.ListAudit(t.Context(), store.AuditFilter{Action: "account.rotate_secret"})
	if err != nil || len(recs) != 2 || recs[0].AccountID != ind.ID {
		t.Errorf("audit of rotate-secret: %+v, %v", recs, err)
	}
	c.okJSON(&org, "account", "create", "organization", "--name", "O", "-o", "json")
	c.fail("only an individual account", "account", "rotate-secret", org.ID)
	c.fail("not found", "account", "rotate-secret", "acct-none")
}
