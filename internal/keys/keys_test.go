package keys_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/keybridge/sts/internal/keys"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlite"
)

type clock struct{ t atomic.Int64 }

func (c *clock) now() time.Time          { return time.Unix(0, c.t.Load()) }
func (c *clock) advance(d time.Duration) { c.t.Add(int64(d)) }

func setup(t *testing.T) (*sqlite.Store, *keys.Sealer, *clock) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "sts.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sealer, err := keys.NewSealer(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{}
	c.t.Store(time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC).UnixNano())
	return st, sealer, c
}

func manager(t *testing.T, st store.Keys, sealer *keys.Sealer, c *clock, alg string) *keys.Manager {
	t.Helper()
	m, err := keys.NewManager(context.Background(), keys.Options{
		Store: st, Sealer: sealer, Algorithm: alg, Now: c.now,
		RotationPeriod: 24 * time.Hour, RetainRetired: 2 * time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func jwks(t *testing.T, m *keys.Manager) jose.JSONWebKeySet {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(m.Snapshot().JWKS, &set); err != nil {
		t.Fatal(err)
	}
	return set
}

func TestFirstStartCreatesCurrentAndNext(t *testing.T) {
	for _, alg := range []string{keys.ES256, keys.EdDSA, keys.RS256} {
		t.Run(alg, func(t *testing.T) {
			st, sealer, c := setup(t)
			m := manager(t, st, sealer, c, alg)
			snap := m.Snapshot()
			if snap.Current == nil || string(snap.Current.Algorithm) != alg {
				t.Fatalf("current %+v", snap.Current)
			}
			set := jwks(t, m)
			if len(set.Keys) != 2 {
				t.Fatalf("JWKS has %d keys, want current and next", len(set.Keys))
			}
			for _, k := range set.Keys {
				if !k.IsPublic() || k.KeyID == "" || k.Algorithm != alg || k.Use != "sig" {
					t.Errorf("published key %+v", k)
				}
			}
			// A second start finds the keys and creates none.
			m2 := manager(t, st, sealer, c, alg)
			if m2.Snapshot().Current.ID != snap.Current.ID {
				t.Error("second start changed the current key")
			}
			// Sign and verify round trip.
			sig, err := snap.Signer("at+jwt")
			if err != nil {
				t.Fatal(err)
			}
			obj, err := sig.Sign([]byte(`{"sub":"x"}`))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := obj.Verify(snap.Current.Public.Key); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestPrivateKeysEncryptedAtRest(t *testing.T) {
	st, sealer, c := setup(t)
	manager(t, st, sealer, c, keys.ES256)
	recs, err := st.ListKeys(context.Background(), c.now())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if _, err := x509.ParsePKCS8PrivateKey(r.PrivateKey); err == nil {
			t.Fatalf("key %s stored in the clear", r.ID)
		}
		if bytes.Contains(r.PublicKey, []byte(`"d"`)) {
			t.Fatalf("public JWK of %s carries the private part", r.ID)
		}
	}
	// Another KEK cannot open them.
	other, _ := keys.NewSealer(bytes.Repeat([]byte{8}, 32))
	if _, err := keys.NewManager(context.Background(), keys.Options{Store: st, Sealer: other, Now: c.now}); err == nil {
		t.Fatal("keys opened with the wrong key-encryption key")
	}
}

func TestRotation(t *testing.T) {
	st, sealer, c := setup(t)
	m := manager(t, st, sealer, c, keys.ES256)
	old := m.Snapshot().Current.ID
	var next string
	for _, k := range m.Snapshot().Keys() {
		if k.State == store.KeyNext {
			next = k.ID
		}
	}
	if err := m.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	snap := m.Snapshot()
	if snap.Current.ID != next {
		t.Fatalf("current %s, want the published next key %s", snap.Current.ID, next)
	}
	if k, ok := snap.Lookup(old); !ok || k.State != store.KeyRetired {
		t.Fatalf("old key not published as retired: %+v", k)
	}
	if n := len(jwks(t, m).Keys); n != 3 {
		t.Fatalf("JWKS has %d keys, want retired+current+next", n)
	}
	// Past RetainRetired the retired key is dropped.
	c.advance(3 * time.Hour)
	if err := m.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Snapshot().Lookup(old); ok {
		t.Fatal("retired key still published after its retention")
	}
}

func TestScheduledRotation(t *testing.T) {
	st, sealer, c := setup(t)
	m := manager(t, st, sealer, c, keys.ES256)
	first := m.Snapshot().Current.ID
	c.advance(time.Hour)
	if err := m.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	if m.Snapshot().Current.ID != first {
		t.Fatal("rotated before the period")
	}
	c.advance(24 * time.Hour)
	if err := m.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	if m.Snapshot().Current.ID == first {
		t.Fatal("not rotated after the period")
	}
}

// A key rotated by another process (the CLI) is found on an unknown kid.
func TestLookupOrReloadSeesOtherProcess(t *testing.T) {
	st, sealer, c := setup(t)
	server := manager(t, st, sealer, c, keys.ES256)
	cli := manager(t, st, sealer, c, keys.ES256)
	if err := cli.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	var newNext string
	for _, k := range cli.Snapshot().Keys() {
		if k.State == store.KeyNext {
			newNext = k.ID
		}
	}
	if _, ok := server.Snapshot().Lookup(newNext); ok {
		t.Fatal("test is wrong: the server already knew the key")
	}
	c.advance(2 * time.Second)
	if _, ok := server.LookupOrReload(context.Background(), newNext); !ok {
		t.Fatal("unknown kid did not trigger a reload")
	}
	if _, ok := server.LookupOrReload(context.Background(), "no-such-kid"); ok {
		t.Fatal("found a kid that does not exist")
	}
}

func TestConcurrentRotationsConflictSafely(t *testing.T) {
	st, sealer, c := setup(t)
	a := manager(t, st, sealer, c, keys.ES256)
	b := manager(t, st, sealer, c, keys.ES256)
	errs := make(chan error, 2)
	go func() { errs <- a.Rotate(context.Background()) }()
	go func() { errs <- b.Rotate(context.Background()) }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	recs, err := st.ListKeys(context.Background(), c.now())
	if err != nil {
		t.Fatal(err)
	}
	current := 0
	for _, r := range recs {
		if r.State == store.KeyCurrent {
			current++
		}
	}
	if current != 1 {
		t.Fatalf("%d current keys after concurrent rotations", current)
	}
}

func TestParseKEK(t *testing.T) {
	for _, s := range []string{
		"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=",
		"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc",
		"0707070707070707070707070707070707070707070707070707070707070707",
	} {
		k, err := keys.ParseKEK(s)
		if err != nil || !bytes.Equal(k, bytes.Repeat([]byte{7}, 32)) {
			t.Errorf("ParseKEK(%q) = %x, %v", s, k, err)
		}
	}
	for _, s := range []string{"", "short", "BwcH"} {
		if _, err := keys.ParseKEK(s); err == nil {
			t.Errorf("ParseKEK(%q) accepted", s)
		}
	}
}

func TestKEKFileCreatedPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d", "kek")
	k1, created, err := keys.LoadOrCreateKEKFile(path)
	if err != nil || !created || len(k1) != 32 {
		t.Fatalf("%x %v %v", k1, created, err)
	}
	k2, created, err := keys.LoadOrCreateKEKFile(path)
	if err != nil || created || !bytes.Equal(k1, k2) {
		t.Fatal("second load differs")
	}
	if fi, err := osStat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v", fi.Mode(), err)
	}
}
