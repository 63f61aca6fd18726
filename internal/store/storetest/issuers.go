package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/store"
)

var issuerTests = []test{
	{"CreateGet", testIssuerCreateGet},
	{"CreateConflict", testIssuerCreateConflict},
	{"GetNotFound", testIssuerGetNotFound},
	{"List", testIssuerList},
	{"Update", testIssuerUpdate},
	{"UpdateConflict", testIssuerUpdateConflict},
	{"UpdateNotFound", testIssuerUpdateNotFound},
	{"UpdateAborts", testIssuerUpdateAborts},
	{"Delete", testIssuerDelete},
}

// sampleJWKS is a JSON Web Key Set of one EC P-256 public key (RFC 7517
// appendix A.1), stored as given, byte for byte.
const sampleJWKS = `{"keys":[{"kty":"EC","crv":"P-256",
 "x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
 "y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","use":"sig","kid":"1"}]}`

// sampleIssuer sets every field of a trusted issuer.
func sampleIssuer(name string, created time.Time) *store.TrustedIssuer {
	return &store.TrustedIssuer{
		Name:                      name,
		Issuer:                    "https://" + name + ".idp.example.com",
		Enabled:                   true,
		Source:                    store.IssuerSourceStore,
		JWKSURI:                   "https://" + name + ".idp.example.com/keys",
		JWKS:                      []byte(sampleJWKS),
		IntrospectionEndpoint:     "https://" + name + ".idp.example.com/introspect",
		IntrospectionClientID:     "sts-" + name,
		IntrospectionClientSecret: "secret-" + name,
		TokenTypes:                []string{"urn:ietf:params:oauth:token-type:id_token", "urn:ietf:params:oauth:token-type:jwt"},
		Algorithms:                []string{"RS256", "ES256"},
		Audiences:                 []string{"https://sts.example.com", "sts"},
		MaxAge:                    10*time.Minute + time.Nanosecond,
		Leeway:                    30 * time.Second,
		Clients:                   []string{"c1", "c2"},
		SubjectPrefix:             name + ":",
		Policy: store.Policy{
			Condition: `subject.repository_owner == "keybridge" && subject.ref == "refs/heads/main"`,
			Scope:     `["deploy"]`,
			Claims:    map[string]string{"repo": "subject.repository", "ref": "subject.ref"},
			Subject:   `subject.repository + "@" + subject.ref`,
		},
		AllowHTTP: true,
		CreatedAt: created,
		UpdatedAt: created,
	}
}

func normIssuer(i *store.TrustedIssuer) *store.TrustedIssuer {
	if i == nil {
		return nil
	}
	n := *i
	n.JWKS = normBytes(n.JWKS)
	n.TokenTypes = normList(n.TokenTypes)
	n.Algorithms = normList(n.Algorithms)
	n.Audiences = normList(n.Audiences)
	n.Clients = normList(n.Clients)
	if len(n.Policy.Claims) == 0 {
		n.Policy.Claims = nil
	}
	n.CreatedAt = normTime(n.CreatedAt)
	n.UpdatedAt = normTime(n.UpdatedAt)
	return &n
}

func testIssuerCreateGet(t *testing.T, s store.Store) {
	ctx := t.Context()
	full := sampleIssuer("full", at(0))
	// Only the required fields: every optional one zero (keys by
	// discovery, no policy).
	minimal := &store.TrustedIssuer{Name: "minimal", Issuer: "https://minimal.example.com", Source: store.IssuerSourceConfig}
	for _, i := range []*store.TrustedIssuer{full, minimal} {
		must(t, s.CreateIssuer(ctx, i))
		got, err := s.GetIssuer(ctx, i.Name)
		must(t, err)
		equal(t, "GetIssuer "+i.Name, got, i, normIssuer)
	}
	got, err := s.GetIssuer(ctx, "full")
	must(t, err)
	if string(got.JWKS) != sampleJWKS {
		t.Errorf("JWKS = %q, want the bytes stored", got.JWKS)
	}
	// The result is the caller's to change.
	got.JWKS[0] = 'X'
	got.Audiences[0] = "changed"
	got.Policy.Claims["repo"] = "changed"
	again, err := s.GetIssuer(ctx, "full")
	must(t, err)
	equal(t, "GetIssuer after changing an earlier result", again, full, normIssuer)
}

func testIssuerCreateConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	i := sampleIssuer("dup", at(0))
	must(t, s.CreateIssuer(ctx, i))

	sameName := sampleIssuer("dup", at(time.Hour))
	sameName.Issuer = "https://other.example.com"
	wantErr(t, "CreateIssuer with an existing name", s.CreateIssuer(ctx, sameName), store.ErrConflict)

	sameIssuer := sampleIssuer("other", at(time.Hour))
	sameIssuer.Issuer = i.Issuer
	wantErr(t, "CreateIssuer with an existing issuer URL", s.CreateIssuer(ctx, sameIssuer), store.ErrConflict)
	if _, err := s.GetIssuer(ctx, "other"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetIssuer of the refused issuer: err = %v, want ErrNotFound", err)
	}
	got, err := s.GetIssuer(ctx, "dup")
	must(t, err)
	equal(t, "GetIssuer after the conflicts", got, i, normIssuer)
}

func testIssuerGetNotFound(t *testing.T, s store.Store) {
	_, err := s.GetIssuer(t.Context(), "absent")
	wantErr(t, "GetIssuer", err, store.ErrNotFound)
}

