package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/store"
)

var tokenTests = []test{
	{"CreateGet", testTokenCreateGet},
	{"CreateConflict", testTokenCreateConflict},
	{"GetNotFound", testTokenGetNotFound},
	{"Rotate", testTokenRotate},
	{"RotateNotFound", testTokenRotateNotFound},
	{"RotateReplay", testTokenRotateReplay},
	{"RotateConcurrent", testTokenRotateConcurrent},
	{"RotateInactive", testTokenRotateInactive},
	{"RotateSuccessorConflict", testTokenRotateSuccessorConflict},
	{"Revoke", testTokenRevoke},
	{"RevokeFamily", testTokenRevokeFamily},
	{"RevokeFamilyRecorded", testTokenRevokeFamilyRecorded},
	{"RevokeFamilyChildren", testTokenRevokeFamilyChildren},
	{"DeleteExpired", testTokenDeleteExpired},
}

// sampleToken is a token named name (its hash is hash(name)) of family,
// issued at base and valid for a day.
func sampleToken(name string, kind store.TokenKind, family string) *store.TokenRecord {
	return &store.TokenRecord{
		Hash:      hash(name),
		Kind:      kind,
		JTI:       "jti-" + name,
		ClientID:  "client-1",
		Subject:   "alice",
		Scope:     "read write",
		Audience:  []string{"https://api.example.com", "urn:example:billing"},
		FamilyID:  family,
		IssuedAt:  at(0),
		ExpiresAt: at(24 * time.Hour),
		Cnf:       []byte(`{"jkt":"0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}`),
	}
}

func normToken(tr *store.TokenRecord) *store.TokenRecord {
	if tr == nil {
		return nil
	}
	n := *tr
	n.Hash = normBytes(n.Hash)
	n.Audience = normList(n.Audience)
	n.Actor = normBytes(n.Actor)
	n.Cnf = normBytes(n.Cnf)
	n.IssuedAt = normTime(n.IssuedAt)
	n.ExpiresAt = normTime(n.ExpiresAt)
	n.RevokedAt = normTime(n.RevokedAt)
	n.ConsumedAt = normTime(n.ConsumedAt)
	return &n
}

func getToken(t *testing.T, s store.Store, name string) *store.TokenRecord {
	t.Helper()
	tr, err := s.GetToken(t.Context(), hash(name))
	if err != nil {
		t.Fatalf("GetToken(%s): %v", name, err)
	}
	return tr
}

func createTokens(t *testing.T, s store.Store, ts ...*store.TokenRecord) {
	t.Helper()
	for _, tr := range ts {
		must(t, s.CreateToken(t.Context(), tr))
	}
}

func testTokenCreateGet(t *testing.T, s store.Store) {
	access := sampleToken("access", store.TokenAccess, "fam")
	access.Actor = []byte(`{"sub":"svc-a","act":{"sub":"svc-b"}}`)
	refresh := sampleToken("refresh", store.TokenRefresh, "fam")
	refresh.Audience = nil
	// A token with every optional field zero.
	bare := &store.TokenRecord{Hash: hash("bare"), Kind: store.TokenAccess, ExpiresAt: at(time.Hour)}
	createTokens(t, s, access, refresh, bare)
	for name, want := range map[string]*store.TokenRecord{"access": access, "refresh": refresh, "bare": bare} {
		equal(t, "GetToken "+name, getToken(t, s, name), want, normToken)
	}
}

func testTokenCreateConflict(t *testing.T, s store.Store) {
	tr := sampleToken("dup", store.TokenAccess, "fam")
	createTokens(t, s, tr)
	other := sampleToken("dup", store.TokenRefresh, "other")
	wantErr(t, "CreateToken with an existing hash", s.CreateToken(t.Context(), other), store.ErrConflict)
	equal(t, "GetToken after the conflict", getToken(t, s, "dup"), tr, normToken)
}

func testTokenGetNotFound(t *testing.T, s store.Store) {
	_, err := s.GetToken(t.Context(), hash("absent"))
	wantErr(t, "GetToken", err, store.ErrNotFound)
}

