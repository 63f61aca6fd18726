package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/store"
)

var usedJTITests = []test{
	{"Consume", testConsumeJTI},
	{"ConsumeConcurrent", testConsumeJTIConcurrent},
	{"DeleteExpired", testUsedJTIsDeleteExpired},
}

func testConsumeJTI(t *testing.T, s store.Store) {
	ctx := t.Context()
	exp := at(time.Hour)
	must(t, s.ConsumeJTI(ctx, "acct-a", "jti-1", exp))
	wantErr(t, "ConsumeJTI twice", s.ConsumeJTI(ctx, "acct-a", "jti-1", exp), store.ErrConflict)
	// Another expiry does not make it new.
	wantErr(t, "ConsumeJTI twice with a later expiry",
		s.ConsumeJTI(ctx, "acct-a", "jti-1", at(2*time.Hour)), store.ErrConflict)
	// The pair is the key: the same jti of another issuer, and another jti
	// of the same issuer, are unused.
	must(t, s.ConsumeJTI(ctx, "acct-b", "jti-1", exp))
	must(t, s.ConsumeJTI(ctx, "acct-a", "jti-2", exp))
	wantErr(t, "ConsumeJTI of the other issuer's twice", s.ConsumeJTI(ctx, "acct-b", "jti-1", exp), store.ErrConflict)
	// No confusion where issuer and jti meet.
	must(t, s.ConsumeJTI(ctx, "acct-a:", "jti-1", exp))
	must(t, s.ConsumeJTI(ctx, "acct-a", ":jti-1", exp))
}

// testConsumeJTIConcurrent races consumers of one jti under two issuers:
// for each issuer exactly one succeeds, and the others get ErrConflict.
func testConsumeJTIConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	issuers := []string{"acct-a", "acct-b"}
	errs := make([][]error, len(issuers))
	for i := range errs {
		errs[i] = make([]error, concurrency)
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for g := range concurrency {
		for i, iss := range issuers {
			wg.Go(func() {
				<-start
				errs[i][g] = s.ConsumeJTI(ctx, iss, "jti-race", at(time.Hour))
			})
		}
	}
	close(start)
	wg.Wait()
	for i, iss := range issuers {
		ok, conflicts, other := countErrs(errs[i], store.ErrConflict)
		if other != nil {
			t.Fatalf("%s: unexpected error: %v", iss, other)
		}
		if ok != 1 || conflicts != concurrency-1 {
			t.Errorf("%s: %d consumers succeeded and %d got ErrConflict, want 1 and %d",
				iss, ok, conflicts, concurrency-1)
		}
	}
}

func testUsedJTIsDeleteExpired(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := at(time.Hour)
	exps := map[string]time.Time{
		"past":   now.Add(-time.Microsecond),
		"now":    now,
		"future": now.Add(time.Microsecond),
	}
	for jti, exp := range exps {
		must(t, s.ConsumeJTI(ctx, "iss", jti, exp))
	}
	// Removes entries that expired before now, not at now.
	n, err := s.DeleteExpiredJTIs(ctx, now)
	must(t, err)
	if n != 1 {
		t.Errorf("DeleteExpiredJTIs = %d, want 1", n)
	}
	// What remains is still used; what went can be consumed again.
	for _, jti := range []string{"now", "future"} {
		wantErr(t, fmt.Sprintf("ConsumeJTI(%s) after DeleteExpiredJTIs", jti),
			s.ConsumeJTI(ctx, "iss", jti, exps[jti]), store.ErrConflict)
	}
	must(t, s.ConsumeJTI(ctx, "iss", "past", at(48*time.Hour)))
	n, err = s.DeleteExpiredJTIs(ctx, at(24*time.Hour))
	must(t, err)
	if n != 2 {
		t.Errorf("DeleteExpiredJTIs later = %d, want 2", n)
	}
	wantErr(t, "ConsumeJTI(past) consumed again", s.ConsumeJTI(ctx, "iss", "past", at(48*time.Hour)), store.ErrConflict)
}
