package portal

import (
	"fmt"
	"testing"
	"time"
)

var t0 = time.Unix(1_700_000_000, 0)

// admit reserves an attempt and fails the test unless it is admitted.
func admit(t *testing.T, th *throttle, user, source string, now time.Time) *attempt {
	t.Helper()
	a, wait := th.reserve(user, source, now)
	if a == nil {
		t.Fatalf("%s from %s refused (wait %v), want admitted", user, source, wait)
	}
	return a
}

// refused reserves an attempt and fails the test unless it is refused
// with this wait.
func refused(t *testing.T, th *throttle, user, source string, now time.Time, want time.Duration) {
	t.Helper()
	a, wait := th.reserve(user, source, now)
	if a != nil {
		a.cancel(now)
		t.Fatalf("%s from %s admitted, want refused with wait %v", user, source, want)
	}
	if wait != want {
		t.Fatalf("%s from %s: wait %v, want %v", user, source, wait, want)
	}
}

// failN makes n failed attempts of user from source, one after the other.
func failN(t *testing.T, th *throttle, user, source string, n int, now time.Time) {
	t.Helper()
	for range n {
		admit(t, th, user, source, now).fail(now)
	}
}

func TestThrottleBackoff(t *testing.T) {
	th := newThrottle()
	failN(t, th, "alice", "192.0.2.1", pairPolicy.free, t0)
	// The free failures are spent; the next attempt is admitted, and each
	// failure from then on locks the pair for 1 s, 2 s, 4 s, ...
	now := t0
	for _, want := range []time.Duration{1, 2, 4, 8, 16} {
		want *= time.Second
		admit(t, th, "alice", "192.0.2.1", now).fail(now)
		refused(t, th, "alice", "192.0.2.1", now, want)
		refused(t, th, "alice", "192.0.2.1", now.Add(want-time.Millisecond), time.Millisecond)
		now = now.Add(want) // the lock has ended
	}
	// ... up to 15 minutes.
	th.pairs.m["alice 192.0.2.1"].fails = 40
	admit(t, th, "alice", "192.0.2.1", now).fail(now)
	refused(t, th, "alice", "192.0.2.1", now, 15*time.Minute)

	// The same user from elsewhere, and another user from here, are not
	// held back.
	admit(t, th, "alice", "198.51.100.7", now).cancel(now)
	admit(t, th, "bob", "192.0.2.1", now).cancel(now)

	// A success forgets the pair's failures.
	later := now.Add(15 * time.Minute)
	admit(t, th, "alice", "192.0.2.1", later).succeed(later)
	failN(t, th, "alice", "192.0.2.1", pairPolicy.free, later)

	// Failures an hour old are forgotten.
	muchLater := later.Add(forgetAfter + time.Second)
	failN(t, th, "alice", "192.0.2.1", pairPolicy.free, muchLater)
}

// A parallel burst: attempts in flight count against the free failures
// before they are settled, so a burst cannot pass on failures not yet
// recorded.
func TestThrottleBurst(t *testing.T) {
	th := newThrottle()
	var inFlight []*attempt
	for range pairPolicy.free {
		inFlight = append(inFlight, admit(t, th, "admin", "192.0.2.1", t0))
	}
	for range 15 {
		refused(t, th, "admin", "192.0.2.1", t0, inFlightWait)
	}
	// Another source is not held back by this one's burst.
	admit(t, th, "admin", "198.51.100.7", t0).succeed(t0)
	for _, a := range inFlight {
		a.fail(t0)
	}
	// Beyond the free failures, one attempt at a time.
	a := admit(t, th, "admin", "192.0.2.1", t0)
	refused(t, th, "admin", "192.0.2.1", t0, inFlightWait)
	a.fail(t0)
	refused(t, th, "admin", "192.0.2.1", t0, time.Second)
	// A cancelled attempt (the server was busy) counts nothing.
	th2 := newThrottle()
	for range 50 {
		admit(t, th2, "admin", "192.0.2.1", t0).cancel(t0)
	}
	if len(th2.pairs.m)+len(th2.users.m)+len(th2.addrs.m) != 0 {
		t.Fatal("cancelled attempts left strikes")
	}
}

