package portal

import (
	"fmt"
	"testing"
	"time"
)

func TestThrottle(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	th := newThrottle(3, time.Second, 10*time.Second, 100)
	for i := range 3 {
		th.fail("u:alice", now)
		if w := th.wait("u:alice", now); w != 0 {
			t.Fatalf("free failure %d: wait %v", i+1, w)
		}
	}
	// Then 1 s, 2 s, 4 s, 8 s, capped at 10 s.
	for _, want := range []time.Duration{1, 2, 4, 8, 10, 10} {
		th.fail("u:alice", now)
		if w := th.wait("u:alice", now); w != want*time.Second {
			t.Fatalf("wait %v, want %v", w, want*time.Second)
		}
		if w := th.wait("u:bob", now); w != 0 {
			t.Fatal("another key waits")
		}
	}
	th.reset("u:alice")
	if th.wait("u:alice", now) != 0 {
		t.Fatal("reset key waits")
	}
	// Failures an hour old are forgotten.
	for range 4 {
		th.fail("u:carol", now)
	}
	later := now.Add(forgetAfter + time.Second)
	th.fail("u:carol", later)
	if th.wait("u:carol", later) != 0 {
		t.Fatal("old failures still count")
	}
	// The map never holds more than size keys.
	for i := range 1000 {
		th.fail(fmt.Sprintf("a:%d", i), now.Add(time.Duration(i)*time.Millisecond))
	}
	if len(th.m) > 100 {
		t.Fatalf("%d keys held, want at most 100", len(th.m))
	}
	if _, ok := th.m["a:999"]; !ok {
		t.Fatal("the newest key was evicted instead of the oldest")
	}
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
