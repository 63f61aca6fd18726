package clients_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/clientauth"
	"github.com/keybridge/sts/internal/clients"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlite"
	"github.com/keybridge/sts/oauth"
)

func newRegistry(t *testing.T) *clients.Registry {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "sts.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &clients.Registry{Store: st, Hasher: clientauth.NewHasher([]byte("k")), Now: time.Now}
}

func newAccount(t *testing.T, r *clients.Registry, id string, status store.AccountStatus, auds, scopes []string) {
	t.Helper()
	now := time.Now()
	if err := r.Store.CreateAccount(context.Background(), &store.Account{
		ID: id, Kind: store.AccountIndividual, Name: id, Status: status,
		Audiences: auds, Scopes: scopes, CreatedAt: now, UpdatedAt: now,
	}); err != nil {
		t.Fatal(err)
	}
}

func fields(err error) []string {
	var probs clients.Problems
	if !errors.As(err, &probs) {
		return nil
	}
	var out []string
	for _, p := range probs {
		out = append(out, p.Field)
	}
	return out
}

func TestBuildRegistrationFields(t *testing.T) {
	c, err := (&clients.Spec{Name: "radio", HardwareAddress: "00-1A-2B-3C-4D-5E", SoftwareID: "fw"}).Build(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if c.HardwareAddress != "00:1a:2b:3c:4d:5e" {
		t.Errorf("hardware address stored as %q, want lower-case hex with colons", c.HardwareAddress)
	}
	for name, s := range map[string]clients.Spec{
		"short MAC":              {Name: "x", HardwareAddress: "00:1a:2b"},
		"20-byte MAC":            {Name: "x", HardwareAddress: "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01"},
		"control in software_id": {Name: "x", SoftwareID: "a\nb"},
		"metadata not an object": {Name: "x", Metadata: []byte(`[1]`)},
		"metadata not JSON":      {Name: "x", Metadata: []byte(`{`)},
		"auth method none":       {Name: "x", AuthMethod: "none"},
	} {
		if _, err := s.Build(time.Now()); err == nil {
			t.Errorf("%s: built", name)
		}
	}
}

func TestRegistryAccountBounds(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	newAccount(t, r, "acct-a", store.AccountActive, []string{"https://api.example.com"}, []string{"read"})
	newAccount(t, r, "acct-closed", store.AccountClosed, nil, nil)

	if _, _, err := r.Create(ctx, "cli", clients.Spec{Name: "x", AccountID: "acct-a", Audiences: []string{"https://other.example.com"}, Scopes: []string{"read write"}}, store.ClientActive); len(fields(err)) != 2 {
		t.Errorf("outside the bounds: %v", err)
	}
	if _, _, err := r.Create(ctx, "cli", clients.Spec{Name: "x", AccountID: "acct-none"}, store.ClientActive); fields(err) == nil {
		t.Errorf("unknown account: %v", err)
	}
	if _, _, err := r.Create(ctx, "cli", clients.Spec{Name: "x", AccountID: "acct-closed"}, store.ClientActive); fields(err) == nil {
		t.Errorf("closed account: %v", err)
	}
	c, _, err := r.Create(ctx, "cli", clients.Spec{Name: "x", AccountID: "acct-a", Audiences: []string{"https://api.example.com"}, Scopes: []string{"read"}}, store.ClientActive)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Update(ctx, "cli", c.ID, func(s *clients.Spec) error { s.Scopes = []string{"admin"}; return nil }); fields(err) == nil {
		t.Errorf("update outside the bounds: %v", err)
	}
	if _, err := r.Update(ctx, "cli", c.ID, func(s *clients.Spec) error { s.AccountID = ""; return nil }); fields(err) == nil {
		t.Errorf("update moving the client out of its account: %v", err)
	}
	if u, err := r.Update(ctx, "cli", c.ID, func(s *clients.Spec) error { s.Name = "renamed"; return nil }); err != nil || u.Name != "renamed" {
		t.Errorf("update within the bounds: %v", err)
	}
	// A client outside any account has no bounds.
	if _, _, err := r.Create(ctx, "cli", clients.Spec{Name: "free", Scopes: []string{"admin"}}, store.ClientActive); err != nil {
		t.Errorf("client without account: %v", err)
	}
}

func TestRegistryReplace(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	newAccount(t, r, "acct-a", store.AccountActive, nil, nil)
	spec := clients.Spec{Name: "radio", AccountID: "acct-a", Audiences: []string{"sas"}, AuthMethod: oauth.AuthMethodClientSecretBasic}
	c, secret, err := r.Register(ctx, "account:acct-a", spec, store.ClientActive, []byte("rat-hash-1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.RegistrationTokenHash, []byte("rat-hash-1")) {
		t.Errorf("registration token hash %q", c.RegistrationTokenHash)
	}

	// A failing check changes nothing.
	stop := errors.New("stop")
	_, _, err = r.Replace(ctx, "x", c.ID, clients.Replacement{Action: "client.update", Spec: spec, NewSecret: true,
		RegistrationTokenHash: []byte("rat-hash-2"), Check: func(*store.Client) error { return stop }})
	if !errors.Is(err, stop) {
		t.Fatalf("check error: %v", err)
	}
	got, _ := r.Store.GetClient(ctx, c.ID)
	if !bytes.Equal(got.SecretHash, r.Hasher.Hash(secret)) || !bytes.Equal(got.RegistrationTokenHash, []byte("rat-hash-1")) {
		t.Error("a refused replacement changed the secret or token")
	}

	// Secret, token and metadata change together; an equal scope of
	// privileges under the same name keeps the client active even with
	// Reapprove.
	spec.SoftwareVersion = "2"
	n, secret2, err := r.Replace(ctx, "account:acct-a", c.ID, clients.Replacement{Action: "client.reregister", Spec: spec,
		NewSecret: true, RegistrationTokenHash: []byte("rat-hash-2"), Reapprove: true})
	if err != nil {
		t.Fatal(err)
	}
	if secret2 == "" || secret2 == secret || n.SoftwareVersion != "2" || n.Status != store.ClientActive ||
		!bytes.Equal(n.RegistrationTokenHash, []byte("rat-hash-2")) || !bytes.Equal(n.SecretHash, r.Hasher.Hash(secret2)) ||
		len(n.PrevSecretHash) != 0 || !n.CreatedAt.Equal(got.CreatedAt) || n.AccountID != "acct-a" {
		t.Errorf("replaced: %+v", n)
	}
	// Wider with Reapprove: pending. Without NewSecret the secret stays.
	spec.Audiences = []string{"sas", "https://backend.example.com"}
	n, s3, err := r.Replace(ctx, "x", c.ID, clients.Replacement{Action: "client.update", Spec: spec, Reapprove: true})
	if err != nil {
		t.Fatal(err)
	}
	if s3 != "" || n.Status != store.ClientPending || !bytes.Equal(n.SecretHash, r.Hasher.Hash(secret2)) {
		t.Errorf("widened: status %s, secret %q", n.Status, s3)
	}
	// The account cannot be changed through the spec.
	spec.AccountID = ""
	if n, _, err := r.Replace(ctx, "x", c.ID, clients.Replacement{Action: "client.update", Spec: spec}); err != nil || n.AccountID != "acct-a" {
		t.Errorf("replacement moved the client: %v %q", err, n.AccountID)
	}
	recs, _ := r.Store.ListAudit(ctx, store.AuditFilter{ClientID: c.ID})
	seen := map[string]bool{}
	for _, rec := range recs {
		seen[rec.Action] = true
	}
	for _, a := range []string{"client.register", "client.reregister", "client.rotate_secret", "client.update"} {
		if !seen[a] {
			t.Errorf("no audit record %s (%v)", a, seen)
		}
	}
}

func TestWidens(t *testing.T) {
	base := &store.Client{GrantTypes: []string{"a"}, Audiences: []string{"x"}, Scopes: []string{"s"}}
	for name, tc := range map[string]struct {
		next *store.Client
		want bool
	}{
		"same":           {&store.Client{GrantTypes: []string{"a"}, Audiences: []string{"x"}, Scopes: []string{"s"}}, false},
		"narrower":       {&store.Client{}, false},
		"grant":          {&store.Client{GrantTypes: []string{"a", "b"}}, true},
		"audience":       {&store.Client{Audiences: []string{"y"}}, true},
		"scope":          {&store.Client{Scopes: []string{"s", "t"}}, true},
		"impersonation":  {&store.Client{AllowImpersonation: true}, true},
		"resource":       {&store.Client{Resources: []string{"https://rs.example.com"}}, true},
		"exchange-any":   {&store.Client{ExchangeAny: true}, true},
		"introspect-any": {&store.Client{IntrospectAny: true}, true},
	} {
		if got := clients.Widens(base, tc.next); got != tc.want {
			t.Errorf("%s: Widens = %v", name, got)
		}
	}
}

// TestRegistryIdentity checks the registration identity: kept by Build,
// checked for control characters, unique per account (Register fails with
// ErrConflict; Replace and Update into a taken one with a Problem on the
// identity, changing nothing), and kept by an operator's Update.
func TestRegistryIdentity(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	newAccount(t, r, "acct-a", store.AccountActive, nil, nil)
	newAccount(t, r, "acct-b", store.AccountActive, nil, nil)
	spec := func(name, identity, account string) clients.Spec {
		return clients.Spec{Name: name, AccountID: account, Identity: identity}
	}
	a, _, err := r.Register(ctx, "x", spec("a", "name:a", "acct-a"), store.ClientActive, nil, nil)
	if err != nil || a.Identity != "name:a" {
		t.Fatalf("Register: %+v, %v", a, err)
	}
	if _, _, err := r.Register(ctx, "x", spec("a2", "name:a", "acct-a"), store.ClientActive, nil, nil); !errors.Is(err, store.ErrConflict) {
		t.Errorf("Register of a taken identity: %v, want ErrConflict", err)
	}
	if _, _, err := r.Register(ctx, "x", spec("a", "name:a", "acct-b"), store.ClientActive, nil, nil); err != nil {
		t.Errorf("Register of the identity in another account: %v", err)
	}
	if _, _, err := r.Register(ctx, "x", spec("bad", "name:a\x00b", "acct-a"), store.ClientActive, nil, nil); !slices.Equal(fields(err), []string{"identity"}) {
		t.Errorf("Register of an identity with a NUL: %v", err)
	}
	b, _, err := r.Register(ctx, "x", spec("b", "name:b", "acct-a"), store.ClientActive, nil, nil)
	if err != nil {
		t.Fatal(err)
	}

	_, _, err = r.Replace(ctx, "x", b.ID, clients.Replacement{Action: "client.update", Spec: spec("a", "name:a", "")})
	if !slices.Equal(fields(err), []string{"identity"}) {
		t.Errorf("Replace into a taken identity: %v, want a problem with the identity", err)
	}
	_, err = r.Update(ctx, "x", b.ID, func(s *clients.Spec) error { s.Identity = "name:a"; return nil })
	if !slices.Equal(fields(err), []string{"identity"}) {
		t.Errorf("Update into a taken identity: %v, want a problem with the identity", err)
	}
	if got, _ := r.Store.GetClient(ctx, b.ID); got.Identity != "name:b" || got.Name != "b" {
		t.Errorf("a refused change changed the client: %+v", got)
	}
	// An operator's edit keeps the identity.
	n, err := r.Update(ctx, "x", b.ID, func(s *clients.Spec) error { s.Name = "renamed"; return nil })
	if err != nil || n.Identity != "name:b" {
		t.Errorf("Update: %+v, %v; want the identity kept", n, err)
	}
	n, _, err = r.Replace(ctx, "x", b.ID, clients.Replacement{Action: "client.update", Spec: spec("c", "name:c", "")})
	if err != nil || n.Identity != "name:c" {
		t.Errorf("Replace into a free identity: %+v, %v", n, err)
	}
}

// TestRegistryOperatorGrants: resources, exchange-any and introspect-any
// are checked, stored, shown by SpecOf and kept by an operator's Update; a
// replacement from registration metadata (which has no such members)
// (a re-registration: issue 8, finding 5) drops them rather than carrying
// them over.
func TestRegistryOperatorGrants(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	if _, _, err := r.Create(ctx, "cli", clients.Spec{Name: "x", Resources: []string{"https://rs.example.com/#frag", "has space"}}, store.ClientActive); !slices.Equal(fields(err), []string{"resource", "resource"}) {
		t.Fatalf("bad resources: %v", err)
	}
	c, _, err := r.Create(ctx, "cli", clients.Spec{Name: "rs08",
		Resources:   []string{"https://rs08.example.com", "https://rs08.example.com", "billing"},
		ExchangeAny: true, IntrospectAny: true}, store.ClientActive)
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.Store.GetClient(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Resources, []string{"https://rs08.example.com", "billing"}) || !got.ExchangeAny || !got.IntrospectAny {
		t.Fatalf("stored %v exchange-any %v introspect-any %v", got.Resources, got.ExchangeAny, got.IntrospectAny)
	}
	if s := clients.SpecOf(got); !slices.Equal(s.Resources, got.Resources) || !s.ExchangeAny || !s.IntrospectAny {
		t.Fatalf("SpecOf %+v", s)
	}
	// An unrelated update keeps them; an explicit one changes them.
	if got, err = r.Update(ctx, "cli", c.ID, func(s *clients.Spec) error { s.Name = "rs08 v2"; return nil }); err != nil || len(got.Resources) != 2 || !got.ExchangeAny || !got.IntrospectAny {
		t.Fatalf("update dropped grants: %+v %v", got, err)
	}
	if got, err = r.Update(ctx, "cli", c.ID, func(s *clients.Spec) error {
		s.Resources, s.ExchangeAny = nil, false
		return nil
	}); err != nil || len(got.Resources) != 0 || got.ExchangeAny || !got.IntrospectAny {
		t.Fatalf("update: %+v %v", got, err)
	}
	got, _, err = r.Replace(ctx, "account:", c.ID, clients.Replacement{Action: "client.reregister", Spec: clients.Spec{Name: "rs08"}, Reregistration: true})
	if err != nil || got.IntrospectAny {
		t.Fatalf("replacement kept an operator's grant: %+v %v", got, err)
	}
}

// A re-registration does not carry over what an operator granted
// (impersonation, exchanging or introspecting any token, the resource URIs
// served); an RFC 7592 update, by the holder of the registration access
// token, keeps them.
func TestReplaceOperatorGrants(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	newAccount(t, r, "acct-a", store.AccountActive, nil, nil)
	spec := clients.Spec{Name: "rs", AccountID: "acct-a"}
	grant := func(id string) {
		t.Helper()
		if _, err := r.Store.UpdateClient(ctx, id, func(c *store.Client) error {
			c.AllowImpersonation, c.ExchangeAny, c.IntrospectAny = true, true, true
			c.Resources = []string{"https://rs.example.com"}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	c, _, err := r.Register(ctx, "x", spec, store.ClientActive, []byte("h"), nil)
	if err != nil {
		t.Fatal(err)
	}
	grant(c.ID)
	upd := spec
	upd.AllowImpersonation = true
	n, _, err := r.Replace(ctx, "client:"+c.ID, c.ID, clients.Replacement{Action: "client.update", Spec: upd})
	if err != nil {
		t.Fatal(err)
	}
	if !n.AllowImpersonation || !n.ExchangeAny || !n.IntrospectAny || !slices.Equal(n.Resources, []string{"https://rs.example.com"}) {
		t.Errorf("an update dropped operator grants: %+v", n)
	}
	n, _, err = r.Replace(ctx, "account:acct-a", c.ID, clients.Replacement{Action: "client.reregister", Spec: spec, NewSecret: true, Reregistration: true})
	if err != nil {
		t.Fatal(err)
	}
	if n.AllowImpersonation || n.ExchangeAny || n.IntrospectAny || len(n.Resources) != 0 {
		t.Errorf("a re-registration kept operator grants: %+v", n)
	}
}

// With Reapprove an active client goes back to pending when a replacement
// widens it, renames it, or goes to a new holder; a narrower one under the
// same name by the same holder keeps it active, and a disabled client stays
// disabled.
func TestReplaceReapprove(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	newAccount(t, r, "acct-a", store.AccountActive, nil, nil)
	base := clients.Spec{Name: "radio", AccountID: "acct-a", Audiences: []string{"sas"}, SoftwareID: "fw", HardwareAddress: "02:00:00:00:00:01"}
	for _, tc := range []struct {
		name      string
		edit      func(*clients.Spec)
		newHolder bool
		from      store.ClientStatus
		want      store.ClientStatus
	}{
		{"same", func(*clients.Spec) {}, false, store.ClientActive, store.ClientActive},
		{"narrower", func(s *clients.Spec) { s.Audiences = nil }, false, store.ClientActive, store.ClientActive},
		{"new version", func(s *clients.Spec) { s.SoftwareVersion = "2" }, false, store.ClientActive, store.ClientActive},
		{"wider", func(s *clients.Spec) { s.Audiences = []string{"sas", "other"} }, false, store.ClientActive, store.ClientPending},
		{"renamed", func(s *clients.Spec) { s.Name = "radio 2" }, false, store.ClientActive, store.ClientPending},
		{"other device", func(s *clients.Spec) { s.HardwareAddress = "02:00:00:00:00:02" }, false, store.ClientActive, store.ClientPending},
		{"new holder", func(*clients.Spec) {}, true, store.ClientActive, store.ClientPending},
		{"disabled stays", func(s *clients.Spec) { s.Name = "x" }, true, store.ClientDisabled, store.ClientDisabled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := r.Register(ctx, "x", base, tc.from, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			s := base
			tc.edit(&s)
			n, _, err := r.Replace(ctx, "x", c.ID, clients.Replacement{Action: "client.reregister", Spec: s, NewHolder: tc.newHolder, Reapprove: true})
			if err != nil {
				t.Fatal(err)
			}
			if n.Status != tc.want {
				t.Errorf("status %s, want %s", n.Status, tc.want)
			}
		})
	}
}

// The registration access token expires RegistrationTokenTTL after it is
// issued; one stored before expiry was recorded counts from the client's
// last change, which later changes do not move; an operator's secret
// rotation replaces it (the old one's hash is gone), and a client without
// one gets none.
func TestRegistrationTokenLifetime(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	const ttl = 90 * 24 * time.Hour
	r.RegistrationTokenTTL = ttl
	newAccount(t, r, "acct-a", store.AccountActive, nil, nil)
	tok, hash := clients.NewRegistrationToken()
	c, _, err := r.Register(ctx, "x", clients.Spec{Name: "a", AccountID: "acct-a"}, store.ClientActive, hash, []byte(`{"serial":"1"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.RegistrationTokenExpiresAt.Sub(c.CreatedAt); got != ttl {
		t.Errorf("registration token lifetime %v, want %v", got, ttl)
	}
	if string(c.IATClaims) != `{"serial":"1"}` {
		t.Errorf("IAT claims %q", c.IATClaims)
	}
	if r.RegistrationTokenExpired(c, c.CreatedAt.Add(ttl-time.Second)) || !r.RegistrationTokenExpired(c, c.CreatedAt.Add(ttl)) {
		t.Error("expiry not at issue + TTL")
	}

	// Legacy: no expiry stored.
	legacyAt := time.Now().Add(-80 * 24 * time.Hour).UTC().Truncate(time.Microsecond)
	if _, err := r.Store.UpdateClient(ctx, c.ID, func(c *store.Client) error {
		c.RegistrationTokenExpiresAt = time.Time{}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// UpdateClient stamps UpdatedAt; set it back to the legacy time.
	if db, ok := r.Store.(interface{ DB() *sql.DB }); ok {
		if _, err := db.DB().Exec(`UPDATE clients SET updated_at = ? WHERE id = ?`, legacyAt.UnixMicro(), c.ID); err != nil {
			t.Fatal(err)
		}
	}
	c, _ = r.Store.GetClient(ctx, c.ID)
	if !c.UpdatedAt.Equal(legacyAt) || !c.RegistrationTokenExpiresAt.IsZero() {
		t.Fatalf("legacy setup: updated %v, expires %v", c.UpdatedAt, c.RegistrationTokenExpiresAt)
	}
	if got := r.RegistrationTokenExpiresAt(c); !got.Equal(legacyAt.Add(ttl)) {
		t.Errorf("legacy token expires %v, want %v", got, legacyAt.Add(ttl))
	}
	// A change to the client does not extend it.
	c, _, err = r.SetStatus(ctx, "x", c.ID, store.ClientDisabled)
	if err != nil {
		t.Fatal(err)
	}
	if !c.RegistrationTokenExpiresAt.Equal(legacyAt.Add(ttl)) {
		t.Errorf("after a change the legacy token expires %v, want %v", c.RegistrationTokenExpiresAt, legacyAt.Add(ttl))
	}
	c, err = r.Update(ctx, "x", c.ID, func(s *clients.Spec) error { s.Name = "b"; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if !c.RegistrationTokenExpiresAt.Equal(legacyAt.Add(ttl)) || string(c.IATClaims) != `{"serial":"1"}` {
		t.Errorf("an operator's edit changed the token expiry %v or the IAT claims %q", c.RegistrationTokenExpiresAt, c.IATClaims)
	}
	// Without a TTL nothing expires.
	never := &clients.Registry{Store: r.Store, Hasher: r.Hasher, Now: time.Now}
	if never.RegistrationTokenExpired(&store.Client{RegistrationTokenHash: hash, UpdatedAt: legacyAt}, time.Now()) {
		t.Error("a legacy token expired without a TTL")
	}

	// Rotation replaces the token.
	c, secret, rat, err := r.RotateSecret(ctx, "cli", c.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if secret == "" || rat == "" || rat == tok || !bytes.Equal(c.RegistrationTokenHash, clients.HashRegistrationToken(rat)) {
		t.Errorf("rotation: secret %t, token %q, hash matches new %t", secret != "", rat, bytes.Equal(c.RegistrationTokenHash, clients.HashRegistrationToken(rat)))
	}
	if d := time.Until(c.RegistrationTokenExpiresAt); d < ttl-time.Minute || d > ttl {
		t.Errorf("rotated token expires in %v, want %v", d, ttl)
	}
	op, _, err := r.Create(ctx, "cli", clients.Spec{Name: "op"}, store.ClientActive)
	if err != nil {
		t.Fatal(err)
	}
	op, _, rat, err = r.RotateSecret(ctx, "cli", op.ID, 0)
	if err != nil || rat != "" || len(op.RegistrationTokenHash) != 0 || !op.RegistrationTokenExpiresAt.IsZero() {
		t.Errorf("rotation of a client without a registration token: %q %v %v", rat, op.RegistrationTokenHash, err)
	}
}

// The operator's policy survives every change of a client's other
// settings: an operator's update (Update edits a Spec), a registration
// update and a re-registration (a client never writes its own policy,
// even one whose metadata sets nothing).
func TestPolicyKept(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	pol := store.Policy{Condition: `subject.email_verified == true`, Claims: map[string]string{"email": "subject.email"}}
	c, _, err := r.Create(ctx, "cli", clients.Spec{Name: "p", Policy: pol}, store.ClientActive)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Policy, pol) {
		t.Fatalf("Create: Policy = %+v, want %+v", c.Policy, pol)
	}
	check := func(what string) {
		t.Helper()
		got, err := r.Store.GetClient(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Policy, pol) {
			t.Errorf("after %s: Policy = %+v, want %+v", what, got.Policy, pol)
		}
	}
	check("Create")
	if _, err := r.Update(ctx, "cli", c.ID, func(s *clients.Spec) error { s.Name = "renamed"; return nil }); err != nil {
		t.Fatal(err)
	}
	check("Update")
	for _, rereg := range []bool{false, true} {
		if _, _, err := r.Replace(ctx, "x", c.ID, clients.Replacement{Action: "client.update", Spec: clients.Spec{Name: "again"}, Reregistration: rereg}); err != nil {
			t.Fatal(err)
		}
		check(fmt.Sprintf("Replace (re-registration %t)", rereg))
	}
	// An operator clears it through Update.
	n, err := r.Update(ctx, "cli", c.ID, func(s *clients.Spec) error { s.Policy = store.Policy{}; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if !n.Policy.IsZero() {
		t.Errorf("after clearing: Policy = %+v", n.Policy)
	}
}