func testTokenRotate(t *testing.T, s store.Store) {
	ctx := t.Context()
	r1 := sampleToken("r1", store.TokenRefresh, "fam")
	createTokens(t, s, r1)

	now := at(time.Hour)
	r2 := sampleToken("r2", store.TokenRefresh, "fam")
	r2.IssuedAt, r2.ExpiresAt = now, now.Add(24*time.Hour)
	must(t, s.RotateRefreshToken(ctx, hash("r1"), now, r2))

	want1 := *r1
	want1.ConsumedAt = now
	equal(t, "the consumed token", getToken(t, s, "r1"), &want1, normToken)
	equal(t, "the successor", getToken(t, s, "r2"), r2, normToken)

	// The successor rotates in turn.
	r3 := sampleToken("r3", store.TokenRefresh, "fam")
	must(t, s.RotateRefreshToken(ctx, hash("r2"), at(2*time.Hour), r3))
	equal(t, "the second successor", getToken(t, s, "r3"), r3, normToken)
}

func testTokenRotateNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	next := sampleToken("next", store.TokenRefresh, "fam")
	wantErr(t, "RotateRefreshToken of an absent token",
		s.RotateRefreshToken(ctx, hash("absent"), at(time.Hour), next), store.ErrNotFound)
	// An access token is not a refresh token.
	createTokens(t, s, sampleToken("access", store.TokenAccess, "fam"))
	wantErr(t, "RotateRefreshToken of an access token",
		s.RotateRefreshToken(ctx, hash("access"), at(time.Hour), next), store.ErrNotFound)
	if _, err := s.GetToken(ctx, hash("next")); err == nil {
		t.Fatal("the successor was stored although the rotation failed")
	}
}

// testTokenRotateReplay presents a consumed refresh token again: the whole
// family is revoked, and stays revoked although the call fails.
func testTokenRotateReplay(t *testing.T, s store.Store) {
	ctx := t.Context()
	createTokens(t, s,
		sampleToken("r1", store.TokenRefresh, "fam"),
		sampleToken("a1", store.TokenAccess, "fam"),
		sampleToken("other", store.TokenRefresh, "other-fam"),
		sampleToken("nofam", store.TokenRefresh, ""),
	)
	must(t, s.RotateRefreshToken(ctx, hash("r1"), at(time.Hour), sampleToken("r2", store.TokenRefresh, "fam")))

	replayAt := at(2 * time.Hour)
	err := s.RotateRefreshToken(ctx, hash("r1"), replayAt, sampleToken("r3", store.TokenRefresh, "fam"))
	wantErr(t, "RotateRefreshToken of a consumed token", err, store.ErrTokenReplayed)

	if _, err := s.GetToken(ctx, hash("r3")); err == nil {
		t.Error("the replay's successor was stored")
	}
	for _, name := range []string{"r1", "r2", "a1"} {
		if got := getToken(t, s, name).RevokedAt; !sameTime(got, replayAt) {
			t.Errorf("%s RevokedAt = %v, want %v", name, got, replayAt)
		}
	}
	for _, name := range []string{"other", "nofam"} {
		if got := getToken(t, s, name).RevokedAt; !got.IsZero() {
			t.Errorf("%s, of another family, was revoked at %v", name, got)
		}
	}
	// The family is recorded as revoked, for its JWTs, until its last
	// token expires; the other families are not.
	revs, err := s.ListRevocations(ctx, time.Time{}, replayAt)
	must(t, err)
	equal(t, "the revocations after the replay", revs,
		[]store.Revocation{{JTI: store.FamilyRevocation("fam"), ExpiresAt: at(24 * time.Hour), RevokedAt: replayAt}}, normRevocations)
	// The revoked successor is now inactive.
	wantErr(t, "RotateRefreshToken of the revoked successor",
		s.RotateRefreshToken(ctx, hash("r2"), at(3*time.Hour), sampleToken("r4", store.TokenRefresh, "fam")),
		store.ErrTokenInactive)
	// Replaying again still reports the replay.
	wantErr(t, "RotateRefreshToken of the consumed token again",
		s.RotateRefreshToken(ctx, hash("r1"), at(3*time.Hour), sampleToken("r5", store.TokenRefresh, "fam")),
		store.ErrTokenReplayed)
}

