package ratelimit

import "time"

// Failures bounds failed authentications per source and per claimed
// identity, and only failures: the caller verifies the credentials first
// and reports a failure with Fail, so that a correct credential always
// passes however many failures an attacker spent on the same source or
// identity. The limit cannot be turned into a lockout; what it bounds is
// how much work and audit an unauthenticated caller obtains.
type Failures struct {
	bySource   *Limiter
	byIdentity *Limiter
}

// DefaultFailureKeys bounds the keys each of a Failures' limiters tracks.
const DefaultFailureKeys = 50_000

// NewFailures allows perSource failures per source key and perIdentity
// per identity, per minute, in bursts of as many.
func NewFailures(perSource, perIdentity int, now func() time.Time) *Failures {
	return &Failures{
		bySource:   New(perSource, DefaultFailureKeys, now),
		byIdentity: New(perIdentity, DefaultFailureKeys, now),
	}
}

// Verdict is what Fail decided about a failure.
type Verdict struct {
	// Throttled: the failure is past a budget and gets the throttled
	// answer.
	Throttled bool
	// BySource: the source's budget is spent (else the identity's).
	BySource bool
	// RetryAfter is when the spent budget has room again.
	RetryAfter time.Duration
}

// Fail counts a failure from source (a clientip.Key) claiming identity
// (empty when none was claimed; keep it short, a caller's long input
// hashed) against both budgets.
func (f *Failures) Fail(source, identity string) Verdict {
	okS, waitS := f.bySource.Allow(source)
	okI, waitI := true, time.Duration(0)
	if identity != "" {
		okI, waitI = f.byIdentity.Allow(identity)
	}
	switch {
	case !okS:
		return Verdict{Throttled: true, BySource: true, RetryAfter: waitS}
	case !okI:
		return Verdict{Throttled: true, RetryAfter: waitI}
	}
	return Verdict{}
}
