package main

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
)

func TestClientLifecycle(t *testing.T) {
	// No STS_KEY_ENCRYPTION_KEY: the data directory generates its own.
	c := newCLI(t, "")
	ctx := context.Background()

	// Create, text output.
	out := c.ok("client", "create", "--name", "billing", "--audience", "https://backend.example.com/api",
		"--scope", "read write", "--scope", "admin")
	id := field(t, out, "client_id:")
	secret := field(t, out, "client_secret:")
	if !strings.Contains(out, "shown only this once") {
		t.Errorf("create does not say the secret is shown once:\n%s", out)
	}
	if len(id) != 26 || strings.ToLower(id) != id {
		t.Errorf("generated client id %q: want 26 lower-case base32 characters", id)
	}

	// Create, JSON output, with every option.
	var created clientView
	c.okJSON(&created, "client", "create", "--name", "gateway", "--client-id", "gw-1",
		"--grant-type", "exchange", "--grant-type", "refresh_token,client-credentials",
		"--audience", "orders", "--audience", "https://orders.example.com/v1",
		"--allow-impersonation", "--token-format", "opaque",
		"--resource", "https://gw.example.com", "--exchange-any", "--introspect-any",
		"--access-token-ttl", "10m", "--refresh-token-ttl", "2h", "-o", "json")
	want := clientView{
		ClientID: "gw-1", ClientSecret: created.ClientSecret, Name: "gateway", Status: "active",
		GrantTypes:  []string{oauth.GrantTypeTokenExchange, oauth.GrantTypeRefreshToken, oauth.GrantTypeClientCredentials},
		Audiences:   []string{"orders", "https://orders.example.com/v1"},
		Scope:       "",
		TokenFormat: "opaque", AllowImpersonation: true,
		Resources: []string{"https://gw.example.com"}, ExchangeAny: true, IntrospectAny: true,
		AccessTokenTTL: 600, RefreshTokenTTL: 7200,
		CreatedAt: created.CreatedAt, UpdatedAt: created.UpdatedAt,
	}
	if !equalJSON(t, created, want) {
		t.Errorf("create -o json:\n got %+v\nwant %+v", created, want)
	}
	if created.ClientSecret == "" {
		t.Error("create -o json: no client_secret")
	}
	if _, err := time.Parse(time.RFC3339, created.CreatedAt); err != nil {
		t.Errorf("created_at %q is not RFC 3339", created.CreatedAt)
	}

	// Only the hash of the secret is stored.
	env := c.env()
	stored, err := env.Store.GetClient(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stored.SecretHash, env.Hasher.Hash(secret)) {
		t.Fatal("stored hash does not match the printed secret")
	}
	if !slices.Equal(stored.GrantTypes, []string{oauth.GrantTypeClientCredentials, oauth.GrantTypeTokenExchange}) {
		t.Errorf("default grant types = %v", stored.GrantTypes)
	}
	if !slices.Equal(stored.Scopes, []string{"read", "write", "admin"}) {
		t.Errorf("scopes = %v", stored.Scopes)
	}

	// list and show find them, and never print a secret.
	var list []clientView
	c.okJSON(&list, "client", "list", "-o", "json")
	if len(list) != 2 || list[0].ClientID != id || list[1].ClientID != "gw-1" {
		t.Fatalf("list -o json = %+v", list)
	}
	text := c.ok("client", "list")
	if !strings.Contains(text, id) || !strings.Contains(text, "gw-1") {
		t.Errorf("list does not show both clients:\n%s", text)
	}
	var shown clientView
	c.okJSON(&shown, "client", "show", id, "-o", "json")
	if shown.Name != "billing" || shown.Status != "active" {
		t.Errorf("show -o json = %+v", shown)
	}
	showText := c.ok("client", "show", id)
	for _, s := range []string{id, "billing", "https://backend.example.com/api", "read write admin"} {
		if !strings.Contains(showText, s) {
			t.Errorf("show does not contain %q:\n%s", s, showText)
		}
	}
	for _, o := range []string{text, showText, string(mustJSON(t, list)), string(mustJSON(t, shown))} {
		if strings.Contains(o, secret) || strings.Contains(o, created.ClientSecret) {
			t.Fatal("list or show printed a secret")
		}
	}

	// rotate-secret without grace: the old secret is refused at once.
	out = c.ok("client", "rotate-secret", id)
	newSecret := field(t, out, "client_secret:")
	stored, _ = env.Store.GetClient(ctx, id)
	if newSecret == secret || !bytes.Equal(stored.SecretHash, env.Hasher.Hash(newSecret)) {
		t.Fatal("rotate-secret did not store the hash of the new secret")
	}
	if bytes.Equal(stored.SecretHash, env.Hasher.Hash(secret)) || len(stored.PrevSecretHash) != 0 {
		t.Fatal("the old secret still matches after rotate-secret without --grace")
	}

	// rotate-secret with grace: the old one stays valid until now+grace.
	var rotated clientView
	before := time.Now()
	c.okJSON(&rotated, "client", "rotate-secret", id, "--grace", "1h", "-o", "json")
	stored, _ = env.Store.GetClient(ctx, id)
	if !bytes.Equal(stored.SecretHash, env.Hasher.Hash(rotated.ClientSecret)) ||
		!bytes.Equal(stored.PrevSecretHash, env.Hasher.Hash(newSecret)) {
		t.Fatal("rotate-secret --grace: wrong current or previous hash")
	}
	if d := stored.PrevSecretExpiresAt.Sub(before); d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("previous secret expires in %v, want 1h", d)
	}
	if rotated.PrevSecretExpiresAt == "" {
		t.Error("rotate-secret -o json does not say until when the previous secret works")
	}

	// disable / enable (and its alias approve).
	c.ok("client", "disable", id)
	if s := clientStatus(t, c, id); s != store.ClientDisabled {
		t.Fatalf("after disable: status %s", s)
	}
	if out := c.ok("client", "disable", id); !strings.Contains(out, "already disabled") {
		t.Errorf("second disable: %q", out)
	}
	c.ok("client", "enable", id)
	if s := clientStatus(t, c, id); s != store.ClientActive {
		t.Fatalf("after enable: status %s", s)
	}
	c.ok("client", "disable", id)
	c.ok("client", "approve", id)
	if s := clientStatus(t, c, id); s != store.ClientActive {
		t.Fatalf("after approve: status %s", s)
	}

	// delete; then every command names the missing client in one line.
	c.ok("client", "delete", id)
	for _, args := range [][]string{
		{"client", "show", id}, {"client", "delete", id}, {"client", "disable", id},
		{"client", "enable", id}, {"client", "rotate-secret", id},
	} {
		if msg := c.fail(`client "`+id+`" not found`, args...); msg != `client "`+id+`" not found` {
			t.Errorf("%v: %q", args, msg)
		}
	}
	c.okJSON(&list, "client", "list", "-o", "json")
	if len(list) != 1 || list[0].ClientID != "gw-1" {
		t.Fatalf("after delete: list = %+v", list)
	}
}