// testTokenRotateConcurrent races rotations of one refresh token: one wins,
// the others are replays, and the family ends revoked.
func testTokenRotateConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	createTokens(t, s, sampleToken("r1", store.TokenRefresh, "fam"))
	now := at(time.Hour)
	errs := make([]error, concurrency)
	var wg sync.WaitGroup
	for i := range concurrency {
		wg.Go(func() {
			errs[i] = s.RotateRefreshToken(ctx, hash("r1"), now,
				sampleToken(fmt.Sprintf("next%02d", i), store.TokenRefresh, "fam"))
		})
	}
	wg.Wait()
	ok, replays, other := countErrs(errs, store.ErrTokenReplayed)
	if other != nil {
		t.Fatalf("unexpected error: %v", other)
	}
	if ok != 1 || replays != concurrency-1 {
		t.Fatalf("%d rotations succeeded and %d were replays, want 1 and %d", ok, replays, concurrency-1)
	}
	winner := slices.IndexFunc(errs, func(err error) bool { return err == nil })
	for i := range concurrency {
		name := fmt.Sprintf("next%02d", i)
		tr, err := s.GetToken(ctx, hash(name))
		switch {
		case i == winner && err != nil:
			t.Errorf("the winner's successor: %v", err)
		case i == winner && tr.RevokedAt.IsZero():
			t.Error("the winner's successor was not revoked by the replays")
		case i != winner && err == nil:
			t.Errorf("the successor of a replay, %s, was stored", name)
		}
	}
	if getToken(t, s, "r1").RevokedAt.IsZero() {
		t.Error("the replayed token was not revoked")
	}
}

func testTokenRotateInactive(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := at(time.Hour)
	revoked := sampleToken("revoked", store.TokenRefresh, "f1")
	revoked.RevokedAt = at(time.Minute)
	expired := sampleToken("expired", store.TokenRefresh, "f2")
	expired.ExpiresAt = now.Add(-time.Microsecond)
	expiring := sampleToken("expiring", store.TokenRefresh, "f3")
	expiring.ExpiresAt = now // expired at now
	valid := sampleToken("valid", store.TokenRefresh, "f4")
	valid.ExpiresAt = now.Add(time.Microsecond)
	createTokens(t, s, revoked, expired, expiring, valid)

	for _, old := range []*store.TokenRecord{revoked, expired, expiring} {
		next := sampleToken("next-"+old.JTI, store.TokenRefresh, old.FamilyID)
		err := s.RotateRefreshToken(ctx, old.Hash, now, next)
		wantErr(t, "RotateRefreshToken of "+old.JTI, err, store.ErrTokenInactive)
		got, err := s.GetToken(ctx, old.Hash)
		must(t, err)
		equal(t, old.JTI+" after the refused rotation", got, old, normToken)
		if _, err := s.GetToken(ctx, next.Hash); err == nil {
			t.Errorf("the successor of %s was stored", old.JTI)
		}
	}
	must(t, s.RotateRefreshToken(ctx, valid.Hash, now, sampleToken("next-valid", store.TokenRefresh, "f4")))
}

// testTokenRotateSuccessorConflict checks that a rotation is all or
// nothing: a successor whose hash exists leaves the old token unconsumed.
func testTokenRotateSuccessorConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	r1 := sampleToken("r1", store.TokenRefresh, "fam")
	taken := sampleToken("taken", store.TokenAccess, "fam")
	createTokens(t, s, r1, taken)
	err := s.RotateRefreshToken(ctx, hash("r1"), at(time.Hour), sampleToken("taken", store.TokenRefresh, "fam"))
	wantErr(t, "RotateRefreshToken to an existing hash", err, store.ErrConflict)
	equal(t, "r1 after the failed rotation", getToken(t, s, "r1"), r1, normToken)
	equal(t, "the existing token", getToken(t, s, "taken"), taken, normToken)
	// Not consumed, so not a replay either.
	must(t, s.RotateRefreshToken(ctx, hash("r1"), at(time.Hour), sampleToken("r2", store.TokenRefresh, "fam")))
}

