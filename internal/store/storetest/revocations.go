package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/store"
)

var revocationTests = []test{
	{"RevokeAndCheck", testRevokeAndCheck},
	{"RevokeTwice", testRevokeTwice},
	{"DeleteExpired", testRevocationsDeleteExpired},
	{"List", testListRevocations},
	{"Each", testEachRevocation},
}

func isRevoked(t *testing.T, s store.Store, jti string) bool {
	t.Helper()
	r, err := s.IsRevoked(t.Context(), jti)
	must(t, err)
	return r
}

func testRevokeAndCheck(t *testing.T, s store.Store) {
	if isRevoked(t, s, "jti-1") {
		t.Fatal("IsRevoked on an empty store = true")
	}
	must(t, s.RevokeJTI(t.Context(), "jti-1", at(time.Hour), at(0)))
	if !isRevoked(t, s, "jti-1") {
		t.Error("IsRevoked after RevokeJTI = false")
	}
	if isRevoked(t, s, "jti-2") {
		t.Error("IsRevoked of another jti = true")
	}
}

func testRevokeTwice(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, s.RevokeJTI(ctx, "jti-1", at(time.Hour), at(0)))
	must(t, s.RevokeJTI(ctx, "jti-1", at(time.Hour), at(0)))
	// A second revocation with another expiry never shortens the first:
	// the entry lasts until the later one.
	must(t, s.RevokeJTI(ctx, "jti-1", at(2*time.Hour), at(0)))
	must(t, s.RevokeJTI(ctx, "jti-1", at(time.Minute), at(0)))
	if !isRevoked(t, s, "jti-1") {
		t.Fatal("IsRevoked after revoking repeatedly = false")
	}
	n, err := s.DeleteExpiredRevocations(ctx, at(90*time.Minute))
	must(t, err)
	if n != 0 || !isRevoked(t, s, "jti-1") {
		t.Errorf("DeleteExpiredRevocations before the later expiry removed %d entries, want 0", n)
	}
}

func testRevocationsDeleteExpired(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := at(time.Hour)
	must(t, s.RevokeJTI(ctx, "past", now.Add(-time.Microsecond), at(0)))
	must(t, s.RevokeJTI(ctx, "now", now, at(0)))
	must(t, s.RevokeJTI(ctx, "future", now.Add(time.Microsecond), at(0)))
	// Removes entries whose JWT expired before now, not at now.
	n, err := s.DeleteExpiredRevocations(ctx, now)
	must(t, err)
	if n != 1 {
		t.Errorf("DeleteExpiredRevocations = %d, want 1", n)
	}
	for jti, want := range map[string]bool{"past": false, "now": true, "future": true} {
		if got := isRevoked(t, s, jti); got != want {
			t.Errorf("IsRevoked(%s) = %v, want %v", jti, got, want)
		}
	}
	n, err = s.DeleteExpiredRevocations(ctx, at(48*time.Hour))
	must(t, err)
	if n != 2 {
		t.Errorf("DeleteExpiredRevocations later = %d, want 2", n)
	}
}

func testListRevocations(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, s.RevokeJTI(ctx, "early", at(time.Hour), at(0)))
	must(t, s.RevokeJTI(ctx, "late", at(time.Hour), at(time.Minute)))
	must(t, s.RevokeJTI(ctx, "gone", at(time.Second), at(time.Minute)))
	all, err := s.ListRevocations(ctx, time.Time{}, at(2*time.Second))
	must(t, err)
	if len(all) != 2 || all[0].JTI != "early" || all[1].JTI != "late" {
		t.Fatalf("ListRevocations(all) = %+v, want early, late (gone has expired)", all)
	}
	if !all[1].RevokedAt.Equal(at(time.Minute).Truncate(time.Microsecond)) || !all[1].ExpiresAt.Equal(at(time.Hour).Truncate(time.Microsecond)) {
		t.Errorf("times not kept: %+v", all[1])
	}
	recent, err := s.ListRevocations(ctx, at(time.Minute), at(0))
	must(t, err)
	if len(recent) != 2 || recent[0].JTI == "early" || recent[1].JTI == "early" {
		t.Fatalf("ListRevocations(since 1m) = %+v, want late and gone", recent)
	}
}

func normRevocations(rs []store.Revocation) []store.Revocation {
	out := make([]store.Revocation, len(rs))
	for i, r := range rs {
		out[i] = store.Revocation{JTI: r.JTI, ExpiresAt: normTime(r.ExpiresAt), RevokedAt: normTime(r.RevokedAt)}
	}
	return out
}

// A store.RevocationVisitor visits what ListRevocations lists, in its
// order, and stops at the first error of the callback.
func testEachRevocation(t *testing.T, s store.Store) {
	v, ok := s.(store.RevocationVisitor)
	if !ok {
		t.Skip("the backend has no store.RevocationVisitor")
	}
	ctx := t.Context()
	must(t, s.RevokeJTI(ctx, "early", at(time.Hour), at(0)))
	must(t, s.RevokeJTI(ctx, "late", at(time.Hour), at(time.Minute)))
	must(t, s.RevokeJTI(ctx, "gone", at(time.Second), at(time.Minute)))
	for _, q := range []struct{ since, now time.Time }{{time.Time{}, at(2 * time.Second)}, {at(time.Minute), at(0)}} {
		want, err := s.ListRevocations(ctx, q.since, q.now)
		must(t, err)
		var got []store.Revocation
		must(t, v.EachRevocation(ctx, q.since, q.now, func(r store.Revocation) error {
			got = append(got, r)
			return nil
		}))
		equal(t, "EachRevocation", got, want, normRevocations)
	}
	stop := errors.New("stop")
	n := 0
	err := v.EachRevocation(ctx, time.Time{}, at(0), func(store.Revocation) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("EachRevocation after the callback failed: %v, %d calls", err, n)
	}
}
