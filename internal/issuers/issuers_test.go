package issuers_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/keybridge/sts/internal/issuers"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlite"
	"github.com/keybridge/sts/oauth"
)

const serverIssuer = "https://sts.example.com"

// jwks returns a key set of the keys given, as JSON.
func jwks(t *testing.T, keys ...any) []byte {
	t.Helper()
	var set jose.JSONWebKeySet
	for i, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k, KeyID: string(rune('a' + i)), Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ecKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func fields(err error) []string {
	var probs issuers.Problems
	if !errors.As(err, &probs) {
		return nil
	}
	var out []string
	for _, p := range probs {
		out = append(out, p.Field)
	}
	return out
}

func ptr[T any](v T) *T { return &v }

func TestBuildDefaults(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	s := issuers.Spec{Name: "github-actions", Issuer: "https://token.actions.githubusercontent.com", Clients: []string{"deployer"}}
	ti, err := s.Build(serverIssuer, now)
	if err != nil {
		t.Fatal(err)
	}
	if !ti.Enabled || ti.Source != store.IssuerSourceStore || ti.SubjectPrefix != "github-actions:" || ti.Leeway != issuers.DefaultLeeway {
		t.Errorf("defaults: %+v", ti)
	}
	if !slices.Equal(ti.TokenTypes, []string{oauth.TokenTypeIDToken, oauth.TokenTypeJWT}) {
		t.Errorf("TokenTypes = %v", ti.TokenTypes)
	}
	if !slices.Equal(ti.Algorithms, issuers.SupportedAlgorithms) || !slices.Equal(ti.Audiences, []string{serverIssuer}) {
		t.Errorf("Algorithms = %v, Audiences = %v", ti.Algorithms, ti.Audiences)
	}
	if !ti.CreatedAt.Equal(now) || !ti.UpdatedAt.Equal(now) {
		t.Errorf("times: %v %v", ti.CreatedAt, ti.UpdatedAt)
	}

	// Explicit values, short names and duplicates.
	s = issuers.Spec{
		Name: "k8s", Issuer: "http://127.0.0.1:6443", JWKS: jwks(t, ecKey(t).Public()),
		TokenTypes: []string{"jwt", oauth.TokenTypeJWT, "access_token"}, Algorithms: []string{"ES256", "ES256"},
		Audiences: []string{"sts", "sts"}, MaxAge: time.Hour, Leeway: ptr(time.Duration(0)),
		Clients: []string{"a", "*", "b"}, SubjectPrefix: ptr(""),
	}
	ti, err = s.Build(serverIssuer, now)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ti.TokenTypes, []string{oauth.TokenTypeJWT, oauth.TokenTypeAccessToken}) || !slices.Equal(ti.Algorithms, []string{"ES256"}) ||
		!slices.Equal(ti.Audiences, []string{"sts"}) || ti.Leeway != 0 || ti.SubjectPrefix != "" || !slices.Equal(ti.Clients, []string{"*"}) || ti.MaxAge != time.Hour {
		t.Errorf("explicit: %+v", ti)
	}
	// Without a server issuer and without audiences, Build cannot choose.
	s = issuers.Spec{Name: "x", Issuer: "https://x.example.com", Clients: []string{"*"}}
	if _, err := s.Build("", now); !slices.Equal(fields(err), []string{"audience"}) {
		t.Errorf("no audience: %v", err)
	}
	if err := s.Validate(); err != nil {
		t.Errorf("Validate needs no audience: %v", err)
	}
}

