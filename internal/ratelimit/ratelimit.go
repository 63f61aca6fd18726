package ratelimit

import (
	"math"
	"sync"
	"time"
)

// DefaultMaxKeys bounds the keys a Limiter tracks when MaxKeys is zero.
const DefaultMaxKeys = 100_000

// Limiter allows each key PerMinute events per minute, in bursts of up to
// PerMinute. It is safe for concurrent use.
type Limiter struct {
	perMinute int
	maxKeys   int
	now       func() time.Time

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

// New returns a limiter of perMinute events per key and minute (at least
// one), tracking at most maxKeys keys (DefaultMaxKeys when zero); now is the
// clock (time.Now when nil).
func New(perMinute, maxKeys int, now func() time.Time) *Limiter {
	if perMinute < 1 {
		perMinute = 1
	}
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	if now == nil {
		now = time.Now
	}
	return &Limiter{perMinute: perMinute, maxKeys: maxKeys, now: now, buckets: map[string]*bucket{}}
}

// rate is the refill in tokens per second.
func (l *Limiter) rate() float64 { return float64(l.perMinute) / 60 }

// Allow takes one token from key's bucket. When the bucket is empty it
// returns false and how long until a token is available.
func (l *Limiter) Allow(key string) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	burst := float64(l.perMinute)
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= l.maxKeys || now.Sub(l.lastSweep) > time.Minute {
			l.sweep(now)
		}
		if len(l.buckets) >= l.maxKeys {
			// Still full of active keys: forget an arbitrary one, which
			// at worst lets that key start afresh.
			for k := range l.buckets {
				delete(l.buckets, k)
				break
			}
		}
		b = &bucket{tokens: burst, last: now}
		l.buckets[key] = b
	}
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = math.Min(burst, b.tokens+el*l.rate())
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / l.rate() * float64(time.Second))
	return false, wait
}

// Peek reports whether key's bucket holds a token, without taking it, and
// otherwise how long until it does: for limits charged only when the
// work they guard succeeds (Allow then takes the token).
func (l *Limiter) Peek(key string) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		return true, 0
	}
	tokens := math.Min(float64(l.perMinute), b.tokens+max(now.Sub(b.last).Seconds(), 0)*l.rate())
	if tokens >= 1 {
		return true, 0
	}
	return false, time.Duration((1 - tokens) / l.rate() * float64(time.Second))
}

// sweep removes the buckets that are full again at now.
func (l *Limiter) sweep(now time.Time) {
	burst := float64(l.perMinute)
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate() >= burst {
			delete(l.buckets, k)
		}
	}
	l.lastSweep = now
}

// Len is the number of keys tracked (for tests).
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
