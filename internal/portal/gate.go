package portal

import (
	"context"
	"runtime"
	"sync/atomic"
	"time"
)

// hashGate bounds the password checks running at once. Each argon2id check
// holds its memory cost (19 MiB with DefaultPasswordParams) and a CPU for
// tens of milliseconds, so without a bound a burst of sign-ins, even for
// names that do not exist, takes the process's memory with it. Checks
// beyond the slots wait a little, a bounded number of them; the rest are
// told to come back (503 with Retry-After) at once.
type hashGate struct {
	slots chan struct{}
	// waiting counts the callers waiting for a slot; at most maxWaiting.
	waiting    atomic.Int64
	maxWaiting int64
	maxWait    time.Duration
}

// Defaults of the gate: one slot per CPU the Go scheduler uses
// (GOMAXPROCS, which follows the container's CPU limit) but no more than
// maxHashSlots, four waiters per slot, each for at most two seconds.
const (
	// maxHashSlots bounds the memory of concurrent password checks by
	// itself, whatever the CPU count: a hash made with older parameters
	// (argon2id m=64 MiB) is checked at its own cost, so 4 slots hold at
	// most 256 MiB (review of issue 8: one slot per CPU on a 32-CPU host
	// was 2 GiB). Sign-ins are rare; four at once is plenty.
	maxHashSlots   = 4
	waitersPerSlot = 4
	maxHashWait    = 2 * time.Second
	// busyRetryAfter is the Retry-After of a sign-in refused because every
	// slot is taken.
	busyRetryAfter = 1
)

func newHashGate(slots int, maxWaiting int, maxWait time.Duration) *hashGate {
	if slots <= 0 {
		slots = defaultHashSlots()
	}
	if maxWaiting < 0 {
		maxWaiting = 0
	}
	return &hashGate{slots: make(chan struct{}, slots), maxWaiting: int64(maxWaiting), maxWait: maxWait}
}

// enter takes a slot, waiting at most maxWait (and not past ctx) when none
// is free, and reports whether it got one; leave gives it back.
func (g *hashGate) enter(ctx context.Context) bool {
	select {
	case g.slots <- struct{}{}:
		return true
	default:
	}
	if g.waiting.Add(1) > g.maxWaiting {
		g.waiting.Add(-1)
		return false
	}
	defer g.waiting.Add(-1)
	timer := time.NewTimer(g.maxWait)
	defer timer.Stop()
	select {
	case g.slots <- struct{}{}:
		return true
	case <-timer.C:
		return false
	case <-ctx.Done():
		return false
	}
}

func (g *hashGate) leave() { <-g.slots }

// defaultHashSlots is the gate's number of slots: one per CPU, at most
// maxHashSlots.
func defaultHashSlots() int { return min(runtime.GOMAXPROCS(0), maxHashSlots) }
