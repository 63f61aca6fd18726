package cached_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/cached"
	"github.com/keybridge/sts/internal/store/sqlite"
	"github.com/keybridge/sts/internal/store/storetest"
)

type clock struct{ ns atomic.Int64 }

func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func open(t *testing.T) (*sqlite.Store, *cached.Store, *clock) {
	t.Helper()
	inner, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "sts.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inner.Close() })
	c := &clock{}
	c.ns.Store(time.Now().UnixNano())
	s, err := cached.New(context.Background(), inner, cached.Options{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	return inner, s, c
}

// The wrapper is a store like any other: it passes the conformance suite.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		_, s, _ := open(t)
		return s
	})
}

func TestClientCacheBoundedStaleness(t *testing.T) {
	inner, s, c := open(t)
	ctx := context.Background()
	if err := s.CreateClient(ctx, &store.Client{ID: "a", Status: store.ClientActive}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetClient(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	// Changed by another process: the cache may serve the old copy, but
	// only for ClientTTL.
	if _, err := inner.UpdateClient(ctx, "a", func(cl *store.Client) error { cl.Status = store.ClientDisabled; return nil }); err != nil {
		t.Fatal(err)
	}
	c.advance(2 * time.Second)
	got, err := s.GetClient(ctx, "a")
	if err != nil || got.Status != store.ClientDisabled {
		t.Fatalf("after the TTL: %+v %v", got, err)
	}
	// Changed through the wrapper: at once.
	if _, err := s.UpdateClient(ctx, "a", func(cl *store.Client) error { cl.Status = store.ClientActive; return nil }); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetClient(ctx, "a"); got.Status != store.ClientActive {
		t.Fatal("update through the wrapper not seen at once")
	}
	if err := s.DeleteClient(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetClient(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted client still served: %v", err)
	}
}

func TestRevocationsFromElsewhereAfterSync(t *testing.T) {
	inner, s, c := open(t)
	ctx := context.Background()
	if err := s.RevokeJTI(ctx, "here", c.now().Add(time.Hour), c.now()); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.IsRevoked(ctx, "here"); !ok {
		t.Fatal("own revocation not seen at once")
	}
	if err := inner.RevokeJTI(ctx, "there", c.now().Add(time.Hour), c.now()); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.IsRevoked(ctx, "there"); !ok {
		t.Fatal("revocation made elsewhere not seen after Sync")
	}
	// A new wrapper loads everything at start.
	s2, err := cached.New(ctx, inner, cached.Options{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range []string{"here", "there"} {
		if ok, _ := s2.IsRevoked(ctx, j); !ok {
			t.Fatalf("%s not loaded at start", j)
		}
	}
}

// A family revoked through the wrapper, by RevokeFamily or by the replay of
// one of its refresh tokens, is refused at once by this instance, without
// waiting for the next Sync.
func TestFamilyRevocationSeenAtOnce(t *testing.T) {
	_, s, c := open(t)
	ctx := context.Background()
	now := c.now()
	rt := func(name, family string) *store.TokenRecord {
		return &store.TokenRecord{Hash: []byte(name), Kind: store.TokenRefresh, JTI: name, FamilyID: family, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
	}
	for _, tr := range []*store.TokenRecord{rt("a1", "revoked"), rt("b1", "replayed")} {
		if err := s.CreateToken(ctx, tr); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RevokeFamily(ctx, "revoked", now); err != nil {
		t.Fatal(err)
	}
	if err := s.RotateRefreshToken(ctx, []byte("b1"), now, rt("b2", "replayed")); err != nil {
		t.Fatal(err)
	}
	if err := s.RotateRefreshToken(ctx, []byte("b1"), now, rt("b3", "replayed")); !errors.Is(err, store.ErrTokenReplayed) {
		t.Fatalf("replay: %v", err)
	}
	for _, fam := range []string{"revoked", "replayed"} {
		if ok, _ := s.IsRevoked(ctx, store.FamilyRevocation(fam)); !ok {
			t.Errorf("family %q revoked through the wrapper not seen at once", fam)
		}
	}
}

// Trusted issuers are not cached here: a change announced by another
// process (store.ChangeIssuer) is accepted, and reads through the wrapper
// see the database at once.
func TestIssuersPassThrough(t *testing.T) {
	inner, s, _ := open(t)
	ctx := context.Background()
	if err := inner.CreateIssuer(ctx, &store.TrustedIssuer{Name: "g", Issuer: "https://g.example.com", Enabled: true, Source: store.IssuerSourceStore}); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, store.Change{Kind: store.ChangeIssuer, Key: "g"}); err != nil {
		t.Fatalf("Apply(ChangeIssuer): %v", err)
	}
	if _, err := inner.UpdateIssuer(ctx, "g", func(i *store.TrustedIssuer) error { i.Enabled = false; return nil }); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetIssuer(ctx, "g")
	if err != nil || got.Enabled {
		t.Fatalf("GetIssuer through the wrapper: %+v %v", got, err)
	}
}

// listOnly hides the store.RevocationVisitor of the store it wraps.
type listOnly struct{ store.Store }

// The set loads through ListRevocations from a store without
// store.RevocationVisitor as through EachRevocation from one with it;
// entries leave it at expiry (DeleteExpiredRevocations), each at its own,
// and a second revocation extends an entry, never shortens it.
func TestRevocationSetLoadAndExpiry(t *testing.T) {
	ctx := context.Background()
	inner, _, c := open(t)
	now := c.now()
	if _, ok := any(inner).(store.RevocationVisitor); !ok {
		t.Fatal("sqlite.Store is no store.RevocationVisitor: the test below would test one path twice")
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(inner.RevokeJTI(ctx, "short", now.Add(time.Minute), now))
	must(inner.RevokeJTI(ctx, "long", now.Add(time.Hour), now))
	must(inner.SeedRevocations(ctx, 1000, now.Add(time.Hour), now))
	for name, st := range map[string]store.Store{"visitor": inner, "list": listOnly{inner}} {
		s, err := cached.New(ctx, st, cached.Options{Now: c.now})
		must(err)
		for _, j := range []string{"short", "long", store.FamilyRevocation("short")} {
			if ok, _ := s.IsRevoked(ctx, j); ok != (j != store.FamilyRevocation("short")) {
				t.Errorf("%s: IsRevoked(%q) = %v after loading", name, j, ok)
			}
		}
	}
	s, err := cached.New(ctx, inner, cached.Options{Now: c.now})
	must(err)
	// Revoked again with an earlier expiry: the entry keeps the later one.
	must(s.RevokeJTI(ctx, "long", now.Add(time.Second), now))
	// Revoked again with a later one: the entry is extended.
	must(s.RevokeJTI(ctx, "short", now.Add(2*time.Hour), now))
	for _, step := range []struct {
		after       time.Duration
		short, long bool
	}{{30 * time.Minute, true, true}, {90 * time.Minute, true, false}, {3 * time.Hour, false, false}} {
		if _, err := s.DeleteExpiredRevocations(ctx, now.Add(step.after)); err != nil {
			t.Fatal(err)
		}
		for j, want := range map[string]bool{"short": step.short, "long": step.long} {
			if ok, _ := s.IsRevoked(ctx, j); ok != want {
				t.Errorf("IsRevoked(%q) after deleting what expired by %v = %v, want %v", j, step.after, ok, want)
			}
		}
	}
}
