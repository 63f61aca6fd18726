package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
)

// TestTokenIntrospectRevoke: `sts token introspect` and `sts token revoke`
// against a running server found through the issuer it recorded (no
// --server), and `sts token inspect` reporting the revoked token as not
// valid (issue 9, items 7 and 9).
func TestTokenIntrospectRevoke(t *testing.T) {
	c := newCLI(t, testKEK)
	issuer := strings.TrimSuffix(startServer(t, c), server.TokenPath)
	// What `sts serve` records at start.
	if err := c.env().Store.PutSetting(t.Context(), &store.Setting{Name: store.SettingIssuer, Value: issuer, UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	secret := createClient(t, c, "--name", "op", "--client-id", "op", "--grant-type", "client-credentials", "--scope", "read")
	auth := []string{"--client-id", "op", "--client-secret", secret}

	// No --server: the recorded issuer. Text output is the token alone.
	at, stderr, err := c.run(append([]string{"token", "client-credentials"}, auth...)...)
	at = strings.TrimSpace(at)
	if err != nil || strings.Count(at, ".") != 2 || !strings.Contains(stderr, "token_type=Bearer") {
		t.Fatalf("client-credentials: %v; stdout %q; stderr %q", err, at, stderr)
	}

	out := c.ok(append([]string{"token", "introspect", at}, auth...)...)
	for _, want := range []string{"active:", "true", "sub:", "op", "scope:", "read"} {
		if !strings.Contains(out, want) {
			t.Errorf("introspect text lacks %q:\n%s", want, out)
		}
	}
	var ans map[string]any
	c.okJSON(&ans, append([]string{"token", "introspect", at, "-o", "json"}, auth...)...)
	if ans["active"] != true || ans["client_id"] != "op" {
		t.Errorf("introspect -o json = %v", ans)
	}
	c.ok("token", "inspect", at)

	if out := c.ok(append([]string{"token", "revoke", at}, auth...)...); !strings.Contains(out, "Revoked") {
		t.Errorf("revoke: %q", out)
	}
	out, _, err = c.run(append([]string{"token", "introspect", at, "-o", "json"}, auth...)...)
	if err == nil || !strings.Contains(err.Error(), "not active") {
		t.Errorf("introspect after revoke: err %v", err)
	}
	if json.Unmarshal([]byte(out), &ans) != nil || ans["active"] != false {
		t.Errorf("introspect after revoke printed %s", out)
	}
	out, _, err = c.run("token", "inspect", at)
	if err == nil || !strings.Contains(err.Error(), "revoked") || !strings.Contains(out, "REVOKED") {
		t.Errorf("inspect of a revoked JWT: err %v\n%s", err, out)
	}

	// STS_SERVER wins over the recorded issuer, and a flag over both.
	t.Setenv("STS_SERVER", "http://127.0.0.1:1")
	c.fail("127.0.0.1:1", append([]string{"token", "client-credentials"}, auth...)...)
	c.ok(append([]string{"token", "client-credentials", "--server", issuer}, auth...)...)
	// Wrong credentials: a one-line OAuth error, non-zero status.
	c.fail("invalid_client", "token", "revoke", at, "--server", issuer, "--client-id", "op", "--client-secret", "wrong")
}

// TestTokenInspectFamilyRevoked: a JWT issued in a refresh family is
// reported revoked once its family is (issue 8's family revocation).
func TestTokenInspectFamilyRevoked(t *testing.T) {
	c := newCLI(t, testKEK)
	srv := "--server=" + strings.TrimSuffix(startServer(t, c), server.TokenPath)
	secret := createClient(t, c, "--name", "fam", "--client-id", "fam", "--grant-type", "client-credentials",
		"--grant-type", "exchange", "--grant-type", "refresh_token", "--scope", "read")
	auth := []string{srv, "--client-id", "fam", "--client-secret", secret}
	at := strings.TrimSpace(c.ok(append([]string{"token", "client-credentials"}, auth...)...))
	var resp struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	c.okJSON(&resp, append([]string{"token", "exchange", "--subject-token", at, "-o", "json"}, auth...)...)
	if resp.RefreshToken == "" || strings.Count(resp.AccessToken, ".") != 2 {
		t.Fatalf("exchange gave no family: %+v", resp)
	}
	c.ok("token", "inspect", resp.AccessToken)
	c.ok(append([]string{"token", "revoke", resp.RefreshToken, "--token-type-hint", "refresh_token"}, auth...)...)
	out, _, err := c.run("token", "inspect", resp.AccessToken)
	if err == nil || !strings.Contains(out, "REVOKED") {
		t.Errorf("inspect of a JWT whose family is revoked: %v\n%s", err, out)
	}
}