func TestClientCreateRejectsBadInput(t *testing.T) {
	c := newCLI(t, testKEK)
	c.ok("client", "create", "--name", "existing", "--client-id", "taken")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown grant type", []string{"--name", "x", "--grant-type", "password"}, `--grant-type "password" is not one of`},
		{"bad token format", []string{"--name", "x", "--token-format", "paseto"}, `--token-format must be jwt or opaque, not "paseto"`},
		{"fragment audience", []string{"--name", "x", "--audience", "https://api.example.com/#frag"}, "fragment"},
		{"malformed URI audience", []string{"--name", "x", "--audience", "https://[::1/api"}, "must be absolute"},
		{"audience with space", []string{"--name", "x", "--audience", "a b"}, "white space"},
		{"empty audience", []string{"--name", "x", "--audience", ""}, "empty"},
		{"bad scope", []string{"--name", "x", "--scope", `a"b`}, "not a scope token"},
		{"no name", []string{"--audience", "orders"}, "--name is required"},
		{"client id with space", []string{"--name", "x", "--client-id", "a b"}, "--client-id"},
		{"negative ttl", []string{"--name", "x", "--access-token-ttl", "-1m"}, "negative"},
		{"bad output", []string{"--name", "x", "-o", "yaml"}, "--output must be text or json"},
		{"duplicate id", []string{"--name", "x", "--client-id", "taken"}, `client "taken" already exists`},
		{"several problems at once", []string{"--name", "x", "--grant-type", "implicit", "--token-format", "x"}, "--token-format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &cli{t: t, dir: c.dir}
			c.fail(tt.want, append([]string{"client", "create"}, tt.args...)...)
			var list []clientView
			c.okJSON(&list, "client", "list", "-o", "json")
			if len(list) != 1 || list[0].ClientID != "taken" || list[0].Name != "existing" {
				t.Fatalf("a refused create changed the clients: %+v", list)
			}
		})
	}
}

