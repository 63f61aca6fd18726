package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/store"
)

var keyTests = []test{
	{"Empty", testKeysEmpty},
	{"Bootstrap", testKeysBootstrap},
	{"Rotate", testKeysRotate},
	{"RotateConflict", testKeysRotateConflict},
	{"RotateAddConflict", testKeysRotateAddConflict},
	{"RotateConcurrent", testKeysRotateConcurrent},
	{"BootstrapConcurrent", testKeysBootstrapConcurrent},
	{"ListExpiry", testKeysListExpiry},
	{"DeleteExpired", testKeysDeleteExpired},
}

func sampleKey(id string, state store.KeyState, created time.Time) *store.SigningKey {
	return &store.SigningKey{
		ID:         id,
		Algorithm:  "ES256",
		State:      state,
		PrivateKey: []byte("encrypted-private-" + id),
		PublicKey:  []byte(`{"kty":"EC","crv":"P-256","kid":"` + id + `"}`),
		CreatedAt:  created,
	}
}

func normKey(k *store.SigningKey) *store.SigningKey {
	if k == nil {
		return nil
	}
	n := *k
	n.PrivateKey = normBytes(n.PrivateKey)
	n.PublicKey = normBytes(n.PublicKey)
	n.CreatedAt = normTime(n.CreatedAt)
	n.ActivatedAt = normTime(n.ActivatedAt)
	n.RetiredAt = normTime(n.RetiredAt)
	n.ExpiresAt = normTime(n.ExpiresAt)
	return &n
}

func normKeys(ks []*store.SigningKey) []*store.SigningKey {
	var out []*store.SigningKey
	for _, k := range ks {
		out = append(out, normKey(k))
	}
	return out
}

// keyIDs lists the IDs of the keys ListKeys returns at now, in its order.
func keyIDs(t *testing.T, s store.Store, now time.Time) []string {
	t.Helper()
	ks, err := s.ListKeys(t.Context(), now)
	must(t, err)
	var ids []string
	for _, k := range ks {
		ids = append(ids, k.ID)
	}
	return ids
}

// keysIn returns the IDs of the listed keys in state st.
func keysIn(t *testing.T, s store.Store, now time.Time, st store.KeyState) []string {
	t.Helper()
	ks, err := s.ListKeys(t.Context(), now)
	must(t, err)
	var ids []string
	for _, k := range ks {
		if k.State == st {
			ids = append(ids, k.ID)
		}
	}
	return ids
}

// bootstrap installs current key k1 and next key k2, created at base and
// base+1s.
func bootstrap(t *testing.T, s store.Store) (k1, k2 *store.SigningKey) {
	t.Helper()
	k1 = sampleKey("k1", store.KeyCurrent, at(0))
	k1.ActivatedAt = at(0)
	k2 = sampleKey("k2", store.KeyNext, at(time.Second))
	must(t, s.RotateKeys(t.Context(), "", at(time.Second), time.Time{}, k1, k2))
	return k1, k2
}

func testKeysEmpty(t *testing.T, s store.Store) {
	ks, err := s.ListKeys(t.Context(), at(0))
	must(t, err)
	if len(ks) != 0 {
		t.Fatalf("ListKeys on an empty store = %d keys", len(ks))
	}
	n, err := s.DeleteExpiredKeys(t.Context(), at(0))
	must(t, err)
	if n != 0 {
		t.Fatalf("DeleteExpiredKeys on an empty store = %d", n)
	}
}

func testKeysBootstrap(t *testing.T, s store.Store) {
	k1, k2 := bootstrap(t, s)
	got, err := s.ListKeys(t.Context(), at(time.Second))
	must(t, err)
	// Newest first; both inserted as given.
	equal(t, "ListKeys", got, []*store.SigningKey{k2, k1}, normKeys)
}

