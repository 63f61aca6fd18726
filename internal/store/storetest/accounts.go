package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/store"
)

var accountTests = []test{
	{"CreateGet", testAccountCreateGet},
	{"CreateConflict", testAccountCreateConflict},
	{"GetNotFound", testAccountGetNotFound},
	{"List", testAccountList},
	{"Update", testAccountUpdate},
	{"UpdateNotFound", testAccountUpdateNotFound},
	{"UpdateAborts", testAccountUpdateAborts},
	{"UpdateConcurrent", testAccountUpdateConcurrent},
}

func sampleAccount(id string, created time.Time) *store.Account {
	return &store.Account{
		ID:           id,
		Kind:         store.AccountIndividual,
		Name:         "Account " + id,
		Status:       store.AccountActive,
		SharedSecret: []byte("encrypted-shared-secret-" + id),
		Audiences:    []string{"https://sas.example.com", "urn:example:" + id},
		Scopes:       []string{"sas", "read"},
		CreatedAt:    created,
		UpdatedAt:    created,
	}
}

func normAccount(a *store.Account) *store.Account {
	if a == nil {
		return nil
	}
	n := *a
	n.SharedSecret = normBytes(n.SharedSecret)
	n.Audiences = normList(n.Audiences)
	n.Scopes = normList(n.Scopes)
	n.CreatedAt = normTime(n.CreatedAt)
	n.UpdatedAt = normTime(n.UpdatedAt)
	return &n
}

func normAccounts(as []*store.Account) []*store.Account {
	var out []*store.Account
	for _, a := range as {
		out = append(out, normAccount(a))
	}
	return out
}

func getAccount(t *testing.T, s store.Store, id string) *store.Account {
	t.Helper()
	a, err := s.GetAccount(t.Context(), id)
	if err != nil {
		t.Fatalf("GetAccount(%s): %v", id, err)
	}
	return a
}

func testAccountCreateGet(t *testing.T, s store.Store) {
	ctx := t.Context()
	individual := sampleAccount("individual", at(0))
	org := sampleAccount("org", at(time.Minute))
	org.Kind, org.Status, org.SharedSecret = store.AccountOrganization, store.AccountSuspended, nil
	// Every optional field zero.
	minimal := &store.Account{ID: "minimal", Kind: store.AccountIndividual, Status: store.AccountClosed}
	for _, a := range []*store.Account{individual, org, minimal} {
		must(t, s.CreateAccount(ctx, a))
		equal(t, "GetAccount "+a.ID, getAccount(t, s, a.ID), a, normAccount)
	}
	// The result is the caller's to change.
	got := getAccount(t, s, "individual")
	got.SharedSecret[0] = 'X'
	equal(t, "GetAccount after changing an earlier result", getAccount(t, s, "individual"), individual, normAccount)
}

func testAccountCreateConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := sampleAccount("dup", at(0))
	must(t, s.CreateAccount(ctx, a))
	other := sampleAccount("dup", at(time.Hour))
	other.Kind, other.Name = store.AccountOrganization, "other"
	wantErr(t, "CreateAccount with an existing ID", s.CreateAccount(ctx, other), store.ErrConflict)
	equal(t, "GetAccount after the conflict", getAccount(t, s, "dup"), a, normAccount)
}

func testAccountGetNotFound(t *testing.T, s store.Store) {
	_, err := s.GetAccount(t.Context(), "absent")
	wantErr(t, "GetAccount", err, store.ErrNotFound)
}

func testAccountList(t *testing.T, s store.Store) {
	ctx := t.Context()
	got, err := s.ListAccounts(ctx)
	must(t, err)
	if len(got) != 0 {
		t.Fatalf("ListAccounts on an empty store = %d accounts", len(got))
	}
	// Inserted out of creation order, listed in it.
	for _, o := range []time.Duration{3, 1, 4, 0, 2} {
		must(t, s.CreateAccount(ctx, sampleAccount(fmt.Sprintf("a%d", o), at(o*time.Minute))))
	}
	got, err = s.ListAccounts(ctx)
	must(t, err)
	var want []*store.Account
	for o := range time.Duration(5) {
		want = append(want, sampleAccount(fmt.Sprintf("a%d", o), at(o*time.Minute)))
	}
	equal(t, "ListAccounts", got, want, normAccounts)
}

func testAccountUpdate(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, s.CreateAccount(ctx, sampleAccount("upd", at(0))))

	before := time.Now().Truncate(time.Microsecond)
	got, err := s.UpdateAccount(ctx, "upd", func(a *store.Account) error {
		a.Name = "renamed"
		a.Kind = store.AccountOrganization
		a.Status = store.AccountSuspended
		a.SharedSecret = nil
		return nil
	})
	after := time.Now()
	must(t, err)
	if got.UpdatedAt.Before(before) || got.UpdatedAt.After(after) {
		t.Errorf("UpdatedAt = %v, want within [%v, %v]", got.UpdatedAt, before, after)
	}
	want := sampleAccount("upd", at(0))
	want.Name = "renamed"
	want.Kind = store.AccountOrganization
	want.Status = store.AccountSuspended
	want.SharedSecret = nil
	want.UpdatedAt = got.UpdatedAt
	equal(t, "UpdateAccount result", got, want, normAccount)
	stored := getAccount(t, s, "upd")
	equal(t, "GetAccount after UpdateAccount", stored, want, normAccount)
	if !stored.UpdatedAt.Equal(got.UpdatedAt) {
		t.Errorf("stored UpdatedAt %v differs from returned %v", stored.UpdatedAt, got.UpdatedAt)
	}
}

func testAccountUpdateNotFound(t *testing.T, s store.Store) {
	called := false
	_, err := s.UpdateAccount(t.Context(), "absent", func(*store.Account) error { called = true; return nil })
	wantErr(t, "UpdateAccount", err, store.ErrNotFound)
	if called {
		t.Error("UpdateAccount called the updater for an absent account")
	}
	if _, err := s.GetAccount(t.Context(), "absent"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateAccount of an absent account created it: %v", err)
	}
}

func testAccountUpdateAborts(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := sampleAccount("abort", at(0))
	must(t, s.CreateAccount(ctx, a))
	errRefused := errors.New("refused by updater")
	_, err := s.UpdateAccount(ctx, "abort", func(a *store.Account) error {
		a.Status = store.AccountClosed
		a.SharedSecret = nil
		return errRefused
	})
	wantErr(t, "UpdateAccount with a failing updater", err, errRefused)
	equal(t, "GetAccount after the aborted update", getAccount(t, s, "abort"), a, normAccount)
}

// testAccountUpdateConcurrent checks that updates are serialised: each of
// the racing updaters appends to the name, and none is lost.
func testAccountUpdateConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := sampleAccount("race", at(0))
	a.Name = ""
	must(t, s.CreateAccount(ctx, a))
	errs := make([]error, concurrency)
	var wg sync.WaitGroup
	for i := range concurrency {
		wg.Go(func() {
			_, errs[i] = s.UpdateAccount(ctx, "race", func(a *store.Account) error {
				a.Name += fmt.Sprintf("%02d,", i)
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
	parts := strings.Split(strings.TrimSuffix(getAccount(t, s, "race").Name, ","), ",")
	slices.Sort(parts)
	var want []string
	for i := range concurrency {
		want = append(want, fmt.Sprintf("%02d", i))
	}
	if !slices.Equal(parts, want) {
		t.Fatalf("name parts after %d concurrent updates = %v, want %v", concurrency, parts, want)
	}
}
