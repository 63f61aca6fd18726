package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
)

// writeJWKS writes a key set of one fresh P-256 public key (or, with
// private, of the private key) to a file and returns its path.
func writeJWKS(t *testing.T, private bool) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var key any = &k.PublicKey
	if private {
		key = k
	}
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key, KeyID: "k1", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestIssuerLifecycle(t *testing.T) {
	c := newCLI(t, "")
	jwks := writeJWKS(t, false)
	c.ok("client", "create", "--name", "deployer", "--client-id", "deployer")
	c.ok("client", "create", "--name", "release", "--client-id", "release")

	out := c.ok("issuer", "list")
	if !strings.Contains(out, "No trusted issuers") {
		t.Errorf("empty list: %q", out)
	}

	// Static keys; policy, claims, every list.
	var v issuerView
	c.okJSON(&v, "issuer", "add", "https://kubernetes.default.svc", "--name", "k8s", "--jwks-file", jwks,
		"--client", "deployer", "--audience", "sts", "--token-type", "jwt", "--algorithm", "ES256",
		"--max-age", "10m", "--leeway", "30s",
		"--condition", `subject["kubernetes.io"].namespace == "prod"`,
		"--claim", `namespace=subject["kubernetes.io"].namespace`, "-o", "json")
	if v.Name != "k8s" || v.Issuer != "https://kubernetes.default.svc" || !v.Enabled || v.Source != store.IssuerSourceStore ||
		!slices.Equal(v.TokenTypes, []string{"jwt"}) || !slices.Equal(v.Algorithms, []string{"ES256"}) ||
		!slices.Equal(v.Audiences, []string{"sts"}) || !slices.Equal(v.Clients, []string{"deployer"}) ||
		v.MaxAge != 600 || v.Leeway != 30 || v.SubjectPrefix != "k8s:" || len(v.JWKS) == 0 ||
		v.Claims["namespace"] != `subject["kubernetes.io"].namespace` || v.Condition == "" {
		t.Errorf("add -o json = %+v", v)
	}

	// A JWKS URI, offline: the discovery check is not needed; defaults.
	out = c.ok("issuer", "add", "https://token.actions.githubusercontent.com", "--name", "github",
		"--jwks-uri", "https://token.actions.githubusercontent.com/.well-known/jwks", "--client", "*",
		"--subject", `subject.repository + "@" + subject.ref`)
	for _, want := range []string{`Added trusted issuer "github"`, "id_token jwt", "RS256", "github:(subject.repository", "1m0s"} {
		if !strings.Contains(out, want) {
			t.Errorf("add output lacks %q:\n%s", want, out)
		}
	}
	// Discovery, checked offline with --skip-discovery-check.
	c.ok("issuer", "add", "https://accounts.example.com", "--name", "idp", "--client", "release", "--skip-discovery-check", "--subject-prefix", "")
	stored, err := c.env().Store.GetIssuer(t.Context(), "idp")
	if err != nil || stored.JWKSURI != "" || len(stored.JWKS) != 0 || stored.SubjectPrefix != "" {
		t.Fatalf("idp: %+v %v", stored, err)
	}
	// The default audience is this server's issuer URL.
	if !slices.Equal(stored.Audiences, []string{"http://127.0.0.1:8080"}) {
		t.Errorf("default audience = %v", stored.Audiences)
	}

	var list []issuerView
	c.okJSON(&list, "issuer", "list", "-o", "json")
	if len(list) != 3 || list[0].Name != "github" || list[1].Name != "idp" || list[2].Name != "k8s" {
		t.Fatalf("list = %+v", list)
	}
	out = c.ok("issuer", "list")
	if !strings.Contains(out, "static JWKS (1 keys)") || !strings.Contains(out, "discovery") {
		t.Errorf("list:\n%s", out)
	}

	// Update: only what is given changes.
	c.okJSON(&v, "issuer", "update", "k8s", "--client", "deployer", "--client", "release", "--claim", "sa=subject.sub", "-o", "json")
	if !slices.Equal(v.Clients, []string{"deployer", "release"}) || len(v.Claims) != 2 || v.MaxAge != 600 || !slices.Equal(v.Audiences, []string{"sts"}) {
		t.Errorf("update = %+v", v)
	}
	v = issuerView{} // omitted members must not keep earlier values
	c.okJSON(&v, "issuer", "update", "k8s", "--clear-claims", "--condition", "", "--jwks-uri", "https://k8s.example.com/openid/v1/jwks", "-o", "json")
	if len(v.Claims) != 0 || v.Condition != "" || v.JWKSURI == "" || len(v.JWKS) != 0 {
		t.Errorf("update clearing = %+v", v)
	}
	c.fail("nothing to change", "issuer", "update", "k8s")
	c.fail(`issuer "ghost" not found`, "issuer", "update", "ghost", "--max-age", "1m")
	c.fail(`no client "nobody"`, "issuer", "update", "k8s", "--client", "nobody")

	// Disable, enable, show, remove.
	out = c.ok("issuer", "disable", "k8s")
	if !strings.Contains(out, "is now disabled") {
		t.Errorf("disable: %q", out)
	}
	out = c.ok("issuer", "show", "k8s")
	if !strings.Contains(out, "enabled:") || !strings.Contains(out, "false") {
		t.Errorf("show:\n%s", out)
	}
	c.ok("issuer", "enable", "k8s")
	c.ok("issuer", "remove", "k8s")
	c.fail(`issuer "k8s" not found`, "issuer", "show", "k8s")
	c.fail(`issuer "k8s" not found`, "issuer", "remove", "k8s")
}

