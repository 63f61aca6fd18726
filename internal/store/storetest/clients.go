package storetest

import (
	"errors"
	"fmt"
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
		RegistrationTokenHash: []byte("registration-hash-" + id),
		Metadata:              []byte(`{"client_name":"Client ` + id + `","contacts":["ops@example.com"]}`),
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
	unset.SoftwareID, unset.SoftwareVersion, unset.HardwareAddress = "", "", ""
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
