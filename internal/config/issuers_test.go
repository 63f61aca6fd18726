package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/keybridge/sts/oauth"
)

// testJWKS is one EC P-256 public key (RFC 7517 appendix A.1).
const testJWKS = `{"keys":[{"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","use":"sig","kid":"1"}]}`

// loadFile writes yaml as the configuration file of a serve command, with
// the files given beside it, and loads it.
func loadFile(t *testing.T, yaml string, files map[string]string) (*Config, error) {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "sts.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	RegisterStorage(fs)
	RegisterServe(fs)
	if err := fs.Parse([]string{"--config", path}); err != nil {
		t.Fatal(err)
	}
	return Load(fs, func(string) string { return "" })
}

func TestIssuersGood(t *testing.T) {
	c, err := loadFile(t, `
addr: 127.0.0.1:9090
issuers:
  - name: k8s
    issuer: https://kubernetes.default.svc
    jwks-file: cluster-jwks.json
    token-types: [jwt]
    algorithms: [ES256, RS256]
    audiences: [sts]
    max-age: 10m
    leeway: 30s
    clients: [deployer]
    subject-prefix: "cluster-a/"
    condition: 'subject["kubernetes.io"].namespace == "prod"'
    claims:
      namespace: 'subject["kubernetes.io"].namespace'
  - name: other-sts
    issuer: http://127.0.0.1:9191
    token-types: [access_token]
    introspection-endpoint: http://127.0.0.1:9191/introspect
    introspection-client-id: sts-b
    introspection-client-secret-file: secret
    clients: ["*"]
    allow-http: true
`, map[string]string{"cluster-jwks.json": testJWKS, "secret": "s3cret\n"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:9090" || len(c.Issuers) != 2 {
		t.Fatalf("config: addr %q, %d issuers", c.Addr, len(c.Issuers))
	}
	k := c.Issuers[0]
	if k.Name != "k8s" || string(k.JWKS) != testJWKS || k.MaxAge != 10*time.Minute || k.Leeway == nil || *k.Leeway != 30*time.Second ||
		!slices.Equal(k.Clients, []string{"deployer"}) || k.SubjectPrefix == nil || *k.SubjectPrefix != "cluster-a/" ||
		k.Policy.Claims["namespace"] == "" || k.Policy.Condition == "" {
		t.Errorf("k8s = %+v", k)
	}
	ti, err := k.Build(c.Issuer, time.Now())
	if err != nil || !slices.Equal(ti.TokenTypes, []string{oauth.TokenTypeJWT}) || !slices.Equal(ti.Audiences, []string{"sts"}) {
		t.Errorf("k8s built: %+v %v", ti, err)
	}
	o := c.Issuers[1]
	if o.IntrospectionClientSecret != "s3cret" || !o.AllowHTTP || o.Leeway != nil {
		t.Errorf("other-sts = %+v", o)
	}

	// No issuers key, or an empty one: none.
	for _, y := range []string{"log-level: warn\n", "issuers:\n", "issuers: []\n"} {
		c, err := loadFile(t, y, nil)
		if err != nil || len(c.Issuers) != 0 {
			t.Errorf("%q: %d issuers, %v", y, len(c.Issuers), err)
		}
	}
}

func TestIssuersBad(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"unknown key", `
issuers:
  - name: a
    issuer: https://a.example.com
    clients: ["*"]
    conditon: "true"
`, []string{"line 6", "conditon", "not found"}},
		{"not a list", "issuers: {name: a}\n", []string{"line 1", "cannot unmarshal", "IssuerEntry"}},
		{"bad duration", `
issuers:
  - name: a
    issuer: https://a.example.com
    clients: ["*"]
    max-age: ten minutes
    leeway: 1h
`, []string{`issuer "a": max-age: "ten minutes" is not a duration`, `issuer "a": leeway:`}},
		{"bad URL", `
issuers:
  - name: a
    issuer: http://a.example.com
    jwks-uri: not a url
    clients: ["*"]
`, []string{`issuer "a": issuer: "http://a.example.com" must use https`, `issuer "a": jwks-uri:`}},
		{"missing file", `
issuers:
  - name: a
    issuer: https://a.example.com
    jwks-file: absent.json
    clients: ["*"]
`, []string{`issuer "a": jwks-file:`, "absent.json"}},
		{"bad CEL", `
issuers:
  - name: gh
    issuer: https://token.actions.githubusercontent.com
    clients: ["*"]
    condition: 'subject.repository =='
    claims:
      sub: '"x"'
`, []string{`issuers: issuer "gh": condition: 1:22`, `issuer "gh": claim sub`, "reserved"}},
		{"every problem at once", `
log-level: loud
issuers:
  - name: A
    issuer: https://a.example.com
  - name: b
    issuer: https://b.example.com
    algorithms: [HS256]
    clients: [x]
  - name: b
    issuer: https://c.example.com
    clients: [x]
`, []string{"log-level", `issuer "A": name:`, `issuer "A": clients:`, `issuer "b": algorithms:`, `issuer "b": declared twice`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadFile(t, tc.yaml, nil)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
