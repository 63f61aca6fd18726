package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/store"
)

var clientTests = []test{
	{"CreateGet", testClientCreateGet},
	{"CreateConflict", testClientCreateConflict},
	{"GetNotFound", testClientGetNotFound},
	{"List", testClientList},
	{"Update", testClientUpdate},
	{"UpdateNotFound", testClientUpdateNotFound},
	{"UpdateAborts", testClientUpdateAborts},
	{"UpdateConcurrent", testClientUpdateConcurrent},
	{"Delete", testClientDelete},
	{"RegistrationFields", testClientRegistrationFields},
	{"ListAccount", testClientListAccount},
	{"IdentityUnique", testClientIdentityUnique},
	{"IdentityUpdate", testClientIdentityUpdate},
	{"FindByIdentity", testClientFindByIdentity},
	{"IdentityConcurrent", testClientIdentityConcurrent},
	{"Policy", testClientPolicy},
	{"Binding", testClientBinding},
}

func sampleClient(id string, created time.Time) *store.Client {
	return &store.Client{
		ID:                  id,
		Name:                "Client " + id,
		SecretHash:          []byte("secret-hash-" + id),
		PrevSecretHash:      []byte("prev-hash-" + id),
		PrevSecretExpiresAt: created.Add(time.Hour),
		Status:              store.ClientActive,
		GrantTypes:          []string{"urn:ietf:params:oauth:grant-type:token-exchange", "refresh_token"},
		Audiences:           []string{"https://api.example.com", "urn:example:billing"},
		Scopes:              []string{"read", "write"},
		TokenFormat:         store.TokenFormatJWT,
		AllowImpersonation:  true,
		AccessTokenTTL:      5*time.Minute + time.Nanosecond,
		RefreshTokenTTL:     24 * time.Hour,
		CreatedAt:           created,
		UpdatedAt:           created,

		AccountID:             "acct-1",
		AuthMethod:            "client_secret_basic",
		SoftwareID:            "4NRB1-0XZABZI9E6-5SM3R",
		SoftwareVersion:       "2.1.0",
		HardwareAddress:       "00:1b:63:84:45:e6",
		Identity:              "name:Client " + id,
		RegistrationTokenHash: []byte("registration-hash-" + id),
		Metadata:              []byte(`{"client_name":"Client ` + id + `","contacts":["ops@example.com"]}`),

		Resources:                  []string{"https://" + id + ".example.com/api"},
		ExchangeAny:                true,
		IntrospectAny:              true,
		IATClaims:                  []byte(`{"software_id":"4NRB1-0XZABZI9E6-5SM3R"}`),
		RegistrationTokenExpiresAt: created.Add(90 * 24 * time.Hour),
		Policy: store.Policy{
			Condition: `subject.email.endsWith("@example.com")`,
			Scope:     `request.scope.filter(s, s != "admin")`,
			Claims:    map[string]string{"email": "subject.email", "team": `"ops-" + client.id`},
		},
		Binding: store.Binding{
			TLSSANDNS:      id + ".devices.example.com",
			JWKS:           []byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`),
			TLSBoundTokens: true,
		},
	}
}

func normClient(c *store.Client) *store.Client {
	if c == nil {
		return nil
	}
	n := *c
	n.SecretHash = normBytes(n.SecretHash)
	n.PrevSecretHash = normBytes(n.PrevSecretHash)
	n.PrevSecretExpiresAt = normTime(n.PrevSecretExpiresAt)
	n.GrantTypes = normList(n.GrantTypes)
	n.Audiences = normList(n.Audiences)
	n.Scopes = normList(n.Scopes)
	n.CreatedAt = normTime(n.CreatedAt)
	n.UpdatedAt = normTime(n.UpdatedAt)
	n.RegistrationTokenHash = normBytes(n.RegistrationTokenHash)
	n.Metadata = normBytes(n.Metadata)
	n.Resources = normList(n.Resources)
	n.IATClaims = normBytes(n.IATClaims)
	n.RegistrationTokenExpiresAt = normTime(n.RegistrationTokenExpiresAt)
	return &n
}

func normClients(cs []*store.Client) []*store.Client {
	var out []*store.Client
	for _, c := range cs {
		out = append(out, normClient(c))
	}
	return out
}

func testClientCreateGet(t *testing.T, s store.Store) {
	ctx := t.Context()
	full := sampleClient("full", at(0))
	// A client with only the required fields: every optional one zero.
	minimal := &store.Client{ID: "minimal", Status: store.ClientPending, TokenFormat: store.TokenFormatOpaque}
	for _, c := range []*store.Client{full, minimal} {
		must(t, s.CreateClient(ctx, c))
		got, err := s.GetClient(ctx, c.ID)
		must(t, err)
		equal(t, "GetClient "+c.ID, got, c, normClient)
	}
	// The result is the caller's to change.
	got, err := s.GetClient(ctx, "full")
	must(t, err)
	got.Scopes[0] = "changed"
	got.SecretHash[0] = 'X'
	got.RegistrationTokenHash[0] = 'X'
	got.Metadata[0] = 'X'
	got.Resources[0] = "changed"
	got.IATClaims[0] = 'X'
	again, err := s.GetClient(ctx, "full")
	must(t, err)
	equal(t, "GetClient after changing an earlier result", again, full, normClient)
}

func testClientCreateConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	c := sampleClient("dup", at(0))
	must(t, s.CreateClient(ctx, c))
	other := sampleClient("dup", at(time.Hour))
	other.Name = "other"
	wantErr(t, "CreateClient with an existing ID", s.CreateClient(ctx, other), store.ErrConflict)
	got, err := s.GetClient(ctx, "dup")
	must(t, err)
	equal(t, "GetClient after the conflict", got, c, normClient)
}

func testClientGetNotFound(t *testing.T, s store.Store) {
	_, err := s.GetClient(t.Context(), "absent")
	wantErr(t, "GetClient", err, store.ErrNotFound)
}

func testClientList(t *testing.T, s store.Store) {
	ctx := t.Context()
	got, err := s.ListClients(ctx)
	must(t, err)
	if len(got) != 0 {
		t.Fatalf("ListClients on an empty store = %d clients", len(got))
	}
	// Inserted out of creation order, listed in it.
	offsets := []time.Duration{3, 1, 4, 0, 2}
	for _, o := range offsets {
		must(t, s.CreateClient(ctx, sampleClient(fmt.Sprintf("c%d", o), at(o*time.Minute))))
	}
	got, err = s.ListClients(ctx)
	must(t, err)
	var ids []string
	for _, c := range got {
		ids = append(ids, c.ID)
	}
	if want := []string{"c0", "c1", "c2", "c3", "c4"}; !slices.Equal(ids, want) {
		t.Fatalf("ListClients IDs = %v, want %v", ids, want)
	}
	equal(t, "ListClients[2]", got[2], sampleClient("c2", at(2*time.Minute)), normClient)
}

func testClientUpdate(t *testing.T, s store.Store) {
	ctx := t.Context()
	c := sampleClient("upd", at(0))
	must(t, s.CreateClient(ctx, c))

	before := time.Now().Truncate(time.Microsecond)
	got, err := s.UpdateClient(ctx, "upd", func(c *store.Client) error {
		c.Name = "renamed"
		c.Status = store.ClientDisabled
		c.Scopes = append(c.Scopes, "admin")
		c.PrevSecretHash = c.SecretHash
		c.SecretHash = []byte("new-hash")
		c.AllowImpersonation = false
		c.AccountID = "acct-2"
		c.AuthMethod = "client_secret_post"
		c.SoftwareVersion = "2.2.0"
		c.Identity = "software:4NRB1-0XZABZI9E6-5SM3R|00:1b:63:84:45:e6"
		c.RegistrationTokenHash = []byte("rotated-registration-hash")
		c.Metadata = []byte(`{"client_name":"renamed"}`)
		return nil
	})
	after := time.Now()
	must(t, err)

	if got.UpdatedAt.Before(before) || got.UpdatedAt.After(after) {
		t.Errorf("UpdatedAt = %v, want within [%v, %v]", got.UpdatedAt, before, after)
	}
	want := sampleClient("upd", at(0))
	want.Name = "renamed"
	want.Status = store.ClientDisabled
	want.Scopes = []string{"read", "write", "admin"}
	want.PrevSecretHash = want.SecretHash
	want.SecretHash = []byte("new-hash")
	want.AllowImpersonation = false
	want.AccountID = "acct-2"
	want.AuthMethod = "client_secret_post"
	want.SoftwareVersion = "2.2.0"
	want.Identity = "software:4NRB1-0XZABZI9E6-5SM3R|00:1b:63:84:45:e6"
	want.RegistrationTokenHash = []byte("rotated-registration-hash")
	want.Metadata = []byte(`{"client_name":"renamed"}`)
	want.UpdatedAt = got.UpdatedAt
	equal(t, "UpdateClient result", got, want, normClient)

	stored, err := s.GetClient(ctx, "upd")
	must(t, err)
	equal(t, "GetClient after UpdateClient", stored, want, normClient)
	if !stored.UpdatedAt.Equal(got.UpdatedAt) {
		t.Errorf("stored UpdatedAt %v differs from returned %v", stored.UpdatedAt, got.UpdatedAt)
	}
}

func testClientUpdateNotFound(t *testing.T, s store.Store) {
	_, err := s.UpdateClient(t.Context(), "absent", func(*store.Client) error { return nil })
	wantErr(t, "UpdateClient", err, store.ErrNotFound)
}

func testClientUpdateAborts(t *testing.T, s store.Store) {
	ctx := t.Context()
	c := sampleClient("abort", at(0))
	must(t, s.CreateClient(ctx, c))
	errRefused := errors.New("refused by updater")
	_, err := s.UpdateClient(ctx, "abort", func(c *store.Client) error {
		c.Name = "half-done"
		c.Scopes = nil
		return errRefused
	})
	wantErr(t, "UpdateClient with a failing updater", err, errRefused)
	got, err := s.GetClient(ctx, "abort")
	must(t, err)
	equal(t, "GetClient after the aborted update", got, c, normClient)
}

// testClientUpdateConcurrent checks that updates are serialised: each of
// the racing updaters appends a scope, and none is lost.
func testClientUpdateConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	c := sampleClient("race", at(0))
	c.Scopes = nil
	must(t, s.CreateClient(ctx, c))

	errs := make([]error, concurrency)
	var wg sync.WaitGroup
	for i := range concurrency {
		wg.Go(func() {
			_, errs[i] = s.UpdateClient(ctx, "race", func(c *store.Client) error {
				c.Scopes = append(c.Scopes, fmt.Sprintf("s%02d", i))
				return nil
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("updater %d: %v", i, err)
		}
	}
	got, err := s.GetClient(ctx, "race")
	must(t, err)
	scopes := slices.Sorted(slices.Values(got.Scopes))
	var want []string
	for i := range concurrency {
		want = append(want, fmt.Sprintf("s%02d", i))
	}
	if !slices.Equal(scopes, want) {
		t.Fatalf("scopes after %d concurrent updates = %v, want %v", concurrency, scopes, want)
	}
}

func testClientDelete(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, s.CreateClient(ctx, sampleClient("gone", at(0))))
	must(t, s.CreateClient(ctx, sampleClient("kept", at(0))))
	must(t, s.DeleteClient(ctx, "gone"))
	_, err := s.GetClient(ctx, "gone")
	wantErr(t, "GetClient after DeleteClient", err, store.ErrNotFound)
	wantErr(t, "DeleteClient twice", s.DeleteClient(ctx, "gone"), store.ErrNotFound)
	if _, err := s.GetClient(ctx, "kept"); err != nil {
		t.Fatalf("GetClient of the other client: %v", err)
	}
	// The ID is free again.
	must(t, s.CreateClient(ctx, sampleClient("gone", at(time.Hour))))
}

// testClientRegistrationFields checks the registration fields: set, left
// unset (nil and empty slices alike read back empty), cleared and set again
// by updates.
func testClientRegistrationFields(t *testing.T, s store.Store) {
	ctx := t.Context()
	full := sampleClient("full", at(0))
	unset := sampleClient("unset", at(0))
	unset.AccountID, unset.AuthMethod = "", ""
	unset.SoftwareID, unset.SoftwareVersion, unset.HardwareAddress, unset.Identity = "", "", "", ""
	unset.RegistrationTokenHash, unset.Metadata = nil, nil
	empty := sampleClient("empty", at(0))
	empty.RegistrationTokenHash, empty.Metadata = []byte{}, []byte{}
	for _, c := range []*store.Client{full, unset, empty} {
		must(t, s.CreateClient(ctx, c))
		got, err := s.GetClient(ctx, c.ID)
		must(t, err)
		equal(t, "GetClient "+c.ID, got, c, normClient)
		if len(c.Metadata) == 0 && (len(got.RegistrationTokenHash) != 0 || len(got.Metadata) != 0) {
			t.Errorf("GetClient %s: RegistrationTokenHash %q, Metadata %q, want both empty",
				c.ID, got.RegistrationTokenHash, got.Metadata)
		}
	}

	// Cleared by an update (to nil, then to empty), then set again.
	for _, v := range [][]byte{nil, {}, []byte("{}")} {
		got, err := s.UpdateClient(ctx, "full", func(c *store.Client) error {
			c.RegistrationTokenHash, c.Metadata = v, v
			return nil
		})
		must(t, err)
		want := sampleClient("full", at(0))
		want.RegistrationTokenHash, want.Metadata = v, v
		want.UpdatedAt = got.UpdatedAt
		equal(t, fmt.Sprintf("UpdateClient to %q", v), got, want, normClient)
		stored, err := s.GetClient(ctx, "full")
		must(t, err)
		equal(t, fmt.Sprintf("GetClient after UpdateClient to %q", v), stored, want, normClient)
	}
}

// testClientListAccount checks that ListAccountClients lists exactly one
// account's clients, in creation order, whatever the insertion order.
func testClientListAccount(t *testing.T, s store.Store) {
	ctx := t.Context()
	got, err := s.ListAccountClients(ctx, "acct-a")
	must(t, err)
	if len(got) != 0 {
		t.Fatalf("ListAccountClients on an empty store = %d clients", len(got))
	}
	var wantA []*store.Client
	for i, o := range []time.Duration{3, 1, 4, 0, 2, 5} {
		c := sampleClient(fmt.Sprintf("c%d", o), at(o*time.Minute))
		c.AccountID = []string{"acct-a", "acct-b", ""}[i%3]
		must(t, s.CreateClient(ctx, c))
	}
	for _, id := range []string{"c0", "c3"} {
		c, err := s.GetClient(ctx, id)
		must(t, err)
		wantA = append(wantA, c)
	}
	got, err = s.ListAccountClients(ctx, "acct-a")
	must(t, err)
	equal(t, "ListAccountClients(acct-a)", got, wantA, normClients)

	got, err = s.ListAccountClients(ctx, "acct-b")
	must(t, err)
	if ids := clientIDs(got); !slices.Equal(ids, []string{"c1", "c2"}) {
		t.Errorf("ListAccountClients(acct-b) IDs = %v, want [c1 c2]", ids)
	}
	got, err = s.ListAccountClients(ctx, "absent")
	must(t, err)
	if len(got) != 0 {
		t.Errorf("ListAccountClients of an account without clients = %v", clientIDs(got))
	}
	// Moving a client moves it between the lists.
	_, err = s.UpdateClient(ctx, "c1", func(c *store.Client) error { c.AccountID = "acct-a"; return nil })
	must(t, err)
	got, err = s.ListAccountClients(ctx, "acct-a")
	must(t, err)
	if ids := clientIDs(got); !slices.Equal(ids, []string{"c0", "c1", "c3"}) {
		t.Errorf("ListAccountClients(acct-a) after moving c1 = %v, want [c0 c1 c3]", ids)
	}
}

func clientIDs(cs []*store.Client) []string {
	var ids []string
	for _, c := range cs {
		ids = append(ids, c.ID)
	}
	return ids
}

// identityClient is a client of account with identity.
func identityClient(id, account, identity string) *store.Client {
	c := sampleClient(id, at(0))
	c.AccountID, c.Identity = account, identity
	return c
}

// testClientIdentityUnique checks that a non-empty identity is unique within
// its account: a second client with it is refused and changes nothing,
// while empty identities, other identities and other accounts are
// independent.
func testClientIdentityUnique(t *testing.T, s store.Store) {
	ctx := t.Context()
	first := identityClient("first", "acct-a", "software:fw|02:00:00:00:00:01")
	must(t, s.CreateClient(ctx, first))

	dup := identityClient("dup", "acct-a", first.Identity)
	wantErr(t, "CreateClient with the identity of another client of the account", s.CreateClient(ctx, dup), store.ErrConflict)
	_, err := s.GetClient(ctx, "dup")
	wantErr(t, "GetClient of the refused client", err, store.ErrNotFound)
	got, err := s.GetClient(ctx, "first")
	must(t, err)
	equal(t, "GetClient after the conflict", got, first, normClient)

	for _, c := range []*store.Client{
		// Other accounts, including none, have their own identities.
		identityClient("other-account", "acct-b", first.Identity),
		identityClient("no-account", "", first.Identity),
		// Another identity in the same account; identities are compared
		// exactly.
		identityClient("other-identity", "acct-a", "software:fw|02:00:00:00:00:02"),
		identityClient("other-case", "acct-a", "SOFTWARE:fw|02:00:00:00:00:01"),
		// Any number of clients have no identity.
		identityClient("none-1", "acct-a", ""),
		identityClient("none-2", "acct-a", ""),
		identityClient("none-3", "acct-b", ""),
	} {
		if err := s.CreateClient(ctx, c); err != nil {
			t.Errorf("CreateClient %s (account %q, identity %q): %v", c.ID, c.AccountID, c.Identity, err)
		}
	}
	cs, err := s.ListAccountClients(ctx, "acct-a")
	must(t, err)
	if len(cs) != 5 {
		t.Errorf("ListAccountClients(acct-a) = %v, want 5 clients", clientIDs(cs))
	}

	// The identity is free again once its client is gone.
	must(t, s.DeleteClient(ctx, "first"))
	must(t, s.CreateClient(ctx, dup))
}

// testClientIdentityUpdate checks identities through UpdateClient: into
// one another client of the account has is refused and changes nothing;
// into a free one, to empty, and into one of another account succeed.
func testClientIdentityUpdate(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := identityClient("a", "acct-a", "name:a")
	b := identityClient("b", "acct-a", "name:b")
	other := identityClient("other", "acct-b", "name:other")
	for _, c := range []*store.Client{a, b, other} {
		must(t, s.CreateClient(ctx, c))
	}

	_, err := s.UpdateClient(ctx, "b", func(c *store.Client) error {
		c.Name, c.Identity = "taken", "name:a"
		return nil
	})
	wantErr(t, "UpdateClient into the identity of another client of the account", err, store.ErrConflict)
	got, err := s.GetClient(ctx, "b")
	must(t, err)
	equal(t, "GetClient after the refused update", got, b, normClient)

	// Moving b to acct-b with the identity of acct-b's client is refused
	// too; with its own identity it is not.
	_, err = s.UpdateClient(ctx, "b", func(c *store.Client) error {
		c.AccountID, c.Identity = "acct-b", "name:other"
		return nil
	})
	wantErr(t, "UpdateClient moving a client onto an identity of the other account", err, store.ErrConflict)

	for _, step := range []struct {
		what, account, identity string
	}{
		{"into a free identity", "acct-a", "name:b2"},
		{"keeping it", "acct-a", "name:b2"},
		{"to empty", "acct-a", ""},
		{"back to its first identity", "acct-a", "name:b"},
		{"into another account's identity (moving the client there)", "acct-c", "name:a"},
	} {
		got, err := s.UpdateClient(ctx, "b", func(c *store.Client) error {
			c.AccountID, c.Identity = step.account, step.identity
			return nil
		})
		if err != nil {
			t.Fatalf("UpdateClient %s: %v", step.what, err)
		}
		if got.Identity != step.identity || got.AccountID != step.account {
			t.Errorf("UpdateClient %s: account %q identity %q", step.what, got.AccountID, got.Identity)
		}
	}
	// Once b left acct-a, its identity there is free.
	_, err = s.UpdateClient(ctx, "a", func(c *store.Client) error { c.Identity = "name:b"; return nil })
	must(t, err)
}

// testClientFindByIdentity checks FindClientByIdentity: the client of that
// account and identity, and ErrNotFound for another account, another
// identity, or the empty identity.
func testClientFindByIdentity(t *testing.T, s store.Store) {
	ctx := t.Context()
	want := identityClient("radio", "acct-a", "software:fw|02:00:00:00:00:01")
	for _, c := range []*store.Client{
		want,
		identityClient("radio-b", "acct-b", want.Identity),
		identityClient("anon", "acct-a", ""),
	} {
		must(t, s.CreateClient(ctx, c))
	}
	got, err := s.FindClientByIdentity(ctx, "acct-a", want.Identity)
	must(t, err)
	equal(t, "FindClientByIdentity", got, want, normClient)
	got, err = s.FindClientByIdentity(ctx, "acct-b", want.Identity)
	must(t, err)
	if got.ID != "radio-b" {
		t.Errorf("FindClientByIdentity(acct-b) = %s, want radio-b", got.ID)
	}
	for _, q := range []struct{ account, identity string }{
		{"acct-c", want.Identity},
		{"", want.Identity},
		{"acct-a", "software:fw|02:00:00:00:00:02"},
		{"acct-a", "software:fw"},
		{"acct-a", ""},
		{"", ""},
	} {
		got, err := s.FindClientByIdentity(ctx, q.account, q.identity)
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("FindClientByIdentity(%q, %q) = %v, %v; want ErrNotFound", q.account, q.identity, got, err)
		}
	}

	// It follows updates of the identity and deletion.
	_, err = s.UpdateClient(ctx, "radio", func(c *store.Client) error { c.Identity = "name:radio"; return nil })
	must(t, err)
	_, err = s.FindClientByIdentity(ctx, "acct-a", want.Identity)
	wantErr(t, "FindClientByIdentity of the former identity", err, store.ErrNotFound)
	got, err = s.FindClientByIdentity(ctx, "acct-a", "name:radio")
	must(t, err)
	if got.ID != "radio" {
		t.Errorf("FindClientByIdentity(name:radio) = %s, want radio", got.ID)
	}
	must(t, s.DeleteClient(ctx, "radio"))
	_, err = s.FindClientByIdentity(ctx, "acct-a", "name:radio")
	wantErr(t, "FindClientByIdentity after DeleteClient", err, store.ErrNotFound)
}

// testClientIdentityConcurrent races clients of one identity: exactly one
// is created, the others fail with ErrConflict.
func testClientIdentityConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	errs := make([]error, concurrency)
	var wg sync.WaitGroup
	for i := range concurrency {
		wg.Go(func() {
			errs[i] = s.CreateClient(ctx, identityClient(fmt.Sprintf("c%02d", i), "acct-a", "name:racer"))
		})
	}
	wg.Wait()
	ok, conflicts, other := countErrs(errs, store.ErrConflict)
	if other != nil {
		t.Fatalf("CreateClient: %v", other)
	}
	if ok != 1 || conflicts != concurrency-1 {
		t.Fatalf("%d created and %d conflicts, want 1 and %d", ok, conflicts, concurrency-1)
	}
	cs, err := s.ListAccountClients(ctx, "acct-a")
	must(t, err)
	if len(cs) != 1 || cs[0].Identity != "name:racer" {
		t.Errorf("ListAccountClients = %v, want the one client", clientIDs(cs))
	}
}

// A client's policy is stored as it is given, changed and cleared by
// UpdateClient, and absent (zero) when never set.
func testClientPolicy(t *testing.T, s store.Store) {
	ctx := t.Context()
	c := sampleClient("pol", at(0))
	must(t, s.CreateClient(ctx, c))
	got, err := s.GetClient(ctx, "pol")
	must(t, err)
	if !reflect.DeepEqual(got.Policy, c.Policy) {
		t.Fatalf("Policy = %+v, want %+v", got.Policy, c.Policy)
	}
	only := store.Policy{Claims: map[string]string{"x": `"y"`}}
	_, err = s.UpdateClient(ctx, "pol", func(c *store.Client) error { c.Policy = only; return nil })
	must(t, err)
	got, err = s.GetClient(ctx, "pol")
	must(t, err)
	if !reflect.DeepEqual(got.Policy, only) {
		t.Fatalf("Policy after update = %+v, want %+v", got.Policy, only)
	}
	_, err = s.UpdateClient(ctx, "pol", func(c *store.Client) error { c.Policy = store.Policy{}; return nil })
	must(t, err)
	got, err = s.GetClient(ctx, "pol")
	must(t, err)
	if !got.Policy.IsZero() || got.Policy.Claims != nil {
		t.Fatalf("Policy after clearing = %#v, want zero", got.Policy)
	}
}

// A client's binding is stored as it is given, changed and cleared by
// UpdateClient, and absent (zero) when never set.
func testClientBinding(t *testing.T, s store.Store) {
	ctx := t.Context()
	c := sampleClient("bind", at(0))
	must(t, s.CreateClient(ctx, c))
	got, err := s.GetClient(ctx, "bind")
	must(t, err)
	if !reflect.DeepEqual(got.Binding, c.Binding) {
		t.Fatalf("Binding = %+v, want %+v", got.Binding, c.Binding)
	}
	dpop := store.Binding{JWKSURI: "https://bind.example.com/jwks.json", DPoPBoundTokens: true, TLSSubjectDN: "CN=bind,O=Example"}
	_, err = s.UpdateClient(ctx, "bind", func(c *store.Client) error { c.Binding = dpop; return nil })
	must(t, err)
	got, err = s.GetClient(ctx, "bind")
	must(t, err)
	if !reflect.DeepEqual(got.Binding, dpop) {
		t.Fatalf("Binding after update = %+v, want %+v", got.Binding, dpop)
	}
	_, err = s.UpdateClient(ctx, "bind", func(c *store.Client) error { c.Binding = store.Binding{}; return nil })
	must(t, err)
	got, err = s.GetClient(ctx, "bind")
	must(t, err)
	if !got.Binding.IsZero() || got.Binding.JWKS != nil {
		t.Fatalf("Binding after clearing = %#v, want zero", got.Binding)
	}
}
