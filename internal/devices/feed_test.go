package devices_test

import (
	"context"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/devicecert/devicetest"
	"github.com/keybridge/sts/internal/devices"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
)

// TestChangeFeed: on PostgreSQL, a profile written by one instance is
// announced (store.ChangeDevice) and another instance, reloading on the
// announcement as the server does, trusts it at once, long before its
// periodic fallback.
func TestChangeFeed(t *testing.T) {
	schema := ststest.PostgresSchema(t)
	a := &devices.Service{Store: ststest.OpenPostgres(t, schema)}
	stB := ststest.OpenPostgres(t, schema)
	b := &devices.Service{Store: stB, MaxAge: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := b.Trust(ctx); err != nil {
		t.Fatal(err)
	}
	heard := make(chan store.Change, 16)
	done := make(chan struct{})
	defer func() { cancel(); <-done }()
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			_ = stB.Listen(ctx, func(ch store.Change) {
				if ch.Kind == store.ChangeDevice {
					if err := b.Reload(ctx); err != nil && ctx.Err() == nil {
						t.Errorf("reload: %v", err)
					}
					select {
					case heard <- ch:
					default:
					}
				}
			})
		}
	}()
	// The feed may take a moment to subscribe: write until heard.
	pki := devicetest.New(t)
	deadline := time.Now().Add(10 * time.Second)
	name := "cbrs"
	if _, err := a.Add(ctx, "cli", devices.Spec{Name: name, Anchors: pki.RootPEM}); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case ch := <-heard:
			if ch.Key != name {
				t.Errorf("change key %q", ch.Key)
			}
			// The last announcement (an enable) leaves it trusted.
			for {
				tr, err := b.Trust(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if len(tr.Profiles) == 1 {
					return
				}
				if time.Now().After(deadline) {
					t.Fatal("b never trusted the profile")
				}
				select {
				case <-heard:
				case <-time.After(100 * time.Millisecond):
				}
			}
		case <-time.After(200 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("no ChangeDevice announcement heard")
			}
			// Not subscribed yet when it was written: write again.
			if _, _, err := a.Disable(ctx, "cli", name); err != nil {
				t.Fatal(err)
			}
			if _, _, err := a.Enable(ctx, "cli", name); err != nil {
				t.Fatal(err)
			}
		}
	}
}
