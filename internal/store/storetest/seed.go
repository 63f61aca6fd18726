package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/store"
)

var seedTests = []test{
	{"Clients", testSeedClients},
	{"Revocations", testSeedRevocations},
}

// seeder returns s's Seeder, or skips: the interface is optional.
func seeder(t *testing.T, s store.Store) store.Seeder {
	t.Helper()
	sd, ok := s.(store.Seeder)
	if !ok {
		t.Skip("the backend has no store.Seeder")
	}
	return sd
}

// Seeded clients are copies of the template, each under its own ID, Name
// and Identity, over more than one multi-row statement; seeding an
// existing ID again is a conflict.
func testSeedClients(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 2345 // more rows than one statement of 29 columns holds
	tmpl := sampleClient("seed-", at(0))
	tmpl.Name, tmpl.Identity = "Seeded", "name:seeded"
	must(t, seeder(t, s).SeedClients(ctx, n, tmpl))
	all, err := s.ListClients(ctx)
	must(t, err)
	if len(all) != n {
		t.Fatalf("ListClients after seeding %d: %d clients", n, len(all))
	}
	for _, i := range []int{0, 1, 1033, 1034, n - 1} {
		id := fmt.Sprintf("seed-%07d", i)
		got, err := s.GetClient(ctx, id)
		must(t, err)
		want := *tmpl
		want.ID = id
		want.Name = fmt.Sprintf("Seeded %07d", i)
		want.Identity = fmt.Sprintf("name:seeded%07d", i)
		equal(t, "GetClient "+id, got, &want, normClient)
	}
	if _, err := s.GetClient(ctx, fmt.Sprintf("seed-%07d", n)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetClient past the seeded ones: %v, want ErrNotFound", err)
	}
	if err := seeder(t, s).SeedClients(ctx, 1, tmpl); !errors.Is(err, store.ErrConflict) {
		t.Errorf("seeding an existing ID: %v, want ErrConflict", err)
	}
}

// Seeded revocations are distinct random jtis, listed, checked and
// deleted at expiry like any other.
func testSeedRevocations(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 12345 // more rows than one statement holds
	must(t, seeder(t, s).SeedRevocations(ctx, n, at(time.Hour), at(0)))
	revs, err := s.ListRevocations(ctx, time.Time{}, at(0))
	must(t, err)
	if len(revs) != n {
		t.Fatalf("ListRevocations after seeding %d: %d", n, len(revs))
	}
	seen := map[string]bool{}
	for _, r := range revs {
		if len(r.JTI) != 22 || seen[r.JTI] || !sameTime(r.ExpiresAt, at(time.Hour)) || !sameTime(r.RevokedAt, at(0)) {
			t.Fatalf("seeded revocation %+v (a repeat: %v)", r, seen[r.JTI])
		}
		seen[r.JTI] = true
	}
	if !isRevoked(t, s, revs[n/2].JTI) {
		t.Error("IsRevoked of a seeded jti = false")
	}
	deleted, err := s.DeleteExpiredRevocations(ctx, at(2*time.Hour))
	must(t, err)
	if deleted != n {
		t.Errorf("DeleteExpiredRevocations removed %d of %d", deleted, n)
	}
}
