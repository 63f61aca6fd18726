package register_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/oauth"
)

// generous rates, so that the races are not cut short by rate limits.
var generous = ststest.Options{PerAddressPerMinute: 10000, PerAccountPerMinute: 10000}

// TestReregistrationAcrossInstances races registrations of one identity
// through two server instances sharing one database, whose in-process
// locks know nothing of each other: the database's unique (account,
// identity) index makes one client, and every answer carries its id.
func TestReregistrationAcrossInstances(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		a := ststest.Start(t, generous)
		b := a.StartPeer(generous)
		raceInstances(t, a, b, a.Store)
	})
	t.Run("postgres", func(t *testing.T) {
		schema := ststest.PostgresSchema(t)
		sa, sb := ststest.OpenPostgres(t, schema), ststest.OpenPostgres(t, schema)
		a, b := ststest.StartOn(t, sa, generous), ststest.StartOn(t, sb, generous)
		raceInstances(t, a, b, sa)
	})
}

// raceInstances registers, round after round, one new identity through
// both instances at once (several requests each).
func raceInstances(t *testing.T, a, b *ststest.STS, st store.Store) {
	ctx := context.Background()
	acct := a.NewAccount(store.AccountIndividual, "Alice")
	const rounds, perInstance = 10, 3
	for round := range rounds {
		hw := fmt.Sprintf("02:00:00:00:00:%02x", round)
		md := map[string]any{"software_id": "fw", "hardware_address": hw, "scope": "read"}
		// IATs first: each is spent by one registration, at the instance
		// whose issuer it names.
		type req struct {
			s   *ststest.STS
			iat string
		}
		var reqs []req
		for range perInstance {
			reqs = append(reqs, req{a, boundIAT(a, acct.ID, md)}, req{b, boundIAT(b, acct.ID, md)})
		}
		resps := make([]*ststest.Response, len(reqs))
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, r := range reqs {
			wg.Go(func() {
				<-start
				resps[i] = r.s.Register(r.iat, md)
			})
		}
		close(start)
		wg.Wait()

		var ids, secrets []string
		for i, r := range resps {
			if r.Status != http.StatusCreated {
				t.Fatalf("round %d, request %d: %d %s", round, i, r.Status, r.Body)
			}
			reg := r.Registration()
			ids, secrets = append(ids, reg.ClientID), append(secrets, reg.ClientSecret)
		}
		if slices.ContainsFunc(ids, func(id string) bool { return id == "" || id != ids[0] }) {
			t.Fatalf("round %d: client ids %v, want one", round, ids)
		}
		c, err := st.FindClientByIdentity(ctx, acct.ID, "software:fw|"+hw)
		if err != nil || c.ID != ids[0] {
			t.Fatalf("round %d: the client of the identity: %+v, %v; want %s", round, c, err, ids[0])
		}
		// Each answer re-registered the client with a new secret; the
		// last one's is the client's.
		current := 0
		for _, secret := range secrets {
			if bytes.Equal(a.Hasher.Hash(secret), c.SecretHash) {
				current++
			}
		}
		if current != 1 {
			t.Errorf("round %d: %d of the secrets returned are the client's, want 1", round, current)
		}
	}
	cs, err := st.ListAccountClients(ctx, acct.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != rounds {
		t.Errorf("%d clients for %d identities", len(cs), rounds)
	}
	for _, c := range cs {
		if !strings.HasPrefix(c.Identity, "software:fw|02:00:00:00:00:") || strings.ContainsRune(c.Identity, 0) {
			t.Errorf("client %s has identity %q", c.ID, c.Identity)
		}
	}
}

// staleFinds is a store whose lookups by identity first answer as of
// before another instance registered or deleted the client: the first
// FindClientByIdentity reports no client (lost) or a deleted one (ghost).
type staleFinds struct {
	store.Store
	lost, ghost atomic.Int32
}

func (s *staleFinds) FindClientByIdentity(ctx context.Context, accountID, identity string) (*store.Client, error) {
	if s.lost.Add(-1) >= 0 {
		return nil, fmt.Errorf("stale: %w", store.ErrNotFound)
	}
	if s.ghost.Add(-1) >= 0 {
		return &store.Client{ID: "deleted-meanwhile", AccountID: accountID, Identity: identity}, nil
	}
	return s.Store.FindClientByIdentity(ctx, accountID, identity)
}

// TestReregistrationRetriesOnce checks the two races of a registration
// with another instance deterministically: the client of the identity
// created after the lookup missed it (the store refuses a second one and
// the registration becomes a re-registration), and the client found
// deleted before it was re-registered (the registration makes a new
// client). Twice in a row is an error.
func TestReregistrationRetriesOnce(t *testing.T) {
	ctx := context.Background()
	first := ststest.Start(t, generous)
	acct := first.NewAccount(store.AccountIndividual, "Alice")
	md := map[string]any{"client_name": "radio", "scope": "read"}
	reg := first.RegisterClient(acct.ID, md)

	stale := &staleFinds{Store: first.Store}
	s := ststest.StartOn(t, stale, generous)

	// Lost: the lookup misses the client, the creation conflicts, and the
	// retry re-registers it.
	stale.lost.Store(1)
	again := reregister(s, acct.ID, md)
	if again.ClientID != reg.ClientID || again.ClientSecret == "" || again.ClientSecret == reg.ClientSecret {
		t.Fatalf("registration after a lost race: %s (secret %t), want a re-registration of %s",
			again.ClientID, again.ClientSecret != "", reg.ClientID)
	}
	if r := tokenFor(s, again.Client()); r.Status != http.StatusOK {
		t.Errorf("the new secret: %d %s", r.Status, r.Body)
	}
	if cs, _ := first.Store.ListAccountClients(ctx, acct.ID); len(cs) != 1 {
		t.Errorf("%d clients after a lost race, want 1", len(cs))
	}
	var actions []string
	for _, rec := range first.Audit() {
		if rec.ClientID == reg.ClientID && rec.Decision == store.DecisionGranted {
			actions = append(actions, rec.Action)
		}
	}
	if !slices.Contains(actions, "client.reregister") {
		t.Errorf("audited actions %v, want a client.reregister", actions)
	}

	// Lost twice: refused, and still one client.
	stale.lost.Store(2)
	r := s.Register(boundIAT(s, acct.ID, md), md)
	wantError(t, r, http.StatusServiceUnavailable, oauth.ErrTemporarilyUnavail)
	if cs, _ := first.Store.ListAccountClients(ctx, acct.ID); len(cs) != 1 {
		t.Errorf("%d clients after two lost races, want 1", len(cs))
	}

	// Ghost: the client found is gone; the retry finds none and creates one.
	// (The IAT names the identity, so that the client found could have
	// been re-registered.)
	ghostMD := map[string]any{"client_name": "ghost"}
	stale.ghost.Store(1)
	n := reregister(s, acct.ID, ghostMD)
	c, err := first.Store.FindClientByIdentity(ctx, acct.ID, "name:ghost")
	if err != nil || c.ID != n.ClientID || n.ClientID == "deleted-meanwhile" {
		t.Errorf("registration after its client was deleted: %s; stored %+v, %v", n.ClientID, c, err)
	}
}

// TestIdentityFollowsMetadata checks that the stored identity is the
// registration's, and that an RFC 7592 update that changes software_id,
// hardware_address or client_name changes it: into the identity of
// another client of the account it is refused (invalid_client_metadata),
// and re-registration then finds the client by its new identity.
func TestIdentityFollowsMetadata(t *testing.T) {
	ctx := context.Background()
	s := ststest.Start(t, generous)
	acct := s.NewAccount(store.AccountIndividual, "Alice")
	identityOf := func(id string) string {
		t.Helper()
		c, err := s.Store.GetClient(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return c.Identity
	}

	radio := s.RegisterClient(acct.ID, map[string]any{"client_name": "radio", "software_id": "fw", "hardware_address": "02-00-00-00-00-AA"})
	billing := s.RegisterClient(acct.ID, map[string]any{"client_name": " billing "})
	anon := s.RegisterClient(acct.ID, map[string]any{})
	for id, want := range map[string]string{
		radio.ClientID:   "software:fw|02:00:00:00:00:aa",
		billing.ClientID: "name:billing",
		anon.ClientID:    "",
	} {
		if got := identityOf(id); got != want {
			t.Errorf("client %s: identity %q, want %q", id, got, want)
		}
	}

	// Into a taken identity: refused, nothing changes.
	r := s.Manage(http.MethodPut, billing, update(billing, map[string]any{"client_name": "other", "software_id": "fw", "hardware_address": "02:00:00:00:00:aa"}))
	wantError(t, r, http.StatusBadRequest, oauth.ErrInvalidClientMetadata)
	if d, _ := r.JSON()["error_description"].(string); !strings.Contains(d, "software_id/hardware_address/client_name") {
		t.Errorf("error_description %q does not name the members", d)
	}
	if got := identityOf(billing.ClientID); got != "name:billing" {
		t.Errorf("a refused update changed the identity to %q", got)
	}
	r = s.Manage(http.MethodPut, anon, update(anon, map[string]any{"client_name": "billing"}))
	wantError(t, r, http.StatusBadRequest, oauth.ErrInvalidClientMetadata)

	// Into a free one: the identity follows, and re-registration finds the
	// client by it; the old identity is free.
	r = s.Manage(http.MethodPut, billing, update(billing, map[string]any{"client_name": "invoicing"}))
	if r.Status != http.StatusOK {
		t.Fatalf("update: %d %s", r.Status, r.Body)
	}
	if got := identityOf(billing.ClientID); got != "name:invoicing" {
		t.Errorf("identity after renaming: %q", got)
	}
	if again := reregister(s, acct.ID, map[string]any{"client_name": "invoicing"}); again.ClientID != billing.ClientID {
		t.Errorf("re-registration under the new name made client %s, want %s", again.ClientID, billing.ClientID)
	}
	if other := s.RegisterClient(acct.ID, map[string]any{"client_name": "billing"}); other.ClientID == billing.ClientID {
		t.Error("the old name still re-registers the renamed client")
	}

	// A new hardware address is a new identity too; an update that keeps
	// the identity is not a conflict with itself.
	for _, hw := range []string{"02:00:00:00:00:bb", "02:00:00:00:00:bb"} {
		r = s.Manage(http.MethodPut, radio, update(radio, map[string]any{"client_name": "radio", "software_id": "fw", "hardware_address": hw}))
		if r.Status != http.StatusOK {
			t.Fatalf("update to %s: %d %s", hw, r.Status, r.Body)
		}
	}
	if got := identityOf(radio.ClientID); got != "software:fw|02:00:00:00:00:bb" {
		t.Errorf("identity after a new hardware address: %q", got)
	}
	// Dropping the client_name and software_id: no identity, so no
	// registration re-registers it.
	r = s.Manage(http.MethodPut, radio, update(radio, map[string]any{}))
	if r.Status != http.StatusOK {
		t.Fatalf("update to nothing: %d %s", r.Status, r.Body)
	}
	if got := identityOf(radio.ClientID); got != "" {
		t.Errorf("identity without software_id and client_name: %q", got)
	}
}
