package ratelimit

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func TestBucket(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	l := New(3, 0, c.now)
	for i := range 3 {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatalf("event %d refused within the burst", i)
		}
	}
	ok, wait := l.Allow("a")
	if ok {
		t.Fatal("fourth event allowed")
	}
	if wait <= 0 || wait > 20*time.Second {
		t.Errorf("retry after %v, want (0, 20s]", wait)
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Error("another key is limited by the first")
	}
	c.add(wait)
	if ok, _ := l.Allow("a"); !ok {
		t.Error("refused after the announced wait")
	}
	if ok, _ := l.Allow("a"); ok {
		t.Error("allowed twice after one refill")
	}
}

func TestMemoryBounded(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	l := New(10, 100, c.now)
	for i := range 1000 {
		l.Allow(fmt.Sprint("k", i))
	}
	if n := l.Len(); n > 100 {
		t.Errorf("%d keys tracked, cap 100", n)
	}
	// Idle keys are swept once their buckets are full again.
	c.add(2 * time.Minute)
	l.Allow("fresh")
	if n := l.Len(); n != 1 {
		t.Errorf("%d keys after the idle ones refilled, want 1", n)
	}
}

func TestConcurrent(t *testing.T) {
	l := New(50, 0, nil)
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, _ := l.Allow("k"); ok {
				mu.Lock()
				allowed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if allowed < 50 || allowed > 51 {
		t.Errorf("%d of 200 concurrent events allowed, want 50 (51 if a token refilled)", allowed)
	}
}

// Failures: each budget is spent by failures only, per source and per
// identity, and a source's or identity's budget is its own.
func TestFailures(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	f := NewFailures(5, 3, c.now)
	for i := range 3 {
		if v := f.Fail("10.0.0.1", "victim"); v.Throttled {
			t.Fatalf("failure %d throttled within both budgets", i)
		}
	}
	// The identity's budget is spent; another source is throttled for it.
	v := f.Fail("10.0.0.2", "victim")
	if !v.Throttled || v.BySource || v.RetryAfter <= 0 {
		t.Fatalf("4th failure for the identity: %+v, want throttled by identity", v)
	}
	// Another identity from the first source still has the source's room.
	if v := f.Fail("10.0.0.1", "other"); v.Throttled {
		t.Fatalf("other identity throttled: %+v", v)
	}
	if v := f.Fail("10.0.0.1", ""); v.Throttled {
		t.Fatalf("5th failure of the source throttled: %+v", v)
	}
	v = f.Fail("10.0.0.1", "")
	if !v.Throttled || !v.BySource {
		t.Fatalf("6th failure of the source: %+v, want throttled by source", v)
	}
	// The budget refills.
	c.add(time.Minute)
	if v := f.Fail("10.0.0.1", "victim"); v.Throttled {
		t.Fatalf("after a minute: %+v", v)
	}
}

// Peek looks without taking; Allow takes.
func TestPeek(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := New(2, 0, func() time.Time { return now })
	for range 3 {
		if ok, _ := l.Peek("k"); !ok {
			t.Fatal("Peek of a full bucket said no")
		}
	}
	l.Allow("k")
	l.Allow("k")
	if ok, wait := l.Peek("k"); ok || wait <= 0 || wait > 30*time.Second {
		t.Errorf("Peek of an empty bucket = %v, %v", ok, wait)
	}
	now = now.Add(30 * time.Second)
	if ok, _ := l.Peek("k"); !ok {
		t.Error("Peek after the refill said no")
	}
}
