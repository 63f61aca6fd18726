// Package ratelimit is a small in-memory token-bucket limiter keyed by a
// string (an account, a source address). Memory is bounded: buckets that
// have refilled completely are indistinguishable from absent ones and are
// swept away, and the number of keys is capped.
package ratelimit