// Every problem is reported at once, each naming its field.
func TestValidateProblems(t *testing.T) {
	rsaPriv := jwks(t, ecKey(t))
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	for _, tc := range []struct {
		name string
		spec issuers.Spec
		want []string
		msg  string
	}{
		{"bad name", issuers.Spec{Name: "GitHub", Issuer: "https://x.example.com", Clients: []string{"*"}}, []string{"name"}, "lower-case"},
		{"name too long", issuers.Spec{Name: strings.Repeat("a", 64), Issuer: "https://x.example.com", Clients: []string{"*"}}, []string{"name"}, ""},
		{"name starts with dash", issuers.Spec{Name: "-a", Issuer: "https://x.example.com", Clients: []string{"*"}}, []string{"name"}, ""},
		{"no issuer", issuers.Spec{Name: "a", Clients: []string{"*"}}, []string{"issuer"}, "required"},
		{"relative issuer", issuers.Spec{Name: "a", Issuer: "/x", Clients: []string{"*"}}, []string{"issuer"}, "absolute"},
		{"http issuer", issuers.Spec{Name: "a", Issuer: "http://idp.example.com", Clients: []string{"*"}}, []string{"issuer"}, "https"},
		{"issuer with query", issuers.Spec{Name: "a", Issuer: "https://idp.example.com?x=1", Clients: []string{"*"}}, []string{"issuer"}, "query"},
		{"ftp jwks-uri", issuers.Spec{Name: "a", Issuer: "https://idp.example.com", JWKSURI: "ftp://idp.example.com/k", Clients: []string{"*"}}, []string{"jwks-uri"}, ""},
		{"both key sources", issuers.Spec{Name: "a", Issuer: "https://idp.example.com", JWKSURI: "https://idp.example.com/k", JWKS: jwks(t, &ecKey(t).PublicKey), Clients: []string{"*"}}, []string{"jwks"}, "not both"},
		{"jwks not json", issuers.Spec{Name: "a", Issuer: "https://idp.example.com", JWKS: []byte("{"), Clients: []string{"*"}}, []string{"jwks"}, "not a JSON Web Key Set"},
		{"jwks empty", issuers.Spec{Name: "a", Issuer: "https://idp.example.com", JWKS: []byte(`{"keys":[]}`), Clients: []string{"*"}}, []string{"jwks"}, "no key"},
		{"jwks private", issuers.Spec{Name: "a", Issuer: "https://idp.example.com", JWKS: rsaPriv, Clients: []string{"*"}}, []string{"jwks"}, "private key"},
		{"jwks oct", issuers.Spec{Name: "a", Issuer: "https://idp.example.com", JWKS: []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0","kid":"h"}]}`), Clients: []string{"*"}}, []string{"jwks"}, "symmetric"},
		{"introspection without credentials", issuers.Spec{Name: "a", Issuer: "https://idp.example.com", IntrospectionEndpoint: "https://idp.example.com/introspect", TokenTypes: []string{"access_token"}, Clients: []string{"*"}}, []string{"introspection-client-id", "introspection-client-secret"}, ""},
		{"credentials without introspection", issuers.Spec{Name: "a", Issuer: "https://idp.example.com", IntrospectionClientID: "x", Clients: []string{"*"}}, []string{"introspection-endpoint"}, ""},
		{"introspection without access_token", issuers.Spec{Name: "a", Issuer: "https://idp.example.com", IntrospectionEndpoint: "https://idp.example.com/i", IntrospectionClientID: "x", IntrospectionClientSecret: "y", Clients: []string{"*"}}, []string{"token-type"}, "access_token"},
		{"token type", issuers.Spec{Name: "a", Issuer: "https://idp.example.com", TokenTypes: []string{"saml2"}, Clients: []string{"*"}}, []string{"token-type"}, ""},
		{"alg none", issuers.Spec{Name: "a", Issuer: "https://idp.example.com", Algorithms: []string{"none", "HS256", "RS1"}, Clients: []string{"*"}}, []string{"algorithm", "algorithm", "algorithm"}, "never accepted"},
		{"negative durations", issuers.Spec{Name: "a", Issuer: "https://idp.example.com", MaxAge: -1, Leeway: ptr(-time.Second), Clients: []string{"*"}}, []string{"max-age", "leeway"}, ""},
		{"leeway too long", issuers.Spec{Name: "a", Issuer: "https://idp.example.com", Leeway: ptr(6 * time.Minute), Clients: []string{"*"}}, []string{"leeway"}, ""},
		{"no clients", issuers.Spec{Name: "a", Issuer: "https://idp.example.com"}, []string{"client"}, "at least one"},
		{"bad client", issuers.Spec{Name: "a", Issuer: "https://idp.example.com", Clients: []string{"a b"}}, []string{"client"}, ""},
		{"prefix control", issuers.Spec{Name: "a", Issuer: "https://idp.example.com", Clients: []string{"*"}, SubjectPrefix: ptr("a\n")}, []string{"subject-prefix"}, ""},
		{"everything", issuers.Spec{Name: "A", Issuer: "x", Algorithms: []string{"HS256"}}, []string{"name", "issuer", "algorithm", "client"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.spec.Validate()
			if got := fields(err); !slices.Equal(got, tc.want) {
				t.Fatalf("fields = %v, want %v (%v)", got, tc.want, err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
		})
	}
	// Accepted: loopback over http, http with allow-http, Ed25519 keys.
	for _, s := range []issuers.Spec{
		{Name: "a", Issuer: "http://localhost:9000", Clients: []string{"*"}},
		{Name: "a", Issuer: "http://[::1]:9000/realms/x", Clients: []string{"*"}},
		{Name: "a", Issuer: "http://idp.internal", JWKSURI: "http://idp.internal/keys", AllowHTTP: true, Clients: []string{"*"}},
		{Name: "a", Issuer: "https://idp.example.com", JWKS: jwks(t, edPub, &ecKey(t).PublicKey), Clients: []string{"*"}},
	} {
		if err := s.Validate(); err != nil {
			t.Errorf("%+v: %v", s, err)
		}
	}
}

// CEL rules are type-checked when checked; the message names the issuer.
func TestValidatePolicy(t *testing.T) {
	good := issuers.Spec{Name: "gh", Issuer: "https://token.actions.githubusercontent.com", Clients: []string{"*"},
		Policy: store.Policy{
			Condition: `subject.repository == "keybridge/sts" && subject.ref == "refs/heads/main"`,
			Claims:    map[string]string{"repo": "subject.repository"},
			Subject:   `subject.repository`,
		}}
	if err := good.Validate(); err != nil {
		t.Fatalf("good policy: %v", err)
	}
	for name, p := range map[string]store.Policy{
		"syntax":         {Condition: `subject.repository ==`},
		"not a bool":     {Condition: `"yes"`},
		"reserved claim": {Claims: map[string]string{"sub": `"x"`}},
		"unknown var":    {Condition: `nobody.here == 1`},
	} {
		s := good
		s.Policy = p
		err := s.Validate()
		if got := fields(err); !slices.Equal(got, []string{"policy"}) {
			t.Errorf("%s: fields = %v (%v)", name, got, err)
			continue
		}
		if !strings.Contains(err.Error(), `issuer "gh"`) {
			t.Errorf("%s: %q does not name the issuer", name, err)
		}
	}
}

func newService(t *testing.T) *issuers.Service {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "sts.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, id := range []string{"c1", "c2"} {
		if err := st.CreateClient(context.Background(), &store.Client{ID: id, Name: id, Status: store.ClientActive, TokenFormat: store.TokenFormatJWT}); err != nil {
			t.Fatal(err)
		}
	}
	return &issuers.Service{Store: st, Issuer: serverIssuer}
}

func TestService(t *testing.T) {
	ctx := context.Background()
	s := newService(t)
	spec := issuers.Spec{Name: "okta", Issuer: "https://example.okta.com", Clients: []string{"c1"}, Audiences: []string{"api://sts"}}
	ti, err := s.Add(ctx, "test", spec)
	if err != nil {
		t.Fatal(err)
	}
	if !ti.Enabled || ti.Source != store.IssuerSourceStore {
		t.Errorf("Add: %+v", ti)
	}
	// Conflicts: the name, the issuer URL.
	if _, err := s.Add(ctx, "test", spec); !errors.Is(err, store.ErrConflict) {
		t.Errorf("Add again: %v", err)
	}
	other := spec
	other.Name = "okta2"
	if _, err := s.Add(ctx, "test", other); !errors.Is(err, store.ErrConflict) {
		t.Errorf("Add with the same issuer URL: %v", err)
	}
	// Clients must exist.
	other.Issuer, other.Clients = "https://other.example.com", []string{"c1", "ghost"}
	if _, err := s.Add(ctx, "test", other); !slices.Equal(fields(err), []string{"client"}) || !strings.Contains(err.Error(), `"ghost"`) {
		t.Errorf("Add with an unknown client: %v", err)
	}

	// A partial update keeps what it does not change.
	before := ti
	upd, err := s.Update(ctx, "test", "okta", func(sp *issuers.Spec) error {
		sp.Clients = []string{"c1", "c2"}
		sp.MaxAge = time.Hour
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(upd.Clients, []string{"c1", "c2"}) || upd.MaxAge != time.Hour || !slices.Equal(upd.Audiences, before.Audiences) ||
		upd.SubjectPrefix != "okta:" || upd.Leeway != before.Leeway || !upd.Enabled {
		t.Errorf("Update: %+v", upd)
	}
	if _, err := s.Update(ctx, "test", "okta", func(sp *issuers.Spec) error { sp.Clients = []string{"ghost"}; return nil }); err == nil {
		t.Error("Update to an unknown client: no error")
	}
	if _, err := s.Update(ctx, "test", "okta", func(sp *issuers.Spec) error { sp.Name = "x"; return nil }); err == nil {
		t.Error("Update renaming: no error")
	}
	if _, err := s.Update(ctx, "test", "absent", func(*issuers.Spec) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Update of an absent issuer: %v", err)
	}

	// Disable and enable report the previous state.
	d, was, err := s.Disable(ctx, "test", "okta")
	if err != nil || !was || d.Enabled {
		t.Errorf("Disable: %+v %t %v", d, was, err)
	}
	if _, was, _ := s.Disable(ctx, "test", "okta"); was {
		t.Error("Disable twice: was enabled")
	}
	// An update keeps the issuer disabled.
	if u, err := s.Update(ctx, "test", "okta", func(sp *issuers.Spec) error { sp.MaxAge = 0; return nil }); err != nil || u.Enabled {
		t.Errorf("Update of a disabled issuer: %+v %v", u, err)
	}
	e, was, err := s.Enable(ctx, "test", "okta")
	if err != nil || was || !e.Enabled {
		t.Errorf("Enable: %+v %t %v", e, was, err)
	}
	list, err := s.List(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("List: %v %v", list, err)
	}
	if err := s.Remove(ctx, "test", "okta"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "okta"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after Remove: %v", err)
	}
	if err := s.Remove(ctx, "test", "okta"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Remove again: %v", err)
	}
}

func TestApplyConfig(t *testing.T) {
	ctx := context.Background()
	s := newService(t)
	managed, err := s.Add(ctx, "test", issuers.Spec{Name: "managed", Issuer: "https://managed.example.com", Clients: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	k8s := issuers.Spec{Name: "k8s", Issuer: "https://kubernetes.default.svc", JWKS: jwks(t, &ecKey(t).PublicKey), Clients: []string{"c1"},
		Policy: store.Policy{Condition: `subject["kubernetes.io"].namespace == "prod"`}}
	gh := issuers.Spec{Name: "gh", Issuer: "https://token.actions.githubusercontent.com", Clients: []string{"c2"}}
	done, err := s.ApplyConfig(ctx, []issuers.Spec{k8s, gh})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(done.Added, []string{"k8s", "gh"}) || len(done.Updated)+len(done.Removed)+len(done.Unchanged) != 0 {
		t.Errorf("first apply: %+v", done)
	}
	got, err := s.Get(ctx, "k8s")
	if err != nil || got.Source != store.IssuerSourceConfig || !got.Enabled || got.Policy.Condition != k8s.Policy.Condition {
		t.Fatalf("k8s: %+v %v", got, err)
	}
	// Read-only elsewhere, with a clear message.
	want := `issuer "k8s" is declared in the configuration file; change it there`
	if _, err := s.Update(ctx, "test", "k8s", func(*issuers.Spec) error { return nil }); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Update of a config issuer: %v", err)
	}
	if _, _, err := s.Disable(ctx, "test", "k8s"); !errors.Is(err, issuers.ErrReadOnly) {
		t.Errorf("Disable of a config issuer: %v", err)
	}
	if err := s.Remove(ctx, "test", "k8s"); !errors.Is(err, issuers.ErrReadOnly) {
		t.Errorf("Remove of a config issuer: %v", err)
	}

	// The same file again changes nothing (nothing is written).
	done, err = s.ApplyConfig(ctx, []issuers.Spec{k8s, gh})
	if err != nil || !slices.Equal(done.Unchanged, []string{"k8s", "gh"}) {
		t.Errorf("second apply: %+v %v", done, err)
	}
	again, _ := s.Get(ctx, "k8s")
	if !again.UpdatedAt.Equal(got.UpdatedAt) {
		t.Errorf("an unchanged issuer was rewritten")
	}

	// A changed declaration is updated, a dropped one removed, the issuer
	// managed in the store left alone.
	k8s.MaxAge = time.Hour
	done, err = s.ApplyConfig(ctx, []issuers.Spec{k8s})
	if err != nil || !slices.Equal(done.Updated, []string{"k8s"}) || !slices.Equal(done.Removed, []string{"gh"}) {
		t.Errorf("third apply: %+v %v", done, err)
	}
	if got, _ := s.Get(ctx, "k8s"); got.MaxAge != time.Hour {
		t.Errorf("k8s not updated: %+v", got)
	}
	if _, err := s.Get(ctx, "gh"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("gh not removed: %v", err)
	}
	if got, err := s.Get(ctx, "managed"); err != nil || got.Source != store.IssuerSourceStore || !got.UpdatedAt.Equal(managed.UpdatedAt) {
		t.Errorf("managed issuer touched: %+v %v", got, err)
	}

	// Errors: nothing changes, and every bad issuer is named.
	clash := issuers.Spec{Name: "managed", Issuer: "https://managed.example.com", Clients: []string{"*"}}
	ghost := issuers.Spec{Name: "ghost", Issuer: "https://ghost.example.com", Clients: []string{"nobody"}}
	badCEL := issuers.Spec{Name: "bad-cel", Issuer: "https://cel.example.com", Clients: []string{"*"}, Policy: store.Policy{Condition: "subject.x =="}}
	_, err = s.ApplyConfig(ctx, []issuers.Spec{clash, ghost, badCEL})
	for _, w := range []string{`issuer "managed"`, "sts issuer", `issuer "ghost"`, `"nobody"`, `issuer "bad-cel"`} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("bad apply: %v does not say %s", err, w)
		}
	}
	if _, err := s.Get(ctx, "k8s"); err != nil {
		t.Errorf("a failed apply removed k8s: %v", err)
	}
	if _, err := s.ApplyConfig(ctx, []issuers.Spec{k8s, k8s}); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("duplicate: %v", err)
	}

	// An empty list removes every declared issuer.
	done, err = s.ApplyConfig(ctx, nil)
	if err != nil || !slices.Equal(done.Removed, []string{"k8s"}) {
		t.Errorf("empty apply: %+v %v", done, err)
	}
}

// Every change is audited with who made it; a no-op is not.
func TestAudit(t *testing.T) {
	ctx := context.Background()
	s := newService(t)
	spec := issuers.Spec{Name: "okta", Issuer: "https://example.okta.com", Clients: []string{"c1"}}
	if _, err := s.Add(ctx, "operator:alice", spec); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, "cli", "okta", func(sp *issuers.Spec) error { sp.MaxAge = time.Minute; return nil }); err != nil {
		t.Fatal(err)
	}
	s.Disable(ctx, "cli", "okta")
	s.Disable(ctx, "cli", "okta") // already disabled: nothing to record
	s.Enable(ctx, "cli", "okta")
	if err := s.Remove(ctx, "cli", "okta"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ApplyConfig(ctx, []issuers.Spec{{Name: "k8s", Issuer: "https://k8s.example.com", Clients: []string{"*"}}}); err != nil {
		t.Fatal(err)
	}
	recs, err := s.Store.ListAudit(ctx, store.AuditFilter{Action: "issuer"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := len(recs) - 1; i >= 0; i-- { // oldest first
		got = append(got, recs[i].Action+" by "+recs[i].Subject)
	}
	want := []string{"issuer.add by operator:alice", "issuer.update by cli", "issuer.disable by cli", "issuer.enable by cli",
		"issuer.remove by cli", "issuer.add by config"}
	if !slices.Equal(got, want) {
		t.Errorf("audit = %v, want %v", got, want)
	}
	if len(recs) > 0 && !strings.Contains(recs[0].Detail, "https://k8s.example.com") {
		t.Errorf("detail = %q", recs[0].Detail)
	}
}

// Instances starting at once from one file and database all succeed, and
// agree.
func TestApplyConfigConcurrent(t *testing.T) {
	ctx := context.Background()
	s := newService(t)
	specs := []issuers.Spec{
		{Name: "a", Issuer: "https://a.example.com", Clients: []string{"*"}},
		{Name: "b", Issuer: "https://b.example.com", Clients: []string{"c1"}},
	}
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			other := &issuers.Service{Store: s.Store, Issuer: serverIssuer}
			_, err := other.ApplyConfig(ctx, specs)
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Errorf("ApplyConfig: %v", err)
		}
	}
	list, err := s.List(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("List: %d %v", len(list), err)
	}
}
