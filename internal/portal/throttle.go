package portal

import (
	"sync"
	"time"
)

// Sign-in throttling. Three tables count failed sign-ins:
//
//   - per (user name, source): the throttle a guesser meets. The source is
//     clientip.Key of the client address (IPv4 address or IPv6 /64), so a
//     guesser's failures never slow down the same user elsewhere.
//   - per user name, over all sources: a ceiling on distributed guessing.
//     It holds back only sources that have themselves failed for that
//     user; a source with no failure for the user always gets its attempt,
//     so nobody can lock a user out from somewhere else.
//   - per source, over all user names: slows down spraying one password
//     over many names. Several people may share an address (NAT), so it
//     allows more.
//
// An attempt reserves its slot in every table before the password is
// checked and settles it afterwards, all under one lock: the attempts in
// flight count as failures-to-be, so a parallel burst cannot pass the
// throttle on the strength of failures not yet recorded.
//
// The tables live in memory, per instance, each bounded in size; a key is
// forgotten an hour after its last failure.

// policy says how a table slows a key down: free failures, then each
// further failure locks the key for base·2^(n-1), at most max.
type policy struct {
	free      int
	base, max time.Duration
}

// Policies of the sign-in throttle.
var (
	pairPolicy = policy{free: 5, base: time.Second, max: 15 * time.Minute}
	userPolicy = policy{free: 20, base: time.Second, max: 15 * time.Minute}
	addrPolicy = policy{free: 20, base: time.Second, max: 15 * time.Minute}
)

// forgetAfter is how long a key's failures are remembered.
const forgetAfter = time.Hour

// inFlightWait is the Retry-After of an attempt refused because earlier
// attempts of its key, still being checked, use up the free failures.
const inFlightWait = time.Second

// throttleSize bounds the keys of each table.
const throttleSize = 10000

type strike struct {
	fails   int
	pending int // attempts reserved and not yet settled
	last    time.Time
	until   time.Time
}

// table is the strikes of one kind of key.
type table struct {
	policy
	size int
	m    map[string]*strike
}

func newTable(p policy, size int) table {
	return table{policy: p, size: size, m: map[string]*strike{}}
}

// get returns key's strike, nil if it has none (or only forgotten ones).
func (t *table) get(key string, now time.Time) *strike {
	s := t.m[key]
	if s != nil && s.pending == 0 && now.Sub(s.last) > forgetAfter {
		delete(t.m, key)
		return nil
	}
	return s
}

// wait is how long an attempt of s must wait: until its lock ends; or,
// once the free failures are used up by failures and attempts in flight
// together, until those attempts are settled (one attempt at a time).
func (t *table) wait(s *strike, now time.Time) time.Duration {
	if s == nil {
		return 0
	}
	if now.Before(s.until) {
		return s.until.Sub(now)
	}
	if s.pending > 0 && s.fails+s.pending >= t.free {
		return inFlightWait
	}
	return 0
}

// reserve counts an attempt of key in flight.
func (t *table) reserve(key string, now time.Time) {
	s := t.m[key]
	if s == nil {
		if len(t.m) >= t.size {
			t.evict(now)
		}
		s = &strike{last: now}
		t.m[key] = s
	}
	s.pending++
}

// settle ends an attempt of key: a failure counts and may lock the key; a
// success forgets the key when forget is set; a cancelled attempt (the
// password was never checked) changes nothing else.
func (t *table) settle(key string, failed, forget bool, now time.Time) {
	s := t.m[key]
	if s == nil {
		return
	}
	s.pending--
	switch {
	case failed:
		if now.Sub(s.last) > forgetAfter {
			s.fails = 0
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
	case forget:
		if s.pending == 0 {
			delete(t.m, key)
		} else {
			s.fails, s.until = 0, time.Time{}
		}
	}
	if s.pending == 0 && s.fails == 0 && !forget {
		// An attempt that was cancelled leaves no trace.
		delete(t.m, key)
	}
}

// evict makes room: it drops the keys not seen for forgetAfter and, if none
// is that old, the one seen longest ago. Keys with attempts in flight stay
// (their number is bounded by the requests being served).
func (t *table) evict(now time.Time) {
	var oldest string
	var oldestAt time.Time
	for k, s := range t.m {
		if s.pending > 0 {
			continue
		}
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

// ceilingAfter is how many failures of its own for a user put a source
// under that user's ceiling. A guesser gains ceilingAfter-1 guesses per
// fresh address over a rule of one; the pair and address limits still
// bound each address.
const ceilingAfter = 3

// throttle is the portal's sign-in throttle.
type throttle struct {
	mu                  sync.Mutex
	pairs, users, addrs table
}

func newThrottle() *throttle {
	return &throttle{
		pairs: newTable(pairPolicy, throttleSize),
		users: newTable(userPolicy, throttleSize),
		addrs: newTable(addrPolicy, throttleSize),
	}
}

// attempt is a sign-in attempt holding its slots in the throttle; exactly
// one of fail, succeed or cancel ends it.
type attempt struct {
	t                *throttle
	pair, user, addr string
}

// reserve admits a sign-in attempt of user (a normalized user name or
// account id) from source (clientip.Key of the client address), or says
// how long it must wait.
func (t *throttle) reserve(user, source string, now time.Time) (*attempt, time.Duration) {
	a := &attempt{t: t, pair: user + " " + source, user: user, addr: source}
	t.mu.Lock()
	defer t.mu.Unlock()
	pair := t.pairs.get(a.pair, now)
	wait := max(t.pairs.wait(pair, now), t.addrs.wait(t.addrs.get(a.addr, now), now))
	// The per-user ceiling holds back only a source that has failed for
	// this user ceilingAfter times: a correct password from anywhere else,
	// or after a typo or two, is never refused because of someone else's
	// guesses (review of issue 8: one typo during a distributed attack
	// locked the real user out).
	if pair != nil && pair.fails >= ceilingAfter {
		wait = max(wait, t.users.wait(t.users.get(a.user, now), now))
	}
	if wait > 0 {
		return nil, wait
	}
	t.pairs.reserve(a.pair, now)
	t.users.reserve(a.user, now)
	t.addrs.reserve(a.addr, now)
	return a, 0
}

// fail records that the attempt's password was wrong.
func (a *attempt) fail(now time.Time) { a.settle(true, false, now) }

// succeed records a successful sign-in: the pair's failures are
// forgotten. The user's and the source's are not, so that signing in to
// one's own account does not reset what an attacker elsewhere has spent.
func (a *attempt) succeed(now time.Time) { a.settle(false, true, now) }

// cancel releases the attempt's slots without counting it (the password
// was not checked).
func (a *attempt) cancel(now time.Time) { a.settle(false, false, now) }

func (a *attempt) settle(failed, success bool, now time.Time) {
	t := a.t
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pairs.settle(a.pair, failed, success, now)
	t.users.settle(a.user, failed, false, now)
	t.addrs.settle(a.addr, failed, false, now)
}