// Bad input is refused with a message naming the flag, on one line, and
// nothing is stored.
func TestIssuerBadInput(t *testing.T) {
	c := newCLI(t, "")
	c.ok("client", "create", "--name", "a", "--client-id", "a")
	jwks := writeJWKS(t, false)
	priv := writeJWKS(t, true)
	base := []string{"issuer", "add", "https://idp.example.com", "--name", "idp", "--client", "a"}
	for _, tc := range []struct {
		want string
		args []string
	}{
		{"--name", []string{"issuer", "add", "https://idp.example.com", "--name", "IdP", "--client", "a", "--jwks-file", jwks}},
		{"ISSUER_URL", []string{"issuer", "add", "http://idp.example.com", "--name", "idp", "--client", "a", "--jwks-file", jwks}},
		{"--client give at least one", []string{"issuer", "add", "https://idp.example.com", "--name", "idp", "--jwks-file", jwks}},
		{`no client "ghost"`, append(slices.Clone(base), "--jwks-file", jwks, "--client", "ghost")},
		{"--jwks-file", append(slices.Clone(base), "--jwks-file", filepath.Join(t.TempDir(), "absent.json"))},
		{"private key", append(slices.Clone(base), "--jwks-file", priv)},
		{"not both", append(slices.Clone(base), "--jwks-file", jwks, "--jwks-uri", "https://idp.example.com/keys")},
		{"never accepted", append(slices.Clone(base), "--jwks-file", jwks, "--algorithm", "HS256")},
		{"--leeway", append(slices.Clone(base), "--jwks-file", jwks, "--leeway", "1h")},
		{"--token-type", append(slices.Clone(base), "--jwks-file", jwks, "--token-type", "saml2")},
		{"NAME=EXPR", append(slices.Clone(base), "--jwks-file", jwks, "--claim", "novalue")},
		{`issuer "idp"`, append(slices.Clone(base), "--jwks-file", jwks, "--condition", "subject.x ==")},
		{"--introspection-client-secret-file", append(slices.Clone(base), "--jwks-file", jwks, "--token-type", "access_token",
			"--introspection-endpoint", "https://idp.example.com/introspect", "--introspection-client-id", "sts")},
		// No key option: discovery is checked now (port 1 on loopback
		// refuses at once).
		{"discovery of http://127.0.0.1:1 failed", []string{"issuer", "add", "http://127.0.0.1:1", "--name", "idp", "--client", "a"}},
	} {
		c.fail(tc.want, tc.args...)
	}
	out := c.ok("issuer", "list")
	if !strings.Contains(out, "No trusted issuers") {
		t.Errorf("a refused add stored something:\n%s", out)
	}
	c.ok(append(slices.Clone(base), "--jwks-file", jwks)...)
	c.fail("already exists", append(slices.Clone(base), "--jwks-file", jwks)...)
}

// The upstream introspection secret comes from a file or the environment,
// is stored, and is never shown.
func TestIssuerIntrospectionSecret(t *testing.T) {
	c := newCLI(t, "")
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := c.ok("issuer", "add", "https://other-sts.example.com", "--name", "other", "--client", "*", "--skip-discovery-check",
		"--token-type", "access_token", "--introspection-endpoint", "https://other-sts.example.com/introspect",
		"--introspection-client-id", "sts-b", "--introspection-client-secret-file", secretFile, "-o", "json")
	if strings.Contains(out, "s3cret") {
		t.Errorf("the secret is shown:\n%s", out)
	}
	ti, err := c.env().Store.GetIssuer(t.Context(), "other")
	if err != nil || ti.IntrospectionClientSecret != "s3cret" || !slices.Equal(ti.TokenTypes, []string{oauth.TokenTypeAccessToken}) {
		t.Fatalf("stored: %+v %v", ti, err)
	}
	t.Setenv(envIntrospectionSecret, "from-env")
	c.ok("issuer", "update", "other", "--introspection-client-id", "sts-c")
	ti, _ = c.env().Store.GetIssuer(t.Context(), "other")
	if ti.IntrospectionClientSecret != "from-env" || ti.IntrospectionClientID != "sts-c" {
		t.Errorf("after update: %+v", ti)
	}
	// Other changes leave the secret alone, whatever the variable says.
	t.Setenv(envIntrospectionSecret, "stray")
	c.ok("issuer", "update", "other", "--max-age", "5m")
	c.ok("issuer", "add", "https://plain.example.com", "--name", "plain", "--client", "*", "--skip-discovery-check")
	c.ok("issuer", "update", "plain", "--max-age", "5m")
	ti, _ = c.env().Store.GetIssuer(t.Context(), "other")
	plain, _ := c.env().Store.GetIssuer(t.Context(), "plain")
	if ti.IntrospectionClientSecret != "from-env" || plain.IntrospectionClientSecret != "" {
		t.Errorf("a stray variable changed a secret: %q %q", ti.IntrospectionClientSecret, plain.IntrospectionClientSecret)
	}
	// Removing the endpoint removes its credentials.
	c.ok("issuer", "update", "other", "--introspection-endpoint", "", "--token-type", "jwt")
	ti, _ = c.env().Store.GetIssuer(t.Context(), "other")
	if ti.IntrospectionEndpoint != "" || ti.IntrospectionClientID != "" || ti.IntrospectionClientSecret != "" {
		t.Errorf("after removing the endpoint: %+v", ti)
	}
}

