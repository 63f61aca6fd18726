package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/store"
)

var sessionTests = []test{
	{"CreateGet", testSessionCreateGet},
	{"CreateConflict", testSessionCreateConflict},
	{"GetExpired", testSessionGetExpired},
	{"Delete", testSessionDelete},
	{"DeleteSubject", testSessionDeleteSubject},
	{"DeleteExpired", testSessionDeleteExpired},
}

// sampleSession is the session of cookie name (its hash is hash(name)),
// created at base and valid for a day.
func sampleSession(name, subject string) *store.Session {
	return &store.Session{
		Hash:      hash(name),
		Subject:   subject,
		CSRF:      "csrf-" + name,
		CreatedAt: at(0),
		ExpiresAt: at(24 * time.Hour),
	}
}

func normSession(ss *store.Session) *store.Session {
	if ss == nil {
		return nil
	}
	n := *ss
	n.Hash = normBytes(n.Hash)
	n.CreatedAt = normTime(n.CreatedAt)
	n.ExpiresAt = normTime(n.ExpiresAt)
	return &n
}

func createSessions(t *testing.T, s store.Store, ss ...*store.Session) {
	t.Helper()
	for _, x := range ss {
		must(t, s.CreateSession(t.Context(), x))
	}
}

// sessionExists reports whether GetSession at now finds the session.
func sessionExists(t *testing.T, s store.Store, name string, now time.Time) bool {
	t.Helper()
	_, err := s.GetSession(t.Context(), hash(name), now)
	switch {
	case err == nil:
		return true
	case errors.Is(err, store.ErrNotFound):
		return false
	default:
		t.Fatalf("GetSession(%s): %v", name, err)
		return false
	}
}

func testSessionCreateGet(t *testing.T, s store.Store) {
	ctx := t.Context()
	op := sampleSession("op", "operator:alice")
	acct := sampleSession("acct", "account:acct-1")
	createSessions(t, s, op, acct)
	for _, want := range []*store.Session{op, acct} {
		got, err := s.GetSession(ctx, want.Hash, at(time.Hour))
		must(t, err)
		equal(t, "GetSession "+want.CSRF, got, want, normSession)
	}
	_, err := s.GetSession(ctx, hash("absent"), at(time.Hour))
	wantErr(t, "GetSession of an absent session", err, store.ErrNotFound)
}

// testSessionCreateConflict checks that a session never replaces another
// with the same hash (that of another subject, say).
func testSessionCreateConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	ss := sampleSession("dup", "operator:alice")
	createSessions(t, s, ss)
	other := sampleSession("dup", "operator:mallory")
	wantErr(t, "CreateSession with an existing hash", s.CreateSession(ctx, other), store.ErrConflict)
	got, err := s.GetSession(ctx, hash("dup"), at(time.Hour))
	must(t, err)
	equal(t, "GetSession after the conflict", got, ss, normSession)
}

// testSessionGetExpired checks the expiry boundary: a session that expired
// before now is not found, one that expires at now still is.
func testSessionGetExpired(t *testing.T, s store.Store) {
	now := at(time.Hour)
	for name, exp := range map[string]time.Time{
		"past":   now.Add(-time.Microsecond),
		"now":    now,
		"future": now.Add(time.Microsecond),
	} {
		ss := sampleSession(name, "operator:alice")
		ss.ExpiresAt = exp
		createSessions(t, s, ss)
	}
	for name, want := range map[string]bool{"past": false, "now": true, "future": true} {
		if got := sessionExists(t, s, name, now); got != want {
			t.Errorf("GetSession(%s) at now found it: %v, want %v", name, got, want)
		}
	}
	// Earlier, all are found; later, none.
	for _, name := range []string{"past", "now", "future"} {
		if !sessionExists(t, s, name, at(0)) {
			t.Errorf("GetSession(%s) before its expiry did not find it", name)
		}
		if sessionExists(t, s, name, at(2*time.Hour)) {
			t.Errorf("GetSession(%s) after its expiry found it", name)
		}
	}
}

func testSessionDelete(t *testing.T, s store.Store) {
	ctx := t.Context()
	createSessions(t, s, sampleSession("gone", "operator:alice"), sampleSession("kept", "operator:alice"))
	must(t, s.DeleteSession(ctx, hash("gone")))
	if sessionExists(t, s, "gone", at(time.Hour)) {
		t.Error("GetSession found the deleted session")
	}
	if !sessionExists(t, s, "kept", at(time.Hour)) {
		t.Error("DeleteSession deleted another session")
	}
	// Signing out twice, or with an unknown cookie, is not an error.
	must(t, s.DeleteSession(ctx, hash("gone")))
	must(t, s.DeleteSession(ctx, hash("absent")))
}

func testSessionDeleteSubject(t *testing.T, s store.Store) {
	ctx := t.Context()
	subjects := map[string]string{
		"alice-1": "operator:alice",
		"alice-2": "operator:alice",
		"alice-3": "operator:alice", // expired, deleted too
		"alicia":  "operator:alice2",
		"acct":    "account:alice",
		"bob":     "operator:bob",
	}
	for name, subject := range subjects {
		ss := sampleSession(name, subject)
		if name == "alice-3" {
			ss.ExpiresAt = at(-time.Hour)
		}
		createSessions(t, s, ss)
	}
	must(t, s.DeleteSubjectSessions(ctx, "operator:alice"))
	for name, subject := range subjects {
		if got, want := sessionExists(t, s, name, at(-2*time.Hour)), subject != "operator:alice"; got != want {
			t.Errorf("session %s of %s exists: %v, want %v", name, subject, got, want)
		}
	}
	// A subject without sessions is not an error.
	must(t, s.DeleteSubjectSessions(ctx, "operator:alice"))
	must(t, s.DeleteSubjectSessions(ctx, "operator:nobody"))
}

func testSessionDeleteExpired(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := at(time.Hour)
	for name, exp := range map[string]time.Time{
		"past":   now.Add(-time.Microsecond),
		"now":    now,
		"future": now.Add(time.Microsecond),
	} {
		ss := sampleSession(name, "operator:"+name)
		ss.ExpiresAt = exp
		createSessions(t, s, ss)
	}
	// Removes sessions that expired before now, not at now.
	n, err := s.DeleteExpiredSessions(ctx, now)
	must(t, err)
	if n != 1 {
		t.Errorf("DeleteExpiredSessions = %d, want 1", n)
	}
	// Looked up at an earlier time, at which all were valid: only the
	// deleted one is gone.
	for name, want := range map[string]bool{"past": false, "now": true, "future": true} {
		if got := sessionExists(t, s, name, at(0)); got != want {
			t.Errorf("session %s exists after DeleteExpiredSessions: %v, want %v", name, got, want)
		}
	}
	n, err = s.DeleteExpiredSessions(ctx, at(48*time.Hour))
	must(t, err)
	if n != 2 {
		t.Errorf("DeleteExpiredSessions later = %d, want 2", n)
	}
	if n, err := s.DeleteExpiredSessions(ctx, at(48*time.Hour)); err != nil || n != 0 {
		t.Errorf("DeleteExpiredSessions again = %d, %v, want 0", n, err)
	}
}