func testKeysRotate(t *testing.T, s store.Store) {
	ctx := t.Context()
	k1, k2 := bootstrap(t, s)

	// k1 retires, k2 becomes current, k3 is the new next.
	now, until := at(time.Hour), at(25*time.Hour)
	k3 := sampleKey("k3", store.KeyNext, now)
	must(t, s.RotateKeys(ctx, "k1", now, until, k3))
	got, err := s.ListKeys(ctx, now)
	must(t, err)
	w1, w2 := *k1, *k2
	w1.State, w1.RetiredAt, w1.ExpiresAt = store.KeyRetired, now, until
	w2.State, w2.ActivatedAt = store.KeyCurrent, now
	equal(t, "ListKeys after the rotation", got, []*store.SigningKey{k3, &w2, &w1}, normKeys)

	// Without a key to add, the next key still takes over and none waits.
	now2 := at(2 * time.Hour)
	must(t, s.RotateKeys(ctx, "k2", now2, at(26*time.Hour)))
	if cur := keysIn(t, s, now2, store.KeyCurrent); !slices.Equal(cur, []string{"k3"}) {
		t.Fatalf("current keys = %v, want [k3]", cur)
	}
	if next := keysIn(t, s, now2, store.KeyNext); len(next) != 0 {
		t.Fatalf("next keys = %v, want none", next)
	}

	// Without a next key, the current one retires and none signs.
	must(t, s.RotateKeys(ctx, "k3", at(3*time.Hour), at(27*time.Hour)))
	if cur := keysIn(t, s, at(3*time.Hour), store.KeyCurrent); len(cur) != 0 {
		t.Fatalf("current keys = %v, want none", cur)
	}
	// So the next rotation expects none.
	k4 := sampleKey("k4", store.KeyCurrent, at(4*time.Hour))
	must(t, s.RotateKeys(ctx, "", at(4*time.Hour), time.Time{}, k4))
	if cur := keysIn(t, s, at(4*time.Hour), store.KeyCurrent); !slices.Equal(cur, []string{"k4"}) {
		t.Fatalf("current keys = %v, want [k4]", cur)
	}
}

func testKeysRotateConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	wantErr(t, "RotateKeys expecting a current key on an empty store",
		s.RotateKeys(ctx, "k1", at(0), at(time.Hour), sampleKey("x", store.KeyNext, at(0))),
		store.ErrConflict)
	if ids := keyIDs(t, s, at(0)); len(ids) != 0 {
		t.Fatalf("keys after the failed rotation = %v, want none", ids)
	}

	k1, k2 := bootstrap(t, s)
	for _, expect := range []string{"", "k2", "other"} {
		err := s.RotateKeys(ctx, expect, at(time.Hour), at(2*time.Hour),
			sampleKey("x-"+expect, store.KeyNext, at(time.Hour)))
		wantErr(t, fmt.Sprintf("RotateKeys expecting %q while k1 is current", expect), err, store.ErrConflict)
	}
	got, err := s.ListKeys(ctx, at(time.Hour))
	must(t, err)
	equal(t, "ListKeys after the failed rotations", got, []*store.SigningKey{k2, k1}, normKeys)
}

// testKeysRotateAddConflict checks that a rotation is all or nothing: a key
// to add that already exists undoes the retirement and promotion too.
func testKeysRotateAddConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	k1, k2 := bootstrap(t, s)
	err := s.RotateKeys(ctx, "k1", at(time.Hour), at(2*time.Hour),
		sampleKey("k1", store.KeyNext, at(time.Hour)))
	wantErr(t, "RotateKeys adding an existing ID", err, store.ErrConflict)
	got, err := s.ListKeys(ctx, at(time.Hour))
	must(t, err)
	equal(t, "ListKeys after the failed rotation", got, []*store.SigningKey{k2, k1}, normKeys)
}

// testKeysRotateConcurrent races rotations that all expect k1: exactly one
// may succeed.
func testKeysRotateConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	bootstrap(t, s)
	now := at(time.Hour)
	errs := make([]error, concurrency)
	var wg sync.WaitGroup
	for i := range concurrency {
		wg.Go(func() {
			errs[i] = s.RotateKeys(ctx, "k1", now, at(2*time.Hour),
				sampleKey(fmt.Sprintf("n%02d", i), store.KeyNext, now))
		})
	}
	wg.Wait()
	ok, conflicts, other := countErrs(errs, store.ErrConflict)
	if other != nil {
		t.Fatalf("unexpected error: %v", other)
	}
	if ok != 1 || conflicts != concurrency-1 {
		t.Fatalf("%d rotations succeeded and %d conflicted, want 1 and %d", ok, conflicts, concurrency-1)
	}
	winner := fmt.Sprintf("n%02d", slices.IndexFunc(errs, func(err error) bool { return err == nil }))
	if cur := keysIn(t, s, now, store.KeyCurrent); !slices.Equal(cur, []string{"k2"}) {
		t.Errorf("current keys = %v, want [k2]", cur)
	}
	if next := keysIn(t, s, now, store.KeyNext); !slices.Equal(next, []string{winner}) {
		t.Errorf("next keys = %v, want [%s]", next, winner)
	}
	if ids := keyIDs(t, s, now); len(ids) != 3 {
		t.Errorf("keys = %v, want k1, k2 and the winner's", ids)
	}
}