func TestClientCommandsUnknownID(t *testing.T) {
	c := newCLI(t, testKEK)
	for _, sub := range []string{"show", "rotate-secret", "disable", "enable", "delete"} {
		c.fail(`client "nope" not found`, "client", sub, "nope", "-o", "json")
	}
	c.fail("--grace must not be negative", "client", "rotate-secret", "x", "--grace", "-1s")
	c.fail("accepts 1 arg", "client", "show")
}

func TestClientListEmpty(t *testing.T) {
	c := newCLI(t, testKEK)
	if out := strings.TrimSpace(c.ok("client", "list", "-o", "json")); out != "[]" {
		t.Errorf("list -o json with no clients = %q, want []", out)
	}
	if out := c.ok("client", "list"); !strings.Contains(out, "No clients") {
		t.Errorf("list with no clients = %q", out)
	}
}

// field returns the value after label on its line of out.
func field(t *testing.T, out, label string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), label); ok && k == "" {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %q in output:\n%s", label, out)
	return ""
}

func clientStatus(t *testing.T, c *cli, id string) store.ClientStatus {
	t.Helper()
	var v clientView
	c.okJSON(&v, "client", "show", id, "-o", "json")
	return store.ClientStatus(v.Status)
}

// TestClientUpdate: `client update` changes only the settings given, a
// list flag replaces (or with an empty value clears) the list, and the
// operator's grants appear in show.
func TestClientUpdate(t *testing.T) {
	c := newCLI(t, testKEK)
	c.ok("client", "create", "--name", "rs08", "--client-id", "rs08", "--audience", "https://backend.example.com/api", "--scope", "api")
	if _, _, err := c.run("client", "update", "rs08"); err == nil || !strings.Contains(err.Error(), "nothing to change") {
		t.Fatalf("update without settings: %v", err)
	}
	if _, _, err := c.run("client", "update", "nobody", "--exchange-any"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("update of an unknown client: %v", err)
	}
	if _, _, err := c.run("client", "update", "rs08", "--resource", "https://rs08.example.com/#x"); err == nil || !strings.Contains(err.Error(), "--resource") {
		t.Fatalf("bad resource: %v", err)
	}
	var v clientView
	c.okJSON(&v, "client", "update", "rs08", "--resource", "https://rs08.example.com", "--resource", "rs08-internal", "--introspect-any", "-o", "json")
	if !slices.Equal(v.Resources, []string{"https://rs08.example.com", "rs08-internal"}) || !v.IntrospectAny || v.ExchangeAny ||
		!slices.Equal(v.Audiences, []string{"https://backend.example.com/api"}) || v.Scope != "api" || v.Name != "rs08" {
		t.Fatalf("after update: %+v", v)
	}
	c.okJSON(&v, "client", "update", "rs08", "--introspect-any=false", "--exchange-any", "-o", "json")
	if v.IntrospectAny || !v.ExchangeAny || len(v.Resources) != 2 {
		t.Fatalf("after second update: %+v", v)
	}
	text := c.ok("client", "update", "rs08", "--resource", "")
	for _, want := range []string{"Updated client", "resources:", "(none)", "exchange_any:"} {
		if !strings.Contains(text, want) {
			t.Errorf("update output lacks %q:\n%s", want, text)
		}
	}
	c.okJSON(&v, "client", "show", "rs08", "-o", "json")
	if len(v.Resources) != 0 || !v.ExchangeAny {
		t.Fatalf("show after clearing resources: %+v", v)
	}
}
