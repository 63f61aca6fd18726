package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/store"
)

// Changes written by one process reach the listeners of every other
// process on the same schema, and only on it.
func TestChangeFeed(t *testing.T) {
	schema := newSchema(t)
	writer, listener, stranger := open(t, schema), open(t, schema), open(t, newSchema(t))
	defer writer.Close()
	defer listener.Close()
	defer stranger.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan store.Change, 16)
	foreign := make(chan store.Change, 16)
	for _, l := range []struct {
		s interface {
			Listen(context.Context, func(store.Change)) error
		}
		out chan store.Change
	}{{listener, got}, {stranger, foreign}} {
		go l.s.Listen(ctx, func(c store.Change) { l.out <- c })
	}
	time.Sleep(300 * time.Millisecond) // let LISTEN take effect

	c := &store.Client{ID: "c1", Name: "c", Status: store.ClientActive, TokenFormat: store.TokenFormatJWT}
	if err := writer.CreateClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	if _, err := writer.UpdateClient(ctx, "c1", func(c *store.Client) error { c.Status = store.ClientDisabled; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := writer.RevokeJTI(ctx, "j1", time.Now().Add(time.Hour), time.Now()); err != nil {
		t.Fatal(err)
	}
	// A revoked refresh family is a revocation too, whether revoked
	// (RFC 7009) or by the replay of one of its tokens (RFC 9700 §4.14.2).
	now := time.Now()
	for _, tr := range []*store.TokenRecord{
		{Hash: []byte("t1"), Kind: store.TokenRefresh, JTI: "t1", FamilyID: "f1", IssuedAt: now, ExpiresAt: now.Add(time.Hour)},
		{Hash: []byte("t2"), Kind: store.TokenRefresh, JTI: "t2", FamilyID: "f2", IssuedAt: now, ExpiresAt: now.Add(time.Hour)},
	} {
		if err := writer.CreateToken(ctx, tr); err != nil {
			t.Fatal(err)
		}
	}
	if err := writer.RevokeFamily(ctx, "f1", now); err != nil {
		t.Fatal(err)
	}
	next := func(h string) *store.TokenRecord {
		return &store.TokenRecord{Hash: []byte(h), Kind: store.TokenRefresh, JTI: h, FamilyID: "f2", IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
	}
	if err := writer.RotateRefreshToken(ctx, []byte("t2"), now, next("t3")); err != nil {
		t.Fatal(err)
	}
	if err := writer.RotateRefreshToken(ctx, []byte("t2"), now, next("t4")); !errors.Is(err, store.ErrTokenReplayed) {
		t.Fatalf("replay: %v", err)
	}
	if err := writer.DeleteClient(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	// Every write of a trusted issuer is announced, its creation too.
	ti := &store.TrustedIssuer{Name: "g1", Issuer: "https://idp.example.com", Enabled: true, Source: store.IssuerSourceStore}
	if err := writer.CreateIssuer(ctx, ti); err != nil {
		t.Fatal(err)
	}
	if _, err := writer.UpdateIssuer(ctx, "g1", func(i *store.TrustedIssuer) error { i.Enabled = false; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := writer.CreateIssuer(ctx, ti); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("CreateIssuer again: %v", err)
	}
	if err := writer.DeleteIssuer(ctx, "g1"); err != nil {
		t.Fatal(err)
	}
	// A failed update announces nothing.
	_, _ = writer.UpdateClient(ctx, "missing", func(*store.Client) error { return nil })
	_, _ = writer.UpdateIssuer(ctx, "missing", func(*store.TrustedIssuer) error { return nil })
	want := []store.Change{{Kind: store.ChangeClient, Key: "c1"}, {Kind: store.ChangeRevocation, Key: "j1"},
		{Kind: store.ChangeRevocation, Key: store.FamilyRevocation("f1")}, {Kind: store.ChangeRevocation, Key: store.FamilyRevocation("f2")},
		{Kind: store.ChangeClient, Key: "c1"},
		{Kind: store.ChangeIssuer, Key: "g1"}, {Kind: store.ChangeIssuer, Key: "g1"}, {Kind: store.ChangeIssuer, Key: "g1"}}
	for i, w := range want {
		select {
		case c := <-got:
			if c != w {
				t.Fatalf("change %d = %+v, want %+v", i, c, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("change %d (%+v) not delivered", i, w)
		}
	}
	select {
	case c := <-got:
		t.Fatalf("unexpected change %+v", c)
	case c := <-foreign:
		t.Fatalf("a listener on another schema heard %+v", c)
	case <-time.After(300 * time.Millisecond):
	}
}

// Of several processes campaigning for a role, one leads; when it goes,
// another takes over.
func TestElector(t *testing.T) {
	schema := newSchema(t)
	a, b := open(t, schema), open(t, schema)
	defer a.Close()
	defer b.Close()
	ctxA, stopA := context.WithCancel(context.Background())
	ctxB, stopB := context.WithCancel(context.Background())
	defer stopB()
	ea, eb := a.Elector("key-rotation"), b.Elector("key-rotation")
	go ea.Run(ctxA)
	waitFor(t, 10*time.Second, "a leader", ea.Leader)
	go eb.Run(ctxB)
	time.Sleep(time.Second)
	if eb.Leader() {
		t.Fatal("two leaders at once")
	}
	// Another role is independent.
	other := b.Elector("other-role")
	go other.Run(ctxB)
	waitFor(t, 10*time.Second, "a leader of another role", other.Leader)

	stopA() // the leader goes away: its session ends
	waitFor(t, 20*time.Second, "b taking over", eb.Leader)
	waitFor(t, 10*time.Second, "a stepping down", func() bool { return !ea.Leader() })
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