// testKeysBootstrapConcurrent races first rotations, all expecting no
// current key: exactly one may install its key.
func testKeysBootstrapConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	errs := make([]error, concurrency)
	var wg sync.WaitGroup
	for i := range concurrency {
		wg.Go(func() {
			k := sampleKey(fmt.Sprintf("c%02d", i), store.KeyCurrent, at(0))
			k.ActivatedAt = at(0)
			errs[i] = s.RotateKeys(ctx, "", at(0), time.Time{}, k)
		})
	}
	wg.Wait()
	ok, conflicts, other := countErrs(errs, store.ErrConflict)
	if other != nil {
		t.Fatalf("unexpected error: %v", other)
	}
	if ok != 1 || conflicts != concurrency-1 {
		t.Fatalf("%d bootstraps succeeded and %d conflicted, want 1 and %d", ok, conflicts, concurrency-1)
	}
	if ids := keyIDs(t, s, at(0)); len(ids) != 1 {
		t.Fatalf("keys = %v, want exactly one", ids)
	}
}

// expiryKeys installs, through RotateKeys's add, a current and a next key
// and three retired keys expiring just before, at and after base+1h.
func expiryKeys(t *testing.T, s store.Store) {
	t.Helper()
	now := at(time.Hour)
	cur := sampleKey("current", store.KeyCurrent, at(1*time.Minute))
	cur.ActivatedAt = at(1 * time.Minute)
	next := sampleKey("next", store.KeyNext, at(5*time.Minute))
	var keys []*store.SigningKey
	for i, r := range []struct {
		id      string
		expires time.Time
	}{
		{"retired-past", now.Add(-time.Microsecond)},
		{"retired-now", now},
		{"retired-future", now.Add(time.Microsecond)},
	} {
		k := sampleKey(r.id, store.KeyRetired, at(time.Duration(2+i)*time.Minute))
		k.ActivatedAt, k.RetiredAt, k.ExpiresAt = k.CreatedAt, at(30*time.Minute), r.expires
		keys = append(keys, k)
	}
	must(t, s.RotateKeys(t.Context(), "", at(0), time.Time{}, append(keys, cur, next)...))
}

func testKeysListExpiry(t *testing.T, s store.Store) {
	expiryKeys(t, s)
	// A retired key is listed while ExpiresAt is after now; current and
	// next keys whatever their ExpiresAt. Newest first.
	for _, tc := range []struct {
		now  time.Time
		want []string
	}{
		{at(0), []string{"next", "retired-future", "retired-now", "retired-past", "current"}},
		{at(time.Hour), []string{"next", "retired-future", "current"}},
		{at(48 * time.Hour), []string{"next", "current"}},
	} {
		if got := keyIDs(t, s, tc.now); !slices.Equal(got, tc.want) {
			t.Errorf("ListKeys(%v) = %v, want %v", tc.now, got, tc.want)
		}
	}
}

func testKeysDeleteExpired(t *testing.T, s store.Store) {
	ctx := t.Context()
	expiryKeys(t, s)
	// Deletes retired keys whose ExpiresAt is before now, not at now.
	n, err := s.DeleteExpiredKeys(ctx, at(time.Hour))
	must(t, err)
	if n != 1 {
		t.Errorf("DeleteExpiredKeys(base+1h) = %d, want 1", n)
	}
	if got, want := keyIDs(t, s, at(0)), []string{"next", "retired-future", "retired-now", "current"}; !slices.Equal(got, want) {
		t.Errorf("keys left = %v, want %v", got, want)
	}
	n, err = s.DeleteExpiredKeys(ctx, at(48*time.Hour))
	must(t, err)
	if n != 2 {
		t.Errorf("DeleteExpiredKeys(base+48h) = %d, want 2", n)
	}
	if got, want := keyIDs(t, s, at(0)), []string{"next", "current"}; !slices.Equal(got, want) {
		t.Errorf("keys left = %v, want %v", got, want)
	}
}