func testTokenRevoke(t *testing.T, s store.Store) {
	ctx := t.Context()
	createTokens(t, s,
		sampleToken("a1", store.TokenAccess, "fam"),
		sampleToken("a2", store.TokenAccess, "fam"))
	must(t, s.RevokeToken(ctx, hash("a1"), at(time.Hour)))
	if got := getToken(t, s, "a1").RevokedAt; !sameTime(got, at(time.Hour)) {
		t.Errorf("RevokedAt = %v, want %v", got, at(time.Hour))
	}
	if got := getToken(t, s, "a2").RevokedAt; !got.IsZero() {
		t.Errorf("the other token was revoked at %v", got)
	}
	// Revoking again succeeds and keeps the first time.
	must(t, s.RevokeToken(ctx, hash("a1"), at(2*time.Hour)))
	if got := getToken(t, s, "a1").RevokedAt; !sameTime(got, at(time.Hour)) {
		t.Errorf("RevokedAt after revoking twice = %v, want %v", got, at(time.Hour))
	}
	wantErr(t, "RevokeToken of an absent token", s.RevokeToken(ctx, hash("absent"), at(time.Hour)), store.ErrNotFound)
}

func testTokenRevokeFamily(t *testing.T, s store.Store) {
	ctx := t.Context()
	early := sampleToken("early", store.TokenRefresh, "fam")
	early.RevokedAt = at(time.Minute)
	createTokens(t, s,
		sampleToken("r1", store.TokenRefresh, "fam"),
		sampleToken("a1", store.TokenAccess, "fam"),
		early,
		sampleToken("other", store.TokenRefresh, "other-fam"),
		sampleToken("nofam", store.TokenAccess, ""),
	)
	now := at(time.Hour)
	must(t, s.RevokeFamily(ctx, "fam", now))
	for name, want := range map[string]time.Time{
		"r1": now, "a1": now,
		"early": at(time.Minute), // keeps its first revocation
		"other": {}, "nofam": {},
	} {
		if got := getToken(t, s, name).RevokedAt; !sameTime(got, want) {
			t.Errorf("%s RevokedAt = %v, want %v", name, got, want)
		}
	}
	// A family without tokens, and no family at all, revoke nothing.
	must(t, s.RevokeFamily(ctx, "absent", now))
	must(t, s.RevokeFamily(ctx, "", now))
	if got := getToken(t, s, "nofam").RevokedAt; !got.IsZero() {
		t.Errorf("RevokeFamily(\"\") revoked a token without a family at %v", got)
	}
	for _, fam := range []string{"absent", "", "other-fam"} {
		if isRevoked(t, s, store.FamilyRevocation(fam)) {
			t.Errorf("family %q recorded as revoked", fam)
		}
	}
}

// testTokenRevokeFamilyRecorded checks the revocation RevokeFamily records
// for the family's JWTs, which are not stored: present at once, lasting
// until the latest expiry of the family's tokens, listed for the instances
// that keep a copy, and kept by a second revocation.
func testTokenRevokeFamilyRecorded(t *testing.T, s store.Store) {
	ctx := t.Context()
	late := sampleToken("late", store.TokenAccess, "fam")
	late.ExpiresAt = at(48 * time.Hour)
	createTokens(t, s, sampleToken("r1", store.TokenRefresh, "fam"), late,
		sampleToken("other", store.TokenRefresh, "other-fam"))
	key := store.FamilyRevocation("fam")
	if isRevoked(t, s, key) {
		t.Fatal("the family is revoked before RevokeFamily")
	}
	now := at(time.Hour)
	must(t, s.RevokeFamily(ctx, "fam", now))
	if !isRevoked(t, s, key) {
		t.Fatal("IsRevoked of the family after RevokeFamily = false")
	}
	want := []store.Revocation{{JTI: key, ExpiresAt: late.ExpiresAt, RevokedAt: now}}
	list := func() []store.Revocation {
		got, err := s.ListRevocations(ctx, time.Time{}, now)
		must(t, err)
		return got
	}
	equal(t, "ListRevocations after RevokeFamily", list(), want, normRevocations)
	// Revoking again changes nothing.
	must(t, s.RevokeFamily(ctx, "fam", at(2*time.Hour)))
	equal(t, "ListRevocations after revoking twice", list(), want, normRevocations)
	// The entry goes once the family's last token has expired.
	n, err := s.DeleteExpiredRevocations(ctx, at(47*time.Hour))
	must(t, err)
	if n != 0 || !isRevoked(t, s, key) {
		t.Errorf("DeleteExpiredRevocations before the family's last expiry removed %d entries", n)
	}
	n, err = s.DeleteExpiredRevocations(ctx, at(49*time.Hour))
	must(t, err)
	if n != 1 || isRevoked(t, s, key) {
		t.Errorf("DeleteExpiredRevocations after the family's last expiry removed %d entries, want 1", n)
	}
}

