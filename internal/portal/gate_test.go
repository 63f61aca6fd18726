package portal

import (
	"context"
	"runtime"
	"testing"
	"time"
)

func TestHashGate(t *testing.T) {
	ctx := context.Background()
	g := newHashGate(2, 1, time.Hour)
	if !g.enter(ctx) || !g.enter(ctx) {
		t.Fatal("free slots refused")
	}
	// Both slots taken: one caller may wait, and gets the slot when one
	// is given back.
	got := make(chan bool)
	go func() { got <- g.enter(ctx) }()
	for g.waiting.Load() != 1 {
		time.Sleep(time.Millisecond)
	}
	// The waiting room is full: the next caller is refused at once
	// (it would block for the hour otherwise).
	if g.enter(ctx) {
		t.Fatal("a caller beyond the waiting room got a slot")
	}
	g.leave()
	if !<-got {
		t.Fatal("the waiting caller did not get the slot given back")
	}
	if g.waiting.Load() != 0 {
		t.Fatalf("%d waiting after the wait", g.waiting.Load())
	}

	// A wait is bounded: by maxWait ...
	g.maxWait = time.Millisecond
	if g.enter(ctx) {
		t.Fatal("got a slot while every slot is held")
	}
	// ... and by the request's context.
	g.maxWait = time.Hour
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if g.enter(cctx) {
		t.Fatal("got a slot with a cancelled context")
	}
	g.leave()
	g.leave()
	if !g.enter(ctx) {
		t.Fatal("a slot given back is not free")
	}
}

func TestHashGateDefault(t *testing.T) {
	if g := newHashGate(0, 0, time.Second); cap(g.slots) < 1 || cap(g.slots) > maxHashSlots {
		t.Fatalf("%d slots, want 1..%d whatever the CPU count", cap(g.slots), maxHashSlots)
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(64))
	if n := defaultHashSlots(); n != maxHashSlots {
		t.Errorf("with 64 CPUs: %d slots, want %d", n, maxHashSlots)
	}
}