// The per-user ceiling holds back sources that have failed for the user,
// never a source that has not.
func TestThrottleUserCeiling(t *testing.T) {
	th := newThrottle()
	// A distributed guesser spends the user's ceiling, a few guesses from
	// each of many addresses.
	n := 0
	for i := 0; n < userPolicy.free+1; i++ {
		src := fmt.Sprintf("203.0.113.%d", i)
		failN(t, th, "admin", src, 3, t0)
		n += 3
	}
	// A source that failed for admin now waits for the user's lock, though
	// its own pair still has free failures...
	refused(t, th, "admin", "203.0.113.0", t0, time.Second<<(n-userPolicy.free-1))
	// ... but the real admin, from an address that has not failed, signs
	// in.
	admit(t, th, "admin", "198.51.100.7", t0).succeed(t0)
	// Signing in does not reset the ceiling for the guessers.
	refused(t, th, "admin", "203.0.113.1", t0, time.Second<<(n-userPolicy.free-1))
	// The real admin mistyping from a clean address is not held back by
	// the others' guesses (review of issue 8)...
	for range ceilingAfter - 1 {
		admit(t, th, "admin", "198.51.100.8", t0).fail(t0)
		n++
	}
	admit(t, th, "admin", "198.51.100.8", t0).succeed(t0)
	// ... but a source that keeps failing for admin becomes held back.
	for range ceilingAfter {
		admit(t, th, "admin", "198.51.100.9", t0).fail(t0)
		n++
	}
	refused(t, th, "admin", "198.51.100.9", t0, time.Second<<(n-userPolicy.free-1))
	// Other users are not concerned.
	admit(t, th, "bob", "203.0.113.0", t0).cancel(t0)
}

// One source spraying many user names is slowed down per source.
func TestThrottleAddress(t *testing.T) {
	th := newThrottle()
	for i := range addrPolicy.free {
		admit(t, th, fmt.Sprintf("user%d", i), "192.0.2.1", t0).fail(t0)
	}
	admit(t, th, "another", "192.0.2.1", t0).fail(t0)
	refused(t, th, "yet-another", "192.0.2.1", t0, time.Second)
	admit(t, th, "yet-another", "192.0.2.2", t0).cancel(t0)
}

func TestThrottleSize(t *testing.T) {
	th := newThrottle()
	th.pairs.size, th.users.size, th.addrs.size = 100, 100, 100
	held := admit(t, th, "held", "192.0.2.250", t0)
	for i := range 1000 {
		now := t0.Add(time.Duration(i) * time.Millisecond)
		admit(t, th, fmt.Sprintf("u%d", i), fmt.Sprintf("10.0.%d.%d", i/256, i%256), now).fail(now)
	}
	for name, tb := range map[string]*table{"pairs": &th.pairs, "users": &th.users, "addrs": &th.addrs} {
		if len(tb.m) > 100 {
			t.Errorf("%s: %d keys held, want at most 100", name, len(tb.m))
		}
		if tb.m["held"] == nil && tb.m["held 192.0.2.250"] == nil && tb.m["192.0.2.250"] == nil {
			t.Errorf("%s: an attempt in flight was evicted", name)
		}
	}
	if th.pairs.m["u999 10.0.3.231"] == nil {
		t.Error("the newest key was evicted instead of the oldest")
	}
	held.cancel(t0)
}

func TestParseSigninName(t *testing.T) {
	for in, want := range map[string]*signinName{
		"admin":                  {id: "admin"},
		"Alice.B@example":        {id: "Alice.B@example"},
		"acct-abcdefgh23456789":  {account: true, id: "acct-abcdefgh23456789"},
		"ACCT-ABCDEFGH23456789":  {account: true, id: "acct-abcdefgh23456789"},
		"acct-":                  nil,
		"acct-abc/def":           nil,
		"acct-" + longName(60):   nil,
		"":                       nil,
		"with space":             nil,
		longName(65):             nil,
		"ünicode":                nil,
		"admin\x00":              nil,
		"admin' OR '1'='1":       nil,
		"acct-abcdefgh23456789 ": nil,
	} {
		got, ok := parseSigninName(in)
		if ok != (want != nil) || ok && got != *want {
			t.Errorf("parseSigninName(%q) = %+v, %v; want %+v", in, got, ok, want)
		}
	}
}

func longName(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a'
	}
	return string(b)
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"":                       "/portal/clients",
		"/portal/keys":           "/portal/keys",
		"/portal/clients/x?y=1":  "/portal/clients/x?y=1",
		"//evil.example":         "/portal/clients",
		"/portal/..//evil":       "/portal/clients",
		"/portal/\\evil":         "/portal/clients",
		"https://evil.example":   "/portal/clients",
		"/portal/signin?next=/x": "/portal/clients",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}