// CEL rules on clients: set on create, changed and cleared on update,
// shown, and refused (naming the client) when they do not compile.
func TestClientPolicyFlags(t *testing.T) {
	c := newCLI(t, "")
	var v clientView
	c.okJSON(&v, "client", "create", "--name", "p", "--client-id", "pol", "--condition", `client.id == "pol"`,
		"--claim", `team="ops"`, "-o", "json")
	if v.Condition != `client.id == "pol"` || v.Claims["team"] != `"ops"` {
		t.Errorf("create = %+v", v)
	}
	c.okJSON(&v, "client", "update", "pol", "--scope-rule", `["read"]`, "--claim", `env="prod"`, "-o", "json")
	if v.ScopeRule != `["read"]` || len(v.Claims) != 2 || v.Condition == "" {
		t.Errorf("update = %+v", v)
	}
	out := c.ok("client", "show", "pol")
	for _, want := range []string{`condition:`, `client.id == "pol"`, `claim env:`, `claim team:`, `scope_rule:`} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	c.fail(`client "pol"`, "client", "update", "pol", "--condition", `"not a bool"`)
	c.fail(`client "bad"`, "client", "create", "--name", "b", "--client-id", "bad", "--claim", `sub="x"`)
	c.fail("NAME=EXPR", "client", "create", "--name", "b", "--claim", "x")
	v = clientView{}
	c.okJSON(&v, "client", "update", "pol", "--clear-policy", "-o", "json")
	if v.Condition != "" || v.ScopeRule != "" || len(v.Claims) != 0 {
		t.Errorf("clear-policy = %+v", v)
	}
	stored, err := c.env().Store.GetClient(t.Context(), "pol")
	if err != nil || !stored.Policy.IsZero() {
		t.Errorf("stored policy: %+v %v", stored, err)
	}
}

// `sts serve` applies the configuration file's issuers before serving;
// they are read-only for `sts issuer`; an invalid one stops the start
// with a message naming it.
func TestServeAppliesConfigIssuers(t *testing.T) {
	c := newCLI(t, testKEK)
	c.ok("client", "create", "--name", "deployer", "--client-id", "deployer")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "jwks.json"), mustRead(t, writeJWKS(t, false)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "sts.yaml")
	write := func(yaml string) {
		t.Helper()
		if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("STS_CONFIG", cfg)

	write("issuers:\n  - name: k8s\n    issuer: https://kubernetes.default.svc\n    jwks-file: jwks.json\n    clients: [ghost]\n")
	_, _, err := c.run("serve", "--addr", "127.0.0.1:0")
	if err == nil || !strings.Contains(err.Error(), `issuer "k8s"`) || !strings.Contains(err.Error(), `no client "ghost"`) {
		t.Fatalf("serve with an unknown client: %v", err)
	}

	write("issuers:\n  - name: k8s\n    issuer: https://kubernetes.default.svc\n    jwks-file: jwks.json\n    clients: [deployer]\n    condition: 'subject.sub != \"\"'\n")
	_, _, stop := c.serve()
	stop()
	var v issuerView
	c.okJSON(&v, "issuer", "show", "k8s", "-o", "json")
	if v.Source != store.IssuerSourceConfig || !v.Enabled || v.Condition == "" || !slices.Equal(v.Clients, []string{"deployer"}) {
		t.Errorf("applied issuer: %+v", v)
	}
	c.fail(`issuer "k8s" is declared in the configuration file; change it there`, "issuer", "disable", "k8s")
	c.fail("declared in the configuration file", "issuer", "update", "k8s", "--max-age", "1m")
	c.fail("declared in the configuration file", "issuer", "remove", "k8s")
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
