package portal

import (
	"sync"
	"time"
)

// throttle slows down password guessing: after free failed sign-ins for a
// key (a user name or a remote address), each further failure locks the key
// for base·2^(n-1), up to max. It lives in memory and holds at most size
// keys; a key is forgotten an hour after its last failure. A success resets
// the key.
type throttle struct {
	free      int
	base, max time.Duration
	size      int

	mu sync.Mutex
	m  map[string]*strike
}

type strike struct {
	fails int
	last  time.Time
	until time.Time
}

// forgetAfter is how long a key's failures are remembered.
const forgetAfter = time.Hour

func newThrottle(free int, base, max time.Duration, size int) *throttle {
	return &throttle{free: free, base: base, max: max, size: size, m: map[string]*strike{}}
}

// wait is how long key must still wait before its next attempt.
func (t *throttle) wait(key string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.m[key]
	if !ok || !now.Before(s.until) {
		return 0
	}
	return s.until.Sub(now)
}

// fail records a failed attempt of key.
func (t *throttle) fail(key string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.m[key]
	if ok && now.Sub(s.last) > forgetAfter {
		s.fails = 0
	}
	if !ok {
		if len(t.m) >= t.size {
			t.evict(now)
		}
		s = &strike{}
		t.m[key] = s
	}
	s.fails++
	s.last = now
	if n := s.fails - t.free; n > 0 {
		d := t.max
		if n < 32 && t.base<<(n-1) < t.max {
			d = t.base << (n - 1)
		}
		s.until = now.Add(d)
	}
}

// reset forgets key (after a successful sign-in).
func (t *throttle) reset(key string) {
	t.mu.Lock()
	delete(t.m, key)
	t.mu.Unlock()
}

// evict makes room: it drops the keys not seen for forgetAfter and, if none
// is that old, the one seen longest ago.
func (t *throttle) evict(now time.Time) {
	var oldest string
	var oldestAt time.Time
	for k, s := range t.m {
		if now.Sub(s.last) > forgetAfter {
			delete(t.m, k)
			continue
		}
		if oldest == "" || s.last.Before(oldestAt) {
			oldest, oldestAt = k, s.last
		}
	}
	if len(t.m) >= t.size && oldest != "" {
		delete(t.m, oldest)
	}
}