func testIssuerList(t *testing.T, s store.Store) {
	ctx := t.Context()
	got, err := s.ListIssuers(ctx)
	must(t, err)
	if len(got) != 0 {
		t.Fatalf("ListIssuers on an empty store = %d issuers", len(got))
	}
	// Inserted out of order, listed by name (by bytes: "Z" < "a" would
	// not hold for a locale collation, but names are lower case; '-'
	// sorts before digits and letters).
	names := []string{"okta", "github-actions", "k8s-prod", "a-1", "a1", "k8s"}
	for n, name := range names {
		must(t, s.CreateIssuer(ctx, sampleIssuer(name, at(time.Duration(n)*time.Minute))))
	}
	got, err = s.ListIssuers(ctx)
	must(t, err)
	var gotNames []string
	for _, i := range got {
		gotNames = append(gotNames, i.Name)
	}
	want := slices.Clone(names)
	slices.Sort(want)
	if !slices.Equal(gotNames, want) {
		t.Fatalf("ListIssuers names = %v, want %v", gotNames, want)
	}
	equal(t, "ListIssuers[okta]", got[slices.Index(gotNames, "okta")], sampleIssuer("okta", at(0)), normIssuer)
}

func testIssuerUpdate(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, s.CreateIssuer(ctx, sampleIssuer("upd", at(0))))

	before := time.Now().Truncate(time.Microsecond)
	got, err := s.UpdateIssuer(ctx, "upd", func(i *store.TrustedIssuer) error {
		i.Issuer = "https://moved.example.com"
		i.Enabled = false
		i.JWKSURI, i.JWKS = "", nil
		i.Algorithms = []string{"EdDSA"}
		i.Clients = []string{"*"}
		i.MaxAge = 0
		i.Policy = store.Policy{Condition: "true"}
		i.AllowHTTP = false
		return nil
	})
	after := time.Now()
	must(t, err)
	if got.UpdatedAt.Before(before) || got.UpdatedAt.After(after) {
		t.Errorf("UpdatedAt = %v, want within [%v, %v]", got.UpdatedAt, before, after)
	}
	want := sampleIssuer("upd", at(0))
	want.Issuer = "https://moved.example.com"
	want.Enabled = false
	want.JWKSURI, want.JWKS = "", nil
	want.Algorithms = []string{"EdDSA"}
	want.Clients = []string{"*"}
	want.MaxAge = 0
	want.Policy = store.Policy{Condition: "true"}
	want.AllowHTTP = false
	want.UpdatedAt = got.UpdatedAt
	equal(t, "UpdateIssuer result", got, want, normIssuer)
	stored, err := s.GetIssuer(ctx, "upd")
	must(t, err)
	equal(t, "GetIssuer after UpdateIssuer", stored, want, normIssuer)

	// The name is the key: an update may not change it.
	_, err = s.UpdateIssuer(ctx, "upd", func(i *store.TrustedIssuer) error { i.Name = "renamed"; return nil })
	if err == nil {
		t.Fatal("UpdateIssuer changing the name: no error")
	}
	if _, err := s.GetIssuer(ctx, "renamed"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetIssuer(renamed): err = %v, want ErrNotFound", err)
	}
}

// Moving an issuer to another's iss value is a conflict that changes
// nothing.
func testIssuerUpdateConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, b := sampleIssuer("a", at(0)), sampleIssuer("b", at(0))
	must(t, s.CreateIssuer(ctx, a))
	must(t, s.CreateIssuer(ctx, b))
	_, err := s.UpdateIssuer(ctx, "b", func(i *store.TrustedIssuer) error {
		i.Issuer = a.Issuer
		i.Enabled = false
		return nil
	})
	wantErr(t, "UpdateIssuer to another's issuer URL", err, store.ErrConflict)
	got, err := s.GetIssuer(ctx, "b")
	must(t, err)
	equal(t, "GetIssuer after the conflict", got, b, normIssuer)
}

func testIssuerUpdateNotFound(t *testing.T, s store.Store) {
	_, err := s.UpdateIssuer(t.Context(), "absent", func(*store.TrustedIssuer) error { return nil })
	wantErr(t, "UpdateIssuer", err, store.ErrNotFound)
}

func testIssuerUpdateAborts(t *testing.T, s store.Store) {
	ctx := t.Context()
	i := sampleIssuer("abort", at(0))
	must(t, s.CreateIssuer(ctx, i))
	errStop := errors.New("stop")
	_, err := s.UpdateIssuer(ctx, "abort", func(i *store.TrustedIssuer) error {
		i.Enabled = false
		return errStop
	})
	wantErr(t, "UpdateIssuer returning an error", err, errStop)
	got, err := s.GetIssuer(ctx, "abort")
	must(t, err)
	equal(t, "GetIssuer after an aborted update", got, i, normIssuer)
}

func testIssuerDelete(t *testing.T, s store.Store) {
	ctx := t.Context()
	for n := range 3 {
		must(t, s.CreateIssuer(ctx, sampleIssuer(fmt.Sprintf("d%d", n), at(0))))
	}
	must(t, s.DeleteIssuer(ctx, "d1"))
	_, err := s.GetIssuer(ctx, "d1")
	wantErr(t, "GetIssuer after DeleteIssuer", err, store.ErrNotFound)
	wantErr(t, "DeleteIssuer again", s.DeleteIssuer(ctx, "d1"), store.ErrNotFound)
	got, err := s.ListIssuers(ctx)
	must(t, err)
	if len(got) != 2 || got[0].Name != "d0" || got[1].Name != "d2" {
		t.Errorf("ListIssuers after DeleteIssuer = %d issuers", len(got))
	}
	// The issuer URL is free again.
	i := sampleIssuer("d1", at(time.Hour))
	must(t, s.CreateIssuer(ctx, i))
}