// testTokenRevokeFamilyChildren: revoking a family revokes its child
// families' tokens (ids "fam.x"), and its recorded revocation lasts until
// the latest expiry among them; revoking a child leaves the parent and its
// siblings alone; "fam_x" and "famx", which are not children, are not
// touched (no LIKE wildcard, no bare prefix).
func testTokenRevokeFamilyChildren(t *testing.T, s store.Store) {
	ctx := t.Context()
	child := sampleToken("child", store.TokenRefresh, "fam"+store.FamilySeparator+"c1")
	child.ExpiresAt = at(72 * time.Hour)
	createTokens(t, s, sampleToken("parent", store.TokenRefresh, "fam"), child,
		sampleToken("sibling", store.TokenRefresh, "fam"+store.FamilySeparator+"c2"),
		sampleToken("grandchild", store.TokenRefresh, "fam"+store.FamilySeparator+"c2"+store.FamilySeparator+"g"),
		sampleToken("underscore", store.TokenRefresh, "fam_c3"), sampleToken("prefix", store.TokenRefresh, "famx"))
	now := at(time.Hour)
	must(t, s.RevokeFamily(ctx, "fam"+store.FamilySeparator+"c2", now))
	for name, want := range map[string]bool{"parent": false, "child": false, "sibling": true, "grandchild": true, "underscore": false, "prefix": false} {
		if got := !getToken(t, s, name).RevokedAt.IsZero(); got != want {
			t.Errorf("after revoking child c2: %s revoked = %v, want %v", name, got, want)
		}
	}
	if isRevoked(t, s, store.FamilyRevocation("fam")) {
		t.Error("revoking a child recorded its parent as revoked")
	}
	must(t, s.RevokeFamily(ctx, "fam", now))
	for name, want := range map[string]bool{"parent": true, "child": true, "underscore": false, "prefix": false} {
		if got := !getToken(t, s, name).RevokedAt.IsZero(); got != want {
			t.Errorf("after revoking the parent: %s revoked = %v, want %v", name, got, want)
		}
	}
	got, err := s.ListRevocations(ctx, time.Time{}, now)
	must(t, err)
	for _, r := range got {
		if r.JTI == store.FamilyRevocation("fam") && !sameTime(r.ExpiresAt, child.ExpiresAt) {
			t.Errorf("the parent's revocation lasts until %v, want its child's last expiry %v", r.ExpiresAt, child.ExpiresAt)
		}
	}
}

func testTokenDeleteExpired(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := at(time.Hour)
	for name, exp := range map[string]time.Time{
		"past":   now.Add(-time.Microsecond),
		"now":    now,
		"future": now.Add(time.Microsecond),
	} {
		tr := sampleToken(name, store.TokenRefresh, "fam")
		tr.ExpiresAt = exp
		createTokens(t, s, tr)
	}
	// Removes tokens that expired before now, not at now.
	n, err := s.DeleteExpiredTokens(ctx, now)
	must(t, err)
	if n != 1 {
		t.Errorf("DeleteExpiredTokens = %d, want 1", n)
	}
	_, err = s.GetToken(ctx, hash("past"))
	wantErr(t, "GetToken of the deleted token", err, store.ErrNotFound)
	getToken(t, s, "now")
	getToken(t, s, "future")
	n, err = s.DeleteExpiredTokens(ctx, at(48*time.Hour))
	must(t, err)
	if n != 2 {
		t.Errorf("DeleteExpiredTokens later = %d, want 2", n)
	}
}
