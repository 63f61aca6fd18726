package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/store"
)

var operatorTests = []test{
	{"CreateGet", testOperatorCreateGet},
	{"CreateConflict", testOperatorCreateConflict},
	{"GetNotFound", testOperatorGetNotFound},
	{"List", testOperatorList},
	{"Update", testOperatorUpdate},
	{"UpdateNotFound", testOperatorUpdateNotFound},
	{"UpdateAborts", testOperatorUpdateAborts},
}

func sampleOperator(username string, created time.Time) *store.Operator {
	return &store.Operator{
		Username:     username,
		PasswordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdC0" + username + "$aGFzaA",
		CreatedAt:    created,
		UpdatedAt:    created,
	}
}

func normOperator(o *store.Operator) *store.Operator {
	if o == nil {
		return nil
	}
	n := *o
	n.CreatedAt = normTime(n.CreatedAt)
	n.UpdatedAt = normTime(n.UpdatedAt)
	return &n
}

func normOperators(os []*store.Operator) []*store.Operator {
	var out []*store.Operator
	for _, o := range os {
		out = append(out, normOperator(o))
	}
	return out
}

func getOperator(t *testing.T, s store.Store, username string) *store.Operator {
	t.Helper()
	o, err := s.GetOperator(t.Context(), username)
	if err != nil {
		t.Fatalf("GetOperator(%s): %v", username, err)
	}
	return o
}

func testOperatorCreateGet(t *testing.T, s store.Store) {
	ctx := t.Context()
	full := sampleOperator("alice", at(0))
	minimal := &store.Operator{Username: "bob"}
	for _, o := range []*store.Operator{full, minimal} {
		must(t, s.CreateOperator(ctx, o))
		equal(t, "GetOperator "+o.Username, getOperator(t, s, o.Username), o, normOperator)
	}
	// Usernames are compared exactly.
	_, err := s.GetOperator(ctx, "Alice")
	wantErr(t, "GetOperator with another case", err, store.ErrNotFound)
}

func testOperatorCreateConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	o := sampleOperator("alice", at(0))
	must(t, s.CreateOperator(ctx, o))
	other := sampleOperator("alice", at(time.Hour))
	other.PasswordHash = "other"
	wantErr(t, "CreateOperator with an existing username", s.CreateOperator(ctx, other), store.ErrConflict)
	equal(t, "GetOperator after the conflict", getOperator(t, s, "alice"), o, normOperator)
}

func testOperatorGetNotFound(t *testing.T, s store.Store) {
	_, err := s.GetOperator(t.Context(), "absent")
	wantErr(t, "GetOperator", err, store.ErrNotFound)
}

func testOperatorList(t *testing.T, s store.Store) {
	ctx := t.Context()
	got, err := s.ListOperators(ctx)
	must(t, err)
	if len(got) != 0 {
		t.Fatalf("ListOperators on an empty store = %d operators", len(got))
	}
	// Ordered by username, whatever the creation order and times.
	carol, alice, dave, bob := sampleOperator("carol", at(0)), sampleOperator("alice", at(3*time.Minute)),
		sampleOperator("dave", at(time.Minute)), sampleOperator("bob", at(2*time.Minute))
	for _, o := range []*store.Operator{carol, alice, dave, bob} {
		must(t, s.CreateOperator(ctx, o))
	}
	got, err = s.ListOperators(ctx)
	must(t, err)
	equal(t, "ListOperators", got, []*store.Operator{alice, bob, carol, dave}, normOperators)
}

func testOperatorUpdate(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, s.CreateOperator(ctx, sampleOperator("alice", at(0))))
	must(t, s.CreateOperator(ctx, sampleOperator("bob", at(0))))
	before := time.Now().Truncate(time.Microsecond)
	got, err := s.UpdateOperator(ctx, "alice", func(o *store.Operator) error {
		o.PasswordHash = "$argon2id$v=19$m=65536,t=3,p=4$bmV3$bmV3"
		return nil
	})
	after := time.Now()
	must(t, err)
	if got.UpdatedAt.Before(before) || got.UpdatedAt.After(after) {
		t.Errorf("UpdatedAt = %v, want within [%v, %v]", got.UpdatedAt, before, after)
	}
	want := sampleOperator("alice", at(0))
	want.PasswordHash = "$argon2id$v=19$m=65536,t=3,p=4$bmV3$bmV3"
	want.UpdatedAt = got.UpdatedAt
	equal(t, "UpdateOperator result", got, want, normOperator)
	stored := getOperator(t, s, "alice")
	equal(t, "GetOperator after UpdateOperator", stored, want, normOperator)
	if !stored.UpdatedAt.Equal(got.UpdatedAt) {
		t.Errorf("stored UpdatedAt %v differs from returned %v", stored.UpdatedAt, got.UpdatedAt)
	}
	equal(t, "the other operator", getOperator(t, s, "bob"), sampleOperator("bob", at(0)), normOperator)
}

func testOperatorUpdateNotFound(t *testing.T, s store.Store) {
	called := false
	_, err := s.UpdateOperator(t.Context(), "absent", func(*store.Operator) error { called = true; return nil })
	wantErr(t, "UpdateOperator", err, store.ErrNotFound)
	if called {
		t.Error("UpdateOperator called the updater for an absent operator")
	}
	if _, err := s.GetOperator(t.Context(), "absent"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateOperator of an absent operator created it: %v", err)
	}
}

func testOperatorUpdateAborts(t *testing.T, s store.Store) {
	ctx := t.Context()
	o := sampleOperator("alice", at(0))
	must(t, s.CreateOperator(ctx, o))
	errRefused := errors.New("refused by updater")
	_, err := s.UpdateOperator(ctx, "alice", func(o *store.Operator) error {
		o.PasswordHash = "half-done"
		return errRefused
	})
	wantErr(t, "UpdateOperator with a failing updater", err, errRefused)
	equal(t, "GetOperator after the aborted update", getOperator(t, s, "alice"), o, normOperator)
}
