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
